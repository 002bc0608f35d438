//! The `plinth` command line: `plan`, `apply`, `destroy` and `status` of one DataPlatform spec
//! file against the live AWS account, without Kubernetes, through the same engine and the same
//! component list as the controller ([`crate::components::platform`]).
//!
//! `apply` converges AWS to the spec, then (like the controller's `Ready`) waits a while for the
//! app to serve: the spec's revision's target group with at least its scaling group's minimum
//! of healthy targets. When it does not, it says why (each target's state and AWS's reason, the
//! scaling activities) and fails.
//!
//! The spec file is a `DataPlatform` manifest as `kubectl apply` takes it; a missing
//! `metadata.namespace` means `default`. It is validated as the API server would before any
//! AWS call. Progress goes to stdout, one line per change.
//!
//! `iam-policy` prints the operator's IAM policy from the actions the drivers declare
//! ([`iam_policy`]); it needs neither a spec nor AWS.

pub mod iam_policy;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use kube::ResourceExt as _;
use plinth_crds::{DataPlatform, DataPlatformSpec, ValidationErrors};

use crate::aws::{AwsClients, AwsOptions};
use crate::components;
use crate::engine::{self, Applied, Change, DuplicateKind, Report, Scope, Summary};
use crate::intent::{AppRevision, Intent};
use crate::network;
use crate::platform::{PassError, Platform, TeardownError};
use crate::rollout::{self, ServingHealth};

/// Plan, apply and destroy a Plinth DataPlatform from a spec file, without Kubernetes.
#[derive(Parser, Debug)]
#[command(name = "plinth", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print what `apply` would change in the live account, as a diff. Changes nothing.
    Plan(SpecArgs),
    /// Create or correct everything the spec asks for, pass after pass until AWS matches it, then
    /// wait for the app's targets to be healthy.
    Apply(ApplyArgs),
    /// Delete everything tagged for the platform, until nothing remains.
    Destroy(RunArgs),
    /// Show the platform's resources and whether they match the spec. Changes nothing.
    Status(SpecArgs),
    /// Print the operator's least-privilege IAM policy (JSON), built from every driver's
    /// declared actions. Needs no spec and no AWS access.
    IamPolicy(IamPolicyArgs),
}

/// Where the policy goes.
#[derive(Args, Debug, Clone)]
pub struct IamPolicyArgs {
    /// Compare with this committed file instead of printing; fail when it differs (CI).
    #[arg(long)]
    pub check: Option<PathBuf>,
}

/// Which spec.
#[derive(Args, Debug, Clone)]
pub struct SpecArgs {
    /// The DataPlatform manifest (YAML).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
}

/// Which spec, and how long to keep going.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The spec file.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout_seconds: u64,
    /// Seconds between passes while AWS is still working on something.
    #[arg(long, default_value_t = 1.0)]
    pub interval_seconds: f64,
    /// Seconds AWS may take to list a resource after its create: until then a create this
    /// command sent is not sent again, and `destroy` waits for it.
    #[arg(long, default_value_t = engine::DEFAULT_VISIBILITY_WINDOW.as_secs())]
    pub aws_visibility_seconds: u64,
}

/// `apply`: the run, and how long to wait for the app to serve.
#[derive(Args, Debug, Clone)]
pub struct ApplyArgs {
    /// The spec file and the convergence's pace.
    #[command(flatten)]
    pub run: RunArgs,
    /// Once AWS matches the spec, wait this many seconds for the app's targets to be healthy
    /// (at least the scaling group's minimum); 0 only converges the resources.
    #[arg(long, default_value_t = 300)]
    pub wait_healthy_seconds: u64,
}

