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
use plinth_operator::engine::PLATFORM_TAG;

/// The tag a `Retain` deletion policy leaves on what it kept.
const RETAINED_TAG: &str = "plinth.dev/retained";

/// One resource that still carries a platform tag.
struct Found {
    kind: &'static str,
    id: String,
    platform: String,
}

type Tags = BTreeMap<String, String>;

/// Keeps the resource when it is tagged for a platform and not retained on purpose.
fn keep(out: &mut Vec<Found>, kind: &'static str, id: &str, tags: &Tags) {
    let Some(platform) = tags.get(PLATFORM_TAG) else {
        return;
    };
    if tags.get(RETAINED_TAG).map(String::as_str) == Some("true") {
        return;
    }
    out.push(Found {
        kind,
        id: id.to_owned(),
        platform: platform.clone(),
    });
}

fn pairs<'a>(items: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>) -> Tags {
    items
        .into_iter()
        .filter_map(|(k, v)| Some((k?.to_owned(), v.unwrap_or_default().to_owned())))
        .collect()
}

type Failure = Box<dyn std::error::Error>;

async fn ec2(aws: &AwsClients, out: &mut Vec<Found>) -> Result<(), Failure> {
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
        keep(out, "vpc", v.vpc_id().unwrap_or_default(), &tags(v.tags()));
    }
    for s in c
        .describe_subnets()
        .filters(tagged())
        .send()
        .await?
        .subnets()
    {
        keep(
            out,
            "subnet",
            s.subnet_id().unwrap_or_default(),
            &tags(s.tags()),
        );
    }
    let igws = c
        .describe_internet_gateways()
        .filters(tagged())
        .send()
        .await?;
    for g in igws.internet_gateways() {
        let id = g.internet_gateway_id().unwrap_or_default();
        keep(out, "internet-gateway", id, &tags(g.tags()));
    }
    for a in c
        .describe_addresses()
        .filters(tagged())
        .send()
        .await?
        .addresses()
    {
        keep(
            out,
            "elastic-ip",
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
        keep(
            out,
            "nat-gateway",
            n.nat_gateway_id().unwrap_or_default(),
            &tags(n.tags()),
        );
    }
    let tables = c.describe_route_tables().filters(tagged()).send().await?;
    for t in tables.route_tables() {
        keep(
            out,
            "route-table",
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
        keep(
            out,
            "security-group",
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
        keep(out, "launch-template", id, &tags(t.tags()));
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
        keep(
            out,
            "instance",
            i.instance_id().unwrap_or_default(),
            &tags(i.tags()),
        );
    }
    Ok(())
}

async fn rds(aws: &AwsClients, out: &mut Vec<Found>) -> Result<(), Failure> {
    let tags = |t: &[aws_sdk_rds::types::Tag]| pairs(t.iter().map(|t| (t.key(), t.value())));
    let c = aws.rds().await;
    for cluster in c.describe_db_clusters().send().await?.db_clusters() {
        let id = cluster.db_cluster_identifier().unwrap_or_default();
        keep(out, "db-cluster", id, &tags(cluster.tag_list()));
    }
    for instance in c.describe_db_instances().send().await?.db_instances() {
        let id = instance.db_instance_identifier().unwrap_or_default();
        keep(out, "db-instance", id, &tags(instance.tag_list()));
    }
    // Subnet and parameter groups carry no tags in their describe output: ask per ARN.
    let mut arns: Vec<(&'static str, String)> = Vec::new();
    let subnet_groups = c.describe_db_subnet_groups().send().await?;
    for g in subnet_groups.db_subnet_groups() {
        if let Some(arn) = g.db_subnet_group_arn() {
            arns.push(("db-subnet-group", arn.to_owned()));
        }
    }
    let parameter_groups = c.describe_db_cluster_parameter_groups().send().await?;
    for g in parameter_groups.db_cluster_parameter_groups() {
        if let Some(arn) = g.db_cluster_parameter_group_arn() {
            arns.push(("db-cluster-parameter-group", arn.to_owned()));
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
        keep(out, kind, &arn, &tags(listed.tag_list()));
    }
    Ok(())
}

async fn elbv2(aws: &AwsClients, out: &mut Vec<Found>) -> Result<(), Failure> {
    let c = aws.elbv2().await;
    let mut arns: Vec<(&'static str, String)> = Vec::new();
    for lb in c.describe_load_balancers().send().await?.load_balancers() {
        if let Some(arn) = lb.load_balancer_arn() {
            arns.push(("load-balancer", arn.to_owned()));
        }
    }
    for tg in c.describe_target_groups().send().await?.target_groups() {
        if let Some(arn) = tg.target_group_arn() {
            arns.push(("target-group", arn.to_owned()));
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
            let kind = chunk
                .iter()
                .find(|(_, a)| a == arn)
                .map_or("elbv2", |(k, _)| *k);
            let tags = pairs(description.tags().iter().map(|t| (t.key(), t.value())));
            keep(out, kind, arn, &tags);
        }
    }
    Ok(())
}

async fn autoscaling(aws: &AwsClients, out: &mut Vec<Found>) -> Result<(), Failure> {
    let groups = aws
        .autoscaling()
        .await
        .describe_auto_scaling_groups()
        .send()
        .await?;
    for group in groups.auto_scaling_groups() {
        let tags = pairs(group.tags().iter().map(|t| (t.key(), t.value())));
        let name = group.auto_scaling_group_name().unwrap_or_default();
        keep(out, "auto-scaling-group", name, &tags);
    }
    Ok(())
}

async fn iam(aws: &AwsClients, out: &mut Vec<Found>) -> Result<(), Failure> {
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
        keep(out, "iam-role", role.arn(), &tags);
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
        keep(out, "instance-profile", profile.arn(), &tags);
    }
    Ok(())
}

async fn sns(aws: &AwsClients, out: &mut Vec<Found>) -> Result<(), Failure> {
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
        keep(out, "sns-topic", arn, &tags);
    }
    Ok(())
}

async fn cloudwatch(aws: &AwsClients, out: &mut Vec<Found>) -> Result<(), Failure> {
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
        keep(out, "alarm", arn, &tags);
    }
    Ok(())
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

async fn scan(aws: &AwsClients) -> Result<Vec<Found>, Failure> {
    let mut found = Vec::new();
    ec2(aws, &mut found).await?;
    rds(aws, &mut found).await?;
    elbv2(aws, &mut found).await?;
    autoscaling(aws, &mut found).await?;
    iam(aws, &mut found).await?;
    sns(aws, &mut found).await?;
    cloudwatch(aws, &mut found).await?;
    Ok(found)
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
    let mut found = match scan(&aws).await {
        Ok(found) => found,
        Err(e) => {
            eprintln!("leak-check: reading the emulator failed: {e}");
            return ExitCode::from(2);
        }
    };
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
