//! The suite-wide leak check: after the end-to-end tests, nothing in the stack's AWS emulator may
//! still carry the platform tag of a platform this run created, except what a `Retain` deletion
//! policy kept on purpose (tagged `plinth.dev/retained=true`). `tests/run` runs it after
//! `cargo test` and fails the run when it finds anything; each finding names the kind, the id and
//! the platform, so the test that leaked is easy to find.
//!
//! The emulator's data plane is read too: an instance of a run's platform still running (its
//! cloud-init, its unit, any process left in its cgroup) after the platform is gone is a leak
//! of the same kind, found through `GET /_plinth/dataplane`.
//!
//! The test namespaces of the run are read too: with the stack's kube-controller-manager a
//! deleted namespace goes once its objects are gone, so one of this run still there a minute
//! after the tests (`Terminating` on a finalizer nobody releases, or never deleted) is a leak.
//!
//! Which kinds it sweeps comes from the operator's registry (`components::KINDS`): every
//! registered kind must be read by one of the sweeps below, or be named in [`WITH_PARENT`] as
//! going with a swept parent (a listener with its load balancer). A kind added to the operator
//! and forgotten here fails the check (exit 2) before it reads anything else.
//!
//! A run's platforms are recognised by the run id in their names (`PLINTH_TEST_RUN`, which
//! `tests/run` sets and `plinth_e2e::unique_name` embeds), so leftovers of earlier runs on a
//! reused stack are reported separately and do not fail this one.
//!
//! ```sh
//! PLINTH_TEST_RUN=<id> cargo run -p plinth-e2e --bin leak-check
//! ```

use std::collections::BTreeMap;
use std::process::ExitCode;

use plinth_e2e::{aws_config, stack_var};
use plinth_operator::aws::AwsClients;
use plinth_operator::components::KINDS;
use plinth_operator::compute::{
    AUTO_SCALING_GROUP, IAM_ROLE, INSTANCE_PROFILE, LAUNCH_TEMPLATE, SCALING_POLICY,
};
use plinth_operator::database::{
    DATABASE_SECRET, DB_CLUSTER, DB_CLUSTER_PARAMETER_GROUP, DB_INSTANCE, DB_SUBNET_GROUP,
};
use plinth_operator::engine::{Kind, PLATFORM_TAG};
use plinth_operator::monitoring::{ALARM, ALARM_SUBSCRIPTION, ALARM_TOPIC};
use plinth_operator::network::{
    ELASTIC_IP, INTERNET_GATEWAY, NAT_GATEWAY, ROUTE_TABLE, SECURITY_GROUP, SUBNET, VPC,
};
use plinth_operator::serving::{LISTENER, LOAD_BALANCER, TARGET_GROUP};

/// The tag a `Retain` deletion policy leaves on what it kept.
const RETAINED_TAG: &str = "plinth.dev/retained";

/// Kinds no sweep reads, because AWS deletes them with a parent the sweeps do read: the
/// child, its parent, and why.
const WITH_PARENT: &[(Kind, Kind, &str)] = &[
    (
        LISTENER,
        LOAD_BALANCER,
        "ELBv2 deletes a load balancer's listeners with it",
    ),
    (
        SCALING_POLICY,
        AUTO_SCALING_GROUP,
        "Auto Scaling deletes a group's policies with it",
    ),
    (
        ALARM_SUBSCRIPTION,
        ALARM_TOPIC,
        "SNS deletes a topic's subscriptions with it",
    ),
];

/// One resource that still carries a platform tag.
struct Found {
    kind: &'static str,
    id: String,
    platform: String,
}

type Tags = BTreeMap<String, String>;

/// What the sweeps found, and which registered kinds they read.
#[derive(Default)]
struct Sweep {
    found: Vec<Found>,
    swept: std::collections::BTreeSet<Kind>,
}

impl Sweep {
    /// Notes that `kinds` were read (call it before reading them, so an empty answer counts).
    fn reads(&mut self, kinds: &[Kind]) {
        self.swept.extend(kinds.iter().copied());
    }

    /// Keeps the resource when it is tagged for a platform and not retained on purpose.
    fn keep(&mut self, kind: Kind, id: &str, tags: &Tags) {
        let Some(platform) = tags.get(PLATFORM_TAG) else {
            return;
        };
        if tags.get(RETAINED_TAG).map(String::as_str) == Some("true") {
            return;
        }
        self.found.push(Found {
            kind: kind.as_str(),
            id: id.to_owned(),
            platform: platform.clone(),
        });
    }
}

