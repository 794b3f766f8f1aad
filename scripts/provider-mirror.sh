#!/usr/bin/env bash
# Builds terraform-provider-atrium and installs it into a local filesystem
# mirror laid out like a registry release, so that configurations run
# `terraform init`, get a .terraform.lock.hcl and pin a version, as with a
# published provider:
#
#   MIRROR/registry.terraform.io/atrium-hosting/atrium/
#     terraform-provider-atrium_VERSION_linux_amd64.zip   (the packed layout Terraform reads)
#     terraform-provider-atrium_VERSION_SHA256SUMS        (as a registry release publishes)
#
#   scripts/provider-mirror.sh [release|debug|binary=PATH] [MIRROR]   # default: release, target/provider-mirror
#
# `binary=PATH` packs a binary built already (the acceptance tests pack the
# one they test, so the mirror is never older than the build).
# It prints the CLI configuration block that points Terraform at the mirror.
# Tests use the debug build (built anyway for them); the quickstart, the
# release build.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH="$HOME/.cargo/bin:$PATH"
profile=${1:-release}
mirror=${2:-$repo/target/provider-mirror}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
[ -n "$version" ] || { echo "provider-mirror: no version in Cargo.toml's [workspace.package]" >&2; exit 1; }
case "$(uname -m)" in
  x86_64) platform=linux_amd64 ;;
  aarch64) platform=linux_arm64 ;;
  *) echo "provider-mirror: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac

case "$profile" in
  release) binary=$(scripts/provider-dist.sh) ;;
  debug) cargo build --locked -p atrium-provider --bin terraform-provider-atrium >&2; binary=target/debug/terraform-provider-atrium ;;
  binary=*) binary=${profile#binary=} ;;
  *) echo "provider-mirror: the profile is release, debug or binary=PATH, not $profile" >&2; exit 1 ;;
esac

directory=$mirror/registry.terraform.io/atrium-hosting/atrium
archive=terraform-provider-atrium_${version}_${platform}.zip
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
install -m 0755 "$binary" "$staging/terraform-provider-atrium_v$version"
mkdir -p "$directory"
rm -f "$directory/$archive.tmp"
# Stored, not compressed: the archive is local, and packing stays fast.
(cd "$staging" && zip -q -X -0 "$directory/$archive.tmp" "terraform-provider-atrium_v$version")
mv -f "$directory/$archive.tmp" "$directory/$archive"
(cd "$directory" && sha256sum terraform-provider-atrium_"${version}"_*.zip >"terraform-provider-atrium_${version}_SHA256SUMS")
echo "provider-mirror: installed $binary ($version, $platform) in $mirror" >&2
cat <<CONFIG
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/atrium-hosting/atrium"]
  }
  direct {
    exclude = ["registry.terraform.io/atrium-hosting/atrium"]
  }
}
CONFIG
