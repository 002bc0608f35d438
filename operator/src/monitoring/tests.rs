//! Unit tests of the monitoring family's desired state and of the translations its drivers
//! make (alarm names, dimensions, which subscription is Plinth's): pure, no AWS.

use std::collections::BTreeSet;

use super::alarm::*;
use super::topic::{ENDPOINT, PENDING_CONFIRMATION, desired_subscription, subscription_of};
use super::{ALARM, CrossFamily, components};
use crate::engine::identity::stable_hash;
use crate::engine::{AttrValue, DesiredResource, Scope};
use crate::intent::Serving;
use crate::serving::tests::{rolling, spec};

fn field<'a>(resource: &'a DesiredResource, name: &str) -> &'a AttrValue {
    match resource.fields().get(name) {
        Some(f) => &f.value,
        None => panic!("{} has no field {name}", resource.key()),
    }
}

fn find<'a>(resources: &'a [DesiredResource], key: &str) -> &'a DesiredResource {
    match resources.iter().find(|r| r.key().as_str() == key) {
        Some(r) => r,
        None => panic!("no {key}"),
    }
}

#[test]
fn scaling_alarms_follow_the_spec_thresholds_and_drive_the_policies() {
    let mut spec = spec();
    spec.compute.scaling.scale_out_cpu_percent = 70;
    spec.compute.scaling.scale_in_cpu_percent = 20;
    let intent = rolling(&spec, 50);
    let Serving::Rolling { blue, green, .. } = &intent.serving else {
        panic!("rolling");
    };
    let alarms = cross_family_alarms(&intent);
    for revision in [blue, green] {
        let high = find(&alarms, &format!("alarm/{}/cpu-high", revision.id));
        assert_eq!(field(high, THRESHOLD), &AttrValue::str("70"));
        assert_eq!(
            field(high, COMPARISON),
            &AttrValue::str("GreaterThanThreshold")
        );
        assert_eq!(
            field(high, ALARM_ACTIONS),
            &AttrValue::set([AttrValue::reference(format!(
                "scaling-policy/{}/out",
                revision.id
            ))])
        );
        let low = find(&alarms, &format!("alarm/{}/cpu-low", revision.id));
        assert_eq!(field(low, THRESHOLD), &AttrValue::str("20"));
        assert_eq!(field(low, COMPARISON), &AttrValue::str("LessThanThreshold"));
        assert_eq!(
            field(low, ALARM_ACTIONS),
            &AttrValue::set([AttrValue::reference(format!(
                "scaling-policy/{}/in",
                revision.id
            ))])
        );
        let AttrValue::Map(metric) = field(low, METRIC) else {
            panic!("one metric");
        };
        let AttrValue::Map(dimensions) = &metric["dimensions"] else {
            panic!("dimensions");
        };
        assert_eq!(
            dimensions["AutoScalingGroupName"],
            AttrValue::reference(format!("auto-scaling-group/{}", revision.id))
        );
    }
    // Exactly the other families' keys of the contract, and the topic.
    let mut deps = BTreeSet::new();
    for alarm in &alarms {
        deps.extend(alarm.dependencies().iter().map(|k| k.as_str().to_owned()));
    }
    let expected: BTreeSet<String> = [
        "db-cluster".to_owned(),
        "alarm-topic".to_owned(),
        format!("auto-scaling-group/{}", blue.id),
        format!("auto-scaling-group/{}", green.id),
        format!("scaling-policy/{}/out", blue.id),
        format!("scaling-policy/{}/in", blue.id),
        format!("scaling-policy/{}/out", green.id),
        format!("scaling-policy/{}/in", green.id),
    ]
    .into();
    assert_eq!(deps, expected);
}

