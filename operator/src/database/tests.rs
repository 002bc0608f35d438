//! Unit tests of the database's desired graph, names, retention and status: pure functions of
//! the spec and of observed values, no AWS.

use plinth_crds::{DataPlatform, DataPlatformSpec, DataPlatformStatus, DeletionPolicy};

use super::*;
use crate::engine::{
    AttrValue, DesiredGraph, Field, Lifecycle, Observed, ObservedResource, OnChange, Scope, plan,
};
use crate::intent::Intent;

fn spec(readers: i32, policy: DeletionPolicy) -> DataPlatformSpec {
    let text = include_str!("../../../examples/minimal.yaml");
    let platform: DataPlatform = match serde_norway::from_str(text) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let mut spec = platform.spec;
    spec.database.readers = readers;
    spec.database.deletion_policy = policy;
    spec
}

fn offline() -> AwsClients {
    let config = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("eu-west-1"))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    AwsClients::from_config(&config, &crate::aws::AwsOptions::default())
}

/// The network's and the database's desired graph together (the database refers to the
/// network's subnets and security group).
fn graph(spec: &DataPlatformSpec) -> DesiredGraph {
    let clients = offline();
    let mut all = crate::network::components(&clients);
    all.extend(components(&clients));
    let components = match crate::engine::Components::new(all) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    match components.desired(&Intent::steady(spec.clone())) {
        Ok(g) => g,
        Err(e) => panic!("{e}"),
    }
}

fn field<'a>(graph: &'a DesiredGraph, key: &str, name: &str) -> &'a Field {
    match graph
        .get(&Key::from(key))
        .and_then(|d| d.fields().get(name))
    {
        Some(f) => f,
        None => panic!("{key} has no field {name}"),
    }
}

#[test]
fn a_writer_and_each_reader_spread_over_the_zones_round_robin() {
    let graph = graph(&spec(2, DeletionPolicy::Snapshot));
    let zones: Vec<(String, AttrValue)> = graph
        .in_order()
        .filter(|d| d.kind() == DB_INSTANCE)
        .map(|d| {
            assert!(d.replace_forbidden(), "{} may be replaced", d.key());
            (
                d.key().to_string(),
                field(&graph, d.key().as_str(), instance::AVAILABILITY_ZONE)
                    .value
                    .clone(),
            )
        })
        .collect();
    assert_eq!(
        zones,
        [
            ("db-instance/reader-1".to_owned(), "eu-west-1b".into()),
            ("db-instance/reader-2".to_owned(), "eu-west-1a".into()),
            ("db-instance/writer".to_owned(), "eu-west-1a".into()),
        ]
    );
    let none = graph_of_readers(0);
    assert_eq!(none, ["db-instance/writer"]);
}

fn graph_of_readers(readers: i32) -> Vec<String> {
    graph(&spec(readers, DeletionPolicy::Snapshot))
        .in_order()
        .filter(|d| d.kind() == DB_INSTANCE)
        .map(|d| d.key().to_string())
        .collect()
}

#[test]
fn the_cluster_refers_to_its_groups_and_the_database_security_group() {
    let graph = graph(&spec(1, DeletionPolicy::Snapshot));
    let Some(cluster) = graph.get(&Key::from(keys::DB_CLUSTER)) else {
        panic!("no cluster");
    };
    assert!(cluster.replace_forbidden());
    let deps: Vec<&str> = cluster.dependencies().iter().map(Key::as_str).collect();
    assert_eq!(
        deps,
        [
            "db-cluster-parameter-group",
            "db-subnet-group",
            "security-group/database"
        ]
    );
    let subnets = &field(&graph, keys::DB_SUBNET_GROUP, subnet_group::SUBNET_IDS).value;
    assert_eq!(
        subnets,
        &AttrValue::set([
            AttrValue::reference("subnet/private/eu-west-1a"),
            AttrValue::reference("subnet/private/eu-west-1b"),
        ])
    );
    // The secret comes after the cluster it belongs to.
    let Some(secret) = graph.get(&Key::from(keys::DB_SECRET)) else {
        panic!("no secret");
    };
    assert!(secret.dependencies().contains(&Key::from(keys::DB_CLUSTER)));
    assert_eq!(
        field(&graph, keys::DB_SECRET, secret::ROTATION_DAYS).value,
        AttrValue::Int(30)
    );
}

