"""Real-world Alembic histories, fetched from PyPI at test time, for differential tests.

See ``README.md`` beside this file. Nothing third-party is stored in the repository:
``fetch.py`` downloads the pinned artifacts into a cache directory outside git.
"""
