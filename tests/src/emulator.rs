//! A private AWS emulator for one test: the stack's strict layer (`tests/stack/aws/server.py`)
//! started on a free loopback port with its own settings, so injected faults never reach the
//! suites sharing the stack's emulator. Stopped when dropped.

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
}

impl PrivateEmulator {
    /// Starts the strict emulator with `settings` as extra environment (`PLINTH_FAULT_*` …) and
    /// waits for its "listening" line.
    pub fn start(settings: &[(&str, &str)]) -> Result<Self, StackError> {
        let python = stack_var("PLINTH_AWS_PYTHON")?;
        let server = stack_var("PLINTH_AWS_SERVER")?;
        let mut child = Command::new(&python)
            .args([server.as_str(), "--host", "127.0.0.1", "--port", "0"])
            .env("AWS_REGION", REGION)
            .envs(settings.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| StackError::Unreachable {
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
        Ok(Self { child, endpoint })
    }

    /// CPU seconds the emulator has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        crate::cpu_seconds(self.child.id())
    }

    /// SDK configuration for this emulator, with the stack's dummy credentials.
    pub async fn sdk_config(&self) -> Result<aws_config::SdkConfig, StackError> {
        crate::aws_config_for(&self.endpoint, REGION).await
    }

    /// The emulator's call counts (`GET /_plinth/calls`).
    pub async fn calls(&self) -> serde_json::Value {
        let url = format!("{}/_plinth/calls", self.endpoint);
        reqwest::get(&url)
            .await
            .and_then(|r| r.error_for_status())
            .expect("the private emulator answers /_plinth/calls")
            .json()
            .await
            .expect("call counts are JSON")
    }
}

impl Drop for PrivateEmulator {
    fn drop(&mut self) {
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
