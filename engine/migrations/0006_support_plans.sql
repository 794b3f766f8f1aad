-- Support plans: one per tenant, with the level the tracker records too.
CREATE TABLE support_plans (
    tenant                  TEXT NOT NULL PRIMARY KEY,
    level                   TEXT NOT NULL,
    channels                TEXT NOT NULL,
    first_response_minutes  BIGINT NOT NULL,
    tracker_access          BIGINT NOT NULL,
    starts_on               TEXT NOT NULL,
    owner                   TEXT NOT NULL,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL
);
