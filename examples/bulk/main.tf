# Bulk onboarding with the atrium CLI: one tenant per row of customers.csv,
# an app instance per app in its `apps` column (separated by ";"), and its
# first app served over HTTPS at its platform subdomain.
#
#   atrium plan -var docker_host=unix:///var/run/docker.sock ... -out=onboard.plan
#   atrium apply onboard.plan
#
# Adding a row onboards a customer; removing one removes it (the plan shows
# it as a delete first).

variable "platform_zone" {
  description = "The DNS zone of platform subdomains, e.g. apps.example.net."
  type        = string
}

variable "docker_host" {
  description = "The Docker engine of the target, e.g. unix:///var/run/docker.sock."
  type        = string
}

variable "ingress_admin_url" {
  description = "The Caddy admin API beside the target, e.g. http://127.0.0.1:2019."
  type        = string
}

variable "ingress_https_address" {
  description = "Where that Caddy serves HTTPS, e.g. 127.0.0.1:443."
  type        = string
}

variable "dns_api_url" {
  description = "The PowerDNS API serving the platform zone, e.g. http://127.0.0.1:8081."
  type        = string
}

variable "acme_directory_url" {
  description = "The ACME CA of the platform zone's wildcard certificate, e.g. https://acme-v02.api.letsencrypt.org/directory."
  type        = string
}

variable "acme_trusted_roots_file" {
  description = "A PEM file with the root of the ACME CA's HTTPS certificate, for a CA outside the system's trust store."
  type        = string
  default     = null
}

locals {
  customers = { for c in csvdecode(file("customers.csv")) : lower(c.name) => c }
  # One entry per customer and app: "acme/hello" => { tenant, app }.
  instances = merge([
    for name, c in local.customers : {
      for app in split(";", c.apps) : "${name}/${trimspace(app)}" => { tenant = name, app = trimspace(app) }
    }
  ]...)
}

resource "atrium_tenant" "customer" {
  for_each     = local.customers
  name         = each.key
  display_name = each.value.display_name
  tier         = each.value.tier
  manager = {
    email = each.value.manager_email
    name  = each.value.manager_name
  }
}

resource "atrium_app_instance" "app" {
  for_each  = local.instances
  tenant_id = atrium_tenant.customer[each.value.tenant].id
  name      = each.value.app
  app       = "hello"
  target    = "lyon-onprem"
  users     = 10
}

resource "atrium_domain" "site" {
  for_each        = local.customers
  app_instance_id = atrium_app_instance.app["${each.key}/${trimspace(split(";", each.value.apps)[0])}"].id
  hostname        = "${each.value.subdomain}.${var.platform_zone}"
}
