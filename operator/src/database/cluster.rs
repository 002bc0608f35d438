//! The Aurora MySQL 3 Serverless v2 cluster: encrypted storage, the spec's capacity range and
//! backups, the database security group, and a master password RDS generates and keeps in
//! Secrets Manager (`ManageMasterUserPassword`). Never replaced: a change AWS cannot make in
//! place stalls. Its delete honours the deletion policy recorded in its
//! `plinth.dev/deletion-policy` tag: deletion protection off, then `DeleteDBCluster` with a
//! final snapshot of a deterministic name, or without one under `Delete`.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_rds::types::{DbCluster as AwsCluster, Filter, ServerlessV2ScalingConfiguration, Tag};
use plinth_crds::DeletionPolicy;

use super::{
    ARN, DB_CLUSTER, DELETION_POLICY_TAG, acu, keys, rds_component_key, rds_name, rds_tag_map,
    rds_tags,
};
use crate::aws::kit::{Deleted, Kit, Listed, Listing, Made, Select, Sent, updated};
use crate::aws::{classify, deletion, error_code};
use crate::driver;
use crate::engine::fields::owned;
use crate::engine::identity::stable_hash;
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, DesiredError, DesiredResource, Key,
    Kind, Lifecycle, ObservedResource, Reads, Scope, UpdateRequest, Wanted,
};
use crate::intent::Intent;
use crate::network::keys as net;

/// Observed: the writer endpoint.
pub const ENDPOINT: &str = "endpoint";
/// Observed: the reader endpoint.
pub const READER_ENDPOINT: &str = "reader_endpoint";
/// Observed: the port.
pub const PORT: &str = "port";
/// Observed: the cluster's resource id (names its final snapshot).
pub const RESOURCE_ID: &str = "resource_id";

crate::fields! {
    /// The cluster as the database wants it.
    desired ClusterFields,
    /// The cluster's fields as its driver reads them.
    resolved ClusterValues {
        /// The engine, `aurora-mysql`.
        engine / ENGINE = "engine": AttrValue => &'a str, immutable;
        /// The engine version (upgrades in place).
        engine_version / ENGINE_VERSION = "engine_version": AttrValue => &'a str, updatable;
        /// The lowest capacity in ACU, as [`acu`] prints it.
        min_capacity / MIN_CAPACITY = "min_capacity": AttrValue => &'a str, updatable;
        /// The highest capacity in ACU, as [`acu`] prints it.
        max_capacity / MAX_CAPACITY = "max_capacity": AttrValue => &'a str, updatable;
        /// Storage encryption (always on; cannot change in place).
        storage_encrypted / STORAGE_ENCRYPTED = "storage_encrypted": AttrValue => bool, immutable;
        /// Days of automated backups.
        backup_retention_days / BACKUP_RETENTION_DAYS = "backup_retention_days": AttrValue => i32, updatable;
        /// The daily backup window (UTC).
        backup_window / BACKUP_WINDOW = "preferred_backup_window": AttrValue => &'a str, updatable;
        /// The weekly maintenance window (UTC).
        maintenance_window / MAINTENANCE_WINDOW = "preferred_maintenance_window": AttrValue => &'a str, updatable;
        /// Tags copied to snapshots.
        copy_tags_to_snapshot / COPY_TAGS_TO_SNAPSHOT = "copy_tags_to_snapshot": AttrValue => bool, updatable;
        /// Deletion protection (on unless the policy is `Delete`).
        deletion_protection / DELETION_PROTECTION = "deletion_protection": AttrValue => bool, updatable;
        /// The deletion policy, kept as the `plinth.dev/deletion-policy` tag.
        deletion_policy / DELETION_POLICY = "deletion_policy": AttrValue => &'a str, updatable;
        /// The security groups (the database's).
        security_group_ids / SECURITY_GROUP_IDS = "vpc_security_group_ids": AttrValue => BTreeSet<&'a str>, updatable;
        /// The DB subnet group's name (cannot change in place for Aurora).
        subnet_group / SUBNET_GROUP = "db_subnet_group": AttrValue => &'a str, immutable;
        /// The cluster parameter group's name.
        parameter_group / PARAMETER_GROUP = "db_cluster_parameter_group": AttrValue => &'a str, updatable;
        /// The master user's name.
        master_username / MASTER_USERNAME = "master_username": AttrValue => &'a str, immutable;
        /// The database created inside the cluster for the app (create-only: AWS has no way to
        /// rename it, and the app would lose its tables).
        database_name / DATABASE_NAME = "database_name": AttrValue => &'a str, create_only;
        /// Whether RDS manages the master password in Secrets Manager.
        managed_password / MANAGED_PASSWORD = "manage_master_user_password": AttrValue => bool, updatable;
    }
}

