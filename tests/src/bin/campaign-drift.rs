//! The drift campaign (issue #11): random manual changes to attributes Plinth manages, made
//! behind its back with the AWS SDK while one operator process (the shipped binary) runs with a
//! short resync. Each change must be put back within one resync interval (plus a slack), and an
//! unmanaged change made next to it (a tag, the load balancer's idle timeout, a cluster
//! parameter Plinth does not set, a security group of someone else in the platform's VPC) must
//! still be there at the end. Prints, per kind of change, how many were made and corrected and
//! the median and longest time to correct, the unmanaged changes kept, and the AWS calls the
//! operator spent (reads, writes, and any write of an operation no drifted kind needs).
//! Seeded, so a failing round replays.
//!
//! ```sh
//! cargo build -p plinth-e2e --bins
//! $CARGO_TARGET_DIR/debug/campaign-drift --changes 50 --batch 2 --seed 20261201   # the full campaign
//! $CARGO_TARGET_DIR/debug/campaign-drift --changes 6 --batch 3 --resync-seconds 5 --settle-seconds 2  # CI
//! ```
//! `--batch K` makes K changes at once in every round after the first pass through the
//! catalogue; `--only a,b` limits the catalogue to the kinds named (as printed). Every kind the
//! operator registers (`components::KINDS`) has a change here or a reason in `UNDRIFTED`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use kube::api::{DeleteParams, PostParams};
use plinth_crds::DataPlatform;
use plinth_e2e::cluster::{
    OperatorProcess, TestNamespace, condition, example, install_crd, operator_beside_this_binary,
};
use plinth_e2e::emulator::PrivateEmulator;
use plinth_e2e::kube_client;
use plinth_operator::aws::AwsClients;
use plinth_operator::aws::calls::is_read;
use plinth_operator::components;
use plinth_operator::engine::{Key, Kind, Observed, Scope};
use plinth_operator::intent::Intent;
use plinth_operator::{compute, database, monitoring, network, serving};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What to run.
#[derive(Parser)]
struct Args {
    /// Manual changes to make in all.
    #[arg(long, default_value_t = 50)]
    changes: usize,
    /// Seed of the order of changes.
    #[arg(long, default_value_t = 20_261_201)]
    seed: u64,
    /// Changes made at once in each round after the first pass through the catalogue.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// The operator's resync interval, seconds (its `PLINTH_RESYNC_SECONDS`).
    #[arg(long, default_value_t = 20)]
    resync_seconds: u64,
    /// Before each round, a random pause of up to this many seconds (default: the resync
    /// interval), so changes land anywhere in the operator's cycle rather than just after its
    /// last correction, when it looks again sooner.
    #[arg(long)]
    settle_seconds: Option<u64>,
    /// Seconds beyond the resync interval a correction may take before the round fails.
    #[arg(long, default_value_t = 10)]
    slack_seconds: u64,
    /// Only these kinds of change (comma-separated names as printed).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Give up on the create or the delete after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

type Failure = Box<dyn std::error::Error>;

/// Kinds of drift Plinth is known not to put back, left out of the catalogue until fixed (each
/// with the driver and what happens). Empty: every kind below is corrected.
const KNOWN_UNCORRECTED: &[&str] = &[];

/// One kind of manual change to a managed attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Drift {
    /// The VPC's `enableDnsHostnames` switched off (network/vpc.rs).
    VpcDnsHostnames,
    /// A private subnet made to give instances public addresses (network/subnet.rs).
    SubnetPublicIp,
    /// The app group's only inbound rule (the app port from the load balancer) revoked
    /// (network/security.rs).
    AppIngressRevoked,
    /// SSH from anywhere added to the app group (network/security.rs: the rule set is Plinth's).
    AppIngressOpened,
    /// All traffic out to anywhere added to the database group (network/security.rs).
    DatabaseEgressOpened,
    /// The default route of zone b's private table deleted (network/route.rs).
    PrivateRouteDeleted,
    /// The load balancer's `drop_invalid_header_fields` switched off
    /// (serving/load_balancer.rs).
    LbDropInvalidHeaders,
    /// The target group's health check moved to another path and interval
    /// (serving/target_group.rs).
    TgHealthCheck,
    /// The listener's default action replaced by a fixed 503 (serving/listener.rs).
    ListenerDefaultAction,
    /// The scaling group's maximum size raised (compute/group.rs).
    AsgMaxSize,
    /// The scaling group's minimum size lowered to 0 (compute/group.rs).
    AsgMinSize,
    /// The scaling group's health check type set to EC2 (compute/group.rs).
    AsgHealthCheckType,
    /// The scale-out policy's instance warm-up changed (compute/scaling.rs).
    ScalingPolicyWarmup,
    /// The database CPU alarm's threshold raised to 99 (monitoring/alarm.rs).
    AlarmThreshold,
    /// The cluster's deletion protection switched off (database/cluster.rs).
    DbDeletionProtection,
    /// The cluster's backup retention cut to 1 day (database/cluster.rs).
    DbBackupRetention,
    /// `slow_query_log` turned off in the cluster parameter group
    /// (database/parameter_group.rs).
    DbSlowQueryLog,
    /// The DB subnet group moved to a public subnet in zone b (database/subnet_group.rs).
    DbSubnetGroup,
    /// The master secret's rotation period set to 90 days (database/secret.rs).
    SecretRotation,
    /// The instance role's inline policy widened to `*` (compute/identity.rs).
    RolePolicy,
}

const CATALOGUE: [Drift; 20] = [
    Drift::VpcDnsHostnames,
    Drift::SubnetPublicIp,
    Drift::AppIngressRevoked,
    Drift::AppIngressOpened,
    Drift::DatabaseEgressOpened,
    Drift::PrivateRouteDeleted,
    Drift::LbDropInvalidHeaders,
    Drift::TgHealthCheck,
    Drift::ListenerDefaultAction,
    Drift::AsgMaxSize,
    Drift::AsgMinSize,
    Drift::AsgHealthCheckType,
    Drift::ScalingPolicyWarmup,
    Drift::AlarmThreshold,
    Drift::DbDeletionProtection,
    Drift::DbBackupRetention,
    Drift::DbSlowQueryLog,
    Drift::DbSubnetGroup,
    Drift::SecretRotation,
    Drift::RolePolicy,
];

/// The registered kinds (`components::KINDS`) with no drift in the catalogue, and why; a unit
/// test fails when a registered kind is in neither, so a new kind cannot be forgotten here.
const UNDRIFTED: &[(Kind, &str)] = &[
    (
        network::INTERNET_GATEWAY,
        "not written yet: its attachment is put back in place (network/gateway.rs), exercised by the consistency suite only",
    ),
    (
        network::ELASTIC_IP,
        "nothing changes in place: a released address is a deleted resource (the crash campaign)",
    ),
    (
        network::NAT_GATEWAY,
        "nothing changes in place: every field is immutable",
    ),
    (
        compute::LAUNCH_TEMPLATE,
        "nothing changes in place: every field is immutable, a new revision is a new template",
    ),
    (
        compute::INSTANCE_PROFILE,
        "not written yet: its role is put back in place (compute/identity.rs)",
    ),
    (
        database::DB_INSTANCE,
        "not written yet: its class is put back in place (database/instance.rs)",
    ),
    (
        monitoring::ALARM_TOPIC,
        "nothing changes in place: the topic has no managed attribute",
    ),
    (
        monitoring::ALARM_SUBSCRIPTION,
        "nothing changes in place: an unsubscribed address is a deleted subscription",
    ),
];

