# The atrium CLI's settings: the provider block's, and the owner under which
# the CLI records what it creates (a plan only ever touches this owner's
# objects). Terraform does not read .hcl files, so main.tf can move between
# the two front doors unchanged.
atrium {
  owner         = "partner-bulk"
  platform_zone = var.platform_zone

  targets = {
    lyon-onprem = {
      location              = "onprem"
      docker_host           = var.docker_host
      ingress_admin_url     = var.ingress_admin_url
      ingress_https_address = var.ingress_https_address
      public_address        = "127.0.0.1"
    }
  }

  # The API key comes from the ATRIUM_DNS_API_KEY environment variable.
  dns = {
    api_url = var.dns_api_url
  }

  # One wildcard certificate for every customer's platform subdomain:
  # onboarding a thousand customers orders no certificate per customer.
  platform_certificate = {
    acme_directory_url = var.acme_directory_url
    trusted_roots_file = var.acme_trusted_roots_file
  }
}
