"""Alembic 1.20's public API resolves, under asyncmigrate's stand-ins, to working equivalents.

The names are read from the installed Alembic itself: every class and
function each documented module defines (or lists in ``__all__``), and the
methods those classes define. Each must resolve through the stand-in that
revision files and env.py get for ``import alembic...`` to something that
accepts Alembic's parameter names -- not a stub. What asyncmigrate does not
offer is listed in :data:`UNSUPPORTED`, each with its reason (the README's
"Not supported" says the same).
"""

from __future__ import annotations

import importlib
import inspect
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncmigrate.operations import BatchOperations, Operations
from asyncmigrate.runtime.environment import EnvironmentContext
from asyncmigrate.script.loader import alembic_alias_module, alias

#: Alembic's documented modules (its API reference), plus the helper modules
#: revision files and extensions import.
MODULES = [
    "alembic",
    "alembic.command",
    "alembic.config",
    "alembic.context",
    "alembic.op",
    "alembic.environment",
    "alembic.migration",
    "alembic.runtime.environment",
    "alembic.runtime.migration",
    "alembic.operations",
    "alembic.operations.base",
    "alembic.operations.ops",
    "alembic.operations.schemaobj",
    "alembic.operations.toimpl",
    "alembic.autogenerate",
    "alembic.autogenerate.api",
    "alembic.autogenerate.compare",
    "alembic.autogenerate.render",
    "alembic.autogenerate.rewriter",
    "alembic.script",
    "alembic.script.base",
    "alembic.script.revision",
    "alembic.script.write_hooks",
    "alembic.ddl",
    "alembic.ddl.base",
    "alembic.ddl.impl",
    "alembic.ddl.mysql",
    "alembic.ddl.postgresql",
    "alembic.ddl.sqlite",
    "alembic.util",
    "alembic.util.exc",
    "alembic.util.langhelpers",
    "alembic.util.messaging",
    "alembic.util.pyfiles",
    "alembic.util.editor",
    "alembic.util.sqla_compat",
]

_INTERNAL_RUN_LOOP = "Alembic's run-loop internals; asyncmigrate's steps and version rows are its own"
_DDL_COMPILER = (
    "a SQLAlchemy compiler hook of Alembic's DDL elements; asyncmigrate's DDL elements compile "
    "through their own"
)
_AUTOGEN_ON_IMPL = (
    "Alembic's autogenerate hooks on the dialect impl; asyncmigrate compares in "
    "asyncmigrate.autogenerate.compare (register with comparators.dispatch_for)"
)
_TEXT_RENDERING = "Alembic's CLI text rendering; asyncmigrate's CLI renders in asyncmigrate.cli"

