-- Domains: which app instance a host name serves, on which target's reverse
-- proxy, and whether it is live. The row is written before DNS and the route,
-- so an interrupted apply is finished or undone by the next one.
CREATE TABLE domains (
    hostname                TEXT NOT NULL PRIMARY KEY,
    tenant                  TEXT NOT NULL,
    instance                TEXT NOT NULL,
    target                  TEXT NOT NULL,
    tls                     TEXT NOT NULL,
    kind                    TEXT NOT NULL,
    status                  TEXT NOT NULL,
    certificate_expires_at  TEXT,
    owner                   TEXT NOT NULL,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL
);
CREATE INDEX domains_by_instance ON domains (tenant, instance);
