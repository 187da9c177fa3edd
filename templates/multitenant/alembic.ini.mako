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
