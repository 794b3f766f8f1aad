resource "atrium_tenant" "acme" {
  name         = "acme"
  display_name = "ACME GmbH"
  tier         = "business"
  expires_on   = "2027-03-31"

  manager = {
    email = "it-lead@acme.example"
    name  = "Dana Fischer"
  }
}