/// The registered kinds that no sweep read and no [`WITH_PARENT`] entry covers.
fn unswept(swept: &std::collections::BTreeSet<Kind>) -> Vec<Kind> {
    KINDS
        .iter()
        .copied()
        .filter(|kind| {
            !swept.contains(kind)
                && !WITH_PARENT
                    .iter()
                    .any(|(child, parent, _)| child == kind && swept.contains(parent))
        })
        .collect()
}

fn pairs<'a>(items: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>) -> Tags {
    items
        .into_iter()
        .filter_map(|(k, v)| Some((k?.to_owned(), v.unwrap_or_default().to_owned())))
        .collect()
}

type Failure = Box<dyn std::error::Error>;

async fn ec2(aws: &AwsClients, out: &mut Sweep) -> Result<(), Failure> {
    out.reads(&[
        VPC,
        SUBNET,
        INTERNET_GATEWAY,
        ELASTIC_IP,
        NAT_GATEWAY,
        ROUTE_TABLE,
        SECURITY_GROUP,
        LAUNCH_TEMPLATE,
    ]);
    use aws_sdk_ec2::types::Filter;
    let tagged = || {
        Filter::builder()
            .name("tag-key")
            .values(PLATFORM_TAG)
            .build()
    };
    let tags = |t: &[aws_sdk_ec2::types::Tag]| pairs(t.iter().map(|t| (t.key(), t.value())));
    let c = aws.ec2().await;
    for v in c.describe_vpcs().filters(tagged()).send().await?.vpcs() {
        out.keep(VPC, v.vpc_id().unwrap_or_default(), &tags(v.tags()));
    }
    for s in c
        .describe_subnets()
        .filters(tagged())
        .send()
        .await?
        .subnets()
    {
        out.keep(SUBNET, s.subnet_id().unwrap_or_default(), &tags(s.tags()));
    }
    let igws = c
        .describe_internet_gateways()
        .filters(tagged())
        .send()
        .await?;
    for g in igws.internet_gateways() {
        let id = g.internet_gateway_id().unwrap_or_default();
        out.keep(INTERNET_GATEWAY, id, &tags(g.tags()));
    }
    for a in c
        .describe_addresses()
        .filters(tagged())
        .send()
        .await?
        .addresses()
    {
        out.keep(
            ELASTIC_IP,
            a.allocation_id().unwrap_or_default(),
            &tags(a.tags()),
        );
    }
    let nats = c.describe_nat_gateways().filter(tagged()).send().await?;
    for n in nats.nat_gateways() {
        // AWS lists deleted NAT gateways for about an hour: they are gone, not leaked.
        if n.state() == Some(&aws_sdk_ec2::types::NatGatewayState::Deleted) {
            continue;
        }
        out.keep(
            NAT_GATEWAY,
            n.nat_gateway_id().unwrap_or_default(),
            &tags(n.tags()),
        );
    }
    let tables = c.describe_route_tables().filters(tagged()).send().await?;
    for t in tables.route_tables() {
        out.keep(
            ROUTE_TABLE,
            t.route_table_id().unwrap_or_default(),
            &tags(t.tags()),
        );
    }
    let groups = c
        .describe_security_groups()
        .filters(tagged())
        .send()
        .await?;
    for g in groups.security_groups() {
        out.keep(
            SECURITY_GROUP,
            g.group_id().unwrap_or_default(),
            &tags(g.tags()),
        );
    }
    let templates = c
        .describe_launch_templates()
        .filters(tagged())
        .send()
        .await?;
    for t in templates.launch_templates() {
        let id = t.launch_template_id().unwrap_or_default();
        out.keep(LAUNCH_TEMPLATE, id, &tags(t.tags()));
    }
    let reservations = c.describe_instances().filters(tagged()).send().await?;
    for i in reservations
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
    {
        let state = i.state().and_then(|s| s.name());
        if state == Some(&aws_sdk_ec2::types::InstanceStateName::Terminated) {
            continue;
        }
        // Instances are the scaling groups' (not a kind of Plinth's): one left running
        // after its group is gone is a leak all the same.
        if let Some(platform) = tags(i.tags()).get(PLATFORM_TAG) {
            out.found.push(Found {
                kind: "instance",
                id: i.instance_id().unwrap_or_default().to_owned(),
                platform: platform.clone(),
            });
        }
    }
    Ok(())
}