impl Drift {
    /// The kind of resource the change is made to.
    fn kind(self) -> Kind {
        match self {
            Self::VpcDnsHostnames => network::VPC,
            Self::SubnetPublicIp => network::SUBNET,
            Self::AppIngressRevoked | Self::AppIngressOpened | Self::DatabaseEgressOpened => {
                network::SECURITY_GROUP
            }
            Self::PrivateRouteDeleted => network::ROUTE_TABLE,
            Self::LbDropInvalidHeaders => serving::LOAD_BALANCER,
            Self::TgHealthCheck => serving::TARGET_GROUP,
            Self::ListenerDefaultAction => serving::LISTENER,
            Self::AsgMaxSize | Self::AsgMinSize | Self::AsgHealthCheckType => {
                compute::AUTO_SCALING_GROUP
            }
            Self::ScalingPolicyWarmup => compute::SCALING_POLICY,
            Self::AlarmThreshold => monitoring::ALARM,
            Self::DbDeletionProtection | Self::DbBackupRetention => database::DB_CLUSTER,
            Self::DbSlowQueryLog => database::DB_CLUSTER_PARAMETER_GROUP,
            Self::DbSubnetGroup => database::DB_SUBNET_GROUP,
            Self::SecretRotation => database::DATABASE_SECRET,
            Self::RolePolicy => compute::IAM_ROLE,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::VpcDnsHostnames => "vpc-dns-hostnames",
            Self::SubnetPublicIp => "subnet-map-public-ip",
            Self::AppIngressRevoked => "sg-app-ingress-revoked",
            Self::AppIngressOpened => "sg-app-ingress-ssh-added",
            Self::DatabaseEgressOpened => "sg-db-egress-all-added",
            Self::PrivateRouteDeleted => "route-private-b-deleted",
            Self::LbDropInvalidHeaders => "lb-drop-invalid-headers",
            Self::TgHealthCheck => "tg-health-check",
            Self::ListenerDefaultAction => "listener-default-action",
            Self::AsgMaxSize => "asg-max-size",
            Self::AsgMinSize => "asg-min-size",
            Self::AsgHealthCheckType => "asg-health-check-type",
            Self::ScalingPolicyWarmup => "scaling-policy-warmup",
            Self::AlarmThreshold => "alarm-threshold",
            Self::DbDeletionProtection => "db-deletion-protection",
            Self::DbBackupRetention => "db-backup-retention",
            Self::DbSlowQueryLog => "db-param-slow-query-log",
            Self::DbSubnetGroup => "db-subnet-group",
            Self::SecretRotation => "secret-rotation-days",
            Self::RolePolicy => "iam-role-inline-policy",
        }
    }

    /// The operations the operator's correction may write; any other write is reported.
    fn repair_operations(self) -> &'static [&'static str] {
        match self {
            Self::VpcDnsHostnames => &["ModifyVpcAttribute"],
            Self::SubnetPublicIp => &["ModifySubnetAttribute"],
            Self::AppIngressRevoked | Self::AppIngressOpened => &[
                "AuthorizeSecurityGroupIngress",
                "RevokeSecurityGroupIngress",
            ],
            Self::DatabaseEgressOpened => {
                &["AuthorizeSecurityGroupEgress", "RevokeSecurityGroupEgress"]
            }
            Self::PrivateRouteDeleted => &["CreateRoute", "ReplaceRoute"],
            Self::LbDropInvalidHeaders => &["ModifyLoadBalancerAttributes"],
            Self::TgHealthCheck => &["ModifyTargetGroup"],
            Self::ListenerDefaultAction => &["ModifyListener"],
            Self::AsgMaxSize | Self::AsgMinSize | Self::AsgHealthCheckType => {
                &["UpdateAutoScalingGroup"]
            }
            Self::ScalingPolicyWarmup => &["PutScalingPolicy"],
            Self::AlarmThreshold => &["PutMetricAlarm"],
            Self::DbDeletionProtection | Self::DbBackupRetention => {
                &["ModifyDBCluster", "AddTagsToResource"]
            }
            Self::DbSlowQueryLog => &["ModifyDBClusterParameterGroup"],
            Self::DbSubnetGroup => &["ModifyDBSubnetGroup"],
            Self::SecretRotation => &["RotateSecret"],
            Self::RolePolicy => &["PutRolePolicy"],
        }
    }

    /// The resource whose tags carry this kind's unmanaged control.
    fn tagged(self, ids: &Ids) -> Target {
        match self {
            Self::VpcDnsHostnames => Target::Ec2(ids.vpc.clone()),
            Self::SubnetPublicIp => Target::Ec2(ids.private_subnet_a.clone()),
            Self::AppIngressRevoked | Self::AppIngressOpened => Target::Ec2(ids.app_sg.clone()),
            Self::DatabaseEgressOpened => Target::Ec2(ids.db_sg.clone()),
            Self::PrivateRouteDeleted => Target::Ec2(ids.private_table_b.clone()),
            Self::LbDropInvalidHeaders => Target::Elb(ids.load_balancer.clone()),
            Self::TgHealthCheck => Target::Elb(ids.target_group.clone()),
            Self::ListenerDefaultAction => Target::Elb(ids.listener.clone()),
            Self::AsgMaxSize | Self::AsgMinSize | Self::AsgHealthCheckType => {
                Target::Asg(ids.asg.clone())
            }
            Self::ScalingPolicyWarmup => Target::Asg(ids.asg.clone()),
            Self::AlarmThreshold => Target::Alarm(ids.alarm_arn.clone()),
            Self::DbDeletionProtection | Self::DbBackupRetention => {
                Target::Rds(ids.cluster_arn.clone())
            }
            Self::DbSlowQueryLog => Target::Rds(ids.parameter_group_arn.clone()),
            Self::DbSubnetGroup => Target::Rds(ids.subnet_group_arn.clone()),
            Self::SecretRotation => Target::Secret(ids.secret.clone()),
            Self::RolePolicy => Target::Role(ids.role.clone()),
        }
    }
}

/// A resource that can carry tags, by service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Ec2(String),
    Elb(String),
    Asg(String),
    Rds(String),
    Secret(String),
    Role(String),
    Alarm(String),
}

/// An unmanaged change that must survive.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Control {
    /// A tag Plinth did not write.
    Tag(Target, String),
    /// The load balancer's idle timeout (Plinth sets only the header attribute).
    IdleTimeout,
    /// A cluster parameter Plinth does not set.
    Parameter(&'static str),
    /// A security group of someone else in the platform's VPC, with one rule.
    ForeignGroup,
}

