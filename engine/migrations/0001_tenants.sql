-- The registry's first shape: tenants. The same SQL runs on SQLite and PostgreSQL.
CREATE TABLE tenants (
    name           TEXT PRIMARY KEY,
    display_name   TEXT NOT NULL,
    tier           TEXT NOT NULL,
    user_quota     BIGINT NOT NULL,
    expires_on     TEXT,
    manager_email  TEXT NOT NULL,
    manager_name   TEXT NOT NULL,
    welcome_email  BIGINT NOT NULL,
    status         TEXT NOT NULL,
    owner          TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
