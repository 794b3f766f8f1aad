#!/usr/bin/env bash
# Builds the business-app images from Debian packages into the Docker engine at
# DOCKER_HOST, or loads them from a cache on this machine (no image registry is
# reachable here):
#   scripts/app-images.sh DOCKER_HOST IMAGE...
# IMAGE is one of (the Debian suite that provides it in brackets)
#   postgres:15 mariadb:10.11 redmine:5.0 mediawiki:1.39 tryton:6.0   (bookworm)
#   postgres:17 mariadb:11.8  redmine:6.0 mediawiki:1.43 tryton:7.0   (trixie)
# or `all`. Each becomes atrium/NAME:VERSION, built from scripts/images/NAME/
# on atrium/debian:SUITE (scripts/images/debian/, mmdebstrap + docker import).
# The images' run contracts are in the header of each Dockerfile.
#
# Every app image carries a key in its `atrium.image-key` label:
#   RECIPE-PACKAGES
# RECIPE is a hash of its recipe files (scripts/images/NAME/ and the base
# recipe scripts/images/debian/), the suite and the version; PACKAGES is a hash
# of the exact package versions its build would install: the `Inst` lines of
# `apt-get -s dist-upgrade` and `apt-get -s install <its packages file>`, asked
# of apt after `apt-get update` in a chroot of the unpacked base root
# filesystem on this machine (about 6 s; the engine needs no network for it).
# An engine that has the image at the current key is left alone ("present");
# otherwise it is loaded from the cache ("loaded", `zstd -dc | docker load`) or
# built there and saved into the cache ("built", `docker save | zstd`). When
# the mirror cannot be asked, the newest cached image of the same RECIPE is
# used, with a warning.
#
# The cache, ${ATRIUM_IMAGE_CACHE:-/var/cache/atrium/images}, holds
#   NAME-VERSION-RECIPE-PACKAGES.tar.zst   the saved images (the current key only)
#   NAME-VERSION.packages, .build.log      what the last build installed, its log
#   debian-SUITE-KEY.rootfs.tar.zst        the base root filesystem (mmdebstrap);
#                                          KEY hashes the base recipe, the suite and
#                                          this machine's mirror and proxy lines
#   rootfs/SUITE-KEY/                      the same, unpacked, with apt's lists
# atrium/debian:SUITE is imported from the rootfs tarball only when an image is
# built.
#
# Needs root (mmdebstrap --mode=root, chroot, the cache directory). Loading
# needs nothing from the engine but its API; building needs an engine that
# reaches the Debian mirror (`docker build --network host`). Installs
# mmdebstrap and zstd with apt-get when missing. Prints one line per image (built, loaded or present; size; seconds);
# exits non-zero with a message on the first failure. Every network step has a
# timeout.
set -euo pipefail

usage() {
  echo "usage: app-images.sh DOCKER_HOST IMAGE... (IMAGE: NAME:VERSION, tests or all)" >&2
  exit 2
}
[ $# -ge 2 ] || usage
host=$1
shift

here=$(cd "$(dirname "$0")" && pwd)
recipes=$here/images
cache=${ATRIUM_IMAGE_CACHE:-/var/cache/atrium/images}
all_images=(postgres:15 redmine:5.0 mariadb:10.11 mediawiki:1.39 tryton:6.0
  postgres:17 redmine:6.0 mariadb:11.8 mediawiki:1.43 tryton:7.0 backup-store:1.60)
# The images the tests deploy (each app in both versions, for the upgrades;
# the databases stay on their bookworm version across them; postgres:17 runs
# the backups of a test entry as the upstream entries' `backup.image`).
test_images=(postgres:15 mariadb:10.11 redmine:5.0 mediawiki:1.39 tryton:6.0
  redmine:6.0 mediawiki:1.43 tryton:7.0 postgres:17)

fail() {
  echo "app-images: $*" >&2
  exit 1
}

suite_of() { # suite_of NAME:VERSION
  case "$1" in
    postgres:15 | mariadb:10.11 | redmine:5.0 | mediawiki:1.39 | tryton:6.0 | backup-store:1.60) echo bookworm ;;
    postgres:17 | mariadb:11.8 | redmine:6.0 | mediawiki:1.43 | tryton:7.0) echo trixie ;;
    *) return 1 ;;
  esac
}

