"""Stand-ins for Alembic modules that revision files import but asyncmigrate has no own module for.

``from alembic import util`` (and ``alembic.util.exc``) in a revision file or env.py
resolves to :mod:`asyncmigrate.compat.util` (see :data:`asyncmigrate.script.loader.ALIASES`).
"""

from __future__ import annotations

#: The Alembic release whose behaviour asyncmigrate reproduces (and is tested against).
#: Revision files that branch on ``alembic.__version__`` see this.
ALEMBIC_VERSION = "1.20.1"

__all__ = ["ALEMBIC_VERSION"]
