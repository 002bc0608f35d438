//! Ingest benchmark (`cargo bench -p plinth-ingest --bench ingest`): posts batches of 1, 100
//! and 1,000 records over loopback at concurrency 1 to 64 to the real application (in this
//! process, with its workers) on a fresh MariaDB database, and prints records per second
//! durable (accepted and processed) and the p50/p99 latency of the POST. In the same run, the
//! same rows through `LOAD DATA LOCAL INFILE` (the `mysql` client) and through one INSERT per
//! row, for the ratios. Needs the local stack (`tests/stack/up`, `. .stack/env`).
//!
//! `BENCH_SECS` (default 3) is how long each configuration posts; `BENCH_WORKERS` (default 4)
//! the worker count.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use plinth_ingest::config::Config;
use plinth_ingest::startup::Application;
use sqlx::mysql::MySqlPoolOptions;
use sqlx::{Connection, MySqlConnection, MySqlPool};

const KEY: &str = "bench-admin-key-0123456789abcdef0123456789abcdef";
type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --benches` too: only run when benching.
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn records_json(n: usize) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"type":"page_view","timestamp":"2026-11-27T10:00:00Z","value":{i},"page":"/p/{i}","user":"u{}"}}"#,
                i % 97
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn backlog(pool: &MySqlPool) -> Result<i64, BoxError> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM ingestion_jobs WHERE status IN ('queued', 'processing')",
    )
    .fetch_one(pool)
    .await?)
}

async fn run() -> Result<(), BoxError> {
    let server = std::env::var("DATABASE_URL")
        .map_err(|_| "DATABASE_URL is not set: start the stack: tests/stack/up")?;
    let server = server.trim_end_matches('/').to_owned();
    let secs = env_u64("BENCH_SECS", 3);
    let workers = env_u64("BENCH_WORKERS", 4) as usize;
    let db_name = format!("plinth_bench_{}", uuid::Uuid::new_v4().simple());
    let mut root = MySqlConnection::connect(&server).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{db_name}`")))
        .execute(&mut root)
        .await?;

    let result = bench(&server, &db_name, secs, workers).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS `{db_name}`"
    )))
    .execute(&mut root)
    .await?;
    result
}

async fn bench(server: &str, db_name: &str, secs: u64, workers: usize) -> Result<(), BoxError> {
    let url = format!("{server}/{db_name}");
    let mut config = Config::for_tests(&url);
    config.bootstrap_admin_key = Some(KEY.to_owned().into());
    config.worker.workers = workers;
    config.worker.poll_interval_ms = 100;
    config.database.db_max_connections = 32;
    config.limits.rate_limit_per_sec = 1_000_000;
    config.limits.rate_limit_burst = 1_000_000;
    config.limits.max_backlog_jobs = 1_000_000;
    let app = Application::build(config).await?;
    let base = format!("http://127.0.0.1:{}/v1/jobs", app.port());
    let shutdown = app.shutdown_token();
    let server_task = tokio::spawn(app.run_until_stopped());
    let pool = MySqlPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await?;
    // reqwest may be built with rustls and no provider (features unified with the e2e tests').
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()?;

    println!(
        "plinth-ingest bench: {workers} workers, {secs} s per configuration, MariaDB on loopback"
    );
    println!(
        "{:>6} {:>5} {:>8} {:>10} {:>12} {:>9} {:>9}",
        "batch", "conc", "requests", "records", "records/s", "p50 ms", "p99 ms"
    );
    let mut best_rate: f64 = 0.0;
    let mut best_1000: (f64, usize) = (0.0, 0);
    for batch in [1usize, 100, 1000] {
        let body = bytes::Bytes::from(records_json(batch));
        for concurrency in [1usize, 2, 4, 8, 16, 32, 64] {
            let started = Instant::now();
            let deadline = started + Duration::from_secs(secs);
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let client = client.clone();
                let base = base.clone();
                let body = body.clone();
                tasks.push(tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut errors = 0u64;
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let response = client
                            .post(&base)
                            .bearer_auth(KEY)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await;
                        match response {
                            Ok(r) if r.status() == 202 => latencies.push(t.elapsed()),
                            _ => errors += 1,
                        }
                    }
                    (latencies, errors)
                }));
            }
            let mut latencies = Vec::new();
            let mut errors = 0;
            for task in tasks {
                let (l, e) = task.await?;
                latencies.extend(l);
                errors += e;
            }
            while backlog(&pool).await? > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let elapsed = started.elapsed();
            latencies.sort();
            let records = latencies.len() * batch;
            let rate = records as f64 / elapsed.as_secs_f64();
            best_rate = best_rate.max(rate);
            if batch == 1000 && rate > best_1000.0 {
                best_1000 = (rate, concurrency);
            }
            println!(
                "{batch:>6} {concurrency:>5} {:>8} {records:>10} {rate:>12.0} {:>9.2} {:>9.2}{}",
                latencies.len(),
                percentile(&latencies, 0.50).as_secs_f64() * 1e3,
                percentile(&latencies, 0.99).as_secs_f64() * 1e3,
                if errors > 0 {
                    format!("  ({errors} errors)")
                } else {
                    String::new()
                },
            );
        }
    }

    // Half the maximum load: 1,000-record batches offered at half the best rate above, at a
    // fixed schedule (open loop), each POST's latency counted from its scheduled start, so a
    // slow response delays no later request's clock (no coordinated omission).
    let (max_rate, max_conc) = best_1000;
    let half = open_loop(&client, &base, &pool, max_rate / 2.0, secs.max(5)).await?;
    println!(
        "1000-record batches at half the maximum load: max {max_rate:.0} records/s (conc {max_conc}), \
         offered {:.0} records/s ({:.1} POST/s) for {} s: {} requests, {:.0} records/s durable, \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms{}",
        max_rate / 2.0,
        max_rate / 2.0 / 1000.0,
        secs.max(5),
        half.requests,
        half.rate,
        half.p50 * 1e3,
        half.p99 * 1e3,
        half.max * 1e3,
        if half.errors > 0 {
            format!("  ({} errors)", half.errors)
        } else {
            String::new()
        },
    );

    // Baselines on the same server: the processed rows, through LOAD DATA and row by row.
    sqlx::query("CREATE TABLE bench_rows LIKE processed_data")
        .execute(&pool)
        .await?;
    let load_rows = 100_000usize;
    let path = std::env::temp_dir().join(format!("{db_name}.tsv"));
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        for i in 0..load_rows {
            writeln!(
                file,
                "1\t{i}\tok\t{{\"type\":\"page_view\",\"timestamp\":\"2026-11-27T10:00:00Z\",\"value\":{i},\"attributes\":{{\"page\":\"/p/{i}\",\"user\":\"u{}\"}}}}",
                i % 97
            )?;
        }
    }
    let load_rate = load_data(server, db_name, &path, load_rows)?;
    let _ = std::fs::remove_file(&path);

    let single_rows = 3_000u32;
    let started = Instant::now();
    for i in 0..single_rows {
        sqlx::query("INSERT INTO bench_rows (job_id, record_index, status, data) VALUES (2, ?, 'ok', ?)")
            .bind(i)
            .bind(format!(
                r#"{{"type":"page_view","timestamp":"2026-11-27T10:00:00Z","value":{i},"attributes":{{"page":"/p/{i}"}}}}"#
            ))
            .execute(&pool)
            .await?;
    }
    let single_rate = f64::from(single_rows) / started.elapsed().as_secs_f64();

    println!("LOAD DATA LOCAL INFILE: {load_rate:.0} rows/s ({load_rows} rows)");
    println!("one INSERT per row:     {single_rate:.0} rows/s ({single_rows} rows)");
    println!(
        "best ingest rate {best_rate:.0} records/s = {:.0} % of LOAD DATA (target >= 50 %), \
         {:.1}x row-by-row (target >= 10x); p99 at half the maximum load {:.1} ms (target <= 50 ms)",
        100.0 * best_rate / load_rate,
        best_rate / single_rate,
        half.p99 * 1e3
    );

    shutdown.cancel();
    server_task.await??;
    pool.close().await;
    Ok(())
}