async fn rds(aws: &AwsClients, out: &mut Sweep) -> Result<(), Failure> {
    out.reads(&[
        DB_CLUSTER,
        DB_INSTANCE,
        DB_SUBNET_GROUP,
        DB_CLUSTER_PARAMETER_GROUP,
    ]);
    let tags = |t: &[aws_sdk_rds::types::Tag]| pairs(t.iter().map(|t| (t.key(), t.value())));
    let c = aws.rds().await;
    for cluster in c.describe_db_clusters().send().await?.db_clusters() {
        let id = cluster.db_cluster_identifier().unwrap_or_default();
        out.keep(DB_CLUSTER, id, &tags(cluster.tag_list()));
    }
    for instance in c.describe_db_instances().send().await?.db_instances() {
        let id = instance.db_instance_identifier().unwrap_or_default();
        out.keep(DB_INSTANCE, id, &tags(instance.tag_list()));
    }
    // Subnet and parameter groups carry no tags in their describe output: ask per ARN.
    let mut arns: Vec<(Kind, String)> = Vec::new();
    let subnet_groups = c.describe_db_subnet_groups().send().await?;
    for g in subnet_groups.db_subnet_groups() {
        if let Some(arn) = g.db_subnet_group_arn() {
            arns.push((DB_SUBNET_GROUP, arn.to_owned()));
        }
    }
    let parameter_groups = c.describe_db_cluster_parameter_groups().send().await?;
    for g in parameter_groups.db_cluster_parameter_groups() {
        if let Some(arn) = g.db_cluster_parameter_group_arn() {
            arns.push((DB_CLUSTER_PARAMETER_GROUP, arn.to_owned()));
        }
    }
    for (kind, arn) in arns {
        let listed = aws
            .rds()
            .await
            .list_tags_for_resource()
            .resource_name(&arn)
            .send()
            .await?;
        out.keep(kind, &arn, &tags(listed.tag_list()));
    }
    Ok(())
}

async fn elbv2(aws: &AwsClients, out: &mut Sweep) -> Result<(), Failure> {
    out.reads(&[LOAD_BALANCER, TARGET_GROUP]);
    let c = aws.elbv2().await;
    let mut arns: Vec<(Kind, String)> = Vec::new();
    for lb in c.describe_load_balancers().send().await?.load_balancers() {
        if let Some(arn) = lb.load_balancer_arn() {
            arns.push((LOAD_BALANCER, arn.to_owned()));
        }
    }
    for tg in c.describe_target_groups().send().await?.target_groups() {
        if let Some(arn) = tg.target_group_arn() {
            arns.push((TARGET_GROUP, arn.to_owned()));
        }
    }
    // DescribeTags takes at most 20 ARNs per call.
    for chunk in arns.chunks(20) {
        let described = aws
            .elbv2()
            .await
            .describe_tags()
            .set_resource_arns(Some(chunk.iter().map(|(_, arn)| arn.clone()).collect()))
            .send()
            .await?;
        for description in described.tag_descriptions() {
            let arn = description.resource_arn().unwrap_or_default();
            let Some(kind) = chunk.iter().find(|(_, a)| a == arn).map(|(k, _)| *k) else {
                continue;
            };
            let tags = pairs(description.tags().iter().map(|t| (t.key(), t.value())));
            out.keep(kind, arn, &tags);
        }
    }
    Ok(())
}

async fn autoscaling(aws: &AwsClients, out: &mut Sweep) -> Result<(), Failure> {
    out.reads(&[AUTO_SCALING_GROUP]);
    let groups = aws
        .autoscaling()
        .await
        .describe_auto_scaling_groups()
        .send()
        .await?;
    for group in groups.auto_scaling_groups() {
        let tags = pairs(group.tags().iter().map(|t| (t.key(), t.value())));
        let name = group.auto_scaling_group_name().unwrap_or_default();
        out.keep(AUTO_SCALING_GROUP, name, &tags);
    }
    Ok(())
}

