//! End-to-end tests of the database components (Aurora Serverless v2 cluster, instances, groups,
//! the RDS-managed secret) against the local AWS emulator (moto behind the strict layer, which
//! holds clusters and instances `creating` for a few seconds): what AWS reads back after apply,
//! `DatabaseReady` only once every instance is available, in-place changes, each deletion
//! policy, no duplicate cluster after a pass killed mid-create, and no password anywhere a real
//! controller writes (status, events, its log).
//!
//! The CLI-driven tests run the network and database families only (their own [`Platform`]),
//! so they do not depend on the other families; the controller test runs the shipped operator
//! binary with every family. Each test has its own platform (`<unique namespace>/<name>`).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use kube::api::{DeleteParams, PostParams};
use plinth_crds::{DataPlatform, DataPlatformStatus};
use plinth_e2e::cluster::{TestNamespace, condition, eventually, install_crd};
use plinth_e2e::emulator::PrivateEmulator;
use plinth_e2e::{aws_config, kube_client, stack_var, unique_name};
use plinth_operator::aws::{AwsClients, AwsOptions};
use plinth_operator::cli::{self, Pace, SpecFile};
use plinth_operator::database::{self, cluster, keys};
use plinth_operator::engine::{COMPONENT_TAG, ExecuteOptions, PLATFORM_TAG};
use plinth_operator::network;
use plinth_operator::platform::Platform;

/// The database part of a spec.
#[derive(Clone, Copy, Debug)]
struct Db {
    min: f64,
    max: f64,
    readers: i32,
    retention: i32,
    policy: &'static str,
    rotation: i32,
}

const DEFAULT_DB: Db = Db {
    min: 0.5,
    max: 2.0,
    readers: 1,
    retention: 7,
    policy: "Snapshot",
    rotation: 30,
};

fn manifest(namespace: &str, name: &str, db: &Db) -> String {
    format!(
        r#"apiVersion: plinth.dev/v1alpha1
kind: DataPlatform
metadata:
  name: {name}
  namespace: {namespace}
spec:
  region: eu-west-1
  network:
    cidr: 10.43.0.0/16
    availabilityZones: [eu-west-1a, eu-west-1b]
    natGateways: None
  compute:
    instanceType: t3.small
    imageId: ami-0123456789abcdef0
    minSize: 1
    maxSize: 2
  database:
    minCapacity: {min}
    maxCapacity: {max}
    readers: {readers}
    backupRetentionDays: {retention}
    deletionPolicy: {policy}
  credentials:
    rotationDays: {rotation}
  app:
    version: 1.0.0
    artifact: s3://plinth-artifacts/plinth-ingest/1.0.0/plinth-ingest
    port: 8080
"#,
        min = db.min,
        max = db.max,
        readers = db.readers,
        retention = db.retention,
        policy = db.policy,
        rotation = db.rotation,
    )
}