/// The AWS ids of what is drifted, read once through the engine's own observe.
struct Ids {
    vpc: String,
    private_subnet_a: String,
    public_subnet_b: String,
    private_table_b: String,
    nat_b: String,
    app_sg: String,
    lb_sg: String,
    db_sg: String,
    load_balancer: String,
    target_group: String,
    listener: String,
    asg: String,
    scale_out_name: String,
    alarm: String,
    alarm_arn: String,
    cluster: String,
    cluster_arn: String,
    parameter_group: String,
    parameter_group_arn: String,
    subnet_group: String,
    subnet_group_arn: String,
    secret: String,
    role: String,
}

fn id_of(observed: &Observed, key: &str) -> Result<String, Failure> {
    observed
        .primary(&Key::from(key))
        .map(|r| r.id.clone())
        .ok_or_else(|| format!("the platform has no {key}").into())
}

fn key_with(observed: &Observed, prefix: &str) -> Result<String, Failure> {
    observed
        .keys()
        .find(|k| k.as_str().starts_with(prefix))
        .map(|k| k.as_str().to_owned())
        .ok_or_else(|| format!("the platform has no {prefix}…").into())
}

async fn resolve(aws: &AwsClients, scope: &Scope, intent: &Intent) -> Result<Ids, Failure> {
    let observed = components::platform(aws)?
        .plan(scope, intent)
        .await?
        .observed;
    let asg_key = key_with(&observed, "auto-scaling-group/")?;
    let revision = asg_key.trim_start_matches("auto-scaling-group/").to_owned();
    let scale_out = observed
        .primary(&Key::from(format!("scaling-policy/{revision}/out")))
        .ok_or("no scale-out policy")?;
    let scale_out_name = scale_out
        .attrs
        .get("policy_name")
        .and_then(|v| v.as_str())
        .ok_or("the scale-out policy has no name")?
        .to_owned();
    let alarm = id_of(&observed, "alarm/database-cpu")?;
    let cluster = id_of(&observed, "db-cluster")?;
    let parameter_group = id_of(&observed, "db-cluster-parameter-group")?;
    let subnet_group = id_of(&observed, "db-subnet-group")?;
    let rds = aws.rds().await;
    let cluster_arn = rds
        .describe_db_clusters()
        .db_cluster_identifier(&cluster)
        .send()
        .await?
        .db_clusters()
        .first()
        .and_then(|c| c.db_cluster_arn())
        .ok_or("the cluster has no ARN")?
        .to_owned();
    let parameter_group_arn = rds
        .describe_db_cluster_parameter_groups()
        .db_cluster_parameter_group_name(&parameter_group)
        .send()
        .await?
        .db_cluster_parameter_groups()
        .first()
        .and_then(|g| g.db_cluster_parameter_group_arn())
        .ok_or("the parameter group has no ARN")?
        .to_owned();
    let subnet_group_arn = rds
        .describe_db_subnet_groups()
        .db_subnet_group_name(&subnet_group)
        .send()
        .await?
        .db_subnet_groups()
        .first()
        .and_then(|g| g.db_subnet_group_arn())
        .ok_or("the subnet group has no ARN")?
        .to_owned();
    let alarm_arn = aws
        .cloudwatch()
        .await
        .describe_alarms()
        .alarm_names(&alarm)
        .send()
        .await?
        .metric_alarms()
        .first()
        .and_then(|a| a.alarm_arn())
        .ok_or("the alarm has no ARN")?
        .to_owned();
    Ok(Ids {
        vpc: id_of(&observed, "vpc")?,
        private_subnet_a: id_of(&observed, "subnet/private/eu-west-1a")?,
        public_subnet_b: id_of(&observed, "subnet/public/eu-west-1b")?,
        private_table_b: id_of(&observed, "route-table/private/eu-west-1b")?,
        nat_b: id_of(&observed, "nat-gateway/eu-west-1b")?,
        app_sg: id_of(&observed, "security-group/app")?,
        lb_sg: id_of(&observed, "security-group/load-balancer")?,
        db_sg: id_of(&observed, "security-group/database")?,
        load_balancer: id_of(&observed, "load-balancer")?,
        target_group: id_of(&observed, &format!("target-group/{revision}"))?,
        listener: id_of(&observed, "listener/http")?,
        asg: id_of(&observed, &asg_key)?,
        scale_out_name,
        alarm,
        alarm_arn,
        cluster,
        cluster_arn,
        parameter_group,
        parameter_group_arn,
        subnet_group,
        subnet_group_arn,
        secret: id_of(&observed, "db-secret")?,
        role: id_of(&observed, "iam-role/instance")?,
    })
}

/// Security group rules, one line per peer, sorted.
fn rules(permissions: &[aws_sdk_ec2::types::IpPermission]) -> String {
    let mut out = BTreeSet::new();
    for p in permissions {
        let head = format!(
            "{}:{}-{}",
            p.ip_protocol().unwrap_or("?"),
            p.from_port().unwrap_or(-1),
            p.to_port().unwrap_or(-1)
        );
        for r in p.ip_ranges() {
            out.insert(format!("{head}<{}", r.cidr_ip().unwrap_or("?")));
        }
        for g in p.user_id_group_pairs() {
            out.insert(format!("{head}<{}", g.group_id().unwrap_or("?")));
        }
    }
    out.into_iter().collect::<Vec<_>>().join(",")
}

