#!/usr/bin/env bash
# The quickstart: starts the local services (a Docker engine with the hello
# app's images, PowerDNS, Pebble, Caddy), builds the provider into a local
# mirror, runs `terraform init` and `terraform apply` on examples/quickstart against the embedded SQLite
# registry (examples/quickstart/atrium.db); ends by fetching the hello app's
# page over HTTPS at the tenant's domain, trusting only the ACME CA's root.
# Run it again: the second apply changes nothing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-deps.sh
scripts/services.sh start >/dev/null
service() { sed -n "s/^$1=//p" .services/env; }

# The provider as a user gets a published one: a release build in a local
# filesystem mirror laid out as a registry release, installed by
# `terraform init`, its version pinned in .terraform.lock.hcl.
config=$repo/target/quickstart.tfrc
scripts/provider-mirror.sh release "$repo/target/provider-mirror" >"$config"
export TF_CLI_CONFIG_FILE=$config CHECKPOINT_DISABLE=1
export TF_VAR_docker_host=$(service ATRIUM_TEST_DOCKER_HOST)
export TF_VAR_ingress_admin_url=$(service ATRIUM_TEST_CADDY_ADMIN_URL)
https_port=$(service ATRIUM_TEST_CADDY_HTTPS_PORT)
export TF_VAR_ingress_https_address=127.0.0.1:$https_port
export TF_VAR_dns_api_url=$(service ATRIUM_TEST_PDNS_URL)
export TF_VAR_dns_resolver=$(service ATRIUM_TEST_PDNS_DNS_ADDRESS)
export TF_VAR_acme_directory_url=$(service ATRIUM_TEST_ACME_DIRECTORY)
export TF_VAR_acme_trusted_roots_file=$(service ATRIUM_TEST_ACME_CA_FILE)
export ATRIUM_DNS_API_KEY=$(service ATRIUM_TEST_PDNS_API_KEY)
unset ATRIUM_REGISTRY_URL

terraform -chdir=examples/quickstart init -input=false -upgrade >/dev/null
terraform -chdir=examples/quickstart apply -auto-approve -input=false
# Plan must now be empty (exit code 0 with -detailed-exitcode).
terraform -chdir=examples/quickstart plan -detailed-exitcode -input=false >/dev/null
url=$(terraform -chdir=examples/quickstart output -raw acme_url)
host=${url#https://}
host=${host%/}
# The name resolves through PowerDNS, which this machine's resolver does not
# ask, so curl is told where it lives; the certificate is checked against the
# ACME CA's root only.
echo "quickstart: applied; plan is empty. ACME's app at $url (served on 127.0.0.1:$https_port) answers:"
curl -fsS --resolve "$host:$https_port:127.0.0.1" --cacert "$(service ATRIUM_TEST_ACME_ROOT_FILE)" \
  "https://$host:$https_port/"
echo "(registry: examples/quickstart/atrium.db; stop the services with scripts/services.sh stop)"
