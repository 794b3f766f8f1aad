# mattermost: team chat, from the official Team Edition image, with a
# PostgreSQL sidecar.
#
# Caveats: settings given by environment variables override config.json and
# are greyed out in the System Console. The site URL (links in notification
# emails, OAuth callbacks) is set through `public_address` whenever a domain
# goes live or away, so it stays editable in config.json. The user limit is Mattermost's per-team limit: it caps each team, not the
# instance.
name        = "mattermost"
description = "Mattermost Team Edition: team chat, channels and calls."
port        = 8065

# The image runs as its own unprivileged user on a high port: no capability.
capabilities = []

channels = {
  stable = {
    image    = "mattermost/mattermost-team-edition:{version}"
    versions = ["10.5.4", "10.11.2"]
    default  = "10.11.2"
  }
  vanilla = {
    image    = "mattermost/mattermost-team-edition:{version}"
    versions = ["9.11.6", "10.5.4", "10.11.2"]
    default  = "10.11.2"
  }
  custom = {
    image    = "atrium/mattermost-custom:{version}"
    versions = ["10.11.2"]
    default  = "10.11.2"
  }
}

environment = {
  MM_SQLSETTINGS_DRIVERNAME = "postgres"
  MM_SQLSETTINGS_DATASOURCE = "postgres://mmuser:{secret.postgres_password}@{sidecar.postgres}:5432/mattermost?sslmode=disable&connect_timeout=10"
  MM_BLEVESETTINGS_INDEXDIR = "/mattermost/bleve-indexes"
  # Local mode opens a unix socket inside the container only; the manager
  # command uses it, so no administrator token is ever needed.
  MM_SERVICESETTINGS_ENABLELOCALMODE = "true"
}

# The directories the official compose setup keeps on volumes.
volumes = {
  config         = "/mattermost/config"
  data           = "/mattermost/data"
  logs           = "/mattermost/logs"
  plugins        = "/mattermost/plugins"
  client-plugins = "/mattermost/client/plugins"
  bleve-indexes  = "/mattermost/bleve-indexes"
}

# The image installs curl and uses the same ping in its own HEALTHCHECK.
health = {
  command      = ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8065/api/v4/system/ping"]
  interval     = "30s"
  timeout      = "10s"
  retries      = 3
  start_period = "2m"
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
      POSTGRES_DB       = "mattermost"
      POSTGRES_USER     = "mmuser"
      POSTGRES_PASSWORD = "{secret.postgres_password}"
    }
    volumes = {
      data = "/var/lib/postgresql/data"
    }
    health = {
      command      = ["pg_isready", "-U", "mmuser", "-d", "mattermost"]
      interval     = "10s"
      timeout      = "5s"
      retries      = 5
      start_period = "30s"
    }
  }
}

resources = {
  basic      = { cpus = 1, memory_mb = 1024 }
  business   = { cpus = 2, memory_mb = 2048 }
  enterprise = { cpus = 4, memory_mb = 4096 }
}

# mmctl in local mode creates the manager as a system admin. Mattermost user
# names allow no "@", so the manager signs in with the email address (allowed
# by default) and the user name is the fixed, valid `manager`.
manager_account = {
  login_path = "/login"
  method = "command"
  role   = "system_admin"
  command = [
    "/mattermost/bin/mmctl", "--local", "user", "create",
    "--email", "{manager.email}",
    "--username", "manager",
    "--firstname", "{manager.name}",
    "--password", "{manager.password}",
    "--system-admin",
    "--email-verified",
  ]
}

user_limit = {
  method   = "environment"
  variable = "MM_TEAMSETTINGS_MAXUSERSPERTEAM"
}

# mmctl in local mode writes the site URL into config.json (on its volume).
public_address = {
  command = ["/mattermost/bin/mmctl", "--local", "config", "set", "ServiceSettings.SiteURL", "{address}"]
}

# Mattermost migrates its schema at every start; an upgrade runs the same
# migrations first, alone (`mattermost db migrate`, the new image's binary
# with the instance's configuration), so the switch waits for them and a
# failed one puts the backup back.
upgrade = {
  migrate = ["mattermost", "db", "migrate"]
}

# The database with PostgreSQL's own tools; the files, configuration and
# plugins volumes beside it. The official postgres image has no restic, so
# the jobs run from atrium/postgres:17 (built from Debian's packages by
# scripts/app-images.sh; its pg_dump 17 reads the postgres:16 sidecar).
# Mattermost connects as `mmuser`, the database superuser.
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
  dump    = ["pg_dump", "--host={sidecar.postgres}", "--username=mmuser", "--format=custom", "mattermost"]
  restore = [
    "sh", "-c",
    <<-EOT
    set -eu
    server=$(psql --host={sidecar.postgres} --username=mmuser --dbname=postgres --no-psqlrc -tAc 'SHOW server_version_num')
    tools=$(pg_restore --version | sed -n 's/^pg_restore (PostgreSQL) \([0-9]*\).*/\1/p')
    if [ "$server" -ge 170000 ] || [ "$((server / 10000))" = "$tools" ]; then
      dropdb --host={sidecar.postgres} --username=mmuser --force --if-exists mattermost
      createdb --host={sidecar.postgres} --username=mmuser mattermost
      pg_restore --host={sidecar.postgres} --username=mmuser --dbname=mattermost --exit-on-error --single-transaction --no-owner
    else
      rm -f /backup/database.sql
      pg_restore --no-owner --file=/backup/database.sql
      sed -i '/^SET transaction_timeout = /d' /backup/database.sql
      dropdb --host={sidecar.postgres} --username=mmuser --force --if-exists mattermost
      createdb --host={sidecar.postgres} --username=mmuser mattermost
      psql --host={sidecar.postgres} --username=mmuser --dbname=mattermost --no-psqlrc --quiet -v ON_ERROR_STOP=1 --single-transaction --file=/backup/database.sql > /dev/null
      rm /backup/database.sql
    fi
    EOT
  ]
}
