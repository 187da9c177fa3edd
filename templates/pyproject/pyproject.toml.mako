
[tool.asyncmigrate]
# Path to the migration scripts (env.py, script.py.mako, versions/).
script_location = "${script_location}"

# Added to sys.path so env.py and revision files can import your code.
prepend_sys_path = ["."]

# Revision file names: %%(rev)s, %%(slug)s, %%(year)d, %%(month).2d ...
# file_template = "%%(year)d_%%(month).2d_%%(day).2d-%%(rev)s_%%(slug)s"

# Cross-process migration lock; seconds to wait for another migrator.
# lock = true
# lock_timeout = 300

# Audit trail: one row per applied step (revision, checksum of its file, when,
# how long, by whom, outcome) in this table beside the version table.
# `asyncmigrate log` shows it; `asyncmigrate validate` checks the files against it.
history_table = "asyncmigrate_history"

# Zero-downtime guard: how long one statement of a step may wait for a table
# lock (PostgreSQL lock_timeout; MySQL/MariaDB lock_wait_timeout). A step that
# waits longer is rolled back -- the application's queries go through -- and
# tried again after a jittered pause (doubling from step_retry_delay), up to
# step_retries times; then it fails naming the session that holds the lock.
# Leave step_lock_timeout unset for Alembic's behaviour (wait indefinitely).
step_lock_timeout = "5s"
step_retries = 5
step_retry_delay = "1s"
# How long one statement may run (PostgreSQL statement_timeout, MariaDB
# max_statement_time); unset by default.
# step_statement_timeout = "15min"

# Format new revision files:
# [[tool.asyncmigrate.post_write_hooks]]
# name = "ruff"
# type = "module"
# module = "ruff"
# options = "format REVISION_SCRIPT_FILENAME"
