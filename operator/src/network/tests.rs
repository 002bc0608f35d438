//! Unit tests of the network's desired graph: pure functions of the spec, no AWS.

use std::collections::BTreeSet;

use plinth_crds::{DataPlatform, NatGatewayMode};

use super::security::{Peer, permission_of, rule, rules_of, tcp};
use super::*;
use crate::engine::{AttrValue, DesiredError, DesiredGraph, Observed, plan};
use crate::intent::Intent;

fn spec(zones: &[&str], nat: NatGatewayMode) -> DataPlatformSpec {
    let text = include_str!("../../../examples/minimal.yaml");
    let platform: DataPlatform = match serde_norway::from_str(text) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let mut spec = platform.spec;
    spec.network.availability_zones = zones.iter().map(|z| (*z).to_owned()).collect();
    spec.network.nat_gateways = nat;
    spec
}

/// Clients for `region` that never call anything (desired graphs are pure).
fn offline(region: &str) -> AwsClients {
    let config = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new(region.to_owned()))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    AwsClients::from_config(&config, &crate::aws::AwsOptions::default())
}

/// The real components' desired graph for `spec`.
fn graph(spec: &DataPlatformSpec) -> DesiredGraph {
    let components = match crate::engine::Components::new(components(&offline("eu-west-1"))) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    match components.desired(&Intent::steady(spec.clone())) {
        Ok(g) => g,
        Err(e) => panic!("{e}"),
    }
}

fn count(graph: &DesiredGraph, kind: Kind) -> usize {
    graph.in_order().filter(|d| d.kind() == kind).count()
}

fn field<'a>(graph: &'a DesiredGraph, key: &str, name: &str) -> &'a AttrValue {
    match graph
        .get(&Key::from(key))
        .and_then(|d| d.fields().get(name))
    {
        Some(f) => &f.value,
        None => panic!("{key} has no field {name}"),
    }
}

#[test]
fn one_public_and_one_private_subnet_per_zone() {
    let zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
    let g = graph(&spec(&zones, NatGatewayMode::PerZone));
    assert_eq!(count(&g, SUBNET), 6);
    assert_eq!(
        field(&g, "subnet/public/eu-west-1b", "cidr_block"),
        &AttrValue::str("10.0.2.0/24")
    );
    assert_eq!(
        field(&g, "subnet/private/eu-west-1c", "cidr_block"),
        &AttrValue::str("10.0.13.0/24")
    );
    assert_eq!(count(&g, ROUTE_TABLE), 4);
    assert_eq!(count(&g, SECURITY_GROUP), 3);
}

#[test]
fn nat_modes_give_one_per_zone_one_or_none() {
    let zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
    for (mode, nats) in [
        (NatGatewayMode::PerZone, 3),
        (NatGatewayMode::Single, 1),
        (NatGatewayMode::None, 0),
    ] {
        let spec = spec(&zones, mode);
        assert_eq!(nat_zones(&spec).len(), nats, "{mode:?}");
        let g = graph(&spec);
        assert_eq!(count(&g, NAT_GATEWAY), nats, "{mode:?}");
        assert_eq!(count(&g, ELASTIC_IP), nats, "{mode:?}");
    }
}

#[test]
fn private_routes_go_to_their_zones_nat_the_single_one_or_nowhere() {
    let zones = ["eu-west-1a", "eu-west-1b"];
    let default_route = |target: &str| {
        AttrValue::set([route::route(
            route::DEFAULT_ROUTE,
            AttrValue::reference(target),
        )])
    };
    let per_zone = graph(&spec(&zones, NatGatewayMode::PerZone));
    assert_eq!(
        field(&per_zone, "route-table/private/eu-west-1b", route::ROUTES),
        &default_route("nat-gateway/eu-west-1b")
    );
    let single = graph(&spec(&zones, NatGatewayMode::Single));
    assert_eq!(
        field(&single, "route-table/private/eu-west-1b", route::ROUTES),
        &default_route("nat-gateway/eu-west-1a")
    );
    let none = graph(&spec(&zones, NatGatewayMode::None));
    assert_eq!(
        field(&none, "route-table/private/eu-west-1b", route::ROUTES),
        &AttrValue::set([])
    );
    assert_eq!(
        field(&per_zone, keys::PUBLIC_ROUTE_TABLE, route::ROUTES),
        &default_route(keys::INTERNET_GATEWAY)
    );
    assert_eq!(
        field(&per_zone, keys::PUBLIC_ROUTE_TABLE, route::SUBNETS),
        &AttrValue::set(zones.map(|z| AttrValue::reference(keys::public_subnet(z))))
    );
}