/// The network and database families only, with the database's status outputs.
fn db_platform(clients: &AwsClients) -> Platform {
    let families = [network::family(clients), database::family(clients)];
    Platform::new(families, ExecuteOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .with_clients(clients.clone())
}

struct Harness {
    namespace: String,
    file: SpecFile,
    clients: AwsClients,
    platform: Platform,
    /// Reads AWS back, uncounted by the platform's clients.
    reader: Reader,
}

const PACE: Pace = Pace {
    timeout: Duration::from_secs(120),
    interval: Duration::from_millis(300),
    visibility_window: plinth_e2e::CONSISTENT_VISIBILITY,
};

impl Harness {
    async fn new(db: &Db) -> Self {
        let config = aws_config().await.unwrap_or_else(|e| panic!("{e}"));
        Self::with_config(&config, db)
    }

    /// A harness against the emulator `config` points at.
    fn with_config(config: &aws_config::SdkConfig, db: &Db) -> Self {
        let config = config.clone();
        let namespace = unique_name("db");
        let clients = AwsClients::from_config(&config, &AwsOptions::default());
        Self {
            file: spec_file(&namespace, db),
            platform: db_platform(&clients),
            clients,
            reader: Reader::new(&config),
            namespace,
        }
    }

    fn set(&mut self, db: &Db) {
        self.file = spec_file(&self.namespace, db);
    }

    fn name(&self) -> &str {
        self.file.scope.platform()
    }

    async fn converge(&self) -> cli::Finished {
        let name = self.name().to_owned();
        cli::converge(&self.platform, &self.file, PACE, &mut |line| {
            eprintln!("[{name}] {line}")
        })
        .await
        .unwrap_or_else(|e| panic!("{name}: apply did not converge: {e}"))
    }

    async fn destroy(&self) {
        let name = self.name().to_owned();
        cli::destroy(&self.platform, &self.file, PACE, &mut |line| {
            eprintln!("[{name}] {line}")
        })
        .await
        .unwrap_or_else(|e| panic!("{name}: destroy did not finish: {e}"));
    }
}

fn spec_file(namespace: &str, db: &Db) -> SpecFile {
    cli::parse_spec(&manifest(namespace, "ingest", db), Path::new("test.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

// --- Reading AWS back ------------------------------------------------------------------------

/// Plain SDK clients for reading AWS back: not the operator's [`AwsClients`], so the test's own
/// reads are neither counted with the platform's calls nor recorded as the operator's (the IAM
/// policy check reads that record).
#[derive(Clone)]
struct Reader {
    rds: aws_sdk_rds::Client,
    secrets: aws_sdk_secretsmanager::Client,
    ec2: aws_sdk_ec2::Client,
}

impl Reader {
    fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            rds: aws_sdk_rds::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
        }
    }

    async fn rds(&self) -> &aws_sdk_rds::Client {
        &self.rds
    }

    async fn secretsmanager(&self) -> &aws_sdk_secretsmanager::Client {
        &self.secrets
    }

    async fn ec2(&self) -> &aws_sdk_ec2::Client {
        &self.ec2
    }
}

/// A cluster as read back from RDS.
#[derive(Clone, Debug)]
struct ClusterView {
    id: String,
    arn: String,
    status: String,
    min: Option<f64>,
    max: Option<f64>,
    encrypted: Option<bool>,
    retention: Option<i32>,
    subnet_group: String,
    parameter_group: String,
    security_groups: Vec<String>,
    deletion_protection: Option<bool>,
    copy_tags: Option<bool>,
    secret_arn: Option<String>,
    resource_id: String,
    endpoint: Option<String>,
    reader_endpoint: Option<String>,
    port: Option<i32>,
    tags: BTreeMap<String, String>,
}

async fn clusters(reader: &Reader, platform: &str) -> Vec<ClusterView> {
    let output = reader
        .rds()
        .await
        .describe_db_clusters()
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    output
        .db_clusters()
        .iter()
        .filter_map(|c| {
            let tags: BTreeMap<String, String> = c
                .tag_list()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                .collect();
            (tags.get(PLATFORM_TAG).map(String::as_str) == Some(platform)).then(|| ClusterView {
                id: c.db_cluster_identifier().unwrap_or_default().to_owned(),
                arn: c.db_cluster_arn().unwrap_or_default().to_owned(),
                status: c.status().unwrap_or_default().to_owned(),
                min: c
                    .serverless_v2_scaling_configuration()
                    .and_then(|s| s.min_capacity()),
                max: c
                    .serverless_v2_scaling_configuration()
                    .and_then(|s| s.max_capacity()),
                encrypted: c.storage_encrypted(),
                retention: c.backup_retention_period(),
                subnet_group: c.db_subnet_group().unwrap_or_default().to_owned(),
                parameter_group: c
                    .db_cluster_parameter_group()
                    .unwrap_or_default()
                    .to_owned(),
                security_groups: c
                    .vpc_security_groups()
                    .iter()
                    .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
                    .collect(),
                deletion_protection: c.deletion_protection(),
                copy_tags: c.copy_tags_to_snapshot(),
                secret_arn: c
                    .master_user_secret()
                    .and_then(|s| s.secret_arn())
                    .map(str::to_owned),
                resource_id: c.db_cluster_resource_id().unwrap_or_default().to_owned(),
                endpoint: c.endpoint().map(str::to_owned),
                reader_endpoint: c.reader_endpoint().map(str::to_owned),
                port: c.port(),
                tags,
            })
        })
        .collect()
}

fn one_cluster(found: Vec<ClusterView>) -> ClusterView {
    assert_eq!(found.len(), 1, "{found:?}");
    found
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no cluster"))
}

/// `(component, identifier, status, zone)` of every instance tagged for `platform`.
async fn instances(reader: &Reader, platform: &str) -> Vec<(String, String, String, String)> {
    let output = reader
        .rds()
        .await
        .describe_db_instances()
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let mut found: Vec<(String, String, String, String)> = output
        .db_instances()
        .iter()
        .filter(|i| {
            i.tag_list()
                .iter()
                .any(|t| t.key() == Some(PLATFORM_TAG) && t.value() == Some(platform))
        })
        .map(|i| {
            let component = i
                .tag_list()
                .iter()
                .find(|t| t.key() == Some(COMPONENT_TAG))
                .and_then(|t| t.value())
                .unwrap_or("?")
                .to_owned();
            (
                component,
                i.db_instance_identifier().unwrap_or_default().to_owned(),
                i.db_instance_status().unwrap_or_default().to_owned(),
                i.availability_zone().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

/// The EC2 id of `component` tagged for `platform` among `ids_with_tags`.
fn ec2_ids(
    items: impl Iterator<Item = (Option<String>, Vec<aws_sdk_ec2::types::Tag>)>,
) -> BTreeMap<String, String> {
    items
        .filter_map(|(id, tags)| {
            let component = tags
                .iter()
                .find(|t| t.key() == Some(COMPONENT_TAG))
                .and_then(|t| t.value())?
                .to_owned();
            Some((component, id?))
        })
        .collect()
}

fn platform_filter(platform: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{PLATFORM_TAG}"))
        .values(platform)
        .build()
}

/// Every network resource tagged for `platform`, component → id (VPC, subnets, internet
/// gateway, route tables, security groups; this spec has no NAT gateway).
async fn network_ids(reader: &Reader, platform: &str) -> BTreeMap<String, String> {
    let ec2 = reader.ec2().await;
    let mut out = BTreeMap::new();
    let vpcs = ec2
        .describe_vpcs()
        .filters(platform_filter(platform))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    out.extend(ec2_ids(
        vpcs.vpcs()
            .iter()
            .map(|v| (v.vpc_id().map(str::to_owned), v.tags().to_vec())),
    ));
    let subnets = ec2
        .describe_subnets()
        .filters(platform_filter(platform))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    out.extend(ec2_ids(
        subnets
            .subnets()
            .iter()
            .map(|v| (v.subnet_id().map(str::to_owned), v.tags().to_vec())),
    ));
    let igws = ec2
        .describe_internet_gateways()
        .filters(platform_filter(platform))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    out.extend(ec2_ids(igws.internet_gateways().iter().map(|v| {
        (
            v.internet_gateway_id().map(str::to_owned),
            v.tags().to_vec(),
        )
    })));
    let tables = ec2
        .describe_route_tables()
        .filters(platform_filter(platform))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    out.extend(ec2_ids(tables.route_tables().iter().map(|v| {
        (v.route_table_id().map(str::to_owned), v.tags().to_vec())
    })));
    let groups = ec2
        .describe_security_groups()
        .filters(platform_filter(platform))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    out.extend(ec2_ids(
        groups
            .security_groups()
            .iter()
            .map(|v| (v.group_id().map(str::to_owned), v.tags().to_vec())),
    ));
    out
}

/// Whether the RDS resource `arn` carries the platform's tag (and which tags it has).
async fn rds_tags(reader: &Reader, arn: &str) -> BTreeMap<String, String> {
    reader
        .rds()
        .await
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"))
        .tag_list()
        .iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
        .collect()
}

/// Every database resource of every kind tagged for `platform`: kind → names/ids. Subnet
/// groups, parameter groups and snapshots are listed for the whole account and their tags read
/// one by one (RDS describes them without tags).
async fn tagged_database(reader: &Reader, platform: &str) -> BTreeMap<&'static str, Vec<String>> {
    let mut out: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    out.insert(
        "db-cluster",
        clusters(reader, platform)
            .await
            .into_iter()
            .map(|c| c.id)
            .collect(),
    );
    out.insert(
        "db-instance",
        instances(reader, platform)
            .await
            .into_iter()
            .map(|i| i.1)
            .collect(),
    );
    let ours = |tags: &BTreeMap<String, String>| {
        tags.get(PLATFORM_TAG).map(String::as_str) == Some(platform)
    };
    let groups = reader
        .rds()
        .await
        .describe_db_subnet_groups()
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let mut names = Vec::new();
    for group in groups.db_subnet_groups() {
        if let (Some(name), Some(arn)) = (group.db_subnet_group_name(), group.db_subnet_group_arn())
            && name.starts_with("plinth-")
            && ours(&rds_tags(reader, arn).await)
        {
            names.push(name.to_owned());
        }
    }
    out.insert("db-subnet-group", names);
    let groups = reader
        .rds()
        .await
        .describe_db_cluster_parameter_groups()
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let mut names = Vec::new();
    for group in groups.db_cluster_parameter_groups() {
        if let (Some(name), Some(arn)) = (
            group.db_cluster_parameter_group_name(),
            group.db_cluster_parameter_group_arn(),
        ) && name.starts_with("plinth-")
            && ours(&rds_tags(reader, arn).await)
        {
            names.push(name.to_owned());
        }
    }
    out.insert("db-cluster-parameter-group", names);
    let snapshots = reader
        .rds()
        .await
        .describe_db_cluster_snapshots()
        .snapshot_type("manual")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let mut names = Vec::new();
    for snapshot in snapshots.db_cluster_snapshots() {
        if let (Some(name), Some(arn)) = (
            snapshot.db_cluster_snapshot_identifier(),
            snapshot.db_cluster_snapshot_arn(),
        ) && ours(&rds_tags(reader, arn).await)
        {
            names.push(name.to_owned());
        }
    }
    out.insert("manual-snapshot", names);
    out.insert("secret", secrets(reader, platform).await);
    out
}

/// ARNs of the secrets tagged for `platform` (not scheduled for deletion).
async fn secrets(reader: &Reader, platform: &str) -> Vec<String> {
    let output = reader
        .secretsmanager()
        .await
        .list_secrets()
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    output
        .secret_list()
        .iter()
        .filter(|s| s.deleted_date().is_none())
        .filter(|s| {
            s.tags()
                .iter()
                .any(|t| t.key() == Some(PLATFORM_TAG) && t.value() == Some(platform))
        })
        .filter_map(|s| s.arn().map(str::to_owned))
        .collect()
}

/// `(rotation enabled, days)` of a secret.
async fn rotation(reader: &Reader, arn: &str) -> (Option<bool>, Option<i64>) {
    let out = reader
        .secretsmanager()
        .await
        .describe_secret()
        .secret_id(arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    (
        out.rotation_enabled(),
        out.rotation_rules()
            .and_then(|r| r.automatically_after_days()),
    )
}

// --- Tests -----------------------------------------------------------------------------------

/// Apply: `DatabaseReady` turns true only in a pass that finds the cluster and every instance
/// available (never while one is still `creating`), and AWS reads back what the spec says —
/// capacity range, encryption, backups, the private subnets, the database security group, the
/// parameters, the RDS-managed secret and its rotation. Then in-place changes: the capacity
/// range (same cluster ARN), readers 1 → 2 → 0, backups and the rotation period. Teardown with
/// the default `Snapshot` policy leaves exactly the final snapshot of its deterministic name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_reads_back_changes_in_place_and_snapshot_teardown() {
    let mut h = Harness::new(&DEFAULT_DB).await;
    let (scope, intent) = (h.file.scope.clone(), h.file.intent());

    // Pass by pass, judging DatabaseReady against what AWS says right after each pass.
    let mut saw_creating_instance = false;
    let mut passes = 0;
    let outcome = loop {
        passes += 1;
        assert!(passes < 200, "DatabaseReady never became true");
        let outcome = h
            .platform
            .apply(&scope, &intent, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !outcome.pass.report.is_stalled(),
            "{:?}",
            outcome.pass.report
        );
        let ready = outcome
            .verdicts
            .iter()
            .find(|v| v.type_ == "DatabaseReady")
            .unwrap_or_else(|| panic!("no DatabaseReady verdict: {:?}", outcome.verdicts));
        let found = instances(&h.reader, h.name()).await;
        if ready.status {
            assert_eq!(found.len(), 2, "{found:?}");
            assert!(
                found.iter().all(|i| i.2 == "available"),
                "DatabaseReady while an instance is not available: {found:?}"
            );
            let cluster = one_cluster(clusters(&h.reader, h.name()).await);
            assert_eq!(cluster.status, "available");
            break outcome;
        }
        if found.iter().any(|i| i.2 == "creating") {
            saw_creating_instance = true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        saw_creating_instance,
        "a pass saw an instance creating and said DatabaseReady false"
    );

    // What AWS has.
    let cluster = one_cluster(clusters(&h.reader, h.name()).await);
    assert_eq!((cluster.min, cluster.max), (Some(0.5), Some(2.0)));
    assert_eq!(cluster.encrypted, Some(true));
    assert_eq!(cluster.retention, Some(7));
    assert_eq!(cluster.deletion_protection, Some(true));
    assert_eq!(cluster.copy_tags, Some(true));
    assert_eq!(
        cluster
            .tags
            .get(database::DELETION_POLICY_TAG)
            .map(String::as_str),
        Some("Snapshot")
    );
    let net = network_ids(&h.reader, h.name()).await;
    assert_eq!(
        cluster.security_groups,
        [net["security-group/database"].clone()]
    );
    let groups = h
        .reader
        .rds()
        .await
        .describe_db_subnet_groups()
        .db_subnet_group_name(&cluster.subnet_group)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let mut subnets: Vec<String> = groups.db_subnet_groups()[0]
        .subnets()
        .iter()
        .filter_map(|s| s.subnet_identifier().map(str::to_owned))
        .collect();
    subnets.sort();
    let mut private = vec![
        net["subnet/private/eu-west-1a"].clone(),
        net["subnet/private/eu-west-1b"].clone(),
    ];
    private.sort();
    assert_eq!(subnets, private);
    let parameters = h
        .reader
        .rds()
        .await
        .describe_db_cluster_parameters()
        .db_cluster_parameter_group_name(&cluster.parameter_group)
        .source("user")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let parameters: BTreeMap<String, String> = parameters
        .parameters()
        .iter()
        .filter_map(|p| {
            Some((
                p.parameter_name()?.to_owned(),
                p.parameter_value()?.to_owned(),
            ))
        })
        .collect();
    assert_eq!(parameters["character_set_server"], "utf8mb4");
    assert_eq!(parameters["require_secure_transport"], "ON");
    assert_eq!(parameters["slow_query_log"], "1");
    let zones: Vec<(String, String)> = instances(&h.reader, h.name())
        .await
        .into_iter()
        .map(|i| (i.0, i.3))
        .collect();
    assert_eq!(
        zones,
        [
            ("db-instance/reader-1".to_owned(), "eu-west-1b".to_owned()),
            ("db-instance/writer".to_owned(), "eu-west-1a".to_owned()),
        ]
    );
    let secret_arn = cluster
        .secret_arn
        .clone()
        .unwrap_or_else(|| panic!("RDS manages no master user secret: {cluster:?}"));
    assert_eq!(
        rotation(&h.reader, &secret_arn).await,
        (Some(true), Some(30))
    );
    assert_eq!(
        secrets(&h.reader, h.name()).await,
        std::slice::from_ref(&secret_arn)
    );

    // The status outputs, from a pass that observes everything.
    let outcome = if outcome
        .pass
        .observed
        .primary(&keys::DB_SECRET.into())
        .is_some()
    {
        outcome
    } else {
        h.platform
            .apply(&scope, &intent, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let mut status = DataPlatformStatus::default();
    h.platform
        .write_outputs(&outcome.pass.observed, &mut status);
    let db = status.database.clone().unwrap_or_default();
    assert_eq!(db.endpoint, cluster.endpoint);
    assert_eq!(db.reader_endpoint, cluster.reader_endpoint);
    assert_eq!(db.port, Some(3306));
    assert_eq!(db.port, cluster.port);
    assert_eq!(db.secret_arn.as_deref(), Some(secret_arn.as_str()));
    assert_eq!(
        status
            .resources
            .as_ref()
            .and_then(|r| r.db_cluster_identifier.clone()),
        Some(cluster.id.clone())
    );

    // A steady pass changes nothing.
    let steady = h.converge().await;
    assert_eq!(steady.changes, 0, "{steady:?}");

    // ACU range: modified in place.
    let wider = Db {
        min: 1.0,
        max: 4.0,
        ..DEFAULT_DB
    };
    h.set(&wider);
    let finished = h.converge().await;
    assert_eq!(
        finished.changes, 1,
        "one update of the cluster: {finished:?}"
    );
    let after = one_cluster(clusters(&h.reader, h.name()).await);
    assert_eq!(after.arn, cluster.arn, "the same cluster");
    assert_eq!((after.min, after.max), (Some(1.0), Some(4.0)));

    // Readers 1 → 2 → 0.
    let two = Db {
        readers: 2,
        ..wider
    };
    h.set(&two);
    h.converge().await;
    let found = instances(&h.reader, h.name()).await;
    let components: Vec<(&str, &str, &str)> = found
        .iter()
        .map(|i| (i.0.as_str(), i.2.as_str(), i.3.as_str()))
        .collect();
    assert_eq!(
        components,
        [
            ("db-instance/reader-1", "available", "eu-west-1b"),
            ("db-instance/reader-2", "available", "eu-west-1a"),
            ("db-instance/writer", "available", "eu-west-1a"),
        ]
    );
    let none = Db { readers: 0, ..two };
    h.set(&none);
    h.converge().await;
    let found = instances(&h.reader, h.name()).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "db-instance/writer");
    let after = one_cluster(clusters(&h.reader, h.name()).await);
    assert_eq!(after.arn, cluster.arn, "the same cluster");

    // Backups and the rotation period, in place.
    let backups = Db {
        retention: 3,
        rotation: 7,
        ..none
    };
    h.set(&backups);
    let finished = h.converge().await;
    assert_eq!(
        finished.changes, 2,
        "cluster and secret updated: {finished:?}"
    );
    let after = one_cluster(clusters(&h.reader, h.name()).await);
    assert_eq!(after.arn, cluster.arn);
    assert_eq!(after.retention, Some(3));
    assert_eq!(
        rotation(&h.reader, &secret_arn).await,
        (Some(true), Some(7))
    );

    // Snapshot teardown: everything goes, and the final snapshot stays under its name.
    h.destroy().await;
    let left = tagged_database(&h.reader, h.name()).await;
    let snapshot = cluster::final_snapshot_name(&cluster.id, &cluster.resource_id);
    assert_eq!(
        left["manual-snapshot"],
        std::slice::from_ref(&snapshot),
        "{left:?}"
    );
    for (kind, ids) in &left {
        if *kind != "manual-snapshot" {
            assert!(ids.is_empty(), "{kind} remains: {ids:?}");
        }
    }
    assert!(network_ids(&h.reader, h.name()).await.is_empty());
    h.reader
        .rds()
        .await
        .delete_db_cluster_snapshot()
        .db_cluster_snapshot_identifier(&snapshot)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
}

/// `deletionPolicy: Delete`: no deletion protection, and a teardown that leaves nothing tagged
/// for the platform in any kind (cluster, instances, groups, secret, snapshots, network).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_policy_leaves_nothing_tagged() {
    let h = Harness::new(&Db {
        policy: "Delete",
        readers: 0,
        ..DEFAULT_DB
    })
    .await;
    h.converge().await;
    let cluster = one_cluster(clusters(&h.reader, h.name()).await);
    assert_eq!(cluster.deletion_protection, Some(false));
    assert!(!tagged_database(&h.reader, h.name()).await["secret"].is_empty());

    h.destroy().await;
    let left = tagged_database(&h.reader, h.name()).await;
    assert!(left.values().all(Vec::is_empty), "{left:?}");
    let net = network_ids(&h.reader, h.name()).await;
    assert!(net.is_empty(), "{net:?}");
}

/// A pass aborted right after `CreateDBCluster` landed, before anything was recorded: a new
/// process with no memory finds the cluster by its tags (and name) and makes no second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_killed_right_after_the_cluster_create_leaves_one_cluster() {
    let h = Harness::new(&Db {
        policy: "Delete",
        readers: 0,
        ..DEFAULT_DB
    })
    .await;
    let platform = db_platform(&h.clients);
    let file = h.file.clone();
    let passes = tokio::spawn(async move {
        loop {
            let _ = platform.apply(&file.scope, &file.intent(), None).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while clusters(&h.reader, h.name()).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cluster never appeared"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    passes.abort();
    let _ = passes.await;

    let config = aws_config().await.unwrap_or_else(|e| panic!("{e}"));
    let clients = AwsClients::from_config(&config, &AwsOptions::default());
    let restarted = Harness {
        namespace: h.namespace.clone(),
        file: h.file.clone(),
        platform: db_platform(&clients),
        clients,
        reader: h.reader.clone(),
    };
    restarted.converge().await;
    let found = clusters(&h.reader, h.name()).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(instances(&h.reader, h.name()).await.len(), 1);
    restarted.destroy().await;
    assert!(
        tagged_database(&h.reader, h.name())
            .await
            .values()
            .all(Vec::is_empty)
    );
}

/// The shipped operator binary as a process, its log (stdout and stderr, debug level) captured
/// in a file.
struct LoggedOperator {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl LoggedOperator {
    fn spawn(namespace: &str) -> Self {
        let binary = env!("CARGO_BIN_EXE_plinth-operator-e2e");
        let log = std::env::temp_dir().join(format!("{}.log", unique_name("plinth-operator")));
        let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
        let err = file.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let mut command = std::process::Command::new(binary);
        for var in [
            "KUBECONFIG",
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            command.env(var, stack_var(var).unwrap_or_else(|e| panic!("{e}")));
        }
        let child = command
            .env("POD_NAME", "db-secret-0")
            .env("POD_NAMESPACE", namespace)
            .env("PLINTH_WATCH_NAMESPACE", namespace)
            .env("PLINTH_LEASE_SECONDS", "6")
            .env("PLINTH_METRICS_ADDR", "127.0.0.1:0")
            .env("PLINTH_LOG_FORMAT", "json")
            // Everything the operator itself logs, at its most verbose; the HTTP stacks' own
            // chatter stays out.
            .env(
                "RUST_LOG",
                "debug,hyper=info,hyper_util=info,h2=info,rustls=info,tower=info",
            )
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        Self { child, log }
    }

    fn log(&self) -> String {
        let mut text = String::new();
        std::fs::File::open(&self.log)
            .and_then(|mut f| f.read_to_string(&mut text))
            .unwrap_or_else(|e| panic!("{}: {e}", self.log.display()));
        text
    }
}

impl Drop for LoggedOperator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real controller on a platform with a database: the password RDS generated (read here from
/// Secrets Manager) appears nowhere the operator writes — status, events, its own log at debug
/// level — while the secret's ARN and the cluster do (so the searches look in the right place).
/// Then `deletionPolicy: Retain`: deleting the object releases the finalizer with the database
/// and its network still in AWS, tagged `plinth.dev/retained=true`, and an event saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_controller_never_shows_the_password_and_retain_keeps_the_database() {
    let client = kube_client().await.unwrap_or_else(|e| panic!("{e}"));
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, "db-secret").await;
    let db = Db {
        readers: 0,
        policy: "Retain",
        ..DEFAULT_DB
    };
    let dp: DataPlatform = serde_norway::from_str(&manifest(&ns.name, "ingest", &db))
        .unwrap_or_else(|e| panic!("{e}"));
    let operator = LoggedOperator::spawn(&ns.name);
    let api = ns.platforms();
    api.create(&PostParams::default(), &dp)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let dp = eventually(
        Duration::from_secs(180),
        "DatabaseReady with the secret's ARN in status",
        || async {
            let dp = api.get("ingest").await.ok()?;
            let ready = condition(&dp, "DatabaseReady").is_some_and(|(s, _)| s == "True");
            let arn = dp.status.as_ref()?.database.as_ref()?.secret_arn.is_some();
            (ready && arn).then_some(dp)
        },
    )
    .await;
    let platform = format!("{}/ingest", ns.name);
    let config = aws_config().await.unwrap_or_else(|e| panic!("{e}"));
    let reader = Reader::new(&config);
    let cluster = one_cluster(clusters(&reader, &platform).await);
    let secret_arn = dp
        .status
        .as_ref()
        .and_then(|s| s.database.as_ref())
        .and_then(|d| d.secret_arn.clone())
        .unwrap_or_default();
    assert_eq!(Some(secret_arn.clone()), cluster.secret_arn);

    let value = reader
        .secretsmanager()
        .await
        .get_secret_value()
        .secret_id(&secret_arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let credentials: serde_json::Value =
        serde_json::from_str(value.secret_string().unwrap_or_default())
            .unwrap_or_else(|e| panic!("the secret is not JSON: {e}"));
    let password = credentials["password"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(password.len() >= 4, "the emulator's secret has a password");

    let assert_nowhere = |what: &str, text: &str, expected: &[&str]| {
        assert!(!text.is_empty(), "{what} is empty");
        for needle in expected {
            assert!(text.contains(needle), "{what} never mentions {needle}");
        }
        assert!(!text.contains(&password), "the password appears in {what}");
    };
    let status = serde_json::to_string(&dp.status).unwrap_or_else(|e| panic!("{e}"));
    assert_nowhere("the status", &status, &[&secret_arn, &cluster.id]);
    let events = ns.wait_for_event("ingest", Some("Created")).await;
    // Events of one reason are aggregated into a series that keeps the first note, so which
    // creates they name is not fixed; the `Retained` event below names the cluster.
    let events = serde_json::to_string(&events).unwrap_or_else(|e| panic!("{e}"));
    assert_nowhere("the events", &events, &[]);
    assert_nowhere("the operator's log", &operator.log(), &[&cluster.id]);

    // Retain: the object goes, the database and its network stay, tagged.
    api.delete("ingest", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eventually(
        Duration::from_secs(180),
        "the object to be gone",
        || async { api.get_opt("ingest").await.ok()?.is_none().then_some(()) },
    )
    .await;
    let events = ns.wait_for_event("ingest", Some("Retained")).await;
    let retained_note = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("Retained"))
        .and_then(|e| e.note.clone())
        .unwrap_or_default();
    assert!(retained_note.contains(&cluster.id), "{retained_note}");
    let events = serde_json::to_string(&events).unwrap_or_else(|e| panic!("{e}"));
    assert_nowhere("the events", &events, &[&cluster.id, "Retained"]);
    let kept = one_cluster(clusters(&reader, &platform).await);
    assert_eq!(kept.arn, cluster.arn);
    assert_eq!(
        kept.tags.get(database::RETAINED_TAG).map(String::as_str),
        Some("true")
    );
    let left = tagged_database(&reader, &platform).await;
    for kind in [
        "db-cluster",
        "db-instance",
        "db-subnet-group",
        "db-cluster-parameter-group",
        "secret",
    ] {
        assert_eq!(left[kind].len(), 1, "{kind}: {left:?}");
    }
    let secret_tags = reader
        .secretsmanager()
        .await
        .describe_secret()
        .secret_id(&secret_arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(
        secret_tags
            .tags()
            .iter()
            .any(|t| t.key() == Some(database::RETAINED_TAG) && t.value() == Some("true"))
    );
    let net = network_ids(&reader, &platform).await;
    assert!(net.contains_key("vpc") && net.contains_key("security-group/database"));
    let vpcs = reader
        .ec2()
        .await
        .describe_vpcs()
        .vpc_ids(&net["vpc"])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(
        vpcs.vpcs()[0]
            .tags()
            .iter()
            .any(|t| t.key() == Some(database::RETAINED_TAG) && t.value() == Some("true"))
    );
    assert_nowhere("the operator's log", &operator.log(), &[&cluster.id]);
    drop(operator);

    // Clean the emulator: the retained platform, deleted for good by a destroy whose spec says
    // `Delete` (no apply in between: the policy at delete time counts, so no final snapshot).
    let mut h = Harness::new(&db).await;
    h.namespace = ns.name.clone();
    h.set(&Db {
        policy: "Delete",
        ..db
    });
    h.destroy().await;
    let left = tagged_database(&reader, &platform).await;
    assert!(left.values().all(Vec::is_empty), "{left:?}");
    ns.delete().await;
}

/// The emulator's admin endpoint.
async fn admin(path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
    let endpoint = stack_var("AWS_ENDPOINT_URL").unwrap_or_else(|e| panic!("{e}"));
    let url = format!("{}/_plinth/{path}", endpoint.trim_end_matches('/'));
    let client = plinth_e2e::http();
    let request = match body {
        Some(body) => client.post(url).json(&body),
        None => client.get(url),
    };
    let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
    response.json().await.unwrap_or_else(|e| panic!("{e}"))
}

/// `CreateDBCluster` carried out but answered with a 500 (a lost response): the create looks
/// for what it may have made before trying again, finds the cluster, and makes no second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_db_cluster_response_makes_no_second_cluster() {
    // Another test may make the CreateDBCluster call the rule hits; then try again.
    for attempt in 1..=3 {
        let h = Harness::new(&Db {
            policy: "Delete",
            readers: 0,
            ..DEFAULT_DB
        })
        .await;
        let calls = admin("calls", None).await;
        let made = calls["services"]["rds"]["operations"]["CreateDBCluster"]["calls"]
            .as_u64()
            .unwrap_or(0);
        let config = admin("config", None).await;
        let mut rules = config["rules"].as_array().cloned().unwrap_or_default();
        let before = rules.clone();
        rules.push(serde_json::json!({
            "service": "rds", "operation": "CreateDBCluster", "nth": made + 1, "count": 1,
            "code": "InternalFailure", "status": 500, "after_write": true,
            "message": "lost response (plinth e2e)"
        }));
        admin("config", Some(serde_json::json!({ "rules": rules }))).await;
        let finished = cli::converge(&h.platform, &h.file, PACE, &mut |line| {
            eprintln!("[{}] {line}", h.name())
        })
        .await;
        admin("config", Some(serde_json::json!({ "rules": before }))).await;
        finished.unwrap_or_else(|e| panic!("{e}"));

        let found = clusters(&h.reader, h.name()).await;
        assert_eq!(found.len(), 1, "{found:?}");
        let ours = h.clients.calls().snapshot().of("CreateDBCluster");
        h.destroy().await;
        assert!(
            tagged_database(&h.reader, h.name())
                .await
                .values()
                .all(Vec::is_empty)
        );
        if ours.server_errors == 1 {
            assert_eq!(ours.calls, 1, "the lost create is found, not sent again");
            return;
        }
        eprintln!("attempt {attempt}: the injected fault hit another client's CreateDBCluster");
    }
    panic!("the injected fault never hit this test's CreateDBCluster");
}

/// Drift AWS lets Plinth undo in place is undone in place: deletion protection turned off by
/// hand comes back on, a writer resized by hand goes back to `db.serverless`, the subnet group
/// gets its private subnets back and a managed parameter its value (a parameter Plinth does not
/// manage stays) — same cluster, same instance, nothing replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_in_the_cluster_and_an_instance_is_put_back_in_place() {
    // A private emulator: the strict layer's fix of moto's `ModifyDBSubnetGroup` (which loses
    // the group) is in effect there whenever the shared one was started before it.
    let emulator = PrivateEmulator::start(&[]).unwrap_or_else(|e| panic!("{e}"));
    let config = emulator
        .sdk_config()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let h = Harness::with_config(
        &config,
        &Db {
            readers: 0,
            ..DEFAULT_DB
        },
    );
    h.converge().await;
    let cluster = one_cluster(clusters(&h.reader, h.name()).await);
    let writer = instances(&h.reader, h.name()).await[0].1.clone();

    h.reader
        .rds()
        .await
        .modify_db_cluster()
        .db_cluster_identifier(&cluster.id)
        .deletion_protection(false)
        .apply_immediately(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    h.reader
        .rds()
        .await
        .modify_db_instance()
        .db_instance_identifier(&writer)
        .db_instance_class("db.r6g.large")
        .apply_immediately(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));

    // The subnet group moved to a public subnet in zone b, a managed parameter turned off, and
    // a parameter Plinth does not manage (a DBA's tuning, left alone).
    let net = network_ids(&h.reader, h.name()).await;
    h.reader
        .rds()
        .await
        .modify_db_subnet_group()
        .db_subnet_group_name(&cluster.subnet_group)
        .subnet_ids(&net["subnet/private/eu-west-1a"])
        .subnet_ids(&net["subnet/public/eu-west-1b"])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let parameter = |name: &str, value: &str| {
        aws_sdk_rds::types::Parameter::builder()
            .parameter_name(name)
            .parameter_value(value)
            .apply_method(aws_sdk_rds::types::ApplyMethod::Immediate)
            .build()
    };
    h.reader
        .rds()
        .await
        .modify_db_cluster_parameter_group()
        .db_cluster_parameter_group_name(&cluster.parameter_group)
        .parameters(parameter("slow_query_log", "0"))
        .parameters(parameter("max_connections", "100"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));

    let finished = h.converge().await;
    assert_eq!(finished.changes, 4, "four updates in place: {finished:?}");
    let after = one_cluster(clusters(&h.reader, h.name()).await);
    assert_eq!(after.arn, cluster.arn);
    assert_eq!(after.deletion_protection, Some(true));
    let output = h
        .reader
        .rds()
        .await
        .describe_db_instances()
        .db_instance_identifier(&writer)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        output.db_instances()[0].db_instance_class(),
        Some("db.serverless")
    );
    let groups = h
        .reader
        .rds()
        .await
        .describe_db_subnet_groups()
        .db_subnet_group_name(&cluster.subnet_group)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let mut subnets: Vec<&str> = groups.db_subnet_groups()[0]
        .subnets()
        .iter()
        .filter_map(|s| s.subnet_identifier())
        .collect();
    subnets.sort_unstable();
    let mut private = [
        net["subnet/private/eu-west-1a"].as_str(),
        net["subnet/private/eu-west-1b"].as_str(),
    ];
    private.sort_unstable();
    assert_eq!(subnets, private);
    let parameters = h
        .reader
        .rds()
        .await
        .describe_db_cluster_parameters()
        .db_cluster_parameter_group_name(&cluster.parameter_group)
        .source("user")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let value = |name: &str| {
        parameters
            .parameters()
            .iter()
            .find(|p| p.parameter_name() == Some(name))
            .and_then(|p| p.parameter_value())
            .map(str::to_owned)
    };
    assert_eq!(value("slow_query_log").as_deref(), Some("1"));
    assert_eq!(value("max_connections").as_deref(), Some("100"));

    // Snapshot policy: clean the final snapshot up after the teardown.
    h.destroy().await;
    let snapshot = cluster::final_snapshot_name(&cluster.id, &cluster.resource_id);
    h.reader
        .rds()
        .await
        .delete_db_cluster_snapshot()
        .db_cluster_snapshot_identifier(&snapshot)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
}
