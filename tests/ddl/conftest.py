"""Fixtures shared with the operation tests."""

from __future__ import annotations

from ..operations.conftest import db_pair, pg_module_database

__all__ = ["db_pair", "pg_module_database"]  # server_db comes from tests/conftest.py
