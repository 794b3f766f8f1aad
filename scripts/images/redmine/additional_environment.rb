# Written by the atrium/redmine image: logs go to the container's output,
# unbuffered, and migrations do not try to dump the schema into the read-only
# /usr/share/redmine/db.
$stdout.sync = true
config.logger = ActiveSupport::TaggedLogging.new(ActiveSupport::Logger.new($stdout))
config.log_level = :info
config.active_record.dump_schema_after_migration = false
