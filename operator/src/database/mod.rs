//! The database components: an Aurora MySQL 3 Serverless v2 cluster in the private subnets, its
//! writer and reader instances, the DB subnet group and cluster parameter group it uses, and the
//! RDS-managed master user secret with its rotation period. One file per kind, each a
//! [`Component`] of the `DataPlatform` spec acting through RDS (and Secrets Manager).
//!
//! The desired graph (keys as written in the `plinth.dev/component` tag; `→` is "refers to"):
//!
//! ```text
//! db-subnet-group                                  → subnet/private/<az> (every zone)
//! db-cluster-parameter-group
//! db-cluster                                       → db-subnet-group, db-cluster-parameter-group,
//!                                                    security-group/database
//! db-instance/writer, db-instance/reader-<n>       → db-cluster        (zones round-robin)
//! db-secret   (the cluster's MasterUserSecret)     → db-cluster
//! ```
//!
//! The cluster and its instances are never replaced ([`DesiredResource::forbid_replace`]): a
//! change AWS cannot make in place is reported as `Stalled`. The password is generated and kept
//! by RDS in Secrets Manager (`ManageMasterUserPassword`); Plinth only ever handles the
//! secret's ARN and rotation period, never its value.
//!
//! What teardown does follows `spec.database.deletionPolicy`: the cluster carries the policy as
//! its `plinth.dev/deletion-policy` tag (kept in sync by every pass), so its delete takes a final
//! snapshot unless the policy is `Delete`; `Retain` keeps the database and the network it lives
//! in out of the teardown altogether ([`retains`]) and tags them `plinth.dev/retained=true`
//! ([`mark_retained`]).

pub mod cluster;
pub mod instance;
pub mod parameter_group;
pub mod secret;
pub mod subnet_group;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_rds::types::Tag;
use plinth_crds::{DataPlatformSpec, DataPlatformStatus, DatabaseStatus, DeletionPolicy};

use crate::aws::{AwsClients, classify};
use crate::engine::{
    ActError, AttrValue, COMPONENT_TAG, Component, Key, Kind, Observed, ObservedResource,
    PLATFORM_TAG, Scope,
};
use crate::intent::Intent;
use crate::platform::{Family, Group};

/// The DB subnet group over the private subnets.
pub const DB_SUBNET_GROUP: Kind = Kind("db-subnet-group");
/// The cluster parameter group (family `aurora-mysql8.0`).
pub const DB_CLUSTER_PARAMETER_GROUP: Kind = Kind("db-cluster-parameter-group");
/// The Aurora cluster.
pub const DB_CLUSTER: Kind = Kind("db-cluster");
/// The writer and reader instances.
pub const DB_INSTANCE: Kind = Kind("db-instance");
/// The RDS-managed master user secret, whose observed id is its ARN.
pub const DATABASE_SECRET: Kind = Kind("database-secret");

/// Every database kind, in dependency order.
pub const KINDS: [Kind; 5] = [
    DB_SUBNET_GROUP,
    DB_CLUSTER_PARAMETER_GROUP,
    DB_CLUSTER,
    DB_INSTANCE,
    DATABASE_SECRET,
];

/// The tag recording the deletion policy on the cluster, read by its delete.
pub const DELETION_POLICY_TAG: &str = "plinth.dev/deletion-policy";
/// The tag put on everything a `Retain` teardown leaves in AWS.
pub const RETAINED_TAG: &str = "plinth.dev/retained";
/// The database created inside the cluster for the app (`DatabaseName`; the app's
/// `PLINTH_DB_NAME`).
pub const APP_DATABASE: &str = "plinth";

/// Component keys of the database.
pub mod keys {
    use crate::engine::Key;

