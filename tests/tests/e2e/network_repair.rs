//! The network's repair paths that only drift reaches, each asserted on AWS state read back: a
//! route sent to the wrong target (`ReplaceRoute`), a route nobody asked for (`DeleteRoute`), a
//! subnet that hands out public addresses (`ModifySubnetAttribute`); and a subnet deleted by
//! hand before the platform is, whose teardown must still leave nothing. Besides guarding the
//! repairs, these are the calls through which the IAM policy check
//! (`tests/src/bin/policy-check.rs`) sees the network's drift-only grants used.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use aws_sdk_ec2::types::AttributeBooleanValue;
use plinth_e2e::{aws_config, unique_name};
use plinth_operator::aws::{AwsClients, AwsOptions};
use plinth_operator::cli::{self, Pace};
use plinth_operator::components;

fn manifest(namespace: &str) -> String {
    format!(
        r#"apiVersion: plinth.dev/v1alpha1
kind: DataPlatform
metadata:
  name: repair
  namespace: {namespace}
spec:
  region: eu-west-1
  network:
    cidr: 10.43.0.0/16
    availabilityZones: [eu-west-1a, eu-west-1b]
    natGateways: Single
  loadBalancer:
    allowedCidrs: [203.0.113.0/24]
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
"#
    )
}

fn pace() -> Pace {
    Pace {
        timeout: Duration::from_secs(120),
        interval: Duration::from_millis(500),
        visibility_window: plinth_e2e::CONSISTENT_VISIBILITY,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_subnet_attributes_are_repaired_in_place() {
    let config = aws_config().await.unwrap_or_else(|e| panic!("{e}"));
    let namespace = unique_name("repair");
    let file = cli::parse_spec(&manifest(&namespace), Path::new("repair.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let clients = AwsClients::from_config(&config, &AwsOptions::default());
    let platform = components::network_only(&clients).unwrap_or_else(|e| panic!("{e}"));
    let reader = aws_sdk_ec2::Client::new(&config);
    let name = file.scope.platform().to_owned();
    let mut log = |line: &str| eprintln!("[{name}] {line}");

    cli::converge(&platform, &file, pace(), &mut log)
        .await
        .unwrap_or_else(|e| panic!("apply: {e}"));
    let observed = platform
        .plan(&file.scope, &file.intent())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .observed;
    let ids: BTreeMap<String, String> = observed
        .iter()
        .map(|r| (r.key.to_string(), r.id.clone()))
        .collect();
    let id = |key: &str| {
        ids.get(key)
            .cloned()
            .unwrap_or_else(|| panic!("no {key} in {ids:?}"))
    };
    let (igw, nat) = (id("internet-gateway"), id("nat-gateway/eu-west-1a"));
    let table_b = id("route-table/private/eu-west-1b");
    let subnet_a = id("subnet/private/eu-west-1a");

    // By hand: zone b's default route goes to the internet gateway, and gains a route nobody
    // asked for; subnet a hands out public addresses.
    reader
        .replace_route()
        .route_table_id(&table_b)
        .destination_cidr_block("0.0.0.0/0")
        .gateway_id(&igw)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    reader
        .create_route()
        .route_table_id(&table_b)
        .destination_cidr_block("192.0.2.0/24")
        .gateway_id(&igw)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    reader
        .modify_subnet_attribute()
        .subnet_id(&subnet_a)
        .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));

    let before = clients.calls().snapshot();
    cli::converge(&platform, &file, pace(), &mut log)
        .await
        .unwrap_or_else(|e| panic!("repair: {e}"));
    let calls = clients.calls().snapshot().since(&before);

    // Read back: every repair holds.
    let routes = reader
        .describe_route_tables()
        .route_table_ids(&table_b)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let routes: BTreeMap<String, String> = routes.route_tables()[0]
        .routes()
        .iter()
        .filter_map(|r| {
            let target = r.nat_gateway_id().or(r.gateway_id())?;
            Some((r.destination_cidr_block()?.to_owned(), target.to_owned()))
        })
        .filter(|(_, target)| target != "local")
        .collect();
    assert_eq!(
        routes,
        BTreeMap::from([("0.0.0.0/0".to_owned(), nat.clone())]),
        "zone b: the default route is back on the NAT gateway and the extra route is gone"
    );
    let subnet = reader
        .describe_subnets()
        .subnet_ids(&subnet_a)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        subnet.subnets()[0].map_public_ip_on_launch(),
        Some(false),
        "subnet a no longer hands out public addresses"
    );
    // And they were done in place, with the calls the policy grants for them.
    for operation in ["ReplaceRoute", "DeleteRoute", "ModifySubnetAttribute"] {
        assert!(
            calls.of(operation).calls >= 1,
            "{operation} was not called to repair:\n{calls}"
        );
    }

    // By hand: subnet a is deleted (AWS drops its route-table association with it), then the
    // platform is: the teardown finds the association gone and still removes everything.
    reader
        .delete_subnet()
        .subnet_id(&subnet_a)
        .send()
        .await
        .unwrap_or_else(|e| panic!("deleting subnet a by hand: {e:?}"));
    cli::destroy(&platform, &file, pace(), &mut log)
        .await
        .unwrap_or_else(|e| panic!("destroy after a subnet was deleted by hand: {e}"));
    let left = crate::network::tagged(&reader, &name).await;
    assert!(
        left.values().all(Vec::is_empty),
        "resources tagged for {name} remain after destroy: {left:?}"
    );
}
