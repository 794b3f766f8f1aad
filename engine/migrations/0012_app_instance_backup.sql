-- An instance's own backup schedule and retention over its tier's policy
-- (JSON, as the provider's `backup` attribute; NULL: the tier's).
ALTER TABLE app_instances ADD COLUMN backup TEXT;
