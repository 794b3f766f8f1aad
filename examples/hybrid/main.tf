# A hybrid customer: one app on the customer's premises, one in the cloud,
# planned and applied together. The two targets are two Docker engines.
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

variable "cloud_docker_host" {
  description = "The Docker engine in the cloud, e.g. tcp://10.0.0.4:2376."
  type        = string
}

variable "cloud_docker_cert_path" {
  description = "ca.pem, cert.pem and key.pem for the cloud engine's TLS endpoint."
  type        = string
  default     = null
}

variable "tenant_name" {
  description = "The tenant's name."
  type        = string
  default     = "initech"
}

provider "atrium" {
  targets = {
    initech-onprem = {
      location    = "onprem"
      docker_host = var.onprem_docker_host
    }
    cloud-fra1 = {
      location         = "cloud"
      docker_host      = var.cloud_docker_host
      docker_cert_path = var.cloud_docker_cert_path
    }
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
}

resource "atrium_app_instance" "erp" {
  tenant_id = atrium_tenant.initech.id
  name      = "erp"
  app       = "hello"
  target    = "initech-onprem"
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

output "urls" {
  value = {
    erp  = atrium_app_instance.erp.internal_url
    chat = atrium_app_instance.chat.internal_url
  }
}
