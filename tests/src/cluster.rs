//! Kubernetes helpers for end-to-end tests: installing the generated CRD, a namespace per test,
//! the examples as objects, running the operator in-process, and waiting for what a user would
//! see (status, finalizers, events).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Client, ResourceExt};
use plinth_crds::DataPlatform;
use plinth_operator::controller::{self, Settings};
use plinth_operator::metrics::Metrics;
use plinth_operator::platform::{Platform, Platforms};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::unique_name;

/// The field manager tests apply objects with.
pub const TEST_MANAGER: &str = "plinth-e2e";

/// Installs the CRD generated from the API types (server-side apply, as the chart does) and
/// waits until the API server serves it.
pub async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = plinth_crds::crd();
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("installing the DataPlatform CRD");
    eventually(Duration::from_secs(20), "the CRD to be established", || {
        let crds = crds.clone();
        let name = name.clone();
        async move {
            let current = crds.get(&name).await.ok()?;
            let established = current
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            established.then_some(())
        }
    })
    .await;
}

/// Polls `check` every 100 ms until it returns `Some`, failing the test after `timeout` with
/// what was awaited.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fresh namespace for one test, deleted by [`TestNamespace::delete`].
pub struct TestNamespace {
    /// The admin client.
    pub client: Client,
    /// The namespace's name.
    pub name: String,
}

impl TestNamespace {
    /// Creates a namespace named after `test`, unique across runs.
    pub async fn create(client: &Client, test: &str) -> Self {
        let name = unique_name(&format!("e2e-{test}"));
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))
            .expect("a namespace object");
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .expect("creating the test namespace");
        Self {
            client: client.clone(),
            name,
        }
    }

    /// DataPlatforms in this namespace.
    pub fn platforms(&self) -> Api<DataPlatform> {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Events in this namespace about the object named `name`, oldest first.
    pub async fn events_for(&self, name: &str) -> Vec<Event> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.name);
        let mut found: Vec<Event> = events
            .list(&ListParams::default())
            .await
            .expect("listing events")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect();
        found.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
        found
    }

    /// Waits (up to 30 s) until an event about `name` exists — with `reason`, when given — and
    /// returns all events about it. Events are published after the status write a test waits
    /// on, so reading them at once would race the operator.
    pub async fn wait_for_event(&self, name: &str, reason: Option<&str>) -> Vec<Event> {
        let what = format!("an event about {name} (reason {reason:?})");
        eventually(Duration::from_secs(30), &what, || async {
            let events = self.events_for(name).await;
            let found = events
                .iter()
                .any(|e| reason.is_none_or(|r| e.reason.as_deref() == Some(r)));
            found.then_some(events)
        })
        .await
    }

    /// Deletes the DataPlatform `name` and waits (up to `timeout`) until it is gone: the
    /// operator has torn its AWS resources down and released the finalizer.
    pub async fn delete_platform(&self, name: &str, timeout: Duration) {
        let api = self.platforms();
        api.delete(name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("deleting {name}: {e}"));
        eventually(timeout, "the platform to be torn down", || async {
            api.get_opt(name).await.ok()?.is_none().then_some(())
        })
        .await;
    }

    /// DataPlatforms in this namespace as untyped objects, for specs the typed API cannot hold.
    pub fn dynamic(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &self.name,
            &ApiResource::erase::<DataPlatform>(&()),
        )
    }

    /// Deletes the namespace; the stack's namespace controller deletes what is in it and
    /// removes it once its objects are gone. A platform the test left behind keeps Plinth's
    /// finalizer with no operator to release it, which would hold the namespace `Terminating`
    /// for ever: the finalizer is dropped here (its AWS resources, if any, are the leak check's
    /// to report). A test that means to tear a platform down calls
    /// [`TestNamespace::delete_platform`] first.
    pub async fn delete(self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces
            .delete(&self.name, &DeleteParams::default())
            .await;
        let platforms = self.dynamic();
        let Ok(left) = platforms.list(&ListParams::default()).await else {
            return;
        };
        let release = Patch::Merge(json!({"metadata": {"finalizers": null}}));
        for platform in left.items {
            if let Some(name) = platform.metadata.name.as_deref() {
                let _ = platforms
                    .patch(name, &PatchParams::default(), &release)
                    .await;
            }
        }
    }
}

/// An example from `examples/` as a typed object named `name` in `namespace`.
pub fn example(file: &str, name: &str, namespace: &str) -> DataPlatform {
    let path = crate::package_dir().join("../examples").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut dp: DataPlatform = serde_norway::from_str(&text).expect("the example parses");
    dp.metadata.name = Some(name.to_string());
    dp.metadata.namespace = Some(namespace.to_string());
    dp
}

/// One operator replica running in this process.
pub struct RunningOperator {
    /// Cancelled to shut the replica down gracefully (finish passes, release the Lease).
    pub shutdown: CancellationToken,
    /// The replica's task; aborting it is a crash (the Lease is not released).
    pub task: JoinHandle<Result<(), controller::StartError>>,
    /// Its identity in the Lease.
    pub identity: String,
}

impl RunningOperator {
    /// Starts a replica with `settings` on its own metrics port.
    pub fn start(client: Client, settings: Settings, platform: Arc<Platform>) -> Self {
        let shutdown = CancellationToken::new();
        let identity = settings.identity.clone();
        let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
        let task = tokio::spawn(controller::run(
            client,
            settings,
            Arc::new(Platforms::Fixed(platform)),
            Arc::new(Metrics::default()),
            addr,
            shutdown.clone(),
        ));
        Self {
            shutdown,
            task,
            identity,
        }
    }