#[test]
fn capacity_backups_and_rotation_change_in_place_and_encryption_never_does() {
    let graph = graph(&spec(1, DeletionPolicy::Snapshot));
    for name in [
        cluster::MIN_CAPACITY,
        cluster::MAX_CAPACITY,
        cluster::BACKUP_RETENTION_DAYS,
        cluster::BACKUP_WINDOW,
        cluster::DELETION_PROTECTION,
        cluster::ENGINE_VERSION,
    ] {
        assert_eq!(
            field(&graph, keys::DB_CLUSTER, name).on_change,
            OnChange::Update,
            "{name}"
        );
    }
    for name in [
        cluster::ENGINE,
        cluster::STORAGE_ENCRYPTED,
        cluster::SUBNET_GROUP,
        cluster::MASTER_USERNAME,
    ] {
        assert_eq!(
            field(&graph, keys::DB_CLUSTER, name).on_change,
            OnChange::Replace,
            "{name}"
        );
    }
    assert_eq!(
        field(&graph, keys::DB_CLUSTER, cluster::MIN_CAPACITY).value,
        AttrValue::from("0.5")
    );
    assert_eq!(
        field(&graph, keys::DB_CLUSTER, cluster::MAX_CAPACITY).value,
        AttrValue::from("2.0")
    );
    assert_eq!(
        field(&graph, keys::DB_SECRET, secret::ROTATION_DAYS).on_change,
        OnChange::Update
    );
}

#[test]
fn deletion_protection_is_on_unless_the_policy_is_delete() {
    for (policy, protected, name) in [
        (DeletionPolicy::Snapshot, true, "Snapshot"),
        (DeletionPolicy::Retain, true, "Retain"),
        (DeletionPolicy::Delete, false, "Delete"),
    ] {
        let graph = graph(&spec(0, policy));
        assert_eq!(
            field(&graph, keys::DB_CLUSTER, cluster::DELETION_PROTECTION).value,
            AttrValue::Bool(protected)
        );
        assert_eq!(
            field(&graph, keys::DB_CLUSTER, cluster::DELETION_POLICY).value,
            AttrValue::from(name)
        );
    }
}

/// The cluster as AWS would report it for `spec`, with the given ids for its references.
fn observed_cluster(spec: &DataPlatformSpec) -> ObservedResource {
    let graph = graph(spec);
    let Some(desired) = graph.get(&Key::from(keys::DB_CLUSTER)) else {
        panic!("no cluster");
    };
    let mut resource = ObservedResource::new(DB_CLUSTER, keys::DB_CLUSTER, "cluster-1");
    for (name, field) in desired.fields() {
        let value = field
            .value
            .resolve(&|key| Some(format!("id-of-{key}")))
            .unwrap_or_else(|| panic!("{name} does not resolve"));
        resource.attrs.insert(name.clone(), value);
    }
    resource
}

