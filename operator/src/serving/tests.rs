//! Unit tests of the serving front's desired state: pure functions of the Intent, no AWS.

use std::collections::BTreeMap;

use plinth_crds::{DataPlatform, DataPlatformSpec};

use super::listener::{TLS_POLICY, action_of, desired_listeners, https_redirect};
use super::load_balancer::desired_load_balancer;
use super::target_group::desired_target_groups;
use super::*;
use crate::engine::{AttrValue, DesiredGraph, DesiredResource, Key};
use crate::intent::{AppRevision, Intent, Serving};
use crate::monitoring::{self, CrossFamily};
use crate::network;

const CERT: &str = "arn:aws:acm:eu-west-1:123456789012:certificate/abc-123";

pub(crate) fn spec() -> DataPlatformSpec {
    let text = include_str!("../../../examples/minimal.yaml");
    match serde_norway::from_str::<DataPlatform>(text) {
        Ok(p) => p.spec,
        Err(e) => panic!("{e}"),
    }
}

pub(crate) fn offline() -> AwsClients {
    let config = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("eu-west-1"))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    AwsClients::from_config(&config, &crate::aws::AwsOptions::default())
}

pub(crate) fn rolling(spec: &DataPlatformSpec, weight: i32) -> Intent {
    let blue = AppRevision::of(spec);
    let green = AppRevision::new(
        "2.0.0",
        &spec.app.artifact,
        &spec.compute.image_id,
        "t3.large",
    );
    Intent {
        spec: spec.clone(),
        serving: Serving::Rolling {
            blue,
            green,
            weight,
        },
    }
}

/// The real network, serving and monitoring components' graph: every reference must resolve.
fn graph(intent: &Intent) -> DesiredGraph {
    let clients = offline();
    let components = network::components(&clients)
        .into_iter()
        .chain(components(&clients))
        .chain(monitoring::components(&clients, CrossFamily::Excluded));
    let components = match crate::engine::Components::new(components) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    match components.desired(intent) {
        Ok(g) => g,
        Err(e) => panic!("{e}"),
    }
}

fn field<'a>(resource: &'a DesiredResource, name: &str) -> &'a AttrValue {
    match resource.fields().get(name) {
        Some(f) => &f.value,
        None => panic!("{} has no field {name}", resource.key()),
    }
}

fn find<'a>(resources: &'a [DesiredResource], key: &str) -> &'a DesiredResource {
    match resources.iter().find(|r| r.key().as_str() == key) {
        Some(r) => r,
        None => panic!(
            "no {key} among {:?}",
            resources.iter().map(|r| r.key()).collect::<Vec<_>>()
        ),
    }
}

fn forward(groups: &[(&str, i64)]) -> AttrValue {
    let groups = groups.iter().map(|(key, weight)| {
        AttrValue::Map(BTreeMap::from([
            ("target_group".to_owned(), AttrValue::reference(*key)),
            ("weight".to_owned(), AttrValue::Int(*weight)),
        ]))
    });
    AttrValue::Map(BTreeMap::from([
        ("type".to_owned(), AttrValue::str("forward")),
        ("target_groups".to_owned(), AttrValue::set(groups)),
    ]))
}

#[test]
fn the_load_balancer_is_internet_facing_in_the_public_subnets_behind_its_group() {
    let lb = desired_load_balancer(&Intent::steady(spec()));
    assert_eq!(
        field(&lb, load_balancer::SCHEME),
        &AttrValue::str("internet-facing")
    );
    assert_eq!(
        field(&lb, load_balancer::TYPE),
        &AttrValue::str("application")
    );
    assert_eq!(
        field(&lb, load_balancer::SUBNETS),
        &AttrValue::set([
            AttrValue::reference("subnet/public/eu-west-1a"),
            AttrValue::reference("subnet/public/eu-west-1b"),
        ])
    );
    assert_eq!(
        field(&lb, load_balancer::SECURITY_GROUPS),
        &AttrValue::set([AttrValue::reference("security-group/load-balancer")])
    );
    assert_eq!(
        field(&lb, load_balancer::DROP_INVALID_HEADER_FIELDS),
        &AttrValue::Bool(true)
    );
    // The references make the teardown order: the load balancer before its subnets and group.
    assert!(
        lb.dependencies()
            .contains(&Key::from("security-group/load-balancer"))
    );
    assert!(
        lb.dependencies()
            .contains(&Key::from("subnet/public/eu-west-1b"))
    );
}

