# nextcloud: files, calendar and collaboration, from the official `nextcloud`
# Apache image, with PostgreSQL and Redis sidecars.
#
# Caveats: the image installs Nextcloud on its first start with the built-in
# `atrium-root` administrator, which the platform keeps and the manager never
# uses. The instance's live host names become its trusted_domains (after
# localhost, which the health check uses) and its address overwrite.cli.url,
# through `public_address` whenever a domain goes live or away
# (NEXTCLOUD_TRUSTED_DOMAINS is read at installation only). Background jobs
# run in AJAX mode because no cron container can share the app's volume.
# Nextcloud upgrades one major version at a time.
name        = "nextcloud"
description = "Nextcloud: files, calendar, contacts and collaboration."
port        = 80

# Starts as root to listen on port 80 and prepare its files, then its
# servers step down to their own user; every other capability is dropped.
capabilities = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "NET_BIND_SERVICE", "SETGID", "SETUID"]

channels = {
  stable = {
    image    = "nextcloud:{version}-apache"
    versions = ["30.0.10", "31.0.5"]
    default  = "31.0.5"
  }
  vanilla = {
    image    = "nextcloud:{version}-apache"
    versions = ["30.0.10", "31.0.5", "32.0.5"]
    default  = "31.0.5"
  }
  custom = {
    image    = "atrium/nextcloud-custom:{version}"
    versions = ["31.0.5"]
    default  = "31.0.5"
  }
}

environment = {
  POSTGRES_HOST            = "{sidecar.postgres}"
  POSTGRES_DB              = "nextcloud"
  POSTGRES_USER            = "nextcloud"
  POSTGRES_PASSWORD        = "{secret.postgres_password}"
  REDIS_HOST               = "{sidecar.redis}"
  REDIS_HOST_PASSWORD      = "{secret.redis_password}"
  NEXTCLOUD_ADMIN_USER     = "atrium-root"
  NEXTCLOUD_ADMIN_PASSWORD = "{secret.root_password}"
  # The ingress reaches the app through Docker's published port, from a
  # private address; trusting private ranges lets Nextcloud read the client's
  # address and protocol from the forwarded headers.
  TRUSTED_PROXIES = "10.0.0.0/8 172.16.0.0/12 192.168.0.0/16"
}

# The whole installation: code, config.php, apps and user files.
volumes = {
  html = "/var/www/html"
}

# curl comes with the php base image (the Nextcloud Dockerfile uses it).
health = {
  command      = ["curl", "-fsS", "-o", "/dev/null", "http://localhost/status.php"]
  interval     = "30s"
  timeout      = "10s"
  retries      = 3
  start_period = "5m"
}

