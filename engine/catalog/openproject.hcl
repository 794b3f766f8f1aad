# openproject: project management, from the official all-in-one image (web,
# background worker, cron and memcached in one container), with a PostgreSQL
# sidecar; the image's own PostgreSQL stays off because DATABASE_URL points
# elsewhere.
#
# Caveats: OpenProject answers 400 to any Host header other than its host
# name and the additional ones, and reads them from the environment at boot
# only, so `public_address` (a command in the running app) cannot set them:
# the host name is the instance's network alias and an operator must set
# OPENPROJECT_HOST__NAME to the public host name through customizations.
# OpenProject reads environment values as YAML, so generated secrets must be
# plain letters and digits. The seeder creates the built-in `admin` user; it
# gets a generated password and the manager never uses it.
name        = "openproject"
description = "OpenProject Community: projects, work packages, Gantt charts and boards."
port        = 80

# Starts as root to listen on port 80 and prepare its files, then its
# servers step down to their own user; every other capability is dropped.
capabilities = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "NET_BIND_SERVICE", "SETGID", "SETUID"]

channels = {
  stable = {
    image    = "openproject/openproject:{version}"
    versions = ["16.1.1", "16.6.2"]
    default  = "16.6.2"
  }
  vanilla = {
    image    = "openproject/openproject:{version}"
    versions = ["15.4.1", "16.1.1", "16.6.2"]
    default  = "16.6.2"
  }
  custom = {
    image    = "atrium/openproject-custom:{version}"
    versions = ["16.6.2"]
    default  = "16.6.2"
  }
}

environment = {
  # No query parameters: the all-in-one start script also hands this URL to psql.
  DATABASE_URL                         = "postgres://openproject:{secret.postgres_password}@{sidecar.postgres}:5432/openproject"
  SECRET_KEY_BASE                      = "{secret.secret_key_base}"
  OPENPROJECT_HOST__NAME               = "atrium-{tenant}-{instance}"
  OPENPROJECT_ADDITIONAL__HOST__NAMES  = "localhost"
  OPENPROJECT_HTTPS                    = "true"
  OPENPROJECT_DEFAULT__LANGUAGE        = "en"
  OPENPROJECT_SEED_ADMIN_USER_PASSWORD = "{secret.root_password}"
  # Nobody signs in as the seeded admin, so forcing a password change is noise.
  OPENPROJECT_SEED_ADMIN_USER_PASSWORD_RESET = "false"
}

# Attachments and repositories.
volumes = {
  assets = "/var/openproject/assets"
}

# curl comes with the ruby base image. The forwarded protocol keeps the
# HTTPS redirect out of the way; localhost is an allowed host name.
health = {
  command      = ["curl", "-fsS", "-o", "/dev/null", "-H", "X-Forwarded-Proto: https", "http://localhost:80/health_checks/default"]
  interval     = "30s"
  timeout      = "10s"
  retries      = 3
  start_period = "10m"
}

sidecars = {
  postgres = {
    image = "postgres:17"
    # Its entrypoint makes the data directory its own, then steps down to its user.
    capabilities = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"]
    resources = {
      basic      = { cpus = 0.5, memory_mb = 512 }
      business   = { cpus = 1, memory_mb = 1024 }
      enterprise = { cpus = 2, memory_mb = 2048 }
    }
    environment = {
      POSTGRES_DB       = "openproject"
      POSTGRES_USER     = "openproject"
      POSTGRES_PASSWORD = "{secret.postgres_password}"
    }
    volumes = {
      data = "/var/lib/postgresql/data"
    }
    health = {
      command      = ["pg_isready", "-U", "openproject", "-d", "openproject"]
      interval     = "10s"
      timeout      = "5s"
      retries      = 5
      start_period = "30s"
    }
  }
}

resources = {
  basic      = { cpus = 1, memory_mb = 2048 }
  business   = { cpus = 2, memory_mb = 4096 }
  enterprise = { cpus = 4, memory_mb = 8192 }
}

# rails runner as the image's `app` user (gosu keeps the environment);
# `rails runner CODE ARGS` hands ARGS to the code as ARGV, so the manager's
# details never become code. `admin: true` is OpenProject's Administrator. The
# code avoids braces because braces are placeholders here. Running it twice
# changes nothing.
manager_account = {
  login_path = "/login"
  method = "command"
  role   = "Administrator"
  command = [
    "gosu", "app", "bundle", "exec", "rails", "runner",
    "email, name, password = ARGV\nunless User.exists?(login: email)\n  first, last = name.split(' ', 2)\n  user = User.new(login: email, mail: email, firstname: first, lastname: last || first, admin: true, status: :active)\n  user.password = password\n  user.password_confirmation = password\n  user.save!\nend\n",
    "{manager.email}",
    "{manager.name}",
    "{manager.password}",
  ]
}

# The Community edition has no user limit setting.
user_limit = {
  method = "unsupported"
}

# What upstream's seeder container runs on every upgrade: the migrations,
# then the seed data a new version brings (types, statuses), as the `app`
# user, in a one-shot run of the new image.
upgrade = {
  migrate = ["gosu", "app", "bundle", "exec", "rake", "db:migrate", "db:seed"]
}

# The database with PostgreSQL's own tools; the attachments volume beside it.
# The official postgres image has no restic, so the jobs run from
# atrium/postgres:17 (built from Debian's packages by scripts/app-images.sh;
# the sidecar is postgres:17 too). OpenProject connects as `openproject`, the
# database superuser.
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
  dump    = ["pg_dump", "--host={sidecar.postgres}", "--username=openproject", "--format=custom", "openproject"]
  restore = [
    "sh", "-c",
    <<-EOT
    set -eu
    server=$(psql --host={sidecar.postgres} --username=openproject --dbname=postgres --no-psqlrc -tAc 'SHOW server_version_num')
    tools=$(pg_restore --version | sed -n 's/^pg_restore (PostgreSQL) \([0-9]*\).*/\1/p')
    if [ "$server" -ge 170000 ] || [ "$((server / 10000))" = "$tools" ]; then
      dropdb --host={sidecar.postgres} --username=openproject --force --if-exists openproject
      createdb --host={sidecar.postgres} --username=openproject openproject
      pg_restore --host={sidecar.postgres} --username=openproject --dbname=openproject --exit-on-error --single-transaction --no-owner
    else
      rm -f /backup/database.sql
      pg_restore --no-owner --file=/backup/database.sql
      sed -i '/^SET transaction_timeout = /d' /backup/database.sql
      dropdb --host={sidecar.postgres} --username=openproject --force --if-exists openproject
      createdb --host={sidecar.postgres} --username=openproject openproject
      psql --host={sidecar.postgres} --username=openproject --dbname=openproject --no-psqlrc --quiet -v ON_ERROR_STOP=1 --single-transaction --file=/backup/database.sql > /dev/null
      rm /backup/database.sql
    fi
    EOT
  ]
}
