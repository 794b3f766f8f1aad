#!/usr/bin/env bash
# Builds the root filesystem of atrium/debian:SUITE as a tarball for
# `docker import` (called by scripts/app-images.sh, which keys its cache on
# this directory's files):
#   build-base.sh SUITE SOURCES_LIST APT_PROXY_CONF OUT_TAR
# SOURCES_LIST holds the one-line `deb` entries of this machine's Debian mirror
# for SUITE; APT_PROXY_CONF holds this machine's apt proxy settings (may be
# empty). Both are copied into the image so app builds use the same mirror.
# A minbase system (essential packages and apt), with apt.conf, dpkg.cfg, a
# policy-rc.d that keeps package scripts from starting daemons, and
# /usr/local/sbin/atrium-install, which the app recipes install packages with.
set -euo pipefail
suite=${1:?usage: build-base.sh SUITE SOURCES_LIST APT_PROXY_CONF OUT_TAR}
sources=${2:?}
proxy=${3:?}
out=${4:?}
here=$(cd "$(dirname "$0")" && pwd)

# mmdebstrap puts a policy-rc.d of its own in place while it installs and
# removes it at the end; this one (the same "exit 101") stays instead.
# mmdebstrap copies each --aptopt and --dpkgopt file into the new system
# (/etc/apt/apt.conf.d/99mmdebstrap, /etc/dpkg/dpkg.cfg.d/99mmdebstrap).
aptopts=(--aptopt="$here/apt.conf")
[ -s "$proxy" ] && aptopts+=(--aptopt="$proxy")

timeout 900 mmdebstrap --variant=minbase --mode=root --format=tar --quiet \
  "${aptopts[@]}" --dpkgopt="$here/dpkg.cfg" \
  --skip=chroot/policy-rc.d \
  --setup-hook="install -D -m 0755 '$here/policy-rc.d' \"\$1/usr/sbin/policy-rc.d\"" \
  --customize-hook="install -m 0755 '$here/atrium-install' \"\$1/usr/local/sbin/atrium-install\"" \
  --customize-hook='rm -f "$1/etc/hostname" "$1/etc/resolv.conf"' \
  "$suite" "$out" "$sources"