struct OpenLoop {
    requests: usize,
    errors: u64,
    rate: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

/// Posts 1,000-record batches at `records_per_sec` on a fixed schedule for `secs`, waits until
/// every job is processed; latencies from each request's scheduled time.
async fn open_loop(
    client: &reqwest::Client,
    base: &str,
    pool: &MySqlPool,
    records_per_sec: f64,
    secs: u64,
) -> Result<OpenLoop, BoxError> {
    let body = bytes::Bytes::from(records_json(1000));
    let interval = Duration::from_secs_f64(1000.0 / records_per_sec.max(1.0));
    let started = Instant::now();
    let total = (secs as f64 / interval.as_secs_f64()).ceil() as u32;
    let mut tasks = Vec::new();
    for n in 0..total {
        let scheduled = started + interval * n;
        tokio::time::sleep_until(scheduled.into()).await;
        let client = client.clone();
        let base = base.to_owned();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(&base)
                .bearer_auth(KEY)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            match response {
                Ok(r) if r.status() == 202 => Some(scheduled.elapsed()),
                _ => None,
            }
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        match task.await? {
            Some(l) => latencies.push(l),
            None => errors += 1,
        }
    }
    while backlog(pool).await? > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(OpenLoop {
        requests: latencies.len(),
        errors,
        rate: (latencies.len() * 1000) as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.50).as_secs_f64(),
        p99: percentile(&latencies, 0.99).as_secs_f64(),
        max: latencies.last().copied().unwrap_or_default().as_secs_f64(),
    })
}

/// Loads `path` with the `mysql` client's `LOAD DATA LOCAL INFILE`; returns rows per second.
fn load_data(
    server: &str,
    db_name: &str,
    path: &std::path::Path,
    rows: usize,
) -> Result<f64, BoxError> {
    // mysql://user:password@host:port
    let rest = server
        .strip_prefix("mysql://")
        .ok_or("DATABASE_URL must start with mysql://")?;
    let (auth, host_port) = rest
        .split_once('@')
        .ok_or("DATABASE_URL needs user:password@")?;
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let (host, port) = host_port.split_once(':').unwrap_or((host_port, "3306"));
    let sql = format!(
        "LOAD DATA LOCAL INFILE '{}' INTO TABLE bench_rows (job_id, record_index, status, data)",
        path.display()
    );
    let started = Instant::now();
    let output = std::process::Command::new("mysql")
        .args([
            "--local-infile=1",
            "-h",
            host,
            "-P",
            port,
            "-u",
            user,
            db_name,
            "-e",
            &sql,
        ])
        .env("MYSQL_PWD", password)
        .output()?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "mysql LOAD DATA failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(rows as f64 / elapsed.as_secs_f64())
}
