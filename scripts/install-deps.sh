#!/usr/bin/env bash
# Installs what building and testing Atrium needs on a fresh Debian bookworm
# machine (run as root). Safe to run again: it installs only what is missing.
set -euo pipefail

missing=()
need() { # need COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}
need protoc protobuf-compiler
[ -f /usr/include/google/protobuf/timestamp.proto ] || missing+=(libprotobuf-dev)
# PostgreSQL 15 server binaries (the registry's second backend, tested for real).
if ! command -v initdb >/dev/null 2>&1 && [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  missing+=(postgresql-15)
fi
# The Docker engine that app instances run on, and busybox for the hello test app.
need dockerd docker.io
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
need terraform __terraform__

if printf '%s\n' "${missing[@]}" | grep -qx __terraform__; then
  echo "install-deps: terraform is not installed; put Terraform 1.11 on PATH or set TERRAFORM_BIN" >&2
  exit 1
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "install-deps: ok"
