"""What env.py compares with: its ``target_metadata``, and whether every model module registers on it.

A model defined in a module that nothing imports when env.py runs is
invisible to autogenerate, which then offers to drop its table. Whether
that happens can only be seen in a fresh interpreter (a test session has
usually imported every model already), so :func:`models_register` runs
env.py in a subprocess (``python -m`` this module), records the tables on
its metadata, imports every module of the packages holding the models, and
reports the tables that appeared only then, with their modules.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import pkgutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import anyio
from sqlalchemy import MetaData, Table
from sqlalchemy.engine import URL

from ...config import Config
from ...exceptions import CommandError
from ...urls import mask_passwords_in
from .history import load_script

__all__ = ["ModelsRegister", "env_metadata", "models_register"]

_URL_ENV = "ASYNCMIGRATE_MODELS_CHECK_URL"
_OWN = ("asyncmigrate", "alembic", "sqlalchemy", "pytest", "_pytest")


async def env_metadata(config: Config, url: str | URL | None = None, *, offline: bool = False) -> Any:
    """Run env.py without migrating and return the ``target_metadata`` it configures (None without).

    :param offline: run env.py's offline branch (no connection), as ``--sql`` does.
    """
    from ...command import _run  # env.py with a plan of our own that migrates nothing

    found: list[Any] = []

    def step(heads: tuple[str, ...], context: Any) -> list[Any]:
        found.append(context.opts.get("target_metadata"))
        return []

    opts: dict[str, Any] = {"dont_mutate": True}
    if offline:
        opts["as_sql"] = True
    elif url is not None:
        opts["url"] = url
    await _run(config, await load_script(config), step, **opts)
    return found[0] if found else None


@dataclass(frozen=True)
class ModelsRegister:
    """What the fresh interpreter found: how many metadata, the model packages, tables seen late."""

    metadata_count: int = 0
    packages: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    """The tables on the metadata right after env.py ran."""
    missing: dict[str, str] = field(default_factory=dict)
    """Tables that appeared only once every model module was imported, with their module."""


async def models_register(
    config: Config, url: URL, packages: Iterable[str] = ()
) -> ModelsRegister:
    """Run env.py in a fresh interpreter and compare its metadata with every model module imported.

    :param packages: the packages holding the models (default: found from
        the modules that refer to the metadata, or to a declarative base on it).
    """
    request = {
        "config_file": config.config_file_name,
        "toml_file": config.toml_file_name,
        "section": config.config_ini_section,
        "x": list(getattr(config.cmd_opts, "x", None) or []),
        "packages": list(packages),
    }
    env = {
        **os.environ,
        _URL_ENV: url.render_as_string(hide_password=False),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    done = await anyio.run_process(
        [sys.executable, "-m", __name__, json.dumps(request)], env=env, check=False
    )
    output = done.stdout.decode(errors="replace")
    marker = output.rfind("\n@@asyncmigrate@@")
    if done.returncode != 0 or marker < 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise CommandError(
            "Could not load env.py's models in a fresh interpreter: "
            + mask_passwords_in(detail[-1] if detail else f"exit status {done.returncode}")
        )
    found = json.loads(output[marker:].split("@@asyncmigrate@@", 1)[1])
    return ModelsRegister(
        found["metadata_count"], tuple(found["packages"]), tuple(found["tables"]), dict(found["missing"])
    )


# -- in the fresh interpreter ------------------------------------------------------------------


def _metadatas(target: Any) -> list[MetaData]:
    if target is None:
        return []
    if isinstance(target, MetaData):
        return [target]
    return [m for m in target if isinstance(m, MetaData)]


def _refers_to(module: ModuleType, metadatas: list[MetaData]) -> bool:
    for value in list(vars(module).values()):
        if any(value is m for m in metadatas):
            return True
        if isinstance(value, type) and any(getattr(value, "metadata", None) is m for m in metadatas):
            return True
        if isinstance(value, Table) and any(value.metadata is m for m in metadatas):
            return True
    return False


def _model_packages(metadatas: list[MetaData], env_py: str) -> list[str]:
    """The packages to import in full: those of modules referring to the metadata (not env.py)."""
    found: set[str] = set()
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] in _OWN or name == "__main__":
            continue
        if os.path.abspath(str(getattr(module, "__file__", "") or "")) == env_py:
            continue
        if not _refers_to(module, metadatas):
            continue
        if hasattr(module, "__path__") or "." not in name:
            found.add(name)
        else:
            found.add(name.rsplit(".", 1)[0])
    return sorted(p for p in found if not any(p.startswith(q + ".") for q in found))


def _import_all(package: str) -> None:
    try:
        module = importlib.import_module(package)
    except Exception:
        return
    path = getattr(module, "__path__", None)
    if path is None:
        return
    for info in pkgutil.walk_packages(path, prefix=f"{package}.", onerror=lambda name: None):
        try:
            importlib.import_module(info.name)
        except Exception:  # a module that cannot be imported registers nothing
            continue


def _defining_module(table: Table) -> str:
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] in _OWN:
            continue
        for value in list(vars(module).values()):
            if value is table or (
                isinstance(value, type) and getattr(value, "__table__", None) is table
                and getattr(value, "__module__", None) == name
            ):
                return name
    return "?"


def _main(request: dict[str, Any]) -> dict[str, Any]:
    config = Config(request["config_file"], toml_file=request["toml_file"], ini_section=request["section"])
    config.cmd_opts.x = request["x"] or None
    url = os.environ[_URL_ENV]
    config = config.copy(url=url)
    try:
        target = asyncio.run(env_metadata(config, offline=True))
    except Exception:
        target = asyncio.run(env_metadata(config, url))
    metadatas = _metadatas(target)
    bare = {key for m in metadatas for key in m.tables}
    env_py = os.path.abspath(asyncio.run(load_script(config)).env_py_location)
    packages = list(request["packages"]) or _model_packages(metadatas, env_py)
    for package in packages:
        _import_all(package)
    missing = {
        key: _defining_module(table)
        for m in metadatas for key, table in m.tables.items() if key not in bare
    }
    return {"metadata_count": len(metadatas), "packages": packages, "tables": sorted(bare),
            "missing": missing}


if __name__ == "__main__":
    result = _main(json.loads(sys.argv[1]))
    print("\n@@asyncmigrate@@" + json.dumps(result))
