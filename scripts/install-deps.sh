#!/usr/bin/env bash
# Installs what building and testing Atrium needs on a fresh Debian bookworm
# machine (run as root). Safe to run again: it installs only what is missing.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
# Redmine's postinst runs bundler, and the bundler inside today's libruby fails
# there (`Could not find racc-…gem`, apt exits 100); pinning the version of
# Debian's ruby-bundler makes it work. It stays set for every apt-get and dpkg
# run here because any ruby package install re-runs redmine's postinst.
export BUNDLER_VERSION=2.3.15

installed() { # installed PACKAGE: true when dpkg has it fully installed
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

# An earlier install that failed in redmine's postinst leaves the package
# unpacked or half-configured, and apt refuses to install anything else until
# it is repaired, so this comes before anything is installed.
case "$(dpkg-query -W -f='${Status}' redmine redmine-sqlite 2>/dev/null || true)" in
  *unpacked* | *half-configured* | *half-installed* | *triggers-awaited* | *triggers-pending*)
    echo "install-deps: repairing a half-installed redmine"
    log=$(mktemp)
    dpkg --configure -a >"$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; exit 1; }
    rm -f "$log"
    ;;
esac

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
# The domain services: Caddy (reverse proxy with automatic TLS), Pebble (a test
# ACME CA), PowerDNS (authoritative DNS with a REST API, its zones in the test
# PostgreSQL),
# dig to look at what PowerDNS answers, and an SMTP sink for notification mail.
need caddy caddy
need pebble pebble
need pdns_server pdns-server
installed pdns-backend-pgsql || missing+=(pdns-backend-pgsql)
need dig dnsutils
# Debian's aiosmtpd imports only under /usr/bin/python3, not under whichever
# python3 comes first on PATH, so dpkg is asked rather than python.
installed python3-aiosmtpd || missing+=(python3-aiosmtpd)
need sqlite3 sqlite3
# zip packs the provider into the local filesystem mirror that `terraform init` reads.
need zip zip
# Redmine, the support tracker, served by thin and keeping its data in SQLite.
installed redmine || missing+=(redmine)
installed redmine-sqlite || missing+=(redmine-sqlite)
need thin thin
need terraform __terraform__

if printf '%s\n' "${missing[@]}" | grep -qx __terraform__; then
  echo "install-deps: terraform is not installed; put Terraform 1.11 on PATH or set TERRAFORM_BIN" >&2
  exit 1
fi

if printf '%s\n' "${missing[@]}" | grep -qx redmine; then
  # Pre-answer redmine's questions: one instance called "default" whose
  # database dbconfig-common creates in SQLite, with English default data.
  debconf-set-selections <<'SELECTIONS'
redmine redmine/current-instances string default
redmine redmine/instances/default/dbconfig-install boolean true
redmine redmine/instances/default/database-type select sqlite3
redmine redmine/instances/default/default-language select en
SELECTIONS
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "install-deps: ok"
