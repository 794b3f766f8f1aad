#!/usr/bin/env bash
# Starts and stops the local services Atrium's tests and quickstart need, in a
# state directory, and writes an env file that tests read.
#
#   scripts/services.sh start [STATE_DIR]   # default: .services in the repository
#   scripts/services.sh stop  [STATE_DIR]
#   scripts/services.sh status [STATE_DIR]
#
# The env file ($STATE_DIR/env) is what tests load (through ATRIUM_SERVICES_ENV
# or the default path). Services today: PostgreSQL, and two Docker engines (two
# hosting targets) with the `hello` test app's images (built from busybox, no
# registry needed).
# Every server binds to 127.0.0.1 on a free high port or a unix socket.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
command=${1:-}
state=${2:-$repo/.services}

pg_bin() {
  if command -v "$1" >/dev/null 2>&1; then command -v "$1"; else echo "/usr/lib/postgresql/15/bin/$1"; fi
}

free_port() { # free_port PREFERRED
  local port=$1
  while (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

# PostgreSQL refuses to run as root and needs every parent directory of its
# data to be traversable by the postgres user, so its files live under /tmp,
# keyed by the state directory, and the state directory records where.
postgres_dir() {
  echo "${TMPDIR:-/tmp}/atrium-postgres-$(printf '%s' "$state" | md5sum | cut -c1-12)"
}

start_postgres() {
  local dir
  dir=$(postgres_dir)
  if [ -f "$dir/data/postmaster.pid" ] && kill -0 "$(head -1 "$dir/data/postmaster.pid")" 2>/dev/null; then
    echo "ATRIUM_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$(cat "$dir/port")/postgres" >>"$state/env.new"
    echo "services: postgres already running"
    return
  fi
  rm -rf "$dir"
  install -d -o postgres -g postgres "$dir"
  runuser -u postgres -- "$(pg_bin initdb)" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1
  local port
  port=$(free_port 55432)
  runuser -u postgres -- "$(pg_bin pg_ctl)" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
  echo "$port" >"$dir/port"
  echo "ATRIUM_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres" >>"$state/env.new"
  echo "services: postgres on 127.0.0.1:$port"
}

stop_postgres() {
  local dir
  dir=$(postgres_dir)
  if [ -f "$dir/data/postmaster.pid" ]; then
    runuser -u postgres -- "$(pg_bin pg_ctl)" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

# Docker's sockets live under /tmp: unix socket paths are limited to 108 bytes.
docker_dir() { # docker_dir NAME
  echo "${TMPDIR:-/tmp}/atrium-$1-$(printf '%s' "$state" | md5sum | cut -c1-12)"
}

# A throwaway CA, a server certificate for 127.0.0.1 and a client
# certificate (ca.pem, cert.pem, key.pem: Docker's DOCKER_CERT_PATH layout).
make_docker_certificates() { # make_docker_certificates DIR
  local certs=$1
  mkdir -p "$certs"
  (
    cd "$certs"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
      -subj /CN=atrium-test-docker-ca -keyout ca-key.pem -out ca.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 \
      -keyout server-key.pem -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
      -extfile server.ext -out server.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=atrium-client \
      -keyout key.pem -out client.csr 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
      -extfile client.ext -out cert.pem 2>/dev/null
  )
}

# start_docker NAME ENV_VARIABLE ADDRESS_POOL [tls]: one Docker engine. Two
# engines stand for two hosting targets; their address pools differ so that
# their tenant networks never overlap on this one host. With `tls`, the engine
# also listens on a loopback TCP port that requires client certificates.
start_docker() {
  local name=$1 variable=$2 pool=$3 tls=${4:-} dir tls_flags=()
  dir=$(docker_dir "$name")
  if [ -f "$dir/dockerd.pid" ] && kill -0 "$(cat "$dir/dockerd.pid")" 2>/dev/null; then
    echo "services: $name already running"
  else
    mkdir -p "$dir"
    if [ "$tls" = tls ]; then
      make_docker_certificates "$dir/certs"
      free_port 52376 >"$dir/tls-port"
      tls_flags=(-H "tcp://127.0.0.1:$(cat "$dir/tls-port")" --tlsverify --tlscacert "$dir/certs/ca.pem"
        --tlscert "$dir/certs/server.pem" --tlskey "$dir/certs/server-key.pem")
    fi
    # No iptables, no default bridge: tenant networks are user bridges, and
    # published ports on 127.0.0.1 work through docker-proxy.
    dockerd --data-root "$dir/data" --exec-root "$dir/exec" -H "unix://$dir/docker.sock" \
      --pidfile "$dir/dockerd.pid" --storage-driver overlay2 --iptables=false --ip-masq=false \
      --ip-forward=false --bridge=none --default-address-pool "base=$pool,size=24" "${tls_flags[@]}" \
      >"$dir/dockerd.log" 2>&1 &
    for _ in $(seq 1 100); do
      docker -H "unix://$dir/docker.sock" version >/dev/null 2>&1 && break
      sleep 0.1
    done
    docker -H "unix://$dir/docker.sock" version >/dev/null || { cat "$dir/dockerd.log" >&2; exit 1; }
  fi
  "$repo/scripts/hello-image.sh" "unix://$dir/docker.sock"
  echo "$variable=unix://$dir/docker.sock" >>"$state/env.new"
  echo "services: $name on unix://$dir/docker.sock"
  if [ "$tls" = tls ]; then
    echo "${variable}_TLS=tcp://127.0.0.1:$(cat "$dir/tls-port")" >>"$state/env.new"
    echo "${variable}_CERT_PATH=$dir/certs" >>"$state/env.new"
    echo "services: $name also on tcp://127.0.0.1:$(cat "$dir/tls-port") (TLS, client certificates in $dir/certs)"
  fi
}

stop_docker() { # stop_docker NAME
  local dir pid
  dir=$(docker_dir "$1")
  [ -f "$dir/dockerd.pid" ] || return 0
  pid=$(cat "$dir/dockerd.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    [ -e "/proc/$pid" ] || break
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
    sleep 0.1
  done
  umount "$dir"/data/overlay2/*/merged 2>/dev/null || true
  rm -rf "$dir" 2>/dev/null || true
}

case "$command" in
  start)
    mkdir -p "$state"
    : >"$state/env.new"
    start_postgres
    start_docker docker ATRIUM_TEST_DOCKER_HOST 10.200.0.0/16
    start_docker docker2 ATRIUM_TEST_DOCKER_HOST_2 10.210.0.0/16 tls
    if [ -s "$state/env.new" ]; then mv "$state/env.new" "$state/env"; else rm -f "$state/env.new"; fi
    echo "services: env file $state/env"
    ;;
  stop)
    stop_postgres
    stop_docker docker
    stop_docker docker2
    rm -f "$state/env"
    echo "services: stopped"
    ;;
  status)
    if [ -f "$state/env" ]; then cat "$state/env"; else echo "services: not started (no $state/env)"; exit 1; fi
    ;;
  *)
    echo "usage: $0 start|stop|status [STATE_DIR]" >&2
    exit 2
    ;;
esac
