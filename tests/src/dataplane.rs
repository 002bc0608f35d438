//! The local data plane from a test's side. An emulator with its data plane on runs what the
//! AWS APIs describe (tests/stack/aws/plinth_aws/dataplane/): instances booted from their user
//! data, HAProxy as the load balancer, a MariaDB per Aurora cluster, measured metrics and
//! evaluated alarms. This module publishes releases into its S3, reaches a platform's endpoint
//! the way an application client does (the load balancer's DNS name resolved to the address its
//! proxy listens on, TLS checked against the listener's ACM certificate), and reads what the data
//! plane reports (`GET /_plinth/dataplane`).
//!
//! Good releases are the workspace's real `plinth-ingest`. Broken ones are small programs that
//! fail the way a bad release fails ([`BrokenRelease`]): a test of a rollback needs a version
//! that is wrong on purpose, and nothing else stands in for the app.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// A release that fails the way bad releases fail, as the artifact file a test publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokenRelease {
    /// Exits with an error as soon as it starts: the unit restarts it for ever, nothing
    /// listens, the load balancer's checks fail to connect.
    ExitsAtStart,
    /// Listens, but `/health` answers 500.
    HealthAnswers500,
    /// Healthy (`/health` 200, with its version), but `POST /v1/jobs` answers 500: only the
    /// clients see it, and the 5xx alarm.
    JobsAnswer500,
}

impl BrokenRelease {
    /// The artifact's contents: an executable script run as `<artifact> serve` by the unit,
    /// with the unit's environment (`PLINTH_PORT`, `PLINTH_VERSION`).
    pub fn program(self) -> &'static str {
        match self {
            Self::ExitsAtStart => {
                "#!/bin/sh\necho 'plinth-ingest: configuration error: cannot start' >&2\nexit 1\n"
            }
            Self::HealthAnswers500 => BROKEN_SERVER_HEALTH_500,
            Self::JobsAnswer500 => BROKEN_SERVER_JOBS_500,
        }
    }
}

const BROKEN_SERVER_HEALTH_500: &str = r#"#!/usr/bin/env python3
# A broken release: it listens, but its health check fails.
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(500); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PLINTH_PORT", "8080"))), Handler).serve_forever()
"#;

const BROKEN_SERVER_JOBS_500: &str = r#"#!/usr/bin/env python3
# A broken release: healthy, but every ingest fails with 500.
import http.server, json, os
VERSION = os.environ.get("PLINTH_VERSION", "")
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self, status, document):
        body = json.dumps(document).encode()
        self.send_response(status); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        if self.path == "/health":
            self.answer(200, {"status": "ok", "version": VERSION})
        else:
            self.answer(404, {"error": "not_found"})
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer(500, {"error": "internal", "message": "ingest failed"})
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PLINTH_PORT", "8080"))), Handler).serve_forever()
"#;

/// What `GET /_plinth/dataplane` reports (instances, load balancers, database servers).
pub async fn describe(emulator: &str) -> Result<serde_json::Value, reqwest::Error> {
    crate::http_get(format!("{emulator}/_plinth/dataplane"))
        .await?
        .error_for_status()?
        .json()
        .await
}

/// The workspace's `plinth-ingest` as a release file, stripped of its line tables into a copy
/// beside it so every instance downloads half as much. `cargo test --workspace` (what
/// `tests/run` runs) has built the binary with the workspace's features; it is built here only
/// when missing or older than the webapp's sources, because `cargo build -p plinth-ingest`
/// resolves features for that package alone and would rebuild its dependencies a second time.
pub fn app_release() -> PathBuf {
    let package = crate::package_dir();
    let workspace = package
        .parent()
        .unwrap_or_else(|| panic!("tests/ has a parent"))
        .to_owned();
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace.join("target"));
    let binary = target.join("debug").join("plinth-ingest");
    let built = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
    let stale = built.is_none_or(|built| newest_source(&workspace.join("webapp")) > Some(built));
    if stale {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "plinth-ingest", "--locked"])
            .current_dir(&workspace)
            .status()
            .unwrap_or_else(|e| panic!("cargo build -p plinth-ingest: {e}"));
        assert!(status.success(), "cargo build -p plinth-ingest failed");
    }
    let release = target.join("debug").join("plinth-ingest.release");
    // One copy at a time in this process (tests run in threads); a name of this process's own
    // for the partial copy, renamed into place, against other processes.
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _making = MAKING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let fresh = |path: &Path| {
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        matches!((modified(path), modified(&binary)), (Some(a), Some(b)) if a >= b)
    };
    if !fresh(&release) {
        let partial = release.with_extension(format!("partial-{}", std::process::id()));
        let stripped = std::process::Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(&partial)
            .arg(&binary)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !stripped {
            std::fs::copy(&binary, &partial)
                .unwrap_or_else(|e| panic!("copying {}: {e}", binary.display()));
        }
        std::fs::rename(&partial, &release)
            .unwrap_or_else(|e| panic!("renaming {}: {e}", partial.display()));
    }
    release
}

/// The newest modification time of the files under `dir` (its `src/` and `migrations/`, and
/// its manifest).
fn newest_source(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = std::fs::metadata(dir.join("Cargo.toml"))
        .and_then(|m| m.modified())
        .ok();
    let mut pending = vec![dir.join("src"), dir.join("migrations")];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                newest = newest.max(Some(modified));
            }
        }
    }
    newest
}

