#!/usr/bin/env bash
# Starts and stops the local services Atrium's tests and quickstart need, in a
# state directory, and writes an env file that tests read.
#
#   scripts/services.sh start [STATE_DIR]   # default: .services in the repository
#   scripts/services.sh stop  [STATE_DIR]
#   scripts/services.sh status [STATE_DIR]
#
# The env file ($STATE_DIR/env) is what tests load (through ATRIUM_SERVICES_ENV
# or the default path). Services today: PostgreSQL, two Docker engines (two
# hosting targets) and a three-node Docker Swarm (a third target, its nodes in
# network namespaces of their own), all with the `hello` test app's images
# (built from busybox, no registry needed), PowerDNS (authoritative DNS with
# its REST API), Pebble (a test ACME CA), Caddy (the reverse proxy,
# certificates from Pebble by HTTP-01), an SMTP sink writing a Maildir, and
# Redmine (the support tracker).
# Every server binds to 127.0.0.1 on a free high port or a unix socket, except
# the swarm's nodes, which listen on their own addresses in a free 10.77.N.0/24.
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

# running PIDFILE: true when the process the file names is alive. A killed
# process stays a zombie until it is reaped (every ~2 s here), so its state in
# /proc/PID/stat counts too; the state follows the last ')' because a process
# name may contain spaces (thin calls itself "thin server (…)").
running() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1")
  [ -e "/proc/$pid" ] && [ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]
}

