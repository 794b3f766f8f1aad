-- Customizations' configuration files, and the manager's password: only its
-- salted hash, with the version that last set it (bumping it sets a new one).
ALTER TABLE app_instances ADD COLUMN files TEXT NOT NULL DEFAULT '{}';
ALTER TABLE app_instances ADD COLUMN manager_password_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE app_instances ADD COLUMN password_version BIGINT NOT NULL DEFAULT 0;
