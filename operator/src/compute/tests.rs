//! Unit tests of compute's desired resources: pure functions of the intent, no AWS.

use std::collections::{BTreeMap, BTreeSet};

use plinth_crds::{DataPlatform, DataPlatformSpec};

use super::user_data::env;
use super::*;
use crate::engine::{AttrValue, DesiredResource, Field, OnChange};
use crate::intent::{AppRevision, Serving};

fn spec() -> DataPlatformSpec {
    let text = include_str!("../../../examples/minimal.yaml");
    match serde_norway::from_str::<DataPlatform>(text) {
        Ok(p) => p.spec,
        Err(e) => panic!("{e}"),
    }
}

fn field<'a>(resources: &'a [DesiredResource], key: &str, name: &str) -> &'a Field {
    resources
        .iter()
        .find(|d| d.key().as_str() == key)
        .and_then(|d| d.fields().get(name))
        .unwrap_or_else(|| panic!("{key} has no field {name}"))
}

fn rolling(spec: &DataPlatformSpec) -> (Intent, AppRevision, AppRevision) {
    let blue = AppRevision::of(spec);
    let green = AppRevision::new(
        "9.9.9",
        "s3://plinth-artifacts/ingest/9.9.9/plinth-ingest",
        &blue.image_id,
        &blue.instance_type,
    );
    let intent = Intent {
        spec: spec.clone(),
        serving: Serving::Rolling {
            blue: blue.clone(),
            green: green.clone(),
            weight: 10,
        },
    };
    (intent, blue, green)
}

#[test]
fn every_revision_has_its_own_template_group_and_policies() {
    let spec = spec();
    let (intent, blue, green) = rolling(&spec);
    let keys_of = |resources: Vec<DesiredResource>| -> BTreeSet<String> {
        resources.iter().map(|d| d.key().to_string()).collect()
    };
    for rev in [&blue.id, &green.id] {
        assert!(
            keys_of(template::desired_templates(&intent))
                .contains(&format!("launch-template/{rev}"))
        );
        assert!(
            keys_of(group::desired_groups(&intent)).contains(&format!("auto-scaling-group/{rev}"))
        );
        let policies = keys_of(scaling::desired_policies(&intent));
        assert!(policies.contains(&format!("scaling-policy/{rev}/out")));
        assert!(policies.contains(&format!("scaling-policy/{rev}/in")));
    }
    let steady = Intent::steady(spec.clone());
    assert_eq!(group::desired_groups(&steady).len(), 1);
    assert_eq!(scaling::desired_policies(&steady).len(), 2);
}

#[test]
fn the_template_runs_the_revision_with_imdsv2_an_encrypted_root_and_no_secret() {
    let spec = spec();
    let intent = Intent::steady(spec.clone());
    let revision = AppRevision::of(&spec);
    let templates = template::desired_templates(&intent);
    let key = format!("launch-template/{}", revision.id);
    let value = |name| &field(&templates, &key, name).value;
    assert_eq!(
        value(template::IMAGE_ID),
        &AttrValue::str(&spec.compute.image_id)
    );
    assert_eq!(
        value(template::INSTANCE_TYPE),
        &AttrValue::str(&spec.compute.instance_type)
    );
    assert_eq!(
        value(template::SECURITY_GROUPS),
        &AttrValue::set([AttrValue::reference("security-group/app")])
    );
    assert_eq!(
        value(template::INSTANCE_PROFILE),
        &AttrValue::reference("instance-profile")
    );
    assert_eq!(
        value(template::METADATA),
        &AttrValue::Map(BTreeMap::from([
            ("http_tokens".to_owned(), AttrValue::str("required")),
            ("hop_limit".to_owned(), AttrValue::Int(1)),
        ]))
    );
    let AttrValue::Map(root) = value(template::ROOT_VOLUME) else {
        panic!("root volume is a map");
    };
    assert_eq!(root.get("type"), Some(&AttrValue::str("gp3")));
    assert_eq!(root.get("encrypted"), Some(&AttrValue::Bool(true)));
    let AttrValue::Map(environment) = value(template::ENVIRONMENT) else {
        panic!("environment is a map");
    };
    assert_eq!(
        environment.get(env::DB_SECRET_ARN),
        Some(&AttrValue::reference("db-secret"))
    );
    assert_eq!(
        environment.get(env::DB_HOST),
        Some(&AttrValue::output("db-cluster", "endpoint"))
    );
    assert_eq!(
        environment.get(env::PORT),
        Some(&AttrValue::str(spec.app.port.to_string()))
    );
    assert_eq!(
        environment.get(env::REGION),
        Some(&AttrValue::str(&spec.region))
    );
    assert_eq!(
        environment.get(env::VERSION),
        Some(&AttrValue::str(&spec.app.version))
    );
    assert!(
        environment
            .keys()
            .all(|k| !k.to_lowercase().contains("password"))
    );
    // A template is never edited: every field replaces it.
    let desired = templates
        .iter()
        .find(|d| d.key().as_str() == key)
        .unwrap_or_else(|| panic!("{key}"));
    assert!(
        desired
            .fields()
            .values()
            .all(|f| f.on_change == OnChange::Replace)
    );
    // It depends on the database (for the endpoint and the secret) and the app group.
    for dep in [
        "db-secret",
        "db-cluster",
        "security-group/app",
        "instance-profile",
    ] {
        assert!(
            desired
                .dependencies()
                .contains(&crate::engine::Key::from(dep)),
            "{dep}"
        );
    }

    // The resolved template renders user data that carries the ARN and no credential.
    let mut attrs: crate::engine::Attrs = desired
        .fields()
        .iter()
        .map(|(k, f)| (k.clone(), f.value.clone()))
        .collect();
    let mut resolved = environment.clone();
    resolved.insert(
        env::DB_SECRET_ARN.to_owned(),
        AttrValue::str("arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-1-AbCdEf"),
    );
    resolved.insert(
        env::DB_HOST.to_owned(),
        AttrValue::str("db.cluster-1.eu-west-1.rds.amazonaws.com"),
    );
    attrs.insert(template::ENVIRONMENT.to_owned(), AttrValue::Map(resolved));
    let encoded = template::encoded_user_data(&attrs).unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8(user_data::base64_decode(&encoded).unwrap_or_default())
        .unwrap_or_default();
    let unit = user_data::parse(&text).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        unit.environment.get(env::DB_SECRET_ARN).map(String::as_str),
        Some("arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-1-AbCdEf")
    );
    assert!(!text.to_lowercase().contains("password"));
}

