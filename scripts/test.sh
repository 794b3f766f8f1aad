#!/usr/bin/env bash
# Runs every test: unit, integration (real PostgreSQL and SQLite) and
# acceptance (the real terraform CLI against the freshly built provider).
# Installs what is missing, starts the services it needs, and stops the ones
# it started. Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-deps.sh

state=${ATRIUM_SERVICES_DIR:-$repo/.services}
started_here=false
if [ -z "${ATRIUM_SERVICES_ENV:-}" ]; then
  # Services someone started before (an env file exists) are left running.
  [ -f "$state/env" ] || started_here=true
  scripts/services.sh start "$state"
  export ATRIUM_SERVICES_ENV=$state/env
fi
cleanup() { if $started_here; then scripts/services.sh stop "$state" >/dev/null; fi; }
trap cleanup EXIT

# The real business apps' images that the tests deploy: built from Debian
# packages (or loaded from this machine's cache) while cargo builds.
# The second engine (the off-site store's target, where an instance comes
# back from its off-site copy) gets the store and that instance's images,
# loaded from the cache the first call fills; so do the swarm's nodes, for
# the test entry with a database that is restored onto another node.
docker_host=$(sed -n 's/^ATRIUM_TEST_DOCKER_HOST=//p' "$ATRIUM_SERVICES_ENV")
docker_host_2=$(sed -n 's/^ATRIUM_TEST_DOCKER_HOST_2=//p' "$ATRIUM_SERVICES_ENV")
swarm_nodes=$(sed -n 's/^ATRIUM_TEST_SWARM_NODES=//p' "$ATRIUM_SERVICES_ENV")
images_log=$(mktemp)
(scripts/app-images.sh "$docker_host" tests &&
  scripts/app-images.sh "$docker_host_2" backup-store:1.60 redmine:5.0 postgres:15 &&
  for node in ${swarm_nodes//,/ }; do scripts/app-images.sh "$node" postgres:15 || exit 1; done) >"$images_log" 2>&1 &
images=$!

# The acceptance tests run the provider binary that this build produces.
cargo build --workspace --locked
if ! wait "$images"; then
  cat "$images_log" >&2
  echo "test.sh: the app images could not be made (above)" >&2
  exit 1
fi
cat "$images_log"
rm -f "$images_log"
cargo test --workspace --locked "$@"
