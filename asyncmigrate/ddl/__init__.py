"""Per-dialect DDL implementations (PostgreSQL, SQLite, MySQL/MariaDB, and a generic default)."""

from __future__ import annotations

from . import mysql, postgresql, sqlite
from .impl import DefaultImpl, impl_for_dialect
from .mysql import MariaDBImpl, MySQLImpl
from .postgresql import PostgresqlImpl
from .sqlite import SQLiteImpl

__all__ = [
    "DefaultImpl",
    "MariaDBImpl",
    "MySQLImpl",
    "PostgresqlImpl",
    "SQLiteImpl",
    "impl_for_dialect",
    "mysql",
    "postgresql",
    "sqlite",
]
