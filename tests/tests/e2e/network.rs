//! End-to-end tests of the network components against the local AWS emulator (moto behind the
//! strict layer): apply, read back, steady state, drift, teardown, isolation between platforms,
//! and no duplicates after a crash or a lost response. Each test has its own platform
//! (`<unique namespace>/<name>`), so they run at once; the AWS calls a test counts are those of
//! its own clients (an SDK interceptor), never the emulator's global counts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, Tag};
use plinth_e2e::{START_HINT, StackError, aws_config, stack_var, unique_name};
use plinth_operator::aws::{AwsClients, AwsOptions};
use plinth_operator::cli::{self, Pace, SpecFile};
use plinth_operator::components;
use plinth_operator::engine::{COMPONENT_TAG, PLATFORM_TAG};
use plinth_operator::platform::Platform;

/// Everything one test needs: its platform's spec, the engine acting through its own clients,
/// and a separate client to read AWS back with (uncounted).
struct Harness {
    file: SpecFile,
    clients: AwsClients,
    platform: Platform,
    reader: aws_sdk_ec2::Client,
}

/// Fails (never skips) when the emulator is not there, with the command that starts it.
async fn emulator() -> Result<(aws_config::SdkConfig, String), StackError> {
    let endpoint = stack_var("AWS_ENDPOINT_URL")?;
    let health = format!("{}/_plinth/health", endpoint.trim_end_matches('/'));
    let unreachable = |source: Box<dyn std::error::Error + Send + Sync>| StackError::Unreachable {
        part: "the AWS emulator",
        endpoint: endpoint.clone(),
        source,
    };
    let response = plinth_e2e::http_get(&health)
        .await
        .map_err(|e| unreachable(e.into()))?;
    if !response.status().is_success() {
        return Err(unreachable(
            format!("{health} answered {}", response.status()).into(),
        ));
    }
    Ok((aws_config().await?, endpoint))
}

fn manifest(namespace: &str, name: &str, nat: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: plinth.dev/v1alpha1
kind: DataPlatform
metadata:
  name: {name}
  namespace: {namespace}
spec:
  region: eu-west-1
  network:
    cidr: 10.42.0.0/16
    availabilityZones: [eu-west-1a, eu-west-1b]
    natGateways: {nat}
  loadBalancer:
    allowedCidrs: [203.0.113.0/24, 198.51.100.0/24]
  compute:
    instanceType: t3.small
    imageId: ami-0123456789abcdef0
    minSize: 1
    maxSize: 2
  database:
    minCapacity: 0.5
    maxCapacity: 2
  app:
    version: 1.0.0
    artifact: s3://plinth-artifacts/plinth-ingest/1.0.0/plinth-ingest
    port: 8080
{extra}"#
    )
}

impl Harness {
    async fn new(nat: &str) -> Self {
        let (config, _) = emulator().await.unwrap_or_else(|e| panic!("{e}"));
        let namespace = unique_name("net");
        let text = manifest(&namespace, "ingest", nat, "");
        let file = cli::parse_spec(&text, Path::new("test.yaml")).unwrap_or_else(|e| panic!("{e}"));
        let clients = AwsClients::from_config(&config, &AwsOptions::default());
        let platform = components::network_only(&clients).unwrap_or_else(|e| panic!("{e}"));
        Self {
            file,
            clients,
            platform,
            reader: aws_sdk_ec2::Client::new(&config),
        }
    }

    fn name(&self) -> &str {
        self.file.scope.platform()
    }

    async fn converge(&self) -> cli::Finished {
        let pace = Pace {
            timeout: Duration::from_secs(120),
            interval: Duration::from_millis(500),
            visibility_window: plinth_e2e::CONSISTENT_VISIBILITY,
        };
        let name = self.name().to_owned();
        cli::converge(&self.platform, &self.file, pace, &mut |line| {
            eprintln!("[{name}] {line}")
        })
        .await
        .unwrap_or_else(|e| panic!("{name}: apply did not converge: {e}"))
    }