#: ``module.name`` (or ``module.Class.method``) -> why asyncmigrate does not offer it.
UNSUPPORTED: dict[str, str] = {
    "alembic.ext": "alembic.ext.checkconstraint_byname is an opt-in Alembic 1.18 plugin; "
    "asyncmigrate compares named CHECK constraints by default",
    "alembic.runtime.migration.HeadMaintainer": _INTERNAL_RUN_LOOP,
    "alembic.migration.HeadMaintainer": _INTERNAL_RUN_LOOP,
    "alembic.runtime.migration.MigrationStep.upgrade_from_script": _INTERNAL_RUN_LOOP,
    "alembic.runtime.migration.MigrationStep.downgrade_from_script": _INTERNAL_RUN_LOOP,
    "alembic.migration.MigrationStep.upgrade_from_script": _INTERNAL_RUN_LOOP,
    "alembic.migration.MigrationStep.downgrade_from_script": _INTERNAL_RUN_LOOP,
    "alembic.config.CommandLine.run_cmd": "Alembic's argparse internals; asyncmigrate's command line "
    "is click-based: use CommandLine.main(argv), or asyncmigrate.sync",
    "alembic.config.CommandLine.register_command": "Alembic's argparse internals; asyncmigrate's "
    "command line is click-based",
    "alembic.autogenerate.compare.schema": "asyncmigrate splits comparison by concern "
    "(tables, columns, constraints, types, enums...); there is no 'schema' module",
    "alembic.operations.ops.AddConstraintOp.add_constraint_ops": "Alembic's internal dispatcher; "
    "asyncmigrate maps constraints with AddConstraintOp.register_add_constraint",
    "alembic.script.Script.log_entry": _TEXT_RENDERING,
    "alembic.script.Script.cmd_format": _TEXT_RENDERING,
    "alembic.script.base.Script.log_entry": _TEXT_RENDERING,
    "alembic.script.base.Script.cmd_format": _TEXT_RENDERING,
    "alembic.script.ScriptDirectory.run_env": "env.py runs inside a command coroutine "
    "(asyncmigrate.command), in the caller's event loop",
    "alembic.script.base.ScriptDirectory.run_env": "env.py runs inside a command coroutine "
    "(asyncmigrate.command), in the caller's event loop",
    "alembic.script.revision.Revision.verify_rev_id": "revision ids are checked by "
    "asyncmigrate.revision when the graph is built",
    "alembic.script.revision.Revision.add_nextrev": "the revision graph is built once from the "
    "files' headers and not edited afterwards",
    "alembic.script.revision.RevisionMap.add_revision": "the revision graph is built once from the "
    "files' headers and not edited afterwards",
    "alembic.ddl.mssql": "SQL Server has no DDL implementation in asyncmigrate",
    "alembic.ddl.oracle": "Oracle has no DDL implementation in asyncmigrate",
    "alembic.ddl.impl.ImplMeta": "Alembic's impl registry metaclass; asyncmigrate impls register "
    "by subclassing DefaultImpl with __dialect__",
    "alembic.ddl.impl.Params": "an internal type of Alembic's type comparison",
    "alembic.ddl.base.quote_dotted": _DDL_COMPILER,
    "alembic.ddl.postgresql.PostgresqlColumnType": _DDL_COMPILER,
    "alembic.ddl.postgresql.CreateExcludeConstraintOp": "asyncmigrate keeps it with the other "
    "operations: asyncmigrate.operations.ops.CreateExcludeConstraintOp",
    "alembic.util.Dispatcher": "Alembic's internal registry class; asyncmigrate's registries are "
    "autogenerate.renderers, autogenerate.comparators and Operations.implementation_for",
    "alembic.util.PriorityDispatcher": "Alembic's internal registry class; asyncmigrate's is "
    "asyncmigrate.autogenerate.compare.Comparators",
    "alembic.util.ModuleClsProxy": "Alembic's module-global proxies are what asyncmigrate's "
    "task-local op and context replace",
    "alembic.util.compat": "Alembic's Python-version shims",
    "alembic.runtime.plugins": "Alembic 1.18's autogenerate plugin loader; asyncmigrate's "
    "comparators are registered with comparators.dispatch_for",
}
for _module in ("alembic.util.langhelpers",):
    for _name in ("Dispatcher", "PriorityDispatcher", "ModuleClsProxy"):
        UNSUPPORTED[f"{_module}.{_name}"] = UNSUPPORTED[f"alembic.util.{_name}"]
for _method in (
    "type_synonyms",
    "type_arg_extract",
    "identity_attrs_ignore",
    "compare_type",
    "compare_server_default",
    "correct_for_autogen_constraints",
    "render_ddl_sql_expr",
    "correct_for_autogen_foreignkeys",
    "autogen_column_reflect",
    "render_type",
    "compare_indexes",
    "compare_unique_constraint",
    "compare_check_constraint",
    "adjust_reflected_dialect_options",
):
    UNSUPPORTED[f"alembic.ddl.impl.DefaultImpl.{_method}"] = _AUTOGEN_ON_IMPL
for _method in ("requires_recreate_in_batch", "prep_table_for_batch", "cast_for_batch_migrate"):
    UNSUPPORTED[f"alembic.ddl.impl.DefaultImpl.{_method}"] = (
        "batch mode's hooks on the impl take asyncmigrate's batch objects"
    )
for _dialect in ("base", "postgresql", "sqlite", "mysql"):
    for _name in dir(importlib.import_module(f"alembic.ddl.{_dialect}")):
        if _name.startswith("visit_"):
            UNSUPPORTED[f"alembic.ddl.{_dialect}.{_name}"] = _DDL_COMPILER
for _module in ("alembic.runtime.migration", "alembic.migration"):
    for _step in ("RevisionStep", "StampStep"):
        for _method in (
            "stamp_revision",
            "update_version_num",
            "merge_branch_idents",
            "unmerge_branch_idents",
            "should_delete_branch",
            "should_create_branch",
            "should_merge_branches",
            "should_unmerge_branches",
        ):
            if hasattr(getattr(importlib.import_module(_module), _step), _method):
                UNSUPPORTED[f"{_module}.{_step}.{_method}"] = _INTERNAL_RUN_LOOP
