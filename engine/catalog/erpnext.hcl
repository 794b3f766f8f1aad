# erpnext: the ERPNext ERP on the Frappe framework, from the official
# `frappe/erpnext` image, with MariaDB and two Redis sidecars (cache, queue).
#
# Caveats: upstream runs the web server, workers, scheduler, websocket server
# and nginx as separate containers sharing the `sites` volume. Atrium gives
# sidecars volumes of their own, so this entry runs all of them in the app
# container, started by its command; a background process that dies is not
# restarted until the container is. The site (`erpnext`) is created on the
# first start, which takes several minutes; an upgrade runs `bench migrate`
# alone after a backup (see `upgrade`), and every later start runs it again,
# which changes nothing on migrated data. The
# Redis sidecars have no password: Frappe's Redis URLs are shared by Python
# and the Node websocket server, and only the tenant network reaches them.
name        = "erpnext"
description = "ERPNext: ERP for accounting, inventory, manufacturing, HR and CRM."
port        = 8080

# The image runs as its own unprivileged user on a high port: no capability.
capabilities = []

channels = {
  stable = {
    image    = "frappe/erpnext:v{version}"
    versions = ["15.94.3", "16.5.0"]
    default  = "15.94.3"
  }
  vanilla = {
    image    = "frappe/erpnext:v{version}"
    versions = ["15.78.0", "15.94.3", "16.5.0"]
    default  = "15.94.3"
  }
  custom = {
    image    = "atrium/erpnext-custom:{version}"
    versions = ["15.94.3"]
    default  = "15.94.3"
  }
}

# The steps of upstream's configurator and create-site containers, then every
# long-running process of its compose file; nginx stays in the foreground.
command = [
  "bash", "-c",
  <<-EOT
  set -e
  cd /home/frappe/frappe-bench
  wait-for-it -t 120 "$DB_HOST:3306"
  wait-for-it -t 120 "$REDIS_CACHE"
  wait-for-it -t 120 "$REDIS_QUEUE"
  ls -1 apps > sites/apps.txt
  bench set-config -g db_host "$DB_HOST"
  bench set-config -gp db_port 3306
  bench set-config -g redis_cache "redis://$REDIS_CACHE"
  bench set-config -g redis_queue "redis://$REDIS_QUEUE"
  bench set-config -g redis_socketio "redis://$REDIS_QUEUE"
  bench set-config -gp socketio_port 9000
  if [ -f sites/erpnext/site_config.json ]; then
    bench --site erpnext migrate
  else
    bench new-site erpnext --mariadb-user-host-login-scope=% --db-root-password "$DB_ROOT_PASSWORD" --admin-password "$ADMIN_PASSWORD" --install-app erpnext --set-default
  fi
  bench worker --queue long,default,short &
  bench schedule &
  node /home/frappe/frappe-bench/apps/frappe/socketio.js &
  /home/frappe/frappe-bench/env/bin/gunicorn --chdir=/home/frappe/frappe-bench/sites --bind=127.0.0.1:8000 --threads=4 --workers=2 --worker-class=gthread --worker-tmp-dir=/dev/shm --timeout=120 --preload frappe.app:application &
  exec nginx-entrypoint.sh
  EOT
]

environment = {
  DB_HOST          = "{sidecar.mariadb}"
  DB_ROOT_PASSWORD = "{secret.mariadb_root_password}"
  REDIS_CACHE      = "{sidecar.redis-cache}:6379"
  REDIS_QUEUE      = "{sidecar.redis-queue}:6379"
  # The password of Frappe's built-in Administrator, set when the site is created.
  ADMIN_PASSWORD = "{secret.root_password}"
  # Read by the image's nginx-entrypoint.sh.
  BACKEND                 = "127.0.0.1:8000"
  SOCKETIO                = "127.0.0.1:9000"
  FRAPPE_SITE_NAME_HEADER = "erpnext"
  CLIENT_MAX_BODY_SIZE    = "50m"
}

volumes = {
  sites = "/home/frappe/frappe-bench/sites"
  logs  = "/home/frappe/frappe-bench/logs"
}

# The image installs curl; ping answers once the site exists and gunicorn runs.
health = {
  command      = ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/api/method/ping"]
  interval     = "30s"
  timeout      = "10s"
  retries      = 3
  start_period = "20m"
}