    async fn destroy(&self) {
        let pace = Pace {
            timeout: Duration::from_secs(120),
            interval: Duration::from_millis(500),
            visibility_window: plinth_e2e::CONSISTENT_VISIBILITY,
        };
        let name = self.name().to_owned();
        cli::destroy(&self.platform, &self.file, pace, &mut |line| {
            eprintln!("[{name}] {line}")
        })
        .await
        .unwrap_or_else(|e| panic!("{name}: destroy did not finish: {e}"));
        let left = tagged(&self.reader, self.name()).await;
        assert!(
            left.values().all(Vec::is_empty),
            "resources tagged for {} remain after destroy: {left:?}",
            self.name()
        );
    }
}

fn platform_filter(platform: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{PLATFORM_TAG}"))
        .values(platform)
        .build()
}

/// Whether `tags` name `platform` (moto ignores tag filters on DescribeNatGateways, so every
/// read here checks the tag itself, as the components do).
fn ours(tags: &[Tag], platform: &str) -> bool {
    tags.iter()
        .any(|t| t.key() == Some(PLATFORM_TAG) && t.value() == Some(platform))
}

fn component(tags: &[Tag]) -> String {
    tags.iter()
        .find(|t| t.key() == Some(COMPONENT_TAG))
        .and_then(|t| t.value())
        .unwrap_or("?")
        .to_owned()
}