for _proxy in ("alembic.op", "alembic.context"):
    UNSUPPORTED[f"{_proxy}.create_module_class_proxy"] = (
        "Alembic's module-global proxy set-up; asyncmigrate's op and context are task-local"
    )


def _unsupported(where: str) -> bool:
    """Listed, or a dialect impl's override of a DefaultImpl method that is listed."""
    if where in UNSUPPORTED:
        return True
    parts = where.split(".")
    return (
        len(parts) == 5
        and parts[1] == "ddl"
        and parts[3].endswith("Impl")
        and f"alembic.ddl.impl.DefaultImpl.{parts[4]}" in UNSUPPORTED
    )


def _names(module: types.ModuleType) -> list[str]:
    """The public names ``module`` defines itself, lists in ``__all__``, or has as submodules."""
    listed = getattr(module, "__all__", None)
    candidates = listed if listed is not None else [n for n in dir(module) if not n.startswith("_")]
    found = []
    for name in candidates:
        value = getattr(module, name, None)
        if isinstance(value, types.ModuleType):
            if value.__name__ == f"{module.__name__}.{name}":
                found.append(name)
        elif listed is not None or getattr(value, "__module__", None) == module.__name__:
            found.append(name)
    return sorted(found)


def _missing_parameters(theirs: Any, ours: Any) -> list[str]:
    """Alembic's parameter names that ``ours`` does not accept."""
    try:
        their_params = inspect.signature(theirs).parameters
        our_params = inspect.signature(ours).parameters
    except (TypeError, ValueError):
        return []
    if any(p.kind is p.VAR_KEYWORD for p in our_params.values()):
        return []
    return [
        name
        for name, p in their_params.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and name not in ("self", "cls")
        and not name.startswith("_")
        and name not in our_params
    ]


def _stand_in(module_name: str) -> Any:
    # op and context are task-local; their names are those of the classes behind them.
    if module_name == "alembic":
        return alembic_alias_module()
    return {"alembic.op": Operations, "alembic.context": EnvironmentContext}.get(module_name) or alias(
        module_name
    )


def _check(module_name: str) -> Iterator[str]:
    real = importlib.import_module(module_name)
    ours = _stand_in(module_name)
    for name in _names(real):
        where = f"{module_name}.{name}"
        if _unsupported(where):
            continue
        theirs = getattr(real, name)
        try:
            mine = getattr(ours, name)
        except (AttributeError, ImportError) as exc:
            yield f"{where}: does not resolve ({exc})"
            continue
        if inspect.isclass(theirs):
            if not inspect.isclass(mine):
                yield f"{where}: is not a class"
                continue
            for member, value in vars(theirs).items():
                if member.startswith("_") or _unsupported(f"{where}.{member}"):
                    continue
                if not (inspect.isfunction(value) or isinstance(value, (classmethod, staticmethod))):
                    continue  # attributes and properties: instance state, checked by behaviour tests
                if not hasattr(mine, member):
                    yield f"{where}.{member}: missing"
                    continue
                missing = _missing_parameters(getattr(theirs, member), getattr(mine, member))
                if missing:
                    yield f"{where}.{member}: does not accept {missing}"
        elif callable(theirs):
            missing = _missing_parameters(theirs, mine)
            if missing:
                yield f"{where}: does not accept {missing}"


@pytest.mark.parametrize("module_name", MODULES)
def test_alembic_names_resolve_to_working_equivalents(module_name: str) -> None:
    assert list(_check(module_name)) == []


def test_op_and_context_names_are_the_task_local_objects_methods() -> None:
    """In a running migration, ``alembic.op.X`` is the Operations method ``X``."""
    import alembic.op

    for name in _names(alembic.op):
        if not name[0].isupper() and not _unsupported(f"alembic.op.{name}"):
            assert callable(getattr(Operations, name, None)), name
    for name in ("add_column", "drop_column", "alter_column", "create_index", "execute"):
        assert hasattr(BatchOperations, name)


