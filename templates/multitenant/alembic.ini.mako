# asyncmigrate configuration. The file keeps Alembic's format: the alembic
# command reads it too.

[alembic]
# Path to the migration scripts (env.py, script.py.mako, versions/).
script_location = ${script_location}

# Added to sys.path so env.py and revision files can import your code.
prepend_sys_path = .
path_separator = os

# Revision file names: %%(rev)s, %%(slug)s, %%(year)d, %%(month).2d, %%(day).2d ...
# file_template = %%(year)d_%%(month).2d_%%(day).2d-%%(rev)s_%%(slug)s

# Database URL. ${"${NAME}"} and ${"${NAME:-default}"} expand from the environment, and
# the ASYNCMIGRATE_DATABASE_URL environment variable overrides this line.
# Sync-style URLs (postgresql://, postgres://, sqlite:///, mysql://) are mapped
# to async drivers (asyncpg, aiosqlite, asyncmy).
sqlalchemy.url = ${"${DATABASE_URL:-sqlite+aiosqlite:///%(here)s/app.db}"}

# Cross-process migration lock (PostgreSQL advisory lock, MySQL GET_LOCK,
# SQLite lock file): on by default; seconds to wait for another migrator.
# lock = true
# lock_timeout = 300

# Audit trail: one row per applied step (revision, checksum of its file, when,
# how long, by whom, outcome) in this table beside the version table.
# `asyncmigrate log` shows it; `asyncmigrate validate` checks the files against it.
history_table = asyncmigrate_history
# Schema-per-tenant fleet: one history table for the whole database, in this
# schema, each row naming its tenant's schema (one CREATE TABLE per database,
# not one per tenant schema). Unset: a table beside each tenant's version table.
# history_table_schema = public

# Zero-downtime guard: how long one statement of a step may wait for a table
# lock (PostgreSQL lock_timeout; MySQL/MariaDB lock_wait_timeout). A step that
# waits longer is rolled back -- the application's queries go through -- and
# tried again after a jittered pause (doubling from step_retry_delay), up to
# step_retries times; then it fails naming the session that holds the lock.
# Leave step_lock_timeout unset for Alembic's behaviour (wait indefinitely).
step_lock_timeout = 5s
step_retries = 5
step_retry_delay = 1s
# How long one statement may run (PostgreSQL statement_timeout, MariaDB
# max_statement_time); unset by default.
# step_statement_timeout = 15min

[post_write_hooks]
# Format new revision files, e.g. with ruff:
# hooks = ruff
# ruff.type = module
# ruff.module = ruff
# ruff.options = format REVISION_SCRIPT_FILENAME

[loggers]
keys = root,sqlalchemy,asyncmigrate

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_asyncmigrate]
level = WARNING
handlers =
qualname = asyncmigrate

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