# stop_process PIDFILE: stops the process, waiting up to 15 s for it to exit
# before killing it outright.
stop_process() {
  [ -f "$1" ] || return 0
  local pid
  pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    running "$1" || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# wait_for NAME DIR SECONDS COMMAND...: polls COMMAND until it succeeds. When the
# service's process (DIR/pid) dies or SECONDS pass, its log (DIR/log) is
# printed and the script fails.
wait_for() {
  local name=$1 dir=$2 deadline=$((SECONDS + $3))
  shift 3
  until "$@" >/dev/null 2>&1; do
    if ! running "$dir/pid" || [ "$SECONDS" -ge "$deadline" ]; then
      echo "services: $name did not start; its log ($dir/log) follows" >&2
      cat "$dir/log" >&2
      exit 1
    fi
    sleep 0.1
  done
}

# reuse_running NAME DIR: when the service is already running, its variables
# (DIR/env) go into the env file again and the caller has nothing to do.
reuse_running() {
  running "$2/pid" || return 1
  cat "$2/env" >>"$state/env.new"
  echo "services: $1 already running"
}

# A real three-node Docker Swarm for the swarm target. Each node is a "host":
# a dockerd in a network namespace of its own (and a UTS namespace, so that
# every node has its own hostname in `docker node ls`), joined by a veth pair
# to one bridge in the root namespace, where tests, Atrium and Caddy run and
# reach every node by its address. The subnet is the first free 10.77.N.0/24
# when the swarm starts (recorded beside the nodes; the env file hands the
# addresses to tests), so swarms of several state directories fit on one
# machine; the namespace and interface names come from the state directory's
# hash so that stopping one state directory never touches another's. Linux limits interface names to 15 characters, hence the short
# names: atrswHASH8br for the bridge, atrswHASH8nN for node N's namespace and
# its veth's root end.
swarm_prefix() {
  echo "atrsw$(printf '%s' "$state" | md5sum | cut -c1-8)"
}

# swarm_subnet: the first three octets of this swarm's /24, "" before it has one.
swarm_subnet() {
  cat "$(docker_dir swarm)/subnet" 2>/dev/null || true
}

swarm_address() { # swarm_address NODE
  echo "$(swarm_subnet).1$1"
}

# Each node's own Docker API, unencrypted on its namespace's address: the
# engine reaches a node directly for exec and volumes (the node label
# atrium.engine says where).
swarm_engine() { # swarm_engine NODE
  echo "tcp://$(swarm_address "$1"):2375"
}

swarm_node_dir() { # swarm_node_dir NODE
  echo "$(docker_dir swarm)/node$1"
}

# swarm_failed WHAT: prints every node's daemon log and fails the script.
swarm_failed() {
  local n
  for n in 1 2 3; do
    echo "services: swarm node $n's log ($(swarm_node_dir "$n")/log) follows" >&2
    cat "$(swarm_node_dir "$n")/log" >&2 2>/dev/null || true
  done
  echo "services: swarm: $1 failed (node logs above)" >&2
  exit 1
}

# wait_for_swarm WHAT SECONDS COMMAND...: polls COMMAND until it succeeds, or
# fails the script with every node's log.
wait_for_swarm() {
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || swarm_failed "$what"
    sleep 0.1
  done
}

# swarm_running: true when all three daemons run and the manager sees three
# ready, active nodes.
swarm_running() {
  local n
  [ -n "$(swarm_subnet)" ] || return 1
  for n in 1 2 3; do running "$(swarm_node_dir "$n")/pid" || return 1; done
  [ "$(timeout 10 docker -H "$(swarm_engine 1)" node ls --format '{{.Status}} {{.Availability}}' 2>/dev/null |
    grep -c '^Ready Active$')" = 3 ]
}

# The bridge (.254 of the swarm's /24, in the root namespace) and three
# namespaces with their veth pairs. Root-namespace traffic to the nodes is
# plain L2 on the bridge, so neither forwarding nor firewall settings change.
# The nodes have no default route: what would go further (a registry, say)
# fails at once instead of waiting for a timeout. Their tasks reach the host
# at the bridge's address (an off-site backup store on a plain engine, say):
# each namespace forwards and masquerades its containers' networks behind the
# node's address, and nothing else. The /24 is the first of
# 10.77.0.0/24 to 10.77.63.0/24 that no interface holds; a machine-wide lock
# keeps two starts from taking the same one.
make_swarm_network() {
  local prefix n subnet=""
  prefix=$(swarm_prefix)
  mkdir -p "$(docker_dir swarm)"
  exec 9>"${TMPDIR:-/tmp}/atrium-swarm-subnets.lock"
  flock -w 30 9 || { echo "services: swarm: another start holds the subnet lock for over 30 s" >&2; exit 1; }
  for n in $(seq 0 63); do
    if [ -z "$(ip -4 -o addr show to "10.77.$n.0/24")" ]; then
      subnet=10.77.$n
      break
    fi
  done
  if [ -z "$subnet" ]; then
    echo "services: swarm: every subnet from 10.77.0.0/24 to 10.77.63.0/24 is in use; stop another swarm first" >&2
    exit 1
  fi
  echo "$subnet" >"$(docker_dir swarm)/subnet"
  ip link add "${prefix}br" type bridge
  ip addr add "$subnet.254/24" dev "${prefix}br"
  ip link set "${prefix}br" up
  exec 9>&-
  for n in 1 2 3; do
    ip netns add "${prefix}n$n"
    ip link add "${prefix}n$n" type veth peer name eth0 netns "${prefix}n$n"
    ip link set "${prefix}n$n" master "${prefix}br" up
    ip -n "${prefix}n$n" addr add "$(swarm_address "$n")/24" dev eth0
    ip -n "${prefix}n$n" link set lo up
    ip -n "${prefix}n$n" link set eth0 up
    ip netns exec "${prefix}n$n" sysctl -qw net.ipv4.ip_forward=1
    ip netns exec "${prefix}n$n" iptables -t nat -A POSTROUTING -s "10.24$n.0.0/16" -o eth0 -j MASQUERADE
  done
}

# launch_swarm_node NODE: starts the node's dockerd in its namespace. nsenter,
# not `ip netns exec`, which remounts /sys and hides the cgroup mounts dockerd
# needs. Each node has its own address pool (docker_gwbridge and local
# networks), apart from the plain engines' and the swarm's overlay pool.
# A task's image is pulled before every start unless it is named by digest,
# and there is no registry here: DOCKER_SERVICE_PREFER_OFFLINE_IMAGE makes the
# node use its local copy (loaded by load_swarm_images) without trying.
# $! is dockerd itself (nsenter, unshare and sh exec what follows); dockerd
# writes its own pidfile too, but only once it is up.
launch_swarm_node() {
  local n=$1 dir
  dir=$(swarm_node_dir "$n")
  mkdir -p "$dir"
  # shellcheck disable=SC2016 # $0 and $@ belong to the inner shell.
  DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 nsenter --net="/run/netns/$(swarm_prefix)n$n" unshare --uts \
    sh -c 'hostname "$0" && exec "$@"' "atrium-node$n" \
    dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
    -H "unix://$dir/docker.sock" -H "$(swarm_engine "$n")" --tls=false \
    --storage-driver overlay2 --iptables=false --ip-masq=false --ip-forward=false --bridge=none \
    --default-address-pool "base=10.24$n.0.0/16,size=24" >"$dir/log" 2>&1 &
  echo $! >"$dir/pid"
}

# Node 1 is the manager; the others join as workers. Every node gets the label
# atrium.engine with its own Docker API's address.
form_swarm() {
  local manager token n node_id
  manager=$(swarm_engine 1)
  timeout 30 docker -H "$manager" swarm init --advertise-addr "$(swarm_address 1)" \
    --listen-addr "$(swarm_address 1):2377" --default-addr-pool 10.230.0.0/16 >/dev/null || swarm_failed "swarm init"
  token=$(timeout 10 docker -H "$manager" swarm join-token -q worker) || swarm_failed "swarm join-token"
  for n in 2 3; do
    timeout 30 docker -H "$(swarm_engine "$n")" swarm join --token "$token" --advertise-addr "$(swarm_address "$n")" \
      --listen-addr "$(swarm_address "$n"):2377" "$(swarm_address 1):2377" >/dev/null || swarm_failed "node $n's swarm join"
  done
  for n in 1 2 3; do
    node_id=$(timeout 10 docker -H "$(swarm_engine "$n")" info --format '{{.Swarm.NodeID}}') || swarm_failed "node $n's docker info"
    timeout 10 docker -H "$manager" node update --label-add "atrium.engine=$(swarm_engine "$n")" "$node_id" >/dev/null ||
      swarm_failed "node $n's label"
  done
  wait_for_swarm "three ready nodes" 30 swarm_running
}

# load_swarm_images: the hello images on every node, in parallel (services are
# created with --no-resolve-image: each node uses its own copy).
load_swarm_images() {
  local n pids=()
  for n in 1 2 3; do
    "$repo/scripts/hello-image.sh" "$(swarm_engine "$n")" &
    pids+=($!)
  done
  for n in 1 2 3; do wait "${pids[n - 1]}" || swarm_failed "loading the hello images on node $n"; done
}

# check_swarm: a real service on an overlay network, one task per node
# published on the node's own address (mode=host and dnsrr: there is no IPVS
# here for VIPs or the routing mesh), answers on every node; then it goes.
check_swarm() {
  local manager n port=18080
  manager=$(swarm_engine 1)
  timeout 10 docker -H "$manager" network create --driver overlay --attachable atrium-swarm-check >/dev/null ||
    swarm_failed "creating the check network"
  timeout 10 docker -H "$manager" service create --detach --quiet --name atrium-swarm-check --mode global \
    --no-resolve-image --endpoint-mode dnsrr --network atrium-swarm-check --init --stop-grace-period 1s \
    --publish "mode=host,target=80,published=$port" atrium/hello:1.1 >/dev/null || swarm_failed "creating the check service"
  for n in 1 2 3; do
    wait_for_swarm "the check service on node $n" 30 curl -fsS "http://$(swarm_address "$n"):$port/"
  done
  timeout 10 docker -H "$manager" service rm atrium-swarm-check >/dev/null || swarm_failed "removing the check service"
  # The network stays in use until the workers have removed their tasks.
  wait_for_swarm "removing the check network" 30 timeout 10 docker -H "$manager" network rm atrium-swarm-check
}

start_swarm() {
  local started=$SECONDS n images
  if swarm_running; then
    load_swarm_images
    echo "services: swarm already running"
  else
    # Half a swarm (a dead daemon, a namespace left over) is not repaired:
    # it goes, and a new one starts.
    stop_swarm
    make_swarm_network
    for n in 1 2 3; do launch_swarm_node "$n"; done
    for n in 1 2 3; do
      wait_for "swarm node $n" "$(swarm_node_dir "$n")" 20 docker -H "unix://$(swarm_node_dir "$n")/docker.sock" version
    done
    # The images do not depend on the swarm: they load while it forms.
    load_swarm_images &
    images=$!
    form_swarm
    wait "$images" || exit 1
    check_swarm
    echo "services: swarm started in $((SECONDS - started)) s"
  fi
  {
    echo "ATRIUM_TEST_SWARM_HOST=$(swarm_engine 1)"
    echo "ATRIUM_TEST_SWARM_NODES=$(swarm_engine 1),$(swarm_engine 2),$(swarm_engine 3)"
    echo "ATRIUM_TEST_SWARM_ADDRESSES=$(swarm_address 1),$(swarm_address 2),$(swarm_address 3)"
    echo "ATRIUM_TEST_SWARM_GATEWAY=$(swarm_subnet).254"
  } >>"$state/env.new"
  echo "services: swarm of 3 nodes, manager $(swarm_engine 1), workers $(swarm_engine 2) and $(swarm_engine 3)"
}

# stop_swarm_node NODE: stops the node's dockerd, and its containerd too when
# dockerd had to be killed outright (a dockerd that exits normally stops its
# containerd itself). A dockerd shutting down gives every swarm task its full
# stop grace period (10 s by default, whatever --shutdown-timeout says), so
# the node's containers are killed first: test containers hold nothing worth
# a clean stop. At the end it waits (up to 5 s) until the init process has
# reaped the dead dockerd, so that nothing of the node is left in `ps`.
stop_swarm_node() {
  local dir pid
  dir=$(swarm_node_dir "$1")
  [ -f "$dir/pid" ] || return 0
  pid=$(cat "$dir/pid")
  if running "$dir/pid"; then
    timeout 10 docker -H "unix://$dir/docker.sock" ps -q 2>/dev/null |
      xargs -r timeout 10 docker -H "unix://$dir/docker.sock" kill >/dev/null 2>&1 || true
  fi
  stop_process "$dir/pid"
  stop_process "$dir/exec/containerd/containerd.pid"
  stop_swarm_containers "$dir"
  for _ in $(seq 1 50); do
    [ -e "/proc/$pid" ] || return 0
    sleep 0.1
  done
}

# stop_swarm_containers NODE_DIR: a dockerd killed outright leaves its
# containers running under their shims. A shim is known by the node's own
# containerd socket on its command line; its children (the container's init,
# whose death ends the container) go first, then the shim.
stop_swarm_containers() {
  local socket=$1/exec/containerd/containerd.sock cmdline shim
  while read -r cmdline; do
    shim=${cmdline#/proc/}
    shim=${shim%/cmdline}
    # grep's own command line holds the socket too.
    [ "$(cat "/proc/$shim/comm" 2>/dev/null)" = containerd-shim ] || continue
    pgrep -P "$shim" | xargs -r kill -KILL 2>/dev/null || true
    kill -KILL "$shim" 2>/dev/null || true
  done < <(grep -lsF -- "$socket" /proc/[0-9]*/cmdline)
}

# stop_swarm: daemons, then whatever they left mounted under their directory
# (overlay layers, network namespace files; deepest first), then the
# directory, the namespaces, the veth pairs and the bridge. Safe when nothing
# or only part of it is there.
stop_swarm() {
  local dir prefix n mount_point stopping=()
  dir=$(docker_dir swarm)
  prefix=$(swarm_prefix)
  # The nodes stop in parallel; only their PIDs are waited for, since the
  # script may have other children (Redmine's thin) that keep running.
  for n in 1 2 3; do
    stop_swarm_node "$n" &
    stopping+=($!)
  done
  wait "${stopping[@]}"
  for _ in 1 2 3; do
    awk -v dir="$dir/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r | while read -r mount_point; do
      umount "$mount_point" 2>/dev/null || umount -l "$mount_point" 2>/dev/null || true
    done
  done
  rm -rf "$dir"
  for n in 1 2 3; do
    ip netns delete "${prefix}n$n" 2>/dev/null || true
    ip link delete "${prefix}n$n" 2>/dev/null || true
  done
  ip link delete "${prefix}br" 2>/dev/null || true
}

# PowerDNS, authoritative for the platform zone and the customer zone tests
# start from; tests create further zones through its REST API. Its API key is
# new on every start.
start_pdns() {
  local dir=$state/pdns dns_port api_port key zone
  reuse_running pdns "$dir" && return
  rm -rf "$dir"
  mkdir -p "$dir"
  dns_port=$(free_port 55353)
  api_port=$(free_port 58081)
  key=$(openssl rand -hex 16)
  # Zones live in the test PostgreSQL: PowerDNS's SQLite backend answers
  # "database is locked" (HTTP 500) to concurrent API writes, which parallel
  # tests make all the time.
  local pg_port
  pg_port=$(cat "$(postgres_dir)/port")
  "$(pg_bin psql)" -h 127.0.0.1 -p "$pg_port" -U postgres -q -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS pdns" -c "CREATE DATABASE pdns" >/dev/null
  "$(pg_bin psql)" -h 127.0.0.1 -p "$pg_port" -U postgres -d pdns -q -v ON_ERROR_STOP=1 \
    -f /usr/share/pdns-backend-pgsql/schema/schema.pgsql.sql >/dev/null
  # The caches are off so that a record changed through the API is what the
  # very next query (from dig, or from Pebble validating a challenge) sees.
  # Every zone created through the API gets this SOA.
  cat >"$dir/pdns.conf" <<EOF
launch=gpgsql
gpgsql-host=127.0.0.1
gpgsql-port=$pg_port
gpgsql-dbname=pdns
gpgsql-user=postgres
gpgsql-password=
local-address=127.0.0.1
local-port=$dns_port
socket-dir=$dir
api=yes
api-key=$key
webserver=yes
webserver-address=127.0.0.1
webserver-port=$api_port
webserver-allow-from=127.0.0.0/8
guardian=no
daemon=no
disable-syslog=yes
cache-ttl=0
negquery-cache-ttl=0
query-cache-ttl=0
default-soa-content=ns1.atrium.test. hostmaster.atrium.test. 0 10800 3600 604800 60
EOF
  pdns_server --config-dir="$dir" >"$dir/log" 2>&1 &
  echo $! >"$dir/pid"
  wait_for pdns "$dir" 20 curl -fsS -H "X-API-Key: $key" "http://127.0.0.1:$api_port/api/v1/servers/localhost"
  for zone in apps.atrium.test. customer.test.; do
    curl -fsS -o /dev/null -H "X-API-Key: $key" -H 'Content-Type: application/json' \
      -d "{\"name\":\"$zone\",\"kind\":\"Native\",\"nameservers\":[\"ns1.atrium.test.\"]}" \
      "http://127.0.0.1:$api_port/api/v1/servers/localhost/zones"
  done
  echo "127.0.0.1:$dns_port" >"$dir/dns-address"
  cat >"$dir/env" <<EOF
ATRIUM_TEST_PDNS_URL=http://127.0.0.1:$api_port
ATRIUM_TEST_PDNS_API_KEY=$key
ATRIUM_TEST_PDNS_SERVER_ID=localhost
ATRIUM_TEST_PDNS_DNS_ADDRESS=127.0.0.1:$dns_port
EOF
  cat "$dir/env" >>"$state/env.new"
  echo "services: pdns on 127.0.0.1:$dns_port (DNS) and http://127.0.0.1:$api_port (API)"
}

# Pebble and Caddy start and stop together: Pebble must know Caddy's HTTP and
# HTTPS ports (where it validates challenges) before Caddy starts, and Pebble
# forgets its ACME accounts on restart while Caddy keeps them in its storage,
# so a new Pebble always gets a new Caddy with empty storage. Pebble resolves
# challenge names through PowerDNS, so a new PowerDNS means a new Pebble too.
start_acme_and_proxy() {
  local pebble=$state/pebble caddy=$state/caddy dns
  dns=$(cat "$state/pdns/dns-address")
  if running "$pebble/pid" && running "$caddy/pid" && [ "$(cat "$pebble/dns-address")" = "$dns" ]; then
    cat "$pebble/env" "$caddy/env" >>"$state/env.new"
    echo "services: pebble and caddy already running"
    return
  fi
  stop_process "$caddy/pid"
  stop_process "$pebble/pid"
  rm -rf "$pebble" "$caddy"
  mkdir -p "$pebble" "$caddy"
  free_port 58080 >"$caddy/http-port"
  free_port 58443 >"$caddy/https-port"
  start_pebble "$dns"
  start_caddy
}

# Pebble ships no certificate for its own listener: a throwaway CA signs one
# for 127.0.0.1 and localhost. The CA that issues the certificates Pebble hands
# out is another one, new on every start, fetched from the management port.
start_pebble() { # start_pebble DNS_ADDRESS
  local dir=$state/pebble acme_port management_port
  (
    cd "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
      -subj /CN=atrium-test-pebble-listener-ca -keyout ca-key.pem -out ca.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
      -keyout key.pem -out cert.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >cert.ext
    openssl x509 -req -in cert.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
      -extfile cert.ext -out cert.pem 2>/dev/null
  )
  acme_port=$(free_port 54000)
  management_port=$(free_port 55000)
  cat >"$dir/pebble.json" <<EOF
{
  "pebble": {
    "listenAddress": "127.0.0.1:$acme_port",
    "managementListenAddress": "127.0.0.1:$management_port",
    "certificate": "$dir/cert.pem",
    "privateKey": "$dir/key.pem",
    "httpPort": $(cat "$state/caddy/http-port"),
    "tlsPort": $(cat "$state/caddy/https-port"),
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false
  }
}
EOF
  echo "$1" >"$dir/dns-address"
  # No sleeping before validations and no rejected nonces, so that issuing is
  # quick; validation itself is real (PEBBLE_VA_ALWAYS_VALID stays unset).
  PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 \
    pebble -config "$dir/pebble.json" -strict=false -dnsserver "$1" >"$dir/log" 2>&1 &
  echo $! >"$dir/pid"
  wait_for pebble "$dir" 20 curl -fsS --cacert "$dir/ca.pem" "https://127.0.0.1:$acme_port/dir"
  wait_for pebble "$dir" 20 curl -fsS --cacert "$dir/ca.pem" -o "$dir/root.pem" \
    "https://127.0.0.1:$management_port/roots/0"
  cat >"$dir/env" <<EOF
ATRIUM_TEST_ACME_DIRECTORY=https://127.0.0.1:$acme_port/dir
ATRIUM_TEST_ACME_CA_FILE=$dir/ca.pem
ATRIUM_TEST_ACME_MANAGEMENT_URL=https://127.0.0.1:$management_port
ATRIUM_TEST_ACME_ROOT_FILE=$dir/root.pem
EOF
  cat "$dir/env" >>"$state/env.new"
  echo "services: pebble on https://127.0.0.1:$acme_port/dir (management https://127.0.0.1:$management_port)"
}

# Caddy, the reverse proxy. Server `atrium` serves HTTPS and `atrium_http`
# plain HTTP; each ends with a catch-all route answering 404 (without one, an
# unknown host gets an empty 200), and app routes go before it. Every host a
# route on `atrium` matches gets a certificate from Pebble by HTTP-01: Pebble
# connects to Caddy's HTTP port, where `atrium_http` listens and Caddy answers
# the challenge before any route. TLS-ALPN-01 is off so that validation is
# always HTTP-01. Pebble's listener certificate (127.0.0.1, localhost) is
# loaded too, so that HTTPS without a server name (by IP) still reaches the
# routes and an unknown Host gets the catch-all's 404. No HTTP/3: it would
# take a UDP port that free_port does not look at.
start_caddy() {
  local dir=$state/caddy pebble=$state/pebble admin_port http_port https_port
  http_port=$(cat "$dir/http-port")
  https_port=$(cat "$dir/https-port")
  admin_port=$(free_port 52019)
  cat >"$dir/caddy.json" <<EOF
{
  "admin": {"listen": "127.0.0.1:$admin_port", "config": {"persist": false}},
  "storage": {"module": "file_system", "root": "$dir/storage"},
  "apps": {
    "http": {
      "http_port": $http_port,
      "https_port": $https_port,
      "servers": {
        "atrium": {
          "listen": ["127.0.0.1:$https_port"],
          "tls_connection_policies": [{}],
          "protocols": ["h1", "h2"],
          "automatic_https": {"disable_redirects": true},
          "routes": [
            {"@id": "atrium-catch-all",
             "handle": [{"handler": "static_response", "status_code": 404, "body": "atrium: no app here\n"}]}
          ]
        },
        "atrium_http": {
          "listen": ["127.0.0.1:$http_port"],
          "routes": [
            {"@id": "atrium-catch-all-http",
             "handle": [{"handler": "static_response", "status_code": 404, "body": "atrium: no app here\n"}]}
          ]
        }
      }
    },
    "tls": {
      "certificates": {"load_files": [{"certificate": "$pebble/cert.pem", "key": "$pebble/key.pem"}]},
      "automation": {
        "policies": [
          {"issuers": [{"module": "acme", "ca": "$(sed -n 's/^ATRIUM_TEST_ACME_DIRECTORY=//p' "$pebble/env")",
                        "trusted_roots_pem_files": ["$pebble/ca.pem"],
                        "challenges": {"tls-alpn": {"disabled": true}}}],
           "disable_ocsp_stapling": true}
        ]
      }
    }
  }
}
EOF
  # Caddy's own config and data directories (autosave, locks) stay in here too.
  XDG_CONFIG_HOME=$dir/xdg-config XDG_DATA_HOME=$dir/xdg-data \
    caddy run --config "$dir/caddy.json" >"$dir/log" 2>&1 &
  echo $! >"$dir/pid"
  wait_for caddy "$dir" 20 curl -fsS "http://127.0.0.1:$admin_port/config/"
  wait_for caddy "$dir" 20 sh -c "curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.1:$http_port/ | grep -qx 404"
  cat >"$dir/env" <<EOF
ATRIUM_TEST_CADDY_ADMIN_URL=http://127.0.0.1:$admin_port
ATRIUM_TEST_CADDY_HTTP_PORT=$http_port
ATRIUM_TEST_CADDY_HTTPS_PORT=$https_port
EOF
  cat "$dir/env" >>"$state/env.new"
  echo "services: caddy on 127.0.0.1:$http_port (HTTP) and 127.0.0.1:$https_port (HTTPS), admin http://127.0.0.1:$admin_port"
}

stop_acme_and_proxy() {
  stop_process "$state/caddy/pid"
  stop_process "$state/pebble/pid"
  rm -rf "$state/caddy" "$state/pebble"
}

# The SMTP sink: every message lands in a Maildir that tests read. Debian's
# aiosmtpd imports only under /usr/bin/python3, not the python3 on PATH.
start_smtp() {
  local dir=$state/smtp port
  reuse_running smtp "$dir" && return
  rm -rf "$dir"
  mkdir -p "$dir"
  port=$(free_port 52525)
  /usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$port" -c aiosmtpd.handlers.Mailbox "$dir/maildir" >"$dir/log" 2>&1 &
  echo $! >"$dir/pid"
  wait_for smtp "$dir" 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
  cat >"$dir/env" <<EOF
ATRIUM_TEST_SMTP_URL=smtp://127.0.0.1:$port
ATRIUM_TEST_SMTP_MAILDIR=$dir/maildir
EOF
  cat "$dir/env" >>"$state/env.new"
  echo "services: smtp sink on 127.0.0.1:$port, mail in $dir/maildir"
}

# Redmine runs as www-data from Debian's install, whose database is the one
# instance "default" for the whole machine (not per state directory): setup
# only changes what is not yet as tests need it, and the admin's API key, once
# set, stays the same so that two state directories can share it.
redmine_database() {
  sed -n 's/^ *database: *//p' /etc/redmine/default/database.yml
}

# redmine_ready: true when the database already has what tests need, so that
# start can skip the (slow) Rails setup script.
redmine_ready() {
  [ "$(sqlite3 "$(redmine_database)" "
    SELECT (SELECT value FROM settings WHERE name = 'rest_api_enabled') = '1'
      AND (SELECT must_change_passwd FROM users WHERE login = 'admin') = 0
      AND EXISTS (SELECT 1 FROM custom_fields WHERE type = 'ProjectCustomField' AND name = 'Support level')
      AND EXISTS (SELECT 1 FROM roles WHERE builtin = 0)
      AND EXISTS (SELECT 1 FROM trackers);")" = 1 ]
}

# The prefix that runs a command as www-data in Redmine's directory, the way
# Debian's packaging expects (a command, not a function, so that `&` gives the
# server's own PID: setpriv and env exec what follows).
redmine_as_www_data=(setpriv --reuid=www-data --regid=www-data --init-groups
  env -C /usr/share/redmine HOME=/tmp REDMINE_INSTANCE=default RAILS_ENV=production)

# Redmine takes seconds to boot (and, the first time, to be set up), so it is
# launched before the other services and waited for after them.
launch_redmine() {
  local dir=$state/redmine port key
  running "$dir/pid" && return
  redmine_launched=1
  rm -rf "$dir"
  mkdir -p "$dir"
  # Any ruby package installed later re-runs redmine's postinst, which deletes
  # Gemfile.lock; it is rebuilt from the installed gems (as the postinst does:
  # as root, then handed to www-data).
  if [ ! -f /var/lib/redmine/Gemfile.lock ]; then
    (cd /usr/share/redmine && BUNDLER_VERSION=2.3.15 HOME=/tmp bundle install --local --quiet) >"$dir/bundle.log" 2>&1 \
      || { cat "$dir/bundle.log" >&2; exit 1; }
    chown www-data:www-data /var/lib/redmine/Gemfile.lock
  fi
  key=$(sqlite3 "$(redmine_database)" \
    "SELECT t.value FROM tokens t JOIN users u ON u.id = t.user_id WHERE u.login = 'admin' AND t.action = 'api';")
  port=$(free_port 53000)
  # `rails server` does not work with Debian's packaging; thin does.
  "${redmine_as_www_data[@]}" thin start -a 127.0.0.1 -p "$port" -e production -R config.ru >"$dir/log" 2>&1 &
  echo $! >"$dir/pid"
  # The setup runs while thin boots (thin rereads settings when they change).
  if [ -z "$key" ] || ! redmine_ready; then
    [ -n "$key" ] || key=$(openssl rand -hex 20)
    "${redmine_as_www_data[@]}" ATRIUM_REDMINE_API_KEY="$key" \
      bin/rails runner "$(cat "$repo/scripts/services/redmine-setup.rb")" >"$dir/setup.log" 2>&1 &
    redmine_setup_pid=$!
  fi
  cat >"$dir/env" <<EOF
ATRIUM_TEST_REDMINE_URL=http://127.0.0.1:$port
ATRIUM_TEST_REDMINE_API_KEY=$key
EOF
}

finish_redmine() {
  local dir=$state/redmine url key
  url=$(sed -n 's/^ATRIUM_TEST_REDMINE_URL=//p' "$dir/env")
  key=$(sed -n 's/^ATRIUM_TEST_REDMINE_API_KEY=//p' "$dir/env")
  if [ -z "$redmine_launched" ]; then
    cat "$dir/env" >>"$state/env.new"
    echo "services: redmine already running"
    return
  fi
  if [ -n "$redmine_setup_pid" ] && ! wait "$redmine_setup_pid"; then
    echo "services: redmine setup failed; its log ($dir/setup.log) follows" >&2
    cat "$dir/setup.log" >&2
    exit 1
  fi
  wait_for redmine "$dir" 60 curl -fsS -H "X-Redmine-API-Key: $key" "$url/users/current.json"
  cat "$dir/env" >>"$state/env.new"
  echo "services: redmine on $url"
}

stop_service() { # stop_service NAME
  stop_process "$state/$1/pid"
  rm -rf "${state:?}/$1"
}

# An address of this host that containers on both engines reach it by (the
# off-site backup store is published there): the first global IPv4 address
# that is not on a Docker bridge or the swarm's bridge (atrsw…).
host_address() {
  local address
  address=$(ip -4 -o addr show scope global | awk '$2 !~ /^(br-|docker|veth|atrsw)/ { sub(/\/.*/, "", $4); print $4; exit }')
  if [ -z "$address" ]; then
    echo "services: this host has no global IPv4 address outside Docker's bridges (ip -4 addr)" >&2
    exit 1
  fi
  echo "ATRIUM_TEST_HOST_ADDRESS=$address" >>"$state/env.new"
  echo "services: containers reach this host at $address"
}

case "$command" in
  start)
    mkdir -p "$state"
    : >"$state/env.new"
    redmine_launched= redmine_setup_pid=
    launch_redmine
    start_postgres
    start_docker docker ATRIUM_TEST_DOCKER_HOST 10.200.0.0/16
    start_docker docker2 ATRIUM_TEST_DOCKER_HOST_2 10.210.0.0/16 tls
    start_swarm
    start_pdns
    start_acme_and_proxy
    start_smtp
    host_address
    finish_redmine
    if [ -s "$state/env.new" ]; then mv "$state/env.new" "$state/env"; else rm -f "$state/env.new"; fi
    echo "services: env file $state/env"
    ;;
  stop)
    stop_postgres
    stop_docker docker
    stop_docker docker2
    stop_swarm
    stop_service redmine
    stop_service smtp
    stop_acme_and_proxy
    stop_service pdns
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