#[test]
fn security_group_rules_reference_groups_and_keep_egress_narrow() {
    let mut s = spec(&["eu-west-1a", "eu-west-1b"], NatGatewayMode::PerZone);
    s.load_balancer.allowed_cidrs = vec!["203.0.113.0/24".into(), "198.51.100.0/24".into()];
    let g = graph(&s);
    let lb_in = field(&g, keys::LOAD_BALANCER_SG, security::INGRESS);
    let AttrValue::Set(lb_in) = lb_in else {
        panic!("not a set")
    };
    assert_eq!(lb_in.len(), 4, "80 and 443 from each of two ranges");
    assert!(lb_in.contains(&tcp(443, Peer::Cidr("198.51.100.0/24".into()))));
    assert_eq!(
        field(&g, keys::APP_SG, security::INGRESS),
        &AttrValue::set([tcp(
            8080,
            Peer::Group(AttrValue::reference(keys::LOAD_BALANCER_SG))
        )])
    );
    assert_eq!(
        field(&g, keys::DATABASE_SG, security::INGRESS),
        &AttrValue::set([tcp(3306, Peer::Group(AttrValue::reference(keys::APP_SG)))])
    );
    assert_eq!(
        field(&g, keys::DATABASE_SG, security::EGRESS),
        &AttrValue::set([])
    );
    // The references order the groups: the database's after the app's after the load balancer's.
    let order: Vec<&str> = g
        .in_order()
        .filter(|d| d.kind() == SECURITY_GROUP)
        .map(|d| d.key().as_str())
        .collect();
    assert_eq!(
        order,
        [keys::LOAD_BALANCER_SG, keys::APP_SG, keys::DATABASE_SG]
    );
}

#[test]
fn rules_round_trip_through_aws_permissions() {
    let rules: BTreeSet<AttrValue> = [
        tcp(443, Peer::Cidr("0.0.0.0/0".into())),
        tcp(8080, Peer::Group(AttrValue::str("sg-123"))),
        rule("-1", -1, -1, Peer::Cidr("10.0.0.0/16".into())),
    ]
    .into_iter()
    .collect();
    let permissions: Vec<_> = rules.iter().filter_map(permission_of).collect();
    assert_eq!(permissions.len(), 3);
    assert_eq!(rules_of(&permissions), rules);
}

#[test]
fn a_fresh_network_is_planned_in_dependency_order() {
    let g = graph(&spec(
        &["eu-west-1a", "eu-west-1b"],
        NatGatewayMode::PerZone,
    ));
    let p = plan(&g, &Observed::empty());
    let position = |key: &str| {
        p.actions
            .iter()
            .position(|a| a.key.as_str() == key)
            .unwrap_or_else(|| panic!("{key} not planned"))
    };
    assert_eq!(p.actions.len(), g.len());
    assert!(position("vpc") < position("subnet/public/eu-west-1a"));
    assert!(position("internet-gateway") < position("nat-gateway/eu-west-1a"));
    assert!(position("elastic-ip/eu-west-1b") < position("nat-gateway/eu-west-1b"));
    assert!(position("nat-gateway/eu-west-1b") < position("route-table/private/eu-west-1b"));
}

#[test]
fn status_lists_ids_by_tier() {
    let observed = Observed::new([
        crate::engine::ObservedResource::new(VPC, "vpc", "vpc-1"),
        crate::engine::ObservedResource::new(SUBNET, "subnet/public/eu-west-1a", "subnet-p"),
        crate::engine::ObservedResource::new(SUBNET, "subnet/private/eu-west-1a", "subnet-q"),
        crate::engine::ObservedResource::new(NAT_GATEWAY, "nat-gateway/eu-west-1a", "nat-1"),
        crate::engine::ObservedResource::new(SECURITY_GROUP, "security-group/app", "sg-1"),
    ]);
    let status = resources_status(&observed);
    assert_eq!(status.vpc_id.as_deref(), Some("vpc-1"));
    assert_eq!(status.public_subnet_ids, ["subnet-p"]);
    assert_eq!(status.private_subnet_ids, ["subnet-q"]);
    assert_eq!(status.nat_gateway_ids, ["nat-1"]);
    assert_eq!(status.security_group_ids, ["sg-1"]);
}

#[test]
fn a_spec_for_another_region_is_refused_before_any_call() {
    let components = match crate::engine::Components::new(components(&offline("us-east-1"))) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let spec = spec(&["eu-west-1a", "eu-west-1b"], NatGatewayMode::Single);
    assert!(matches!(
        components.desired(&Intent::steady(spec.clone())),
        Err(DesiredError::Invalid { kind: VPC, .. })
    ));
}

#[test]
fn the_whole_network_has_the_expected_resources() {
    let g = graph(&spec(
        &["eu-west-1a", "eu-west-1b"],
        NatGatewayMode::PerZone,
    ));
    // vpc, 4 subnets, igw, 2 eips, 2 nats, 3 route tables, 3 groups.
    assert_eq!(g.len(), 16);
    assert_eq!(
        field(&g, "vpc", vpc::ENABLE_DNS_HOSTNAMES),
        &AttrValue::Bool(true)
    );
    assert_eq!(
        field(&g, "nat-gateway/eu-west-1b", nat_gateway::SUBNET_ID),
        &AttrValue::reference(keys::public_subnet("eu-west-1b"))
    );
    let Some(nat) = g.get(&Key::from("nat-gateway/eu-west-1b")) else {
        panic!("no NAT gateway")
    };
    assert!(
        nat.dependencies()
            .contains(&Key::from(keys::INTERNET_GATEWAY))
    );
}
