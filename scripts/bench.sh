#!/usr/bin/env bash
# Benchmarks atrium_tenant against terraform_data with release builds.
#   scripts/bench.sh [COUNT] [ROUNDS]     (default 1000 resources, 3 rounds)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --locked --release -p atrium-provider --bin terraform-provider-atrium
cargo run --locked --release -p atrium-acceptance --bin bench-tenants -- "$@"
