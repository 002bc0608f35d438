-- plinth-ingest schema. Kept to SQL that both Aurora MySQL 8.0 and MariaDB (10.6+) accept:
-- InnoDB, utf8mb4 with a collation both ship, DATETIME(6), JSON columns, no CHECK constraints.

CREATE TABLE users (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    name        VARCHAR(190)    NOT NULL,
    created_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY uq_users_name (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- API keys are stored as the SHA-256 of the key; the key itself is shown once, at creation.
CREATE TABLE api_keys (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    user_id     BIGINT UNSIGNED NOT NULL,
    key_hash    BINARY(32)      NOT NULL,
    key_prefix  VARCHAR(16)     NOT NULL,
    role        VARCHAR(16)     NOT NULL,
    created_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    revoked_at  DATETIME(6)     NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_api_keys_hash (key_hash),
    KEY ix_api_keys_user (user_id),
    CONSTRAINT fk_api_keys_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- status: queued | processing | succeeded | failed.
-- (user_id, idempotency_key) is unique; request_hash tells a replay from a conflicting reuse.
CREATE TABLE ingestion_jobs (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    user_id          BIGINT UNSIGNED NOT NULL,
    status           VARCHAR(16)     NOT NULL,
    idempotency_key  VARCHAR(190)    NULL,
    request_hash     BINARY(32)      NOT NULL,
    record_count     INT UNSIGNED    NOT NULL,
    processed_count  INT UNSIGNED    NOT NULL DEFAULT 0,
    invalid_count    INT UNSIGNED    NOT NULL DEFAULT 0,
    attempts         INT UNSIGNED    NOT NULL DEFAULT 0,
    max_attempts     INT UNSIGNED    NOT NULL,
    last_error       TEXT            NULL,
    next_attempt_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    claimed_by       VARCHAR(128)    NULL,
    claim_expires_at DATETIME(6)     NULL,
    created_at       DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at       DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    finished_at      DATETIME(6)     NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_jobs_user_idempotency (user_id, idempotency_key),
    KEY ix_jobs_status_next_attempt (status, next_attempt_at),
    KEY ix_jobs_status_claim_expiry (status, claim_expires_at),
    KEY ix_jobs_status_id (status, id),
    KEY ix_jobs_user_status_id (user_id, status, id),
    CONSTRAINT fk_jobs_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- The records exactly as posted, stored with the job in one transaction.
CREATE TABLE raw_records (
    job_id        BIGINT UNSIGNED NOT NULL,
    record_index  INT UNSIGNED    NOT NULL,
    payload       JSON            NOT NULL,
    PRIMARY KEY (job_id, record_index),
    CONSTRAINT fk_raw_records_job FOREIGN KEY (job_id) REFERENCES ingestion_jobs (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- One row per record of a job: status ok (data set) or invalid (error set).
-- The primary key (job_id, record_index) makes reprocessing idempotent.
CREATE TABLE processed_data (
    job_id        BIGINT UNSIGNED NOT NULL,
    record_index  INT UNSIGNED    NOT NULL,
    status        VARCHAR(16)     NOT NULL,
    data          JSON            NULL,
    error         VARCHAR(1024)   NULL,
    created_at    DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (job_id, record_index),
    CONSTRAINT fk_processed_data_job FOREIGN KEY (job_id) REFERENCES ingestion_jobs (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
