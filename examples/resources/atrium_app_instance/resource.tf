variable "manager_password" {
  description = "The manager's password in the app. Unset: one is generated and reaches the manager by the welcome email."
  type        = string
  default     = null
  sensitive   = true
  # Write-only attributes take ephemeral values: the password stays out of state and plan files.
  ephemeral = true
}

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
  tenant_id      = atrium_tenant.acme.id
  name           = "web"
  app            = "hello"
  target         = "lyon-onprem"
  users          = 20
  admin_password = var.manager_password

  customizations = {
    environment = {
      GREETING = "Moin"
    }
    files = {
      "/www/hours.html" = "<p>Open Monday to Friday, 8:00 to 18:00</p>\n"
    }
  }
}

output "web_url" {
  value = atrium_app_instance.web.internal_url
}