#[test]
fn without_a_certificate_http_forwards_to_the_revision() {
    let intent = Intent::steady(spec());
    let revision = AppRevision::of(&intent.spec);
    let listeners = desired_listeners(&intent);
    assert_eq!(listeners.len(), 1);
    let http = find(&listeners, keys::HTTP_LISTENER);
    assert_eq!(field(http, listener::PORT), &AttrValue::Int(80));
    assert_eq!(field(http, listener::PROTOCOL), &AttrValue::str("HTTP"));
    assert!(!http.fields().contains_key(listener::SSL_POLICY));
    let tg = format!("target-group/{}", revision.id);
    assert_eq!(
        field(http, listener::DEFAULT_ACTION),
        &forward(&[(tg.as_str(), 100)])
    );
    assert!(http.dependencies().contains(&Key::from(tg.as_str())));
    assert!(http.dependencies().contains(&Key::from("load-balancer")));
}

#[test]
fn with_a_certificate_https_forwards_with_tls13_and_http_redirects() {
    let mut spec = spec();
    spec.load_balancer.certificate_arn = Some(CERT.to_owned());
    let intent = Intent::steady(spec);
    let revision = AppRevision::of(&intent.spec);
    let listeners = desired_listeners(&intent);
    assert_eq!(listeners.len(), 2);
    let https = find(&listeners, keys::HTTPS_LISTENER);
    assert_eq!(field(https, listener::PORT), &AttrValue::Int(443));
    assert_eq!(field(https, listener::PROTOCOL), &AttrValue::str("HTTPS"));
    assert_eq!(
        field(https, listener::SSL_POLICY),
        &AttrValue::str(TLS_POLICY)
    );
    assert_eq!(TLS_POLICY, "ELBSecurityPolicy-TLS13-1-2-2021-06");
    assert_eq!(
        field(https, listener::CERTIFICATE_ARN),
        &AttrValue::str(CERT)
    );
    let tg = format!("target-group/{}", revision.id);
    assert_eq!(
        field(https, listener::DEFAULT_ACTION),
        &forward(&[(tg.as_str(), 100)])
    );
    let http = find(&listeners, keys::HTTP_LISTENER);
    assert_eq!(field(http, listener::PORT), &AttrValue::Int(80));
    assert_eq!(field(http, listener::DEFAULT_ACTION), &https_redirect());
    let AttrValue::Map(redirect) = https_redirect() else {
        panic!("a redirect is a map");
    };
    assert_eq!(redirect["status_code"], AttrValue::str("HTTP_301"));
    assert_eq!(redirect["protocol"], AttrValue::str("HTTPS"));
    // An empty certificate ARN counts as none.
    let mut empty = intent.spec.clone();
    empty.load_balancer.certificate_arn = Some(String::new());
    assert_eq!(desired_listeners(&Intent::steady(empty)).len(), 1);
}

#[test]
fn a_rolling_intent_weights_both_target_groups() {
    let intent = rolling(&spec(), 30);
    let Serving::Rolling { blue, green, .. } = &intent.serving else {
        panic!("rolling");
    };
    let groups = desired_target_groups(&intent);
    let keys: Vec<&str> = groups.iter().map(|g| g.key().as_str()).collect();
    let blue_key = format!("target-group/{}", blue.id);
    let green_key = format!("target-group/{}", green.id);
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&blue_key.as_str()) && keys.contains(&green_key.as_str()));
    assert_eq!(
        field(find(&groups, &green_key), target_group::REVISION),
        &AttrValue::str(green.id.clone())
    );
    let listeners = desired_listeners(&intent);
    assert_eq!(
        field(
            find(&listeners, keys::HTTP_LISTENER),
            listener::DEFAULT_ACTION
        ),
        &forward(&[(blue_key.as_str(), 70), (green_key.as_str(), 30)])
    );
    // The whole graph (network, serving, monitoring) holds together, for both revisions.
    let graph = graph(&intent);
    assert!(graph.contains(&Key::from(green_key.as_str())));
    assert!(graph.contains(&Key::from(format!("alarm/{}/unhealthy-hosts", green.id))));
}