sidecars = {
  mariadb = {
    image   = "mariadb:10.11"
    # Its entrypoint makes the data directory its own, then steps down to its user.
    capabilities = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"]
    resources = {
      basic      = { cpus = 0.5, memory_mb = 512 }
      business   = { cpus = 1, memory_mb = 1024 }
      enterprise = { cpus = 2, memory_mb = 2048 }
    }
    command = ["--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci", "--skip-character-set-client-handshake"]
    environment = {
      MARIADB_ROOT_PASSWORD = "{secret.mariadb_root_password}"
      MARIADB_AUTO_UPGRADE  = "1"
    }
    volumes = {
      data = "/var/lib/mysql"
    }
    health = {
      command      = ["healthcheck.sh", "--connect", "--innodb_initialized"]
      interval     = "10s"
      timeout      = "5s"
      retries      = 5
      start_period = "30s"
    }
  }
  # The cache is disposable; the queue keeps pending jobs across restarts.
  redis-cache = {
    image = "redis:7-alpine"
    # Its entrypoint hands its files to the redis user and steps down to it.
    capabilities = ["CHOWN", "SETGID", "SETUID"]
    resources = {
      basic      = { cpus = 0.25, memory_mb = 128 }
      business   = { cpus = 0.5, memory_mb = 256 }
      enterprise = { cpus = 1, memory_mb = 512 }
    }
    health = {
      command      = ["redis-cli", "ping"]
      interval     = "10s"
      timeout      = "5s"
      retries      = 5
      start_period = "10s"
    }
  }
  redis-queue = {
    image = "redis:7-alpine"
    # Its entrypoint hands its files to the redis user and steps down to it.
    capabilities = ["CHOWN", "SETGID", "SETUID"]
    resources = {
      basic      = { cpus = 0.25, memory_mb = 128 }
      business   = { cpus = 0.5, memory_mb = 256 }
      enterprise = { cpus = 1, memory_mb = 512 }
    }
    volumes = {
      data = "/data"
    }
    health = {
      command      = ["redis-cli", "ping"]
      interval     = "10s"
      timeout      = "5s"
      retries      = 5
      start_period = "10s"
    }
  }
}

resources = {
  basic      = { cpus = 1, memory_mb = 2048 }
  business   = { cpus = 2, memory_mb = 4096 }
  enterprise = { cpus = 4, memory_mb = 8192 }
}

# Frappe's own command: it creates the user with every role except
# Administrator, Guest and All, System Manager among them.
manager_account = {
  login_path = "/login"
  method = "command"
  role   = "System Manager"
  command = [
    "bench", "--site", "erpnext", "add-system-manager", "{manager.email}",
    "--first-name", "{manager.name}",
    "--password", "{manager.password}",
  ]
}

# Frappe has no user limit setting since version 13.
user_limit = {
  method = "unsupported"
}

# `bench migrate` in a one-shot run of the new image, with the apps the new
# image brings listed first (as the start does). The start runs it again,
# which changes nothing on migrated data.
upgrade = {
  migrate = ["bash", "-c", "set -e; cd /home/frappe/frappe-bench; ls -1 apps > sites/apps.txt; bench --site erpnext migrate"]
}

# The site's database with MariaDB's own tools (as root, whose remote account
# the official mariadb image makes); the sites volume (files, site_config.json)
# beside it. The official image has no restic, so the jobs run from
# atrium/mariadb:11.8 (built from Debian's packages by scripts/app-images.sh;
# its mariadb-dump reads the 10.11 sidecar).
#
# Frappe names the site's database and its user (the same name) in
# site_config.json, with the user's password. The dump reads the name there;
# the restore, which writes the sites volume before the database, makes the
# user when it is missing (a clone, a new server), recreates the database and
# grants it to the user. Both values are checked to be plain words before they
# reach SQL: Frappe makes them of letters, digits and `_`.
backup = {
  sidecar = "mariadb"
  image   = "atrium/mariadb:11.8"
  environment = {
    MYSQL_PWD = "{secret.mariadb_root_password}"
  }
  dump = [
    "sh", "-c",
    <<-EOT
    set -eu
    config=/volumes/sites/erpnext/site_config.json
    database=$(sed -n 's/^ *"db_name": "\([A-Za-z0-9_]*\)",*$/\1/p' "$config")
    if [ -z "$database" ]; then echo "atrium-backup: $config names no database made of letters, digits and _" >&2; exit 1; fi
    mariadb-dump --host={sidecar.mariadb} --user=root --single-transaction --routines --events --triggers "$database"
    EOT
  ]
  restore = [
    "sh", "-c",
    <<-EOT
    set -eu
    config=/volumes/sites/erpnext/site_config.json
    database=$(sed -n 's/^ *"db_name": "\([A-Za-z0-9_]*\)",*$/\1/p' "$config")
    password=$(sed -n 's/^ *"db_password": "\([A-Za-z0-9]*\)",*$/\1/p' "$config")
    if [ -z "$database" ] || [ -z "$password" ]; then echo "atrium-restore: $config names no database and password made of letters, digits and _" >&2; exit 1; fi
    mariadb --host={sidecar.mariadb} --user=root -e "CREATE USER IF NOT EXISTS '$database'@'%' IDENTIFIED BY '$password'; DROP DATABASE IF EXISTS $database; CREATE DATABASE $database CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; GRANT ALL PRIVILEGES ON $database.* TO '$database'@'%'"
    mariadb --host={sidecar.mariadb} --user=root "$database"
    EOT
  ]
}
