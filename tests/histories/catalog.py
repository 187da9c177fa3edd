"""The catalog of real-world Alembic histories used by the differential test suite.

Each :class:`History` names the PyPI artifact(s) it comes from (pinned), where the
revision files sit inside them, what shape the history has, which backends it is
meant for, what its revision files import beyond SQLAlchemy/Alembic, and what its
own env.py sets up that the revision files rely on. We never run the project's own
env.py: :mod:`tests.histories.fetch` writes a minimal one that passes
:attr:`History.configure` to ``context.configure``.

:attr:`History.alembic_expected` records how Alembic itself behaves on a backend
when it does not simply succeed (found by running :mod:`tests.histories.alembic_side`);
asyncmigrate must behave the same way, except where :attr:`History.asyncmigrate_deviations`
records an intended difference and why (checked by ``test_differential``).

Nothing here imports Alembic or asyncmigrate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "BACKENDS",
    "HISTORIES",
    "Artifact",
    "Deviation",
    "ExpectedOutcome",
    "History",
    "get",
    "names",
]

Backend = Literal["sqlite", "postgresql", "mysql"]
BACKENDS: tuple[Backend, ...] = ("sqlite", "postgresql", "mysql")


@dataclass(frozen=True)
class Artifact:
    """One downloadable distribution file holding (part of) a history."""

    package: str
    version: str
    #: ``wheel`` or ``sdist``; wheels unpack with :mod:`zipfile` and need no build step.
    kind: Literal["wheel", "sdist"]
    #: Directory of revision files inside the unpacked artifact (for an sdist:
    #: relative to its single top-level directory).
    versions_path: str
    #: Put the unpacked artifact at the front of ``sys.path`` while running,
    #: because the revision files import the project's own modules.
    import_root: bool = False

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class ExpectedOutcome:
    """A step on which Alembic fails in a recorded run (see tests/histories/alembic_side.py)."""

    #: ``up`` (first stepwise upgrade), ``down`` (stepwise downgrade) or ``up2``.
    phase: Literal["up", "down", "up2"]
    #: The failing step's target, as in the plan: ``<rev>`` for an upgrade step,
    #: ``<rev>@-1`` (or a parent id, for a merge) for a downgrade step.
    target: str
    #: Exception class name raised out of ``alembic.command`` (e.g. ``ProgrammingError``).
    error_type: str
    #: A substring of the exception message (Alembic's; asyncmigrate need only match
    #: the step and, for database errors, the exception class).
    message: str
    #: Why (what the history does).
    why: str = ""
    #: Only on this server flavour (``mariadb``, ``mysql``...), None for any.
    flavor: str | None = None


@dataclass(frozen=True)
class Deviation:
    """Where asyncmigrate intentionally ends elsewhere than Alembic on a recorded run.

    The differential test (:func:`tests.histories.asyncmigrate_side.compare`) accepts
    exactly these differences, and fails when a listed deviation does not occur.
    """

    #: A stepwise step (``up``/``down``/``up2``, with :attr:`target` as in the plan) or a
    #: one-shot command (``upgrade_heads``/``downgrade_base``/``upgrade_heads_again``,
    #: :attr:`target` None).
    phase: str
    target: str | None
    #: ``rolled_back``: both tools fail on the step with the same error; Alembic keeps
    #: what the migration did before the error (SQLite runs DDL outside transactions
    #: under Alembic), asyncmigrate rolls it back, so its snapshot after the step equals
    #: the one before. ``succeeds``: Alembic fails on the step and asyncmigrate does not
    #: (an Alembic limitation asyncmigrate does not share); the asyncmigrate runner then
    #: ends the phase after the step as Alembic's run does. ``differs``: both tools end
    #: the step the same way, only :attr:`paths` of the snapshot differ.
    kind: Literal["rolled_back", "succeeds", "differs"]
    #: Snapshot paths (``/tables/<name>``, ``/version``...; ``""`` for all) that may
    #: differ from this step on ...
    paths: tuple[str, ...]
    #: ... up to (not including) this step, as ``(phase, target)``; None: to the end
    #: of the stepwise phases (or of the one-shot commands).
    until: tuple[str, str | None] | None = None
    why: str = ""


@dataclass(frozen=True)
class History:
    """A real-world Alembic history and how to run it."""

    name: str
    artifacts: tuple[Artifact, ...]
    #: Number of revision files (revisions) over all artifacts.
    revision_count: int
    #: Head revision ids (sorted).
    heads: tuple[str, ...]
    #: Base revision ids (sorted): revisions whose down_revision is None.
    bases: tuple[str, ...]
    #: Shape tags, see :data:`SHAPES`.
    shapes: tuple[str, ...]
    #: Backends the project supports for this history (and that we run it on).
    backends: tuple[Backend, ...]
    #: Free-text notes on the shape and on anything surprising.
    notes: str
    #: Extra pinned requirements the revision files import, installed with
    #: ``pip install --no-deps --target`` into a per-history directory that is
    #: *appended* to ``sys.path`` (the project's own environment wins).
    requirements: tuple[str, ...] = ()
    #: Keyword arguments for ``context.configure`` in our minimal env.py.
    #: ``target_metadata`` is given as the keyword arguments of a fresh, empty
    #: ``sqlalchemy.MetaData`` (e.g. ``{"naming_convention": {...}}``): Alembic's
    #: operations take the naming convention of the target metadata to name
    #: unnamed constraints, and some revision files read it.
    configure: Mapping[str, object] = field(default_factory=dict)
    #: What the project's own env.py (or application) does that the revision
    #: files rely on, and how our env.py stands in for it.
    env_notes: str = ""
    #: Environment variables set while the history runs.
    environ: Mapping[str, str] = field(default_factory=dict)
    #: ``module:attribute`` of a ``MetaData`` to ``create_all`` on the fresh database
    #: before the first revision (for histories whose base revision alters tables
    #: the application creates itself), or None.
    setup_metadata: str | None = None
    #: Per backend: every step on which Alembic fails, in run order (after a failed
    #: ``down`` step the run goes on with ``up2``; after a failed ``up``/``up2`` step
    #: it ends). Empty: Alembic runs up, down and up again without an error.
    alembic_expected: Mapping[str, tuple[ExpectedOutcome, ...]] = field(default_factory=dict)
    #: ``default``: run by a plain ``pytest``; ``full``: only with
    #: ``ASYNCMIGRATE_HISTORIES=all`` (heavy requirements or long runs).
    tier: Literal["default", "full"] = "full"
    #: The version table's rows after ``upgrade heads`` when they are not simply
    #: :attr:`heads` (Alembic keeps no row for a head that another head depends on).
    head_rows: tuple[str, ...] | None = None
    #: Per backend: departures of Alembic's recording from the invariants that
    #: ``alembic_side.check_reference`` checks, as (substring of the problem, why).
    known_deviations: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    #: Per backend: where asyncmigrate intentionally differs from Alembic's recording.
    asyncmigrate_deviations: Mapping[str, tuple[Deviation, ...]] = field(default_factory=dict)

    @property
    def version_table(self) -> str:
        return str(self.configure.get("version_table", "alembic_version"))

    @property
    def version_table_schema(self) -> str | None:
        value = self.configure.get("version_table_schema")
        return None if value is None else str(value)

    def supports(self, backend: str) -> bool:
        return backend in self.backends


#: The shape tags used in :attr:`History.shapes`.
SHAPES: Mapping[str, str] = {
    "long": "100 or more revisions",
    "linear": "one base, one head, no merges",
    "merges": "merge revisions (tuple down_revision)",
    "branchpoints": "revisions with more than one child",
    "multiple_bases": "more than one revision with down_revision = None",
    "multiple_heads": "more than one head: upgrade 'heads'",
    "branch_labels": "branch_labels on revisions",
    "depends_on": "depends_on across branches",
    "dynamic_header": "a header (depends_on...) computed at import time, not a literal",
    "multiple_version_locations": "revision files spread over several directories",
    "batch": "op.batch_alter_table (SQLite table recreate)",
    "data_migration": "reads/writes rows through op.get_bind() / sessions / op.execute",
    "dialect_branches": "code paths chosen on the dialect name",
    "annotated_ids": "revision: str = ... (annotated assignments)",
    "non_hex_ids": "revision ids that are not 12 hex digits",
    "autocommit_block": "context.get_context().autocommit_block()",
    "raw_sql": "op.execute with literal SQL strings",
    "config_option": "reads Alembic Config options from the migration context",
    "transaction_per_migration": "env.py sets transaction_per_migration=True",
    "setup_tables": "the base revision needs tables created outside the history",
    "imports_app": "revision files import the project's own package",
    "explicit_commit": "a revision executes COMMIT itself",
}


#: The naming convention of Phoenix's models (phoenix.db.models.Base.metadata).
PHOENIX_NAMING_CONVENTION: Mapping[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_`%(constraint_name)s`",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: The naming convention of invenio_db.shared.metadata.
INVENIO_NAMING_CONVENTION: Mapping[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_ROLLED_BACK = (
    "The migration fails in both tools. Under Alembic, SQLite runs DDL outside any "
    "transaction (pysqlite opens one only before DML), so the failed batch operation "
    "leaves its _alembic_tmp_ table behind; asyncmigrate begins SQLite transactions "
    "itself and rolls the failed migration back completely (README, Safety)."
)

MLFLOW_GENERATED_COLUMN = (
    "c8d9e0f1a2b3's downgrade recreates spans in batch mode; Alembic copies every "
    "column into the new table, including the stored generated column duration_ns, "
    "which SQLite refuses ('cannot INSERT into generated column'). MLflow's other "
    "revisions work around it (75868b020152 drops and re-adds duration_ns: 'Alembic "
    "copies reflected columns during batch recreation, but SQLite rejects explicit "
    "values for stored generated columns'); this one does not. asyncmigrate's batch "
    "mode copies no generated column (SQLite computes it), so the downgrade runs; its "
    "result must equal Alembic's schema before c8d9e0f1a2b3's upgrade."
)

INVENIO_ARTIFACTS: tuple[Artifact, ...] = (
    Artifact("invenio-db", "1.1.5", "wheel", "invenio_db/alembic"),
    Artifact("invenio-accounts", "3.0.0", "wheel", "invenio_accounts/alembic"),
    Artifact("invenio-access", "2.0.0", "wheel", "invenio_access/alembic"),
    Artifact("invenio-userprofiles", "3.0.0", "wheel", "invenio_userprofiles/alembic"),
    Artifact("invenio-records", "2.1.0", "wheel", "invenio_records/alembic"),
    Artifact("invenio-pidstore", "1.3.1", "wheel", "invenio_pidstore/alembic"),
    Artifact("invenio-files-rest", "1.5.0", "wheel", "invenio_files_rest/alembic"),
    Artifact("invenio-oaiserver", "2.2.0", "wheel", "invenio_oaiserver/alembic"),
)

INVENIO_REQUIREMENTS: tuple[str, ...] = (
    "SQLAlchemy-Utils==0.43.0", "cryptography==50.0.2", "cffi==2.1.1", "pycparser==3.12",
)

INVENIO_ENV_NOTES = (
    "Invenio runs Alembic through Flask-Alembic with version_locations from entry "
    "points and target_metadata = the application's metadata (with a naming "
    "convention). invenio-db's 35c1075e6360 reads ctx.opts['target_metadata'], sets "
    "its naming_convention and renames existing constraints of the metadata's tables, "
    "after executing COMMIT itself. Our env.py passes an empty MetaData with invenio-db's "
    "naming convention (which also names the constraints that create_table leaves "
    "unnamed); with no tables in it, 35c1075e6360 renames nothing (it still runs its "
    "COMMIT and opens a second connection via inspect(ctx.connection.engine)). Two "
    "headers are computed: invenio-accounts' depends_on is a literal here, but "
    "newer releases compute it at import time."
)

HISTORIES: tuple[History, ...] = (
    History(
        name="ckan",
        tier="default",
        artifacts=(
            Artifact("ckan", "2.12.0", "wheel", "ckan/migration/versions", import_root=True),
        ),
        revision_count=109,
        heads=("9445ce34fc23",),
        bases=("103676e0a497",),
        shapes=("long", "linear", "raw_sql", "data_migration", "config_option", "imports_app"),
        backends=("postgresql",),
        notes=(
            "CKAN's core schema, converted from sqlalchemy-migrate (files are numbered "
            "001_..109_). 109 linear revisions, PostgreSQL only (raw SQL, postgres types). "
            "87 revisions call ckan.migration.skip_based_on_legacy_engine_version(op, __name__), "
            "which reads op.get_context().config.get_main_option('sqlalchemy_migrate_version') "
            "(unset here, so every revision runs)."
        ),
        env_notes=(
            "CKAN's env.py imports ckan.model for target_metadata (autogenerate only). "
            "The revision files need only ckan/__init__.py and ckan/migration/__init__.py "
            "(stdlib only) from the wheel. Note: importing ckan inserts its package "
            "directory at sys.path[0] (ckan/__init__.py does that)."
        ),
        alembic_expected={
            "postgresql": (
                ExpectedOutcome(
                    "down", "fd6622e3d964@-1", "DuplicateColumnError",
                    "A column with name 'created' is already present in table "
                    "'harvested_document'",
                    why="the downgrade of revision 038 builds a Table with a column twice",
                ),
            ),
        },
    ),
    History(
        name="phoenix",
        tier="default",
        artifacts=(
            Artifact("arize-phoenix", "20.26.1", "wheel", "phoenix/db/migrations/versions"),
        ),
        revision_count=35,
        heads=("4aad9107d196",),
        bases=("cf03bd6bae1d",),
        shapes=(
            "linear", "annotated_ids", "batch", "dialect_branches", "data_migration",
            "transaction_per_migration", "autocommit_block",
        ),
        backends=("sqlite", "postgresql"),
        notes=(
            "Arize Phoenix's trace store: every revision uses the Alembic >= 1.13 template "
            "(revision: str = ..., down_revision: Union[str, None] = ...). SQLite and "
            "PostgreSQL, JSON/JSONB variants, batch_alter_table, dialect checks, data "
            "migrations. Four revisions create indexes with CREATE INDEX CONCURRENTLY inside "
            "autocommit_block() on PostgreSQL when PHOENIX_MIGRATE_INDEX_CONCURRENTLY=true "
            "(see the phoenix-concurrently variant). Imports stdlib and typing_extensions only."
        ),
        configure={
            "transaction_per_migration": True,
            "transactional_ddl": True,
            "target_metadata": {"naming_convention": PHOENIX_NAMING_CONVENTION},
        },
        env_notes=(
            "Phoenix's env.py configures transaction_per_migration=True, "
            "transactional_ddl=True and target_metadata = its models' metadata, whose "
            "naming_convention the revision files rely on: batch_alter_table adding a "
            "ForeignKey fails with 'Constraint must have a name' without it. Our env.py "
            "passes the same options and an empty MetaData with the same naming convention "
            "(PHOENIX_SQL_DATABASE_SCHEMA, an optional schema, is not used here)."
        ),
    ),
    History(
        name="phoenix-concurrently",
        artifacts=(
            Artifact("arize-phoenix", "20.26.1", "wheel", "phoenix/db/migrations/versions"),
        ),
        revision_count=35,
        heads=("4aad9107d196",),
        bases=("cf03bd6bae1d",),
        shapes=(
            "linear", "annotated_ids", "batch", "dialect_branches", "data_migration",
            "transaction_per_migration", "autocommit_block",
        ),
        backends=("postgresql",),
        notes=(
            "The phoenix history with PHOENIX_MIGRATE_INDEX_CONCURRENTLY=true: four revisions "
            "leave the migration transaction with autocommit_block() and run "
            "CREATE/DROP INDEX CONCURRENTLY."
        ),
        configure={
            "transaction_per_migration": True,
            "transactional_ddl": True,
            "target_metadata": {"naming_convention": PHOENIX_NAMING_CONVENTION},
        },
        env_notes="As phoenix.",
        environ={"PHOENIX_MIGRATE_INDEX_CONCURRENTLY": "true"},
    ),
    History(
        name="optuna",
        tier="default",
        artifacts=(
            Artifact(
                "optuna", "5.0.0", "wheel", "optuna/storages/_rdb/alembic/versions",
                import_root=True,
            ),
        ),
        revision_count=10,
        heads=("v3.2.0.a",),
        bases=("v0.9.0.a",),
        shapes=(
            "linear", "non_hex_ids", "batch", "data_migration", "imports_app",
        ),
        backends=("sqlite", "postgresql", "mysql"),
        notes=(
            "Optuna's RDB storage. Revision ids are version strings ('v0.9.0.a', "
            "'v3.0.0.b'), two files are named with a trailing underscore "
            "(v2.6.0.a_.py). Heavy batch_alter_table; data migrations declare their own "
            "ORM models inside the revision file and run a Session on op.get_bind(); "
            "revisions import optuna.distributions / optuna.trial (hence numpy)."
        ),
        requirements=(
            "numpy==2.4.6", "colorlog==6.12.0", "tqdm==4.70.1", "PyYAML==6.0.3",
        ),
        configure={"render_as_batch": True},
        env_notes=(
            "Optuna's env.py sets render_as_batch=True (autogenerate only; batch is explicit "
            "in the files) and target_metadata = optuna's models (autogenerate only)."
        ),
        alembic_expected={
            "sqlite": (
                ExpectedOutcome(
                    "down", "v3.0.0.c@-1", "AttributeError",
                    "'IntermediateValueModel' has no attribute 'FloatTypeEnum'",
                    why="v3.0.0.c's downgrade names an enum class its file does not define",
                ),
            ),
            "postgresql": (
                ExpectedOutcome(
                    "up", "v2.4.0.a", "ProgrammingError", 'type "studydirection" already exists',
                    why=(
                        "Optuna creates new databases with create_all and stamps the head; "
                        "from an empty database v2.4.0.a re-creates an enum v0.9.0.a made"
                    ),
                ),
            ),
            "mysql": (
                ExpectedOutcome(
                    "up", "v2.4.0.a", "OperationalError", "Key column 'step' doesn't exist",
                    why="as on PostgreSQL: the history is not meant to run from empty",
                ),
            ),
        },
        known_deviations={
            "postgresql": (
                (
                    "one-shot upgrade_heads: ok=True, stepwise up failed with ProgrammingError",
                    "In one 'upgrade heads' run, v2.4.0.a's create_table skips CREATE TYPE "
                    "studydirection: SQLAlchemy's enum DDL memo lives on Alembic's DDL impl, "
                    "one per run, and remembers that v0.9.0.a created the type. Run step by "
                    "step, each command has a fresh memo and the CREATE TYPE fails. "
                    "asyncmigrate must keep one memo per run as well.",
                ),
            ),
        },
        asyncmigrate_deviations={
            "sqlite": (
                Deviation(
                    "down", "v3.0.0.c@-1", "rolled_back",
                    paths=("/tables/_alembic_tmp_trial_intermediate_values",),
                    why=SQLITE_ROLLED_BACK,
                ),
                Deviation(
                    "downgrade_base", None, "rolled_back",
                    paths=("/tables/_alembic_tmp_trial_intermediate_values",),
                    why=SQLITE_ROLLED_BACK,
                ),
            ),
        },
    ),
    History(
        name="mlflow",
        artifacts=(
            Artifact(
                "mlflow-skinny", "3.17.2", "wheel", "mlflow/store/db_migrations/versions",
                import_root=True,
            ),
        ),
        revision_count=67,
        heads=("dc11669786a5",),
        bases=("451aebb31d03",),
        shapes=(
            "linear", "non_hex_ids", "batch", "data_migration", "dialect_branches",
            "setup_tables", "imports_app",
        ),
        backends=("sqlite", "postgresql", "mysql"),
        notes=(
            "MLflow's tracking store (mlflow-skinny ships the same migrations as mlflow). "
            "67 revisions, most through batch_alter_table, dialect checks for "
            "sqlite/mysql/mssql, data migrations with MLflow's ORM models. The base revision "
            "alters tables MLflow creates itself (initial_models.Base.metadata.create_all) "
            "before it runs 'upgrade heads', so we do the same (setup_metadata). One id has "
            "13 hex digits (1bd49d398cd23)."
        ),
        requirements=(
            "annotated-doc==0.0.7", "annotated-types==0.8.0", "cachetools==7.3.2",
            "certifi==2026.10.18", "cffi==2.1.1", "charset-normalizer==3.5.2",
            "cloudpickle==3.1.2", "cryptography==50.0.2", "databricks-sdk==0.156.0",
            "fastapi==0.165.0", "gitdb==4.0.12", "GitPython==3.2.1", "google-auth==2.62.2",
            "h11==0.16.0", "importlib-metadata==9.1.0", "opentelemetry-api==1.45.2",
            "opentelemetry-proto==1.45.2", "opentelemetry-sdk==1.45.2",
            "opentelemetry-semantic-conventions==0.66b2", "protobuf==7.36.2",
            "pyasn1==0.6.5", "pyasn1-modules==0.4.2", "pycparser==3.12", "pydantic==2.14.3",
            "pydantic-core==2.50.4", "python-dotenv==1.2.4", "PyYAML==6.0.3",
            "requests==2.34.2", "smmap==5.0.3", "sqlparse==0.6.1", "starlette==1.10.0",
            "typing-inspection==0.4.5", "urllib3==2.8.0", "uvicorn==0.54.0", "zipp==4.1.2",
        ),
        configure={"render_as_batch": True},
        env_notes=(
            "MLflow's env.py sets render_as_batch=True and target_metadata (autogenerate "
            "only). MLflow itself calls InitialBase.metadata.create_all(engine) before "
            "'upgrade heads'; we do that through setup_metadata. Importing mlflow needs "
            "mlflow-skinny's dependency set (pinned in requirements)."
        ),
        environ={"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"},
        setup_metadata="mlflow.store.tracking.dbmodels.initial_models:Base.metadata",
        alembic_expected={
            "sqlite": (
                ExpectedOutcome(
                    "down", "c8d9e0f1a2b3@-1", "OperationalError",
                    'cannot INSERT into generated column "duration_ns"',
                    why="the downgrade's batch copy selects a generated column into the new table",
                ),
            ),
            "postgresql": (
                ExpectedOutcome(
                    "down", "2b4d017a5e9b@-1", "InternalError",
                    "cannot drop table registered_models because other objects depend on it",
                    why="downgrade drops a table that later-created foreign keys still reference",
                ),
                ExpectedOutcome(
                    "up2", "cfd24bdc0731", "ProgrammingError",
                    'constraint "status" of relation "runs" does not exist',
                    why=(
                        "after the partial downgrade, re-upgrading cfd24bdc0731 drops a check "
                        "constraint its own downgrade did not re-create under that name"
                    ),
                ),
            ),
            "mysql": (
                ExpectedOutcome(
                    "down", "dc11669786a5@-1", "OperationalError",
                    "Cannot drop index 'index_job_locks_job_id': needed in a foreign key",
                    why="MariaDB/MySQL keep the index a foreign key needs",
                ),
            ),
        },
        asyncmigrate_deviations={
            "sqlite": (
                Deviation(
                    "down", "c8d9e0f1a2b3@-1", "succeeds",
                    paths=("/version", "/tables/spans", "/tables/span_metrics"),
                    until=("up2", "c8d9e0f1a2b3"),
                    why=MLFLOW_GENERATED_COLUMN,
                ),
                Deviation(
                    "downgrade_base", None, "succeeds", paths=("",),
                    why=MLFLOW_GENERATED_COLUMN + " In one 'downgrade base', asyncmigrate then "
                    "goes on to the base; Alembic stops at c8d9e0f1a2b3.",
                ),
            ),
        },
    ),
    History(
        name="zenml",
        artifacts=(
            Artifact(
                "zenml", "0.98.0", "wheel", "zenml/zen_stores/migrations/versions",
                import_root=True,
            ),
        ),
        revision_count=285,
        heads=("0.98.0",),
        bases=("alembic_start",),
        shapes=(
            "long", "linear", "non_hex_ids", "batch", "data_migration", "dialect_branches",
            "imports_app",
        ),
        backends=("sqlite", "mysql"),
        notes=(
            "ZenML's SQL store: 285 linear revisions. The base is 'alembic_start' and 123 "
            "revision ids are ZenML release numbers ('0.21.0', ..., '0.98.0': dots in ids); "
            "the rest are hex. SQLite and MySQL only (ZenML supports no PostgreSQL). Heavy "
            "batch_alter_table, sqlmodel types (AutoString), data migrations through "
            "op.get_bind(), dialect checks; 20 revision files import zenml modules."
        ),
        requirements=(
            "annotated-types==0.8.0", "asgiref==3.10.0", "certifi==2026.10.18",
            "charset-normalizer==3.5.2", "cloudpickle==3.1.2", "distro==1.9.0",
            "docker==7.1.0", "gitdb==4.0.12", "GitPython==3.2.1", "jsonref==1.1.0",
            "opentelemetry-api==1.43.0", "opentelemetry-instrumentation==0.64b0",
            "opentelemetry-instrumentation-logging==0.64b0", "opentelemetry-sdk==1.43.0",
            "opentelemetry-semantic-conventions==0.64b0", "psutil==7.2.2",
            "pydantic==2.12.5", "pydantic-core==2.41.5", "pydantic-settings==2.16.3",
            "python-dateutil==2.9.0.post0", "python-dotenv==1.2.4", "PyYAML==6.0.3",
            "requests==2.34.2", "six==1.17.0", "smmap==5.0.3", "structlog==26.1.0",
            "typing-inspection==0.4.5", "urllib3==2.8.0", "wrapt==2.5.2",
            "sqlmodel==0.0.50", "SQLAlchemy-Utils==0.43.0",
        ),
        configure={"render_as_batch": True},
        env_notes=(
            "ZenML runs Alembic through zenml.zen_stores.migrations.alembic.Alembic, which "
            "configures render_as_batch=True, compare_type=True, include_object and "
            "target_metadata = SQLModel.metadata (no naming convention); only "
            "render_as_batch is passed here (the others matter for autogenerate only). "
            "Importing zenml needs its base dependencies plus sqlmodel and "
            "sqlalchemy-utils (pinned in requirements)."
        ),
        environ={"ZENML_ANALYTICS_OPT_IN": "false", "ZENML_LOGGING_VERBOSITY": "WARN"},
        alembic_expected={
            "sqlite": (
                ExpectedOutcome(
                    "up", "728c6369cfaa", "NotImplementedError", "Unsupported engine: sqlite",
                    why=(
                        "its helper only knows mysql/mariadb; ZenML creates new SQLite stores "
                        "with create_all and stamps them"
                    ),
                ),
            ),
            "mysql": (
                ExpectedOutcome(
                    "up", "5330ba58bf20", "OperationalError",
                    "Foreign key constraint is incorrectly formed",
                    why="MariaDB rejects the foreign key to workspace(id) (ZenML targets MySQL)",
                    flavor="mariadb",
                ),
            ),
        },
    ),
    History(
        name="invenio",
        tier="default",
        artifacts=INVENIO_ARTIFACTS,
        revision_count=34,
        heads=(
            "07fb52561c5c", "35c1075e6360", "41157f1933d6", "5d25c1981985",
            "999c62899c20", "a29271fd78f8", "f9843093f686",
        ),
        head_rows=(
            "07fb52561c5c", "41157f1933d6", "5d25c1981985",
            "999c62899c20", "a29271fd78f8", "f9843093f686",
        ),
        bases=(
            "1095cdf9f350", "52ce868f33c3", "67ba0de65fbb", "71634726ec7e",
            "759d47cbdba7", "843bc79c426f", "96e796392533", "f615cee99600",
        ),
        shapes=(
            "multiple_version_locations", "multiple_bases", "multiple_heads", "branch_labels",
            "depends_on", "merges", "batch", "dialect_branches", "explicit_commit",
        ),
        backends=("postgresql", "mysql"),
        notes=(
            "Eight Invenio modules as released together in 2023 (InvenioRDM v11 era), each "
            "shipping its own alembic/ directory: one version location per package, one "
            "branch label per package (the invenio-db base is labelled 'default'), "
            "depends_on across packages (every package's base depends on invenio-db's "
            "dbdbc1b19cf2), and a merge revision in invenio-access (f9843093f686) whose "
            "down_revision names a revision of invenio-accounts. Revision files import only "
            "sqlalchemy_utils (and cryptography through it). These versions predate the "
            "revision files that import invenio_db.utils and invenio_accounts.models "
            "(which need the whole Flask application). PostgreSQL and MySQL: on SQLite "
            "invenio-db's dbdbc1b19cf2 fails at once (ALTER of constraints, no batch mode), "
            "as Invenio supports no SQLite migrations."
        ),
        requirements=INVENIO_REQUIREMENTS,
        configure={"target_metadata": {"naming_convention": INVENIO_NAMING_CONVENTION}},
        env_notes=INVENIO_ENV_NOTES,
        alembic_expected={
            "mysql": (
                ExpectedOutcome(
                    "up", "f2522cdd5fcd", "ProgrammingError", "near 'CASCADE'",
                    why=(
                        "invenio-accounts 3.0.0 runs ALTER TABLE ... DROP CONSTRAINT ... CASCADE "
                        "on every dialect (later releases add a MySQL branch)"
                    ),
                ),
            ),
        },
    ),
    History(
        name="invenio-oauthclient",
        artifacts=(
            *INVENIO_ARTIFACTS,
            Artifact("invenio-oauthclient", "2.3.0", "wheel", "invenio_oauthclient/alembic"),
        ),
        revision_count=38,
        heads=(
            "07fb52561c5c", "35c1075e6360", "41157f1933d6", "5d25c1981985",
            "999c62899c20", "a29271fd78f8", "aaa265b0afa6", "f9843093f686",
        ),
        head_rows=(
            "07fb52561c5c", "41157f1933d6", "5d25c1981985",
            "999c62899c20", "a29271fd78f8", "aaa265b0afa6", "f9843093f686",
        ),
        bases=(
            "1095cdf9f350", "52ce868f33c3", "67ba0de65fbb", "71634726ec7e",
            "759d47cbdba7", "843bc79c426f", "96e796392533", "f615cee99600",
        ),
        shapes=(
            "multiple_version_locations", "multiple_bases", "multiple_heads", "branch_labels",
            "depends_on", "merges", "branchpoints", "batch", "dialect_branches",
            "explicit_commit",
        ),
        backends=("postgresql", "mysql"),
        notes=(
            "The invenio set plus invenio-oauthclient 2.3.0, whose branch (labelled "
            "invenio_oauthclient) starts with down_revision = invenio-db's dbdbc1b19cf2 (a "
            "branch point) and two of whose revisions depend on invenio-accounts revisions. "
            "Its bff1f190b9bd calls op.execute(text(...).bindparams(...), params) with a "
            "second positional argument, which current Alembic rejects with TypeError (the "
            "file was written for an older op.execute; Invenio fixed it in later releases, "
            "together with imports of invenio_db.utils)."
        ),
        requirements=INVENIO_REQUIREMENTS,
        configure={"target_metadata": {"naming_convention": INVENIO_NAMING_CONVENTION}},
        asyncmigrate_deviations={
            "postgresql": (
                Deviation(
                    "upgrade_heads", None, "differs",
                    paths=("/tables/oauthclient_remoteaccount",),
                    why=(
                        "bff1f190b9bd adds the created/updated columns to "
                        "oauthclient_remoteaccount, then fails (op.execute with two "
                        "positional arguments). In one 'upgrade heads' run, invenio-db's "
                        "35c1075e6360 has executed COMMIT, so the server runs everything after "
                        "it outside the run's transaction: under Alembic the two ADD COLUMNs are "
                        "kept although their revision failed. asyncmigrate sends a step's DDL "
                        "to PostgreSQL in one batch at the end of the step (runtime.pipeline) "
                        "and drops the batch when the step fails, so its failed revision "
                        "leaves nothing behind. Step by step both tools roll the step back."
                    ),
                ),
            ),
        },
        alembic_expected={
            "postgresql": (
                ExpectedOutcome(
                    "up", "bff1f190b9bd", "TypeError",
                    "execute() takes 2 positional arguments but 3 were given",
                    why="op.execute(statement, params): a second positional argument",
                ),
            ),
            "mysql": (
                ExpectedOutcome(
                    "up", "bff1f190b9bd", "TypeError",
                    "execute() takes 2 positional arguments but 3 were given",
                    why="as on PostgreSQL (the step comes before f2522cdd5fcd's MySQL failure)",
                ),
            ),
        },
        env_notes=INVENIO_ENV_NOTES,
    ),
)

_BY_NAME = {h.name: h for h in HISTORIES}


def get(name: str) -> History:
    """Return the history called ``name``."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no history {name!r}; known: {', '.join(_BY_NAME)}") from None


def names(backend: str | None = None) -> list[str]:
    """Return the history names, optionally only those that support ``backend``."""
    return [h.name for h in HISTORIES if backend is None or h.supports(backend)]
