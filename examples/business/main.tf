# Atrium for a business: one customer (tenant) with the three real business
# apps the catalog builds from Debian's packages, each with its own database
# beside it and reached over HTTPS at its platform subdomain:
#   - projects: Redmine (issues, wiki, time tracking) on PostgreSQL,
#   - wiki:     MediaWiki (the company wiki) on MariaDB,
#   - erp:      Tryton (parties, products, accounting, sales) on PostgreSQL.
# The manager gets one welcome email per app, each with her login and a
# generated password (never the app's own admin account). Versions are pinned:
# raising one (redmine 5.0 to 6.0, mediawiki 1.39 to 1.43, tryton 6.0 to 7.0)
# backs up the app's data, runs its migrations and puts the backup back if
# the new version fails.
#
# It needs what the quickstart needs (a Docker engine with the apps' images,
# scripts/app-images.sh; Caddy; PowerDNS; an ACME CA) and an SMTP relay.
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
  description = "The ACME CA that issues the platform zone's wildcard certificate."
  type        = string
}

variable "acme_trusted_roots_file" {
  description = "A PEM file with the root of the ACME CA's own HTTPS certificate, for a CA outside the system's trust store; null for the system's roots."
  type        = string
  default     = null
}

variable "smtp_url" {
  description = "The SMTP relay that sends the welcome emails, e.g. smtp://mail.example.net:587?tls=required."
  type        = string
}

variable "platform_zone" {
  description = "The DNS zone under which customers get their subdomains."
  type        = string
  default     = "apps.atrium.test"
}

variable "tenant_name" {
  description = "The customer's name in the platform (subdomains start with it)."
  type        = string
  default     = "northwind"
}

variable "versions" {
  description = "The version of each app; raising one upgrades it with its data."
  type        = object({ redmine = string, mediawiki = string, tryton = string })
  default     = { redmine = "5.0", mediawiki = "1.39", tryton = "6.0" }
}

provider "atrium" {
  platform_zone = var.platform_zone

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

  platform_certificate = {
    acme_directory_url = var.acme_directory_url
    trusted_roots_file = var.acme_trusted_roots_file
  }

  smtp = {
    url  = var.smtp_url
    from = "Northwind IT <noreply@apps.atrium.test>"
  }
}

resource "atrium_tenant" "northwind" {
  name         = var.tenant_name
  display_name = "Northwind Traders"
  tier         = "business"
  user_quota   = 60

  manager = {
    email = "it@northwind.example"
    name  = "Nancy Davolio"
  }
}

locals {
  apps = {
    projects = { app = "redmine", version = var.versions.redmine, users = 25 }
    wiki     = { app = "mediawiki", version = var.versions.mediawiki, users = 30 }
    erp      = { app = "tryton", version = var.versions.tryton, users = 5 }
  }
}

resource "atrium_app_instance" "app" {
  for_each = local.apps

  tenant_id = atrium_tenant.northwind.id
  name      = each.key
  app       = each.value.app
  version   = each.value.version
  target    = "local"
  users     = each.value.users

  # Each app backs itself up on the tier's schedule (business: every 6
  # hours). The ERP's books change all day: every hour, and a snapshot of
  # each of the last 60 days.
  backup = each.key == "erp" ? { interval = "1h", keep_daily = 60 } : null

  # A first start creates the database and (for Tryton) activates the ERP's
  # modules; an upgrade migrates the data. Both take minutes, not seconds.
  timeouts = {
    create = "15m"
    update = "15m"
  }
}

resource "atrium_domain" "app" {
  for_each = local.apps

  app_instance_id = atrium_app_instance.app[each.key].id
  hostname        = "${each.key}-${var.tenant_name}.${var.platform_zone}"
}

output "urls" {
  description = "Each app over HTTPS at its platform subdomain."
  value       = { for name, domain in atrium_domain.app : name => "https://${domain.hostname}/" }
}
