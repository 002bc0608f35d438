//! End-to-end tests of the compute family (instance role and profile, a launch template, an
//! Auto Scaling group and step scaling policies per app revision):
//!
//! - the user data passes `cloud-init schema` (Debian's cloud-init, which `tests/stack/up`
//!   installs);
//! - the unit the user data installs really starts the webapp: its `ExecStart=` and
//!   `Environment=` lines, run here against MariaDB with the database secret in the emulator's
//!   Secrets Manager, answer `/health` and accept an ingest;
//! - against the emulator, a platform of the network, database, serving and compute families
//!   is applied, every compute resource read back with the SDK and compared with the spec,
//!   a second pass changes nothing, and teardown leaves nothing tagged.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use plinth_crds::DataPlatformStatus;
use plinth_e2e::{StackError, TestDatabase, aws_config, stack_var, unique_name};
use plinth_operator::aws::{AwsClients, AwsOptions, error_code};
use plinth_operator::cli::{self, Pace, SpecFile};
use plinth_operator::compute::{self, keys, policy, template, user_data};
use plinth_operator::engine::{AttrValue, ExecuteOptions, Key, PLATFORM_TAG, Scope};
use plinth_operator::intent::{AppRevision, Intent};
use plinth_operator::platform::Platform;
use plinth_operator::{database, network, serving};

/// What to do when `cloud-init` is missing.
const CLOUD_INIT_HINT: &str = "cloud-init is not installed: `apt-get install -y cloud-init` \
     (tests/stack/up installs it with the stack's Debian packages)";

const ARTIFACT: &str = "s3://plinth-artifacts/plinth-ingest/1.0.0/plinth-ingest";

fn manifest(namespace: &str) -> String {
    format!(
        r#"apiVersion: plinth.dev/v1alpha1
kind: DataPlatform
metadata:
  name: ingest
  namespace: {namespace}
spec:
  region: eu-west-1
  network:
    cidr: 10.44.0.0/16
    availabilityZones: [eu-west-1a, eu-west-1b]
    natGateways: None
  loadBalancer:
    allowedCidrs: [203.0.113.0/24]
  compute:
    instanceType: t3.small
    imageId: ami-0123456789abcdef0
    minSize: 1
    maxSize: 3
    desiredCapacity: 2
    scaling:
      scaleOutCpuPercent: 70
      scaleInCpuPercent: 20
      cooldownSeconds: 240
  database:
    minCapacity: 0.5
    maxCapacity: 2
    deletionPolicy: Delete
  app:
    version: 1.0.0
    artifact: {ARTIFACT}
    port: 8080
"#
    )
}