async fn iam(aws: &AwsClients, out: &mut Sweep) -> Result<(), Failure> {
    out.reads(&[IAM_ROLE, INSTANCE_PROFILE]);
    let roles = aws
        .iam()
        .await
        .list_roles()
        .path_prefix("/plinth/")
        .send()
        .await?;
    for role in roles.roles() {
        let listed = aws
            .iam()
            .await
            .list_role_tags()
            .role_name(role.role_name())
            .send()
            .await?;
        let tags = pairs(
            listed
                .tags()
                .iter()
                .map(|t| (Some(t.key()), Some(t.value()))),
        );
        out.keep(IAM_ROLE, role.arn(), &tags);
    }
    let profiles = aws
        .iam()
        .await
        .list_instance_profiles()
        .path_prefix("/plinth/")
        .send()
        .await?;
    for profile in profiles.instance_profiles() {
        // A profile of ours outlives its platform only as a leak: its name holds the platform
        // hash, its tags may be absent (not every IAM API version returned them).
        let tags = pairs(
            profile
                .tags()
                .iter()
                .map(|t| (Some(t.key()), Some(t.value()))),
        );
        out.keep(INSTANCE_PROFILE, profile.arn(), &tags);
    }
    Ok(())
}

async fn sns(aws: &AwsClients, out: &mut Sweep) -> Result<(), Failure> {
    out.reads(&[ALARM_TOPIC]);
    let topics = aws.sns().await.list_topics().send().await?;
    for topic in topics.topics() {
        let Some(arn) = topic.topic_arn() else {
            continue;
        };
        let listed = aws
            .sns()
            .await
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await?;
        let tags = pairs(
            listed
                .tags()
                .iter()
                .map(|t| (Some(t.key()), Some(t.value()))),
        );
        out.keep(ALARM_TOPIC, arn, &tags);
    }
    Ok(())
}

async fn cloudwatch(aws: &AwsClients, out: &mut Sweep) -> Result<(), Failure> {
    out.reads(&[ALARM]);
    let alarms = aws.cloudwatch().await.describe_alarms().send().await?;
    for alarm in alarms.metric_alarms() {
        let Some(arn) = alarm.alarm_arn() else {
            continue;
        };
        let listed = aws
            .cloudwatch()
            .await
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await?;
        let tags = pairs(listed.tags().iter().map(|t| (t.key(), t.value())));
        out.keep(ALARM, arn, &tags);
    }
    Ok(())
}

async fn secretsmanager(aws: &AwsClients, out: &mut Sweep) -> Result<(), Failure> {
    use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
    out.reads(&[DATABASE_SECRET]);
    let mut token = None;
    loop {
        // Secrets scheduled for deletion are not listed: RDS deleting a cluster's secret is
        // the secret going, not leaking.
        let listed = aws
            .secretsmanager()
            .await
            .list_secrets()
            .filters(
                Filter::builder()
                    .key(FilterNameStringType::TagKey)
                    .values(PLATFORM_TAG)
                    .build(),
            )
            .set_next_token(token)
            .send()
            .await?;
        for secret in listed.secret_list() {
            let tags = pairs(secret.tags().iter().map(|t| (t.key(), t.value())));
            out.keep(DATABASE_SECRET, secret.arn().unwrap_or_default(), &tags);
        }
        token = listed.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(());
        }
    }
}