/// Every resource of every network kind tagged for `platform`, as `(component, id)` per kind,
/// read straight from AWS (NAT gateways in state `deleted` are gone).
pub(crate) async fn tagged(
    ec2: &aws_sdk_ec2::Client,
    platform: &str,
) -> BTreeMap<&'static str, Vec<(String, String)>> {
    let f = || platform_filter(platform);
    let mut out = BTreeMap::new();
    let vpcs = ec2
        .describe_vpcs()
        .filters(f())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    out.insert(
        "vpc",
        vpcs.vpcs()
            .iter()
            .map(|v| {
                (
                    component(v.tags()),
                    v.vpc_id().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
    );
    let subnets = ec2
        .describe_subnets()
        .filters(f())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    out.insert(
        "subnet",
        subnets
            .subnets()
            .iter()
            .map(|v| {
                (
                    component(v.tags()),
                    v.subnet_id().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
    );
    let igws = ec2
        .describe_internet_gateways()
        .filters(f())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    out.insert(
        "internet-gateway",
        igws.internet_gateways()
            .iter()
            .map(|v| {
                (
                    component(v.tags()),
                    v.internet_gateway_id().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
    );
    let eips = ec2
        .describe_addresses()
        .filters(f())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    out.insert(
        "elastic-ip",
        eips.addresses()
            .iter()
            .map(|v| {
                (
                    component(v.tags()),
                    v.allocation_id().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
    );
    let nats = ec2
        .describe_nat_gateways()
        .filter(f())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    out.insert(
        "nat-gateway",
        nats.nat_gateways()
            .iter()
            .filter(|n| ours(n.tags(), platform))
            .filter(|n| n.state().is_none_or(|s| s.as_str() != "deleted"))
            .map(|v| {
                (
                    component(v.tags()),
                    v.nat_gateway_id().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
    );
    let tables = ec2
        .describe_route_tables()
        .filters(f())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    out.insert(
        "route-table",
        tables
            .route_tables()
            .iter()
            .map(|v| {
                (
                    component(v.tags()),
                    v.route_table_id().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
    );
    let groups = ec2
        .describe_security_groups()
        .filters(f())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    out.insert(
        "security-group",
        groups
            .security_groups()
            .iter()
            .map(|v| {
                (
                    component(v.tags()),
                    v.group_id().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
    );
    out
}

/// component → id, asserting one resource per component (no duplicates).
fn by_component(found: &BTreeMap<&'static str, Vec<(String, String)>>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (kind, list) in found {
        for (component, id) in list {
            if let Some(other) = out.insert(component.clone(), id.clone()) {
                panic!("two {kind} resources for {component}: {other} and {id}");
            }
        }
    }
    out
}

fn tcp_rules(permissions: &[IpPermission]) -> BTreeSet<(i32, String)> {
    let mut out = BTreeSet::new();
    for p in permissions {
        let port = p.from_port().unwrap_or(-1);
        assert_eq!(p.from_port(), p.to_port(), "{p:?}");
        for r in p.ip_ranges() {
            out.insert((port, r.cidr_ip().unwrap_or_default().to_owned()));
        }
        for g in p.user_id_group_pairs() {
            out.insert((port, g.group_id().unwrap_or_default().to_owned()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_builds_the_network_the_spec_describes_and_a_steady_pass_writes_nothing() {
    let h = Harness::new("PerZone").await;
    let finished = h.converge().await;
    assert_eq!(finished.changes, 16, "{finished:?}");

    // Read everything back from AWS.
    let found = tagged(&h.reader, h.name()).await;
    let ids = by_component(&found);
    let counts: BTreeMap<&str, usize> = found.iter().map(|(k, v)| (*k, v.len())).collect();
    assert_eq!(
        counts,
        BTreeMap::from([
            ("elastic-ip", 2),
            ("internet-gateway", 1),
            ("nat-gateway", 2),
            ("route-table", 3),
            ("security-group", 3),
            ("subnet", 4),
            ("vpc", 1),
        ])
    );
    let id = |key: &str| {
        ids.get(key)
            .cloned()
            .unwrap_or_else(|| panic!("no {key} in {ids:?}"))
    };
    let vpc_id = id("vpc");

    let vpcs = h
        .reader
        .describe_vpcs()
        .vpc_ids(&vpc_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(vpcs.vpcs()[0].cidr_block(), Some("10.42.0.0/16"));
    for attribute in [
        aws_sdk_ec2::types::VpcAttributeName::EnableDnsSupport,
        aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames,
    ] {
        let out = h
            .reader
            .describe_vpc_attribute()
            .vpc_id(&vpc_id)
            .attribute(attribute.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let value = out
            .enable_dns_support()
            .or(out.enable_dns_hostnames())
            .and_then(|v| v.value());
        assert_eq!(value, Some(true), "{attribute:?}");
    }

    let subnets = h
        .reader
        .describe_subnets()
        .filters(platform_filter(h.name()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let layout: BTreeSet<(String, String, String)> = subnets
        .subnets()
        .iter()
        .map(|s| {
            assert_eq!(s.vpc_id(), Some(vpc_id.as_str()));
            (
                component(s.tags()),
                s.cidr_block().unwrap_or_default().to_owned(),
                s.availability_zone().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, String)> = [
        ("subnet/public/eu-west-1a", "10.42.1.0/24", "eu-west-1a"),
        ("subnet/public/eu-west-1b", "10.42.2.0/24", "eu-west-1b"),
        ("subnet/private/eu-west-1a", "10.42.11.0/24", "eu-west-1a"),
        ("subnet/private/eu-west-1b", "10.42.12.0/24", "eu-west-1b"),
    ]
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    .into();
    assert_eq!(layout, expected);

    let igws = h
        .reader
        .describe_internet_gateways()
        .internet_gateway_ids(id("internet-gateway"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        igws.internet_gateways()[0].attachments()[0].vpc_id(),
        Some(vpc_id.as_str())
    );

    let nats = h
        .reader
        .describe_nat_gateways()
        .filter(platform_filter(h.name()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    for nat in nats
        .nat_gateways()
        .iter()
        .filter(|n| ours(n.tags(), h.name()))
    {
        let az = component(nat.tags())
            .trim_start_matches("nat-gateway/")
            .to_owned();
        assert_eq!(nat.state().map(|s| s.as_str()), Some("available"));
        assert_eq!(
            nat.subnet_id(),
            Some(id(&format!("subnet/public/{az}")).as_str())
        );
        assert_eq!(
            nat.nat_gateway_addresses()[0].allocation_id(),
            Some(id(&format!("elastic-ip/{az}")).as_str())
        );
    }

    let tables = h
        .reader
        .describe_route_tables()
        .filters(platform_filter(h.name()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    for table in tables.route_tables() {
        let key = component(table.tags());
        let default_target: Vec<&str> = table
            .routes()
            .iter()
            .filter(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
            .filter_map(|r| r.gateway_id().or(r.nat_gateway_id()))
            .collect();
        let associated: BTreeSet<&str> = table
            .associations()
            .iter()
            .filter_map(|a| a.subnet_id())
            .collect();
        if key == "route-table/public" {
            assert_eq!(default_target, [id("internet-gateway")]);
            assert_eq!(
                associated,
                [
                    id("subnet/public/eu-west-1a"),
                    id("subnet/public/eu-west-1b")
                ]
                .iter()
                .map(String::as_str)
                .collect()
            );
        } else {
            let az = key.trim_start_matches("route-table/private/");
            assert_eq!(default_target, [id(&format!("nat-gateway/{az}"))], "{key}");
            assert_eq!(
                associated,
                BTreeSet::from([id(&format!("subnet/private/{az}")).as_str()]),
                "{key}"
            );
        }
    }

    let groups = h
        .reader
        .describe_security_groups()
        .filters(platform_filter(h.name()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let lb = id("security-group/load-balancer");
    let app = id("security-group/app");
    for group in groups.security_groups() {
        let ingress = tcp_rules(group.ip_permissions());
        let egress = tcp_rules(group.ip_permissions_egress());
        let rules = |list: &[(i32, &str)]| {
            list.iter()
                .map(|(p, s)| (*p, (*s).to_owned()))
                .collect::<BTreeSet<_>>()
        };
        match component(group.tags()).as_str() {
            "security-group/load-balancer" => {
                assert_eq!(
                    ingress,
                    rules(&[
                        (80, "203.0.113.0/24"),
                        (443, "203.0.113.0/24"),
                        (80, "198.51.100.0/24"),
                        (443, "198.51.100.0/24")
                    ])
                );
                assert_eq!(egress, rules(&[(8080, "10.42.0.0/16")]));
            }
            "security-group/app" => {
                assert_eq!(ingress, rules(&[(8080, lb.as_str())]));
                assert_eq!(egress, rules(&[(443, "0.0.0.0/0"), (3306, "10.42.0.0/16")]));
            }
            "security-group/database" => {
                assert_eq!(ingress, rules(&[(3306, app.as_str())]));
                assert!(egress.is_empty(), "{egress:?}");
            }
            other => panic!("unexpected group {other}"),
        }
    }

    // The next pass: nothing planned, nothing applied, and not one write call from this
    // platform's own clients (their interceptor counts every request they send).
    let before = h.clients.calls().snapshot();
    let outcome = h
        .platform
        .apply(&h.file.scope, &h.file.intent(), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let calls = h.clients.calls().snapshot().since(&before);
    assert!(outcome.pass.plan.is_empty(), "{:?}", outcome.pass.plan);
    assert!(outcome.pass.report.applied.is_empty());
    assert!(
        outcome.verdicts.iter().all(|v| v.status),
        "{:?}",
        outcome.verdicts
    );
    eprintln!("steady-state pass:\n{calls}");
    assert_eq!(calls.writes(), 0, "{calls}");
    // One describe per kind, plus the VPC's two DNS attributes.
    assert_eq!(calls.reads(), 9, "{calls}");

    h.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_in_a_route_and_a_rule_is_put_back() {
    let h = Harness::new("Single").await;
    h.converge().await;
    let ids = by_component(&tagged(&h.reader, h.name()).await);
    let table = ids["route-table/private/eu-west-1b"].clone();
    let app = ids["security-group/app"].clone();

    // By hand: the private route of zone b disappears, the app group gains SSH from anywhere.
    h.reader
        .delete_route()
        .route_table_id(&table)
        .destination_cidr_block("0.0.0.0/0")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    h.reader
        .authorize_security_group_ingress()
        .group_id(&app)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));

    // And the private subnet of zone a is moved to the public table.
    let private_a = ids["subnet/private/eu-west-1a"].clone();
    let holding = h
        .reader
        .describe_route_tables()
        .filters(
            Filter::builder()
                .name("association.subnet-id")
                .values(&private_a)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let association = holding
        .route_tables()
        .iter()
        .flat_map(|t| t.associations())
        .find(|a| a.subnet_id() == Some(private_a.as_str()))
        .and_then(|a| a.route_table_association_id())
        .unwrap_or_else(|| panic!("{private_a} has no association"))
        .to_owned();
    h.reader
        .replace_route_table_association()
        .association_id(association)
        .route_table_id(&ids["route-table/public"])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));

    let plan = h
        .platform
        .plan(&h.file.scope, &h.file.intent())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .plan;
    let updates: BTreeSet<String> = plan.actions.iter().map(|a| a.key.to_string()).collect();
    assert_eq!(
        updates,
        BTreeSet::from([
            "route-table/private/eu-west-1a".to_owned(),
            "route-table/private/eu-west-1b".to_owned(),
            "route-table/public".to_owned(),
            "security-group/app".to_owned()
        ])
    );

    let finished = h.converge().await;
    // The public table lets go of the subnet while the private one takes it back, concurrently;
    // moto keeps the association id on a replace, so the public table's disassociate can undo
    // the move and one more pass (one more update) puts it back. Nothing is ever replaced: the
    // plan above only updates, and every id below is the one from before.
    assert!(
        (4..=5).contains(&finished.changes),
        "only the four updates (and at most one repeat): {finished:?}"
    );
    assert_eq!(by_component(&tagged(&h.reader, h.name()).await), ids);
    let tables = h
        .reader
        .describe_route_tables()
        .route_table_ids(&table)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let nat = ids["nat-gateway/eu-west-1a"].clone();
    assert!(
        tables.route_tables()[0]
            .routes()
            .iter()
            .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0")
                && r.nat_gateway_id() == Some(nat.as_str())),
        "the default route to the single NAT gateway is back"
    );
    let holding = h
        .reader
        .describe_route_tables()
        .filters(
            Filter::builder()
                .name("association.subnet-id")
                .values(&private_a)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let tables: Vec<&str> = holding
        .route_tables()
        .iter()
        .filter_map(|t| t.route_table_id())
        .collect();
    assert_eq!(
        tables,
        [ids["route-table/private/eu-west-1a"].as_str()],
        "the private subnet of zone a is back in its own table"
    );
    let groups = h
        .reader
        .describe_security_groups()
        .group_ids(&app)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let ingress = tcp_rules(groups.security_groups()[0].ip_permissions());
    assert_eq!(
        ingress,
        BTreeSet::from([(8080, ids["security-group/load-balancer"].clone())])
    );

    h.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_platforms_never_touch_each_others_resources() {
    let (a, b) = tokio::join!(Harness::new("None"), Harness::new("None"));
    tokio::join!(a.converge(), b.converge());
    let a_ids = by_component(&tagged(&a.reader, a.name()).await);
    let b_before = by_component(&tagged(&b.reader, b.name()).await);
    assert_eq!(a_ids.len(), b_before.len());
    let a_set: BTreeSet<&String> = a_ids.values().collect();
    assert!(b_before.values().all(|id| !a_set.contains(id)));

    // Tearing A down leaves every resource of B in place, and B still matches its spec.
    a.destroy().await;
    let b_after = by_component(&tagged(&b.reader, b.name()).await);
    assert_eq!(b_before, b_after);
    let plan = b
        .platform
        .plan(&b.file.scope, &b.file.intent())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .plan;
    assert!(plan.is_empty(), "{plan:?}");
    b.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_killed_right_after_the_vpc_create_leaves_one_vpc() {
    let h = Harness::new("Single").await;
    // Start a pass and kill it as soon as the VPC exists in AWS, before anything could be
    // recorded anywhere.
    let platform = components::network_only(&h.clients).unwrap_or_else(|e| panic!("{e}"));
    let (scope, intent) = (h.file.scope.clone(), h.file.intent());
    let pass = tokio::spawn(async move { platform.apply(&scope, &intent, None).await.map(|_| ()) });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let vpcs = h
            .reader
            .describe_vpcs()
            .filters(platform_filter(h.name()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        if !vpcs.vpcs().is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the VPC never appeared"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pass.abort();
    let _ = pass.await;

    // A new process (new clients, no memory) finds it by its tags.
    let (config, _) = emulator().await.unwrap_or_else(|e| panic!("{e}"));
    let clients = AwsClients::from_config(&config, &AwsOptions::default());
    let restarted = Harness {
        file: h.file.clone(),
        platform: components::network_only(&clients).unwrap_or_else(|e| panic!("{e}")),
        clients,
        reader: h.reader.clone(),
    };
    restarted.converge().await;
    let found = tagged(&h.reader, h.name()).await;
    assert_eq!(found["vpc"].len(), 1, "{found:?}");
    by_component(&found); // and no duplicate of anything else
    restarted.destroy().await;
}

/// The emulator's admin endpoint.
async fn admin(endpoint: &str, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
    let url = format!("{}/_plinth/{path}", endpoint.trim_end_matches('/'));
    let client = plinth_e2e::http();
    let request = match body {
        Some(body) => client.post(url).json(&body),
        None => client.get(url),
    };
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}; {START_HINT}"));
    response.json().await.unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_vpc_response_makes_no_second_vpc() {
    let (_, endpoint) = emulator().await.unwrap_or_else(|e| panic!("{e}"));
    // Another process may make the CreateVpc call the rule hits; then try again, a few times.
    for attempt in 1..=3 {
        let h = Harness::new("None").await;
        let calls = admin(&endpoint, "calls", None).await;
        let made = calls["services"]["ec2"]["operations"]["CreateVpc"]["calls"]
            .as_u64()
            .unwrap_or(0);
        let config = admin(&endpoint, "config", None).await;
        let mut rules = config["rules"].as_array().cloned().unwrap_or_default();
        let before = rules.clone();
        rules.push(serde_json::json!({
            "service": "ec2", "operation": "CreateVpc", "nth": made + 1, "count": 1,
            "code": "InternalError", "status": 500, "after_write": true,
            "message": "lost response (plinth e2e)"
        }));
        admin(
            &endpoint,
            "config",
            Some(serde_json::json!({ "rules": rules })),
        )
        .await;
        let finished = cli::converge(
            &h.platform,
            &h.file,
            Pace {
                timeout: Duration::from_secs(120),
                interval: Duration::from_millis(500),
                visibility_window: plinth_e2e::CONSISTENT_VISIBILITY,
            },
            &mut |line| eprintln!("[{}] {line}", h.name()),
        )
        .await;
        admin(
            &endpoint,
            "config",
            Some(serde_json::json!({ "rules": before })),
        )
        .await;
        finished.unwrap_or_else(|e| panic!("{e}"));

        let found = tagged(&h.reader, h.name()).await;
        assert_eq!(found["vpc"].len(), 1, "{found:?}");
        by_component(&found);
        let ours = h.clients.calls().snapshot().of("CreateVpc");
        h.destroy().await;
        if ours.server_errors == 1 {
            assert_eq!(ours.calls, 1, "the lost create is found, not sent again");
            return;
        }
        eprintln!("attempt {attempt}: the injected fault hit another client's CreateVpc; again");
    }
    panic!("the injected fault never hit this test's CreateVpc");
}
