"""The lint catalogue: unsafe and safe forms of each rule, with what asyncmigrate and squawk find.

Each case is one revision on top of a shared base revision (``b0``), so
every case is linted alone (``asyncmigrate lint <case>``) and squawk reads the
offline SQL of exactly that revision (``upgrade b0:<case> --sql``).
``ours`` lists asyncmigrate's rule ids, ``squawk`` squawk's rule names
restricted to :data:`OVERLAP` (the squawk rules some asyncmigrate rule
covers). Where the two disagree on an overlapping risk the case names the
difference in :data:`DIFFERENCES`, which the README's table documents.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from asyncmigrate.lint import RULES

from ..project import Rev

#: squawk's rules that some asyncmigrate rule covers (the comparison is restricted to these).
OVERLAP = frozenset(name for rule in RULES.values() for name in rule.squawk)

BASE = Rev("b0", None, """
    op.create_table(
        "account",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50)),
        sa.Column("email", sa.String(100)),
        sa.Column("balance", sa.Numeric(10, 2)),
        sa.Column("legacy", sa.Text),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("account_id", sa.Integer),
        sa.Column("total", sa.Integer),
    )
    op.create_index("ix_orders_total", "orders", ["total"])
""", """
    op.drop_table("orders")
    op.drop_table("account")
