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
}

# A platform subdomain: live at once, over HTTPS.
resource "atrium_domain" "web" {
  app_instance_id = atrium_app_instance.web.id
  hostname        = "acme.apps.example.net"
}

# The customer's own domain: live once she publishes the verification record.
resource "atrium_domain" "erp" {
  app_instance_id = atrium_app_instance.web.id
  hostname        = "erp.acme.com"
}

output "web_url" {
  value = "https://${atrium_domain.web.hostname}/"
}

output "erp_verification" {
  description = "The TXT record the customer publishes for erp.acme.com."
  value       = atrium_domain.erp.verification
}