# The requested images, checked before anything is done, without duplicates.
expanded=()
for arg in "$@"; do
  case "$arg" in
    all) expanded+=("${all_images[@]}") ;;
    tests) expanded+=("${test_images[@]}") ;;
    *) expanded+=("$arg") ;;
  esac
done
requested=()
for image in "${expanded[@]}"; do
  suite_of "$image" >/dev/null || fail "unknown image '$image' (known: ${all_images[*]} tests all)"
  case " ${requested[*]-} " in *" $image "*) ;; *) requested+=("$image") ;; esac
done

[ "$(id -u)" = 0 ] || fail "must run as root (mmdebstrap --mode=root, $cache)"
export DEBIAN_FRONTEND=noninteractive
missing=()
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
if [ ${#missing[@]} -gt 0 ]; then
  echo "app-images: installing ${missing[*]}"
  if ! timeout 300 apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
    timeout 300 apt-get update -q >/dev/null || fail "apt-get update failed"
    timeout 300 apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
      fail "apt-get install ${missing[*]} failed"
  fi
fi

docker_() { docker -H "$host" "$@"; }
timeout 20 docker -H "$host" version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
  fail "no Docker engine answers at $host"

mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One run at a time per cache: builds share the machine's two cores and the
# cache files are replaced in place.
exec 9>"$cache/.lock"
flock -w 7200 9 || fail "another app-images.sh run holds $cache/.lock"

log=$work/log
show_log() { # show_log WHAT: the end of the failed step's output, then fail
  tail -n 40 "$log" >&2 || true
  fail "$1"
}

# hash_files DIR...: a short hash of the files under each DIR (path, mode, content).
hash_files() {
  local dir
  for dir in "$@"; do
    (cd "$dir" && find . -type f -printf '%m %p\n' | LC_ALL=C sort &&
      find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  done | sha256sum | cut -c1-16
}

# mirror_lines SUITE: this machine's Debian mirror entries (one-line and deb822
# sources whose suite is this machine's codename or CODENAME-*), rewritten for SUITE.
mirror_lines() {
  local suite=$1 codename file
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || fail "no VERSION_CODENAME in /etc/os-release"
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$file" ] || continue
    awk -v c="$codename" -v s="$suite" '
      $1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        uri = $i; suite = $(i + 1)
        if (suite != c && index(suite, c "-") != 1) next
        line = "deb " uri " " s substr(suite, length(c) + 1)
        for (j = i + 2; j <= NF; j++) line = line " " $j
        print line
      }' "$file"
  done
  for file in /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] || continue
    awk -v c="$codename" -v s="$suite" '
      BEGIN { RS = ""; FS = "\n" }
      {
        types = uris = suites = comps = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^#/ || $i !~ /:/) continue
          key = tolower(substr($i, 1, index($i, ":") - 1)); value = substr($i, index($i, ":") + 1)
          gsub(/^[ \t]+|[ \t]+$/, "", value)
          if (key == "types") types = value; else if (key == "uris") uris = value
          else if (key == "suites") suites = value; else if (key == "components") comps = value
          else if (key == "enabled") enabled = tolower(value)
        }
        if (enabled == "no" || (" " types " ") !~ / deb /) next
        n = split(uris, u, /[ \t]+/); m = split(suites, x, /[ \t]+/)
        for (a = 1; a <= n; a++) for (b = 1; b <= m; b++) {
          if (x[b] != c && index(x[b], c "-") != 1) continue
          print "deb " u[a] " " s substr(x[b], length(c) + 1) " " comps
        }
      }' "$file"
  done
}

size_of() { # size_of IMAGE: its size in MB
  docker_ image inspect --format '{{.Size}}' "$1" | awk '{ printf "%d", $1 / 1000000 }'
}
label_of() { # label_of IMAGE: its atrium.image-key, empty when absent
  docker_ image inspect --format '{{index .Config.Labels "atrium.image-key"}}' "$1" 2>/dev/null || true
}
report() { # report IMAGE HOW START
  printf '%-26s %-8s %5s MB %4ss\n' "$1" "$2" "$(size_of "$1")" $((SECONDS - $3))
}

