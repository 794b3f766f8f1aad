# mediawiki: the company wiki, Debian's own MediaWiki package (apache2 and
# mod_php) in an image built on this machine (scripts/app-images.sh), with
# MariaDB from Debian as its sidecar. 1.39 is bookworm's, 1.43 trixie's: an
# upgrade runs MediaWiki's update.php.
#
# The image runs as www-data and needs no capability. Its `atrium-app`
# command starts the wiki (waiting for the database and, on the first start,
# installing it with install.php), runs update.php alone (`migrate`), runs a
# maintenance script (`runner SCRIPT ARGS`), or saves the wiki's public
# address in its volume (`server URL`).
name        = "mediawiki"
description = "MediaWiki: the company wiki."
port        = 8080

channels = {
  stable = {
    image    = "atrium/mediawiki:{version}"
    versions = ["1.39", "1.43"]
    default  = "1.39"
  }
  vanilla = {
    image    = "atrium/mediawiki:{version}"
    versions = ["1.39", "1.43"]
    default  = "1.39"
  }
  custom = {
    image    = "atrium/mediawiki:{version}"
    versions = ["1.39"]
    default  = "1.39"
  }
}

# MW_ADMIN_USER is MediaWiki's first administrator, made by install.php on the
# first start with a generated password nobody is given: the manager is her
# own account.
environment = {
  MW_DB_HOST        = "{sidecar.mariadb}"
  MW_DB_NAME        = "mediawiki"
  MW_DB_USER        = "mediawiki"
  MW_DB_PASSWORD    = "{secret.mariadb_password}"
  MW_SITE_NAME      = "{tenant} wiki"
  MW_ADMIN_USER     = "Admin"
  MW_ADMIN_PASSWORD = "{secret.root_password}"
}

# Settings written by install.php (its secret key), uploads.
volumes = {
  state = "/var/lib/mediawiki-state"
}

# The API answers only once PHP, the database and the installed schema do.
health = {
  command      = ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/api.php?action=query&meta=siteinfo&format=json"]
  interval     = "5s"
  timeout      = "5s"
  retries      = 3
  start_period = "5m"
}

sidecars = {
  mariadb = {
    image = "atrium/mariadb:10.11"
    resources = {
      basic      = { cpus = 0.5, memory_mb = 256 }
      business   = { cpus = 0.5, memory_mb = 512 }
      enterprise = { cpus = 1, memory_mb = 1024 }
    }
    environment = {
      MARIADB_DATABASE      = "mediawiki"
      MARIADB_USER          = "mediawiki"
      MARIADB_PASSWORD      = "{secret.mariadb_password}"
      MARIADB_ROOT_PASSWORD = "{secret.mariadb_root_password}"
    }
    volumes = {
      data = "/var/lib/mysql"
    }
    health = {
      command      = ["mariadb-admin", "--silent", "ping"]
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

# The manager is a bureaucrat and administrator (sysop) of the wiki under her
# own name, never `Admin`. createAndPromote --force sets the password of an
# account that exists and adds the groups, so running it again changes
# nothing else.
manager_account = {
  login_path = "/index.php?title=Special:UserLogin"
  method     = "command"
  role       = "bureaucrat"
  # MediaWiki's user names: her name, without # < > [ ] | { } / @ : = and
  # other characters a page title cannot hold, at most 85 characters.
  login = {
    from        = "name"
    punctuation = " -.,'()&"
    max_length  = 85
  }
  command = [
    "atrium-app", "runner", "createAndPromote", "--force", "--bureaucrat", "--sysop",
    "{manager.login}",
    "{manager.password}",
  ]
}

# MediaWiki has no user limit of its own: the users in use are its accounts,
# not the first administrator (MW_ADMIN_USER) or the system users MediaWiki
# makes for itself (whose token is invalid: nobody can log in as them).
user_limit = {
  method       = "unsupported"
  users_in_use = ["sh", "-c", "MYSQL_PWD=\"$MW_DB_PASSWORD\" mariadb --host=\"$MW_DB_HOST\" --user=\"$MW_DB_USER\" --batch --skip-column-names \"$MW_DB_NAME\" -e \"SELECT COUNT(*) FROM user WHERE user_token NOT LIKE '*** INVALID ***%' AND user_name <> '$MW_ADMIN_USER'\""]
}

# Links and redirects use $wgServer, which the image reads from its volume.
public_address = {
  command = ["atrium-app", "server", "{address}"]
}

# An upgrade stops the old version, backs up, runs update.php, then starts
# the new.
upgrade = {
  migrate = ["atrium-app", "migrate"]
}

# The database with MariaDB's own tools (run from the sidecar's image on the
# tenant's network), the state volume archived beside it. The dump drops and
# makes the database again when it is restored.
backup = {
  sidecar = "mariadb"
  environment = {
    MYSQL_PWD = "{secret.mariadb_password}"
  }
  dump    = ["mariadb-dump", "--host={sidecar.mariadb}", "--user=mediawiki", "--single-transaction", "--routines", "--add-drop-database", "--databases", "mediawiki"]
  restore = ["mariadb", "--host={sidecar.mariadb}", "--user=mediawiki"]
}