/// Puts `body` at `url` (`s3://bucket/key`) in the emulator, creating the bucket when missing.
pub async fn publish(config: &aws_config::SdkConfig, url: &str, body: Vec<u8>) {
    let (bucket, key) = url
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .unwrap_or_else(|| panic!("{url} is not s3://bucket/key"));
    // The emulator answers path-style on its loopback address.
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    );
    if s3.head_bucket().bucket(bucket).send().await.is_err() {
        let region = config.region().map(ToString::to_string).unwrap_or_default();
        let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                region.as_str(),
            ))
            .build();
        // Two tests may create it at once: the loser's "already owned" is fine.
        let _ = s3
            .create_bucket()
            .bucket(bucket)
            .create_bucket_configuration(location)
            .send()
            .await;
    }
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutObject {url}: {e:?}"));
}

/// The release the examples name (`spec.app.artifact` of `examples/*.yaml`).
pub const EXAMPLE_RELEASE: &str = "s3://plinth-artifacts/plinth-ingest/1.0.0/plinth-ingest";

/// Publishes the workspace's `plinth-ingest` ([`app_release`]) at `url` in the emulator.
pub async fn publish_release(config: &aws_config::SdkConfig, url: &str) {
    let body = std::fs::read(app_release()).unwrap_or_else(|e| panic!("reading the release: {e}"));
    publish(config, url, body).await;
}

/// One call to the emulator's ACM in its JSON protocol (the test crate has no ACM SDK).
async fn acm(emulator: &str, operation: &str, body: serde_json::Value) -> serde_json::Value {
    crate::http()
        .post(emulator)
        .header("X-Amz-Target", format!("CertificateManager.{operation}"))
        .header("Content-Type", "application/x-amz-json-1.1")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/eu-west-1/acm/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .json(&body)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| panic!("ACM {operation}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("ACM {operation} answer: {e}"))
}

/// A certificate for `domain` in the emulator's ACM (its ARN), for an HTTPS listener.
pub async fn request_certificate(emulator: &str, domain: &str) -> String {
    let answer = acm(
        emulator,
        "RequestCertificate",
        serde_json::json!({"DomainName": domain}),
    )
    .await;
    answer["CertificateArn"]
        .as_str()
        .unwrap_or_else(|| panic!("no CertificateArn in {answer}"))
        .to_owned()
}

/// The certificate (PEM) ACM holds under `arn`.
pub async fn certificate_pem(emulator: &str, arn: &str) -> String {
    let answer = acm(
        emulator,
        "GetCertificate",
        serde_json::json!({"CertificateArn": arn}),
    )
    .await;
    answer["Certificate"]
        .as_str()
        .unwrap_or_else(|| panic!("no Certificate in {answer}"))
        .to_owned()
}

/// An HTTP client for a platform's endpoint, as an application client reaches it.
#[derive(Clone)]
pub struct EndpointClient {
    /// The client: the endpoint's host resolves to the load balancer's proxy.
    pub http: reqwest::Client,
    /// `status.endpoint`, e.g. `https://<lb dns>`.
    pub base: String,
}

impl EndpointClient {
    /// A client for `endpoint` (`http(s)://<load balancer DNS name>`), its host name resolved
    /// to the address the emulator's proxy listens on; for HTTPS, the server must present
    /// exactly `certificate_pem` (the listener's ACM certificate). Each request opens its own
    /// connection unless `keep_alive`.
    pub async fn new(
        emulator: &str,
        endpoint: &str,
        certificate_pem: Option<&str>,
        keep_alive: bool,
    ) -> Result<Self, String> {
        let (scheme, host) = endpoint
            .split_once("://")
            .ok_or_else(|| format!("{endpoint} has no scheme"))?;
        let host = host.trim_end_matches('/');
        let view = describe(emulator).await.map_err(|e| e.to_string())?;
        let address = view["load_balancers"][host]
            .as_str()
            .ok_or_else(|| format!("the data plane serves no load balancer named {host}: {view}"))?
            .parse::<std::net::IpAddr>()
            .map_err(|e| e.to_string())?;
        let port = if scheme == "https" { 443 } else { 80 };
        crate::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .resolve(host, std::net::SocketAddr::new(address, port))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none());
        if !keep_alive {
            builder = builder.pool_max_idle_per_host(0);
        }
        if let Some(pem) = certificate_pem {
            builder = builder.use_preconfigured_tls(pinned_tls(pem)?);
        }
        let http = builder.build().map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            base: endpoint.trim_end_matches('/').to_owned(),
        })
    }

    /// `<endpoint><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// TLS that accepts exactly the certificate in `pem`. The emulator's ACM signs its certificates
/// with a key no root certificate vouches for, so the client pins the listener's certificate
/// instead of building a chain; the handshake's signatures are still verified.
fn pinned_tls(pem: &str) -> Result<rustls::ClientConfig, String> {
    let der = pem_to_der(pem)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(Pinned {
        certificate: CertificateDer::from(der),
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64_decode(&body).ok_or_else(|| "the certificate is not PEM".to_owned())
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            break;
        }
        let value = u32::try_from(ALPHABET.iter().position(|a| *a == c)?).ok()?;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

#[derive(Debug)]
struct Pinned {
    certificate: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.certificate.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the load balancer presented another certificate than the listener's".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