/// Instances the data plane still runs, or whose processes outlived them: the group they were
/// launched by stands for the platform (its name holds the platform's namespace and name).
async fn instances(endpoint: &str, out: &mut Vec<Found>) -> Result<(), Failure> {
    let view = plinth_e2e::dataplane::describe(endpoint).await?;
    for (id, instance) in view["instances"].as_object().into_iter().flatten() {
        let running = instance["state"] != "stopped";
        let processes = instance["pids"].as_array().is_some_and(|p| !p.is_empty());
        if running || processes {
            out.push(Found {
                kind: "instance (data plane)",
                id: format!("{id} ({}, pids {})", instance["state"], instance["pids"]),
                platform: instance["group"].as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    Ok(())
}

async fn scan(aws: &AwsClients) -> Result<Sweep, Failure> {
    let mut sweep = Sweep::default();
    ec2(aws, &mut sweep).await?;
    rds(aws, &mut sweep).await?;
    elbv2(aws, &mut sweep).await?;
    autoscaling(aws, &mut sweep).await?;
    iam(aws, &mut sweep).await?;
    sns(aws, &mut sweep).await?;
    cloudwatch(aws, &mut sweep).await?;
    secretsmanager(aws, &mut sweep).await?;
    Ok(sweep)
}

/// How long the namespace controller may take to finish the deletes the last tests made.
const NAMESPACE_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// This run's namespaces still there after [`NAMESPACE_GRACE`], with their phase and the
/// conditions that say what holds them.
async fn namespaces_left(marker: &str) -> Result<Vec<(String, String)>, Failure> {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, ListParams};

    let client = plinth_e2e::kube_client().await?;
    let api: Api<Namespace> = Api::all(client);
    let deadline = std::time::Instant::now() + NAMESPACE_GRACE;
    loop {
        let left: Vec<Namespace> = api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|ns| {
                ns.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.contains(marker))
            })
            .collect();
        if left.is_empty() || std::time::Instant::now() > deadline {
            return Ok(left
                .into_iter()
                .map(|ns| {
                    let status = ns.status.unwrap_or_default();
                    let held: Vec<String> = status
                        .conditions
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|c| c.status == "True")
                        .map(|c| format!("{}: {}", c.type_, c.message.unwrap_or_default()))
                        .collect();
                    (
                        ns.metadata.name.unwrap_or_default(),
                        format!("{} {}", status.phase.unwrap_or_default(), held.join("; ")),
                    )
                })
                .collect());
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let run = match std::env::var("PLINTH_TEST_RUN") {
        Ok(run) if !run.is_empty() => run,
        _ => {
            eprintln!("leak-check: set PLINTH_TEST_RUN to the run id the tests ran with");
            return ExitCode::from(2);
        }
    };
    let config = match aws_config().await {
        Ok(config) => config,
        Err(e) => {
            eprintln!("leak-check: {e}");
            return ExitCode::from(2);
        }
    };
    let region = stack_var("AWS_REGION").unwrap_or_default();
    let aws = plinth_e2e::reader_clients(&config);
    let sweep = match scan(&aws).await {
        Ok(sweep) => sweep,
        Err(e) => {
            eprintln!("leak-check: reading the emulator failed: {e}");
            return ExitCode::from(2);
        }
    };
    let forgotten = unswept(&sweep.swept);
    if !forgotten.is_empty() {
        eprintln!(
            "leak-check: no sweep reads these registered kinds: {}; add one (or a WITH_PARENT entry) to tests/src/bin/leak-check.rs",
            forgotten
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return ExitCode::from(2);
    }
    println!(
        "leak-check: swept {} of the operator's {} kinds, the other {} with their parents",
        sweep.swept.len(),
        KINDS.len(),
        KINDS.len() - sweep.swept.len()
    );
    let mut found = sweep.found;
    let endpoint = stack_var("AWS_ENDPOINT_URL").unwrap_or_default();
    if let Err(e) = instances(&endpoint, &mut found).await {
        eprintln!("leak-check: reading the emulator's data plane failed: {e}");
        return ExitCode::from(2);
    }
    // Names embed the run id between hyphens (see plinth_e2e::unique_name).
    let marker = format!("-{run}-");
    let (ours, older): (Vec<_>, Vec<_>) = found.iter().partition(|f| f.platform.contains(&marker));
    if !older.is_empty() {
        println!(
            "leak-check: {} tagged resource(s) from earlier runs remain in the emulator (not this run's; `tests/stack/down aws && tests/stack/up aws` clears them)",
            older.len()
        );
    }
    let namespaces = match namespaces_left(&marker).await {
        Ok(namespaces) => namespaces,
        Err(e) => {
            eprintln!("leak-check: reading the API server's namespaces failed: {e}");
            return ExitCode::from(2);
        }
    };
    for (name, state) in &namespaces {
        println!("leak-check: namespace {name} of this run remains: {state}");
    }
    if ours.is_empty() {
        println!(
            "leak-check: run {run} in {region}: zero resources tagged for its platforms remain, and no instance of theirs runs"
        );
        return if namespaces.is_empty() {
            println!("leak-check: run {run}: every test namespace of the run is gone");
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    println!(
        "leak-check: run {run} in {region}: {} resource(s) still tagged for this run's platforms:",
        ours.len()
    );
    for f in &ours {
        println!("  {:<28} {:<60} {}", f.kind, f.id, f.platform);
    }
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_kind_no_sweep_reads_is_reported_unless_its_parent_is_swept() {
        let all: std::collections::BTreeSet<Kind> = KINDS.iter().copied().collect();
        assert!(unswept(&all).is_empty());
        let mut without_secret = all.clone();
        without_secret.remove(&DATABASE_SECRET);
        assert_eq!(unswept(&without_secret), vec![DATABASE_SECRET]);
        let mut children_only: std::collections::BTreeSet<Kind> = all.clone();
        for (child, parent, _) in WITH_PARENT {
            assert!(KINDS.contains(child) && KINDS.contains(parent));
            children_only.remove(child);
        }
        assert!(unswept(&children_only).is_empty());
        children_only.remove(&LOAD_BALANCER);
        assert_eq!(unswept(&children_only), vec![LOAD_BALANCER, LISTENER]);
    }
}
