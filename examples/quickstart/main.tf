# Atrium quickstart: two customers on the embedded SQLite registry.
# Run it with scripts/quickstart.sh (it builds the provider and points
# Terraform at it), or see README.md.
terraform {
  required_providers {
    atrium = {
      source = "atrium-hosting/atrium"
    }
  }
}

provider "atrium" {}

resource "atrium_tenant" "acme" {
  name         = "acme"
  display_name = "ACME GmbH"
  tier         = "business"

  manager = {
    email = "it-lead@acme.example"
    name  = "Dana Fischer"
  }
}

resource "atrium_tenant" "globex" {
  name         = "globex"
  display_name = "Globex Corporation"
  tier         = "basic"
  user_quota   = 20
  expires_on   = "2027-12-31"

  manager = {
    email = "ops@globex.example"
    name  = "Hank Scorpio"
  }
  welcome_email = false
}

output "tenants" {
  value = {
    for tenant in [atrium_tenant.acme, atrium_tenant.globex] :
    tenant.id => { status = tenant.status, user_quota = tenant.user_quota }
  }
}
