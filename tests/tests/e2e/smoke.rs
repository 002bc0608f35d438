//! Smoke tests of the local stack: each proves one real part answers the way Plinth's code will
//! use it, and fails (never skips) with the command that starts the stack when the part is down.

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use plinth_e2e::{TestDatabase, aws_config, kube_client, unique_name};
use std::time::Duration;

/// A VPC created through the real aws-sdk-ec2 client carries its tags from the create call and is
/// found again by a tag filter, which is how Plinth observes what it owns.
#[tokio::test]
async fn aws_emulator_creates_and_finds_a_tagged_vpc() {
    let config = aws_config().await.unwrap();
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let owner = unique_name("smoke");

    let created = ec2
        .create_vpc()
        .cidr_block("10.42.0.0/16")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Vpc)
                .tags(
                    Tag::builder()
                        .key("plinth.dev/platform")
                        .value(&owner)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateVpc failed: {e:?}; {}", plinth_e2e::START_HINT));
    let vpc_id = created.vpc().and_then(|v| v.vpc_id()).unwrap().to_string();

    let found = ec2
        .describe_vpcs()
        .filters(
            Filter::builder()
                .name("tag:plinth.dev/platform")
                .values(&owner)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let vpcs = found.vpcs();
    assert_eq!(
        vpcs.len(),
        1,
        "exactly the VPC just created carries the tag"
    );
    assert_eq!(vpcs[0].vpc_id(), Some(vpc_id.as_str()));
    assert_eq!(vpcs[0].cidr_block(), Some("10.42.0.0/16"));
    let tag = vpcs[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some("plinth.dev/platform"));
    assert_eq!(tag.and_then(|t| t.value()), Some(owner.as_str()));

    ec2.delete_vpc().vpc_id(&vpc_id).send().await.unwrap();
    let after = ec2
        .describe_vpcs()
        .filters(
            Filter::builder()
                .name("tag:plinth.dev/platform")
                .values(&owner)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(after.vpcs().is_empty(), "the VPC is gone after delete");
}

fn smoke_crd(group: &str) -> CustomResourceDefinition {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "properties": {"size": {"type": "integer", "minimum": 1}},
                        "required": ["size"]
                    }}
                }}
            }]
        }
    }))
    .unwrap()
}

/// A CRD installed with kube becomes established; an object of it is created, seen by a watch,
/// validated by the real server's structural schema, and deleted.
#[tokio::test]
async fn kube_apiserver_serves_a_crd_and_its_watch() {
    let client = kube_client().await.unwrap();
    let group = format!("{}.smoke.plinth.dev", unique_name("g"));
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds
        .create(&PostParams::default(), &smoke_crd(&group))
        .await
        .unwrap();
    let crd_name = crd.metadata.name.clone().unwrap();

    let established = kube::runtime::wait::await_condition(
        crds.clone(),
        &crd_name,
        kube::runtime::wait::conditions::is_crd_established(),
    );
    tokio::time::timeout(Duration::from_secs(30), established)
        .await
        .expect("CRD established within 30 s")
        .unwrap();

    let gvk = GroupVersionKind::gvk(&group, "v1", "Widget");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);

    let mut events = watcher(widgets.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();

    let invalid: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": "too-small"}, "spec": {"size": 0}
    }))
    .unwrap();
    let refused = widgets.create(&PostParams::default(), &invalid).await;
    let message = format!("{refused:?}");
    assert!(
        message.contains("spec.size"),
        "the server validates the schema: {message}"
    );

    let widget: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": "one"}, "spec": {"size": 3}
    }))
    .unwrap();
    widgets
        .create(&PostParams::default(), &widget)
        .await
        .unwrap();

    let seen = tokio::time::timeout(Duration::from_secs(30), events.try_next())
        .await
        .expect("the watch delivers the new object within 30 s")
        .unwrap()
        .expect("the watch stream stays open");
    assert_eq!(seen.metadata.name.as_deref(), Some("one"));
    assert_eq!(seen.data["spec"]["size"], 3);

    widgets
        .delete("one", &DeleteParams::default())
        .await
        .unwrap();
    crds.delete(&crd_name, &DeleteParams::default())
        .await
        .unwrap();
}

/// A table made with sqlx in a fresh MariaDB database holds the row written to it, including the
/// JSON and utf8mb4 data the webapp stores.
#[tokio::test]
async fn mariadb_stores_and_returns_a_row() {
    let db = TestDatabase::create().await.unwrap();
    sqlx::query(
        "CREATE TABLE smoke (id BIGINT PRIMARY KEY AUTO_INCREMENT, note VARCHAR(64) NOT NULL, payload JSON NOT NULL) DEFAULT CHARSET = utf8mb4",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO smoke (note, payload) VALUES (?, ?)")
        .bind("naïve ✓")
        .bind(serde_json::json!({"records": 3}))
        .execute(&db.pool)
        .await
        .unwrap();

    let (note, records): (String, i64) = sqlx::query_as(
        "SELECT note, CAST(JSON_EXTRACT(payload, '$.records') AS SIGNED) FROM smoke",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(note, "naïve ✓");
    assert_eq!(records, 3);
    db.drop_database().await.unwrap();
}
