# tryton: the ERP (parties, companies, products, accounting, sales), Debian's
# own Tryton server with its sao web client in an image built on this machine
# (scripts/app-images.sh), with PostgreSQL from Debian as its sidecar. 6.0 is
# bookworm's, 7.0 trixie's: an upgrade runs trytond-admin --all.
#
# The image runs as tryton and needs no capability. Its `atrium-app` command
# starts Tryton (waiting for the database and, on an empty one, creating
# Tryton's tables and activating the modules: 1 to 3 minutes), updates the
# database alone (`migrate`), or runs Python with trytond's pool (`runner
# CODE ARGS`, ARGS handed to the code as `args`).
name        = "tryton"
description = "Tryton: the ERP for parties, products, accounting and sales."
port        = 8000

channels = {
  stable = {
    image    = "atrium/tryton:{version}"
    versions = ["6.0", "7.0"]
    default  = "6.0"
  }
  vanilla = {
    image    = "atrium/tryton:{version}"
    versions = ["6.0", "7.0"]
    default  = "6.0"
  }
  custom = {
    image    = "atrium/tryton:{version}"
    versions = ["6.0"]
    default  = "6.0"
  }
}

# Tryton's `admin` gets a generated password that nobody is given: the manager
# is her own user.
environment = {
  TRYTON_DB_URI         = "postgresql://tryton:{secret.postgres_password}@{sidecar.postgres}:5432/"
  TRYTON_DB_NAME        = "tryton"
  TRYTON_ADMIN_EMAIL    = "admin@{tenant}.invalid"
  TRYTON_ADMIN_PASSWORD = "{secret.root_password}"
}

# Attachments (Tryton's file store).
volumes = {
  files = "/var/lib/tryton"
}

# A JSON-RPC call to the server: it answers once the database is ready.
health = {
  command      = ["python3", "/usr/local/lib/atrium/atrium_tryton.py", "health"]
  interval     = "5s"
  timeout      = "5s"
  retries      = 3
  start_period = "10m"
}

sidecars = {
  postgres = {
    image = "atrium/postgres:15"
    resources = {
      basic      = { cpus = 0.5, memory_mb = 256 }
      business   = { cpus = 0.5, memory_mb = 512 }
      enterprise = { cpus = 1, memory_mb = 1024 }
    }
    environment = {
      POSTGRES_DB       = "tryton"
      POSTGRES_USER     = "tryton"
      POSTGRES_PASSWORD = "{secret.postgres_password}"
    }
    volumes = {
      data = "/var/lib/postgresql/data"
    }
    health = {
      command      = ["pg_isready", "-q", "-h", "127.0.0.1", "-U", "tryton", "-d", "tryton"]
      interval     = "2s"
      timeout      = "5s"
      retries      = 5
      start_period = "1m"
    }
  }
}

resources = {
  basic      = { cpus = 1, memory_mb = 512 }
  business   = { cpus = 1, memory_mb = 1024 }
  enterprise = { cpus = 2, memory_mb = 2048 }
}

# The manager is an ordinary Tryton user in every group (administration,
# parties, products, accounting, sales, ...), never `admin`, whose password
# is set to the generated one again. Running it again sets the passwords and
# groups and changes nothing else. Signing in, sao asks for the database:
# the login page's address names it. No braces in the code: braces are
# placeholders here.
manager_account = {
  login_path = "/#tryton"
  method     = "command"
  role       = "every group (Administration, Sales, Account, Product, Party, Company)"
  command = [
    "atrium-app", "runner",
    "login, email, name, password, admin_password = args\nUser = pool.get('res.user')\nGroup = pool.get('res.group')\nadmin, = User.search([('login', '=', 'admin')])\nadmin.password = admin_password\nadmin.save()\nfound = User.search([('login', '=', login), ('active', 'in', [True, False])])\nuser = found[0] if found else User(login=login)\nuser.name = name\nuser.email = email\nuser.active = True\nuser.password = password\nuser.groups = Group.search([])\nuser.save()\n",
    "{manager.login}",
    "{manager.email}",
    "{manager.name}",
    "{manager.password}",
    "{secret.root_password}",
  ]
}

# Tryton has no user limit of its own: the users in use are its active users
# (not `admin`, nor `root`, which is never active).
user_limit = {
  method       = "unsupported"
  users_in_use = ["atrium-app", "runner", "print(pool.get('res.user').search_count([('login', '!=', 'admin')]))\n"]
}

# An upgrade stops the old version, backs up, migrates, then starts the new.
upgrade = {
  migrate = ["atrium-app", "migrate"]
}

# The database with PostgreSQL's own tools (run from the sidecar's image on
# the tenant's network), the volumes archived beside it.
backup = {
  sidecar = "postgres"
  environment = {
    PGPASSWORD = "{secret.postgres_password}"
  }
  dump    = ["pg_dump", "--host={sidecar.postgres}", "--username=tryton", "--format=custom", "tryton"]
  restore = ["sh", "-c", "dropdb --host={sidecar.postgres} --username=tryton --force tryton && createdb --host={sidecar.postgres} --username=tryton tryton && pg_restore --host={sidecar.postgres} --username=tryton --dbname=tryton --exit-on-error --single-transaction --no-owner"]
}