impl ClusterValues<'_> {
    /// The Serverless v2 capacity range.
    fn scaling(&self) -> Result<ServerlessV2ScalingConfiguration, ActError> {
        let capacity = |field: &str, value: &str| {
            value.parse().map_err(|_| {
                let message = format!("{field} is not a number of ACU");
                ActError::refused("PlinthInvalidCapacity", message)
            })
        };
        Ok(ServerlessV2ScalingConfiguration::builder()
            .min_capacity(capacity(MIN_CAPACITY, self.min_capacity)?)
            .max_capacity(capacity(MAX_CAPACITY, self.max_capacity)?)
            .build())
    }

    /// The security groups, as the SDK takes them.
    fn security_groups(&self) -> Vec<String> {
        owned(&self.security_group_ids)
    }
}

/// The engine.
pub const AURORA_MYSQL: &str = "aurora-mysql";
/// The master user's name (the password is RDS's, in Secrets Manager).
pub const MASTER_USER: &str = "plinth";
/// The daily backup window, UTC, clear of the maintenance window as AWS requires.
pub const PREFERRED_BACKUP_WINDOW: &str = "03:00-04:00";
/// The weekly maintenance window, UTC.
pub const PREFERRED_MAINTENANCE_WINDOW: &str = "sun:05:00-sun:06:00";

/// RDS cluster identifiers are at most 63 characters.
const NAME_LEN: usize = 63;

/// The final snapshot's name for the cluster `cluster_id` whose resource id is `resource_id`:
/// the same on every attempt for one cluster (a retried delete never makes a second one), and
/// different for a later cluster of the same platform (whose snapshot must not collide).
pub fn final_snapshot_name(cluster_id: &str, resource_id: &str) -> String {
    let hash = stable_hash(resource_id);
    format!("{cluster_id}-final-{}", &hash[..8])
}

/// The policy's name as kept in the tag.
pub fn policy_name(policy: DeletionPolicy) -> &'static str {
    match policy {
        DeletionPolicy::Snapshot => "Snapshot",
        DeletionPolicy::Retain => "Retain",
        DeletionPolicy::Delete => "Delete",
    }
}

/// The desired cluster.
pub fn desired(spec: &Intent) -> DesiredResource {
    let db = &spec.database;
    let fields = ClusterFields {
        engine: AURORA_MYSQL.into(),
        engine_version: db.engine_version.as_str().into(),
        min_capacity: acu(db.min_capacity).into(),
        max_capacity: acu(db.max_capacity).into(),
        storage_encrypted: true.into(),
        backup_retention_days: db.backup_retention_days.into(),
        backup_window: PREFERRED_BACKUP_WINDOW.into(),
        maintenance_window: PREFERRED_MAINTENANCE_WINDOW.into(),
        copy_tags_to_snapshot: true.into(),
        deletion_protection: (db.deletion_policy != DeletionPolicy::Delete).into(),
        deletion_policy: policy_name(db.deletion_policy).into(),
        security_group_ids: AttrValue::set([AttrValue::reference(net::DATABASE_SG)]),
        subnet_group: AttrValue::reference(keys::DB_SUBNET_GROUP),
        parameter_group: AttrValue::reference(keys::DB_CLUSTER_PARAMETER_GROUP),
        master_username: MASTER_USER.into(),
        database_name: super::APP_DATABASE.into(),
        managed_password: true.into(),
    };
    fields
        .into_desired(DB_CLUSTER, keys::DB_CLUSTER)
        .forbid_replace()
}