/// Why `plinth` stopped without success. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The spec file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The spec file is not a DataPlatform manifest.
    #[error("{path} is not a DataPlatform manifest: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_norway::Error,
    },
    /// The spec breaks the API's rules.
    #[error("{path} is not a valid DataPlatform; fix these fields:\n{errors}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        errors: ValidationErrors,
    },
    /// The component list is inconsistent (a bug).
    #[error("the component list is inconsistent: {0}")]
    Components(#[from] DuplicateKind),
    /// A pass could not run.
    #[error(transparent)]
    Pass(#[from] PassError),
    /// AWS refused part of the spec.
    #[error("AWS refused part of the spec; change it and run again:\n{0}")]
    Stalled(String),
    /// The committed IAM policy is not what the drivers declare now.
    #[error("{path} is stale or unreadable ({why}); regenerate it: plinth iam-policy > {path}")]
    StalePolicy {
        /// The committed file.
        path: PathBuf,
        /// What differs.
        why: String,
    },
    /// AWS matches the spec but the app does not serve.
    #[error(
        "AWS matches the spec, but the app did not serve within {seconds} s: {why}; fix the app \
         (its version, artifact or health check) and apply again, or run the command again to keep waiting"
    )]
    Unhealthy {
        /// How long it waited.
        seconds: u64,
        /// How many targets are healthy of how many needed, and why the others are not.
        why: String,
    },
    /// The deadline passed first.
    #[error("gave up after {seconds} s: {what}; run the command again to continue")]
    Timeout {
        /// The deadline.
        seconds: u64,
        /// What was still going on.
        what: String,
    },
}

/// A loaded spec file.
#[derive(Debug, Clone)]
pub struct SpecFile {
    /// The manifest, namespace filled in.
    pub platform: DataPlatform,
    /// Its AWS identity.
    pub scope: Scope,
}

impl SpecFile {
    /// What the CLI builds toward: the spec with its own app revision serving (the CLI converges
    /// straight to the spec; blue/green rollouts are the controller's).
    pub fn intent(&self) -> Intent {
        Intent::steady(self.spec().clone())
    }

    /// The file's spec.
    pub fn spec(&self) -> &DataPlatformSpec {
        &self.platform.spec
    }
}

/// Reads, defaults and validates a spec file.
pub fn load_spec(path: &Path) -> Result<SpecFile, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_spec(&text, path)
}