fn database_only(spec: &DataPlatformSpec, observed: Vec<ObservedResource>) -> crate::engine::Plan {
    let graph = graph(spec);
    let only_cluster = DesiredGraph::new(graph.in_order().filter(|d| d.kind() == DB_CLUSTER).map(
        |d| {
            // Stand-alone: references resolve to the fake ids of `observed_cluster`.
            let mut copy = crate::engine::DesiredResource::new(DB_CLUSTER, keys::DB_CLUSTER);
            for (name, field) in d.fields() {
                let mut field = field.clone();
                field.value = field
                    .value
                    .resolve(&|key| Some(format!("id-of-{key}")))
                    .unwrap_or_else(|| panic!("{name}"));
                copy = copy.field(name.clone(), field);
            }
            copy.forbid_replace()
        },
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    plan(&only_cluster, &Observed::new(observed))
}

#[test]
fn an_acu_change_updates_the_cluster_in_place() {
    let before = spec(1, DeletionPolicy::Snapshot);
    let mut after = before.clone();
    after.database.max_capacity = 4.0;
    let plan = database_only(&after, vec![observed_cluster(&before)]);
    assert!(plan.stalls.is_empty(), "{plan:?}");
    assert_eq!(plan.actions.len(), 1, "{plan:?}");
    match &plan.actions[0].op {
        crate::engine::Op::Update { changes, .. } => {
            let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
            assert_eq!(fields, [cluster::MAX_CAPACITY]);
        }
        other => panic!("expected an update, got {other:?}"),
    }
}

#[test]
fn a_change_aws_cannot_make_in_place_stalls_instead_of_replacing_the_database() {
    let spec = spec(1, DeletionPolicy::Snapshot);
    let mut found = observed_cluster(&spec);
    found
        .attrs
        .insert(cluster::STORAGE_ENCRYPTED.into(), AttrValue::Bool(false));
    found
        .attrs
        .insert(cluster::BACKUP_RETENTION_DAYS.into(), AttrValue::Int(1));
    let plan = database_only(&spec, vec![found]);
    assert_eq!(plan.stalls.len(), 1, "{plan:?}");
    assert!(
        plan.stalls[0].message.contains(cluster::STORAGE_ENCRYPTED),
        "{}",
        plan.stalls[0].message
    );
    // No delete, no create: only the in-place part (backups) is applied.
    assert_eq!(plan.actions.len(), 1, "{plan:?}");
    assert!(matches!(
        plan.actions[0].op,
        crate::engine::Op::Update { .. }
    ));

    let mut failed = observed_cluster(&spec);
    failed.lifecycle = Lifecycle::Failed {
        reason: "the cluster's status is failed".into(),
    };
    let plan = database_only(&spec, vec![failed]);
    assert!(plan.actions.is_empty(), "{plan:?}");
    assert_eq!(plan.stalls.len(), 1);
}

#[test]
fn retain_keeps_the_database_and_its_network_and_nothing_else() {
    let Ok(platform) = crate::components::platform(&offline()) else {
        panic!("every family registers distinct kinds");
    };
    let resource = |kind| ObservedResource::new(kind, "k", "id");
    let retain = spec(1, DeletionPolicy::Retain);
    for kind in crate::components::KINDS {
        let kept = KINDS.contains(&kind) || crate::network::KINDS.contains(&kind);
        assert_eq!(platform.retains(&retain, &resource(kind)), kept, "{kind}");
    }
    for policy in [DeletionPolicy::Snapshot, DeletionPolicy::Delete] {
        let spec = spec(1, policy);
        for kind in crate::components::KINDS {
            assert!(!platform.retains(&spec, &resource(kind)), "{kind}");
        }
    }
}

#[test]
fn rds_names_are_valid_identifiers_and_stable() {
    let scope = Scope::new("team--a", "ingest.prod", []);
    let name = rds_name(&scope, &Key::from(keys::DB_CLUSTER), 63);
    assert!(name.len() <= 63, "{name}");
    assert!(!name.contains("--"), "{name}");
    assert!(name.starts_with("plinth-"), "{name}");
    assert!(!name.ends_with('-'), "{name}");
    assert!(
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    );
    assert_eq!(name, rds_name(&scope, &Key::from(keys::DB_CLUSTER), 63));
    assert_ne!(name, rds_name(&scope, &Key::from(keys::DB_WRITER), 63));

    let snapshot = cluster::final_snapshot_name(&name, "cluster-ABC");
    assert_eq!(snapshot, cluster::final_snapshot_name(&name, "cluster-ABC"));
    assert_ne!(snapshot, cluster::final_snapshot_name(&name, "cluster-DEF"));
    assert!(snapshot.starts_with(&format!("{name}-final-")));
}

#[test]
fn statuses_map_to_lifecycles_and_unknown_ones_wait() {
    assert_eq!(cluster::lifecycle("available"), Lifecycle::Available);
    assert_eq!(cluster::lifecycle("creating"), Lifecycle::Pending);
    assert_eq!(cluster::lifecycle("modifying"), Lifecycle::Pending);
    assert_eq!(cluster::lifecycle("deleting"), Lifecycle::Deleting);
    assert!(matches!(
        cluster::lifecycle("failed"),
        Lifecycle::Failed { .. }
    ));
    assert_eq!(cluster::lifecycle("something-new"), Lifecycle::Pending);
    assert_eq!(
        instance::lifecycle("configuring-enhanced-monitoring"),
        Lifecycle::Pending
    );
    assert_eq!(instance::lifecycle("available"), Lifecycle::Available);
    assert_eq!(
        secret::cluster_id_of("arn:aws:rds:eu-west-1:123456789012:cluster:plinth-x-1"),
        Some("plinth-x-1")
    );
}

#[test]
fn status_carries_endpoints_port_and_the_secret_arn_only() {
    let observed = Observed::new([
        ObservedResource::new(DB_CLUSTER, keys::DB_CLUSTER, "plinth-db")
            .attr(cluster::ENDPOINT, "w.example")
            .attr(cluster::READER_ENDPOINT, "r.example")
            .attr(cluster::PORT, 3306),
        ObservedResource::new(DATABASE_SECRET, keys::DB_SECRET, "arn:secret"),
    ]);
    let mut status = DataPlatformStatus::default();
    write_status(&observed, &mut status);
    let db = status.database.clone().unwrap_or_default();
    assert_eq!(db.endpoint.as_deref(), Some("w.example"));
    assert_eq!(db.reader_endpoint.as_deref(), Some("r.example"));
    assert_eq!(db.port, Some(3306));
    assert_eq!(db.secret_arn.as_deref(), Some("arn:secret"));
    assert_eq!(
        status
            .resources
            .as_ref()
            .and_then(|r| r.db_cluster_identifier.as_deref()),
        Some("plinth-db")
    );
    write_status(&Observed::empty(), &mut status);
    assert_eq!(status.database, None);
}
