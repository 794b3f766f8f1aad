# odoo: the Odoo ERP suite (Community edition), from the official `odoo` image,
# with a PostgreSQL sidecar.
#
# Caveats: the app runs threaded (no `--workers`), so live chat and the bus go
# through port 8069 and no gevent port is needed. The database is created on
# the first start (`--database=odoo` creates and initialises it); the database
# manager is switched off so nobody can reach it with the default master
# password. Odoo creates its own `admin` user (uid 2) with password `admin`:
# the manager command replaces that password with a generated one. Odoo 16 to
# 18 still name the groups field `groups_id` (19 renames it `group_ids`).
name        = "odoo"
description = "Odoo Community: ERP, CRM, accounting, inventory and more."
port        = 8069

# The image runs as its own unprivileged user on a high port: no capability.
capabilities = []

channels = {
  stable = {
    image    = "odoo:{version}"
    versions = ["17.0", "18.0"]
    default  = "18.0"
  }
  vanilla = {
    image    = "odoo:{version}"
    versions = ["16.0", "17.0", "18.0"]
    default  = "18.0"
  }
  custom = {
    image    = "atrium/odoo-custom:{version}"
    versions = ["17.0", "18.0"]
    default  = "18.0"
  }
}

# The image's entrypoint adds the database connection from HOST, PORT, USER
# and PASSWORD to every `odoo` command line.
command = [
  "odoo",
  "--database=odoo",
  "--db-filter=^odoo$",
  "--no-database-list",
  "--without-demo=all",
  "--proxy-mode",
]

environment = {
  HOST     = "{sidecar.postgres}"
  PORT     = "5432"
  USER     = "odoo"
  PASSWORD = "{secret.postgres_password}"
}

# The filestore and sessions; add-ons come from the image, so that an upgraded
# custom image brings its add-ons along.
volumes = {
  data = "/var/lib/odoo"
}

# The image installs curl; /web/health exists since Odoo 16.
health = {
  command      = ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8069/web/health"]
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
      POSTGRES_DB       = "postgres"
      POSTGRES_USER     = "odoo"
      POSTGRES_PASSWORD = "{secret.postgres_password}"
    }
    volumes = {
      data = "/var/lib/postgresql/data"
    }
    health = {
      command      = ["pg_isready", "-U", "odoo", "-d", "postgres"]
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

# `odoo shell` runs the Python it reads on stdin against the database. The
# manager gets Settings access (base.group_system, which implies the internal
# user and access-rights groups); the built-in admin only gets a new password.
# Values reach Python through the environment, never through the code, so a
# quote in a name cannot break it; the code avoids braces because braces are
# placeholders here. Running it twice changes nothing.
manager_account = {
  login_path = "/web/login"
  method = "command"
  role   = "base.group_system"
  command = [
    "sh", "-c",
    "printf '%s\\n' \"$1\" | ATRIUM_MANAGER_EMAIL=\"$2\" ATRIUM_MANAGER_NAME=\"$3\" ATRIUM_MANAGER_PASSWORD=\"$4\" ATRIUM_ROOT_PASSWORD=\"$5\" odoo shell --no-http --database=odoo --db_host=\"$HOST\" --db_port=\"$PORT\" --db_user=\"$USER\" --db_password=\"$PASSWORD\"",
    "atrium-manager-account",
    "import os\nusers = env['res.users'].with_context(no_reset_password=True)\nemail = os.environ['ATRIUM_MANAGER_EMAIL']\nif not users.search([('login', '=', email)]):\n    users.create(dict(name=os.environ['ATRIUM_MANAGER_NAME'], login=email, email=email, password=os.environ['ATRIUM_MANAGER_PASSWORD'], groups_id=[(6, 0, [env.ref('base.group_system').id])]))\nenv.ref('base.user_admin').write(dict(password=os.environ['ATRIUM_ROOT_PASSWORD']))\nenv.cr.commit()\n",
    "{manager.email}",
    "{manager.name}",
    "{manager.password}",
    "{secret.root_password}",
  ]
  # Secrets are generated for the names the environment maps use, so the
  # command's secrets are named here too.
  environment = {
    ATRIUM_ROOT_PASSWORD = "{secret.root_password}"
  }
}

# Odoo Community has no user limit setting.
user_limit = {
  method = "unsupported"
}

# An upgrade updates every installed module's data (`--update=all`) in a
# one-shot run of the new image, with the database arguments the entrypoint
# adds. That migrates within a major version (the image tags 17.0 and 18.0
# move with Odoo's fixes). Odoo Community ships no migration between major
# versions (17.0 -> 18.0 needs OpenUpgrade's scripts in a custom image): the
# run fails, and the backup taken before it is put back, so 17.0 serves its
# data again.
upgrade = {
  migrate = ["odoo", "--database=odoo", "--update=all", "--stop-after-init", "--no-http"]
}

# The database with PostgreSQL's own tools; the filestore volume beside it.
# The official postgres image has no restic, so the jobs run from
# atrium/postgres:17 (built from Debian's packages by scripts/app-images.sh;
# its pg_dump 17 reads the postgres:16 sidecar). Odoo connects as `odoo`, the
# database superuser, so the restored tables may belong to it.
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
  dump    = ["pg_dump", "--host={sidecar.postgres}", "--username=odoo", "--format=custom", "odoo"]
  restore = [
    "sh", "-c",
    <<-EOT
    set -eu
    server=$(psql --host={sidecar.postgres} --username=odoo --dbname=postgres --no-psqlrc -tAc 'SHOW server_version_num')
    tools=$(pg_restore --version | sed -n 's/^pg_restore (PostgreSQL) \([0-9]*\).*/\1/p')
    if [ "$server" -ge 170000 ] || [ "$((server / 10000))" = "$tools" ]; then
      dropdb --host={sidecar.postgres} --username=odoo --force --if-exists odoo
      createdb --host={sidecar.postgres} --username=odoo odoo
      pg_restore --host={sidecar.postgres} --username=odoo --dbname=odoo --exit-on-error --single-transaction --no-owner
    else
      rm -f /backup/database.sql
      pg_restore --no-owner --file=/backup/database.sql
      sed -i '/^SET transaction_timeout = /d' /backup/database.sql
      dropdb --host={sidecar.postgres} --username=odoo --force --if-exists odoo
      createdb --host={sidecar.postgres} --username=odoo odoo
      psql --host={sidecar.postgres} --username=odoo --dbname=odoo --no-psqlrc --quiet -v ON_ERROR_STOP=1 --single-transaction --file=/backup/database.sql > /dev/null
      rm /backup/database.sql
    fi
    EOT
  ]
}
