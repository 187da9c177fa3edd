"""Migration environment: how asyncmigrate connects to the database and runs a command.

asyncmigrate executes this file in the caller's event loop (CLI, FastAPI
lifespan, pytest). ``context`` is task-local: concurrent migrations of many
databases in one process each see their own.
"""

from logging.config import fileConfig

from sqlalchemy.engine import Connection

from asyncmigrate import context

config = context.config

# Logging from the [loggers] sections of the ini file (applied once per process).
if config.config_file_name is not None and config.file_config.has_section("loggers"):
    fileConfig(config.config_file_name)

# Add your model's MetaData here for 'revision --autogenerate' and 'check':
# from myapp.models import Base
# target_metadata = Base.metadata
target_metadata = None


def run_migrations_offline() -> None:
    """Render SQL for 'upgrade --sql' without connecting."""
    context.configure(
        url=context.url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    """Run the command's migrations over one (sync-facing) connection."""
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    """Connect (or use the engine/connection the caller passed) and migrate."""
    async with context.connect() as connection:
        await connection.run_sync(do_run_migrations)


if context.is_offline_mode():
    run_migrations_offline()
else:
    context.run_async(run_migrations_online)