/// The drifted attribute as AWS describes it now, rendered as text compared with the value
/// read once the platform was Ready.
async fn read(aws: &AwsClients, ids: &Ids, drift: Drift) -> Result<String, Failure> {
    Ok(match drift {
        Drift::VpcDnsHostnames => {
            let out = aws
                .ec2()
                .await
                .describe_vpc_attribute()
                .vpc_id(&ids.vpc)
                .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames)
                .send()
                .await?;
            format!("{:?}", out.enable_dns_hostnames().and_then(|v| v.value()))
        }
        Drift::SubnetPublicIp => {
            let out = aws
                .ec2()
                .await
                .describe_subnets()
                .subnet_ids(&ids.private_subnet_a)
                .send()
                .await?;
            format!(
                "{:?}",
                out.subnets()
                    .first()
                    .and_then(|s| s.map_public_ip_on_launch())
            )
        }
        Drift::AppIngressRevoked | Drift::AppIngressOpened | Drift::DatabaseEgressOpened => {
            let group = if drift == Drift::DatabaseEgressOpened {
                &ids.db_sg
            } else {
                &ids.app_sg
            };
            let out = aws
                .ec2()
                .await
                .describe_security_groups()
                .group_ids(group)
                .send()
                .await?;
            let g = out.security_groups().first().ok_or("no group")?;
            format!(
                "in[{}] out[{}]",
                rules(g.ip_permissions()),
                rules(g.ip_permissions_egress())
            )
        }
        Drift::PrivateRouteDeleted => {
            let out = aws
                .ec2()
                .await
                .describe_route_tables()
                .route_table_ids(&ids.private_table_b)
                .send()
                .await?;
            let mut routes: Vec<String> = out
                .route_tables()
                .iter()
                .flat_map(|t| t.routes())
                .map(|r| {
                    format!(
                        "{}>{}",
                        r.destination_cidr_block().unwrap_or("?"),
                        r.nat_gateway_id().or(r.gateway_id()).unwrap_or("?")
                    )
                })
                .collect();
            routes.sort();
            routes.join(",")
        }
        Drift::LbDropInvalidHeaders => {
            let out = aws
                .elbv2()
                .await
                .describe_load_balancer_attributes()
                .load_balancer_arn(&ids.load_balancer)
                .send()
                .await?;
            let on = out.attributes().iter().any(|a| {
                a.key() == Some("routing.http.drop_invalid_header_fields.enabled")
                    && a.value() == Some("true")
            });
            format!("drop_invalid={on}")
        }
        Drift::TgHealthCheck => {
            let out = aws
                .elbv2()
                .await
                .describe_target_groups()
                .target_group_arns(&ids.target_group)
                .send()
                .await?;
            let g = out.target_groups().first().ok_or("no target group")?;
            format!(
                "path={:?} interval={:?} timeout={:?} healthy={:?} unhealthy={:?} matcher={:?}",
                g.health_check_path(),
                g.health_check_interval_seconds(),
                g.health_check_timeout_seconds(),
                g.healthy_threshold_count(),
                g.unhealthy_threshold_count(),
                g.matcher().and_then(|m| m.http_code())
            )
        }
        Drift::ListenerDefaultAction => {
            let out = aws
                .elbv2()
                .await
                .describe_listeners()
                .listener_arns(&ids.listener)
                .send()
                .await?;
            let l = out.listeners().first().ok_or("no listener")?;
            let mut actions = Vec::new();
            for a in l.default_actions() {
                let mut groups: Vec<String> = a
                    .forward_config()
                    .map(|f| {
                        f.target_groups()
                            .iter()
                            .map(|t| {
                                format!(
                                    "{}*{}",
                                    t.target_group_arn().unwrap_or("?"),
                                    t.weight().unwrap_or(1)
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if groups.is_empty()
                    && let Some(arn) = a.target_group_arn()
                {
                    groups.push(arn.to_owned());
                }
                groups.sort();
                actions.push(format!(
                    "{}[{}]",
                    a.r#type().map(|t| t.as_str()).unwrap_or("?"),
                    groups.join(",")
                ));
            }
            actions.join(";")
        }
        Drift::AsgMaxSize | Drift::AsgMinSize | Drift::AsgHealthCheckType => {
            let out = aws
                .autoscaling()
                .await
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(&ids.asg)
                .send()
                .await?;
            let g = out.auto_scaling_groups().first().ok_or("no group")?;
            format!(
                "min={:?} max={:?} health_check={:?} grace={:?} cooldown={:?}",
                g.min_size(),
                g.max_size(),
                g.health_check_type(),
                g.health_check_grace_period(),
                g.default_cooldown()
            )
        }
        Drift::ScalingPolicyWarmup => {
            let out = aws
                .autoscaling()
                .await
                .describe_policies()
                .auto_scaling_group_name(&ids.asg)
                .policy_names(&ids.scale_out_name)
                .send()
                .await?;
            let p = out.scaling_policies().first().ok_or("no policy")?;
            let steps: Vec<String> = p
                .step_adjustments()
                .iter()
                .map(|s| {
                    format!(
                        "{:?}..{:?}:{:?}",
                        s.metric_interval_lower_bound(),
                        s.metric_interval_upper_bound(),
                        s.scaling_adjustment()
                    )
                })
                .collect();
            format!(
                "warmup={:?} adjustment={:?} aggregation={:?} steps={}",
                p.estimated_instance_warmup(),
                p.adjustment_type(),
                p.metric_aggregation_type(),
                steps.join(",")
            )
        }
        Drift::AlarmThreshold => {
            let out = aws
                .cloudwatch()
                .await
                .describe_alarms()
                .alarm_names(&ids.alarm)
                .send()
                .await?;
            let a = out.metric_alarms().first().ok_or("no alarm")?;
            format!(
                "threshold={:?} comparison={:?} periods={:?}",
                a.threshold(),
                a.comparison_operator().map(|c| c.as_str()),
                a.evaluation_periods()
            )
        }
        Drift::DbDeletionProtection | Drift::DbBackupRetention => {
            let out = aws
                .rds()
                .await
                .describe_db_clusters()
                .db_cluster_identifier(&ids.cluster)
                .send()
                .await?;
            let c = out.db_clusters().first().ok_or("no cluster")?;
            format!(
                "deletion_protection={:?} retention={:?} window={:?}",
                c.deletion_protection(),
                c.backup_retention_period(),
                c.preferred_backup_window()
            )
        }
        Drift::DbSlowQueryLog => {
            parameters(
                aws,
                &ids.parameter_group,
                &["slow_query_log", "long_query_time"],
            )
            .await?
        }
        Drift::DbSubnetGroup => {
            let out = aws
                .rds()
                .await
                .describe_db_subnet_groups()
                .db_subnet_group_name(&ids.subnet_group)
                .send()
                .await?;
            let mut subnets: Vec<&str> = out
                .db_subnet_groups()
                .iter()
                .flat_map(|g| g.subnets())
                .filter_map(|s| s.subnet_identifier())
                .collect();
            subnets.sort_unstable();
            subnets.join(",")
        }
        Drift::SecretRotation => {
            let out = aws
                .secretsmanager()
                .await
                .describe_secret()
                .secret_id(&ids.secret)
                .send()
                .await?;
            format!(
                "enabled={:?} days={:?}",
                out.rotation_enabled(),
                out.rotation_rules()
                    .and_then(|r| r.automatically_after_days())
            )
        }
        Drift::RolePolicy => {
            let out = aws
                .iam()
                .await
                .get_role_policy()
                .role_name(&ids.role)
                .policy_name(role_policy_name(aws, &ids.role).await?)
                .send()
                .await?;
            out.policy_document().to_owned()
        }
    })
}

/// The name of the role's inline policy Plinth writes (its only one before the campaign).
async fn role_policy_name(aws: &AwsClients, role: &str) -> Result<String, Failure> {
    let out = aws
        .iam()
        .await
        .list_role_policies()
        .role_name(role)
        .send()
        .await?;
    out.policy_names()
        .iter()
        .find(|n| !n.starts_with("drift-campaign"))
        .cloned()
        .ok_or_else(|| "the instance role has no inline policy".into())
}

/// The named user parameters of a cluster parameter group, as `name=value` lines.
async fn parameters(aws: &AwsClients, group: &str, names: &[&str]) -> Result<String, Failure> {
    let mut found = BTreeMap::new();
    let mut marker: Option<String> = None;
    loop {
        let out = aws
            .rds()
            .await
            .describe_db_cluster_parameters()
            .db_cluster_parameter_group_name(group)
            .source("user")
            .set_marker(marker.clone())
            .send()
            .await?;
        for p in out.parameters() {
            if let Some(name) = p.parameter_name()
                && names.contains(&name)
            {
                found.insert(
                    name.to_owned(),
                    p.parameter_value().unwrap_or("").to_owned(),
                );
            }
        }
        marker = out.marker().map(str::to_owned);
        if marker.is_none() {
            break;
        }
    }
    Ok(found
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(","))
}

fn rds_parameter(name: &str, value: &str) -> aws_sdk_rds::types::Parameter {
    aws_sdk_rds::types::Parameter::builder()
        .parameter_name(name)
        .parameter_value(value)
        .apply_method(aws_sdk_rds::types::ApplyMethod::Immediate)
        .build()
}

/// Makes the change behind Plinth's back.
async fn apply(aws: &AwsClients, ids: &Ids, drift: Drift, round: usize) -> Result<(), Failure> {
    use aws_sdk_ec2::types::{AttributeBooleanValue, IpPermission, IpRange, UserIdGroupPair};
    match drift {
        Drift::VpcDnsHostnames => {
            aws.ec2()
                .await
                .modify_vpc_attribute()
                .vpc_id(&ids.vpc)
                .enable_dns_hostnames(AttributeBooleanValue::builder().value(false).build())
                .send()
                .await?;
        }
        Drift::SubnetPublicIp => {
            aws.ec2()
                .await
                .modify_subnet_attribute()
                .subnet_id(&ids.private_subnet_a)
                .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
                .send()
                .await?;
        }
        Drift::AppIngressRevoked => {
            let port = app_port(aws, ids).await?;
            aws.ec2()
                .await
                .revoke_security_group_ingress()
                .group_id(&ids.app_sg)
                .ip_permissions(
                    IpPermission::builder()
                        .ip_protocol("tcp")
                        .from_port(port)
                        .to_port(port)
                        .user_id_group_pairs(
                            UserIdGroupPair::builder().group_id(&ids.lb_sg).build(),
                        )
                        .build(),
                )
                .send()
                .await?;
        }
        Drift::AppIngressOpened => {
            aws.ec2()
                .await
                .authorize_security_group_ingress()
                .group_id(&ids.app_sg)
                .ip_permissions(
                    IpPermission::builder()
                        .ip_protocol("tcp")
                        .from_port(22)
                        .to_port(22)
                        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                        .build(),
                )
                .send()
                .await?;
        }
        Drift::DatabaseEgressOpened => {
            aws.ec2()
                .await
                .authorize_security_group_egress()
                .group_id(&ids.db_sg)
                .ip_permissions(
                    IpPermission::builder()
                        .ip_protocol("-1")
                        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                        .build(),
                )
                .send()
                .await?;
        }
        Drift::PrivateRouteDeleted => {
            aws.ec2()
                .await
                .delete_route()
                .route_table_id(&ids.private_table_b)
                .destination_cidr_block("0.0.0.0/0")
                .send()
                .await?;
        }
        Drift::LbDropInvalidHeaders => {
            use aws_sdk_elasticloadbalancingv2::types::LoadBalancerAttribute;
            // The idle timeout, set in the same call, is not Plinth's: it must stay.
            aws.elbv2()
                .await
                .modify_load_balancer_attributes()
                .load_balancer_arn(&ids.load_balancer)
                .attributes(
                    LoadBalancerAttribute::builder()
                        .key("routing.http.drop_invalid_header_fields.enabled")
                        .value("false")
                        .build(),
                )
                .attributes(
                    LoadBalancerAttribute::builder()
                        .key("idle_timeout.timeout_seconds")
                        .value(idle_timeout(round).to_string())
                        .build(),
                )
                .send()
                .await?;
        }
        Drift::TgHealthCheck => {
            aws.elbv2()
                .await
                .modify_target_group()
                .target_group_arn(&ids.target_group)
                .health_check_path("/drift")
                .health_check_interval_seconds(25)
                .send()
                .await?;
        }
        Drift::ListenerDefaultAction => {
            use aws_sdk_elasticloadbalancingv2::types::{
                Action, ActionTypeEnum, FixedResponseActionConfig,
            };
            aws.elbv2()
                .await
                .modify_listener()
                .listener_arn(&ids.listener)
                .default_actions(
                    Action::builder()
                        .r#type(ActionTypeEnum::FixedResponse)
                        .fixed_response_config(
                            FixedResponseActionConfig::builder()
                                .status_code("503")
                                .content_type("text/plain")
                                .message_body("drift")
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await?;
        }
        Drift::AsgMaxSize | Drift::AsgMinSize | Drift::AsgHealthCheckType => {
            let call = aws
                .autoscaling()
                .await
                .update_auto_scaling_group()
                .auto_scaling_group_name(&ids.asg);
            let call = match drift {
                Drift::AsgMaxSize => call.max_size(5),
                Drift::AsgMinSize => call.min_size(0),
                _ => call.health_check_type("EC2"),
            };
            call.send().await?;
        }
        Drift::ScalingPolicyWarmup => {
            let out = aws
                .autoscaling()
                .await
                .describe_policies()
                .auto_scaling_group_name(&ids.asg)
                .policy_names(&ids.scale_out_name)
                .send()
                .await?;
            let p = out.scaling_policies().first().ok_or("no policy")?;
            let warmup = p.estimated_instance_warmup().unwrap_or(300) + 111;
            aws.autoscaling()
                .await
                .put_scaling_policy()
                .auto_scaling_group_name(&ids.asg)
                .policy_name(&ids.scale_out_name)
                .policy_type("StepScaling")
                .set_adjustment_type(p.adjustment_type().map(str::to_owned))
                .set_metric_aggregation_type(p.metric_aggregation_type().map(str::to_owned))
                .set_step_adjustments(Some(p.step_adjustments().to_vec()))
                .estimated_instance_warmup(warmup)
                .send()
                .await?;
        }
        Drift::AlarmThreshold => {
            let out = aws
                .cloudwatch()
                .await
                .describe_alarms()
                .alarm_names(&ids.alarm)
                .send()
                .await?;
            let a = out.metric_alarms().first().ok_or("no alarm")?;
            aws.cloudwatch()
                .await
                .put_metric_alarm()
                .alarm_name(&ids.alarm)
                .set_alarm_description(a.alarm_description().map(str::to_owned))
                .set_actions_enabled(a.actions_enabled())
                .set_alarm_actions(Some(a.alarm_actions().to_vec()))
                .set_ok_actions(Some(a.ok_actions().to_vec()))
                .set_metric_name(a.metric_name().map(str::to_owned))
                .set_namespace(a.namespace().map(str::to_owned))
                .set_statistic(a.statistic().cloned())
                .set_extended_statistic(a.extended_statistic().map(str::to_owned))
                .set_dimensions(Some(a.dimensions().to_vec()))
                .set_period(a.period())
                .set_evaluation_periods(a.evaluation_periods())
                .set_datapoints_to_alarm(a.datapoints_to_alarm())
                .threshold(99.0)
                .set_comparison_operator(a.comparison_operator().cloned())
                .set_treat_missing_data(a.treat_missing_data().map(str::to_owned))
                .set_metrics((!a.metrics().is_empty()).then(|| a.metrics().to_vec()))
                .send()
                .await?;
        }
        Drift::DbDeletionProtection | Drift::DbBackupRetention => {
            let call = aws
                .rds()
                .await
                .modify_db_cluster()
                .db_cluster_identifier(&ids.cluster)
                .apply_immediately(true);
            let call = if drift == Drift::DbDeletionProtection {
                call.deletion_protection(false)
            } else {
                call.backup_retention_period(1)
            };
            call.send().await?;
        }
        Drift::DbSlowQueryLog => {
            // innodb_print_all_deadlocks is a DBA's tuning, not Plinth's: it must stay.
            aws.rds()
                .await
                .modify_db_cluster_parameter_group()
                .db_cluster_parameter_group_name(&ids.parameter_group)
                .parameters(rds_parameter("slow_query_log", "0"))
                .parameters(rds_parameter("innodb_print_all_deadlocks", "1"))
                .send()
                .await?;
        }
        Drift::DbSubnetGroup => {
            aws.rds()
                .await
                .modify_db_subnet_group()
                .db_subnet_group_name(&ids.subnet_group)
                .subnet_ids(&ids.private_subnet_a)
                .subnet_ids(&ids.public_subnet_b)
                .send()
                .await?;
        }
        Drift::SecretRotation => {
            aws.secretsmanager()
                .await
                .rotate_secret()
                .secret_id(&ids.secret)
                .rotation_rules(
                    aws_sdk_secretsmanager::types::RotationRulesType::builder()
                        .automatically_after_days(90)
                        .build(),
                )
                .rotate_immediately(false)
                .send()
                .await?;
        }
        Drift::RolePolicy => {
            let name = role_policy_name(aws, &ids.role).await?;
            aws.iam()
                .await
                .put_role_policy()
                .role_name(&ids.role)
                .policy_name(name)
                .policy_document(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
                )
                .send()
                .await?;
        }
    }
    Ok(())
}

/// The idle timeout set in round `round` (different each round, so the last one is checked).
fn idle_timeout(round: usize) -> usize {
    61 + round % 500
}

/// The app port, from the app group's one inbound rule.
async fn app_port(aws: &AwsClients, ids: &Ids) -> Result<i32, Failure> {
    let out = aws
        .ec2()
        .await
        .describe_security_groups()
        .group_ids(&ids.app_sg)
        .send()
        .await?;
    out.security_groups()
        .first()
        .and_then(|g| g.ip_permissions().first())
        .and_then(|p| p.from_port())
        .ok_or_else(|| "the app group has no inbound rule".into())
}

/// Adds an unmanaged tag.
async fn tag(aws: &AwsClients, target: &Target, key: &str, value: &str) -> Result<(), Failure> {
    match target {
        Target::Ec2(id) => {
            aws.ec2()
                .await
                .create_tags()
                .resources(id)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key(key)
                        .value(value)
                        .build(),
                )
                .send()
                .await?;
        }
        Target::Elb(arn) => {
            aws.elbv2()
                .await
                .add_tags()
                .resource_arns(arn)
                .tags(
                    aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                        .key(key)
                        .value(value)
                        .build(),
                )
                .send()
                .await?;
        }
        Target::Asg(name) => {
            aws.autoscaling()
                .await
                .create_or_update_tags()
                .tags(
                    aws_sdk_autoscaling::types::Tag::builder()
                        .resource_id(name)
                        .resource_type("auto-scaling-group")
                        .key(key)
                        .value(value)
                        .propagate_at_launch(false)
                        .build(),
                )
                .send()
                .await?;
        }
        Target::Rds(arn) => {
            aws.rds()
                .await
                .add_tags_to_resource()
                .resource_name(arn)
                .tags(
                    aws_sdk_rds::types::Tag::builder()
                        .key(key)
                        .value(value)
                        .build(),
                )
                .send()
                .await?;
        }
        Target::Secret(arn) => {
            aws.secretsmanager()
                .await
                .tag_resource()
                .secret_id(arn)
                .tags(
                    aws_sdk_secretsmanager::types::Tag::builder()
                        .key(key)
                        .value(value)
                        .build(),
                )
                .send()
                .await?;
        }
        Target::Role(name) => {
            aws.iam()
                .await
                .tag_role()
                .role_name(name)
                .tags(
                    aws_sdk_iam::types::Tag::builder()
                        .key(key)
                        .value(value)
                        .build()?,
                )
                .send()
                .await?;
        }
        Target::Alarm(arn) => {
            aws.cloudwatch()
                .await
                .tag_resource()
                .resource_arn(arn)
                .tags(
                    aws_sdk_cloudwatch::types::Tag::builder()
                        .key(key)
                        .value(value)
                        .build(),
                )
                .send()
                .await?;
        }
    }
    Ok(())
}

/// The value of tag `key` on `target` now.
async fn tag_value(
    aws: &AwsClients,
    target: &Target,
    key: &str,
) -> Result<Option<String>, Failure> {
    let pairs: Vec<(String, String)> = match target {
        Target::Ec2(id) => aws
            .ec2()
            .await
            .describe_tags()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("resource-id")
                    .values(id)
                    .build(),
            )
            .send()
            .await?
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or("").to_owned(),
                    t.value().unwrap_or("").to_owned(),
                )
            })
            .collect(),
        Target::Elb(arn) => aws
            .elbv2()
            .await
            .describe_tags()
            .resource_arns(arn)
            .send()
            .await?
            .tag_descriptions()
            .iter()
            .flat_map(|d| d.tags())
            .map(|t| {
                (
                    t.key().unwrap_or("").to_owned(),
                    t.value().unwrap_or("").to_owned(),
                )
            })
            .collect(),
        Target::Asg(name) => aws
            .autoscaling()
            .await
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await?
            .auto_scaling_groups()
            .iter()
            .flat_map(|g| g.tags())
            .map(|t| {
                (
                    t.key().unwrap_or("").to_owned(),
                    t.value().unwrap_or("").to_owned(),
                )
            })
            .collect(),
        Target::Rds(arn) => aws
            .rds()
            .await
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await?
            .tag_list()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or("").to_owned(),
                    t.value().unwrap_or("").to_owned(),
                )
            })
            .collect(),
        Target::Secret(arn) => aws
            .secretsmanager()
            .await
            .describe_secret()
            .secret_id(arn)
            .send()
            .await?
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or("").to_owned(),
                    t.value().unwrap_or("").to_owned(),
                )
            })
            .collect(),
        Target::Role(name) => aws
            .iam()
            .await
            .list_role_tags()
            .role_name(name)
            .send()
            .await?
            .tags()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect(),
        Target::Alarm(arn) => aws
            .cloudwatch()
            .await
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await?
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or("").to_owned(),
                    t.value().unwrap_or("").to_owned(),
                )
            })
            .collect(),
    };
    Ok(pairs.into_iter().find(|(k, _)| k == key).map(|(_, v)| v))
}

