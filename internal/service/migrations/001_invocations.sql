-- The invocations of imagebuilder serve, their logs, their sealed secrets, and the API keys.
-- Times are Unix microseconds (BIGINT) in both dialects; {{blob}} is BLOB (SQLite) or BYTEA.
CREATE TABLE invocations (
    id               TEXT    PRIMARY KEY,
    kind             TEXT    NOT NULL,
    owner            TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    submitted        BIGINT  NOT NULL,
    started          BIGINT,
    ended            BIGINT,
    document         TEXT    NOT NULL, -- masked: no secret
    dry_run          INTEGER NOT NULL DEFAULT 0,
    result           TEXT,
    error            TEXT    NOT NULL DEFAULT '',
    attempt          INTEGER NOT NULL DEFAULT 0,
    images           TEXT    NOT NULL DEFAULT '[]',
    job_id           BIGINT,
    cancel_requested TEXT,             -- who asked, when someone did
    replica          TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX invocations_submitted ON invocations (submitted DESC, id DESC);
CREATE INDEX invocations_owner ON invocations (owner, submitted DESC, id DESC);
CREATE INDEX invocations_state ON invocations (state);

-- The full submitted document, sealed (AES-GCM), while the invocation has not ended.
CREATE TABLE invocation_secrets (
    invocation_id TEXT PRIMARY KEY REFERENCES invocations (id) ON DELETE CASCADE,
    sealed        {{blob}} NOT NULL
);

CREATE TABLE invocation_logs (
    invocation_id TEXT   NOT NULL REFERENCES invocations (id) ON DELETE CASCADE,
    seq           BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    text          TEXT   NOT NULL,
    PRIMARY KEY (invocation_id, seq)
);

CREATE TABLE api_keys (
    name      TEXT    PRIMARY KEY,
    hash      TEXT    NOT NULL UNIQUE, -- SHA-256 of the key, hex
    admin     INTEGER NOT NULL DEFAULT 0,
    created   BIGINT  NOT NULL,
    last_used BIGINT,
    revoked   BIGINT
);
