# Written by the atrium/redmine image: the log goes to the container's
# standard error (unbuffered), which keeps the output of `atrium-app runner`
# to what its code prints; migrations do not try to dump the schema into the
# read-only /usr/share/redmine/db.
$stderr.sync = true
config.logger = ActiveSupport::TaggedLogging.new(ActiveSupport::Logger.new($stderr))
config.log_level = :info
config.active_record.dump_schema_after_migration = false