sidecars = {
  postgres = {
    image = "postgres:16"
    # Its entrypoint makes the data directory its own, then steps down to its user.
    capabilities = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"]
    resources = {
      basic      = { cpus = 0.5, memory_mb = 512 }
      business   = { cpus = 1, memory_mb = 1024 }
      enterprise = { cpus = 2, memory_mb = 2048 }
    }
    environment = {
      POSTGRES_DB       = "nextcloud"
      POSTGRES_USER     = "nextcloud"
      POSTGRES_PASSWORD = "{secret.postgres_password}"
    }
    volumes = {
      data = "/var/lib/postgresql/data"
    }
    health = {
      command      = ["pg_isready", "-U", "nextcloud", "-d", "nextcloud"]
      interval     = "10s"
      timeout      = "5s"
      retries      = 5
      start_period = "30s"
    }
  }
  # Cache and file locking only, so no volume. The official image takes no
  # password variable; redis-cli reads REDISCLI_AUTH, so one variable serves
  # the server and its health check.
  redis = {
    image   = "redis:7-alpine"
    # Its entrypoint hands its files to the redis user and steps down to it.
    capabilities = ["CHOWN", "SETGID", "SETUID"]
    resources = {
      basic      = { cpus = 0.25, memory_mb = 128 }
      business   = { cpus = 0.5, memory_mb = 256 }
      enterprise = { cpus = 1, memory_mb = 512 }
    }
    command = ["sh", "-c", "exec redis-server --requirepass \"$REDISCLI_AUTH\""]
    environment = {
      REDISCLI_AUTH = "{secret.redis_password}"
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
  basic      = { cpus = 1, memory_mb = 1024 }
  business   = { cpus = 2, memory_mb = 2048 }
  enterprise = { cpus = 4, memory_mb = 4096 }
}

# occ must run as www-data; `su -p` keeps the environment, as the image's own
# entrypoint does, so OC_PASS and the manager's details reach occ without being
# pasted into the script. The manager joins the `admin` group, Nextcloud's
# administrators. Running it twice changes nothing.
manager_account = {
  login_path = "/login"
  method = "command"
  role   = "admin"
  command = [
    "sh", "-c",
    "export ATRIUM_MANAGER_EMAIL=\"$1\" ATRIUM_MANAGER_NAME=\"$2\" OC_PASS=\"$3\"; su -p www-data -s /bin/sh -c 'php /var/www/html/occ user:info \"$ATRIUM_MANAGER_EMAIL\" >/dev/null 2>&1 || php /var/www/html/occ user:add --password-from-env --display-name=\"$ATRIUM_MANAGER_NAME\" --email=\"$ATRIUM_MANAGER_EMAIL\" --group=admin \"$ATRIUM_MANAGER_EMAIL\"'",
    "atrium-manager-account",
    "{manager.email}",
    "{manager.name}",
    "{manager.password}",
  ]
}

# occ as www-data, as for the manager. trusted_domains 0 is localhost (set at
# installation); the live host names follow from index 1, and entries past
# them (domains gone) are deleted. No braces: they are placeholders here.
public_address = {
  command = [
    "sh", "-c",
    "export ATRIUM_ADDRESS=\"$1\" ATRIUM_HOSTS=\"$2\"; su -p www-data -s /bin/sh -c 'occ=/var/www/html/occ; case \"$ATRIUM_ADDRESS\" in https:*) protocol=https ;; *) protocol=http ;; esac; php $occ config:system:set overwrite.cli.url --value=\"$ATRIUM_ADDRESS\" && php $occ config:system:set overwriteprotocol --value=$protocol || exit 1; i=1; for host in $ATRIUM_HOSTS; do php $occ config:system:set trusted_domains $i --value=\"$host\" || exit 1; i=$((i + 1)); done; while php $occ config:system:get trusted_domains $i >/dev/null 2>&1; do php $occ config:system:delete trusted_domains $i || exit 1; i=$((i + 1)); done'",
    "atrium-public-address",
    "{address}",
    "{hosts}",
  ]
}

# The hard user limit Nextcloud offers hosting providers (used by Nextcloud
# All-in-One): past it, no further accounts can be created.
user_limit = {
  method = "command"
  command = [
    "su", "-p", "www-data", "-s", "/bin/sh", "-c",
    "php /var/www/html/occ config:system:set one-click-instance --value=true --type=bool && php /var/www/html/occ config:system:set one-click-instance.user-limit --value={users} --type=int",
  ]
}

# The image's entrypoint upgrades an installation older than its code (the
# new code copied into the volume, then `occ upgrade` as www-data) when
# NEXTCLOUD_UPDATE is 1; run alone in the new image, it does only that and
# then `true`. Nextcloud refuses to skip a major version, and the backup
# taken before is put back when it refuses.
upgrade = {
  migrate = ["sh", "-c", "NEXTCLOUD_UPDATE=1 exec /entrypoint.sh true"]
}

# The database with PostgreSQL's own tools; the installation volume (code,
# config.php, apps, user files) beside it. The official postgres image has
# no restic, so the jobs run from atrium/postgres:17 (built from Debian's
# packages by scripts/app-images.sh; its pg_dump 17 reads the postgres:16
# sidecar).
#
# Nextcloud's installer makes a database role of its own (`oc_` and the
# admin's name, its password in config.php) and connects as it, so the
# tables keep their owners. Restoring into another instance (a clone, a new
# cluster) first makes that role from the restored config.php, which the
# restore writes before the database. Its name and password are checked to
# be plain words before they reach SQL: the installer makes them of letters
# and digits.
#
# The restore makes the database again and restores the dump into it in one
# transaction that stops at the first error. Tools newer than a server before
# PostgreSQL 17 turn the dump into SQL first and leave out the
# `SET transaction_timeout` that pg_dump 17 writes and such a server refuses.
backup = {
  sidecar = "postgres"
  image   = "atrium/postgres:17"
  environment = {
    PGPASSWORD = "{secret.postgres_password}"
  }
  dump = ["pg_dump", "--host={sidecar.postgres}", "--username=nextcloud", "--format=custom", "nextcloud"]
  restore = [
    "sh", "-c",
    <<-EOT
    set -eu
    config=/volumes/html/config/config.php
    user=$(sed -n "s/^ *'dbuser' => '\(.*\)',\$/\1/p" "$config")
    password=$(sed -n "s/^ *'dbpassword' => '\(.*\)',\$/\1/p" "$config")
    case "$user" in '' | *[!A-Za-z0-9_.@-]*) echo "atrium-restore: $config names no database user made of letters, digits and _.@-" >&2; exit 1 ;; esac
    case "$password" in '' | *[!A-Za-z0-9]*) echo "atrium-restore: the database password in $config is not made of letters and digits" >&2; exit 1 ;; esac
    psql="psql --host={sidecar.postgres} --username=nextcloud --dbname=postgres -v ON_ERROR_STOP=1 -tA"
    if [ "$user" != nextcloud ] && [ -z "$($psql -c "SELECT 1 FROM pg_roles WHERE rolname = '$user'")" ]; then
      $psql -c "CREATE ROLE \"$user\" LOGIN PASSWORD '$password'" > /dev/null
    fi
    server=$(psql --host={sidecar.postgres} --username=nextcloud --dbname=postgres --no-psqlrc -tAc 'SHOW server_version_num')
    tools=$(pg_restore --version | sed -n 's/^pg_restore (PostgreSQL) \([0-9]*\).*/\1/p')
    if [ "$server" -ge 170000 ] || [ "$((server / 10000))" = "$tools" ]; then
      dropdb --host={sidecar.postgres} --username=nextcloud --force --if-exists nextcloud
      createdb --host={sidecar.postgres} --username=nextcloud nextcloud
      pg_restore --host={sidecar.postgres} --username=nextcloud --dbname=nextcloud --exit-on-error --single-transaction
    else
      rm -f /backup/database.sql
      pg_restore --file=/backup/database.sql
      sed -i '/^SET transaction_timeout = /d' /backup/database.sql
      dropdb --host={sidecar.postgres} --username=nextcloud --force --if-exists nextcloud
      createdb --host={sidecar.postgres} --username=nextcloud nextcloud
      psql --host={sidecar.postgres} --username=nextcloud --dbname=nextcloud --no-psqlrc --quiet -v ON_ERROR_STOP=1 --single-transaction --file=/backup/database.sql > /dev/null
      rm /backup/database.sql
    fi
    EOT
  ]
}
