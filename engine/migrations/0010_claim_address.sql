-- The address under which the atrium CLI last applied a claimed object
-- (`atrium_tenant.customer["acme"]`), so that a plan shows an object that is
-- no longer declared under the address it had. Empty for Terraform's objects:
-- Terraform's state keeps their addresses.
ALTER TABLE claims ADD COLUMN address TEXT NOT NULL DEFAULT '';