/// The value an unmanaged control holds now.
async fn control_value(
    aws: &AwsClients,
    ids: &Ids,
    control: &Control,
    foreign: &str,
) -> Result<Option<String>, Failure> {
    match control {
        Control::Tag(target, key) => tag_value(aws, target, key).await,
        Control::IdleTimeout => {
            let out = aws
                .elbv2()
                .await
                .describe_load_balancer_attributes()
                .load_balancer_arn(&ids.load_balancer)
                .send()
                .await?;
            Ok(out
                .attributes()
                .iter()
                .find(|a| a.key() == Some("idle_timeout.timeout_seconds"))
                .and_then(|a| a.value())
                .map(str::to_owned))
        }
        Control::Parameter(name) => {
            let text = parameters(aws, &ids.parameter_group, &[name]).await?;
            Ok(text.strip_prefix(&format!("{name}=")).map(str::to_owned))
        }
        Control::ForeignGroup => {
            let out = aws
                .ec2()
                .await
                .describe_security_groups()
                .group_ids(foreign)
                .send()
                .await;
            Ok(match out {
                Ok(out) => out
                    .security_groups()
                    .first()
                    .map(|g| rules(g.ip_permissions())),
                Err(_) => None,
            })
        }
    }
}

fn ready(dp: &DataPlatform) -> bool {
    condition(dp, "Ready").is_some_and(|(status, _)| status == "True")
        && dp.status.as_ref().and_then(|s| s.observed_generation) == dp.metadata.generation
}

