# status: the customer's status page, an operator's catalog entry (the
# provider's catalog_dir). It keeps nothing, so on a swarm target it may run
# several copies, one per node, behind its domain (replicas). It is served by
# the hello test app's images (scripts/hello-image.sh).
name        = "status"
description = "A status page that keeps no data."
port        = 80

channels = {
  stable = {
    image    = "atrium/hello:{version}"
    versions = ["1.0", "1.1"]
    default  = "1.1"
  }
}

command      = ["/bin/httpd", "-f", "-p", "80", "-h", "/www"]
capabilities = ["NET_BIND_SERVICE"]

environment = {
  STATUS_TENANT = "{tenant}"
}

health = {
  command      = ["/bin/wget", "-q", "-O", "/dev/null", "http://127.0.0.1/health"]
  interval     = "2s"
  timeout      = "5s"
  retries      = 3
  start_period = "0s"
}

resources = {
  basic      = { cpus = 0.25, memory_mb = 64 }
  business   = { cpus = 0.25, memory_mb = 64 }
  enterprise = { cpus = 0.25, memory_mb = 64 }
}

# The page has no accounts of its own: the manager's details only reach it.
manager_account = {
  method = "environment"
  environment = {
    STATUS_MANAGER_EMAIL = "{manager.email}"
  }
}
