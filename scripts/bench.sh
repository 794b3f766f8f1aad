#!/usr/bin/env bash
# Benchmarks with release builds:
#   scripts/bench.sh [COUNT] [ROUNDS]          atrium_tenant against terraform_data (default 1000, 3 rounds)
#   scripts/bench.sh apps [COUNT] [REFRESH]    hello instances against the Docker CLI (default 50; refresh 200)
#   scripts/bench.sh domains [COUNT] [ROUNDS]  domains against curl on PowerDNS and Caddy (default 100, 3 rounds)
#   scripts/bench.sh cli [PLANNED] [APPLIED]   the atrium CLI against terraform on the same tenants (default 10000, 1000)
#   scripts/bench.sh onboard [COUNT] [ROUNDS]  atrium apply of customers to HTTPS against the Docker CLI and curl (default 100, 3)
#   scripts/bench.sh backups [ROUNDS]          a Redmine instance's backup and restore against restic and pg_dump by hand (default 3)
#   scripts/bench.sh upgrades [APP ...]        upgrade downtime of redmine, mediawiki and tryton against docker restart
#   scripts/bench.sh swarm [COUNT]             hello instances on the 3-node swarm against docker service create (default 30)
#   scripts/bench.sh move [ROUNDS]             downtime of moving 100 MiB of data between engines against the Docker CLI (default 3)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH="$HOME/.cargo/bin:$PATH"
# The provider as users install it (scripts/provider-dist.sh: profile dist,
# hot functions first); the benchmark binaries and the CLI are release builds.
dist_provider=$(scripts/provider-dist.sh)
export ATRIUM_PROVIDER_BIN=${ATRIUM_PROVIDER_BIN:-$dist_provider}
if [ "${1:-}" = cli ]; then
  shift
  cargo build --locked --release -p atrium-engine --bin atrium
  exec cargo run --locked --release -p atrium-acceptance --bin bench-cli -- "$@"
fi
if [ "${1:-}" = onboard ]; then
  shift
  cargo build --locked --release -p atrium-engine --bin atrium
  [ -n "${ATRIUM_SERVICES_ENV:-}" ] || { scripts/services.sh start >/dev/null; export ATRIUM_SERVICES_ENV=$repo/.services/env; }
  exec cargo run --locked --release -p atrium-acceptance --bin bench-onboard -- "$@"
fi
if [ "${1:-}" = apps ] || [ "${1:-}" = domains ] || [ "${1:-}" = backups ] || [ "${1:-}" = upgrades ] ||
  [ "${1:-}" = swarm ] || [ "${1:-}" = move ]; then
  bench=bench-$1
  shift
  [ -n "${ATRIUM_SERVICES_ENV:-}" ] || { scripts/services.sh start >/dev/null; export ATRIUM_SERVICES_ENV=$repo/.services/env; }
  cargo run --locked --release -p atrium-acceptance --bin "$bench" -- "$@"
else
  cargo run --locked --release -p atrium-acceptance --bin bench-tenants -- "$@"
fi