/// Where a cluster status puts the cluster for the engine. Unknown statuses wait: a database
/// is never replaced on a guess.
pub fn lifecycle(status: &str) -> Lifecycle {
    match status {
        "available" | "backing-up" | "backtracking" | "storage-optimization" => {
            Lifecycle::Available
        }
        "deleting" => Lifecycle::Deleting,
        "failed"
        | "inaccessible-encryption-credentials"
        | "incompatible-parameters"
        | "incompatible-restore"
        | "incompatible-network" => Lifecycle::Failed {
            reason: format!("the cluster's status is {status}"),
        },
        _ => Lifecycle::Pending,
    }
}

driver!(
    /// The cluster component.
    DbCluster
);

impl DbCluster {
    /// The platform's cluster: RDS has no tag filter on describe, and paging through the
    /// account's clusters would cost more the more platforms share the region, so it is asked
    /// for by its deterministic identifier (a filter, so "none" is an empty answer) and its
    /// tags confirm it is `scope`'s.
    async fn of_platform(&self, scope: &Scope) -> Result<Vec<ObservedResource>, ActError> {
        let call = self.aws.rds().await.describe_db_clusters();
        let pages = call.filters(cluster_filter(scope)).into_paginator();
        let clusters: Vec<AwsCluster> = pages
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify(&e))?;
        Ok(clusters.iter().filter_map(|c| observed(c, scope)).collect())
    }
}

/// The platform's cluster identifier (the same the create gives it).
pub(crate) fn cluster_identifier(scope: &Scope) -> String {
    rds_name(scope, &Key::from(keys::DB_CLUSTER), NAME_LEN)
}

/// The describe filter selecting the platform's cluster, or (in `DescribeDBInstances`) the
/// instances that belong to it.
pub(crate) fn cluster_filter(scope: &Scope) -> Filter {
    Filter::builder()
        .name("db-cluster-id")
        .values(cluster_identifier(scope))
        .build()
}

/// A cluster as the engine sees it, when it is one of `scope`'s.
pub(crate) fn observed(cluster: &AwsCluster, scope: &Scope) -> Option<ObservedResource> {
    let key = rds_component_key(cluster.tag_list(), scope)?;
    let id = cluster.db_cluster_identifier()?;
    let mut r = ObservedResource::new(DB_CLUSTER, key, id)
        .lifecycle(lifecycle(cluster.status().unwrap_or("creating")));
    let mut put = |field: &str, value: Option<AttrValue>| {
        if let Some(value) = value {
            r.attrs.insert(field.to_owned(), value);
        }
    };
    put(ENGINE, cluster.engine().map(AttrValue::from));
    put(
        ENGINE_VERSION,
        cluster.engine_version().map(AttrValue::from),
    );
    let scaling = cluster.serverless_v2_scaling_configuration();
    put(
        MIN_CAPACITY,
        scaling
            .and_then(|s| s.min_capacity())
            .map(|v| AttrValue::from(acu(v))),
    );
    put(
        MAX_CAPACITY,
        scaling
            .and_then(|s| s.max_capacity())
            .map(|v| AttrValue::from(acu(v))),
    );
    put(
        STORAGE_ENCRYPTED,
        Some(cluster.storage_encrypted().unwrap_or(false).into()),
    );
    put(
        BACKUP_RETENTION_DAYS,
        cluster.backup_retention_period().map(AttrValue::from),
    );
    put(
        BACKUP_WINDOW,
        cluster.preferred_backup_window().map(AttrValue::from),
    );
    put(
        MAINTENANCE_WINDOW,
        cluster
            .preferred_maintenance_window()
            .map(|w| AttrValue::from(w.to_ascii_lowercase())),
    );
    put(
        COPY_TAGS_TO_SNAPSHOT,
        Some(cluster.copy_tags_to_snapshot().unwrap_or(false).into()),
    );
    put(
        DELETION_PROTECTION,
        Some(cluster.deletion_protection().unwrap_or(false).into()),
    );
    put(
        DELETION_POLICY,
        rds_tag_map(cluster.tag_list())
            .get(DELETION_POLICY_TAG)
            .map(|p| AttrValue::from(p.as_str())),
    );
    put(
        SECURITY_GROUP_IDS,
        Some(AttrValue::set(
            cluster
                .vpc_security_groups()
                .iter()
                .filter_map(|g| g.vpc_security_group_id())
                .map(AttrValue::from),
        )),
    );
    put(SUBNET_GROUP, cluster.db_subnet_group().map(AttrValue::from));
    put(
        PARAMETER_GROUP,
        cluster.db_cluster_parameter_group().map(AttrValue::from),
    );
    put(
        MASTER_USERNAME,
        cluster.master_username().map(AttrValue::from),
    );
    put(
        MANAGED_PASSWORD,
        Some(cluster.master_user_secret().is_some().into()),
    );
    put(ENDPOINT, cluster.endpoint().map(AttrValue::from));
    put(
        READER_ENDPOINT,
        cluster.reader_endpoint().map(AttrValue::from),
    );
    put(PORT, cluster.port().map(AttrValue::from));
    put(ARN, cluster.db_cluster_arn().map(AttrValue::from));
    put(
        RESOURCE_ID,
        cluster.db_cluster_resource_id().map(AttrValue::from),
    );
    Some(r)
}