    /// Graceful stop: waits until the replica has finished and released its Lease.
    pub async fn stop(self) {
        self.shutdown.cancel();
        match tokio::time::timeout(Duration::from_secs(30), self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => panic!("operator {} failed: {e}", self.identity),
            Ok(Err(e)) => panic!("operator {} panicked: {e}", self.identity),
            Err(_) => panic!("operator {} did not stop within 30 s", self.identity),
        }
    }
}

/// One operator replica as a separate process (the shipped `process::main`), for what only a
/// process shows: a SIGKILL that leaves the Lease to expire, and SIGTERM handling.
pub struct OperatorProcess {
    child: std::process::Child,
    /// Its identity in the Lease.
    pub identity: String,
    /// The port its `/metrics` listens on (127.0.0.1).
    pub metrics_port: u16,
}

impl OperatorProcess {
    /// Starts `binary` watching only `namespace`, with its Lease there, talking to the stack's
    /// API server and AWS emulator.
    pub fn spawn(binary: &str, namespace: &str, identity: &str) -> Self {
        Self::spawn_with(binary, namespace, identity, &[])
    }

    /// [`Self::spawn`] with `extra` environment set last, so it overrides the stack's (a
    /// private emulator's `AWS_ENDPOINT_URL`, a shorter resync).
    pub fn spawn_with(
        binary: &str,
        namespace: &str,
        identity: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        // Bound and released at once: a port nothing else listens on for the replica to take.
        let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free local port");
        let mut command = std::process::Command::new(binary);
        for var in [
            "KUBECONFIG",
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            command.env(var, crate::stack_var(var).expect("the stack's env"));
        }
        let child = command
            .env("POD_NAME", identity)
            .env("POD_NAMESPACE", namespace)
            .env("PLINTH_WATCH_NAMESPACE", namespace)
            .env("PLINTH_LEASE_SECONDS", "6")
            // Rollout steps of 3 s instead of the CRD's 30 s minimum.
            .env("PLINTH_ROLLOUT_STEP_SCALE", "0.1")
            // The stack's emulator shows every write at once (a campaign with its lag on sets
            // a longer window in `extra`).
            .env(
                "PLINTH_AWS_VISIBILITY_SECONDS",
                crate::CONSISTENT_VISIBILITY.as_secs().to_string(),
            )
            .env("PLINTH_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .env("PLINTH_LOG_FORMAT", "text")
            .env("RUST_LOG", "warn")
            .envs(extra.iter().copied())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        Self {
            child,
            identity: identity.to_string(),
            metrics_port,
        }
    }

    /// Resident set size now and at its peak (`VmRSS`, `VmHWM` of `/proc/<pid>/status`), KiB;
    /// zeros once the process is gone.
    pub fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// CPU seconds the replica has used so far (zero once it is gone).
    pub fn cpu_seconds(&self) -> f64 {
        crate::cpu_seconds(self.child.id())
    }

    /// The AWS calls it has made so far by `(service, operation)`, from its `/metrics`.
    pub async fn aws_calls(&self) -> Result<BTreeMap<(String, String), u64>, reqwest::Error> {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        let text = crate::http_get(url).await?.text().await?;
        let mut calls = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| l.starts_with("plinth_aws_calls_total{"))
        {
            let label = |name: &str| {
                let start = line.find(&format!("{name}=\""))? + name.len() + 2;
                let end = line[start..].find('"')? + start;
                Some(line[start..end].to_owned())
            };
            let value = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            if let (Some(service), Some(operation)) = (label("service"), label("operation")) {
                // Counters are whole numbers printed as floats.
                calls.insert((service, operation), value as u64);
            }
        }
        Ok(calls)
    }

    /// A crash: SIGKILL, so nothing is released and the Lease must expire.
    pub fn kill(mut self) {
        self.kill_in_place();
    }

    /// [`Self::kill`] for a replica kept in a list (a fleet with a failover).
    pub fn kill_in_place(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status once the process ended (within 30 s).
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {pid}");
        eventually(
            Duration::from_secs(30),
            "the operator to exit after SIGTERM",
            || {
                let status = self.child.try_wait().ok().flatten();
                async move { status }
            },
        )
        .await
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        // A failed test must not leave a replica running against the shared stack.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shipped operator process built beside the running program (`plinth-operator-e2e`), for
/// the benchmarks and campaigns that start replicas; an error naming the build command when it
/// is missing.
pub fn operator_beside_this_binary() -> Result<std::path::PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("locating this program: {e}"))?;
    let binary = exe
        .parent()
        .ok_or("no directory beside this program")?
        .join("plinth-operator-e2e");
    if binary.exists() {
        Ok(binary)
    } else {
        Err(format!(
            "{} is missing: build it with `cargo build -p plinth-e2e --bins`",
            binary.display()
        ))
    }
}

/// Settings for a replica watching only `namespace`, holding a Lease there, with short
/// intervals so tests see changes quickly.
pub fn test_settings(namespace: &str, identity: &str) -> Settings {
    let mut settings = Settings::new(identity);
    settings.namespace = Some(namespace.to_string());
    settings.lease_namespace = namespace.to_string();
    settings.lease_name = "plinth-operator".into();
    settings.lease_duration = Duration::from_secs(6);
    settings.progress_interval = Duration::from_millis(500);
    settings.visibility_window = crate::CONSISTENT_VISIBILITY;
    settings
}

/// The status of condition `type_` on `dp`, if set.
pub fn condition(dp: &DataPlatform, type_: &str) -> Option<(String, String)> {
    dp.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Whether condition `type_` on `dp` is `True`.
pub fn is_true(dp: &DataPlatform, type_: &str) -> bool {
    condition(dp, type_).is_some_and(|(status, _)| status == "True")
}