#[test]
fn database_alarms_watch_capacity_against_the_maximum_and_cpu() {
    let mut spec = spec();
    spec.database.max_capacity = 2.0;
    let intent = crate::intent::Intent::steady(spec);
    let alarms = cross_family_alarms(&intent);
    let capacity = find(&alarms, "alarm/database-capacity");
    assert_eq!(field(capacity, THRESHOLD), &AttrValue::str("1.8"));
    let AttrValue::Map(metric) = field(capacity, METRIC) else {
        panic!("one metric");
    };
    assert_eq!(metric["name"], AttrValue::str("ServerlessDatabaseCapacity"));
    let AttrValue::Map(dimensions) = &metric["dimensions"] else {
        panic!("dimensions");
    };
    assert_eq!(
        dimensions["DBClusterIdentifier"],
        AttrValue::reference("db-cluster")
    );
    let cpu = find(&alarms, "alarm/database-cpu");
    assert_eq!(field(cpu, THRESHOLD), &AttrValue::str("80"));
    assert_eq!(
        field(cpu, ALARM_ACTIONS),
        &AttrValue::set([AttrValue::reference("alarm-topic")])
    );
}

#[test]
fn serving_alarms_notify_the_topic_with_a_5xx_rate_and_per_revision_health() {
    let intent = rolling(&spec(), 10);
    let alarms = serving_alarms(&intent);
    assert_eq!(alarms.len(), 4, "5xx, response time, two revisions' hosts");
    let rate = find(&alarms, "alarm/load-balancer-5xx");
    assert_eq!(field(rate, THRESHOLD), &AttrValue::str("5"));
    let AttrValue::List(queries) = field(rate, METRICS) else {
        panic!("metric math");
    };
    assert_eq!(queries.len(), 4);
    let returned: Vec<&AttrValue> = queries
        .iter()
        .filter_map(|q| match q {
            AttrValue::Map(m) if m.get("return_data") == Some(&AttrValue::Bool(true)) => {
                m.get("expression")
            }
            _ => None,
        })
        .collect();
    assert_eq!(returned.len(), 1, "exactly one query is the alarm's value");
    let p90 = find(&alarms, "alarm/target-response-time");
    let AttrValue::Map(metric) = field(p90, METRIC) else {
        panic!("one metric");
    };
    assert_eq!(metric["stat"], AttrValue::str("p90"));
    for alarm in &alarms {
        assert_eq!(
            field(alarm, ALARM_ACTIONS),
            &AttrValue::set([AttrValue::reference("alarm-topic")]),
            "{}",
            alarm.key()
        );
    }
}

#[test]
fn alarm_names_carry_the_platform_prefix_and_give_the_key_back() {
    let one = Scope::new("team", "ingest", []);
    let two = Scope::new("team", "ingest2", []);
    let key = crate::engine::Key::from("alarm/abcd1234/cpu-high");
    let name = alarm_name(&one, &key);
    assert!(
        name.starts_with(&format!("{}/", name_prefix(&one))),
        "{name}"
    );
    assert!(name.ends_with("/abcd1234/cpu-high"));
    assert!(!name.starts_with(&format!("{}/", name_prefix(&two))));
    assert!(name.len() <= 255);
}

#[test]
fn dimensions_cut_arns_and_rebuild_them() {
    let lb = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/plinth-x/50dc6c495c0c9188";
    let tg = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/plinth-tg/73e2d6bc24d8a067";
    let alarm = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:plinth-a/x";
    assert_eq!(
        dimension_value("LoadBalancer", lb),
        "app/plinth-x/50dc6c495c0c9188"
    );
    assert_eq!(
        dimension_value("TargetGroup", tg),
        "targetgroup/plinth-tg/73e2d6bc24d8a067"
    );
    assert_eq!(dimension_value("AutoScalingGroupName", "asg-1"), "asg-1");
    for (name, arn) in [("LoadBalancer", lb), ("TargetGroup", tg)] {
        assert_eq!(dimension_arn(name, &dimension_value(name, arn), alarm), arn);
    }
    assert_eq!(dimension_arn("DBClusterIdentifier", "db-1", alarm), "db-1");
}

