//! The worker pool: claims jobs with `SELECT … FOR UPDATE SKIP LOCKED`, processes their
//! records in batches (validate, transform, multi-row `INSERT … ON DUPLICATE KEY UPDATE` on
//! the `(job_id, record_index)` key, so reprocessing never duplicates a row), and finishes them.
//!
//! A claim lasts `claim_ttl` and is extended after every batch; a job whose claim expired (its
//! worker died) is claimed again by any worker. A failed attempt is retried after an
//! exponential backoff with jitter until `max_attempts`, then the job is `failed` with the
//! reason. On shutdown a worker stops between batches and puts its job back in the queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use sqlx::{Connection, QueryBuilder};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::WorkerSettings;
use crate::database::Database;
use crate::metrics::{Metrics, OutcomeLabels};
use crate::records;

/// Longest error text stored with a record or a job.
const MAX_ERROR_LEN: usize = 1000;

/// Delay before retry number `attempt` (1 = first failure): `base · 2^(attempt-1)` capped at
/// `max`, of which the upper half is scaled by `jitter` (in `[0, 1)`), so retries of many jobs
/// that failed together spread out ("equal jitter").
pub fn retry_delay(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exponent).min(max);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

pub(crate) fn truncate(mut text: String) -> String {
    if text.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Marks jobs `succeeded` with their counts taken from the rows themselves (right even when an
/// earlier attempt wrote some), if `worker` still holds them.
fn finish_query(worker: &str, ids: impl Iterator<Item = u64>) -> QueryBuilder<sqlx::MySql> {
    let mut finish = QueryBuilder::new(FINISH_SQL);
    finish.push_bind(worker.to_owned()).push(" AND id IN (");
    push_ids(&mut finish, ids);
    finish.push(")");
    finish
}

const FINISH_SQL: &str = "UPDATE ingestion_jobs SET status = 'succeeded', \
     processed_count = (SELECT COUNT(*) FROM processed_data p \
                        WHERE p.job_id = ingestion_jobs.id AND p.status = 'ok'), \
     invalid_count = (SELECT COUNT(*) FROM processed_data p \
                      WHERE p.job_id = ingestion_jobs.id AND p.status = 'invalid'), \
     last_error = NULL, claimed_by = NULL, claim_expires_at = NULL, \
     finished_at = NOW(6), updated_at = NOW(6) \
     WHERE status = 'processing' AND claimed_by = ";

fn push_ids(builder: &mut QueryBuilder<sqlx::MySql>, ids: impl Iterator<Item = u64>) {
    let mut separated = builder.separated(", ");
    for id in ids {
        separated.push_bind(id);
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A job this worker holds.
#[derive(Debug, Clone, Copy)]
struct Claimed {
    id: u64,
    /// Attempts including this one.
    attempts: u32,
    max_attempts: u32,
    /// Records of the job.
    records: u32,
}

/// Most queued jobs looked at per claim; the claim takes as many as fit in one batch.
const CLAIM_CANDIDATES: i64 = 64;

enum Claim {
    /// One job, or several small jobs whose records fit in one batch together.
    Jobs(Vec<Claimed>),
    /// Did something (failed an exhausted job); look again at once.
    Again,
    Nothing,
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Succeeded,
    Released,
    ClaimLost,
}

/// Everything a worker needs.
#[derive(Clone)]
pub struct WorkerContext {
    /// The database.
    pub db: Database,
    /// Settings.
    pub settings: WorkerSettings,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Woken when a job is posted to this process.
    pub work_available: Arc<Notify>,
    /// Cancelled on shutdown.
    pub shutdown: CancellationToken,
    /// Prefix of the workers' claim names (unique per process).
    pub instance: String,
}

/// Starts `settings.workers` workers; they end after `shutdown` is cancelled.
pub fn spawn(context: WorkerContext) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for n in 0..context.settings.workers {
        let worker = Worker {
            name: format!("{}-w{n}", context.instance),
            cx: context.clone(),
        };
        set.spawn(worker.run());
    }
    set
}

struct Worker {
    name: String,
    cx: WorkerContext,
}

impl Worker {
    async fn run(self) {
        tracing::debug!(worker = %self.name, "worker started");
        let poll = Duration::from_millis(self.cx.settings.poll_interval_ms);
        while !self.cx.shutdown.is_cancelled() {
            match self.claim().await {
                Ok(Claim::Jobs(jobs)) => self.process_claimed(jobs).await,
                Ok(Claim::Again) => {}
                Ok(Claim::Nothing) => {
                    tokio::select! {
                        () = self.cx.work_available.notified() => {}
                        () = tokio::time::sleep(poll) => {}
                        () = self.cx.shutdown.cancelled() => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(worker = %self.name, %error, "claiming a job failed");
                    tokio::select! {
                        () = tokio::time::sleep(poll) => {}
                        () = self.cx.shutdown.cancelled() => {}
                    }
                }
            }
        }
        tracing::debug!(worker = %self.name, "worker stopped");
    }

    async fn claim(&self) -> Result<Claim, sqlx::Error> {
        // Connections run READ COMMITTED (see `database`): the locking reads below take no gap
        // locks, so inserts of new jobs never wait on a claim.
        let batch_len = u64::try_from(self.cx.settings.batch_size.max(1)).unwrap_or(u64::MAX);
        let mut conn = self.cx.db.acquire().await?;
        let mut tx = conn.begin().await?;
        // Several queued jobs in one round trip: small jobs are claimed together (as many as
        // fit in one batch of records) and processed in one transaction.
        let queued: Vec<(u64, u32, u32, u32)> = sqlx::query_as(
            "SELECT id, attempts, max_attempts, record_count FROM ingestion_jobs \
             WHERE status = 'queued' AND next_attempt_at <= NOW(6) \
             ORDER BY next_attempt_at, id LIMIT ? FOR UPDATE SKIP LOCKED",
        )
        .bind(CLAIM_CANDIDATES)
        .fetch_all(&mut *tx)
        .await?;
        let mut jobs = Vec::new();
        let mut total = 0u64;
        for (id, attempts, max_attempts, records) in queued {
            if !jobs.is_empty() && total + u64::from(records) > batch_len {
                break;
            }
            total += u64::from(records);
            jobs.push(Claimed {
                id,
                attempts: attempts + 1,
                max_attempts,
                records,
            });
        }
        if jobs.is_empty() {
            let row: Option<(u64, u32, u32, u32)> = sqlx::query_as(
                "SELECT id, attempts, max_attempts, record_count FROM ingestion_jobs \
                 WHERE status = 'processing' AND claim_expires_at < NOW(6) \
                 ORDER BY claim_expires_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
            )
            .fetch_optional(&mut *tx)
            .await?;
            let Some((id, attempts, max_attempts, records)) = row else {
                tx.commit().await?;
                return Ok(Claim::Nothing);
            };
            tracing::warn!(job_id = id, worker = %self.name, "taking over a job whose claim expired");
            if attempts >= max_attempts {
                sqlx::query(
                    "UPDATE ingestion_jobs SET status = 'failed', \
                     last_error = CONCAT('worker claim expired on the last attempt (', attempts, ')'), \
                     claimed_by = NULL, claim_expires_at = NULL, finished_at = NOW(6), updated_at = NOW(6) \
                     WHERE id = ?",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                self.cx
                    .metrics
                    .job_attempts
                    .get_or_create(&OutcomeLabels { outcome: "failed" })
                    .inc();
                return Ok(Claim::Again);
            }
            jobs.push(Claimed {
                id,
                attempts: attempts + 1,
                max_attempts,
                records,
            });
        }
        let mut update = QueryBuilder::new(
            "UPDATE ingestion_jobs SET status = 'processing', attempts = attempts + 1, claimed_by = ",
        );
        update
            .push_bind(&self.name)
            .push(", claim_expires_at = NOW(6) + INTERVAL ")
            .push_bind(micros(self.cx.settings.claim_ttl()))
            .push(" MICROSECOND, updated_at = NOW(6) WHERE id IN (");
        push_ids(&mut update, jobs.iter().map(|j| j.id));
        update.push(")");
        update.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Claim::Jobs(jobs))
    }

    /// Processes what one claim took: a job too large for one batch on its own (batch by
    /// batch, extending the claim), else all the jobs together in one transaction.
    async fn process_claimed(&self, jobs: Vec<Claimed>) {
        let batch_len = self.cx.settings.batch_size.max(1);
        match jobs.as_slice() {
            [job] if usize::try_from(job.records).unwrap_or(usize::MAX) > batch_len => {
                self.process(*job).await;
            }
            _ => self.process_group(&jobs).await,
        }
    }

    async fn process_group(&self, jobs: &[Claimed]) {
        let started = Instant::now();
        let n = i64::try_from(jobs.len()).unwrap_or(i64::MAX);
        self.cx.metrics.jobs_in_progress.inc_by(n);
        let span = tracing::info_span!("jobs", count = jobs.len(), worker = %self.name);
        let outcome = self.attempt_group(jobs).instrument(span).await;
        self.cx.metrics.jobs_in_progress.dec_by(n);
        let elapsed = started.elapsed().as_secs_f64();
        match outcome {
            Ok(outcomes) => {
                for (job, outcome) in jobs.iter().zip(outcomes) {
                    self.cx.metrics.job_duration.observe(elapsed);
                    self.finished(*job, Ok(outcome)).await;
                }
            }
            Err(error) => {
                for job in jobs {
                    self.cx.metrics.job_duration.observe(elapsed);
                    self.finished(*job, Err(&error)).await;
                }
            }
        }
    }

    /// Small jobs in one transaction: the claims checked (and locked), the raw records read,
    /// the processed rows written, the jobs finished, one commit.
    async fn attempt_group(&self, jobs: &[Claimed]) -> Result<Vec<Outcome>, sqlx::Error> {
        if self.cx.shutdown.is_cancelled() {
            for job in jobs {
                self.release(*job).await?;
            }
            return Ok(jobs.iter().map(|_| Outcome::Released).collect());
        }
        let batch_len = self.cx.settings.batch_size.max(1);
        let mut conn = self.cx.db.acquire().await?;
        let mut tx = conn.begin().await?;
        let mut check = QueryBuilder::new("SELECT id FROM ingestion_jobs WHERE claimed_by = ");
        check
            .push_bind(&self.name)
            .push(" AND status = 'processing' AND id IN (");
        push_ids(&mut check, jobs.iter().map(|j| j.id));
        check.push(") FOR UPDATE");
        let owned: Vec<u64> = check.build_query_scalar().fetch_all(&mut *tx).await?;
        if owned.is_empty() {
            tx.commit().await?;
            return Ok(jobs.iter().map(|_| Outcome::ClaimLost).collect());
        }
        let mut select = QueryBuilder::new(
            "SELECT job_id, record_index, CAST(payload AS CHAR) FROM raw_records WHERE job_id IN (",
        );
        push_ids(&mut select, owned.iter().copied());
        select.push(") ORDER BY job_id, record_index");
        let rows: Vec<(u64, u32, String)> = select.build_query_as().fetch_all(&mut *tx).await?;
        let (mut ok, mut invalid) = (0u64, 0u64);
        for chunk in rows.chunks(batch_len) {
            let mut insert = QueryBuilder::new(
                "INSERT INTO processed_data (job_id, record_index, status, data, error) ",
            );
            insert.push_values(chunk, |mut row, (job_id, index, payload)| {
                row.push_bind(*job_id).push_bind(*index);
                match records::process(payload) {
                    Ok(data) => {
                        ok += 1;
                        row.push_bind("ok")
                            .push_bind(Some(data.to_string()))
                            .push_bind(None::<String>);
                    }
                    Err(error) => {
                        invalid += 1;
                        row.push_bind("invalid")
                            .push_bind(None::<String>)
                            .push_bind(Some(truncate(error)));
                    }
                }
            });
            // A row already written by an earlier attempt stays as it is: never a duplicate.
            insert.push(" ON DUPLICATE KEY UPDATE job_id = job_id");
            insert.build().execute(&mut *tx).await?;
        }
        // Counts from the rows themselves: right even when an earlier attempt wrote some.
        finish_query(&self.name, owned.iter().copied())
            .build()
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.count(ok, invalid);
        Ok(jobs
            .iter()
            .map(|job| {
                if owned.contains(&job.id) {
                    Outcome::Succeeded
                } else {
                    Outcome::ClaimLost
                }
            })
            .collect())
    }

    async fn process(&self, job: Claimed) {
        let started = Instant::now();
        self.cx.metrics.jobs_in_progress.inc();
        let span = tracing::info_span!("job", job_id = job.id, attempt = job.attempts, worker = %self.name);
        let outcome = self.attempt(job).instrument(span).await;
        self.cx.metrics.jobs_in_progress.dec();
        self.cx
            .metrics
            .job_duration
            .observe(started.elapsed().as_secs_f64());
        self.finished(job, outcome.as_ref().map(|o| *o)).await;
    }

    /// Logs and counts the outcome of an attempt; a failed one is recorded for a retry.
    async fn finished(&self, job: Claimed, outcome: Result<Outcome, &sqlx::Error>) {
        let label = match outcome {
            Ok(Outcome::Succeeded) => {
                tracing::info!(job_id = job.id, attempt = job.attempts, "job succeeded");
                "succeeded"
            }
            Ok(Outcome::Released) => {
                tracing::info!(
                    job_id = job.id,
                    "job released for another worker (shutdown)"
                );
                "released"
            }
            Ok(Outcome::ClaimLost) => {
                tracing::warn!(job_id = job.id, "claim lost to another worker; stopped");
                "claim_lost"
            }
            Err(error) => self.fail(job, error).await,
        };
        self.cx
            .metrics
            .job_attempts
            .get_or_create(&OutcomeLabels { outcome: label })
            .inc();
    }

    async fn attempt(&self, job: Claimed) -> Result<Outcome, sqlx::Error> {
        let batch_len = self.cx.settings.batch_size.max(1);
        let batch = i64::try_from(batch_len).unwrap_or(500);
        let ttl = micros(self.cx.settings.claim_ttl());
        let mut next_index: u32 = 0;
        loop {
            if self.cx.shutdown.is_cancelled() {
                self.release(job).await?;
                return Ok(Outcome::Released);
            }
            let mut conn = self.cx.db.acquire().await?;
            let rows: Vec<(u32, String)> = sqlx::query_as(
                "SELECT record_index, CAST(payload AS CHAR) FROM raw_records \
                 WHERE job_id = ? AND record_index >= ? ORDER BY record_index LIMIT ?",
            )
            .bind(job.id)
            .bind(next_index)
            .bind(batch)
            .fetch_all(&mut *conn)
            .await?;
            let Some(&(last, _)) = rows.last() else {
                break;
            };
            let rows_len = rows.len();
            let (mut ok, mut invalid) = (0u64, 0u64);
            let mut insert = QueryBuilder::new(
                "INSERT INTO processed_data (job_id, record_index, status, data, error) ",
            );
            insert.push_values(rows, |mut row, (index, payload)| {
                row.push_bind(job.id).push_bind(index);
                match records::process(&payload) {
                    Ok(data) => {
                        ok += 1;
                        row.push_bind("ok")
                            .push_bind(Some(data.to_string()))
                            .push_bind(None::<String>);
                    }
                    Err(error) => {
                        invalid += 1;
                        row.push_bind("invalid")
                            .push_bind(None::<String>)
                            .push_bind(Some(truncate(error)));
                    }
                }
            });
            // A row already written by an earlier attempt stays as it is: never a duplicate.
            insert.push(" ON DUPLICATE KEY UPDATE job_id = job_id");
            insert.build().execute(&mut *conn).await?;
            self.count(ok, invalid);
            if rows_len < batch_len {
                // The last batch: the finishing update below checks the claim.
                break;
            }
            let extended = sqlx::query(
                "UPDATE ingestion_jobs SET claim_expires_at = NOW(6) + INTERVAL ? MICROSECOND, \
                 updated_at = NOW(6) WHERE id = ? AND claimed_by = ? AND status = 'processing'",
            )
            .bind(ttl)
            .bind(job.id)
            .bind(&self.name)
            .execute(&mut *conn)
            .await?;
            if extended.rows_affected() == 0 {
                return Ok(Outcome::ClaimLost);
            }
            next_index = last.saturating_add(1);
        }
        let mut conn = self.cx.db.acquire().await?;
        // Counts from the rows themselves: right even when an earlier attempt wrote some.
        let finished = finish_query(&self.name, std::iter::once(job.id))
            .build()
            .execute(&mut *conn)
            .await?;
        if finished.rows_affected() == 0 {
            return Ok(Outcome::ClaimLost);
        }
        Ok(Outcome::Succeeded)
    }

    fn count(&self, ok: u64, invalid: u64) {
        let processed = &self.cx.metrics.records_processed;
        processed
            .get_or_create(&OutcomeLabels { outcome: "ok" })
            .inc_by(ok);
        processed
            .get_or_create(&OutcomeLabels { outcome: "invalid" })
            .inc_by(invalid);
    }

    /// Puts the job back in the queue without counting the attempt.
    async fn release(&self, job: Claimed) -> Result<(), sqlx::Error> {
        let mut conn = self.cx.db.acquire().await?;
        sqlx::query(
            "UPDATE ingestion_jobs SET status = 'queued', attempts = IF(attempts > 0, attempts - 1, 0), \
             claimed_by = NULL, claim_expires_at = NULL, next_attempt_at = NOW(6), updated_at = NOW(6) \
             WHERE id = ? AND claimed_by = ? AND status = 'processing'",
        )
        .bind(job.id)
        .bind(&self.name)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Records a failed attempt: retry later, or `failed` after the last attempt.
    async fn fail(&self, job: Claimed, error: &sqlx::Error) -> &'static str {
        let reason = truncate(format!(
            "attempt {} of {}: {error}",
            job.attempts, job.max_attempts
        ));
        let last = job.attempts >= job.max_attempts;
        let settings = &self.cx.settings;
        let delay = retry_delay(
            job.attempts,
            Duration::from_millis(settings.retry_base_ms),
            Duration::from_millis(settings.retry_max_ms),
            rand::rng().random::<f64>(),
        );
        let result = async {
            let mut conn = self.cx.db.acquire().await?;
            if last {
                sqlx::query(
                    "UPDATE ingestion_jobs SET status = 'failed', last_error = ?, claimed_by = NULL, \
                     claim_expires_at = NULL, finished_at = NOW(6), updated_at = NOW(6) \
                     WHERE id = ? AND claimed_by = ? AND status = 'processing'",
                )
                .bind(&reason)
                .bind(job.id)
                .bind(&self.name)
                .execute(&mut *conn)
                .await
            } else {
                sqlx::query(
                    "UPDATE ingestion_jobs SET status = 'queued', last_error = ?, claimed_by = NULL, \
                     claim_expires_at = NULL, next_attempt_at = NOW(6) + INTERVAL ? MICROSECOND, \
                     updated_at = NOW(6) WHERE id = ? AND claimed_by = ? AND status = 'processing'",
                )
                .bind(&reason)
                .bind(micros(delay))
                .bind(job.id)
                .bind(&self.name)
                .execute(&mut *conn)
                .await
            }
        }
        .await;
        if let Err(update_error) = result {
            // The claim will expire and another worker will take the job over.
            tracing::error!(job_id = job.id, %update_error, "recording a failed attempt failed");
        }
        if last {
            tracing::error!(job_id = job.id, %reason, "job failed after its last attempt");
            "failed"
        } else {
            tracing::warn!(job_id = job.id, %reason, retry_in_ms = delay.as_millis() as u64, "job attempt failed; will retry");
            "retried"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_caps_and_jitters() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        assert_eq!(retry_delay(1, base, max, 0.0), Duration::from_millis(50));
        assert_eq!(retry_delay(1, base, max, 1.0), Duration::from_millis(100));
        assert_eq!(retry_delay(3, base, max, 1.0), Duration::from_millis(400));
        assert_eq!(retry_delay(10, base, max, 1.0), max);
        assert_eq!(
            retry_delay(u32::MAX, base, max, 0.5),
            Duration::from_millis(750)
        );
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        let long = "é".repeat(MAX_ERROR_LEN);
        let cut = truncate(long);
        assert!(cut.len() <= MAX_ERROR_LEN);
    }
}
