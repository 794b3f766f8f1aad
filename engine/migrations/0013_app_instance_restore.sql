-- The restore an instance's configuration last asked for and the apply
-- carried out (JSON, as the provider's `restore` attribute; NULL: none).
ALTER TABLE app_instances ADD COLUMN restore TEXT;
