//! The cluster's instances: a writer and `spec.database.readers` readers, all `db.serverless`,
//! spread over the zones round-robin (writer in the first). Reader count changes add or delete
//! readers; a class changed by hand is set back in place; nothing else about an instance
//! changes, and an instance is never replaced.

use async_trait::async_trait;
use aws_sdk_rds::types::DbInstance as AwsInstance;

use super::cluster::{AURORA_MYSQL, cluster_filter};
use super::{ARN, DB_INSTANCE, keys, rds_component_key, rds_name, rds_tags};
use crate::aws::kit::{Deleted, Kit, Listed, Listing, Made, Select, Sent};
use crate::aws::{classify, deletion};
use crate::driver;
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, DesiredResource, Key, Kind, Lifecycle,
    ObservedResource, Reads, Scope, UpdateRequest, Wanted,
};
use crate::intent::Intent;

crate::fields! {
    /// An instance as the database wants it.
    desired InstanceFields,
    /// An instance's fields as its driver reads them.
    resolved InstanceValues {
        /// The cluster the instance belongs to.
        cluster / CLUSTER = "db_cluster": AttrValue => &'a str, immutable;
        /// The instance class, `db.serverless`.
        instance_class / INSTANCE_CLASS = "instance_class": AttrValue => &'a str, updatable;
        /// The engine.
        engine / ENGINE = "engine": AttrValue => &'a str, immutable;
        /// The zone.
        availability_zone / AVAILABILITY_ZONE = "availability_zone": AttrValue => &'a str, immutable;
    }
}

/// Serverless v2 capacity comes from the cluster's range.
pub const SERVERLESS: &str = "db.serverless";

/// RDS instance identifiers are at most 63 characters.
const NAME_LEN: usize = 63;

/// The desired instances: the writer, then reader 1…n, zone `i mod zones` for the i-th.
pub fn desired(spec: &Intent) -> Vec<DesiredResource> {
    let zones = &spec.network.availability_zones;
    let readers = usize::try_from(spec.database.readers).unwrap_or(0);
    let keys =
        std::iter::once(Key::from(keys::DB_WRITER)).chain((1..=readers).map(keys::db_reader));
    keys.enumerate()
        .filter_map(|(i, key)| {
            let zone = zones.get(i % zones.len().max(1))?;
            let fields = InstanceFields {
                cluster: AttrValue::reference(keys::DB_CLUSTER),
                instance_class: SERVERLESS.into(),
                engine: AURORA_MYSQL.into(),
                availability_zone: zone.as_str().into(),
            };
            Some(fields.into_desired(DB_INSTANCE, key).forbid_replace())
        })
        .collect()
}

/// Where an instance status puts the instance for the engine.
pub fn lifecycle(status: &str) -> Lifecycle {
    match status {
        "available" | "backing-up" | "storage-optimization" => Lifecycle::Available,
        "deleting" => Lifecycle::Deleting,
        "failed"
        | "inaccessible-encryption-credentials"
        | "incompatible-parameters"
        | "incompatible-restore"
        | "incompatible-network"
        | "restore-error" => Lifecycle::Failed {
            reason: format!("the instance's status is {status}"),
        },
        _ => Lifecycle::Pending,
    }
}

fn observed(instance: &AwsInstance, scope: &Scope) -> Option<ObservedResource> {
    let key = rds_component_key(instance.tag_list(), scope)?;
    let mut r = ObservedResource::new(DB_INSTANCE, key, instance.db_instance_identifier()?)
        .lifecycle(lifecycle(
            instance.db_instance_status().unwrap_or("creating"),
        ));
    for (field, value) in [
        (CLUSTER, instance.db_cluster_identifier()),
        (INSTANCE_CLASS, instance.db_instance_class()),
        (ENGINE, instance.engine()),
        (AVAILABILITY_ZONE, instance.availability_zone()),
        (ARN, instance.db_instance_arn()),
    ] {
        if let Some(value) = value {
            r.attrs.insert(field.to_owned(), value.into());
        }
    }
    Some(r)
}

driver!(
    /// The instances component.
    DbInstances
);

