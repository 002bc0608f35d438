//! A platform that really serves: a controller against the real API server drives a platform in
//! a private emulator whose data plane runs it (instances booted from their user data with
//! cloud-init, the release fetched from S3 with the instance role, HAProxy as the load balancer
//! with real health checks, a MariaDB per Aurora cluster, measured metrics and evaluated alarms;
//! tests/stack/aws/plinth_aws/dataplane/). Every assertion is on what a user sees: HTTP answers
//! through `status.endpoint`, rows in the cluster's database, the resource's conditions and
//! events, AWS read back.
//!
//! Time: the emulator's service clocks run `TIME_SCALE` times AWS's (a one-minute alarm period
//! lasts 3 s) and the controller's rollout durations `ROLLOUT_SCALE` times the spec's, so the
//! CRD's minimums stay as they are. Instances boot as fast as they boot; the emulator counts
//! neither the boot nor the app's answer against its scaled health checks (its README, "Time").

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams, PostParams};
use plinth_crds::DataPlatform;
use plinth_e2e::cluster::{
    RunningOperator, TestNamespace, condition, eventually, example, install_crd, is_true,
    test_settings,
};
use plinth_e2e::dataplane::{self, BrokenRelease, EndpointClient};
use plinth_e2e::emulator::PrivateEmulator;
use plinth_e2e::kube_client;
use plinth_operator::aws::{AwsClients, AwsOptions};
use plinth_operator::components;
use plinth_operator::platform::Platform;
use serde_json::json;

const TIME_SCALE: f64 = 0.05;
const ROLLOUT_SCALE: f64 = 0.05;
/// A whole platform, instances booted and healthy.
const CONVERGE: Duration = Duration::from_secs(240);
const BUCKET: &str = "plinth-artifacts";
/// Lines of the emulator's log a failure message ends with.
const LOG_TAIL: usize = 60;
/// Lines of the data plane's timeline a failure message begins with.
const TIMELINE: usize = 40;

struct Rig {
    emulator: PrivateEmulator,
    config: aws_config::SdkConfig,
    reader: AwsClients,
    ns: TestNamespace,
    operator: Option<RunningOperator>,
}

impl Rig {
    async fn new(test: &str) -> Self {
        let emulator =
            PrivateEmulator::with_data_plane(TIME_SCALE, &[("PLINTH_PENDING_SECONDS", "0.5")])
                .unwrap_or_else(|e| panic!("{e}"));
        let config = emulator
            .sdk_config()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let clients = AwsClients::from_config(&config, &AwsOptions::default());
        let platform: Arc<Platform> =
            Arc::new(components::platform(&clients).unwrap_or_else(|e| panic!("{e}")));
        let client = kube_client().await.unwrap_or_else(|e| panic!("{e}"));
        install_crd(&client).await;
        let ns = TestNamespace::create(&client, test).await;
        let mut settings = test_settings(&ns.name, &format!("{test}-0"));
        settings.rollout_step_scale = ROLLOUT_SCALE;
        let operator = RunningOperator::start(client.clone(), settings, platform);
        Self {
            reader: plinth_e2e::reader_clients(&config),
            emulator,
            config,
            ns,
            operator: Some(operator),
        }
    }

    fn api(&self) -> Api<DataPlatform> {
        self.ns.platforms()
    }

    /// Publishes the workspace's `plinth-ingest` as release `version`; returns its URL.
    async fn release(&self, version: &str) -> String {
        let url = format!("s3://{BUCKET}/plinth-ingest/{version}/plinth-ingest");
        let body = std::fs::read(dataplane::app_release())
            .unwrap_or_else(|e| panic!("reading the release: {e}"));
        dataplane::publish(&self.config, &url, body).await;
        url
    }

    /// Publishes a broken release as `version`; returns its URL.
    async fn broken(&self, version: &str, kind: BrokenRelease) -> String {
        let url = format!("s3://{BUCKET}/plinth-ingest/{version}/plinth-ingest");
        dataplane::publish(&self.config, &url, kind.program().as_bytes().to_vec()).await;
        url
    }

    async fn create(&self, dp: &DataPlatform) {
        self.api()
            .create(&PostParams::default(), dp)
            .await
            .unwrap_or_else(|e| panic!("creating the platform: {e}"));
    }

