#!/usr/bin/env bash
# The provider as users install it: Cargo profile `dist`, linked with the
# functions a Terraform run executes placed first, in one block.
#
#   scripts/provider-dist.sh          builds it; prints the binary's path
#   scripts/provider-dist.sh order    regenerates provider/symbol-order.txt
#
# Why the order: most of the provider's resident memory is code pages, and
# the kernel maps code in large chunks around each page that runs (fault-
# around, and whole page-cache folios). Of about 6.8 MB of functions a run
# executes about 1.6 MB; scattered over the binary, they pull in most of it.
# Listed first (lld's --symbol-ordering-file), they share pages: the tenant
# benchmark's peak RSS went from 12.4 to 8.8 MiB (plan of 1,000 tenants).
#
# The list names mangled symbols. Symbols it names that a build no longer
# has are skipped (functions renamed or added since land after the list, as
# without one), so a stale list costs memory, never correctness; the build
# prints how much of the list it found. Regenerate it after large changes:
# `order` runs a tenant workload (apply, plan, update, import, destroy)
# through the real terraform with each provider process under valgrind's
# callgrind, and lists every function of the binary that ran, those run by
# every process first.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH="$HOME/.cargo/bin:$PATH"
order_file=$repo/provider/symbol-order.txt
binary=$(realpath -m "${CARGO_TARGET_DIR:-$repo/target}/dist/terraform-provider-atrium")

build() {
  local link=()
  # rustc links x86_64 Linux binaries with its own lld, which reads the list;
  # elsewhere the default linker may not, so the list is not passed.
  if [ "$(uname -m)" = x86_64 ] && [ -s "$order_file" ]; then
    link=(-- -C "link-arg=-Wl,--symbol-ordering-file=$order_file" -C link-arg=-Wl,--no-warn-symbol-ordering)
  fi
  # `cargo rustc` passes the flags to the binary's own link only; the
  # dependencies' builds are shared with `cargo build --profile dist`.
  cargo rustc --locked --profile dist -p atrium-provider --bin terraform-provider-atrium "${link[@]}" >&2
  if [ ${#link[@]} -gt 0 ] && command -v nm >/dev/null; then
    local listed found
    listed=$(wc -l <"$order_file")
    found=$(nm "$binary" | awk 'NR == FNR { listed[$1] = 1; next } $3 in listed { n++ } END { print n + 0 }' "$order_file" -)
    echo "provider-dist: $found of the $listed functions in provider/symbol-order.txt are in the binary" >&2
    if [ $((found * 2)) -lt "$listed" ]; then
      echo "provider-dist: the symbol order is stale; run scripts/provider-dist.sh order" >&2
    fi
  fi
  echo "$binary"
}

order() {
  command -v valgrind >/dev/null || { echo "provider-dist: order needs valgrind (apt-get install valgrind)" >&2; exit 1; }
  command -v terraform >/dev/null || { echo "provider-dist: order needs terraform" >&2; exit 1; }
  build >/dev/null
  local work
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # the directory is known now, and $work is local
  trap "rm -rf '$work'" EXIT
  mkdir -p "$work/bin" "$work/profiles" "$work/config"
  cat >"$work/bin/terraform-provider-atrium" <<WRAPPER
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file=$work/profiles/callgrind.%p --log-file=$work/profiles/valgrind.%p \\
  --dump-instr=no --compress-strings=no --compress-pos=no --demangle=no "$binary" "\$@"
WRAPPER
  chmod +x "$work/bin/terraform-provider-atrium"
  cat >"$work/config/cli.tfrc" <<CONFIG
provider_installation {
  dev_overrides {
    "atrium-hosting/atrium" = "$work/bin"
  }
  direct {}
}
CONFIG
  tenants() {
    cat <<HCL
terraform {
  required_providers {
    atrium = { source = "atrium-hosting/atrium" }
  }
}

provider "atrium" {}

resource "atrium_tenant" "bulk" {
  count        = 50
  name         = format("order-%04d", count.index)
  display_name = "$1 \${count.index}"
  tier         = "basic"
  manager = {
    email = "manager-\${count.index}@order.example"
    name  = "Manager \${count.index}"
  }
}
HCL
  }
  run() {
    (cd "$work/config" && TF_CLI_CONFIG_FILE="$work/config/cli.tfrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 \
      ATRIUM_REGISTRY_URL="sqlite://$work/registry.db" terraform "$@" >>"$work/terraform.log" 2>&1) ||
      { tail -30 "$work/terraform.log" >&2; echo "provider-dist: terraform $* failed" >&2; exit 1; }
  }
  tenants "Ordered customer" >"$work/config/main.tf"
  echo "provider-dist: running the tenant workload under callgrind (a few minutes)" >&2
  run apply -auto-approve -input=false
  run plan -input=false
  run plan -input=false -refresh=false
  tenants "Ordered client" >"$work/config/main.tf"
  run apply -auto-approve -input=false
  run state rm 'atrium_tenant.bulk[0]'
  run import -input=false 'atrium_tenant.bulk[0]' order-0000
  run destroy -auto-approve -input=false
  # Every function of the binary that ran (callgrind names the object of
  # each function with `ob=`), those run by more processes first.
  awk -v binary="$binary" '
    FNR == 1 { delete seen }
    /^ob=/ { ours = (substr($0, 4) == binary) }
    /^fn=/ {
      name = substr($0, 4)
      if (ours && name !~ /[ ()]/ && !(name in seen)) {
        seen[name] = 1
        processes[name]++
        if (!(name in first)) first[name] = ++order
      }
    }
    END { for (name in processes) printf "%d %d %s\n", processes[name], first[name], name }
  ' "$work"/profiles/callgrind.* | sort -k1,1nr -k2,2n | cut -d' ' -f3 >"$order_file.tmp"
  [ -s "$order_file.tmp" ] || { echo "provider-dist: callgrind recorded no function of $binary" >&2; exit 1; }
  mv "$order_file.tmp" "$order_file"
  echo "provider-dist: listed $(wc -l <"$order_file") functions in $order_file" >&2
}

case "${1:-build}" in
  build) build ;;
  order) order ;;
  *) echo "provider-dist: build (default) or order, not $1" >&2; exit 1 ;;
esac
