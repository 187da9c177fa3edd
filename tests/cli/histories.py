"""Revision histories for the CLI parity tests, as literals.

``RICH`` has every shape the read commands render differently: a branch point,
branch labels (two on one revision), ``depends_on`` by label and by id, a
merge, several roots, an "effective head" (a revision only a dependency
points at), a multi-paragraph docstring, type-annotated headers, and
non-hex ids with dots (``v3.0.0.c``) in file names with dots.

``SPREAD`` lives in two version locations (joined with ``path_separator``)
searched recursively, in nested directories, with dotted file names and a
package ``__init__.py`` that is not a revision.
"""

from __future__ import annotations

from .harness import Rev

__all__ = ["LABELS", "RICH", "RICH_TARGETS", "SPREAD", "SPREAD_LOCATIONS"]

RICH = (
    Rev("1a2b3c4d5e6f", None, message="create accounts",
        details="Accounts hold users.\nA second line of detail."),
    Rev("2b3c4d5e6f7a", "1a2b3c4d5e6f", message="add email", annotated=True),
    Rev("4d5e6f7a8b9c", "2b3c4d5e6f7a", labels="shop", message="shop tables"),
    Rev("v3.0.0.c", "2b3c4d5e6f7a", labels=("release", "stable"), message="release 3.0.0.c",
        filename="v3.0.0.c_release.py"),
    Rev("5e6f7a8b9c0d", "4d5e6f7a8b9c", depends_on="release", message="shop orders"),
    Rev("v3.1", "v3.0.0.c", message="release 3.1", filename="v3.1.py", annotated=True),
    Rev("6f7a8b9c0d1e", ("5e6f7a8b9c0d", "v3.1"), message="merge shop and release",
        down_as_list=True),
    Rev("7a8b", "6f7a8b9c0d1e", message="after the merge", docless=True, filename="7a8b.py"),
    Rev("c0ffee", None, labels="lib", message="library root"),
    Rev("a0b0", None, labels="reports", message="reports root"),
    Rev("a1b1", "a0b0", depends_on=("c0ffee", "4d5e6f7a8b9c"), message="reports use lib and shop"),
)

#: Every branch label the histories declare (for normalization rule 1).
LABELS = frozenset({"shop", "release", "stable", "lib", "reports", "plugin", "other"})

#: Where ``current`` is compared: each tool upgrades its own SQLite file to these.
RICH_TARGETS = ("a1b1", "shop@head", "v3.1", "heads", "c0ffee")

SPREAD_LOCATIONS = ("migrations/versions", "plugins/versions")

SPREAD = (
    Rev("0001", None, message="core base", filename="0001.core.base.py"),
    Rev("0002", "0001", message="core two", where="migrations/versions/2024/05",
        filename="2024.05.01_0002.py"),
    Rev("0003", "0002", message="core three", where="migrations/versions/2024/06/deep"),
    Rev("p100", None, labels="plugin", message="plugin base", where="plugins/versions"),
    Rev("p101", "p100", depends_on="0002", message="plugin needs core",
        where="plugins/versions/sub"),
    Rev("p102", ("p101", "0003"), message="merge plugin into core", where="plugins/versions"),
)