impl DbInstances {
    /// The platform's instances: those of its cluster (by the cluster's deterministic
    /// identifier, so the cost does not grow with other platforms' instances), each confirmed
    /// by its tags. An Aurora instance cannot outlive its cluster, so none is missed.
    async fn of_platform(&self, scope: &Scope) -> Result<Vec<ObservedResource>, ActError> {
        let call = self.aws.rds().await.describe_db_instances();
        let pages = call.filters(cluster_filter(scope)).into_paginator();
        let instances: Vec<AwsInstance> = pages
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify(&e))?;
        Ok(instances
            .iter()
            .filter_map(|i| observed(i, scope))
            .collect())
    }

    /// AWS refuses to delete the last instance of a cluster with deletion protection: when this
    /// is the last one (only a teardown deletes the writer), turn the protection off first.
    async fn unprotect_if_last(&self, cluster: &str, instance: &str) -> Result<(), ActError> {
        let output = match self
            .aws
            .rds()
            .await
            .describe_db_clusters()
            .db_cluster_identifier(cluster)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if crate::aws::error_code(&e) == Some("DBClusterNotFoundFault") => return Ok(()),
            Err(e) => return Err(classify(&e)),
        };
        let Some(found) = output.db_clusters().first() else {
            return Ok(());
        };
        let others = found
            .db_cluster_members()
            .iter()
            .filter(|m| m.db_instance_identifier() != Some(instance))
            .count();
        if others == 0 && found.deletion_protection() == Some(true) {
            self.aws
                .rds()
                .await
                .modify_db_cluster()
                .db_cluster_identifier(cluster)
                .deletion_protection(false)
                .apply_immediately(true)
                .send()
                .await
                .map_err(|e| classify(&e))?;
        }
        Ok(())
    }
}

impl Component<Intent> for DbInstances {
    fn desired(&self, spec: &Intent) -> Wanted {
        Ok(desired(spec))
    }
}

#[async_trait]
impl Listing for DbInstances {
    async fn list(&self, select: Select<'_>, _: &Reads) -> Listed {
        Ok(select.keep(self.of_platform(select.scope()).await?))
    }
}

#[async_trait]
impl Kit for DbInstances {
    const KIND: Kind = DB_INSTANCE;
    const SKIP_DELETING: bool = true;
    const DUPLICATE_CODES: &'static [&'static str] =
        &["DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault"];

    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let scope = request.scope;
        let id = rds_name(scope, request.key, NAME_LEN);
        let fields = InstanceValues::read(request.attrs)?;
        let (cluster, zone) = (fields.cluster, fields.availability_zone);
        let (class, engine) = (fields.instance_class, fields.engine);
        let output = crate::send_once!(
            aws_sdk_rds,
            self.aws
                .rds()
                .await
                .create_db_instance()
                .db_instance_identifier(&id)
                .db_cluster_identifier(cluster)
                .db_instance_class(class)
                .engine(engine)
                .availability_zone(zone)
                .publicly_accessible(false)
                .set_tags(Some(rds_tags(&request.tags())))
        )?;
        Ok(output
            .db_instance()
            .and_then(|i| observed(i, scope))
            .unwrap_or_else(|| {
                ObservedResource::new(DB_INSTANCE, request.key, &id).lifecycle(Lifecycle::Pending)
            }))
    }

    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        // Only the class changes in place (a class set by hand goes back to `db.serverless`).
        let class = InstanceValues::read(request.attrs)?.instance_class;
        self.aws
            .rds()
            .await
            .modify_db_instance()
            .db_instance_identifier(&request.current.id)
            .db_instance_class(class)
            .apply_immediately(true)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let mut resource = crate::aws::kit::updated(&request);
        resource.lifecycle = Lifecycle::Pending;
        Ok(resource)
    }

    async fn send_delete(&self, current: &ObservedResource, _scope: &Scope) -> Deleted {
        if let Some(cluster) = current.attrs.get(CLUSTER).and_then(AttrValue::as_str) {
            self.unprotect_if_last(cluster, &current.id).await?;
        }
        let call = self.aws.rds().await.delete_db_instance();
        let result = call.db_instance_identifier(&current.id).send().await;
        deletion(result, "DBInstanceNotFound", Deletion::InProgress)
    }

    const IAM_ACTIONS: &'static [&'static str] = crate::actions![
        rds: DescribeDBInstances, CreateDBInstance, ModifyDBInstance, DeleteDBInstance,
            DescribeDBClusters, ModifyDBCluster, AddTagsToResource;
    ];
}