/// Parses, defaults and validates a manifest's text (`path` only names it in errors).
pub fn parse_spec(text: &str, path: &Path) -> Result<SpecFile, CliError> {
    let mut platform: DataPlatform =
        serde_norway::from_str(text).map_err(|source| CliError::Parse {
            path: path.to_owned(),
            source,
        })?;
    if platform.metadata.namespace.is_none() {
        platform.metadata.namespace = Some("default".to_owned());
    }
    platform.validate().map_err(|errors| CliError::Invalid {
        path: path.to_owned(),
        errors,
    })?;
    let namespace = platform.namespace().unwrap_or_else(|| "default".to_owned());
    let scope = Scope::new(
        &namespace,
        &platform.name_any(),
        platform
            .spec
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    Ok(SpecFile { platform, scope })
}

/// How [`converge`] and [`destroy`] pace themselves.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// Give up after this long.
    pub timeout: Duration,
    /// Wait this long between passes while AWS is busy.
    pub interval: Duration,
    /// How long AWS may take to list a resource after its create (the journal's window).
    pub visibility_window: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(900),
            interval: Duration::from_secs(1),
            visibility_window: engine::DEFAULT_VISIBILITY_WINDOW,
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finished {
    /// Passes run, the last (confirming) one included.
    pub passes: u32,
    /// Changes made in all.
    pub changes: usize,
}

/// One progress line per change.
pub fn describe(applied: &Applied) -> String {
    match &applied.change {
        Change::Created { id, replaced: None } => {
            format!("+ {} {}: created {id}", applied.kind, applied.key)
        }
        Change::Created {
            id,
            replaced: Some(old),
        } => format!(
            "± {} {}: created {id} replacing {old}",
            applied.kind, applied.key
        ),
        Change::Updated { id, fields } => format!(
            "~ {} {}: updated {} of {id}",
            applied.kind,
            applied.key,
            fields.join(", ")
        ),
        Change::Deleted {
            id,
            done,
            duplicate,
        } => format!(
            "- {} {}: {} {id}{}",
            applied.kind,
            applied.key,
            if *done { "deleted" } else { "deleting" },
            if *duplicate { " (a duplicate)" } else { "" }
        ),
    }
}

fn report_lines(report: &Report, progress: &mut dyn FnMut(&str)) {
    for applied in &report.applied {
        progress(&describe(applied));
    }
    for failure in &report.retryable {
        progress(&format!(
            "! {} {}: {} failed, will retry: {}",
            failure.kind, failure.key, failure.operation, failure.error
        ));
    }
}

fn refusals(report: &Report) -> String {
    report
        .refused
        .iter()
        .map(|f| format!("  {} {}: {} {}", f.kind, f.key, f.operation, f.error))
        .collect::<Vec<_>>()
        .join("\n")
}

fn waiting(report: &Report) -> String {
    report
        .pending
        .iter()
        .map(|p| format!("{} {}", p.key, p.reason))
        .chain(
            report
                .retryable
                .iter()
                .map(|f| format!("{}: {}", f.key, f.error)),
        )
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs apply passes until a pass finds nothing to do (converged), AWS refuses part of the
/// spec (stalled), or the deadline passes.
pub async fn converge(
    platform: &Platform,
    file: &SpecFile,
    pace: Pace,
    progress: &mut dyn FnMut(&str),
) -> Result<Finished, CliError> {
    let started = Instant::now();
    let mut passes = 0;
    let mut changes = 0;
    // The CLI's memory of its creates lasts this command (the controller's is in the status).
    let journal = engine::Journal::in_memory(pace.visibility_window);
    loop {
        passes += 1;
        let outcome = match platform
            .apply(&file.scope, &file.intent(), Some(&journal))
            .await
        {
            Ok(outcome) => outcome,
            // Reading AWS failed after the SDK's retries: try the pass again, within the deadline.
            Err(PassError::Observe(error))
                if !matches!(error, engine::ActError::Refused { .. }) =>
            {
                progress(&format!("! reading AWS failed, will retry: {error}"));
                if started.elapsed() > pace.timeout {
                    return Err(CliError::Timeout {
                        seconds: pace.timeout.as_secs(),
                        what: error.to_string(),
                    });
                }
                tokio::time::sleep(pace.interval).await;
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let report = &outcome.pass.report;
        report_lines(report, progress);
        changes += report.applied.len();
        if report.is_stalled() {
            return Err(CliError::Stalled(refusals(report)));
        }
        if outcome.is_converged() {
            return Ok(Finished { passes, changes });
        }
        if started.elapsed() > pace.timeout {
            return Err(CliError::Timeout {
                seconds: pace.timeout.as_secs(),
                what: waiting(report),
            });
        }
        // Straight on when the pass only made changes; wait while AWS is working.
        if !report.pending.is_empty() || !report.retryable.is_empty() {
            tokio::time::sleep(pace.interval).await;
        }
    }
}

/// After `apply` converged: waits up to `pace.timeout` for the spec's revision to serve (its
/// target group with at least its scaling group's minimum of healthy targets), polling at
/// `pace.interval` and printing each new state. One observe to find the groups, then one
/// DescribeTargetHealth a poll (and the scaling activities while too few are healthy).
/// `Ok(None)`: the platform has no target group or scaling group to check.
pub async fn wait_serving(
    platform: &Platform,
    file: &SpecFile,
    pace: Pace,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<ServingHealth>, CliError> {
    let Some(clients) = platform.clients() else {
        return Ok(None);
    };
    let observed = platform.plan(&file.scope, &file.intent()).await?.observed;
    let revision = AppRevision::of(file.spec());
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let line = match rollout::serving_health(clients, &observed, &revision).await {
            Ok(None) => return Ok(None),
            Ok(Some(health)) if health.serves() => return Ok(Some(health)),
            Ok(Some(health)) => {
                let why = health.explain();
                if started.elapsed() >= pace.timeout {
                    return Err(CliError::Unhealthy {
                        seconds: pace.timeout.as_secs(),
                        why,
                    });
                }
                format!("… waiting for healthy targets: {why}")
            }
            Err(error @ engine::ActError::Refused { .. }) => {
                return Err(CliError::Stalled(format!(
                    "  reading the targets' health: {error}"
                )));
            }
            Err(error) => {
                if started.elapsed() >= pace.timeout {
                    return Err(CliError::Timeout {
                        seconds: pace.timeout.as_secs(),
                        what: format!("reading the targets' health: {error}"),
                    });
                }
                format!("! reading the targets' health failed, will retry: {error}")
            }
        };
        if line != last {
            progress(&line);
            last = line;
        }
        tokio::time::sleep(pace.interval).await;
    }
}

/// Runs teardown passes until a fresh observe finds nothing tagged for the platform.
pub async fn destroy(
    platform: &Platform,
    file: &SpecFile,
    pace: Pace,
    progress: &mut dyn FnMut(&str),
) -> Result<Finished, CliError> {
    let started = Instant::now();
    let mut passes = 0;
    let mut changes = 0;
    let journal = engine::Journal::in_memory(pace.visibility_window);
    loop {
        passes += 1;
        // `deletionPolicy: Retain` keeps the database and its network; the platform tags them
        // once everything else is gone.
        let teardown = match platform
            .teardown(&file.scope, file.spec(), Some(&journal))
            .await
        {
            Ok(teardown) => teardown,
            Err(error) if !error.is_refusal() => {
                progress(&format!("! {error}, will retry"));
                tokio::time::sleep(pace.interval).await;
                continue;
            }
            Err(TeardownError::Pass(error)) => return Err(error.into()),
            Err(error) => return Err(CliError::Stalled(format!("  {error}"))),
        };
        let outcome = teardown.pass;
        if outcome.found == 0 {
            if !teardown.retained.is_empty() {
                progress(&format!(
                    "= deletionPolicy is Retain: the database and its network stay, {} resource(s) tagged {}=true",
                    teardown.retained.len(),
                    crate::database::RETAINED_TAG
                ));
            }
            return Ok(Finished { passes, changes });
        }
        report_lines(&outcome.report, progress);
        changes += outcome.report.applied.len();
        if outcome.report.is_stalled() {
            return Err(CliError::Stalled(refusals(&outcome.report)));
        }
        if started.elapsed() > pace.timeout {
            return Err(CliError::Timeout {
                seconds: pace.timeout.as_secs(),
                what: format!(
                    "{} resource(s) remain; {}",
                    outcome.found,
                    waiting(&outcome.report)
                ),
            });
        }
        if outcome.report.applied.is_empty() || !outcome.report.pending.is_empty() {
            tokio::time::sleep(pace.interval).await;
        }
    }
}

/// The operator's IAM policy document, pretty-printed with a final newline, from the actions
/// of every component [`components::platform`] registers and of the rollout's gate reads.
pub fn iam_policy_json() -> Result<String, CliError> {
    // Clients that are never called: the drivers are built only to ask for their actions.
    let config = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let clients = AwsClients::from_config(&config, &AwsOptions::default());
    let mut actions = components::platform(&clients)?.iam_actions();
    actions.extend(crate::rollout::IAM_ACTIONS.iter().copied());
    Ok(format!("{:#}\n", iam_policy::policy(&actions)))
}

fn iam_policy_command(args: &IamPolicyArgs) -> Result<(), CliError> {
    let policy = iam_policy_json()?;
    let Some(path) = &args.check else {
        print!("{policy}");
        return Ok(());
    };
    let stale = |why: String| CliError::StalePolicy {
        path: path.clone(),
        why,
    };
    let committed = std::fs::read_to_string(path).map_err(|e| stale(e.to_string()))?;
    if committed != policy {
        let ours: serde_json::Value =
            serde_json::from_str(&policy).map_err(|e| stale(e.to_string()))?;
        let theirs: serde_json::Value =
            serde_json::from_str(&committed).map_err(|e| stale(e.to_string()))?;
        let (ours, theirs) = (
            iam_policy::actions_of(&ours),
            iam_policy::actions_of(&theirs),
        );
        let missing: Vec<_> = ours.difference(&theirs).collect();
        let extra: Vec<_> = theirs.difference(&ours).collect();
        return Err(stale(format!(
            "it lacks {missing:?} and grants {extra:?} beyond the drivers' actions, or differs in layout"
        )));
    }
    println!("plinth: {} is up to date", path.display());
    Ok(())
}

/// Runs the command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let (file, pace) = match &cli.command {
        Command::IamPolicy(args) => return iam_policy_command(args),
        Command::Plan(args) | Command::Status(args) => (load_spec(&args.file)?, Pace::default()),
        Command::Apply(ApplyArgs { run: args, .. }) | Command::Destroy(args) => (
            load_spec(&args.spec.file)?,
            Pace {
                timeout: Duration::from_secs(args.timeout_seconds),
                interval: Duration::from_secs_f64(args.interval_seconds.max(0.05)),
                visibility_window: Duration::from_secs(args.aws_visibility_seconds),
            },
        ),
    };
    let clients = AwsClients::load(&file.spec().region, &AwsOptions::default()).await;
    let platform = components::platform(&clients)?;
    let mut print = |line: &str| println!("{line}");
    let name = file.scope.platform().to_owned();
    match cli.command {
        // Answered above, before any spec or client was loaded.
        Command::IamPolicy(_) => {}
        Command::Plan(_) => {
            let plan = platform.plan(&file.scope, &file.intent()).await?.plan;
            if plan.is_empty() {
                println!("{name}: AWS matches the spec; nothing to do.");
            } else {
                print!("{}", engine::render(&plan));
                println!("\n{name}: {}", Summary::of(&plan));
            }
        }
        Command::Status(_) => {
            let pass = platform.plan(&file.scope, &file.intent()).await?;
            let (observed, plan) = (pass.observed, pass.plan);
            println!("platform: {name} ({} resources found)", observed.len());
            for resource in observed.iter() {
                println!(
                    "  {:<16} {:<36} {}",
                    resource.kind, resource.key, resource.id
                );
            }
            let status = network::resources_status(&observed);
            match serde_norway::to_string(&status) {
                Ok(yaml) => println!("resources:\n{}", indent(&yaml)),
                Err(e) => println!("resources: (cannot print: {e})"),
            }
            if plan.is_empty() {
                println!("in sync: AWS matches the spec");
            } else {
                println!("not in sync: {}", Summary::of(&plan));
            }
            if let Some(clients) = platform.clients() {
                let revision = AppRevision::of(file.spec());
                match rollout::serving_health(clients, &observed, &revision).await {
                    Ok(Some(health)) if health.serves() => {
                        println!("serving: {}", health.summary());
                    }
                    Ok(Some(health)) => println!("not serving: {}", health.explain()),
                    Ok(None) => println!(
                        "not serving: the app's target group or scaling group does not exist"
                    ),
                    Err(e) => println!("serving: unknown, reading the targets' health failed: {e}"),
                }
            }
        }
        Command::Apply(args) => {
            println!("applying {name} in {}", file.spec().region);
            let started = Instant::now();
            let finished = converge(&platform, &file, pace, &mut print).await?;
            println!(
                "{name}: AWS matches the spec after {} pass(es), {} change(s), {:.1} s",
                finished.passes,
                finished.changes,
                started.elapsed().as_secs_f64()
            );
            if args.wait_healthy_seconds == 0 {
                println!(
                    "{name}: not waiting for the app to serve (--wait-healthy-seconds 0): the resources exist, their targets may not be healthy yet"
                );
                return Ok(());
            }
            let wait = Pace {
                timeout: Duration::from_secs(args.wait_healthy_seconds),
                ..pace
            };
            match wait_serving(&platform, &file, wait, &mut print).await? {
                Some(health) => println!(
                    "{name}: serving: {}, {:.1} s",
                    health.summary(),
                    started.elapsed().as_secs_f64()
                ),
                None => println!(
                    "{name}: no target group and scaling group of the app found: nothing serves to check"
                ),
            }
        }
        Command::Destroy(_) => {
            println!("destroying {name} in {}", file.spec().region);
            let started = Instant::now();
            let finished = destroy(&platform, &file, pace, &mut print).await?;
            println!(
                "{name}: nothing tagged for the platform remains ({} pass(es), {} change(s), {:.1} s)",
                finished.passes,
                finished.changes,
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = include_str!("../../../examples/minimal.yaml");

    #[test]
    fn a_missing_namespace_defaults_to_default() {
        match parse_spec(MINIMAL, Path::new("minimal.yaml")) {
            Ok(file) => assert_eq!(file.scope.platform(), "default/ingest"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn apply_waits_for_healthy_targets_unless_told_not_to() {
        let wait = |args: &[&str]| match Cli::try_parse_from(args).map(|cli| cli.command) {
            Ok(Command::Apply(apply)) => Some(apply.wait_healthy_seconds),
            _ => None,
        };
        assert_eq!(wait(&["plinth", "apply", "-f", "p.yaml"]), Some(300));
        assert_eq!(
            wait(&[
                "plinth",
                "apply",
                "-f",
                "p.yaml",
                "--wait-healthy-seconds",
                "0"
            ]),
            Some(0)
        );
        let unhealthy = CliError::Unhealthy {
            seconds: 300,
            why: "0 of 2 needed target(s) healthy; i-0abc unhealthy: Target.Timeout".into(),
        };
        let message = unhealthy.to_string();
        assert!(
            message.contains("did not serve within 300 s: 0 of 2 needed target(s) healthy"),
            "{message}"
        );
    }

    #[test]
    fn an_invalid_spec_is_refused_before_any_aws_call() {
        let text = MINIMAL.replace("cidr: ", "cidr: 10.0.0.1/8 #");
        let error = parse_spec(&text, Path::new("bad.yaml")).err();
        assert!(matches!(error, Some(CliError::Invalid { .. })), "{error:?}");
    }
}
