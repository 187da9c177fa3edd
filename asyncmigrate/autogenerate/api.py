"""Autogenerate's entry points: compare, produce operations, render, write a revision, check.

Synchronous functions (:func:`compare_metadata`, :func:`produce_migrations`,
:func:`render_python_code`) work on a :class:`~asyncmigrate.runtime.MigrationContext`
over a sync connection -- inside env.py, or inside
``AsyncConnection.run_sync``. The coroutines (:func:`revision_with_autogenerate`,
:func:`check_models`) run env.py the way every command does, and are what
``asyncmigrate revision --autogenerate`` and ``asyncmigrate check`` call.

From Python, inside your event loop::

    from asyncmigrate import Config, command

    config = Config("alembic.ini")
    script = await command.revision(config, "add email", autogenerate=True)
    await command.check(config)          # raises NotAtHeadError listing any differences

    # compare against one reference tenant of a multi-tenant set-up
    from asyncmigrate.autogenerate import revision_with_autogenerate
    from asyncmigrate.tenants import Tenant

    await revision_with_autogenerate(
        config, message="add email", tenant=Tenant("reference", "postgresql://.../app", schema="t1")
    )
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import anyio
from sqlalchemy import MetaData
from sqlalchemy.engine.url import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..exceptions import CommandError, NotAtHeadError
from ..masking import get_logger
from ..operations import ops
from . import render
from .compare import produce_net_changes
from .context import AutogenContext, RenderItemFn

if TYPE_CHECKING:
    from ..config import Config
    from ..runtime.migration import MigrationContext
    from ..script import Script, ScriptDirectory
    from ..tenants.model import Tenant

__all__ = [
    "AutogenContext",
    "RevisionContext",
    "check_models",
    "compare_metadata",
    "describe_differences",
    "produce_migrations",
    "render_python_code",
    "revision_with_autogenerate",
]

log = get_logger("asyncmigrate.autogenerate")


# -- comparing ------------------------------------------------------------------------------


def compare_metadata(context: MigrationContext, metadata: MetaData | Sequence[MetaData]) -> list[Any]:
    """Compare ``metadata`` with the database behind ``context``; return Alembic-style diffs.

    Each difference is a tuple such as ``("add_table", Table)``,
    ``("remove_column", schema, table_name, Column)``, ``("add_index", Index)``
    or ``("add_fk", ForeignKeyConstraint)``; changes to one column come as a
    list of ``("modify_type" | "modify_nullable" | "modify_default" |
    "modify_comment", schema, table_name, column_name, existing, old, new)``.
    The comparison options (``compare_type``, ``include_object``...) are
    read from ``context.opts``.
    """
    script = produce_migrations(context, metadata)
    upgrade_ops = script.upgrade_ops
    assert upgrade_ops is not None
    return upgrade_ops.as_diffs()


def produce_migrations(
    context: MigrationContext, metadata: MetaData | Sequence[MetaData]
) -> ops.MigrationScript:
    """Compare ``metadata`` with the database and return the operations as a ``MigrationScript``.

    Its upgrade operations bring the database to the models; its downgrade
    operations are their reverse.
    """
    autogen_context = AutogenContext(context, metadata=metadata)
    script = ops.MigrationScript(
        rev_id=None, upgrade_ops=ops.UpgradeOps([]), downgrade_ops=ops.DowngradeOps([])
    )
    _populate(autogen_context, script)
    return script


def _populate(autogen_context: AutogenContext, script: ops.MigrationScript) -> None:
    upgrade_ops = script.upgrade_ops_list[-1]
    downgrade_ops = script.downgrade_ops_list[-1]
    produce_net_changes(autogen_context, upgrade_ops)
    upgrade_ops.reverse_into(downgrade_ops)


# -- rendering ------------------------------------------------------------------------------


def render_python_code(
    up_or_down_op: ops.UpgradeOps | ops.DowngradeOps,
    sqlalchemy_module_prefix: str = "sa.",
    alembic_module_prefix: str = "op.",
    render_as_batch: bool = False,
    imports: Sequence[str] = (),
    render_item: RenderItemFn | None = None,
    migration_context: MigrationContext | None = None,
    user_module_prefix: str | None = None,
) -> str:
    """Render the operations of an ``UpgradeOps``/``DowngradeOps`` as Python source.

    :param migration_context: gives the dialect (default: SQLAlchemy's generic one).
    :param imports: import lines to start the collected imports with.
    """
    opts = {
        "sqlalchemy_module_prefix": sqlalchemy_module_prefix,
        "alembic_module_prefix": alembic_module_prefix,
        "render_item": render_item,
        "render_as_batch": render_as_batch,
        "user_module_prefix": user_module_prefix,
    }
    autogen_context = AutogenContext(migration_context, opts=opts, autogenerate=False)
    autogen_context.imports = set(imports)
    return render.indent(render.render_body(up_or_down_op, autogen_context))


def describe_differences(diffs: Sequence[Any] | ops.OpContainer) -> str:
    """Return a one-line summary of operations (or an ``UpgradeOps``): ``a; b; c``."""
    if isinstance(diffs, ops.OpContainer):
        items: list[ops.MigrateOperation] = []

        def walk(container: ops.OpContainer) -> None:
            for op in container.ops:
                if isinstance(op, ops.OpContainer):
                    walk(op)
                else:
                    items.append(op)

        walk(diffs)
        return "; ".join(op.description for op in items)
    return "; ".join(str(diff) for diff in diffs)


# -- writing revisions -------------------------------------------------------------------------


class RevisionContext:
    """Collect the ``MigrationScript`` objects of one ``revision`` command and write them.

    It owns the scripts (normally one; ``process_revision_directives`` may
    replace, add or remove them), the template arguments env.py adds, and
    the comparison that fills them in per migration context; writing files
    is the script directory's job.
    """

    def __init__(
        self,
        config: Config,
        script_directory: ScriptDirectory,
        command_args: dict[str, Any],
        process_revision_directives: Callable[..., None] | None = None,
    ) -> None:
        self.config = config
        self.script_directory = script_directory
        self.command_args = command_args
        self.process_revision_directives = process_revision_directives
        #: Values for ``script.py.mako``; env.py adds to them with ``configure(template_args=...)``.
        self.template_args: dict[str, Any] = {"config": config}
        self.generated_revisions: list[ops.MigrationScript] = [self._default_revision()]
        self._last_autogen_context: AutogenContext | None = None

    def _default_revision(self) -> ops.MigrationScript:
        args = self.command_args
        return ops.MigrationScript(
            rev_id=args.get("rev_id") or uuid.uuid4().hex[-12:],
            message=args.get("message"),
            upgrade_ops=ops.UpgradeOps([]),
            downgrade_ops=ops.DowngradeOps([]),
            head=args.get("head", "head"),
            splice=args.get("splice"),
            branch_label=args.get("branch_label"),
            version_path=args.get("version_path"),
            depends_on=args.get("depends_on"),
        )

    def run_autogenerate(self, rev: Any, migration_context: MigrationContext) -> None:
        """Compare on ``migration_context`` into the current script (env.py's step function)."""
        self._run_environment(rev, migration_context, True)

    def run_no_autogenerate(self, rev: Any, migration_context: MigrationContext) -> None:
        """Only run the ``process_revision_directives`` hooks (no comparison)."""
        self._run_environment(rev, migration_context, False)

    def _run_environment(
        self, rev: Any, migration_context: MigrationContext, autogenerate: bool
    ) -> None:
        if autogenerate:
            if self.command_args.get("sql"):
                raise CommandError("Using --sql with --autogenerate does not make any sense")
            current = set(rev or ())
            if current != set(self.script_directory.get_heads()):
                raise CommandError("Target database is not up to date.")
        upgrade_token = migration_context.opts.get("upgrade_token", "upgrades")
        downgrade_token = migration_context.opts.get("downgrade_token", "downgrades")
        script = self.generated_revisions[-1]
        if not getattr(script, "_needs_render", False):
            script.upgrade_ops_list[-1].upgrade_token = upgrade_token
            script.downgrade_ops_list[-1].downgrade_token = downgrade_token
            script._needs_render = True
        else:
            script.upgrade_ops_list.append(ops.UpgradeOps([], upgrade_token=upgrade_token))
            script.downgrade_ops_list.append(ops.DowngradeOps([], downgrade_token=downgrade_token))
        autogen_context = AutogenContext(migration_context, autogenerate=autogenerate)
        self._last_autogen_context = autogen_context
        if autogenerate:
            _populate(autogen_context, script)
        if self.process_revision_directives is not None:
            self.process_revision_directives(migration_context, rev, self.generated_revisions)
        hook = migration_context.opts.get("process_revision_directives")
        if hook is not None:
            hook(migration_context, rev, self.generated_revisions)
        for generated in self.generated_revisions:
            generated._needs_render = True

    def _template_args(self, script: ops.MigrationScript) -> dict[str, Any]:
        template_args = dict(self.template_args)
        if getattr(script, "_needs_render", False):
            autogen_context = self._last_autogen_context
            if autogen_context is None:  # pragma: no cover - set whenever env.py ran
                autogen_context = AutogenContext(None, autogenerate=False)
            autogen_context.imports = set(script.imports or ())
            render.render_python_into_template_args(autogen_context, script, template_args)
        else:
            template_args.setdefault("imports", "")
            template_args.setdefault("upgrades", "pass")
            template_args.setdefault("downgrades", "pass")
        return template_args

    def generate_scripts(self) -> Iterator[Script]:
        """Write each collected script (template, post-write hooks); yield the new files."""
        for script in self.generated_revisions:
            if script.rev_id is None:
                script.rev_id = uuid.uuid4().hex[-12:]
            yield self.script_directory.generate_revision(
                script.rev_id,
                script.message,
                head=script.head,
                splice=script.splice,
                branch_labels=script.branch_label,
                version_path=script.version_path,
                depends_on=script.depends_on,
                **self._template_args(script),
            )


def _target_options(
    url: str | URL | None,
    engine: AsyncEngine | None,
    connection: AsyncConnection | None,
    tenant: Tenant | None,
) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if tenant is not None:
        opts.update(url=tenant.url, tenant=tenant, tenant_schema=tenant.schema)
    if url is not None:
        from ..urls import to_async_url

        opts["url"] = to_async_url(url).render_as_string(hide_password=False)
    if engine is not None:
        opts["engine"] = engine
    if connection is not None:
        opts["connection"] = connection
    return opts


async def revision_with_autogenerate(
    config: Config,
    script: ScriptDirectory | None = None,
    *,
    message: str | None = None,
    autogenerate: bool = True,
    sql: bool = False,
    head: str = "head",
    splice: bool = False,
    branch_label: str | Sequence[str] | None = None,
    version_path: str | os.PathLike[str] | None = None,
    rev_id: str | None = None,
    depends_on: str | Sequence[str] | None = None,
    process_revision_directives: Callable[..., None] | None = None,
    url: str | URL | None = None,
    engine: AsyncEngine | None = None,
    connection: AsyncConnection | None = None,
    tenant: Tenant | None = None,
    **env_opts: Any,
) -> Script | list[Script]:
    """Write a new revision whose operations come from comparing the models with a database.

    env.py runs as for any command (its ``target_metadata``, filters and
    hooks apply); the database must be at the head revision(s). Without
    ``autogenerate`` only the ``process_revision_directives`` hooks run,
    and only when env.py runs (``revision_environment``).

    :param url: compare with this database instead of the configured one;
        with several tenants, the reference tenant's URL.
    :param tenant: a :class:`~asyncmigrate.tenants.Tenant` to compare with
        (its URL, and its schema for a schema-per-tenant set-up).
    :param engine: an ``AsyncEngine`` to take the connection from.
    :param connection: an ``AsyncConnection`` to compare over.
    :return: the new script, or a list when hooks produced none or several.
    :raises CommandError: with ``sql`` and ``autogenerate``, or when the
        database is not at head.
    """
    from ..command import _run, _script_directory

    if script is None:
        script = await _script_directory(config)
    if autogenerate and sql:
        raise CommandError("Using --sql with --autogenerate does not make any sense")
    command_args = {
        "message": message,
        "autogenerate": autogenerate,
        "sql": sql,
        "head": head,
        "splice": splice,
        "branch_label": branch_label,
        "version_path": version_path,
        "rev_id": rev_id,
        "depends_on": depends_on,
    }
    if config.cmd_opts is not None and not hasattr(config.cmd_opts, "autogenerate"):
        # Alembic's recipes read ``config.cmd_opts.autogenerate`` in env.py hooks.
        config.cmd_opts.autogenerate = autogenerate
    revision_context = RevisionContext(config, script, command_args, process_revision_directives)
    environment = autogenerate or bool(config.get_alembic_boolean_option("revision_environment"))
    if not environment and sql:
        raise CommandError(
            "Using --sql with the revision command when revision_environment is not "
            "configured does not make any sense"
        )

    def step(heads: tuple[str, ...], context: MigrationContext) -> list[Any]:
        if autogenerate:
            revision_context.run_autogenerate(heads, context)
        else:
            revision_context.run_no_autogenerate(heads, context)
        return []

    if environment:
        await _run(
            config,
            script,
            step,
            as_sql=sql,
            dont_mutate=True,
            template_args=revision_context.template_args,
            **{**env_opts, **_target_options(url, engine, connection, tenant)},
        )

    def write() -> list[Script]:
        return list(revision_context.generate_scripts())

    scripts = await anyio.to_thread.run_sync(write)
    return scripts[0] if len(scripts) == 1 else scripts


async def check_models(
    config: Config,
    *,
    url: str | URL | None = None,
    engine: AsyncEngine | None = None,
    connection: AsyncConnection | None = None,
    tenant: Tenant | None = None,
    script: ScriptDirectory | None = None,
    **env_opts: Any,
) -> list[Any]:
    """Compare env.py's ``target_metadata`` with the database; fail when they differ.

    As with Alembic, an env.py that sets no ``target_metadata`` fails the
    check: a gate that passes when the models are not wired in would hide
    the misconfiguration. The ``process_revision_directives`` hooks run
    first (as for a revision), so a hook that drops operations also
    silences them here.

    :return: the (empty) list of differences.
    :raises NotAtHeadError: when models and database differ (the message
        lists the differences on one line), or the database is not at head.
    :raises NoTargetMetadataError: when env.py sets no ``target_metadata``.
    """
    from ..command import _run, _script_directory

    if script is None:
        script = await _script_directory(config)
    revision_context = RevisionContext(
        config, script, {"message": None, "sql": False, "head": "head"}
    )

    def step(heads: tuple[str, ...], context: MigrationContext) -> list[Any]:
        if set(heads) != set(script.get_heads()):
            raise NotAtHeadError("Target database is not up to date.")
        revision_context.run_autogenerate(heads, context)
        return []

    await _run(
        config,
        script,
        step,
        dont_mutate=True,
        **{**env_opts, **_target_options(url, engine, connection, tenant)},
    )
    diffs: list[Any] = []
    summaries: list[str] = []
    for generated in revision_context.generated_revisions:
        for upgrade_ops in generated.upgrade_ops_list:
            diffs.extend(upgrade_ops.as_diffs())
            summary = describe_differences(upgrade_ops)
            if summary:
                summaries.append(summary)
    if diffs:
        raise NotAtHeadError(
            f"Models and database differ ({len(diffs)} change(s)): " + "; ".join(summaries)
        )
    return diffs
