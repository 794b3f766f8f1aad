#!/usr/bin/env bash
# Builds the `hello` test app's images from busybox-static and imports them
# into the Docker engine at $1 (no image registry is needed):
#   atrium/hello:1.0, atrium/hello:1.1  serve their version and a /health page
#   atrium/hello:2.0                    has no /health page: never turns healthy
# Skips images that already exist at the current build number.
set -euo pipefail
host=${1:?usage: hello-image.sh DOCKER_HOST}
busybox=$(command -v busybox)

# Bump when the image contents change, so existing engines rebuild them.
build_number=2

build() { # build VERSION HEALTHY
  local version=$1 healthy=$2 root current
  current=$(docker -H "$host" image inspect --format '{{index .Config.Labels "atrium.hello-build"}}' "atrium/hello:$version" 2>/dev/null || true)
  if [ "$current" = "$build_number" ]; then return; fi
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/www/data" "$root/etc"
  cp "$busybox" "$root/bin/busybox"
  for applet in sh httpd wget cat echo ls mkdir sleep timeout nslookup; do ln -s busybox "$root/bin/$applet"; done
  printf '<h1>Hello from Atrium</h1>\n<p>hello %s</p>\n' "$version" >"$root/www/index.html"
  [ "$healthy" = yes ] && echo ok >"$root/www/health"
  tar -C "$root" -c . | docker -H "$host" import \
    -c 'CMD ["/bin/httpd","-f","-p","80","-h","/www"]' -c 'EXPOSE 80' -c "LABEL atrium.hello-build=$build_number" \
    - "atrium/hello:$version" >/dev/null
  rm -rf "$root"
}

build 1.0 yes
build 1.1 yes
build 2.0 no