def test_unsupported_names_exist_in_alembic() -> None:
    """The list stays honest: each entry names something Alembic really has."""
    for where in UNSUPPORTED:
        parts = where.split(".")
        for split in range(len(parts), 0, -1):
            try:
                found: Any = importlib.import_module(".".join(parts[:split]))
            except ImportError:
                continue
            for part in parts[split:]:
                found = getattr(found, part)
            break


COOKBOOK_ENV_PY = """
from alembic import context
from alembic.environment import EnvironmentContext
from alembic.migration import MigrationContext
from alembic.operations import MigrationScript
from alembic.script import write_hooks
from alembic.script.revision import ResolutionError
from alembic.util import sqla_compat
from sqlalchemy import engine_from_config, pool

assert issubclass(ResolutionError, Exception) and callable(sqla_compat.constraint_name_defined)


@write_hooks.register("add_marker")
def add_marker(filename, options):
    with open(filename, "a", encoding="utf-8") as f:
        f.write(f"# marked by {options['_hook_name']}\\n")


def process_revision_directives(context, revision, directives):
    assert isinstance(context, MigrationContext)
    assert isinstance(directives[0], MigrationScript)
    directives[0].message = "checked: " + directives[0].message


section = context.config.get_section(context.config.config_ini_section)
engine = engine_from_config(section, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, process_revision_directives=process_revision_directives)
    with context.begin_transaction():
        context.run_migrations()
"""


async def test_cookbook_imports_work_as_under_alembic(tmp_path: Path) -> None:
    """An env.py importing alembic.environment, alembic.migration, write_hooks ... runs under both."""
    from alembic import command as alembic_command
    from alembic.config import Config as AlembicConfig

    from asyncmigrate import command
    from asyncmigrate.compat.revision import ResolutionError
    from asyncmigrate.exceptions import UnknownRevisionError

    from ..project import make_project

    ini_extra = (
        "revision_environment = true\n\n[post_write_hooks]\nhooks = marker\nmarker.type = add_marker\n"
    )
    written = {}
    for tool in ("alembic", "asyncmigrate"):
        root = tmp_path / tool
        config = make_project(root, url=f"sqlite:///{root / 'app.db'}", env_py=COOKBOOK_ENV_PY,
                              ini_extra=ini_extra)
        if tool == "alembic":
            script = alembic_command.revision(AlembicConfig(config.config_file_name), "first", rev_id="aa01")
        else:
            script = await command.revision(config, "first", rev_id="aa01")
        text = Path(script.path).read_text(encoding="utf-8")
        written[tool] = ("checked: first" in text, text.endswith("# marked by marker\n"))
    assert written["asyncmigrate"] == written["alembic"] == (True, True)
    with pytest.raises(ResolutionError):
        await command.upgrade(config, "nosuchrevision")
    assert issubclass(UnknownRevisionError, ResolutionError)


def test_write_hook_registered_on_the_real_alembic_runs(tmp_path: Path) -> None:
    """A package registering with the real ``alembic.script.write_hooks.register`` is honoured."""
    from alembic.script import write_hooks as alembic_write_hooks

    from asyncmigrate.script.write_hooks import run_post_write_hooks

    seen: list[tuple[str, str]] = []

    @alembic_write_hooks.register("eco_test_hook")
    def record(filename: str, options: dict[str, str]) -> None:
        seen.append((filename, options["_hook_name"]))

    try:
        path = tmp_path / "rev.py"
        path.write_text("", encoding="utf-8")
        run_post_write_hooks(path, [{"_hook_name": "mine", "type": "eco_test_hook"}])
    finally:
        alembic_write_hooks._registry.pop("eco_test_hook", None)
    assert seen == [(str(path), "mine")]


def test_a_script_calling_config_main_runs_asyncmigrates_command_line(tmp_path: Path) -> None:
    """What the README tells a script that called ``alembic.config.main(argv=[...])`` to call."""
    import subprocess
    import sys

    from ..project import Rev, make_project

    make_project(tmp_path, [Rev("a1", None, 'op.execute("CREATE TABLE t (id INTEGER)")')],
                 url=f"sqlite:///{tmp_path / 'app.db'}")
    script = (
        "from asyncmigrate.compat.config import main\n"
        "main(argv=['-c', 'alembic.ini', 'upgrade', 'head'])\n"
        "main(argv=['-c', 'alembic.ini', 'current'])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "a1 (head)" in done.stdout
