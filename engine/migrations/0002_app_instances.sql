-- App instances: what is deployed where, which generation runs, and the
-- per-instance secrets the containers need (never in Terraform state).
CREATE TABLE app_instances (
    tenant                  TEXT NOT NULL,
    name                    TEXT NOT NULL,
    app                     TEXT NOT NULL,
    channel                 TEXT NOT NULL,
    version                 TEXT NOT NULL,
    target                  TEXT NOT NULL,
    users                   BIGINT NOT NULL,
    resources               TEXT,
    environment             TEXT NOT NULL,
    extra_volumes           TEXT NOT NULL,
    delete_data_on_destroy  BIGINT NOT NULL,
    generation              BIGINT NOT NULL,
    previous_version        TEXT,
    deployed_at             TEXT NOT NULL,
    published_port          BIGINT,
    secrets                 TEXT NOT NULL,
    owner                   TEXT NOT NULL,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);