async fn wait(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Result<bool, Failure>,
) -> Result<Duration, Failure> {
    let started = Instant::now();
    while !check().await? {
        if started.elapsed() > timeout {
            return Err(format!("{what}: not within {timeout:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(started.elapsed())
}

/// The AWS calls the operator has made so far.
async fn calls(operator: &OperatorProcess) -> Result<BTreeMap<(String, String), u64>, Failure> {
    Ok(operator.aws_calls().await?)
}

/// What the kinds of change came to.
#[derive(Default)]
struct Tally {
    made: usize,
    corrected: usize,
    seconds: Vec<f64>,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The kinds for the next round: the least used first (so every kind comes once before any
/// comes twice), ties broken at random.
fn pick(rng: &mut StdRng, kinds: &[Drift], used: &BTreeMap<Drift, usize>, k: usize) -> Vec<Drift> {
    let mut order: Vec<(usize, u64, Drift)> = kinds
        .iter()
        .map(|d| (used.get(d).copied().unwrap_or(0), rng.random::<u64>(), *d))
        .collect();
    order.sort();
    order.into_iter().take(k).map(|(_, _, d)| d).collect()
}

async fn run(args: Args) -> Result<bool, Failure> {
    let kinds: Vec<Drift> = CATALOGUE
        .iter()
        .copied()
        .filter(|d| !KNOWN_UNCORRECTED.contains(&d.name()))
        .filter(|d| args.only.is_empty() || args.only.iter().any(|o| o == d.name()))
        .collect();
    if kinds.is_empty() {
        return Err("no kind of change selected".into());
    }
    let client = kube_client().await?;
    install_crd(&client).await;
    let emulator = PrivateEmulator::start(&[("PLINTH_PENDING_SECONDS", "0")])?;
    let config = emulator.sdk_config().await?;
    let aws = plinth_e2e::reader_clients(&config);
    let binary = operator_beside_this_binary()?
        .to_string_lossy()
        .into_owned();
    let ns = TestNamespace::create(&client, "drift").await;
    let namespace = ns.name.clone();
    let resync = args.resync_seconds.to_string();
    let operator = OperatorProcess::spawn_with(
        &binary,
        &namespace,
        "drift-0",
        &[
            ("AWS_ENDPOINT_URL", emulator.endpoint.as_str()),
            ("PLINTH_RESYNC_SECONDS", resync.as_str()),
        ],
    );
    let limit = Duration::from_secs(args.resync_seconds + args.slack_seconds);
    println!(
        "drift campaign: {} change(s) of {} kind(s), seed {}, batch {}, resync {} s, limit {:?} \
         per correction, private emulator {}",
        args.changes,
        kinds.len(),
        args.seed,
        args.batch,
        args.resync_seconds,
        limit,
        emulator.endpoint
    );
    let drifted: BTreeSet<&str> = kinds.iter().map(|d| d.kind().as_str()).collect();
    println!(
        "  resource kinds drifted: {}",
        drifted.into_iter().collect::<Vec<_>>().join(", ")
    );
    for (kind, why) in UNDRIFTED {
        println!("  not drifted: {kind}: {why}");
    }
    let started = Instant::now();
    let outcome = campaign(&args, &kinds, &ns, &aws, &operator, limit).await;
    // Teardown whatever happened, so nothing is left watching the namespace.
    let api = ns.platforms();
    let timeout = Duration::from_secs(args.timeout);
    let teardown = async {
        if api.get_opt("drift").await?.is_some() {
            api.delete("drift", &DeleteParams::default()).await?;
            let gone = wait("the platform gone after the delete", timeout, async || {
                Ok(api.get_opt("drift").await?.is_none())
            })
            .await?;
            println!("platform deleted (AWS torn down, finalizer released) in {gone:.1?}");
        }
        Ok::<(), Failure>(())
    }
    .await;
    drop(operator);
    ns.delete().await;
    println!("campaign took {:.0?}", started.elapsed());
    let ok = outcome?;
    teardown?;
    Ok(ok)
}

async fn campaign(
    args: &Args,
    kinds: &[Drift],
    ns: &TestNamespace,
    aws: &AwsClients,
    operator: &OperatorProcess,
    limit: Duration,
) -> Result<bool, Failure> {
    let api = ns.platforms();
    let name = "drift";
    let dp = example("minimal.yaml", name, &ns.name);
    let scope = Scope::new(&ns.name, name, dp.spec.tags.clone());
    api.create(&PostParams::default(), &dp).await?;
    let to_ready = wait("Ready", Duration::from_secs(args.timeout), async || {
        Ok(ready(&api.get(name).await?))
    })
    .await?;
    println!("platform Ready in {to_ready:.1?}");
    let intent = Intent::steady(api.get(name).await?.spec);
    let ids = resolve(aws, &scope, &intent).await?;

    // Someone else's security group in the platform's VPC, with a rule: never Plinth's.
    let foreign = aws
        .ec2()
        .await
        .create_security_group()
        .group_name(format!("drift-campaign-{}", ns.name))
        .description("not Plinth's: the drift campaign's control")
        .vpc_id(&ids.vpc)
        .send()
        .await?
        .group_id()
        .ok_or("the foreign group has no id")?
        .to_owned();
    aws.ec2()
        .await
        .authorize_security_group_ingress()
        .group_id(&foreign)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(9999)
                .to_port(9999)
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip("10.0.0.0/16")
                        .build(),
                )
                .build(),
        )
        .send()
        .await?;
    let mut controls: BTreeMap<Control, String> = BTreeMap::new();
    controls.insert(
        Control::ForeignGroup,
        control_value(aws, &ids, &Control::ForeignGroup, &foreign)
            .await?
            .ok_or("the foreign group cannot be read")?,
    );

    let mut baseline = BTreeMap::new();
    for drift in kinds {
        baseline.insert(*drift, read(aws, &ids, *drift).await?);
    }
    if !baseline
        .get(&Drift::PrivateRouteDeleted)
        .is_none_or(|routes| routes.contains(&format!("0.0.0.0/0>{}", ids.nat_b)))
    {
        return Err("zone b's private table has no default route to its NAT gateway".into());
    }
    let calls_before = calls(operator).await?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut used: BTreeMap<Drift, usize> = BTreeMap::new();
    let mut tallies: BTreeMap<Drift, Tally> = BTreeMap::new();
    let mut broken: BTreeSet<Drift> = BTreeSet::new();
    let mut failures = Vec::new();
    let mut made = 0;
    let mut round = 0;
    while made < args.changes {
        let eligible: Vec<Drift> = kinds
            .iter()
            .copied()
            .filter(|d| !broken.contains(d))
            .collect();
        if eligible.is_empty() {
            break;
        }
        let k = if made < kinds.len() {
            1
        } else {
            args.batch.max(1)
        };
        let batch = pick(&mut rng, &eligible, &used, k.min(args.changes - made));
        let settle = args.settle_seconds.unwrap_or(args.resync_seconds) * 1000;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..=settle))).await;
        let mut pending: Vec<(Drift, Instant)> = Vec::new();
        for drift in &batch {
            apply(aws, &ids, *drift, round)
                .await
                .map_err(|e| format!("making {}: {e:?}", drift.name()))?;
            let at = Instant::now();
            let now = read(aws, &ids, *drift).await?;
            if now == baseline[drift] {
                return Err(format!("{}: the drift was not made ({now})", drift.name()).into());
            }
            let target = drift.tagged(&ids);
            let key = format!("drift-campaign/{}", drift.name());
            let value = format!("round-{round}");
            tag(aws, &target, &key, &value).await?;
            controls.insert(Control::Tag(target, key), value);
            match drift {
                Drift::LbDropInvalidHeaders => {
                    controls.insert(Control::IdleTimeout, idle_timeout(round).to_string());
                }
                Drift::DbSlowQueryLog => {
                    controls.insert(Control::Parameter("innodb_print_all_deadlocks"), "1".into());
                }
                _ => {}
            }
            *used.entry(*drift).or_default() += 1;
            tallies.entry(*drift).or_default().made += 1;
            pending.push((*drift, at));
            made += 1;
        }
        let names: Vec<&str> = batch.iter().map(|d| d.name()).collect();
        let round_started = Instant::now();
        let mut lines = Vec::new();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for (drift, at) in pending {
                let now = read(aws, &ids, drift).await?;
                if now == baseline[&drift] {
                    let took = at.elapsed();
                    let tally = tallies.entry(drift).or_default();
                    tally.corrected += 1;
                    tally.seconds.push(took.as_secs_f64());
                    lines.push(format!("{} {:.1}s", drift.name(), took.as_secs_f64()));
                } else if at.elapsed() > limit {
                    lines.push(format!(
                        "{} NOT corrected within {limit:?}: {now} (wanted {})",
                        drift.name(),
                        baseline[&drift]
                    ));
                    failures.push(format!("round {round}: {} not corrected", drift.name()));
                    broken.insert(drift);
                } else {
                    still.push((drift, at));
                }
            }
            pending = still;
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        println!(
            "  round {round:>3} [{}]: {} ({:.1?})",
            names.join(", "),
            lines.join("; "),
            round_started.elapsed()
        );
        round += 1;
    }
    let calls_after = calls(operator).await?;

    // Unmanaged controls.
    let mut kept = 0;
    for (control, expected) in &controls {
        let now = control_value(aws, &ids, control, &foreign).await?;
        if now.as_deref() == Some(expected.as_str()) {
            kept += 1;
        } else {
            failures.push(format!(
                "unmanaged {control:?} changed: {now:?}, was {expected:?}"
            ));
        }
    }
    // A correction pass may still be writing its status: Ready again within the limit.
    let still_ready = match wait("Ready after the rounds", limit, async || {
        Ok(ready(&api.get(name).await?))
    })
    .await
    {
        Ok(_) => true,
        Err(e) => {
            let dp = api.get(name).await?;
            failures.push(format!("{e}: Ready is {:?}", condition(&dp, "Ready")));
            false
        }
    };

    // The figures.
    println!();
    println!(
        "{:<26} {:>5} {:>9} {:>8} {:>8}",
        "kind", "made", "corrected", "median s", "max s"
    );
    for (drift, tally) in &tallies {
        let max = tally.seconds.iter().copied().fold(f64::NAN, f64::max);
        println!(
            "{:<26} {:>5} {:>9} {:>8.1} {:>8.1}",
            drift.name(),
            tally.made,
            tally.corrected,
            median(&tally.seconds),
            max
        );
    }
    let all: Vec<f64> = tallies.values().flat_map(|t| t.seconds.clone()).collect();
    let corrected: usize = tallies.values().map(|t| t.corrected).sum();
    println!(
        "{:<26} {:>5} {:>9} {:>8.1} {:>8.1}",
        "all",
        made,
        corrected,
        median(&all),
        all.iter().copied().fold(f64::NAN, f64::max)
    );
    println!(
        "unmanaged changes kept: {kept}/{} (tags on drifted resources, ALB idle timeout, \
         innodb_print_all_deadlocks, a foreign security group in the VPC)",
        controls.len()
    );
    let allowed: BTreeSet<&str> = tallies
        .keys()
        .flat_map(|d| d.repair_operations().iter().copied())
        .collect();
    let (mut reads, mut writes) = (0u64, 0u64);
    let mut by_write = BTreeMap::new();
    let mut unexpected = Vec::new();
    for (key, count) in &calls_after {
        let delta = count.saturating_sub(calls_before.get(key).copied().unwrap_or(0));
        if delta == 0 {
            continue;
        }
        if is_read(&key.1) {
            reads += delta;
        } else {
            writes += delta;
            by_write.insert(format!("{}:{}", key.0, key.1), delta);
            if !allowed.contains(key.1.as_str()) {
                unexpected.push(format!("{}:{} ×{delta}", key.0, key.1));
            }
        }
    }
    println!(
        "operator AWS calls during the rounds: {reads} reads, {writes} writes ({:.2} writes per change)",
        writes as f64 / made.max(1) as f64
    );
    for (operation, count) in &by_write {
        println!("  write {operation:<48} {count}");
    }
    if unexpected.is_empty() {
        println!("no write outside the operations that correct the drifted kinds");
    } else {
        println!(
            "writes of operations no drifted kind needs: {}",
            unexpected.join(", ")
        );
    }
    println!("platform still Ready: {still_ready}");
    for failure in &failures {
        println!("FAILED: {failure}");
    }

    // The foreign group would keep the VPC from being deleted.
    aws.ec2()
        .await
        .delete_security_group()
        .group_id(&foreign)
        .send()
        .await?;
    Ok(failures.is_empty() && made == args.changes)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("campaign-drift: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod registry_tests {
    use super::*;

    #[test]
    fn every_registered_kind_is_drifted_or_says_why_not() {
        use plinth_operator::components::KINDS;
        for kind in KINDS {
            let drifted = CATALOGUE.iter().any(|d| d.kind() == kind);
            let excused = UNDRIFTED.iter().any(|(k, _)| *k == kind);
            assert!(
                drifted != excused,
                "{kind}: in the catalogue {drifted}, in UNDRIFTED {excused} (exactly one)"
            );
        }
        for (kind, _) in UNDRIFTED {
            assert!(KINDS.contains(kind), "{kind} is not registered");
        }
    }
}
