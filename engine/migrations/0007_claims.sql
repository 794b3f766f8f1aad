-- Claims: which configuration created each object, and whether that
-- configuration's state is known to hold it. A create claims the object's
-- natural key before it touches anything; a create that finds the key claimed
-- by another owner, or by its own owner with the object already recorded in
-- that owner's state, is refused instead of taking the object over. A claim
-- of its own owner that no state has acknowledged yet is an interrupted create
-- (Terraform killed before it saved its state), which the next apply finishes.
-- `create_token` is the token of the create that made the object (the state
-- keeps it in its private data); `confirmed` becomes 1 the first time a state
-- shows it. Objects made before claims existed are confirmed, owned by the
-- front door recorded in their row.
CREATE TABLE claims (
    kind          TEXT NOT NULL,
    natural_key   TEXT NOT NULL,
    tenant        TEXT NOT NULL,
    owner         TEXT NOT NULL,
    create_token  TEXT NOT NULL,
    confirmed     BIGINT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (kind, natural_key)
);
CREATE INDEX claims_by_tenant ON claims (tenant);
INSERT INTO claims (kind, natural_key, tenant, owner, create_token, confirmed, created_at)
    SELECT 'tenant', name, name, owner, '', 1, created_at FROM tenants;
INSERT INTO claims (kind, natural_key, tenant, owner, create_token, confirmed, created_at)
    SELECT 'app_instance', tenant || '/' || name, tenant, owner, '', 1, created_at FROM app_instances;
INSERT INTO claims (kind, natural_key, tenant, owner, create_token, confirmed, created_at)
    SELECT 'domain', hostname, tenant, owner, '', 1, created_at FROM domains;
INSERT INTO claims (kind, natural_key, tenant, owner, create_token, confirmed, created_at)
    SELECT 'support_plan', tenant, tenant, owner, '', 1, created_at FROM support_plans;