/// An environment as the launch template's component makes it, references resolved to
/// `secret_arn` and `db_host`.
fn environment(spec_text: &str, secret_arn: &str, db_host: &str) -> BTreeMap<String, String> {
    let file = cli::parse_spec(spec_text, Path::new("test.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let intent = file.intent();
    let revision = AppRevision::of(file.spec());
    let desired = template::desired_templates(&intent);
    let key = keys::launch_template(&revision.id);
    let Some(AttrValue::Map(entries)) = desired
        .iter()
        .find(|d| d.key() == &key)
        .and_then(|d| d.fields().get(template::ENVIRONMENT))
        .map(|f| &f.value)
    else {
        panic!("the template has no environment");
    };
    entries
        .iter()
        .map(|(name, value)| {
            let value = match value {
                AttrValue::Str(s) => s.clone(),
                AttrValue::Ref(k) if k.as_str() == keys::DB_SECRET => secret_arn.to_owned(),
                AttrValue::Output(k, _) if k.as_str() == keys::DB_CLUSTER => db_host.to_owned(),
                other => panic!("{name} = {other} is not resolvable here"),
            };
            (name.clone(), value)
        })
        .collect()
}

fn cloud_init_schema(document: &str) -> std::process::Output {
    let path = std::env::temp_dir().join(format!("{}.yaml", unique_name("user-data")));
    std::fs::write(&path, document).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let output = std::process::Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    match output {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{CLOUD_INIT_HINT}"),
        Err(e) => panic!("running cloud-init: {e}"),
    }
}

#[test]
fn user_data_passes_cloud_init_schema_and_holds_no_secret() {
    let env = environment(
        &manifest("schema"),
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-0f1e2d3c-AbCdEf",
        "ingest.cluster-abc.eu-west-1.rds.amazonaws.com",
    );
    let document = user_data::render(&env).unwrap_or_else(|e| panic!("{e}"));
    let output = cloud_init_schema(&document);
    assert!(
        output.status.success(),
        "cloud-init schema refused the user data:\n{}{}\n{document}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!document.to_lowercase().contains("password"), "{document}");
    // The checker does refuse a broken document, so the pass above means something.
    let broken = cloud_init_schema("#cloud-config\nruncmd: 5\nwrite_files: nope\n");
    assert!(
        !broken.status.success(),
        "cloud-init schema accepted a broken document"
    );
}

/// `user:password` from the stack's `DATABASE_URL` (`mysql://user:password@host:port`).
fn database_login() -> (String, String) {
    let url = stack_var("DATABASE_URL").unwrap_or_else(|e| panic!("{e}"));
    let credentials = url
        .strip_prefix("mysql://")
        .and_then(|rest| rest.split_once('@'))
        .map(|(credentials, _)| credentials)
        .unwrap_or_else(|| panic!("DATABASE_URL has no user:password@"));
    let (user, password) = credentials
        .split_once(':')
        .unwrap_or_else(|| panic!("DATABASE_URL has no password"));
    (user.to_owned(), password.to_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Kills the app when the test ends, passed or not.
struct Running(tokio::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

#[tokio::test]
async fn the_rendered_unit_starts_the_webapp_with_the_secret_from_secrets_manager() {
    let config = aws_config().await.unwrap_or_else(|e| panic!("{e}"));
    let endpoint = stack_var("AWS_ENDPOINT_URL").unwrap_or_else(|e| panic!("{e}"));
    let clients = plinth_e2e::reader_clients(&config);
    let database = TestDatabase::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (user, password) = database_login();

    // The secret as RDS makes it: JSON with the login, read by ARN.
    let secret = clients
        .secretsmanager()
        .await
        .create_secret()
        .name(unique_name("plinth-db"))
        .secret_string(serde_json::json!({"username": user, "password": password}).to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateSecret: {e:?}"));
    let secret_arn = secret.arn().unwrap_or_else(|| panic!("no ARN")).to_owned();

    let env = environment(&manifest("unit"), &secret_arn, "db.invalid");
    let document = user_data::render(&env).unwrap_or_else(|e| panic!("{e}"));
    let unit = user_data::parse(&document).unwrap_or_else(|| panic!("not read back:\n{document}"));
    assert_eq!(
        unit.environment.get("PLINTH_DB_SECRET_ARN"),
        Some(&secret_arn)
    );
    let (program, args) = unit
        .exec_start
        .split_first()
        .unwrap_or_else(|| panic!("no ExecStart in\n{document}"));
    assert_eq!(program, user_data::BINARY_PATH);

    let port = free_port();
    let admin_key = format!("compute-e2e-{}", unique_name("admin-key-0123456789abcdef"));
    // The unit's environment as systemd would give it, and what differs on this machine: the
    // database is the stack's MariaDB (no TLS, so `required` cannot be honoured, and a fresh
    // database per test), AWS is the emulator, the port is free, and the first admin key.
    let mut command = tokio::process::Command::new(plinth_e2e::dataplane::app_release());
    command
        .args(args)
        .env_clear()
        .envs(&unit.environment)
        .env("PLINTH_DB_HOST", "127.0.0.1")
        .env("PLINTH_DB_PORT", mariadb_port())
        .env("PLINTH_DB_NAME", &database.name)
        .env("PLINTH_DB_SSL_MODE", "disabled")
        .env("PLINTH_LISTEN_ADDR", "127.0.0.1")
        .env("PLINTH_PORT", port.to_string())
        .env("PLINTH_BOOTSTRAP_ADMIN_KEY", &admin_key)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env(
            "AWS_ACCESS_KEY_ID",
            stack_var("AWS_ACCESS_KEY_ID").unwrap_or_else(|e| panic!("{e}")),
        )
        .env(
            "AWS_SECRET_ACCESS_KEY",
            stack_var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|e| panic!("{e}")),
        )
        // The app's JSON log lines would drown the test's output; its exit shows in /health.
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    let running = Running(
        command
            .spawn()
            .unwrap_or_else(|e| panic!("starting plinth-ingest: {e}")),
    );

    let http = plinth_e2e::http();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if let Ok(response) = http.get(format!("{base}/health")).send().await
            && response.status() == 200
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "plinth-ingest did not answer /health within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ready = http
        .get(format!("{base}/ready"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/ready: {e}"));
    assert_eq!(ready.status(), 200, "the app reached its database");
    let records = serde_json::json!([
        {"type": "event", "value": 1, "source": "compute-e2e"},
        {"type": "event", "value": 2, "source": "compute-e2e"}
    ]);
    let accepted = http
        .post(format!("{base}/v1/jobs"))
        .bearer_auth(&admin_key)
        .json(&records)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST /v1/jobs: {e}"));
    assert_eq!(accepted.status(), 202, "the ingest was accepted");
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ingestion_jobs")
        .fetch_one(&database.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(jobs, 1, "the job is in the database the secret leads to");

    drop(running);
    let _ = clients
        .secretsmanager()
        .await
        .delete_secret()
        .secret_id(&secret_arn)
        .force_delete_without_recovery(true)
        .send()
        .await;
    database
        .drop_database()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

struct Harness {
    file: SpecFile,
    platform: Platform,
    /// Separate clients, only for reading AWS back.
    reader: AwsClients,
    ec2: aws_sdk_ec2::Client,
}

fn pace() -> Pace {
    Pace {
        timeout: Duration::from_secs(180),
        interval: Duration::from_millis(500),
        visibility_window: plinth_e2e::CONSISTENT_VISIBILITY,
    }
}

impl Harness {
    async fn new() -> Self {
        let endpoint = stack_var("AWS_ENDPOINT_URL").unwrap_or_else(|e| panic!("{e}"));
        let health = format!("{}/_plinth/health", endpoint.trim_end_matches('/'));
        match plinth_e2e::http_get(&health).await {
            Ok(r) if r.status().is_success() => {}
            other => panic!(
                "{}",
                StackError::Unreachable {
                    part: "the AWS emulator",
                    endpoint,
                    source: format!("{other:?}").into(),
                }
            ),
        }
        let config = aws_config().await.unwrap_or_else(|e| panic!("{e}"));
        let text = manifest(&unique_name("cmp"));
        let file = cli::parse_spec(&text, Path::new("test.yaml")).unwrap_or_else(|e| panic!("{e}"));
        let clients = AwsClients::from_config(&config, &AwsOptions::default());
        // The families compute refers to (subnets and the app group, the database's secret and
        // endpoint, the revision's target group), and compute; monitoring is not needed.
        let families = [
            network::family(&clients),
            database::family(&clients),
            serving::family(&clients),
            compute::family(&clients),
        ];
        let platform =
            Platform::new(families, ExecuteOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        Self {
            file,
            platform,
            reader: plinth_e2e::reader_clients(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
        }
    }

    fn scope(&self) -> &Scope {
        &self.file.scope
    }

    fn name(&self) -> String {
        self.scope().platform().to_owned()
    }

    async fn converge(&self) {
        let name = self.name();
        cli::converge(&self.platform, &self.file, pace(), &mut |line| {
            eprintln!("[{name}] {line}")
        })
        .await
        .unwrap_or_else(|e| panic!("{name}: apply did not converge: {e}"));
    }

    /// One more pass: it must plan nothing; returns the status outputs it observed.
    async fn steady_status(&self) -> DataPlatformStatus {
        let outcome = self
            .platform
            .apply(self.scope(), &self.file.intent(), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            outcome.is_converged(),
            "a second pass still acts: {:?}",
            outcome.pass.plan
        );
        assert!(
            outcome
                .verdicts
                .iter()
                .any(|v| v.type_ == "ComputeReady" && v.status),
            "{:?}",
            outcome.verdicts
        );
        let mut status = DataPlatformStatus::default();
        self.platform
            .write_outputs(&outcome.pass.observed, &mut status);
        status
    }

    async fn destroy(&self) {
        let name = self.name();
        cli::destroy(&self.platform, &self.file, pace(), &mut |line| {
            eprintln!("[{name}] {line}")
        })
        .await
        .unwrap_or_else(|e| panic!("{name}: destroy did not finish: {e}"));
    }

    fn aws_name(&self, key: &str, len: usize) -> String {
        self.scope().name_for(&Key::from(key), len)
    }

    /// Compute resources of the platform still in AWS, read without the components' code.
    async fn compute_left(&self) -> Vec<String> {
        let platform = self.name();
        let mut left = Vec::new();
        let groups = self
            .reader
            .autoscaling()
            .await
            .describe_auto_scaling_groups()
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        for group in groups.auto_scaling_groups() {
            if group
                .tags()
                .iter()
                .any(|t| t.key() == Some(PLATFORM_TAG) && t.value() == Some(&platform))
            {
                left.push(
                    group
                        .auto_scaling_group_name()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
        let templates = self
            .ec2
            .describe_launch_templates()
            .filters(tag_filter(&platform))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        left.extend(
            templates
                .launch_templates()
                .iter()
                .filter_map(|t| t.launch_template_id().map(str::to_owned)),
        );
        let instances = self
            .ec2
            .describe_instances()
            .filters(tag_filter(&platform))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        for instance in instances.reservations().iter().flat_map(|r| r.instances()) {
            let state = instance
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_owned());
            if !matches!(state.as_deref(), Some("terminated" | "shutting-down")) {
                left.push(instance.instance_id().unwrap_or_default().to_owned());
            }
        }
        let role = self.aws_name(keys::INSTANCE_ROLE, 64);
        match self
            .reader
            .iam()
            .await
            .get_role()
            .role_name(&role)
            .send()
            .await
        {
            Err(e) if error_code(&e) == Some("NoSuchEntity") => {}
            other => left.push(format!("role {role}: {other:?}")),
        }
        let profile = self.aws_name(keys::INSTANCE_PROFILE, 128);
        match self
            .reader
            .iam()
            .await
            .get_instance_profile()
            .instance_profile_name(&profile)
            .send()
            .await
        {
            Err(e) if error_code(&e) == Some("NoSuchEntity") => {}
            other => left.push(format!("instance profile {profile}: {other:?}")),
        }
        let policies = self
            .reader
            .autoscaling()
            .await
            .describe_policies()
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let revision = AppRevision::of(self.file.spec());
        let ours: BTreeSet<String> = [keys::scale_out(&revision.id), keys::scale_in(&revision.id)]
            .iter()
            .map(|k| self.scope().name_for(k, 255))
            .collect();
        left.extend(
            policies
                .scaling_policies()
                .iter()
                .filter_map(|p| p.policy_name())
                .filter(|n| ours.contains(*n))
                .map(str::to_owned),
        );
        left
    }
}

fn tag_filter(platform: &str) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name(format!("tag:{PLATFORM_TAG}"))
        .values(platform)
        .build()
}

/// `(Action, Resource)` of each statement of a policy document, the log statement left out.
fn grants(document: &AttrValue) -> Vec<(AttrValue, AttrValue)> {
    let AttrValue::Map(entries) = document else {
        panic!("not a document: {document}");
    };
    let Some(AttrValue::List(statements)) = entries.get("Statement") else {
        panic!("no statements: {document}");
    };
    statements
        .iter()
        .filter_map(|s| match s {
            AttrValue::Map(s) if s.get("Sid") != Some(&AttrValue::str(policy::LOGS_SID)) => Some((
                s.get("Action").cloned().unwrap_or(AttrValue::str("")),
                s.get("Resource").cloned().unwrap_or(AttrValue::str("")),
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn compute_applies_reads_back_and_tears_down_to_nothing() {
    let harness = Harness::new().await;
    harness.converge().await;
    let status = harness.steady_status().await;
    let spec = harness.file.spec().clone();
    let revision = AppRevision::of(&spec);
    let resources = status.resources.clone().unwrap_or_default();
    let database = status.database.clone().unwrap_or_default();
    let secret_arn = database
        .secret_arn
        .clone()
        .unwrap_or_else(|| panic!("no secret ARN: {status:?}"));
    let endpoint = database
        .endpoint
        .clone()
        .unwrap_or_else(|| panic!("no endpoint: {status:?}"));
    let iam = harness.reader.iam().await;

    // The role: EC2 may assume it; its policy reads exactly the secret and the artifact.
    let role_name = harness.aws_name(keys::INSTANCE_ROLE, 64);
    let role = iam
        .get_role()
        .role_name(&role_name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetRole: {e:?}"));
    let role = role.role().unwrap_or_else(|| panic!("no role"));
    assert_eq!(role.path(), "/plinth/");
    assert_eq!(resources.instance_role_arn.as_deref(), Some(role.arn()));
    assert!(
        role.tags()
            .iter()
            .any(|t| t.key() == PLATFORM_TAG && t.value() == harness.name())
    );
    let trust = role
        .assume_role_policy_document()
        .and_then(policy::parse_document)
        .unwrap_or_else(|| panic!("no trust policy"));
    assert_eq!(trust, policy::trust_policy());
    let inline = iam
        .get_role_policy()
        .role_name(&role_name)
        .policy_name(policy::INLINE_POLICY_NAME)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetRolePolicy: {e:?}"));
    let document =
        policy::parse_document(inline.policy_document()).unwrap_or_else(|| panic!("policy"));
    assert_eq!(
        grants(&document),
        [
            (
                AttrValue::str("secretsmanager:GetSecretValue"),
                AttrValue::str(&secret_arn)
            ),
            (
                AttrValue::str("s3:GetObject"),
                AttrValue::str("arn:aws:s3:::plinth-artifacts/plinth-ingest/1.0.0/plinth-ingest")
            ),
        ]
    );
    let text = inline.policy_document();
    assert!(
        policy::percent_decode(text)
            .unwrap_or_default()
            .contains(&format!("log-group:/plinth/{}:*", harness.name())),
        "the log statement names the platform's log group: {text}"
    );

    // The instance profile holds the role.
    let profile_name = harness.aws_name(keys::INSTANCE_PROFILE, 128);
    let profile = iam
        .get_instance_profile()
        .instance_profile_name(&profile_name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetInstanceProfile: {e:?}"));
    let profile = profile
        .instance_profile()
        .unwrap_or_else(|| panic!("no profile"));
    assert_eq!(
        profile
            .roles()
            .iter()
            .map(|r| r.role_name())
            .collect::<Vec<_>>(),
        [role_name.as_str()]
    );

    // The launch template of the revision.
    let template_id = resources
        .launch_template_id
        .clone()
        .unwrap_or_else(|| panic!("no launch template in status: {status:?}"));
    let versions = harness
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(&template_id)
        .versions("$Default")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let data = versions
        .launch_template_versions()
        .first()
        .and_then(|v| v.launch_template_data())
        .unwrap_or_else(|| panic!("no template data"));
    assert_eq!(data.image_id(), Some(spec.compute.image_id.as_str()));
    assert_eq!(
        data.instance_type().map(|t| t.as_str()),
        Some(spec.compute.instance_type.as_str())
    );
    assert_eq!(
        data.iam_instance_profile().and_then(|p| p.name()),
        Some(profile_name.as_str())
    );
    let metadata = data
        .metadata_options()
        .unwrap_or_else(|| panic!("no metadata options"));
    assert_eq!(metadata.http_tokens().map(|t| t.as_str()), Some("required"));
    assert_eq!(metadata.http_put_response_hop_limit(), Some(1));
    let root = data
        .block_device_mappings()
        .iter()
        .find(|m| m.device_name() == Some(template::ROOT_DEVICE))
        .and_then(|m| m.ebs())
        .unwrap_or_else(|| panic!("no root volume"));
    assert_eq!(root.volume_type().map(|t| t.as_str()), Some("gp3"));
    assert_eq!(root.encrypted(), Some(true));
    // Its one security group is the app's.
    let groups = harness
        .ec2
        .describe_security_groups()
        .set_group_ids(Some(data.security_group_ids().to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let group_keys: Vec<String> = groups
        .security_groups()
        .iter()
        .flat_map(|g| g.tags())
        .filter(|t| t.key() == Some("plinth.dev/component"))
        .filter_map(|t| t.value().map(str::to_owned))
        .collect();
    assert_eq!(group_keys, ["security-group/app"]);
    // The user data is exactly what the renderer makes from the resolved environment.
    let expected = environment(
        &manifest(
            &harness
                .file
                .platform
                .metadata
                .namespace
                .clone()
                .unwrap_or_default(),
        ),
        &secret_arn,
        &endpoint,
    );
    let rendered = user_data::render(&expected).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        data.user_data(),
        Some(user_data::base64_encode(rendered.as_bytes()).as_str()),
        "the template's user data is not the rendered one"
    );
    let decoded = String::from_utf8(
        user_data::base64_decode(data.user_data().unwrap_or_default()).unwrap_or_default(),
    )
    .unwrap_or_default();
    let unit = user_data::parse(&decoded).unwrap_or_else(|| panic!("{decoded}"));
    assert_eq!(unit.environment.get("PLINTH_DB_HOST"), Some(&endpoint));
    assert_eq!(
        unit.environment.get("PLINTH_DB_SECRET_ARN"),
        Some(&secret_arn)
    );
    assert!(!decoded.to_lowercase().contains("password"));

    // The scaling group of the revision.
    let group_name = harness.aws_name(keys::auto_scaling_group(&revision.id).as_str(), 255);
    assert_eq!(
        resources.auto_scaling_group_names,
        std::slice::from_ref(&group_name)
    );
    let described = harness
        .reader
        .autoscaling()
        .await
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&group_name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let group = described
        .auto_scaling_groups()
        .first()
        .unwrap_or_else(|| panic!("no group {group_name}"));
    let subnets: BTreeSet<&str> = group
        .vpc_zone_identifier()
        .unwrap_or_default()
        .split(',')
        .collect();
    let private: BTreeSet<&str> = resources
        .private_subnet_ids
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(subnets, private);
    assert_eq!(private.len(), 2);
    assert_eq!(group.min_size(), Some(1));
    assert_eq!(group.max_size(), Some(3));
    assert_eq!(group.desired_capacity(), Some(2));
    assert_eq!(group.health_check_type(), Some("ELB"));
    assert_eq!(group.health_check_grace_period(), Some(300));
    assert_eq!(group.default_cooldown(), Some(240));
    assert_eq!(
        group.launch_template().and_then(|t| t.launch_template_id()),
        Some(template_id.as_str())
    );
    assert_eq!(
        group.target_group_arns(),
        resources.target_group_arns.as_slice()
    );
    assert_eq!(group.target_group_arns().len(), 1);
    let tags: BTreeMap<&str, (&str, bool)> = group
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?, (t.value()?, t.propagate_at_launch()?))))
        .collect();
    assert_eq!(
        tags.get(PLATFORM_TAG),
        Some(&(harness.name().as_str(), true))
    );
    assert_eq!(
        tags.get(compute::REVISION_TAG),
        Some(&(revision.id.as_str(), true))
    );
    // The instances carry the propagated tags.
    let instances = harness
        .ec2
        .describe_instances()
        .filters(tag_filter(&harness.name()))
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name(format!("tag:{}", compute::REVISION_TAG))
                .values(&revision.id)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let launched = instances
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .count();
    assert_eq!(
        launched, 2,
        "desiredCapacity instances, tagged with the revision"
    );

    // Its step policies.
    let policies = harness
        .reader
        .autoscaling()
        .await
        .describe_policies()
        .auto_scaling_group_name(&group_name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let by_name: BTreeMap<&str, _> = policies
        .scaling_policies()
        .iter()
        .filter_map(|p| Some((p.policy_name()?, p)))
        .collect();
    let out = by_name
        .get(
            harness
                .scope()
                .name_for(&keys::scale_out(&revision.id), 255)
                .as_str(),
        )
        .unwrap_or_else(|| panic!("no scale-out policy in {by_name:?}"));
    let inward = by_name
        .get(
            harness
                .scope()
                .name_for(&keys::scale_in(&revision.id), 255)
                .as_str(),
        )
        .unwrap_or_else(|| panic!("no scale-in policy in {by_name:?}"));
    for policy in [out, inward] {
        assert_eq!(policy.policy_type(), Some("StepScaling"));
        assert_eq!(policy.adjustment_type(), Some("ChangeInCapacity"));
        assert_eq!(policy.estimated_instance_warmup(), Some(240));
    }
    let out_steps: Vec<(Option<f64>, Option<f64>, Option<i32>)> = out
        .step_adjustments()
        .iter()
        .map(|s| {
            (
                s.metric_interval_lower_bound(),
                s.metric_interval_upper_bound(),
                s.scaling_adjustment(),
            )
        })
        .collect();
    assert_eq!(
        out_steps,
        [
            (Some(0.0), Some(20.0), Some(1)),
            (Some(20.0), None, Some(2))
        ]
    );
    let in_steps: Vec<(Option<f64>, Option<f64>, Option<i32>)> = inward
        .step_adjustments()
        .iter()
        .map(|s| {
            (
                s.metric_interval_lower_bound(),
                s.metric_interval_upper_bound(),
                s.scaling_adjustment(),
            )
        })
        .collect();
    assert_eq!(in_steps, [(None, Some(0.0), Some(-1))]);

    harness.destroy().await;
    let left = harness.compute_left().await;
    assert!(
        left.is_empty(),
        "compute resources of {} remain: {left:?}",
        harness.name()
    );
}

/// Blue/green: two revisions desired at once each get their own template, group and policies,
/// and going back to one removes the other's.
#[tokio::test]
async fn a_second_revision_gets_its_own_template_group_and_policies() {
    let harness = Harness::new().await;
    harness.converge().await;
    let spec = harness.file.spec().clone();
    let blue = AppRevision::of(&spec);
    let green = AppRevision::new("1.1.0", ARTIFACT, &blue.image_id, "t3.medium");
    let mut green_spec = spec.clone();
    green_spec.app.version = green.version.clone();
    green_spec.compute.instance_type = green.instance_type.clone();
    let rolling = Intent {
        spec: green_spec.clone(),
        serving: plinth_operator::intent::Serving::Rolling {
            blue: blue.clone(),
            green: green.clone(),
            weight: 50,
        },
    };
    converge_to(&harness, &rolling).await;
    let observed = harness
        .platform
        .apply(harness.scope(), &rolling, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .pass
        .observed;
    for revision in [&blue, &green] {
        for key in [
            keys::launch_template(&revision.id),
            keys::auto_scaling_group(&revision.id),
            keys::scale_out(&revision.id),
            keys::scale_in(&revision.id),
        ] {
            assert!(
                observed.primary(&key).is_some(),
                "{key} missing during the rollout"
            );
        }
    }
    let green_template = observed
        .primary(&keys::launch_template(&green.id))
        .map(|r| r.id.clone())
        .unwrap_or_default();
    let versions = harness
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(&green_template)
        .versions("$Default")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let data = versions
        .launch_template_versions()
        .first()
        .and_then(|v| v.launch_template_data())
        .unwrap_or_else(|| panic!("no data"));
    assert_eq!(data.instance_type().map(|t| t.as_str()), Some("t3.medium"));

    // The rollout ends: only green remains.
    let done = Intent::steady(green_spec);
    converge_to(&harness, &done).await;
    let observed = harness
        .platform
        .apply(harness.scope(), &done, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .pass
        .observed;
    assert!(
        observed
            .primary(&keys::auto_scaling_group(&blue.id))
            .is_none()
    );
    assert!(observed.primary(&keys::launch_template(&blue.id)).is_none());
    assert!(observed.primary(&keys::scale_out(&blue.id)).is_none());
    assert!(
        observed
            .primary(&keys::auto_scaling_group(&green.id))
            .is_some()
    );

    harness.destroy().await;
    let left = harness.compute_left().await;
    assert!(
        left.is_empty(),
        "compute resources of {} remain: {left:?}",
        harness.name()
    );
}

async fn converge_to(harness: &Harness, intent: &Intent) {
    let started = Instant::now();
    loop {
        let outcome = harness
            .platform
            .apply(harness.scope(), intent, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for applied in &outcome.pass.report.applied {
            eprintln!("[{}] {}", harness.name(), cli::describe(applied));
        }
        assert!(
            !outcome.pass.report.is_stalled(),
            "stalled: {:?}",
            outcome.pass.report.refused
        );
        if outcome.is_converged() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no convergence: {:?}",
            outcome.pass.plan
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

/// The stack's MariaDB port, from its `DATABASE_URL` (not always 3306: a second stack beside
/// another takes other ports).
fn mariadb_port() -> String {
    let url = stack_var("DATABASE_URL").unwrap_or_else(|e| panic!("{e}"));
    reqwest::Url::parse(&url)
        .ok()
        .and_then(|u| u.port())
        .unwrap_or(3306)
        .to_string()
}