# load_cached IMAGE KEY FILE: loads FILE and checks it holds IMAGE at KEY.
load_cached() {
  timeout 1200 bash -o pipefail -c 'zstd -q -dc "$1" | docker -H "$2" load' _ "$3" "$host" >"$log" 2>&1 ||
    show_log "loading $1 from $3 failed"
  [ "$(label_of "$1")" = "$2" ] || fail "$3 does not hold $1 at key $2; remove it"
}

# save_cached IMAGE PREFIX KEY: saves IMAGE into $cache/PREFIX-KEY.tar.zst and
# removes the cache's older files of IMAGE (other keys).
save_cached() {
  local file=$cache/$2-$3.tar.zst
  timeout 1200 bash -o pipefail -c 'docker -H "$1" save "$2" | zstd -q -T0 -6 -o "$3"' _ "$host" "$1" "$file.tmp" >"$log" 2>&1 ||
    { rm -f "$file.tmp"; show_log "saving $1 into $file failed"; }
  mv "$file.tmp" "$file"
  find "$cache" -maxdepth 1 -name "$2-*.tar.zst" ! -name "$2-$3.tar.zst" -delete
}

# remove_if_dangling ID: removes an image that a rebuild left without a tag.
remove_if_dangling() {
  [ -n "$1" ] || return 0
  if [ "$(docker_ image inspect --format '{{len .RepoTags}}' "$1" 2>/dev/null)" = 0 ]; then
    docker_ rmi "$1" >/dev/null 2>&1 || true
  fi
}

# ensure_rootfs SUITE: the base root filesystem in the cache, as the tarball
# that atrium/debian:SUITE is imported from ($cache/debian-SUITE-KEY.rootfs.tar.zst)
# and unpacked ($cache/rootfs/SUITE-KEY/, where apt answers what a build would
# install). Sets base_key[SUITE].
declare -A base_key=()
ensure_rootfs() {
  local suite=$1 key tarball root start=$SECONDS
  [ -z "${base_key[$suite]-}" ] || return 0
  mirror_lines "$suite" >"$work/sources-$suite.list"
  [ -s "$work/sources-$suite.list" ] || fail "no Debian mirror entries found in /etc/apt/sources.list{,.d}"
  apt-config dump | grep -Ei '^Acquire::(http|https|ftp)::Proxy' >"$work/proxy.conf" || true
  key=$( (hash_files "$recipes/debian" && echo "$suite" && cat "$work/sources-$suite.list" "$work/proxy.conf") |
    sha256sum | cut -c1-16)
  tarball=$cache/debian-$suite-$key.rootfs.tar.zst
  root=$cache/rootfs/$suite-$key
  if [ ! -f "$tarball" ]; then
    "$recipes/debian/build-base.sh" "$suite" "$work/sources-$suite.list" "$work/proxy.conf" "$work/base.tar" >"$log" 2>&1 ||
      show_log "mmdebstrap of $suite failed"
    zstd -q -T0 -6 --rm "$work/base.tar" -o "$tarball.tmp" || fail "compressing the $suite root filesystem failed"
    mv "$tarball.tmp" "$tarball"
    find "$cache" -maxdepth 1 -name "debian-$suite-*.rootfs.tar.zst" ! -name "${tarball##*/}" -delete
    printf '%-26s %-8s %5s MB %4ss\n' "debian:$suite rootfs" built $(($(stat -c %s "$tarball") / 1000000)) $((SECONDS - start))
  fi
  if [ ! -d "$root" ]; then
    rm -rf "$root.tmp"
    mkdir -p "$root.tmp"
    zstd -q -dc "$tarball" | tar -C "$root.tmp" -x || fail "unpacking $tarball failed"
    mv "$root.tmp" "$root"
    find "$cache/rootfs" -mindepth 1 -maxdepth 1 -name "$suite-*" ! -name "$suite-$key" -exec rm -rf {} +
  fi
  base_key[$suite]=$key
}

