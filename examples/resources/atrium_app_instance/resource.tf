resource "atrium_tenant" "acme" {
  name         = "acme"
  display_name = "ACME GmbH"
  tier         = "business"

  manager = {
    email = "it-lead@acme.example"
    name  = "Dana Fischer"
  }
}

resource "atrium_app_instance" "web" {
  tenant_id = atrium_tenant.acme.id
  name      = "web"
  app       = "hello"
  target    = "lyon-onprem"
  users     = 20

  customizations = {
    environment = {
      GREETING = "Moin"
    }
  }
}

output "web_url" {
  value = atrium_app_instance.web.internal_url
}
