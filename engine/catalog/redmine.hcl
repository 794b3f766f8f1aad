# redmine: project tracking (issues, wiki, time tracking, like OpenProject),
# Debian's own Redmine package in an image built on this machine
# (scripts/app-images.sh), with PostgreSQL from Debian as its sidecar. 5.0 is
# bookworm's, 6.0 trixie's: an upgrade runs Redmine's migrations.
#
# The image runs as www-data and needs no capability. Its `atrium-app`
# command starts Redmine (waiting for the database, migrating it and, on an
# empty one, loading Redmine's default roles and trackers), runs the
# migrations alone (`migrate`), or runs Ruby in Redmine (`runner CODE
# ARGS`, ARGS handed to the code as ARGV so that no argument becomes code).
name        = "redmine"
description = "Redmine: projects, issues, wiki and time tracking."
port        = 3000

channels = {
  stable = {
    image    = "atrium/redmine:{version}"
    versions = ["5.0", "6.0"]
    default  = "5.0"
  }
  vanilla = {
    image    = "atrium/redmine:{version}"
    versions = ["5.0", "6.0"]
    default  = "5.0"
  }
  custom = {
    image    = "atrium/redmine:{version}"
    versions = ["5.0"]
    default  = "5.0"
  }
}

environment = {
  REDMINE_DB_HOST         = "{sidecar.postgres}"
  REDMINE_DB_NAME         = "redmine"
  REDMINE_DB_USER         = "redmine"
  REDMINE_DB_PASSWORD     = "{secret.postgres_password}"
  REDMINE_SECRET_KEY_BASE = "{secret.secret_key_base}"
}

# Attachments.
volumes = {
  files = "/var/lib/redmine/default/files"
}

# The login page: Rails, the database and the default data all answer it.
health = {
  command      = ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:3000/login"]
  interval     = "5s"
  timeout      = "5s"
  retries      = 3
  start_period = "5m"
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
      POSTGRES_DB       = "redmine"
      POSTGRES_USER     = "redmine"
      POSTGRES_PASSWORD = "{secret.postgres_password}"
    }
    volumes = {
      data = "/var/lib/postgresql/data"
    }
    health = {
      command      = ["pg_isready", "-q", "-h", "127.0.0.1", "-U", "redmine", "-d", "redmine"]
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

# The manager is an ordinary (non-admin) user with Redmine's Manager role in
# the tenant's own project, which this creates; never Redmine's `admin`, whose
# first-start password (`admin`) is replaced by a generated one nobody is
# given. The REST API is switched on so that the manager's tools can use it.
# Running it again sets the passwords and changes nothing else. No braces in
# the code: braces are placeholders here.
manager_account = {
  login_path = "/login"
  # Redmine's logins: ASCII letters, digits and _-@. only, at most 60
  # characters; it never looks a login up by email.
  login = {
    from          = "email"
    punctuation   = "_-@."
    ascii_letters = true
    max_length    = 60
  }
  method     = "command"
  role       = "Manager"
  command = [
    "atrium-app", "runner",
    "login, email, name, password, tenant, root_password = ARGV\nadmin = User.find_by_login('admin')\nif admin\n  admin.password = root_password\n  admin.password_confirmation = root_password\n  admin.must_change_passwd = false\n  admin.save!\nend\nfirst, last = name.split(' ', 2)\nuser = User.find_by_login(login) || User.new(language: 'en')\nuser.login = login\nuser.mail = email\nuser.firstname = first\nuser.lastname = last || first\nuser.admin = false\nuser.status = User::STATUS_ACTIVE\nuser.must_change_passwd = false\nuser.password = password\nuser.password_confirmation = password\nuser.save!\nidentifier = tenant.match?(/\\A[a-z]/) ? tenant : 'tenant-' + tenant\nproject = Project.find_by_identifier(identifier) || Project.create!(identifier: identifier, name: tenant, is_public: false)\nrole = Role.find_by_name('Manager') or raise 'Redmine has no Manager role: its default data is not loaded'\nmember = Member.where(project_id: project.id, user_id: user.id).first || Member.new(project: project, principal: user)\nmember.role_ids = [role.id]\nmember.save!\nSetting.rest_api_enabled = '1'\n",
    "{manager.login}",
    "{manager.email}",
    "{manager.name}",
    "{manager.password}",
    "{tenant}",
    "{secret.root_password}",
  ]
}

# Redmine has no user limit of its own: the users in use are its active
# people (not the `admin` account, the anonymous user or groups).
user_limit = {
  method       = "unsupported"
  users_in_use = ["atrium-app", "runner", "puts User.where(type: 'User', status: User::STATUS_ACTIVE).where.not(login: 'admin').count"]
}

# Links in Redmine's emails use its host name and protocol settings.
public_address = {
  command = [
    "atrium-app", "runner",
    "address = URI(ARGV[0])\nSetting.host_name = address.port == address.default_port ? address.host : address.host + ':' + address.port.to_s\nSetting.protocol = address.scheme\n",
    "{address}",
  ]
}

# An upgrade stops the old version, backs up, migrates, then starts the new.
upgrade = {
  migrate = ["atrium-app", "migrate"]
}

# The database with PostgreSQL's own tools (run from the sidecar's image on
# the tenant's network), the volumes archived beside it.
#
# The restore makes the database again and restores the dump into it in one
# transaction that stops at the first error. Tools newer than a server before
# PostgreSQL 17 turn the dump into SQL first and leave out the
# `SET transaction_timeout` that pg_dump 17 writes and such a server refuses.
backup = {
  sidecar = "postgres"
  environment = {
    PGPASSWORD = "{secret.postgres_password}"
  }
  dump    = ["pg_dump", "--host={sidecar.postgres}", "--username=redmine", "--format=custom", "redmine"]
  restore = [
    "sh", "-c",
    <<-EOT
    set -eu
    server=$(psql --host={sidecar.postgres} --username=redmine --dbname=postgres --no-psqlrc -tAc 'SHOW server_version_num')
    tools=$(pg_restore --version | sed -n 's/^pg_restore (PostgreSQL) \([0-9]*\).*/\1/p')
    if [ "$server" -ge 170000 ] || [ "$((server / 10000))" = "$tools" ]; then
      dropdb --host={sidecar.postgres} --username=redmine --force --if-exists redmine
      createdb --host={sidecar.postgres} --username=redmine redmine
      pg_restore --host={sidecar.postgres} --username=redmine --dbname=redmine --exit-on-error --single-transaction --no-owner
    else
      rm -f /backup/database.sql
      pg_restore --no-owner --file=/backup/database.sql
      sed -i '/^SET transaction_timeout = /d' /backup/database.sql
      dropdb --host={sidecar.postgres} --username=redmine --force --if-exists redmine
      createdb --host={sidecar.postgres} --username=redmine redmine
      psql --host={sidecar.postgres} --username=redmine --dbname=redmine --no-psqlrc --quiet -v ON_ERROR_STOP=1 --single-transaction --file=/backup/database.sql > /dev/null
      rm /backup/database.sql
    fi
    EOT
  ]
}
