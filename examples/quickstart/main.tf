# Atrium quickstart: a customer (tenant) with the `hello` app running in a
# container on a local Docker engine, registry in embedded SQLite.
# Run it with scripts/quickstart.sh: it starts a Docker engine with the hello
# images, builds the provider, points Terraform at it and passes docker_host.
terraform {
  required_providers {
    atrium = {
      source = "atrium-hosting/atrium"
    }
  }
}

variable "docker_host" {
  description = "The Docker engine of the local target, e.g. unix:///var/run/docker.sock."
  type        = string
}

provider "atrium" {
  targets = {
    local = {
      location    = "onprem"
      docker_host = var.docker_host
    }
  }
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

resource "atrium_app_instance" "acme_web" {
  tenant_id = atrium_tenant.acme.id
  name      = "web"
  app       = "hello"
  target    = "local"
  users     = 25
}

output "acme_web_url" {
  description = "Where ACME's hello app answers on the target's loopback."
  value       = atrium_app_instance.acme_web.internal_url
}

output "tenants" {
  value = {
    for tenant in [atrium_tenant.acme, atrium_tenant.globex] :
    tenant.id => { status = tenant.status, user_quota = tenant.user_quota }
  }
}