""")

#: Why the tools differ, by difference id (the README's table says the same).
DIFFERENCES = {
    "new-in-range": "asyncmigrate treats a table created earlier in the analysed revisions as new "
    "(nothing reads it yet), so renaming it breaks nothing; squawk exempts only index creation "
    "and constraints on a table created in the same file",
    "varchar-widening": "widening varchar, varchar to text and numeric precision growth change "
    "only metadata in PostgreSQL (no rewrite, brief lock); squawk flags every type change",
    "drop-index-in-transaction": "asyncmigrate also flags DROP INDEX CONCURRENTLY inside a "
    "transaction (PostgreSQL rejects it as it rejects CREATE INDEX CONCURRENTLY); squawk only "
    "the CREATE",
    "index-dropped-with-table": "asyncmigrate does not flag DROP INDEX when the same transaction "
    "drops the table (the DROP TABLE takes the same lock anyway and is flagged itself); squawk "
    "flags both",
    "unique-not-valid": "squawk also suggests NOT VALID for UNIQUE and PRIMARY KEY constraints "
    "(constraint-missing-not-valid), which PostgreSQL accepts only for CHECK and FOREIGN KEY; "
    "asyncmigrate's AM203 gives the index-first alternative instead",
    "serial-column": "asyncmigrate flags adding a serial (or identity) column: its nextval() "
    "default is volatile, so the table is rewritten; squawk does not",
    "sql-value-function-default": "a default written as LOCALTIMESTAMP or CURRENT_TIMESTAMP is "
    "stable, so PostgreSQL 11+ stores it once without rewriting the table (as for now()); squawk "
    "flags these spellings as if they were volatile",
    "drop-added-column": "asyncmigrate does not flag dropping a column added earlier in the same "
    "revisions (no running code can use it yet); squawk flags every DROP COLUMN",
}


@dataclass(frozen=True)
class Case:
    """One catalogue entry."""

    name: str
    upgrade: str
    ours: frozenset[str] = frozenset()
    squawk: frozenset[str] = frozenset()
    #: DIFFERENCES keys explaining where the two disagree on an overlapping risk.
    differs: tuple[str, ...] = ()
    pg_version: int = 12
    downgrade: str = "pass"
    extra: dict[str, str] = field(default_factory=dict)

    def revision(self) -> Rev:
        """The case as a revision on top of the base."""
        return Rev(self.name, "b0", self.upgrade, self.downgrade, filename=f"{self.name}.py")


def case(name: str, upgrade: str, ours: tuple[str, ...] = (), squawk: tuple[str, ...] = (),
         differs: tuple[str, ...] = (), pg_version: int = 12) -> Case:
    return Case(name, upgrade, frozenset(ours), frozenset(squawk), differs, pg_version)


AUTOCOMMIT = "with op.get_context().autocommit_block():\n    "

CASES = [
    # -- indexes ---------------------------------------------------------------------------------
    case("index_plain", 'op.create_index("ix_account_name", "account", ["name"])',
         ("AM101",), ("require-concurrent-index-creation",)),
    case("index_unique", 'op.create_index("ux_account_email", "account", ["email"], unique=True)',
         ("AM101",), ("require-concurrent-index-creation",)),
    case("index_partial", 'op.create_index("ix_account_name_p", "account", ["name"], '
         'postgresql_where=sa.text("name IS NOT NULL"))',
         ("AM101",), ("require-concurrent-index-creation",)),
    case("index_concurrently", AUTOCOMMIT + 'op.create_index("ix_account_name", "account", ["name"], '
         "postgresql_concurrently=True)"),
    case("index_concurrently_in_transaction", 'op.create_index("ix_account_name", "account", ["name"], '
         "postgresql_concurrently=True)",
         ("AM103",), ("ban-concurrent-index-creation-in-transaction",)),
    case("index_on_new_table", 'op.create_table("audit", sa.Column("id", sa.Integer, primary_key=True), '
         'sa.Column("at", sa.DateTime))\nop.create_index("ix_audit_at", "audit", ["at"])'),
    case("index_in_execute", 'op.execute("CREATE INDEX ix_account_email ON account (email)")',
         ("AM101",), ("require-concurrent-index-creation",)),
    case("index_in_execute_concurrently", AUTOCOMMIT
         + 'op.execute("CREATE INDEX CONCURRENTLY ix_account_email ON account (email)")'),
    case("index_multi_statement_execute", 'op.execute("""-- add a column and index it\n'
         "ALTER TABLE account ADD COLUMN score integer;\n"
         'CREATE INDEX ix_account_score ON account (score);""")',
         ("AM101",), ("require-concurrent-index-creation",)),
    case("drop_index", 'op.drop_index("ix_orders_total", "orders")',
         ("AM102",), ("require-concurrent-index-deletion",)),
    case("drop_index_concurrently", AUTOCOMMIT + 'op.drop_index("ix_orders_total", "orders", '
         "postgresql_concurrently=True)"),
    case("drop_index_concurrently_in_transaction", 'op.drop_index("ix_orders_total", "orders", '
         "postgresql_concurrently=True)",
         ("AM103",), (), ("drop-index-in-transaction",)),
    case("drop_index_with_its_table", 'op.drop_index("ix_orders_total", "orders")\n'
         'op.drop_table("orders")',
         ("AM404",), ("ban-drop-table", "require-concurrent-index-deletion"),
         ("index-dropped-with-table",)),
    # -- constraints -----------------------------------------------------------------------------
    case("foreign_key", 'op.create_foreign_key("fk_orders_account", "orders", "account", '
         '["account_id"], ["id"])',
         ("AM201",), ("adding-foreign-key-constraint", "constraint-missing-not-valid")),
    case("foreign_key_not_valid", 'op.create_foreign_key("fk_orders_account", "orders", "account", '
         '["account_id"], ["id"], postgresql_not_valid=True)'),
    case("foreign_key_validated_later", 'op.create_foreign_key("fk_orders_account", "orders", "account", '
         '["account_id"], ["id"], postgresql_not_valid=True)\n' + AUTOCOMMIT
         + 'op.execute("ALTER TABLE orders VALIDATE CONSTRAINT fk_orders_account")'),
    case("foreign_key_validated_same_transaction", 'op.create_foreign_key("fk_orders_account", "orders", '
         '"account", ["account_id"], ["id"], postgresql_not_valid=True)\n'
         'op.execute("ALTER TABLE orders VALIDATE CONSTRAINT fk_orders_account")',
         ("AM204",), ("constraint-missing-not-valid",)),
    case("foreign_key_in_execute", 'op.execute("ALTER TABLE orders ADD CONSTRAINT fk_o_a FOREIGN KEY '
         '(account_id) REFERENCES account (id)")',
         ("AM201",), ("adding-foreign-key-constraint", "constraint-missing-not-valid")),
    case("foreign_key_on_new_table", 'op.create_table("invoice", sa.Column("id", sa.Integer, '
         'primary_key=True), sa.Column("account_id", sa.Integer))\n'
         'op.create_foreign_key("fk_invoice_account", "invoice", "account", ["account_id"], ["id"])'),
    case("check", 'op.create_check_constraint("ck_balance", "account", "balance >= 0")',
         ("AM202",), ("constraint-missing-not-valid",)),
    case("check_not_valid", 'op.create_check_constraint("ck_balance", "account", "balance >= 0", '
         "postgresql_not_valid=True)"),
    case("unique_constraint", 'op.create_unique_constraint("uq_account_email", "account", ["email"])',
         ("AM203",), ("disallowed-unique-constraint", "constraint-missing-not-valid"),
         ("unique-not-valid",)),
    case("unique_using_index", AUTOCOMMIT + 'op.create_index("ux_account_email", "account", ["email"], '
         "unique=True, postgresql_concurrently=True)\n"
         'op.execute("ALTER TABLE account ADD CONSTRAINT uq_account_email UNIQUE USING INDEX '
         'ux_account_email")'),
    case("primary_key", 'op.create_primary_key("pk_account_email", "account", ["email"])',
         ("AM203",), ("adding-serial-primary-key-field", "constraint-missing-not-valid"),
         ("unique-not-valid",)),
    # -- NOT NULL --------------------------------------------------------------------------------
    case("set_not_null", 'op.alter_column("account", "name", nullable=False, existing_type=sa.String(50))',
         ("AM205",), ("adding-not-nullable-field",)),
    case("set_not_null_proven_by_check", 'op.create_check_constraint("ck_name_nn", "account", '
         '"name IS NOT NULL", postgresql_not_valid=True)\n' + AUTOCOMMIT
         + 'op.execute("ALTER TABLE account VALIDATE CONSTRAINT ck_name_nn")\n'
         'op.alter_column("account", "name", nullable=False, existing_type=sa.String(50))',
         ()),
    case("add_not_null_column", 'op.add_column("account", sa.Column("plan", sa.String(10), nullable=False))',
         ("AM303",), ("adding-required-field",)),
    case("add_not_null_column_with_default", 'op.add_column("account", sa.Column("plan", sa.String(10), '
         'nullable=False, server_default="free"))'),
    # -- defaults --------------------------------------------------------------------------------
    case("add_column_volatile_default", 'op.add_column("account", sa.Column("token", sa.Uuid, '
         'server_default=sa.text("gen_random_uuid()")))',
         ("AM301",), ("adding-field-with-default",)),
    case("add_column_random_default", 'op.add_column("account", sa.Column("r", sa.Float, '
         'server_default=sa.text("random()")))',
         ("AM301",), ("adding-field-with-default",)),
    case("add_column_now_default", 'op.add_column("account", sa.Column("seen", sa.DateTime(timezone=True), '
         "server_default=sa.func.now()))"),
    case("add_column_localtimestamp_default", 'op.add_column("account", sa.Column("seen", sa.DateTime, '
         'server_default=sa.text("LOCALTIMESTAMP")))',
         (), ("adding-field-with-default",), ("sql-value-function-default",)),
    case("add_column_constant_default", 'op.add_column("account", sa.Column("plan", sa.String(10), '
         'server_default="free"))'),
    case("add_column_constant_default_pg10", 'op.add_column("account", sa.Column("plan", sa.String(10), '
         'server_default="free"))',
         ("AM301",), ("adding-field-with-default",), pg_version=10),
    case("add_column_unknown_function_default", 'op.add_column("account", sa.Column("code", sa.Text, '
         'server_default=sa.text("make_code()")))',
         ("AM301",), ("adding-field-with-default",)),
    case("add_column_generated", 'op.add_column("account", sa.Column("upper_name", sa.String(50), '
         'sa.Computed("upper(name)")))',
         ("AM301",), ("adding-field-with-default",)),
    case("add_column_serial", 'op.execute("ALTER TABLE orders ADD COLUMN seq bigserial")',
         ("AM301",), (), ("serial-column",)),
    case("add_column_nullable", 'op.add_column("account", sa.Column("nickname", sa.String(30)))'),
    # -- types -----------------------------------------------------------------------------------
    case("type_int_to_bigint", 'op.alter_column("orders", "total", type_=sa.BigInteger, '
         "existing_type=sa.Integer)",
         ("AM302",), ("changing-column-type",)),
    case("type_unknown_existing", 'op.alter_column("orders", "total", type_=sa.BigInteger)',
         ("AM302",), ("changing-column-type",)),
    case("type_varchar_narrow", 'op.alter_column("account", "email", type_=sa.String(20), '
         "existing_type=sa.String(100))",
         ("AM302",), ("changing-column-type",)),
    case("type_varchar_widen", 'op.alter_column("account", "email", type_=sa.String(200), '
         "existing_type=sa.String(100))",
         (), ("changing-column-type",), ("varchar-widening",)),
    case("type_varchar_to_text", 'op.alter_column("account", "email", type_=sa.Text, '
         "existing_type=sa.String(100))",
         (), ("changing-column-type",), ("varchar-widening",)),
    case("type_numeric_widen", 'op.alter_column("account", "balance", type_=sa.Numeric(14, 2), '
         "existing_type=sa.Numeric(10, 2))",
         (), ("changing-column-type",), ("varchar-widening",)),
    case("type_with_using", 'op.alter_column("account", "name", type_=sa.Integer, '
         'existing_type=sa.String(50), postgresql_using="length(name)")',
         ("AM302",), ("changing-column-type",)),
    # -- expand/contract -------------------------------------------------------------------------
    case("rename_column", 'op.alter_column("account", "name", new_column_name="full_name")',
         ("AM401",), ("renaming-column",)),
    case("rename_table", 'op.rename_table("orders", "purchase")',
         ("AM402",), ("renaming-table",)),
    case("rename_new_table", 'op.create_table("draft", sa.Column("id", sa.Integer, primary_key=True))\n'
         'op.rename_table("draft", "final")',
         (), ("renaming-table",), ("new-in-range",)),
    case("drop_column", 'op.drop_column("account", "legacy")',
         ("AM403",), ("ban-drop-column",)),
    case("drop_column_in_batch", 'with op.batch_alter_table("account") as batch:\n'
         '    batch.drop_column("legacy")',
         ("AM403",), ("ban-drop-column",)),
    case("drop_column_added_in_range", 'op.add_column("account", sa.Column("tmp", sa.Integer))\n'
         'op.drop_column("account", "tmp")',
         (), ("ban-drop-column",), ("drop-added-column",)),
    case("drop_table", 'op.drop_table("orders")',
         ("AM404",), ("ban-drop-table",)),
    case("drop_table_in_execute", 'op.execute("DROP TABLE orders")',
         ("AM404",), ("ban-drop-table",)),
    # -- data ------------------------------------------------------------------------------------
    case("update_with_ddl", 'op.add_column("account", sa.Column("nickname", sa.String(30)))\n'
         'op.execute("UPDATE account SET nickname = name")',
         ("AM501",)),
    case("delete_with_ddl", 'op.drop_index("ix_orders_total", "orders")\n'
         'op.execute("DELETE FROM orders WHERE total < 0")',
         ("AM102", "AM501"), ("require-concurrent-index-deletion",)),
    case("update_batched_with_ddl", 'op.add_column("account", sa.Column("nickname", sa.String(30)))\n'
         'op.execute("UPDATE account SET nickname = name WHERE id IN '
         '(SELECT id FROM account WHERE nickname IS NULL LIMIT 1000)")'),
    case("update_alone", 'op.execute("UPDATE account SET email = lower(email)")'),
    case("update_in_autocommit_block", 'op.add_column("account", sa.Column("nickname", sa.String(30)))\n'
         + AUTOCOMMIT + 'op.execute("UPDATE account SET nickname = name")'),
]


def squawk_executable() -> str | None:
    """The ``squawk`` binary: on PATH, or beside this interpreter (a venv not activated)."""
    beside = Path(sys.executable).parent / "squawk"
    return shutil.which("squawk") or (str(beside) if beside.is_file() else None)
