//! The master user secret RDS creates for the cluster (`ManageMasterUserPassword`): Plinth
//! adopts it (tags it as the platform's `db-secret`) and sets its rotation period; its id is
//! the secret's ARN, which other components reference. Plinth never reads the secret's value.
//!
//! "Create" waits ([`ActError::Pending`]) until the cluster reports its secret. "Delete" lets
//! go of it (removes Plinth's tags): RDS owns the secret and deletes it with the cluster.

use async_trait::async_trait;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, RotationRulesType, Tag};

use super::{DATABASE_SECRET, keys};
use crate::aws::kit::{required, updated};
use crate::aws::{AwsClients, classify, error_code};
use crate::engine::{
    ActError, AttrValue, COMPONENT_TAG, Component, CreateRequest, Deletion, DesiredError,
    DesiredResource, Driver, Kind, ObservedResource, PLATFORM_TAG, Reads, Scope, UpdateRequest,
};
use crate::intent::Intent;

/// Field: the cluster whose master user secret this is.
pub const CLUSTER: &str = "db_cluster";
/// Field: days between automatic rotations.
pub const ROTATION_DAYS: &str = "rotation_days";

/// The tag RDS puts on the secret naming its cluster's ARN.
const RDS_CLUSTER_TAG: &str = "aws:rds:primaryDBClusterArn";

/// The desired secret: the cluster's, rotated every `credentials.rotationDays`.
pub fn desired(spec: &Intent) -> DesiredResource {
    DesiredResource::new(DATABASE_SECRET, keys::DB_SECRET)
        .immutable(CLUSTER, AttrValue::reference(keys::DB_CLUSTER))
        .updatable(ROTATION_DAYS, spec.credentials.rotation_days)
}

/// The cluster identifier at the end of a cluster ARN (`arn:aws:rds:…:cluster:<id>`).
pub fn cluster_id_of(arn: &str) -> Option<&str> {
    arn.rsplit_once(":cluster:").map(|(_, id)| id)
}

/// The database secret component.
pub struct DatabaseSecret {
    aws: AwsClients,
}

impl DatabaseSecret {
    /// The component acting through `aws`.
    pub fn new(aws: AwsClients) -> Self {
        Self { aws }
    }

    async fn list(&self, scope: &Scope) -> Result<Vec<ObservedResource>, ActError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let output = self
                .aws
                .secretsmanager()
                .await
                .list_secrets()
                .filters(
                    Filter::builder()
                        .key(FilterNameStringType::TagKey)
                        .values(PLATFORM_TAG)
                        .build(),
                )
                .filters(
                    Filter::builder()
                        .key(FilterNameStringType::TagValue)
                        .values(scope.platform())
                        .build(),
                )
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| classify(&e))?;
            for secret in output.secret_list() {
                // Scheduled for deletion: as good as gone.
                if secret.deleted_date().is_some() {
                    continue;
                }
                let tag = |name: &str| {
                    secret
                        .tags()
                        .iter()
                        .find(|t| t.key() == Some(name))
                        .and_then(|t| t.value())
                };
                if tag(PLATFORM_TAG) != Some(scope.platform()) {
                    continue;
                }
                let (Some(key), Some(arn)) = (tag(COMPONENT_TAG), secret.arn()) else {
                    continue;
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
                found.push(resource);
            }
            token = output.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        Ok(found)
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
    fn desired(&self, spec: &Intent) -> Result<Vec<DesiredResource>, DesiredError> {
        Ok(vec![desired(spec)])
    }
}

fn days(request_attrs: &crate::engine::Attrs) -> Result<i64, ActError> {
    request_attrs
        .get(ROTATION_DAYS)
        .and_then(AttrValue::as_int)
        .ok_or_else(|| {
            ActError::refused(
                "PlinthMissingField",
                format!("the desired secret has no number field {ROTATION_DAYS}"),
            )
        })
}

#[async_trait]
impl Driver for DatabaseSecret {
    fn kind(&self) -> Kind {
        DATABASE_SECRET
    }

    /// RDS makes the secret; "creating" it only waits for the cluster to report it.
    fn idempotent_create(&self) -> bool {
        true
    }

    async fn observe(
        &self,
        scope: &Scope,
        _reads: &Reads,
    ) -> Result<Vec<ObservedResource>, ActError> {
        self.list(scope).await
    }

    async fn create(&self, request: CreateRequest<'_>) -> Result<ObservedResource, ActError> {
        let cluster = required(request.attrs, CLUSTER)?;
        let days = days(request.attrs)?;
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
            return Err(ActError::Pending {
                reason: format!("waiting for RDS to create the master user secret of {cluster}"),
            });
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

    async fn update(&self, request: UpdateRequest<'_>) -> Result<ObservedResource, ActError> {
        if request.changed.iter().any(|f| f == ROTATION_DAYS) {
            self.set_rotation(&request.current.id, days(request.attrs)?)
                .await?;
        }
        Ok(updated(&request))
    }

    async fn delete(
        &self,
        current: &ObservedResource,
        _scope: &Scope,
    ) -> Result<Deletion, ActError> {
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

    fn iam_actions(&self) -> &'static [&'static str] {
        &[
            "secretsmanager:ListSecrets",
            "secretsmanager:RotateSecret",
            "secretsmanager:TagResource",
            "secretsmanager:UntagResource",
            "rds:DescribeDBClusters",
        ]
    }
}