    /// The DB subnet group.
    pub const DB_SUBNET_GROUP: &str = "db-subnet-group";
    /// The cluster parameter group.
    pub const DB_CLUSTER_PARAMETER_GROUP: &str = "db-cluster-parameter-group";
    /// The cluster; its observed id is the `DBClusterIdentifier`.
    pub const DB_CLUSTER: &str = "db-cluster";
    /// The writer instance.
    pub const DB_WRITER: &str = "db-instance/writer";
    /// The master user secret; its observed id is the secret's ARN.
    pub const DB_SECRET: &str = "db-secret";

    /// Reader instance `n`, counted from 1.
    pub fn db_reader(n: usize) -> Key {
        format!("db-instance/reader-{n}").into()
    }
}

/// The database's components, acting through `clients` (bound to one region).
pub fn components(clients: &AwsClients) -> Vec<Arc<dyn Component<Intent>>> {
    vec![
        Arc::new(subnet_group::DbSubnetGroup::new(clients.clone())),
        Arc::new(parameter_group::DbClusterParameterGroup::new(
            clients.clone(),
        )),
        Arc::new(cluster::DbCluster::new(clients.clone())),
        Arc::new(instance::DbInstances::new(clients.clone())),
        Arc::new(secret::DatabaseSecret::new(clients.clone())),
    ]
}

/// The database family: its components, the `DatabaseReady` condition (true only when the
/// cluster and every instance are available and match the spec; instances being created or
/// modified are observed as pending), its endpoints in the status, and kept by a `Retain`
/// teardown.
pub fn family(clients: &AwsClients) -> Family {
    let group = Group {
        condition: "DatabaseReady",
        kinds: &KINDS,
        outputs: write_status,
        retained,
    };
    Family {
        components: components(clients),
        group,
    }
}

/// `status.database` (endpoints, port, secret ARN) and `status.resources.dbClusterIdentifier`
/// from what a pass observed. No secret value is ever read, so none can be written.
pub fn write_status(observed: &Observed, status: &mut DataPlatformStatus) {
    let cluster = observed.primary(&Key::from(keys::DB_CLUSTER));
    let secret = observed.primary(&Key::from(keys::DB_SECRET));
    let text = |r: &ObservedResource, field: &str| {
        r.attrs
            .get(field)
            .and_then(AttrValue::as_str)
            .map(str::to_owned)
    };
    status.database = match (cluster, secret) {
        (None, None) => None,
        _ => Some(DatabaseStatus {
            endpoint: cluster.and_then(|c| text(c, cluster::ENDPOINT)),
            reader_endpoint: cluster.and_then(|c| text(c, cluster::READER_ENDPOINT)),
            port: cluster
                .and_then(|c| c.attrs.get(cluster::PORT))
                .and_then(AttrValue::as_int)
                .and_then(|p| i32::try_from(p).ok()),
            secret_arn: secret.map(|s| s.id.clone()),
        }),
    };
    let resources = status.resources.get_or_insert_with(Default::default);
    resources.db_cluster_identifier = cluster.map(|c| c.id.clone());
}

/// Whether a teardown under `spec` keeps the database and the network it lives in (its
/// subnets, security groups, the VPC and its routes): `deletionPolicy: Retain`. Everything
/// else of the platform goes.
pub fn retained(spec: &DataPlatformSpec) -> bool {
    spec.database.deletion_policy == DeletionPolicy::Retain
}

