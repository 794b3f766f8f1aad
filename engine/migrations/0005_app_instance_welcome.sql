-- Whether the welcome email of an app instance went out: 'sent', 'pending'
-- (a send failed; the next apply sets a new password and tries again) or
-- 'off' (the tenant wants none, or no SMTP relay is configured).
ALTER TABLE app_instances ADD COLUMN welcome_state TEXT NOT NULL DEFAULT 'off';
