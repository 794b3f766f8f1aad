# A tenant is imported by its name.
terraform import atrium_tenant.acme acme