#[test]
fn target_groups_take_the_port_and_the_health_check_of_the_spec() {
    let mut spec = spec();
    spec.app.port = 9090;
    spec.load_balancer.health_check.path = "/ready".to_owned();
    spec.load_balancer.health_check.interval_seconds = 15;
    spec.load_balancer.health_check.timeout_seconds = 4;
    spec.load_balancer.health_check.healthy_threshold = 3;
    spec.load_balancer.health_check.unhealthy_threshold = 5;
    let groups = desired_target_groups(&Intent::steady(spec));
    assert_eq!(groups.len(), 1);
    let group = &groups[0];
    assert_eq!(field(group, target_group::PORT), &AttrValue::Int(9090));
    assert_eq!(
        field(group, target_group::PROTOCOL),
        &AttrValue::str("HTTP")
    );
    assert_eq!(
        field(group, target_group::TARGET_TYPE),
        &AttrValue::str("instance")
    );
    assert_eq!(
        field(group, target_group::VPC_ID),
        &AttrValue::reference("vpc")
    );
    let AttrValue::Map(health) = field(group, target_group::HEALTH_CHECK) else {
        panic!("the health check is a map");
    };
    assert_eq!(health[target_group::HC_PATH], AttrValue::str("/ready"));
    assert_eq!(health[target_group::HC_INTERVAL], AttrValue::Int(15));
    assert_eq!(health[target_group::HC_TIMEOUT], AttrValue::Int(4));
    assert_eq!(health[target_group::HC_HEALTHY], AttrValue::Int(3));
    assert_eq!(health[target_group::HC_UNHEALTHY], AttrValue::Int(5));
    assert_eq!(health[target_group::HC_MATCHER], AttrValue::str("200-299"));
    // The health check changes in place; the port does not.
    let on_change = |name: &str| match group.fields().get(name) {
        Some(f) => f.on_change,
        None => panic!("no {name}"),
    };
    assert_eq!(
        on_change(target_group::HEALTH_CHECK),
        crate::engine::OnChange::Update
    );
    assert_eq!(
        on_change(target_group::PORT),
        crate::engine::OnChange::Replace
    );
}

#[test]
fn actions_build_from_resolved_values() {
    let resolved = AttrValue::Map(BTreeMap::from([
        ("type".to_owned(), AttrValue::str("forward")),
        (
            "target_groups".to_owned(),
            AttrValue::set([
                AttrValue::Map(BTreeMap::from([
                    ("target_group".to_owned(), AttrValue::str("arn:tg/blue")),
                    ("weight".to_owned(), AttrValue::Int(90)),
                ])),
                AttrValue::Map(BTreeMap::from([
                    ("target_group".to_owned(), AttrValue::str("arn:tg/green")),
                    ("weight".to_owned(), AttrValue::Int(10)),
                ])),
            ]),
        ),
    ]));
    let action = match action_of(Some(&resolved)) {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    };
    let weights: BTreeMap<&str, i32> = action
        .forward_config()
        .map(|c| c.target_groups())
        .unwrap_or_default()
        .iter()
        .filter_map(|t| Some((t.target_group_arn()?, t.weight()?)))
        .collect();
    assert_eq!(
        weights,
        BTreeMap::from([("arn:tg/blue", 90), ("arn:tg/green", 10)])
    );
    let redirect = match action_of(Some(&https_redirect())) {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        redirect
            .redirect_config()
            .and_then(|c| c.status_code())
            .map(|s| s.as_str()),
        Some("HTTP_301")
    );
    // An unresolved reference is a bug, refused rather than sent.
    assert!(action_of(Some(&AttrValue::reference("x"))).is_err());
}

#[test]
fn status_names_the_endpoint_by_the_listener_protocol() {
    use crate::engine::{Observed, ObservedResource};
    let lb = ObservedResource::new(LOAD_BALANCER, keys::LOAD_BALANCER, "arn:lb")
        .attr(load_balancer::DNS_NAME, "lb-1.eu-west-1.elb.amazonaws.com");
    let tg = ObservedResource::new(TARGET_GROUP, "target-group/abcd1234", "arn:tg");
    let http = ObservedResource::new(LISTENER, keys::HTTP_LISTENER, "arn:l80");
    let https = ObservedResource::new(LISTENER, keys::HTTPS_LISTENER, "arn:l443");
    let mut status = DataPlatformStatus::default();
    write_status(
        &Observed::new([lb.clone(), tg.clone(), http.clone()]),
        &mut status,
    );
    assert_eq!(
        status.endpoint.as_deref(),
        Some("http://lb-1.eu-west-1.elb.amazonaws.com")
    );
    write_status(&Observed::new([lb, tg, http, https]), &mut status);
    assert_eq!(
        status.endpoint.as_deref(),
        Some("https://lb-1.eu-west-1.elb.amazonaws.com")
    );
    let resources = status.resources.unwrap_or_default();
    assert_eq!(resources.load_balancer_arn.as_deref(), Some("arn:lb"));
    assert_eq!(resources.target_group_arns, ["arn:tg"]);
}
