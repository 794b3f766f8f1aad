# hello: a tiny web page built from busybox by scripts/hello-image.sh.
# Every integration and acceptance test deploys it for real. Version 2.0's
# image has no /health page, so it never turns healthy: tests use it to
# exercise rollback.
name        = "hello"
description = "A one-page web app for tests and demos."
port        = 80

channels = {
  stable = {
    image    = "atrium/hello:{version}"
    versions = ["1.0", "1.1", "2.0"]
    default  = "1.1"
  }
  vanilla = {
    image    = "atrium/hello:{version}"
    versions = ["1.0", "1.1", "2.0"]
    default  = "1.1"
  }
  custom = {
    image    = "atrium/hello:{version}"
    versions = ["1.0", "1.1"]
    default  = "1.0"
  }
}

command = ["/bin/httpd", "-f", "-p", "80", "-h", "/www"]

# Root in the container, to listen on port 80; every other capability is
# dropped. The root filesystem stays writable: a new password rewrites
# /etc/httpd.conf in the running container.
capabilities = ["NET_BIND_SERVICE"]

environment = {
  HELLO_TENANT = "{tenant}"
}

volumes = {
  data = "/www/data"
}

# Every 2 s, with 5 s to answer: hundreds of hello containers on a two-core
# test machine stay healthy, and a broken version still fails within seconds.
health = {
  command      = ["/bin/wget", "-q", "-O", "/dev/null", "http://127.0.0.1/health"]
  interval     = "2s"
  timeout      = "5s"
  retries      = 3
  start_period = "0s"
}

resources = {
  basic      = { cpus = 0.25, memory_mb = 64 }
  business   = { cpus = 0.5, memory_mb = 128 }
  enterprise = { cpus = 1, memory_mb = 256 }
}

manager_account = {
  login_path = "/manage/"
  method = "environment"
  environment = {
    HELLO_MANAGER_EMAIL = "{manager.email}"
    HELLO_MANAGER_NAME  = "{manager.name}"
  }
  # A new password rewrites /etc/httpd.conf in the running container; busybox
  # httpd reads it again on SIGHUP, which docker-init (PID 1) passes on.
  reload = ["/bin/sh", "-c", "kill -HUP 1"]
}

# The manager's login: busybox httpd guards /manage/ with basic auth, checking
# the password against the crypt hash the engine writes here. The clear
# password never reaches the container or the registry.
files = {
  "/etc/httpd.conf"         = "/manage:{manager.email}:{manager.password_hash}\n"
  "/www/manage/index.html" = "<h1>Manager area</h1>\n<p>{tenant}/{instance}, for {manager.name}</p>\n"
}

user_limit = {
  method   = "environment"
  variable = "HELLO_MAX_USERS"
}

# The page /address names the address customers reach the app at, and /hosts
# every live host name: tests read them through the proxy.
public_address = {
  command = ["/bin/sh", "-c", "echo \"$1\" > /www/address && echo \"$2\" > /www/hosts", "atrium-public-address", "{address}", "{hosts}"]
}
