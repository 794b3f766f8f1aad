-- Whether the manager's password was given in the configuration
-- (admin_password) rather than generated: a welcome email that waits for the
-- instance's first domain can then say so instead of sending a password
-- nobody recorded.
ALTER TABLE app_instances ADD COLUMN password_given BIGINT NOT NULL DEFAULT 0;
