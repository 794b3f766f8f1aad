#!/usr/bin/env bash
# The quickstart: starts the local services (a Docker engine with the hello
# app's images), builds the provider and runs `terraform apply` on
# examples/quickstart against the embedded SQLite registry
# (examples/quickstart/atrium.db); ends by fetching the hello app's page.
# Run it again: the second apply changes nothing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-deps.sh
scripts/services.sh start >/dev/null
docker_host=$(sed -n 's/^ATRIUM_TEST_DOCKER_HOST=//p' .services/env)
cargo build --locked -p atrium-provider --bin terraform-provider-atrium

config=$repo/target/quickstart.tfrc
cat >"$config" <<TFRC
provider_installation {
  dev_overrides {
    "atrium-hosting/atrium" = "$repo/target/debug"
  }
  direct {}
}
TFRC
export TF_CLI_CONFIG_FILE=$config CHECKPOINT_DISABLE=1 TF_VAR_docker_host=$docker_host
unset ATRIUM_REGISTRY_URL

terraform -chdir=examples/quickstart apply -auto-approve -input=false
# Plan must now be empty (exit code 0 with -detailed-exitcode).
terraform -chdir=examples/quickstart plan -detailed-exitcode -input=false >/dev/null
url=$(terraform -chdir=examples/quickstart output -raw acme_web_url)
echo "quickstart: applied; plan is empty. ACME's app at $url answers:"
curl -fsS "$url"
echo "(registry: examples/quickstart/atrium.db; stop the services with scripts/services.sh stop)"