#[test]
fn the_group_spans_every_private_subnet_with_elb_health_checks_and_the_revision() {
    let mut spec = spec();
    spec.compute.desired_capacity = None;
    let intent = Intent::steady(spec.clone());
    let revision = AppRevision::of(&spec);
    let groups = group::desired_groups(&intent);
    let key = format!("auto-scaling-group/{}", revision.id);
    let value = |name| field(&groups, &key, name).value.clone();
    assert_eq!(
        value(group::SUBNETS),
        AttrValue::set(
            spec.network
                .availability_zones
                .iter()
                .map(|az| AttrValue::reference(format!("subnet/private/{az}")))
        )
    );
    assert_eq!(
        value(group::TARGET_GROUPS),
        AttrValue::set([AttrValue::reference(format!(
            "target-group/{}",
            revision.id
        ))])
    );
    assert_eq!(
        value(group::LAUNCH_TEMPLATE),
        AttrValue::reference(format!("launch-template/{}", revision.id))
    );
    assert_eq!(value(group::HEALTH_CHECK_TYPE), AttrValue::str("ELB"));
    assert_eq!(
        value(group::MIN_SIZE),
        AttrValue::from(spec.compute.min_size)
    );
    assert_eq!(
        value(group::MAX_SIZE),
        AttrValue::from(spec.compute.max_size)
    );
    assert_eq!(value(group::REVISION), AttrValue::str(&revision.id));
    // Starts at minSize without desiredCapacity, and never fights the policies afterwards.
    let desired = field(&groups, &key, group::DESIRED_CAPACITY);
    assert_eq!(desired.value, AttrValue::from(spec.compute.min_size));
    assert_eq!(desired.on_change, OnChange::CreateOnly);
}

#[test]
fn policies_step_out_and_in_with_the_spec_cooldown_as_warmup() {
    let spec = spec();
    let intent = Intent::steady(spec.clone());
    let revision = AppRevision::of(&spec);
    let policies = scaling::desired_policies(&intent);
    let out = format!("scaling-policy/{}/out", revision.id);
    let inward = format!("scaling-policy/{}/in", revision.id);
    assert_eq!(
        field(&policies, &out, scaling::STEPS).value,
        AttrValue::List(vec![
            scaling::step(Some(0), Some(scaling::SURGE_POINTS), 1),
            scaling::step(Some(scaling::SURGE_POINTS), None, 2),
        ])
    );
    assert_eq!(
        field(&policies, &inward, scaling::STEPS).value,
        AttrValue::List(vec![scaling::step(None, Some(0), -1)])
    );
    for key in [&out, &inward] {
        assert_eq!(
            field(&policies, key, scaling::WARMUP).value,
            AttrValue::from(spec.compute.scaling.cooldown_seconds)
        );
        assert_eq!(
            field(&policies, key, scaling::GROUP).value,
            AttrValue::reference(format!("auto-scaling-group/{}", revision.id))
        );
    }
}

