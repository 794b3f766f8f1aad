resource "atrium_tenant" "acme" {
  name         = "acme"
  display_name = "ACME GmbH"
  tier         = "business"

  manager = {
    email = "it-lead@acme.example"
    name  = "Dana Fischer"
  }
}

resource "atrium_support_plan" "acme" {
  tenant_id      = atrium_tenant.acme.id
  level          = "premium_24x7"
  channels       = ["chat", "email", "phone"]
  tracker_access = true
}

output "support_hours" {
  value = atrium_support_plan.acme.hours
}
