# Atrium quickstart: a customer (tenant) with the `hello` app running in a
# container on a local Docker engine, reached over HTTPS at its platform
# subdomain (DNS in PowerDNS, route in Caddy, the platform zone's wildcard
# certificate from an ACME CA by DNS-01), registry in embedded SQLite.
# Run it with scripts/quickstart.sh: it starts the local services (Docker,
# PowerDNS, Caddy, Pebble), builds the provider, points Terraform at it and
# passes the services' addresses as variables.
terraform {
  required_providers {
    atrium = {
      source  = "atrium-hosting/atrium"
      version = "~> 0.1"
    }
  }
}

variable "docker_host" {
  description = "The Docker engine of the local target, e.g. unix:///var/run/docker.sock."
  type        = string
}

variable "ingress_admin_url" {
  description = "The Caddy admin API beside the local target, e.g. http://127.0.0.1:2019."
  type        = string
}

variable "ingress_https_address" {
  description = "Where that Caddy serves HTTPS, e.g. 127.0.0.1:443."
  type        = string
}

variable "dns_api_url" {
  description = "The PowerDNS API serving the platform zone (its key comes from ATRIUM_DNS_API_KEY)."
  type        = string
}

variable "dns_resolver" {
  description = "The DNS server asked for customers' verification records, e.g. 127.0.0.1:53."
  type        = string
}

variable "acme_directory_url" {
  description = "The ACME CA that issues the platform zone's wildcard certificate, e.g. https://acme-v02.api.letsencrypt.org/directory."
  type        = string
}

variable "acme_trusted_roots_file" {
  description = "A PEM file with the root of the ACME CA's own HTTPS certificate, for a CA outside the system's trust store; null for the system's roots."
  type        = string
  default     = null
}

provider "atrium" {
  platform_zone = "apps.atrium.test"

  targets = {
    local = {
      location              = "onprem"
      docker_host           = var.docker_host
      ingress_admin_url     = var.ingress_admin_url
      public_address        = "127.0.0.1"
      ingress_https_address = var.ingress_https_address
    }
  }

  dns = {
    api_url  = var.dns_api_url
    resolver = var.dns_resolver
  }

  # *.apps.atrium.test, ordered by Atrium by DNS-01 through PowerDNS and
  # loaded into Caddy: platform subdomains order no certificate of their own.
  platform_certificate = {
    acme_directory_url = var.acme_directory_url
    trusted_roots_file = var.acme_trusted_roots_file
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

resource "atrium_domain" "acme" {
  app_instance_id = atrium_app_instance.acme_web.id
  hostname        = "acme.apps.atrium.test"
}

output "acme_url" {
  description = "ACME's app at its platform subdomain, over HTTPS."
  value       = "https://${atrium_domain.acme.hostname}/"
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
