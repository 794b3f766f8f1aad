#!/usr/bin/env bash
# Checks the app images for real on the Docker engine at DOCKER_HOST, the way
# the catalog runs them (all capabilities dropped, no-new-privileges, named
# volumes, one user bridge network per app):
#   scripts/images/verify.sh DOCKER_HOST [postgres] [redmine] [mediawiki] [tryton]
# (all four when none is named; the images must be in the engine already:
# scripts/app-images.sh DOCKER_HOST all). For each app it starts the database
# and the app on the older release, waits for health, uses the real endpoint,
# runs `migrate` on the running data, then migrates and starts the newer
# release on the same data and checks that the same data is served:
#   postgres   15 -> pg_dump | pg_restore -> 17; a rotated password follows;
#              restic and flock (backups) in both
#   redmine    5.0 -> 6.0 on postgres 15: project, issue and attachment
#   mediawiki  1.39 -> 1.43 on mariadb 10.11, then mariadb 11.8 on the same data
#              (its migrate, mariadb-upgrade): page and uploaded file
#   tryton     6.0 -> 7.0 on postgres 15: user login over JSON-RPC, a party
# Everything it creates is named imgtest-* and is removed at the end, also on
# failure.
set -euo pipefail
host=${1:?usage: verify.sh DOCKER_HOST [postgres] [redmine] [mediawiki] [tryton]}
shift
apps=("$@")
[ ${#apps[@]} -gt 0 ] || apps=(postgres redmine mediawiki tryton)

d() { docker -H "$host" "$@"; }
step() { printf '%s %s\n' "$(date +%T)" "$*"; }
fail() {
  echo "verify: FAILED: $*" >&2
  exit 1
}
# run NAME NETWORK ARGS...: a detached container the way the catalog runs one.
run() {
  local name=$1 network=$2
  shift 2
  d run -d --name "$name" --network "$network" --cap-drop ALL --security-opt no-new-privileges "$@" >/dev/null
}
# once ARGS...: a one-shot container (migrate) on the same terms.
once() { d run --rm --cap-drop ALL --security-opt no-new-privileges "$@"; }
# wait_healthy NAME SECONDS
wait_healthy() {
  local deadline=$((SECONDS + $2)) state start=$SECONDS
  while :; do
    state=$(d inspect --format '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1")
    case "$state" in
      "running healthy") step "$1 healthy after $((SECONDS - start)) s"; return 0 ;;
      exited* | dead*) d logs --tail 30 "$1" >&2; fail "$1 exited" ;;
    esac
    [ $SECONDS -lt $deadline ] || { d logs --tail 30 "$1" >&2; fail "$1 not healthy within $2 s"; }
    sleep 1
  done
}
expect() { # expect WHAT EXPECTED ACTUAL
  [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
  step "ok: $1"
}
# quiet ARGS...: runs a command, showing its output only when it fails.
quiet() {
  local out
  out=$(mktemp)
  if ! "$@" >"$out" 2>&1; then
    tail -n 40 "$out" >&2
    rm -f "$out"
    fail "$*"
  fi
  rm -f "$out"
}
cleanup() { # the names are single words: split on purpose
  local names
  names=$(d ps -a --format '{{.Names}}' | grep '^imgtest-' || true)
  if [ -n "$names" ]; then d rm -f $names >/dev/null; fi
  names=$(d volume ls --format '{{.Name}}' | grep '^imgtest-' || true)
  if [ -n "$names" ]; then d volume rm $names >/dev/null; fi
  names=$(d network ls --format '{{.Name}}' | grep '^imgtest-' || true)
  if [ -n "$names" ]; then d network rm $names >/dev/null; fi
}
trap cleanup EXIT
cleanup

verify_postgres() {
  local n=imgtest-postgres
  d network create $n >/dev/null
  run $n-15 $n -v $n-15:/var/lib/postgresql/data -e POSTGRES_USER=app -e "POSTGRES_PASSWORD=first 'pw'" -e POSTGRES_DB=appdb atrium/postgres:15
  wait_healthy $n-15 60
  d exec $n-15 psql -X -q -h /run/postgresql -U app -d appdb -c "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')"
  expect "password login on 15" 1 "$(d exec $n-15 sh -c 'PGPASSWORD=$POSTGRES_PASSWORD psql -X -Atq -h 127.0.0.1 -U app -d appdb -c "SELECT 1"')"
  d rm -f $n-15 >/dev/null
  run $n-15 $n -v $n-15:/var/lib/postgresql/data -e POSTGRES_USER=app -e POSTGRES_PASSWORD=rotated -e POSTGRES_DB=appdb atrium/postgres:15
  wait_healthy $n-15 60
  expect "rotated password on restart" 1 "$(d exec $n-15 sh -c 'PGPASSWORD=rotated psql -X -Atq -h 127.0.0.1 -U app -d appdb -c "SELECT 1"')"
  run $n-17 $n -v $n-17:/var/lib/postgresql/data -e POSTGRES_USER=app -e POSTGRES_PASSWORD=pw17 -e POSTGRES_DB=appdb atrium/postgres:17
  wait_healthy $n-17 60
  d exec $n-15 pg_dump -Fc -h /run/postgresql -U app appdb | d exec -i $n-17 pg_restore -h /run/postgresql -U app -d appdb
  expect "row restored into 17" kept "$(d exec $n-17 psql -X -Atq -h /run/postgresql -U app -d appdb -c 'SELECT v FROM t')"
  for version in 15 17; do
    d exec $n-$version sh -c 'restic version && flock --version' >/dev/null || fail "restic or flock missing in atrium/postgres:$version"
  done
}

verify_redmine() {
  local n=imgtest-redmine key=0123456789abcdef0123456789abcdef01234567 token env
  env=(-e "REDMINE_DB_HOST=$n-db" -e REDMINE_DB_NAME=redmine -e REDMINE_DB_USER=redmine -e "REDMINE_DB_PASSWORD=red'mine pw"
    -e "REDMINE_SECRET_KEY_BASE=$(head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n')")
  api() { d exec -i $n-app curl -fsS -H "X-Redmine-API-Key: $key" "$@"; }
  d network create $n >/dev/null
  run $n-db $n -v $n-db:/var/lib/postgresql/data -e POSTGRES_USER=redmine -e "POSTGRES_PASSWORD=red'mine pw" -e POSTGRES_DB=redmine atrium/postgres:15
  wait_healthy $n-db 60
  run $n-app $n -v $n-files:/var/lib/redmine/default/files "${env[@]}" atrium/redmine:5.0
  wait_healthy $n-app 240
  expect "5.0 login page" 200 "$(d exec $n-app curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.1:3000/login)"
  d exec $n-app atrium-app runner '
    Setting.rest_api_enabled = "1"
    admin = User.find_by!(login: "admin")
    token = Token.find_by(user_id: admin.id, action: "api") || Token.create!(user: admin, action: "api")
    token.update_column(:value, ARGV[0])' "$key" 2>/dev/null
  api -H 'Content-Type: application/json' -X POST http://127.0.0.1:3000/projects.json \
    -d '{"project":{"name":"Image test","identifier":"imgtest","is_public":false}}' >/dev/null
  token=$(echo "attached on 5.0" | api -H 'Content-Type: application/octet-stream' -X POST --data-binary @- \
    'http://127.0.0.1:3000/uploads.json?filename=note.txt' | sed 's/.*"token":"\([^"]*\)".*/\1/')
  api -H 'Content-Type: application/json' -X POST http://127.0.0.1:3000/issues.json -d "{\"issue\":{\"project_id\":\"imgtest\",
    \"subject\":\"Made on 5.0\",\"uploads\":[{\"token\":\"$token\",\"filename\":\"note.txt\"}]}}" >/dev/null
  step "project, issue and attachment made on 5.0"
  quiet d exec $n-app atrium-app migrate
  step "ok: migrate on the running 5.0 data"
  d rm -f $n-app >/dev/null
  quiet once --network $n -v $n-files:/var/lib/redmine/default/files "${env[@]}" atrium/redmine:6.0 atrium-app migrate
  step "ok: migrate with 6.0"
  run $n-app $n -v $n-files:/var/lib/redmine/default/files "${env[@]}" atrium/redmine:6.0
  wait_healthy $n-app 240
  expect "6.0 serves the project" imgtest \
    "$(api http://127.0.0.1:3000/projects/imgtest.json | sed 's/.*"identifier":"\([^"]*\)".*/\1/')"
  expect "6.0 serves the issue" "Made on 5.0" \
    "$(api 'http://127.0.0.1:3000/issues.json?project_id=imgtest' | sed 's/.*"subject":"\([^"]*\)".*/\1/')"
  expect "6.0 serves the attachment" "attached on 5.0" "$(api http://127.0.0.1:3000/attachments/download/1/note.txt)"
  expect "6.0 runner output and ARGV" "6.0 x y" "$(d exec $n-app atrium-app runner 'puts [Redmine::VERSION::MAJOR.to_s + "." + Redmine::VERSION::MINOR.to_s, *ARGV].join(" ")' x y 2>/dev/null)"
}

verify_mediawiki() {
  local n=imgtest-mediawiki env dbenv siteinfo hash
  env=(-e "MW_DB_HOST=$n-db" -e MW_DB_NAME=wiki -e MW_DB_USER=wiki -e 'MW_DB_PASSWORD=wiki "pw" \ x'
    -e MW_SERVER=https://wiki.imgtest.example -e 'MW_SITE_NAME=Image Test Wiki' -e MW_ADMIN_USER=Admin
    -e 'MW_ADMIN_PASSWORD=Atrium-admin-pass-1')
  dbenv=(-v "$n-db:/var/lib/mysql" -e MARIADB_DATABASE=wiki -e MARIADB_USER=wiki -e 'MARIADB_PASSWORD=wiki "pw" \ x'
    -e MARIADB_ROOT_PASSWORD=root-pw)
  siteinfo='http://127.0.0.1:8080/api.php?action=query&meta=siteinfo&format=json'
  page() { d exec $n-app curl -fsS 'http://127.0.0.1:8080/api.php?action=query&prop=revisions&rvprop=content&rvslots=main&titles=Image_test&format=json' |
    sed 's/.*"\*":"\([^"]*\)".*/\1/'; }
  d network create $n >/dev/null
  run $n-db $n "${dbenv[@]}" atrium/mariadb:10.11
  wait_healthy $n-db 60
  run $n-app $n -v $n-state:/var/lib/mediawiki-state "${env[@]}" atrium/mediawiki:1.39
  wait_healthy $n-app 180
  expect "1.39 siteinfo server" '"server":"https://wiki.imgtest.example"' "$(d exec $n-app curl -fsS "$siteinfo" | grep -o '"server":"[^"]*"')"
  quiet d exec $n-app atrium-app runner createAndPromote --bureaucrat --sysop Alice 'Alice-long-password-1'
  echo "Written on 1.39." | d exec -i $n-app atrium-app runner edit --user Alice --summary imgtest Image_test >/dev/null
  printf 'GIF89a\001\000\001\000\200\000\000\000\000\000\377\377\377!\371\004\001\000\000\000\000,\000\000\000\000\001\000\001\000\000\002\002D\001\000;' |
    d exec -i $n-app sh -c 'mkdir -p /tmp/upload && cat >/tmp/upload/Imgtest.gif'
  quiet d exec $n-app atrium-app runner importImages --user Alice --extensions gif /tmp/upload
  expect "1.39 page" "Written on 1.39." "$(page)"
  quiet d exec $n-app atrium-app migrate
  step "ok: migrate on the running 1.39 data"
  d rm -f $n-app >/dev/null
  quiet once --network $n -v $n-state:/var/lib/mediawiki-state "${env[@]}" atrium/mediawiki:1.43 atrium-app migrate
  step "ok: migrate with 1.43"
  run $n-app $n -v $n-state:/var/lib/mediawiki-state "${env[@]}" atrium/mediawiki:1.43
  wait_healthy $n-app 180
  expect "1.43 generator" '"generator":"MediaWiki 1.43' "$(d exec $n-app curl -fsS "$siteinfo" | grep -o '"generator":"MediaWiki 1.43')"
  expect "1.43 serves the page" "Written on 1.39." "$(page)"
  hash=$(printf Imgtest.gif | md5sum) # MediaWiki's upload path: images/h/hh/NAME
  expect "1.43 serves the upload" 200 \
    "$(d exec $n-app curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:8080/images/${hash:0:1}/${hash:0:2}/Imgtest.gif")"
  # The database moves up too: MariaDB 11.8 on the 10.11 data directory.
  d rm -f $n-db >/dev/null
  run $n-db $n "${dbenv[@]}" atrium/mariadb:11.8
  wait_healthy $n-db 90
  quiet d exec $n-db atrium-app migrate
  step "ok: migrate (mariadb-upgrade) to 11.8"
  expect "1.43 on MariaDB 11.8 serves the page" "Written on 1.39." "$(page)"
}

verify_tryton() {
  local n=imgtest-tryton env
  env=(-e "TRYTON_DB_URI=postgresql://tryton:tryton-pw@$n-db:5432/" -e TRYTON_DB_NAME=tryton
    -e TRYTON_ADMIN_EMAIL=admin@imgtest.example -e 'TRYTON_ADMIN_PASSWORD=Tryton-admin-pw-9')
  # rpc PATH METHOD PARAMS_JSON: the JSON-RPC result, from inside the container.
  rpc() {
    d exec $n-app python3 -c 'import json, sys, urllib.request as u
r = u.Request("http://127.0.0.1:8000/" + sys.argv[1], data=json.dumps({"id": 1, "method": sys.argv[2],
    "params": json.loads(sys.argv[3])}).encode(), headers={"Content-Type": "application/json"})
print(json.dumps(json.load(u.urlopen(r, timeout=30)).get("result")))' "$@"
  }
  d network create $n >/dev/null
  run $n-db $n -v $n-db:/var/lib/postgresql/data -e POSTGRES_USER=tryton -e POSTGRES_PASSWORD=tryton-pw -e POSTGRES_DB=tryton atrium/postgres:15
  wait_healthy $n-db 60
  run $n-app $n -v $n-files:/var/lib/tryton "${env[@]}" atrium/tryton:6.0
  wait_healthy $n-app 420
  expect "6.0 server version" '"6.0' "$(rpc '' common.server.version '[]' | cut -c1-4)"
  expect "6.0 sao web client" 200 "$(d exec $n-app python3 -c 'import urllib.request as u; print(u.urlopen("http://127.0.0.1:8000/").status)')"
  d exec $n-app atrium-app runner '
User = pool.get("res.user")
Party = pool.get("party.party")
User.create([{"login": args[0], "name": "Alice", "password": args[1]}])
Party.create([{"name": "Imgtest Party"}])' alice 'Alice-tryton-pw-7' 2>/dev/null
  expect "6.0 login of the new user" 2 "$(rpc tryton/ common.db.login '["alice", {"password": "Alice-tryton-pw-7"}, "en"]' | sed 's/^\[\([0-9]*\),.*/\1/')"
  quiet d exec $n-app atrium-app migrate
  step "ok: migrate on the running 6.0 data"
  d rm -f $n-app >/dev/null
  quiet once --network $n -v $n-files:/var/lib/tryton "${env[@]}" atrium/tryton:7.0 atrium-app migrate
  step "ok: migrate with 7.0"
  run $n-app $n -v $n-files:/var/lib/tryton "${env[@]}" atrium/tryton:7.0
  wait_healthy $n-app 240
  expect "7.0 server version" '"7.0' "$(rpc '' common.server.version '[]' | cut -c1-4)"
  expect "7.0 login of the user made on 6.0" 2 "$(rpc tryton/ common.db.login '["alice", {"password": "Alice-tryton-pw-7"}, "en"]' | sed 's/^\[\([0-9]*\),.*/\1/')"
  expect "7.0 party made on 6.0" "['Imgtest Party']" "$(d exec $n-app atrium-app runner 'print([p.name for p in pool.get("party.party").search([])])' 2>/dev/null)"
}

for app in "${apps[@]}"; do
  case "$app" in
    postgres | redmine | mediawiki | tryton) ;;
    *) fail "unknown app $app (known: postgres redmine mediawiki tryton)" ;;
  esac
  step "== $app"
  start=$SECONDS
  "verify_$app"
  step "== $app verified in $((SECONDS - start)) s"
done
