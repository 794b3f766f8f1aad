# A hybrid customer: one app on the customer's premises (a single Docker
# engine), one in the cloud (a Docker Swarm cluster), planned and applied
# together, each reached over HTTPS at its own platform subdomain. The swarm
# runs each of the app's containers as a service, pinned to the node that
# holds its data; the reverse proxy reaches it on every node of the swarm.
# The status page keeps no data: it runs several copies on the swarm, one
# per node (replicas), from the operator's catalog in ./catalog.
terraform {
  required_providers {
    atrium = {
      source  = "atrium-hosting/atrium"
      version = "~> 0.1"
    }
  }
}

variable "onprem_docker_host" {
  description = "The Docker engine on the customer's premises."
  type        = string
}

variable "cloud_swarm_host" {
  description = "A manager of the cloud's Docker Swarm, e.g. tcp://10.0.0.4:2376."
  type        = string
}

variable "cloud_docker_cert_path" {
  description = "ca.pem, cert.pem and key.pem for the swarm's TLS endpoints (null: plain TCP or a unix socket)."
  type        = string
  default     = null
}

variable "cloud_encrypted_networks" {
  description = "Whether tenant networks on the swarm encrypt traffic between nodes (IPsec: the nodes' kernels must support it)."
  type        = bool
  default     = true
}

variable "ingress_admin_url" {
  description = "The Caddy admin API in front of both targets, e.g. http://127.0.0.1:2019."
  type        = string
}

variable "ingress_https_address" {
  description = "Where that Caddy serves HTTPS, e.g. 127.0.0.1:443."
  type        = string
}

variable "public_address" {
  description = "The address DNS records of both targets' apps point at (the Caddy above)."
  type        = string
}

variable "platform_zone" {
  description = "The DNS zone that customers' subdomains live under."
  type        = string
  default     = "apps.atrium.test"
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
  description = "A PEM file with the root of the ACME CA's own HTTPS certificate; null for the system's roots."
  type        = string
  default     = null
}

variable "cloud_public_address" {
  description = "The cloud target's public address, when it is not public_address (the platform subdomains of its apps point there)."
  type        = string
  default     = null
}

variable "erp_target" {
  description = "Where the ERP runs: changing it moves the instance with its data (initech-onprem or cloud-fra1)."
  type        = string
  default     = "initech-onprem"
}

variable "status_replicas" {
  description = "How many copies of the status page run on the swarm (one per node)."
  type        = number
  default     = 2
}

variable "tenant_name" {
  description = "The tenant's name."
  type        = string
  default     = "initech"
}

provider "atrium" {
  platform_zone = var.platform_zone
  catalog_dir   = "${path.module}/catalog"

  targets = {
    initech-onprem = {
      location              = "onprem"
      docker_host           = var.onprem_docker_host
      ingress_admin_url     = var.ingress_admin_url
      public_address        = var.public_address
      ingress_https_address = var.ingress_https_address
    }
    cloud-fra1 = {
      location              = "cloud"
      orchestrator          = "swarm"
      docker_host           = var.cloud_swarm_host
      docker_cert_path      = var.cloud_docker_cert_path
      encrypted_networks    = var.cloud_encrypted_networks
      ingress_admin_url     = var.ingress_admin_url
      public_address        = coalesce(var.cloud_public_address, var.public_address)
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
}

resource "atrium_tenant" "initech" {
  name         = var.tenant_name
  display_name = "Initech"
  tier         = "enterprise"

  manager = {
    email = "bill@initech.example"
    name  = "Bill Lumbergh"
  }
  welcome_email = false
}

resource "atrium_app_instance" "erp" {
  tenant_id = atrium_tenant.initech.id
  name      = "erp"
  app       = "hello"
  target    = var.erp_target
  users     = 120
}

resource "atrium_app_instance" "chat" {
  tenant_id = atrium_tenant.initech.id
  name      = "chat"
  app       = "hello"
  channel   = "vanilla"
  target    = "cloud-fra1"
  users     = 120
}

resource "atrium_app_instance" "status" {
  tenant_id = atrium_tenant.initech.id
  name      = "status"
  app       = "status"
  target    = "cloud-fra1"
  users     = 120
  replicas  = var.status_replicas
}

resource "atrium_domain" "erp" {
  app_instance_id = atrium_app_instance.erp.id
  hostname        = "erp-${var.tenant_name}.${var.platform_zone}"
}

resource "atrium_domain" "chat" {
  app_instance_id = atrium_app_instance.chat.id
  hostname        = "chat-${var.tenant_name}.${var.platform_zone}"
}

resource "atrium_domain" "status" {
  app_instance_id = atrium_app_instance.status.id
  hostname        = "status-${var.tenant_name}.${var.platform_zone}"
}

output "urls" {
  description = "Each app at its platform subdomain, over HTTPS."
  value = {
    erp    = "https://${atrium_domain.erp.hostname}/"
    chat   = "https://${atrium_domain.chat.hostname}/"
    status = "https://${atrium_domain.status.hostname}/"
  }
}