/// Tags every retained resource `plinth.dev/retained=true` (EC2 ids, RDS ARNs, the secret's
/// ARN), so whoever finds them later knows Plinth let them go on purpose. Returns how many were
/// tagged. Idempotent: tagging again changes nothing.
pub async fn mark_retained(
    clients: &AwsClients,
    retained: &[ObservedResource],
) -> Result<usize, ActError> {
    let mut count = 0;
    let ec2_ids: Vec<String> = retained
        .iter()
        .filter(|r| crate::network::KINDS.contains(&r.kind))
        .map(|r| r.id.clone())
        .collect();
    // CreateTags takes at most 1000 resources per call.
    for chunk in ec2_ids.chunks(500) {
        clients
            .ec2()
            .await
            .create_tags()
            .set_resources(Some(chunk.to_vec()))
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key(RETAINED_TAG)
                    .value("true")
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(&e))?;
        count += chunk.len();
    }
    for resource in retained {
        if resource.kind == DATABASE_SECRET {
            clients
                .secretsmanager()
                .await
                .tag_resource()
                .secret_id(&resource.id)
                .tags(
                    aws_sdk_secretsmanager::types::Tag::builder()
                        .key(RETAINED_TAG)
                        .value("true")
                        .build(),
                )
                .send()
                .await
                .map_err(|e| classify(&e))?;
            count += 1;
        } else if KINDS.contains(&resource.kind) {
            let Some(arn) = resource.attrs.get(ARN).and_then(AttrValue::as_str) else {
                continue;
            };
            clients
                .rds()
                .await
                .add_tags_to_resource()
                .resource_name(arn)
                .tags(Tag::builder().key(RETAINED_TAG).value("true").build())
                .send()
                .await
                .map_err(|e| classify(&e))?;
            count += 1;
        }
    }
    Ok(count)
}

/// Makes the cluster's `plinth.dev/deletion-policy` tag say what `spec` says, right before a
/// teardown pass: the cluster's delete reads the policy from the tag, and a policy changed
/// together with the delete (no apply pass in between) must still count. One describe; a tag
/// write only when the policy changed.
pub async fn sync_deletion_policy(
    clients: &AwsClients,
    scope: &Scope,
    spec: &DataPlatformSpec,
) -> Result<(), ActError> {
    use crate::engine::Driver as _;
    let wanted = cluster::policy_name(spec.database.deletion_policy);
    let found = cluster::DbCluster::new(clients.clone())
        .observe(scope, &crate::engine::Reads::new())
        .await?;
    for resource in found
        .iter()
        .filter(|c| c.lifecycle != crate::engine::Lifecycle::Deleting)
    {
        let current = resource
            .attrs
            .get(cluster::DELETION_POLICY)
            .and_then(AttrValue::as_str);
        let Some(arn) = resource.attrs.get(ARN).and_then(AttrValue::as_str) else {
            continue;
        };
        if current != Some(wanted) {
            tracing::info!(cluster = %resource.id, policy = wanted, "recording the deletion policy before teardown");
            clients
                .rds()
                .await
                .add_tags_to_resource()
                .resource_name(arn)
                .tags(
                    Tag::builder()
                        .key(DELETION_POLICY_TAG)
                        .value(wanted)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| classify(&e))?;
        }
    }
    Ok(())
}

/// Observed field of every RDS kind: the resource's ARN (for tagging; not managed).
pub const ARN: &str = "arn";

/// A deterministic RDS name for `key`: [`Scope::name_for`] without two hyphens in a row, which
/// RDS refuses in identifiers (a namespace such as `a--b` or a name with dots could make them).
pub fn rds_name(scope: &Scope, key: &Key, max_len: usize) -> String {
    let mut name = String::with_capacity(max_len);
    for c in scope.name_for(key, max_len).chars() {
        if !(c == '-' && name.ends_with('-')) {
            name.push(c);
        }
    }
    name
}

/// RDS tags from a tag map.
pub(crate) fn rds_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// An RDS resource's tags as a map.
pub(crate) fn rds_tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// The component key an RDS resource's tags name, when it is one of `scope`'s.
pub(crate) fn rds_component_key(tags: &[Tag], scope: &Scope) -> Option<Key> {
    let tags = rds_tag_map(tags);
    if tags.get(PLATFORM_TAG).map(String::as_str) != Some(scope.platform()) {
        return None;
    }
    tags.get(COMPONENT_TAG).map(|k| Key::from(k.as_str()))
}

/// A capacity in ACU as compared and printed: one decimal (`0.5`, `2.0`).
pub fn acu(value: f64) -> String {
    format!("{value:.1}")
}

#[cfg(test)]
mod tests;