#[test]
fn the_subscription_is_the_tagged_address_pending_or_confirmed() {
    let topic = "arn:aws:sns:eu-west-1:123456789012:plinth-topic";
    let tag = stable_hash("ops@example.com");
    let confirmed = format!("{topic}:5d556e61");
    let subscriptions = [
        ("PendingConfirmation", "email", "someone@example.com"),
        (confirmed.as_str(), "email", "ops@example.com"),
        ("arn:other", "sms", "+15550100"),
    ];
    let found = subscription_of(topic, Some(&tag), subscriptions);
    let Some(found) = found else {
        panic!("the tagged address is found");
    };
    assert_eq!(found.id, confirmed);
    assert_eq!(found.attrs[PENDING_CONFIRMATION], AttrValue::Bool(false));

    // Pending confirmation: it exists (no second Subscribe), with an id of Plinth's making.
    let pending = subscription_of(
        topic,
        Some(&tag),
        [("PendingConfirmation", "email", "ops@example.com")],
    );
    let Some(pending) = pending else {
        panic!("a pending subscription counts as existing");
    };
    assert_eq!(pending.attrs[PENDING_CONFIRMATION], AttrValue::Bool(true));
    assert_eq!(pending.attrs[ENDPOINT], AttrValue::str("ops@example.com"));
    assert!(pending.id.starts_with(topic) && pending.id.contains("PendingConfirmation"));
    assert!(!pending.id.contains("ops@example.com"));

    // Subscriptions without the topic's tag (added by hand, or an old address) are not ours.
    assert!(subscription_of(topic, None, subscriptions).is_none());
    let other = stable_hash("old@example.com");
    assert!(subscription_of(topic, Some(&other), subscriptions).is_none());
}

#[test]
fn the_subscription_is_desired_only_with_an_address() {
    let mut spec = spec();
    assert!(desired_subscription(&crate::intent::Intent::steady(spec.clone())).is_none());
    spec.monitoring.alarm_email = Some("ops@example.com".to_owned());
    let Some(subscription) = desired_subscription(&crate::intent::Intent::steady(spec)) else {
        panic!("desired with an address");
    };
    assert_eq!(
        field(&subscription, ENDPOINT),
        &AttrValue::str("ops@example.com")
    );
    assert!(
        subscription
            .dependencies()
            .contains(&crate::engine::Key::from("alarm-topic"))
    );
}

/// The graph of `families` plus monitoring with `cross`, for a rolling Intent.
fn graph_with(
    cross: CrossFamily,
    all_families: bool,
) -> Result<crate::engine::DesiredGraph, crate::engine::DesiredError> {
    let clients = crate::serving::tests::offline();
    let mut list = crate::network::components(&clients);
    list.extend(crate::serving::components(&clients));
    if all_families {
        list.extend(crate::database::components(&clients));
        list.extend(crate::compute::components(&clients));
    }
    list.extend(components(&clients, cross));
    let components = match crate::engine::Components::new(list) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    components.desired(&rolling(&spec(), 50))
}

#[test]
fn cross_family_alarms_resolve_once_every_family_is_registered() {
    // With the database and compute families, every reference of the cross-family alarms is a
    // key those families desire (the contract between the families' keys).
    let graph = match graph_with(CrossFamily::Included, true) {
        Ok(g) => g,
        Err(e) => panic!("{e}"),
    };
    let alarms = graph.in_order().filter(|d| d.kind() == ALARM).count();
    assert_eq!(
        alarms,
        2 + 2 + 2 + 2 * 2,
        "serving 2, hosts per revision 2, database 2, scaling 2 per revision"
    );
    // Without them the graph is refused, which is why components.rs leaves them out until then.
    assert!(matches!(
        graph_with(CrossFamily::Included, false),
        Err(crate::engine::DesiredError::Graph(
            crate::engine::GraphError::UnknownDependency { .. }
        ))
    ));
    assert!(graph_with(CrossFamily::Excluded, false).is_ok());
}
