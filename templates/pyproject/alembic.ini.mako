# asyncmigrate: the database URL and logging. Migration settings are in
# [tool.asyncmigrate] of pyproject.toml.

[alembic]
# Database URL. ${"${NAME}"} and ${"${NAME:-default}"} expand from the environment, and
# the ASYNCMIGRATE_DATABASE_URL environment variable overrides this line.
sqlalchemy.url = ${"${DATABASE_URL:-sqlite+aiosqlite:///%(here)s/app.db}"}

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
