//! A private AWS emulator for one test: the stack's strict layer (`tests/stack/aws/server.py`)
//! started on a free loopback port with its own settings, so injected faults never reach the
//! suites sharing the stack's emulator. Stopped when dropped: SIGTERM, so a data plane stops
//! its instances, proxies and database servers, then SIGKILL if it takes too long.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::{StackError, stack_var};

/// The region the private emulator prepares and its clients use.
const REGION: &str = "eu-west-1";

/// A running private emulator.
pub struct PrivateEmulator {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// Where its log goes (its data plane's reports, tracebacks), when the stack has a log dir.
    pub log: Option<std::path::PathBuf>,
}

impl PrivateEmulator {
    /// Starts the strict emulator with its data plane on (instances, load balancers, databases
    /// and alarms run for real; service clocks `time_scale` times AWS's) and `settings`.
    pub fn with_data_plane(time_scale: f64, settings: &[(&str, &str)]) -> Result<Self, StackError> {
        let scale = time_scale.to_string();
        let mut all = vec![
            ("PLINTH_DATA_PLANE", "1"),
            ("PLINTH_DATA_PLANE_TIME_SCALE", scale.as_str()),
        ];
        all.extend_from_slice(settings);
        Self::start(&all)
    }

    /// Starts the strict emulator with `settings` as extra environment (`PLINTH_FAULT_*` …) and
    /// waits for its "listening" line.
    pub fn start(settings: &[(&str, &str)]) -> Result<Self, StackError> {
        let python = stack_var("PLINTH_AWS_PYTHON")?;
        let server = stack_var("PLINTH_AWS_SERVER")?;
        let stack_dir = stack_var("PLINTH_STACK_DIR")
            .ok()
            .map(std::path::PathBuf::from);
        let log = stack_dir.as_ref().map(|dir| {
            dir.join("logs")
                .join(format!("{}.log", crate::unique_name("emulator")))
        });
        let stderr = log
            .as_ref()
            .and_then(|path| std::fs::File::create(path).ok())
            .map_or_else(Stdio::null, Stdio::from);
        let mut command = Command::new(&python);
        command
            .args([server.as_str(), "--host", "127.0.0.1", "--port", "0"])
            .env("AWS_REGION", REGION)
            .envs(settings.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(dir) = &stack_dir {
            command.env("PLINTH_DATA_PLANE_DIR", dir.join("dataplane"));
        }
        let mut child = command.spawn().map_err(|e| StackError::Unreachable {
            part: "a private AWS emulator",
            endpoint: python.clone(),
            source: e.into(),
        })?;
        let stdout = child
            .stdout
            .take()
            .ok_or(StackError::Missing("emulator stdout"))?;
        // The server prints one line once it accepts connections, naming the port it bound.
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| StackError::Unreachable {
                part: "a private AWS emulator",
                endpoint: server.clone(),
                source: e.into(),
            })?;
        let endpoint = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .map(str::to_owned)
            .ok_or_else(|| StackError::Unreachable {
                part: "a private AWS emulator",
                endpoint: server.clone(),
                source: format!("unexpected first line {line:?}").into(),
            })?;
        Ok(Self {
            child,
            endpoint,
            log,
        })
    }

    /// CPU seconds the emulator has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        crate::cpu_seconds(self.child.id())
    }

    /// The last `lines` lines of the emulator's log (its data plane's reports and tracebacks),
    /// for a failing test's message: CI keeps the output, not the stack's log directory.
    pub fn log_tail(&self, lines: usize) -> String {
        self.last_log_lines(lines, |_| true)
    }

    /// The last `lines` lines of the emulator's log that contain one of `needles`.
    pub fn log_lines_with(&self, needles: &[&str], lines: usize) -> String {
        self.last_log_lines(lines, |line| {
            needles.iter().any(|needle| line.contains(needle))
        })
    }

    fn last_log_lines(&self, lines: usize, keep: impl Fn(&str) -> bool) -> String {
        let Some(text) = self.log.as_ref().and_then(|path| std::fs::read(path).ok()) else {
            return "(no emulator log)".to_owned();
        };
        let text = String::from_utf8_lossy(&text);
        let kept: Vec<&str> = text.lines().filter(|line| keep(line)).collect();
        kept[kept.len().saturating_sub(lines)..].join("\n")
    }

    /// SDK configuration for this emulator, with the stack's dummy credentials.
    pub async fn sdk_config(&self) -> Result<aws_config::SdkConfig, StackError> {
        crate::aws_config_for(&self.endpoint, REGION).await
    }

    /// The emulator's call counts (`GET /_plinth/calls`).
    pub async fn calls(&self) -> serde_json::Value {
        let url = format!("{}/_plinth/calls", self.endpoint);
        crate::http_get(&url)
            .await
            .and_then(|r| r.error_for_status())
            .expect("the private emulator answers /_plinth/calls")
            .json()
            .await
            .expect("call counts are JSON")
    }
}

/// How long a stopping emulator may take: its data plane's instances drain first.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

impl Drop for PrivateEmulator {
    fn drop(&mut self) {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if terminated {
            let deadline = std::time::Instant::now() + STOP_GRACE;
            while std::time::Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The faults an emulator answered, from its call counts ([`PrivateEmulator::calls`]):
/// `(throttling errors, other injected errors)`, over every service and operation.
pub fn faults_answered(calls: &serde_json::Value) -> (u64, u64) {
    let (mut throttled, mut server_errors) = (0, 0);
    let operations = calls["services"]
        .as_object()
        .into_iter()
        .flat_map(|s| s.values())
        .flat_map(|service| service["operations"].as_object().into_iter().flatten());
    for (_, op) in operations {
        for (code, count) in op["faults"].as_object().into_iter().flatten() {
            let count = count.as_u64().unwrap_or(0);
            // Throttling has a code per service.
            if code.contains("Throttl") || code.contains("LimitExceeded") || code == "Rate exceeded"
            {
                throttled += count;
            } else {
                server_errors += count;
            }
        }
    }
    (throttled, server_errors)
}