# ensure_base_image SUITE: atrium/debian:SUITE in the engine (for a build),
# imported from the cached root filesystem when missing.
declare -A base_image_done=()
ensure_base_image() {
  local suite=$1 image="atrium/debian:$1" key=${base_key[$1]} start=$SECONDS old
  [ -z "${base_image_done[$suite]-}" ] || return 0
  base_image_done[$suite]=1
  if [ "$(label_of "$image")" = "$key" ]; then
    report "$image" present "$start"
    return 0
  fi
  old=$(docker_ image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
  timeout 600 bash -o pipefail -c 'zstd -q -dc "$1" | docker -H "$2" import -c "CMD [\"/bin/bash\"]" \
      -c "ENV LANG=C.UTF-8" -c "LABEL atrium.image-key=$3" - "$4"' \
    _ "$cache/debian-$suite-$key.rootfs.tar.zst" "$host" "$key" "$image" >"$log" 2>&1 ||
    show_log "docker import of $image failed"
  remove_if_dangling "$old"
  report "$image" loaded "$start"
}

# package_versions SUITE PACKAGES_FILE: the `Inst` lines of what a build would
# install, asked of apt in the unpacked base (chroot on this machine, so the
# engine needs no network for this). Fails when the mirror cannot be asked.
declare -A lists_updated=()
package_versions() {
  local root=$cache/rootfs/$1-${base_key[$1]}
  in_root() { timeout 300 chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
  [ "${lists_updated[$1]-}" != failed ] || return 1
  if [ -z "${lists_updated[$1]-}" ]; then # once per suite and run
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    lists_updated[$1]=failed
    in_root apt-get update -q --error-on=any >"$log" 2>&1 || return 1
    in_root /bin/sh -ec 'apt-get -s -y dist-upgrade | { grep "^Inst " || true; }' >"$work/upgrades-$1" 2>"$log" || return 1
    lists_updated[$1]=ok
  fi
  cp "$2" "$root/tmp/packages"
  in_root /bin/sh -ec 'apt-get -s -y install $(sed "s/#.*//" /tmp/packages) | grep "^Inst "' >"$work/versions" 2>"$log" ||
    return 1
  cat "$work/upgrades-$1" >>"$work/versions"
}

# ensure_app NAME:VERSION
ensure_app() {
  local name=${1%%:*} version=${1#*:} suite image="atrium/$1" start recipe key file old current
  suite=$(suite_of "$1")
  [ -f "$recipes/$name/Dockerfile" ] || fail "no recipe $recipes/$name/Dockerfile"
  ensure_rootfs "$suite"
  start=$SECONDS
  recipe=$( (hash_files "$recipes/$name" "$recipes/debian" && echo "$suite $version") | sha256sum | cut -c1-16)
  current=$(label_of "$image")
  if ! package_versions "$suite" "$recipes/$name/packages"; then
    # Without the mirror, the newest image of the same recipe will do.
    echo "app-images: warning: apt could not tell the package versions for $image (mirror unreachable?):" >&2
    tail -n 3 "$log" >&2
    if [ "${current%-*}" = "$recipe" ]; then
      report "$image" present "$start"
      return 0
    fi
    file=$(ls -t "$cache/$name-$version-$recipe"-*.tar.zst 2>/dev/null | head -n 1 || true)
    [ -n "$file" ] || fail "cannot build $image without the mirror, and the cache holds none of its recipe"
    key=${file##*/"$name-$version"-}
    key=${key%.tar.zst}
    load_cached "$image" "$key" "$file"
    report "$image" loaded "$start"
    return 0
  fi
  key=$recipe-$(LC_ALL=C sort -u "$work/versions" | sha256sum | cut -c1-16)
  file=$cache/$name-$version-$key.tar.zst
  if [ "$current" = "$key" ]; then
    report "$image" present "$start"
  elif [ -f "$file" ]; then
    load_cached "$image" "$key" "$file"
    report "$image" loaded "$start"
  else
    ensure_base_image "$suite"
    start=$SECONDS
    old=$(docker_ image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    # The classic builder (DOCKER_BUILDKIT=0): no buildx plugin is needed, and
    # `--network host` works on engines without a bridge. No layer cache: the
    # key says the packages changed even when the Dockerfile did not.
    DOCKER_BUILDKIT=0 timeout 3600 docker -H "$host" build --network host --no-cache --force-rm \
      --build-arg "SUITE=$suite" --build-arg "VERSION=$version" --label "atrium.image-key=$key" \
      -t "$image" "$recipes/$name" >"$log" 2>&1 || show_log "docker build of $image failed"
    cp "$log" "$cache/$name-$version.build.log"
    cp "$work/versions" "$cache/$name-$version.packages"
    remove_if_dangling "$old"
    save_cached "$image" "$name-$version" "$key"
    report "$image" built "$start"
  fi
}

for image in "${requested[@]}"; do
  ensure_app "$image"
done