    async fn patch_app(&self, name: &str, version: &str, artifact: &str) {
        self.api()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"app": {"version": version, "artifact": artifact}}})),
            )
            .await
            .unwrap_or_else(|e| panic!("changing the app to {version}: {e}"));
    }

    /// Polls the platform until `check` holds; on timeout fails with its status, its events and
    /// what the data plane reports (instances, their units and logs).
    async fn wait(
        &self,
        timeout: Duration,
        name: &str,
        what: &str,
        check: impl Fn(&DataPlatform) -> bool,
    ) -> DataPlatform {
        let deadline = Instant::now() + timeout;
        loop {
            let dp = self
                .api()
                .get(name)
                .await
                .unwrap_or_else(|e| panic!("reading {name}: {e}"));
            if check(&dp) {
                return dp;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; {}",
                    self.report(&dp).await
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The platform's status and events, and what the data plane runs (instances, their units,
    /// where their logs are), for a failure message.
    async fn report(&self, dp: &DataPlatform) -> String {
        let name = dp.metadata.name.clone().unwrap_or_default();
        let status = serde_json::to_string_pretty(&dp.status).unwrap_or_default();
        let events: Vec<String> = self
            .ns
            .events_for(&name)
            .await
            .into_iter()
            .map(|e| format!("{:?}: {:?}", e.reason, e.note))
            .collect();
        let plane = dataplane::describe(&self.emulator.endpoint)
            .await
            .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
            .unwrap_or_else(|e| e.to_string());
        // First, as CI shows a failure's beginning: what the targets, instances and alarms went
        // through (the data plane's one-line-per-change log).
        let timeline = self
            .emulator
            .log_lines_with(&["health: ", "boot: ", "state: "], TIMELINE);
        format!(
            "data plane timeline (epoch seconds):\n{timeline}\nstatus: {status}; events: {events:#?}; data plane: {plane}; emulator log {:?} ends:\n{}",
            self.emulator.log,
            self.emulator.log_tail(LOG_TAIL)
        )
    }

    async fn endpoint(&self, dp: &DataPlatform, keep_alive: bool) -> EndpointClient {
        let endpoint = dp
            .status
            .as_ref()
            .and_then(|s| s.endpoint.clone())
            .unwrap_or_else(|| panic!("no status.endpoint"));
        let pem = match &dp.spec.load_balancer.certificate_arn {
            Some(arn) => Some(dataplane::certificate_pem(&self.emulator.endpoint, arn).await),
            None => None,
        };
        EndpointClient::new(
            &self.emulator.endpoint,
            &endpoint,
            pem.as_deref(),
            keep_alive,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The cluster's database as its master user sees it: the writer endpoint the data plane
    /// serves, the login from the secret the cluster keeps in Secrets Manager, TLS required.
    async fn database(&self, dp: &DataPlatform) -> sqlx::MySqlPool {
        let (secret, host, port) = self.database_login(dp).await;
        let value = self
            .reader
            .secretsmanager()
            .await
            .get_secret_value()
            .secret_id(&secret)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetSecretValue: {e:?}"));
        let login: serde_json::Value = serde_json::from_str(value.secret_string().unwrap_or("{}"))
            .unwrap_or_else(|e| panic!("the secret is not JSON: {e}"));
        let options = sqlx::mysql::MySqlConnectOptions::new()
            .host(&host)
            .port(port.parse().unwrap_or(3306))
            .username(login["username"].as_str().unwrap_or_default())
            .password(login["password"].as_str().unwrap_or_default())
            .database("plinth")
            .ssl_mode(sqlx::mysql::MySqlSslMode::Required);
        sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap_or_else(|e| {
                panic!("connecting to the cluster's database at {host}:{port}: {e}")
            })
    }

    /// (secret ARN, host, port) of the platform's cluster, as the data plane serves it.
    async fn database_login(&self, dp: &DataPlatform) -> (String, String, String) {
        let database = dp
            .status
            .as_ref()
            .and_then(|s| s.database.clone())
            .unwrap_or_else(|| panic!("no status.database"));
        let secret = database
            .secret_arn
            .clone()
            .unwrap_or_else(|| panic!("no status.database.secretArn"));
        let writer = database
            .endpoint
            .clone()
            .unwrap_or_else(|| panic!("no status.database.endpoint"));
        let plane = dataplane::describe(&self.emulator.endpoint)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let address = plane["database_endpoints"][writer.as_str()]
            .as_str()
            .unwrap_or_else(|| panic!("the data plane serves no database at {writer}: {plane}"))
            .to_owned();
        let (host, port) = address
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("{address} is not host:port"));
        (secret, host.to_owned(), port.to_owned())
    }

    /// The platform's first admin key, made the way a platform engineer makes it: the app's
    /// own `create-admin` against the cluster's database, logging in with the secret Plinth's
    /// cluster keeps in Secrets Manager.
    async fn admin_key(&self, dp: &DataPlatform) -> String {
        let (secret, host, port) = self.database_login(dp).await;
        let output = std::process::Command::new(dataplane::app_release())
            .args(["create-admin", "--name", "e2e-admin"])
            .env_clear()
            .env("PLINTH_DB_SECRET_ARN", secret)
            .env("PLINTH_DB_HOST", &host)
            .env("PLINTH_DB_PORT", &port)
            .env("PLINTH_DB_NAME", "plinth")
            .env("PLINTH_DB_SSL_MODE", "required")
            .env("PLINTH_LOG_FORMAT", "json")
            .env("AWS_ENDPOINT_URL", &self.emulator.endpoint)
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .output()
            .unwrap_or_else(|e| panic!("running create-admin: {e}"));
        assert!(
            output.status.success(),
            "create-admin failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or_else(|| panic!("create-admin printed no key"))
            .to_owned()
    }

    async fn teardown(mut self, name: &str) {
        self.ns.delete_platform(name, CONVERGE).await;
        // Nothing of the platform runs any more: every instance the data plane booted stopped.
        let plane = dataplane::describe(&self.emulator.endpoint)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let running: Vec<&String> = plane["instances"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, i)| i["state"] != "stopped")
            .map(|(id, _)| id)
            .collect();
        assert!(
            running.is_empty(),
            "instances still running after the teardown: {running:?}"
        );
        if let Some(operator) = self.operator.take() {
            operator.stop().await;
        }
        self.ns.delete().await;
    }
}

fn message(dp: &DataPlatform, type_: &str) -> String {
    dp.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

fn active_version(dp: &DataPlatform) -> Option<String> {
    dp.status.as_ref()?.app.as_ref()?.active_version.clone()
}

/// Posts a batch with the key and waits until the job reports it processed; returns the job.
async fn ingest(
    endpoint: &EndpointClient,
    key: &str,
    records: &serde_json::Value,
) -> serde_json::Value {
    let accepted = endpoint
        .http
        .post(endpoint.url("/v1/jobs"))
        .bearer_auth(key)
        .json(records)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST /v1/jobs: {e}"));
    assert_eq!(accepted.status(), 202, "the batch was accepted");
    let job: serde_json::Value = accepted
        .json()
        .await
        .unwrap_or_else(|e| panic!("the job as JSON: {e}"));
    let id = job["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no job id in {job}"));
    eventually(Duration::from_secs(60), "the job to succeed", || async {
        let job: serde_json::Value = endpoint
            .http
            .get(endpoint.url(&format!("/v1/jobs/{id}")))
            .bearer_auth(key)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (job["status"] == "succeeded").then_some(job)
    })
    .await
}

/// `examples/platform.yaml` as a platform engineer applies it (its certificate one the emulator's
/// ACM issued for the load balancer's names, its release published): Ready only once the app
/// answers through the load balancer; a batch posted through the endpoint comes back processed
/// from the cluster's database; then a blue/green rollout under continuous client traffic loses
/// no request and moves traffic in the spec's steps.
#[tokio::test]
async fn the_example_platform_serves_and_rolls_out_without_losing_a_request() {
    let rig = Rig::new("serves").await;
    let mut dp = example("platform.yaml", "ingest", &rig.ns.name);
    dp.spec.load_balancer.certificate_arn = Some(
        dataplane::request_certificate(&rig.emulator.endpoint, "*.eu-west-1.elb.amazonaws.com")
            .await,
    );
    dp.spec.app.artifact = rig.release("1.0.0").await;
    // Steps of the example's five minutes (15 s here): long enough to measure each one's share.
    let applied = Instant::now();
    rig.create(&dp).await;
    let ready = rig
        .wait(CONVERGE, "ingest", "the platform Ready", |dp| {
            is_true(dp, "Ready")
        })
        .await;
    let to_ready = applied.elapsed();

    // Ready means served: /health through the load balancer answers from the running version.
    let endpoint = rig.endpoint(&ready, false).await;
    let health: serde_json::Value = endpoint
        .http
        .get(endpoint.url("/health"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET /health through the endpoint: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("/health as JSON: {e}"));
    assert_eq!(health["version"], "1.0.0", "{health}");
    let to_served = applied.elapsed();
    // HTTP on 80 redirects to HTTPS, as the listener says.
    let http = EndpointClient::new(
        &rig.emulator.endpoint,
        &endpoint.base.replacen("https://", "http://", 1),
        None,
        false,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let redirect = http
        .http
        .get(http.url("/health"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET http://…/health: {e}"));
    assert_eq!(redirect.status(), 301);

    // A batch through the endpoint, processed into the cluster's database.
    let key = rig.admin_key(&ready).await;
    let records = json!([
        {"type": "Reading", "sensor": "a", "value": 1.5},
        {"type": "Reading", "sensor": "b", "value": 2.5},
        {"type": "Reading", "sensor": "c", "value": 3.5}
    ]);
    // The service's metrics are not public through the load balancer's listener; an admin key
    // reads them (webapp/src/routes/health.rs says why).
    let metrics = |key: Option<String>| {
        let mut request = endpoint.http.get(endpoint.url("/metrics"));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    let anonymous = metrics(None)
        .await
        .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    assert_eq!(anonymous.status(), 401, "an anonymous /metrics is refused");
    let scraped = metrics(Some(key.clone()))
        .await
        .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    assert_eq!(scraped.status(), 200, "an admin key reads /metrics");
    let job = ingest(&endpoint, &key, &records).await;
    assert_eq!(job["record_count"], 3, "{job}");
    assert_eq!(job["processed_count"], 3, "{job}");
    // The rows are in the cluster's database, read with the master login from Secrets Manager.
    let database = rig.database(&ready).await;
    let rows: Vec<(u32, String, serde_json::Value)> = sqlx::query_as(
        "SELECT record_index, status, data FROM processed_data WHERE job_id = ? ORDER BY record_index",
    )
    .bind(job["id"].as_u64())
    .fetch_all(&database)
    .await
    .unwrap_or_else(|e| panic!("reading processed_data: {e}"));
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|(_, status, _)| status == "ok"), "{rows:?}");
    assert_eq!(rows[1].2["type"], "reading", "{rows:?}");
    assert_eq!(rows[1].2["attributes"]["sensor"], "b", "{rows:?}");
    eprintln!(
        "serves: Ready {:.1} s after apply, first request served {:.1} s after apply",
        to_ready.as_secs_f64(),
        to_served.as_secs_f64()
    );

    // Blue/green to 1.1.0 under continuous traffic.
    let v2 = rig.release("1.1.0").await;
    let traffic = Traffic::start(&endpoint, &key, 4, Mix::HealthAndIngest);
    let weights = WeightWatch::start(rig.reader.clone(), ready.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    rig.patch_app("ingest", "1.1.0", &v2).await;
    let done = rig
        .wait(CONVERGE, "ingest", "the rollout to 1.1.0 to finish", |dp| {
            active_version(dp).as_deref() == Some("1.1.0")
                && is_true(dp, "Ready")
                && dp
                    .status
                    .as_ref()
                    .and_then(|s| s.app.as_ref())
                    .is_some_and(|a| a.rollout.is_none())
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let samples = traffic.stop().await;
    let changes = weights.stop().await;
    let failed: Vec<&Sample> = samples.iter().filter(|s| s.error.is_some()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} client requests failed during the rollout: {:?}",
        failed.len(),
        samples.len(),
        failed
            .iter()
            .take(10)
            .map(|s| s.error.clone())
            .collect::<Vec<_>>()
    );
    let shares = shares_per_step(&samples, &changes, "1.1.0");
    eprintln!(
        "serves: {} requests during the rollout, 0 failed; green's share per step: {shares:?}",
        samples.len()
    );
    let steps: Vec<i32> = dp.spec.app.rollout.steps.clone();
    for weight in steps.iter().filter(|w| **w < 100) {
        let (share, count) = shares
            .get(weight)
            .copied()
            .unwrap_or_else(|| panic!("no requests measured at weight {weight}: {shares:?}"));
        assert!(count >= 30, "too few requests at weight {weight}: {count}");
        assert!(
            (share - f64::from(*weight)).abs() <= 10.0,
            "at weight {weight} green served {share:.1} % of {count} requests"
        );
    }
    assert_eq!(
        condition(&done, "RolloutFailed").map(|(s, _)| s),
        Some("False".to_owned()).filter(|_| condition(&done, "RolloutFailed").is_some())
    );
    rig.teardown("ingest").await;
}

/// One request of the load loop.
#[derive(Clone, Debug)]
struct Sample {
    sent: Instant,
    version: Option<String>,
    error: Option<String>,
}

/// What a traffic client sends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mix {
    /// `GET /health` (which version answered) and `POST /v1/jobs` (a small batch), alternately.
    HealthAndIngest,
    /// Only `POST /v1/jobs`.
    Ingest,
}

/// Clients hitting the endpoint in a loop, each request on a new connection. Bounded: at most
/// 20,000 requests or 10 minutes.
struct Traffic {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Sample>>>,
}

impl Traffic {
    fn start(endpoint: &EndpointClient, key: &str, clients: usize, mix: Mix) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let tasks = (0..clients)
            .map(|n| {
                let (endpoint, key, stop) = (endpoint.clone(), key.to_owned(), stop.clone());
                tokio::spawn(async move {
                    let mut samples = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed)
                        && samples.len() < 20_000 / clients
                        && started.elapsed() < Duration::from_secs(600)
                    {
                        i += 1;
                        let sent = Instant::now();
                        let sample = if mix == Mix::Ingest || i.is_multiple_of(2) {
                            let batch = json!([{"type": "load", "client": n, "i": i}]);
                            match endpoint
                                .http
                                .post(endpoint.url("/v1/jobs"))
                                .bearer_auth(&key)
                                .header("Idempotency-Key", format!("load-{n}-{i}"))
                                .json(&batch)
                                .send()
                                .await
                            {
                                Ok(r) if r.status().is_success() => Sample {
                                    sent,
                                    version: None,
                                    error: None,
                                },
                                Ok(r) => Sample {
                                    sent,
                                    version: None,
                                    error: Some(format!("POST {}", r.status())),
                                },
                                Err(e) => Sample {
                                    sent,
                                    version: None,
                                    error: Some(format!("POST {e}")),
                                },
                            }
                        } else {
                            match endpoint.http.get(endpoint.url("/health")).send().await {
                                Ok(r) if r.status().is_success() => {
                                    let body: serde_json::Value =
                                        r.json().await.unwrap_or_default();
                                    Sample {
                                        sent,
                                        version: body["version"].as_str().map(str::to_owned),
                                        error: None,
                                    }
                                }
                                Ok(r) => Sample {
                                    sent,
                                    version: None,
                                    error: Some(format!("GET {}", r.status())),
                                },
                                Err(e) => Sample {
                                    sent,
                                    version: None,
                                    error: Some(format!("GET {e}")),
                                },
                            }
                        };
                        samples.push(sample);
                    }
                    samples
                })
            })
            .collect();
        Self { stop, tasks }
    }

    async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for task in self.tasks {
            all.extend(
                task.await
                    .unwrap_or_else(|e| panic!("a traffic client panicked: {e}")),
            );
        }
        all.sort_by_key(|s| s.sent);
        all
    }
}

/// The listener's weight for the new version over time, read back with DescribeListeners every
/// 200 ms (what AWS says, not what the operator meant).
struct WeightWatch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(Instant, i32)>>,
}

impl WeightWatch {
    fn start(reader: AwsClients, dp: DataPlatform) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut changes: Vec<(Instant, i32)> = Vec::new();
            let balancer = dp
                .status
                .as_ref()
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.load_balancer_arn.clone())
                .unwrap_or_else(|| panic!("no load balancer in status"));
            let blue_groups = listener_weights(&reader, &balancer).await;
            while !flag.load(Ordering::Relaxed) {
                let weights = listener_weights(&reader, &balancer).await;
                // Green is every target group that was not there before the rollout.
                let green: i32 = weights
                    .iter()
                    .filter(|(arn, _)| !blue_groups.contains_key(*arn))
                    .map(|(_, w)| *w)
                    .sum();
                let total: i32 = weights.values().sum::<i32>().max(1);
                let percent = green * 100 / total;
                if changes.last().is_none_or(|(_, last)| *last != percent) {
                    changes.push((Instant::now(), percent));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            changes
        });
        Self { stop, task }
    }

    async fn stop(self) -> Vec<(Instant, i32)> {
        self.stop.store(true, Ordering::Relaxed);
        self.task
            .await
            .unwrap_or_else(|e| panic!("the weight watch panicked: {e}"))
    }
}

async fn listener_weights(reader: &AwsClients, balancer: &str) -> BTreeMap<String, i32> {
    let listeners = reader
        .elbv2()
        .await
        .describe_listeners()
        .load_balancer_arn(balancer)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeListeners: {e:?}"));
    let mut weights = BTreeMap::new();
    for listener in listeners.listeners() {
        for action in listener.default_actions() {
            if let Some(forward) = action.forward_config() {
                for tuple in forward.target_groups() {
                    if let Some(arn) = tuple.target_group_arn() {
                        weights.insert(arn.to_owned(), tuple.weight().unwrap_or(1));
                    }
                }
            } else if let Some(arn) = action.target_group_arn() {
                weights.insert(arn.to_owned(), 1);
            }
        }
    }
    weights
}

/// How long after the listener changes the proxy may still answer with the previous weights
/// (the data plane applies a change within its loop and a reload).
const SETTLE: Duration = Duration::from_millis(1500);

/// Green's share (percent) of the `/health` answers per listener weight, with the number of
/// answers, leaving out those sent within [`SETTLE`] of a change.
fn shares_per_step(
    samples: &[Sample],
    changes: &[(Instant, i32)],
    green: &str,
) -> BTreeMap<i32, (f64, usize)> {
    let mut counts: BTreeMap<i32, (usize, usize)> = BTreeMap::new();
    for sample in samples {
        let Some(version) = &sample.version else {
            continue;
        };
        let Some(index) = changes.iter().rposition(|(at, _)| *at <= sample.sent) else {
            continue;
        };
        let (at, weight) = changes[index];
        let next = changes.get(index + 1).map(|(at, _)| *at);
        if sample.sent < at + SETTLE || next.is_some_and(|n| sample.sent + SETTLE > n) {
            continue;
        }
        let entry = counts.entry(weight).or_default();
        entry.1 += 1;
        if version == green {
            entry.0 += 1;
        }
    }
    counts
        .into_iter()
        .map(|(weight, (green, all))| (weight, (green as f64 * 100.0 / all.max(1) as f64, all)))
        .collect()
}

/// A small platform on the HTTP listener (no certificate), one instance per revision.
fn small_platform(rig: &Rig, name: &str, artifact: &str) -> DataPlatform {
    let mut dp = example("minimal.yaml", name, &rig.ns.name);
    dp.spec.app.artifact = artifact.to_owned();
    // Five-minute steps, as in the example: a step must last long enough for the 5xx alarm to
    // see a bad version (3 of 5 one-minute periods), or the version moves on before it can fire.
    dp.spec.app.rollout.step_seconds = 300;
    // Checks every 5 s (0.25 s at the emulator's time scale), healthy after 2, unhealthy after 2.
    dp.spec.load_balancer.health_check.interval_seconds = 5;
    dp.spec.load_balancer.health_check.timeout_seconds = 2;
    dp.spec.load_balancer.health_check.healthy_threshold = 2;
    dp.spec.load_balancer.health_check.unhealthy_threshold = 2;
    dp
}

/// Releases that cannot serve, as users ship them by mistake: a first deploy whose binary exits
/// at start never becomes Ready and says why (the load balancer's reason, the scaling group's
/// replacements); fixed, it serves; a later version whose `/health` answers 500 is rolled back
/// with the reason in its condition and event; and a version that is healthy but answers 500 to
/// every ingest is rolled back by the 5xx alarm, fired by the traffic clients really sent.
#[tokio::test]
async fn releases_that_cannot_serve_are_never_ready_and_are_rolled_back() {
    let rig = Rig::new("broken").await;
    let broken = rig.broken("0.9.0", BrokenRelease::ExitsAtStart).await;
    let mut dp = small_platform(&rig, "ingest", &broken);
    dp.spec.app.version = "0.9.0".to_owned();
    rig.create(&dp).await;

    // A first deploy that cannot serve is held like a rollout step, then stalls with the why.
    let stalled = rig
        .wait(CONVERGE, "ingest", "the first deploy to stall", |dp| {
            is_true(dp, "Stalled")
        })
        .await;
    assert!(
        !is_true(&stalled, "Ready"),
        "a release that serves nothing is not Ready"
    );
    let why = message(&stalled, "Stalled");
    assert!(
        why.contains("Target."),
        "the load balancer's reason is in the condition: {why}"
    );
    assert!(
        !is_true(&stalled, "ComputeReady"),
        "ComputeReady says the instances do not serve: {}",
        message(&stalled, "ComputeReady")
    );
    let events = rig.ns.wait_for_event("ingest", None).await;
    assert!(
        events.iter().any(|e| e.type_.as_deref() == Some("Warning")),
        "a Warning event tells the user: {:?}",
        events
            .iter()
            .map(|e| (&e.reason, &e.note))
            .collect::<Vec<_>>()
    );

    // The fix: a release that serves. The platform recovers to Ready.
    let good = rig.release("1.0.0").await;
    rig.patch_app("ingest", "1.0.0", &good).await;
    let ready = rig
        .wait(CONVERGE, "ingest", "the fixed release Ready", |dp| {
            is_true(dp, "Ready") && active_version(dp).as_deref() == Some("1.0.0")
        })
        .await;
    let endpoint = rig.endpoint(&ready, false).await;
    let key = rig.admin_key(&ready).await;
    let job = ingest(&endpoint, &key, &json!([{"type": "check", "value": 1}])).await;
    assert_eq!(job["processed_count"], 1, "{job}");

    // A rollout to a version whose health check fails: rolled back, the reason shown.
    let unhealthy = rig.broken("1.1.0", BrokenRelease::HealthAnswers500).await;
    rig.patch_app("ingest", "1.1.0", &unhealthy).await;
    let rolled_back = rig
        .wait(
            CONVERGE,
            "ingest",
            "the unhealthy version rolled back",
            |dp| is_true(dp, "RolloutFailed") && active_version(dp).as_deref() == Some("1.0.0"),
        )
        .await;
    let why = message(&rolled_back, "RolloutFailed");
    assert!(
        why.contains("Target.ResponseCodeMismatch"),
        "the health check's answer is the reason: {why}; {}",
        rig.report(&rolled_back).await
    );
    let rollback_event = rig.ns.wait_for_event("ingest", Some("RolloutFailed")).await;
    assert!(
        rollback_event
            .iter()
            .any(|e| e.note.as_deref().is_some_and(|n| n.contains("Target."))),
        "{:?}",
        rollback_event.iter().map(|e| &e.note).collect::<Vec<_>>()
    );
    // Blue kept serving throughout.
    let health = endpoint
        .http
        .get(endpoint.url("/health"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET /health: {e}"));
    assert_eq!(health.status(), 200);

    // A version that is healthy but fails every ingest: the 5xx alarm, fed by the requests the
    // clients sent through the load balancer, fires and the rollout rolls back.
    let failing = rig.broken("1.2.0", BrokenRelease::JobsAnswer500).await;
    let traffic = Traffic::start(&endpoint, &key, 2, Mix::Ingest);
    let changed = Instant::now();
    rig.patch_app("ingest", "1.2.0", &failing).await;
    let alarmed = rig
        .wait(
            CONVERGE,
            "ingest",
            "the 5xx alarm to roll the rollout back",
            |dp| {
                is_true(dp, "RolloutFailed")
                    && message(dp, "RolloutFailed").contains("5xx")
                    && active_version(dp).as_deref() == Some("1.0.0")
            },
        )
        .await;
    let samples = traffic.stop().await;
    let errors = samples.iter().filter(|s| s.error.is_some()).count();
    eprintln!(
        "broken: the 5xx alarm rolled 1.2.0 back {:.1} s after the change, {errors} failed of {} \
         requests: {}",
        changed.elapsed().as_secs_f64(),
        samples.len(),
        message(&alarmed, "RolloutFailed")
    );
    assert!(
        errors > 0,
        "the broken version did answer some clients with 500"
    );
    // The alarm's state in CloudWatch, read back.
    let alarms = rig
        .reader
        .cloudwatch()
        .await
        .describe_alarms()
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeAlarms: {e:?}"));
    let firing: Vec<&str> = alarms
        .metric_alarms()
        .iter()
        .filter_map(|a| a.alarm_name())
        .collect();
    assert!(
        firing.iter().any(|n| n.ends_with("/load-balancer-5xx"))
            || message(&alarmed, "RolloutFailed").contains("load-balancer-5xx"),
        "the 5xx alarm fired: {firing:?}"
    );
    rig.teardown("ingest").await;
}

/// CPU load on the instances (ingest traffic through the load balancer) above the scale-out
/// threshold adds an instance through the real path — measured CPU, alarm, step policy, group —
/// and with the load gone the group scales back in once the scale-in alarm has held.
#[tokio::test]
async fn cpu_load_scales_the_group_out_and_back_in() {
    let rig = Rig::new("scaling").await;
    let release = rig.release("1.0.0").await;
    let mut dp = small_platform(&rig, "ingest", &release);
    dp.spec.compute.min_size = 1;
    dp.spec.compute.max_size = 3;
    dp.spec.compute.desired_capacity = Some(1);
    // Low thresholds: the instance shares two cores with the whole test suite. An idle
    // instance (its worker polling the queue, the health checks) measured 2.1-2.4 % of a vCPU,
    // so the scale-in line sits well above that.
    dp.spec.compute.scaling.scale_out_cpu_percent = 10;
    dp.spec.compute.scaling.scale_in_cpu_percent = 5;
    dp.spec.compute.scaling.cooldown_seconds = 60;
    rig.create(&dp).await;
    let ready = rig
        .wait(CONVERGE, "ingest", "the platform Ready", |dp| {
            is_true(dp, "Ready")
        })
        .await;
    let endpoint = rig.endpoint(&ready, true).await;
    let key = rig.admin_key(&ready).await;
    let group = ready
        .status
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.auto_scaling_group_names.first().cloned())
        .unwrap_or_else(|| panic!("no scaling group in status"));

    // Load: batches of 500 records, four clients, until the group has grown (bounded).
    let load = Load::start(&endpoint, &key, 4, 500);
    let loaded = Instant::now();
    let grown = wait_for_capacity(
        &rig,
        &group,
        "the group to scale out",
        Duration::from_secs(240),
        Some(&load),
        |desired| desired >= 2,
    )
    .await;
    let answers = load.stop().await;
    let unloaded = Instant::now();
    eprintln!(
        "scaling: desired capacity 1 -> {grown} {:.1} s after the load began; answers {answers:?}",
        loaded.elapsed().as_secs_f64()
    );
    let activities = rig
        .reader
        .autoscaling()
        .await
        .describe_scaling_activities()
        .auto_scaling_group_name(&group)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeScalingActivities: {e:?}"));
    assert!(
        activities
            .activities()
            .iter()
            .any(|a| a.cause().is_some_and(|c| c.contains("cpu-high"))),
        "the launch is explained by the alarm: {:?}",
        activities
            .activities()
            .iter()
            .map(|a| a.cause())
            .collect::<Vec<_>>()
    );

    // No load: the scale-in alarm holds for its ten periods, then one instance goes.
    let shrunk = wait_for_capacity(
        &rig,
        &group,
        "the group to scale back in",
        Duration::from_secs(240),
        None,
        |desired| desired < grown,
    )
    .await;
    eprintln!(
        "scaling: back to {shrunk} {:.1} s after the load stopped",
        unloaded.elapsed().as_secs_f64()
    );
    // Detailed monitoring: the 60-second scaling alarms get a datapoint every (scaled) minute;
    // basic monitoring would give one per instance per five (at most 3 of these 5 minutes).
    let points = group_cpu_points(&rig, &group, 5)
        .await
        .unwrap_or_else(|e| panic!("GetMetricStatistics: {e}"));
    assert!(
        points.len() >= 4,
        "the group's CPU has a datapoint in at least 4 of the last 5 minutes: {points:?}"
    );
    rig.teardown("ingest").await;
}

/// The group's `CPUUtilization` as CloudWatch holds it over the last two (scaled) minutes, for
/// a failure message.
async fn group_cpu(rig: &Rig, group: &str) -> String {
    match group_cpu_points(rig, group, 2).await {
        Ok(points) => points
            .iter()
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => format!("GetMetricStatistics failed: {e}"),
    }
}

/// The group's `CPUUtilization` averages per scaled minute over the last `minutes` (scaled).
async fn group_cpu_points(rig: &Rig, group: &str, minutes: u32) -> Result<Vec<f64>, String> {
    let now = std::time::SystemTime::now();
    let window = Duration::from_secs_f64(60.0 * f64::from(minutes) * TIME_SCALE);
    let period = (60.0 * TIME_SCALE).round().max(1.0) as i32;
    let out = rig
        .reader
        .cloudwatch()
        .await
        .get_metric_statistics()
        .namespace("AWS/EC2")
        .metric_name("CPUUtilization")
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("AutoScalingGroupName")
                .value(group)
                .build(),
        )
        .start_time(aws_sdk_cloudwatch::primitives::DateTime::from(now - window))
        .end_time(aws_sdk_cloudwatch::primitives::DateTime::from(now))
        .period(period)
        .statistics(aws_sdk_cloudwatch::types::Statistic::Average)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(out
        .datapoints()
        .iter()
        .filter_map(|p| p.average())
        .collect())
}

async fn desired_capacity(reader: &AwsClients, group: &str) -> i32 {
    reader
        .autoscaling()
        .await
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .ok()
        .and_then(|g| {
            g.auto_scaling_groups()
                .first()
                .and_then(|g| g.desired_capacity())
        })
        .unwrap_or(0)
}

/// Clients posting batches of `size` records as fast as they are answered (bounded: ten
/// minutes, 5,000 batches), counting the answers by status.
struct Load {
    stop: Arc<AtomicBool>,
    answers: Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(endpoint: &EndpointClient, key: &str, clients: usize, size: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let started = Instant::now();
        let batch: Vec<serde_json::Value> = (0..size)
            .map(|i| json!({"type": "load", "value": i, "payload": "x".repeat(64)}))
            .collect();
        let batch = Arc::new(serde_json::Value::Array(batch));
        let tasks = (0..clients)
            .map(|_| {
                let (endpoint, key, stop, batch, answers) = (
                    endpoint.clone(),
                    key.to_owned(),
                    stop.clone(),
                    batch.clone(),
                    answers.clone(),
                );
                tokio::spawn(async move {
                    let mut sent = 0usize;
                    while !stop.load(Ordering::Relaxed)
                        && sent < 5_000 / clients
                        && started.elapsed() < Duration::from_secs(600)
                    {
                        let answer = match endpoint
                            .http
                            .post(endpoint.url("/v1/jobs"))
                            .bearer_auth(&key)
                            .json(batch.as_ref())
                            .send()
                            .await
                        {
                            Ok(response) => response.status().as_u16().to_string(),
                            Err(e) => format!("error: {e}"),
                        };
                        if let Ok(mut answers) = answers.lock() {
                            *answers.entry(answer).or_default() += 1;
                        }
                        sent += 1;
                    }
                })
            })
            .collect();
        Self {
            stop,
            answers,
            tasks,
        }
    }

    fn answers(&self) -> BTreeMap<String, usize> {
        self.answers.lock().map(|a| a.clone()).unwrap_or_default()
    }

    async fn stop(self) -> BTreeMap<String, usize> {
        self.stop.store(true, Ordering::Relaxed);
        let answers = self.answers.clone();
        for task in self.tasks {
            let _ = task.await;
        }
        answers.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

/// Waits until the group's desired capacity satisfies `check`; on timeout fails with the load's
/// answers, the scaling alarms' states and the group's recent CPU as CloudWatch holds it.
async fn wait_for_capacity(
    rig: &Rig,
    group: &str,
    what: &str,
    timeout: Duration,
    load: Option<&Load>,
    check: impl Fn(i32) -> bool,
) -> i32 {
    let deadline = Instant::now() + timeout;
    loop {
        let desired = desired_capacity(&rig.reader, group).await;
        if check(desired) {
            return desired;
        }
        if Instant::now() > deadline {
            let alarms = rig
                .reader
                .cloudwatch()
                .await
                .describe_alarms()
                .send()
                .await
                .map(|a| {
                    a.metric_alarms()
                        .iter()
                        .filter(|a| a.alarm_name().is_some_and(|n| n.contains("/cpu-")))
                        .map(|a| {
                            format!(
                                "{:?} {:?}: {:?}",
                                a.alarm_name(),
                                a.state_value(),
                                a.state_reason()
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let cpu = group_cpu(rig, group).await;
            panic!(
                "timed out after {timeout:?} waiting for {what} (desired {desired}); load answers: \
                 {:?}; alarms: {alarms:#?}; the group's CPU (average per scaled minute): {cpu}; \
                 data plane: {:?}; emulator log {:?} ends:\n{}",
                load.map(Load::answers),
                dataplane::describe(&rig.emulator.endpoint).await,
                rig.emulator.log,
                rig.emulator.log_tail(LOG_TAIL)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
