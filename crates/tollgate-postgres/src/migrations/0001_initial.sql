-- tollgate fleet ledger, schema 1. Companies and users are stored by their ids; an API
-- key is never stored.
CREATE TABLE instances (
    instance   TEXT        PRIMARY KEY,
    first_seen TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen  TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One row per batch an instance committed: the gate that makes a retried batch count
-- once (INSERT ... ON CONFLICT DO NOTHING; the deltas and totals are written only when
-- the insert happened, in the same transaction).
CREATE TABLE batches (
    instance     TEXT        NOT NULL REFERENCES instances (instance),
    batch_id     TEXT        NOT NULL,
    committed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (instance, batch_id)
);
CREATE TABLE usage_deltas (
    instance     TEXT   NOT NULL,
    batch_id     TEXT   NOT NULL,
    seq          INTEGER NOT NULL,
    company      TEXT   NOT NULL,
    user_id      TEXT   NOT NULL DEFAULT '',
    period       TEXT   NOT NULL,
    period_start BIGINT NOT NULL,
    calls        BIGINT NOT NULL,
    units        BIGINT NOT NULL,
    PRIMARY KEY (instance, batch_id, seq),
    FOREIGN KEY (instance, batch_id) REFERENCES batches (instance, batch_id)
);
CREATE TABLE company_totals (
    company      TEXT   NOT NULL,
    period       TEXT   NOT NULL,
    period_start BIGINT NOT NULL,
    calls        BIGINT NOT NULL DEFAULT 0,
    units        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (company, period)
);
CREATE TABLE user_totals (
    company      TEXT   NOT NULL,
    user_id      TEXT   NOT NULL,
    period       TEXT   NOT NULL,
    period_start BIGINT NOT NULL,
    calls        BIGINT NOT NULL DEFAULT 0,
    units        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (company, user_id, period)
);
CREATE TABLE statements (
    company        TEXT        NOT NULL,
    period         TEXT        NOT NULL,
    used           BIGINT      NOT NULL,
    quota_limit    BIGINT      NOT NULL,
    plan           TEXT,
    overage        BIGINT      NOT NULL,
    suggested_plan TEXT,
    closed_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (company, period)
);
CREATE TABLE notices (
    company        TEXT        NOT NULL,
    period         TEXT        NOT NULL,
    kind           TEXT        NOT NULL CHECK (kind IN ('warning', 'overage')),
    instance       TEXT        NOT NULL,
    used           BIGINT      NOT NULL,
    quota_limit    BIGINT      NOT NULL,
    suggested_plan TEXT,
    raised_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (company, period, kind)
);
