//! The master user secret RDS creates for the cluster (`ManageMasterUserPassword`): Plinth
//! adopts it (tags it as the platform's `db-secret`) and sets its rotation period; its id is
//! the secret's ARN, which other components reference. Plinth never reads the secret's value.
//!
//! "Create" waits ([`ActError::Pending`]) until the cluster reports its secret. "Delete" lets
//! go of it (removes Plinth's tags): RDS owns the secret and deletes it with the cluster.

use async_trait::async_trait;
use aws_sdk_secretsmanager::types::{
    Filter, FilterNameStringType, RotationRulesType, SecretListEntry, Tag,
};

use super::{DATABASE_SECRET, keys};
use crate::aws::kit::{Deleted, Kit, Listed, Listing, Made, Select, Sent, updated};
use crate::aws::{LostAnswer, classify, error_code};
use crate::driver;
use crate::engine::{
    ActError, AttrValue, COMPONENT_TAG, Component, CreateRequest, Deletion, DesiredResource, Kind,
    ObservedResource, PLATFORM_TAG, Reads, Scope, UpdateRequest, Wanted,
};
use crate::intent::Intent;

crate::fields! {
    /// The database secret as the database wants it.
    desired SecretFields,
    /// The secret's fields as its driver reads them.
    resolved SecretValues {
        /// The cluster whose master user secret this is.
        cluster / CLUSTER = "db_cluster": AttrValue => &'a str, immutable;
        /// Days between automatic rotations.
        rotation_days / ROTATION_DAYS = "rotation_days": AttrValue => i64, updatable;
    }
}

/// The tag RDS puts on the secret naming its cluster's ARN.
const RDS_CLUSTER_TAG: &str = "aws:rds:primaryDBClusterArn";

/// The desired secret: the cluster's, rotated every `credentials.rotationDays`.
pub fn desired(spec: &Intent) -> DesiredResource {
    let fields = SecretFields {
        cluster: AttrValue::reference(keys::DB_CLUSTER),
        rotation_days: spec.credentials.rotation_days.into(),
    };
    fields.into_desired(DATABASE_SECRET, keys::DB_SECRET)
}

/// The cluster identifier at the end of a cluster ARN (`arn:aws:rds:…:cluster:<id>`).
pub fn cluster_id_of(arn: &str) -> Option<&str> {
    arn.rsplit_once(":cluster:").map(|(_, id)| id)
}

/// A secret as the engine sees it, when it is one of `scope`'s and not scheduled for deletion.
fn observed(secret: &SecretListEntry, scope: &Scope) -> Option<ObservedResource> {
    // Scheduled for deletion: as good as gone.
    if secret.deleted_date().is_some() {
        return None;
    }
    let tag = |name: &str| {
        secret
            .tags()
            .iter()
            .find(|t| t.key() == Some(name))
            .and_then(|t| t.value())
    };
    if tag(PLATFORM_TAG) != Some(scope.platform()) {
        return None;
    }
    let (Some(key), Some(arn)) = (tag(COMPONENT_TAG), secret.arn()) else {
        return None;
    };
    let mut resource = ObservedResource::new(DATABASE_SECRET, key, arn);
    if let Some(cluster) = tag(RDS_CLUSTER_TAG).and_then(cluster_id_of) {
        resource = resource.attr(CLUSTER, cluster);
    }
    if secret.rotation_enabled() == Some(true)
        && let Some(days) = secret
            .rotation_rules()
            .and_then(RotationRulesType::automatically_after_days)
    {
        resource = resource.attr(ROTATION_DAYS, days);
    }
    Some(resource)
}

driver!(
    /// The database secret component.
    DatabaseSecret
);

impl DatabaseSecret {
    /// The secrets tagged for the platform (ListSecrets filters by tag key and value apart, so
    /// the tags are checked again).
    async fn of_platform(&self, scope: &Scope) -> Result<Vec<ObservedResource>, ActError> {
        let filter = |key, value| Filter::builder().key(key).values(value).build();
        let call = self.aws.secretsmanager().await.list_secrets();
        let pages = call
            .filters(filter(FilterNameStringType::TagKey, PLATFORM_TAG))
            .filters(filter(FilterNameStringType::TagValue, scope.platform()))
            .into_paginator()
            .send();
        let pages: Vec<_> = pages.try_collect().await.map_err(|e| classify(&e))?;
        let secrets = pages.iter().flat_map(|page| page.secret_list());
        Ok(secrets.filter_map(|s| observed(s, scope)).collect())
    }

    /// Sets the rotation period without rotating now (a period change is no reason for a new
    /// password; RDS rotates on the schedule).
    async fn set_rotation(&self, arn: &str, days: i64) -> Result<(), ActError> {
        self.aws
            .secretsmanager()
            .await
            .rotate_secret()
            .secret_id(arn)
            .rotation_rules(
                RotationRulesType::builder()
                    .automatically_after_days(days)
                    .build(),
            )
            .rotate_immediately(false)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }
}

impl Component<Intent> for DatabaseSecret {
    fn desired(&self, spec: &Intent) -> Wanted {
        Ok(vec![desired(spec)])
    }
}

#[async_trait]
impl Listing for DatabaseSecret {
    async fn list(&self, select: Select<'_>, _: &Reads) -> Listed {
        Ok(select.keep(self.of_platform(select.scope()).await?))
    }
}

#[async_trait]
impl Kit for DatabaseSecret {
    const KIND: Kind = DATABASE_SECRET;

    /// RDS makes the secret; "creating" it only waits for the cluster to report it.
    const LOST_ANSWER: LostAnswer = LostAnswer::Idempotent;

    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let fields = SecretValues::read(request.attrs)?;
        let (cluster, days) = (fields.cluster, fields.rotation_days);
        let output = self
            .aws
            .rds()
            .await
            .describe_db_clusters()
            .db_cluster_identifier(cluster)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let secret = output
            .db_clusters()
            .first()
            .and_then(|c| c.master_user_secret());
        let Some(arn) = secret
            .filter(|s| s.secret_status().is_none_or(|status| status == "active"))
            .and_then(|s| s.secret_arn())
        else {
            let reason = format!("waiting for RDS to create the master user secret of {cluster}");
            return Err(ActError::Pending { reason }.into());
        };
        let tags = request
            .tags()
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        self.aws
            .secretsmanager()
            .await
            .tag_resource()
            .secret_id(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        self.set_rotation(arn, days).await?;
        Ok(ObservedResource::new(DATABASE_SECRET, request.key, arn)
            .attr(CLUSTER, cluster)
            .attr(ROTATION_DAYS, days))
    }

    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        if request.changed.iter().any(|f| f == ROTATION_DAYS) {
            let days = SecretValues::read(request.attrs)?.rotation_days;
            self.set_rotation(&request.current.id, days).await?;
        }
        Ok(updated(&request))
    }

    async fn send_delete(&self, current: &ObservedResource, _scope: &Scope) -> Deleted {
        match self
            .aws
            .secretsmanager()
            .await
            .untag_resource()
            .secret_id(&current.id)
            .tag_keys(PLATFORM_TAG)
            .tag_keys(COMPONENT_TAG)
            .send()
            .await
        {
            Ok(_) => Ok(Deletion::Gone),
            Err(e) if error_code(&e) == Some("ResourceNotFoundException") => Ok(Deletion::Gone),
            Err(e) => Err(classify(&e)),
        }
    }

    const IAM_ACTIONS: &'static [&'static str] = crate::actions![
        secretsmanager: ListSecrets, RotateSecret, TagResource, UntagResource;
        rds: DescribeDBClusters;
    ];
}
