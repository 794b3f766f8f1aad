#!/usr/bin/env bash
# The quickstart: builds the provider and runs `terraform apply` on
# examples/quickstart against the embedded SQLite registry
# (examples/quickstart/atrium.db). Run it again: the second apply changes nothing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-deps.sh
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
export TF_CLI_CONFIG_FILE=$config CHECKPOINT_DISABLE=1
unset ATRIUM_REGISTRY_URL

terraform -chdir=examples/quickstart apply -auto-approve -input=false
# Plan must now be empty (exit code 0 with -detailed-exitcode).
terraform -chdir=examples/quickstart plan -detailed-exitcode -input=false >/dev/null
echo "quickstart: applied; plan is empty. Registry: examples/quickstart/atrium.db"
