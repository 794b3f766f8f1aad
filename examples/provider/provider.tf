terraform {
  required_providers {
    atrium = {
      source  = "atrium-hosting/atrium"
      version = "~> 0.1"
    }
  }
}

# With no registry_url, the provider uses ATRIUM_REGISTRY_URL, or else an
# embedded SQLite registry (atrium.db) in the working directory.
provider "atrium" {
  platform_zone = "apps.example.net"

  targets = {
    lyon-onprem = {
      location          = "onprem"
      docker_host       = "unix:///var/run/docker.sock"
      ingress_admin_url = "http://127.0.0.1:2019"
      public_address    = "203.0.113.10"
    }
    cloud-fra1 = {
      location       = "cloud"
      docker_host    = "tcp://10.0.0.4:2376"
      orchestrator   = "swarm"
      public_address = "edge.example.net"
    }
  }

  # Platform subdomains get their records here. The API key comes from the
  # ATRIUM_DNS_API_KEY environment variable (or dns.api_key).
  dns = {
    api_url = "http://127.0.0.1:8081"
  }

  # One certificate, *.apps.example.net, for every platform subdomain:
  # ordered by Atrium through the DNS API above (DNS-01), renewed with a
  # third of its life left, and handed to each target's reverse proxy.
  platform_certificate = {
    acme_directory_url = "https://acme-v02.api.letsencrypt.org/directory"
    contact_email      = "ops@example.net"
  }

  # Managers of tenants with tracker_access get accounts here. The API key
  # comes from the ATRIUM_TRACKER_API_KEY environment variable (or tracker.api_key).
  tracker = {
    url = "https://support.example.net"
  }
}