impl Component<Intent> for DbCluster {
    fn desired(&self, spec: &Intent) -> Wanted {
        crate::network::check_region(spec, &self.aws, DB_CLUSTER)?;
        if spec.database.min_capacity > spec.database.max_capacity {
            return Err(DesiredError::Invalid {
                kind: DB_CLUSTER,
                message: "spec.database.minCapacity must be at most spec.database.maxCapacity"
                    .into(),
            });
        }
        Ok(vec![desired(spec)])
    }
}

#[async_trait]
impl Listing for DbCluster {
    async fn list(&self, select: Select<'_>, _: &Reads) -> Listed {
        Ok(select.keep(self.of_platform(select.scope()).await?))
    }
}

#[async_trait]
impl Kit for DbCluster {
    const KIND: Kind = DB_CLUSTER;
    const SKIP_DELETING: bool = true;
    const DUPLICATE_CODES: &'static [&'static str] = &["DBClusterAlreadyExistsFault"];

    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let scope = request.scope;
        let id = rds_name(scope, request.key, NAME_LEN);
        let fields = ClusterValues::read(request.attrs)?;
        let mut tags = request.tags();
        tags.insert(
            DELETION_POLICY_TAG.to_owned(),
            fields.deletion_policy.to_owned(),
        );
        let output = crate::send_once!(
            aws_sdk_rds,
            self.aws
                .rds()
                .await
                .create_db_cluster()
                .db_cluster_identifier(&id)
                .engine(fields.engine)
                .engine_version(fields.engine_version)
                .serverless_v2_scaling_configuration(fields.scaling()?)
                .storage_encrypted(fields.storage_encrypted)
                .backup_retention_period(fields.backup_retention_days)
                .preferred_backup_window(fields.backup_window)
                .preferred_maintenance_window(fields.maintenance_window)
                .copy_tags_to_snapshot(fields.copy_tags_to_snapshot)
                .deletion_protection(fields.deletion_protection)
                .set_vpc_security_group_ids(Some(fields.security_groups()))
                .db_subnet_group_name(fields.subnet_group)
                .db_cluster_parameter_group_name(fields.parameter_group)
                .master_username(fields.master_username)
                .database_name(fields.database_name)
                .manage_master_user_password(fields.managed_password)
                .set_tags(Some(rds_tags(&tags)))
        )?;
        Ok(output
            .db_cluster()
            .and_then(|c| observed(c, scope))
            .unwrap_or_else(|| {
                ObservedResource::new(DB_CLUSTER, request.key, &id).lifecycle(Lifecycle::Pending)
            }))
    }

    async fn after_create(&self, made: ObservedResource, _: &CreateRequest<'_>) -> Made {
        tracing::info!(cluster = %made.id, "created the Aurora cluster");
        Ok(made)
    }

    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        let changed: BTreeSet<&str> = request.changed.iter().map(String::as_str).collect();
        let fields = ClusterValues::read(request.attrs)?;
        let id = &request.current.id;
        let rds = self.aws.rds().await;
        let mut modify = rds
            .modify_db_cluster()
            .db_cluster_identifier(id)
            .apply_immediately(true);
        let mut send = false;
        if changed.contains(ENGINE_VERSION) {
            modify = modify.engine_version(fields.engine_version);
            send = true;
        }
        if changed.contains(MIN_CAPACITY) || changed.contains(MAX_CAPACITY) {
            modify = modify.serverless_v2_scaling_configuration(fields.scaling()?);
            send = true;
        }
        if changed.contains(BACKUP_RETENTION_DAYS) {
            modify = modify.backup_retention_period(fields.backup_retention_days);
            send = true;
        }
        if changed.contains(BACKUP_WINDOW) {
            modify = modify.preferred_backup_window(fields.backup_window);
            send = true;
        }
        if changed.contains(MAINTENANCE_WINDOW) {
            modify = modify.preferred_maintenance_window(fields.maintenance_window);
            send = true;
        }
        if changed.contains(COPY_TAGS_TO_SNAPSHOT) {
            modify = modify.copy_tags_to_snapshot(fields.copy_tags_to_snapshot);
            send = true;
        }
        if changed.contains(DELETION_PROTECTION) {
            modify = modify.deletion_protection(fields.deletion_protection);
            send = true;
        }
        if changed.contains(SECURITY_GROUP_IDS) {
            modify = modify.set_vpc_security_group_ids(Some(fields.security_groups()));
            send = true;
        }
        if changed.contains(PARAMETER_GROUP) {
            modify = modify.db_cluster_parameter_group_name(fields.parameter_group);
            send = true;
        }
        if changed.contains(MANAGED_PASSWORD) {
            modify = modify.manage_master_user_password(fields.managed_password);
            send = true;
        }
        if send {
            modify.send().await.map_err(|e| classify(&e))?;
        }
        if changed.contains(DELETION_POLICY)
            && let Some(arn) = request.current.attrs.get(ARN).and_then(AttrValue::as_str)
        {
            self.aws
                .rds()
                .await
                .add_tags_to_resource()
                .resource_name(arn)
                .tags(
                    Tag::builder()
                        .key(DELETION_POLICY_TAG)
                        .value(fields.deletion_policy)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| classify(&e))?;
        }
        let mut resource = updated(&request);
        if send {
            // AWS shows the cluster `modifying` for a while; the next observe says when done.
            resource.lifecycle = Lifecycle::Pending;
        }
        Ok(resource)
    }

    async fn send_delete(&self, current: &ObservedResource, _scope: &Scope) -> Deleted {
        let policy = current
            .attrs
            .get(DELETION_POLICY)
            .and_then(AttrValue::as_str)
            .unwrap_or("Snapshot");
        if current.attrs.get(DELETION_PROTECTION) == Some(&AttrValue::Bool(true)) {
            self.aws
                .rds()
                .await
                .modify_db_cluster()
                .db_cluster_identifier(&current.id)
                .deletion_protection(false)
                .apply_immediately(true)
                .send()
                .await
                .map_err(|e| classify(&e))?;
        }
        let mut call = self
            .aws
            .rds()
            .await
            .delete_db_cluster()
            .db_cluster_identifier(&current.id);
        if policy == "Delete" {
            call = call.skip_final_snapshot(true);
        } else {
            let resource_id = current
                .attrs
                .get(RESOURCE_ID)
                .and_then(AttrValue::as_str)
                .unwrap_or(&current.id);
            let snapshot = final_snapshot_name(&current.id, resource_id);
            tracing::info!(cluster = %current.id, %snapshot, "deleting the Aurora cluster after a final snapshot");
            call = call
                .skip_final_snapshot(false)
                .final_db_snapshot_identifier(snapshot);
        }
        let result = call.send().await;
        if let Err(e) = &result
            && error_code(e) == Some("InvalidParameterCombination")
        {
            // Deletion protection still on (its change not visible yet): try again soon.
            return Err(ActError::Pending {
                reason: format!("{}", classify(e)),
            });
        }
        deletion(result, "DBClusterNotFoundFault", Deletion::InProgress)
    }

    // RDS creates and tags the master user secret with the caller's permissions.
    // Tagging what a `Retain` teardown leaves behind (`database::mark_retained`).
    const IAM_ACTIONS: &'static [&'static str] = crate::actions![
        rds: DescribeDBClusters, CreateDBCluster, ModifyDBCluster, DeleteDBCluster,
            CreateDBClusterSnapshot, AddTagsToResource;
        secretsmanager: CreateSecret, TagResource;
        kms: DescribeKey;
        ec2: CreateTags;
    ];
}