#[test]
fn the_role_policy_names_each_running_revisions_artifact_and_the_secret() {
    let spec = spec();
    let (intent, blue, green) = rolling(&spec);
    let role = identity::InstanceRole::new(offline());
    let desired = <identity::InstanceRole as Component<Intent>>::desired(&role, &intent)
        .unwrap_or_else(|e| panic!("{e}"));
    let policy = field(&desired, keys::INSTANCE_ROLE, identity::POLICY)
        .value
        .clone();
    let location =
        |artifact: &str| ArtifactLocation::parse(artifact).unwrap_or_else(|e| panic!("{e}"));
    let mut artifacts = vec![location(&blue.artifact), location(&green.artifact)];
    artifacts.sort_by(|a, b| (&a.bucket, &a.key).cmp(&(&b.bucket, &b.key)));
    assert_eq!(
        policy,
        policy::instance_policy(AttrValue::reference("db-secret"), &artifacts)
    );
    let mut bad = spec.clone();
    bad.app.artifact = "https://example.com/x".to_owned();
    assert!(matches!(
        <identity::InstanceRole as Component<Intent>>::desired(&role, &Intent::steady(bad)),
        Err(DesiredError::Invalid { .. })
    ));
}

/// Clients that never call anything (desired resources are pure).
fn offline() -> AwsClients {
    let config = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("eu-west-1"))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    AwsClients::from_config(&config, &crate::aws::AwsOptions::default())
}

#[test]
fn revisions_are_read_back_from_keys_and_status_names_the_newest_template() {
    assert_eq!(
        keys::revision_of(&keys::auto_scaling_group("abcd1234"), "auto-scaling-group"),
        Some("abcd1234")
    );
    assert_eq!(
        keys::revision_of(&keys::scale_out("abcd1234"), "scaling-policy"),
        Some("abcd1234")
    );
    assert_eq!(
        keys::revision_of(&keys::scale_out("abcd1234"), "auto-scaling-group"),
        None
    );

    let observed = crate::engine::Observed::new([
        crate::engine::ObservedResource::new(
            LAUNCH_TEMPLATE,
            keys::launch_template("old"),
            "lt-old",
        )
        .attr(template::CREATED, AttrValue::Int(100)),
        crate::engine::ObservedResource::new(
            LAUNCH_TEMPLATE,
            keys::launch_template("new"),
            "lt-new",
        )
        .attr(template::CREATED, AttrValue::Int(200)),
        crate::engine::ObservedResource::new(
            AUTO_SCALING_GROUP,
            keys::auto_scaling_group("old"),
            "asg-old",
        ),
        crate::engine::ObservedResource::new(
            AUTO_SCALING_GROUP,
            keys::auto_scaling_group("new"),
            "asg-new",
        ),
        crate::engine::ObservedResource::new(IAM_ROLE, keys::INSTANCE_ROLE, "role")
            .attr(identity::ARN, "arn:aws:iam::1:role/plinth/role"),
    ]);
    let mut status = DataPlatformStatus::default();
    write_status(&observed, &mut status);
    let resources = status.resources.unwrap_or_default();
    assert_eq!(resources.launch_template_id.as_deref(), Some("lt-new"));
    assert_eq!(resources.auto_scaling_group_names, ["asg-new", "asg-old"]);
    assert_eq!(
        resources.instance_role_arn.as_deref(),
        Some("arn:aws:iam::1:role/plinth/role")
    );
}

#[test]
fn the_whole_platform_with_cross_family_alarms_forms_one_graph() {
    // Every key compute refers to (subnets, app group, secret, cluster, target groups) is
    // desired by its family, and the monitoring alarms find compute's groups and policies.
    let clients = offline();
    let components = crate::network::components(&clients)
        .into_iter()
        .chain(crate::serving::components(&clients))
        .chain(crate::database::components(&clients))
        .chain(components(&clients))
        .chain(crate::monitoring::components(
            &clients,
            crate::monitoring::CrossFamily::Included,
        ));
    let components = crate::engine::Components::new(components).unwrap_or_else(|e| panic!("{e}"));
    let spec = spec();
    for intent in [Intent::steady(spec.clone()), rolling(&spec).0] {
        let graph = components
            .desired(&intent)
            .unwrap_or_else(|e| panic!("{e}"));
        let revisions: Vec<String> = intent
            .serving
            .weights()
            .into_iter()
            .map(|(r, _)| r.id.clone())
            .collect();
        for revision in &revisions {
            for key in [
                keys::launch_template(revision),
                keys::auto_scaling_group(revision),
                keys::scale_out(revision),
                keys::scale_in(revision),
            ] {
                assert!(graph.contains(&key), "{key}");
            }
        }
        assert!(graph.contains(&crate::engine::Key::from(keys::INSTANCE_ROLE)));
    }
}
