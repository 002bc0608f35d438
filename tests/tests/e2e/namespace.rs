//! Deleting a namespace — how a team or a GitOps tool removes everything of a team at once —
//! with the stack's kube-controller-manager running: every `DataPlatform` in it is deleted, the
//! operator tears each down in AWS and releases its finalizer, and the namespace goes.
//!
//! The operator's Lease lives in a namespace of its own, as the chart installs it: an operator
//! whose Lease is in the namespace being deleted loses it with the namespace's other objects.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use plinth_crds::DataPlatform;
use plinth_e2e::cluster::{
    RunningOperator, TestNamespace, eventually, example, install_crd, is_true, test_settings,
};
use plinth_e2e::{aws_config, kube_client};
use plinth_operator::aws::{AwsClients, AwsOptions};
use plinth_operator::components;

use crate::network::tagged;

/// Both platforms' networks built and Ready (NAT gateways pend in the strict emulator).
const CONVERGE: Duration = Duration::from_secs(180);
/// Both torn down, finalizers released, the namespace controller's next look finds it empty.
const TEARDOWN: Duration = Duration::from_secs(240);

/// The minimal example named `name` in `namespace`, on its own address range.
fn platform(namespace: &str, name: &str, cidr: &str) -> DataPlatform {
    let mut dp = example("minimal.yaml", name, namespace);
    dp.spec.network.cidr = cidr.to_owned();
    dp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_tears_down_its_platforms_and_the_namespace_goes() {
    let client = kube_client().await.unwrap_or_else(|e| panic!("{e}"));
    install_crd(&client).await;
    let operator_ns = TestNamespace::create(&client, "ns-operator").await;
    let team = TestNamespace::create(&client, "ns-team").await;
    let config = aws_config().await.unwrap_or_else(|e| panic!("{e}"));
    let clients = AwsClients::from_config(&config, &AwsOptions::default());
    let network = components::network_only(&clients).unwrap_or_else(|e| panic!("{e}"));
    let reader = aws_sdk_ec2::Client::new(&config);
    let mut settings = test_settings(&team.name, "namespace-deletion");
    settings.lease_namespace = operator_ns.name.clone();
    let operator = RunningOperator::start(client.clone(), settings, Arc::new(network));

    let platforms = team.platforms();
    let names = [("alpha", "10.44.0.0/16"), ("beta", "10.45.0.0/16")];
    for (name, cidr) in names {
        platforms
            .create(&PostParams::default(), &platform(&team.name, name, cidr))
            .await
            .unwrap_or_else(|e| panic!("creating {name}: {e}"));
    }
    for (name, _) in names {
        eventually(CONVERGE, &format!("{name} Ready"), || async {
            let dp = platforms.get(name).await.ok()?;
            is_true(&dp, "Ready").then_some(())
        })
        .await;
        let built = tagged(&reader, &format!("{}/{name}", team.name)).await;
        assert!(
            !built["vpc"].is_empty() && !built["subnet"].is_empty(),
            "{name}'s network is in AWS: {built:?}"
        );
    }

    // The team's namespace goes, as `kubectl delete namespace` does it.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let deleted = Instant::now();
    namespaces
        .delete(&team.name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("deleting the namespace: {e}"));
    eventually(TEARDOWN, "the namespace to be gone", || async {
        matches!(namespaces.get_opt(&team.name).await, Ok(None)).then_some(())
    })
    .await;
    eprintln!(
        "namespace with two platforms gone {:.1} s after its delete",
        deleted.elapsed().as_secs_f64()
    );
    // Gone because the operator tore each platform down, not because something dropped them.
    for (name, _) in names {
        let left = tagged(&reader, &format!("{}/{name}", team.name)).await;
        assert!(
            left.values().all(Vec::is_empty),
            "resources tagged for {name} remain after its namespace was deleted: {left:?}"
        );
    }
    operator.stop().await;
    operator_ns.delete().await;
}
