"""The script directory: where revision files live, how they are found, read and written."""

from __future__ import annotations

import datetime
import importlib.resources
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import CodeType, ModuleType
from typing import TYPE_CHECKING, Any, cast

from ..exceptions import CommandError, ConfigError, RevisionError, RevisionFileError, ScriptError
from ..revision import Revision, RevisionGraph
from ..revision.graph import RevisionIdentifiers
from ..revision.revision import as_scalar, as_tuple
from .checksum import file_checksum
from .headers import RevisionHeader, read_header
from .loader import import_python_file, rerun_module
from .write_hooks import PostWriteHook, run_post_write_hooks
from .writer import render_template

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["DEFAULT_FILE_TEMPLATE", "Script", "ScriptDirectory", "resolve_location"]

DEFAULT_FILE_TEMPLATE = "%(rev)s_%(slug)s"

_SOURCE_FILE = re.compile(r"(?!\.#|__init__)(.*\.py)$")
_SOURCELESS_FILE = re.compile(r"(?!\.#|__init__)(.*\.py)(c|o)?$")
_LEGACY_REVISION = re.compile(r"([a-f0-9]+)\.py$")
_SLUG_WORD = re.compile(r"\w+")


class _HeaderCache:
    """Remember parsed headers per file version, so re-reading a directory costs a stat per file.

    A pure memo keyed by (path, mtime, size): any edit to a file misses it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[int, int, RevisionHeader]] = {}

    def get(self, path: str, mtime_ns: int, size: int) -> RevisionHeader | None:
        with self._lock:
            entry = self._entries.get(path)
        if entry is None or entry[0] != mtime_ns or entry[1] != size:
            return None
        return entry[2]

    def put(self, path: str, mtime_ns: int, size: int, header: RevisionHeader) -> None:
        with self._lock:
            self._entries[path] = (mtime_ns, size, header)


_HEADERS = _HeaderCache()


class _GraphCache:
    """Remember the last graph built per set of version locations, with the files it came from."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[Any, ...], tuple[tuple[Any, ...], RevisionGraph]] = {}

    def get(self, key: tuple[Any, ...], signature: tuple[Any, ...]) -> RevisionGraph | None:
        with self._lock:
            entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] == signature else None

    def put(self, key: tuple[Any, ...], signature: tuple[Any, ...], graph: RevisionGraph) -> None:
        with self._lock:
            self._entries[key] = (signature, graph)


_GRAPHS = _GraphCache()


class _Import:
    """A revision file's import, shared by a script and its copies.

    ``module`` is the first import, ``code`` what it ran; ``taken`` is set
    once a migration run has used that module for its own.
    """

    __slots__ = ("code", "lock", "module", "taken")

    def __init__(self, module: ModuleType | None, code: CodeType | None) -> None:
        self.lock = threading.Lock()
        self.module = module
        self.code = code
        self.taken = False


class Script(Revision):
    """A revision read from a file in a version location.

    The header (ids, labels, docstring) is read without importing the file;
    :attr:`module` imports it on first use, once per process.
    :meth:`module_for_run` gives each migration run a module of its own.
    """

    __slots__ = ("_checksum", "_import", "longdoc", "path")

    def __init__(
        self,
        revision: str,
        down_revision: str | Sequence[str] | None,
        *,
        path: str | Path,
        dependencies: str | Sequence[str] | None = None,
        branch_labels: str | Sequence[str] | None = None,
        doc: str = "",
        module: ModuleType | None = None,
        code: CodeType | None = None,
    ) -> None:
        super().__init__(revision, down_revision, dependencies, branch_labels)
        self.path: str = str(path)
        #: The whole module docstring, stripped.
        self.longdoc: str = doc
        self._import = _Import(module, code)
        self._checksum: str | None = None

    @classmethod
    def from_header(cls, header: RevisionHeader, path: str | Path) -> Script:
        """Build a script from its statically read header (importing only when needed)."""
        if header.needs_import:
            return cls.from_module(*import_python_file(path), Path(path))
        revision = header.revision
        if revision is None:
            revision = _legacy_revision(Path(path))
        return cls(
            revision,
            header.down_revision,
            path=path,
            dependencies=header.depends_on,
            branch_labels=header.branch_labels,
            doc=header.doc,
        )

    @classmethod
    def from_module(cls, module: ModuleType, code: CodeType | None, path: Path) -> Script:
        """Build a script from an imported module (and the code it ran, if known)."""
        revision = getattr(module, "revision", None)
        if revision is None:
            revision = _legacy_revision(path)
        if not isinstance(revision, str):
            raise RevisionFileError(str(path), f"'revision' must be a string, not {revision!r}")
        return cls(
            revision,
            getattr(module, "down_revision", None),
            path=path,
            dependencies=getattr(module, "depends_on", None),
            branch_labels=getattr(module, "branch_labels", None),
            doc=(module.__doc__ or "").strip(),
            module=module,
            code=code,
        )

    def copy(self) -> Script:
        """Return an unlinked copy (same file, same import and checksum) for another graph."""
        copy = Script(
            self.revision,
            self.down_revision,
            path=self.path,
            dependencies=self.dependencies,
            branch_labels=self.own_branch_labels,
            doc=self.longdoc,
        )
        copy._import = self._import
        copy._checksum = self._checksum
        return copy

    @property
    def doc(self) -> str:
        """The first paragraph of the docstring (the revision message)."""
        return re.split("\n\n", self.longdoc)[0]

    @property
    def module(self) -> ModuleType:
        """The imported revision module (imported on first access, once per process)."""
        loaded = self._import
        if loaded.module is None:
            with loaded.lock:
                if loaded.module is None:
                    module, code = import_python_file(self.path)
                    self._check(module)
                    loaded.module, loaded.code = module, code
        return loaded.module

    def module_for_run(self) -> ModuleType:
        """A module of the revision's own for one migration run: its top-level code run for that run.

        The first run takes the process's import (:attr:`module`); every
        later run gets the file's code run again into a new module, so what
        one run's top-level code computed (``context.get_context()`` read at
        import, lists and counters) is never another's -- as with Alembic,
        whose commands import the files afresh each time. The file is read
        only once: later runs run the code the first import compiled.

        :raises ScriptError: when the code fails to run.
        """
        module = self.module
        loaded = self._import
        with loaded.lock:
            if not loaded.taken:
                loaded.taken = True
                return module
        if loaded.code is None:  # imported without its code (never by this module's loaders)
            with loaded.lock:
                if loaded.code is None:
                    loaded.code = import_python_file(self.path)[1]
        module = rerun_module(loaded.code, module)
        self._check(module)
        return module

    def _check(self, module: ModuleType) -> None:
        declared = getattr(module, "revision", self.revision)
        if declared != self.revision:
            raise RevisionFileError(
                self.path, f"declares revision {declared!r} at import but {self.revision!r} in its header"
            )
        for fn in ("upgrade", "downgrade"):
            if not callable(getattr(module, fn, None)):
                raise RevisionFileError(self.path, f"has no {fn}() function")

    def run_checksum(self) -> str:
        """The checksum of the file this script runs (:func:`~.checksum.file_checksum`), read once.

        Read the first time it is asked and kept, like :attr:`module` (a run
        asks before its first step, as it imports the files): a process runs
        the code it imported, whatever the file says later, so this is what a
        history row records. ``validate`` reads the files afresh instead.

        :raises OSError: when the file cannot be read.
        """
        if self._checksum is None:
            self._checksum = file_checksum(self.path)
        return self._checksum

    @property
    def checksum_read(self) -> bool:
        """True once :meth:`run_checksum` has read the file."""
        return self._checksum is not None

    @property
    def is_loaded(self) -> bool:
        """True once the module has been imported."""
        return self._import.module is not None


def _legacy_revision(path: Path) -> str:
    match = _LEGACY_REVISION.match(path.name)
    if not match:
        raise RevisionFileError(
            str(path),
            "could not determine the revision id: declare the 'revision' variable in the file",
        )
    return match.group(1)


def resolve_location(location: str | os.PathLike[str]) -> Path:
    """Turn a configured location (a path, or ``package:subpath``) into a filesystem path."""
    text = os.fspath(location)
    if ":" in text and not Path(text).exists() and not re.match(r"^[A-Za-z]:[\\/]", text):
        package, _, subpath = text.partition(":")
        try:
            base = importlib.resources.files(package)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"Cannot locate package '{package}' for location '{text}'") from exc
        return Path(str(base.joinpath(subpath)))
    return Path(text)


class ScriptDirectory:
    """Own the migration environment on disk: env.py, the template and the version files.

    It finds revision files in the version locations, reads their headers
    into a :class:`RevisionGraph`, imports a file only when its migration
    runs, and writes new revision files from ``script.py.mako``. It knows
    nothing of databases.
    """

    def __init__(
        self,
        dir: str | os.PathLike[str],
        file_template: str = DEFAULT_FILE_TEMPLATE,
        truncate_slug_length: int | None = 40,
        version_locations: Sequence[str | os.PathLike[str]] | None = None,
        sourceless: bool = False,
        output_encoding: str = "utf-8",
        timezone: str | None = None,
        hooks: Sequence[PostWriteHook] = (),
        recursive_version_locations: bool = False,
    ) -> None:
        self.dir = str(dir)
        self.file_template = file_template
        self.truncate_slug_length = truncate_slug_length or 40
        self.version_locations = [str(v) for v in version_locations or ()]
        self.sourceless = sourceless
        self.output_encoding = output_encoding
        self.timezone = timezone
        self.hooks = list(hooks)
        self.recursive_version_locations = recursive_version_locations
        self._graph: RevisionGraph | None = None
        if not Path(self.dir).is_dir():
            raise CommandError(
                f"Path doesn't exist: {self.dir}.  Please use the 'init' command to create a "
                f"new scripts folder."
            )

    @classmethod
    def from_config(cls, config: Config) -> ScriptDirectory:
        """Build the script directory a :class:`~asyncmigrate.Config` describes."""
        location = config.get_alembic_option("script_location")
        if not location:
            raise ConfigError(
                f"No 'script_location' key found in configuration ({config.describe_sources()}); "
                f"run 'asyncmigrate init <directory>' or pass -c with your alembic.ini"
            )
        truncate = config.get_alembic_option("truncate_slug_length")
        for path in reversed(config.get_prepend_sys_paths_list() or []):
            if path not in sys.path:
                sys.path.insert(0, path)
        return cls(
            resolve_location(str(location)),
            file_template=str(config.get_alembic_option("file_template", DEFAULT_FILE_TEMPLATE)),
            truncate_slug_length=int(truncate) if truncate is not None else None,
            version_locations=config.get_version_locations_list(),
            sourceless=config.get_alembic_boolean_option("sourceless"),
            output_encoding=str(config.get_alembic_option("output_encoding", "utf-8")),
            timezone=config.get_alembic_option("timezone"),
            hooks=config.get_hooks_list(),
            recursive_version_locations=config.get_alembic_boolean_option(
                "recursive_version_locations"
            ),
        )

    # -- locations and files --------------------------------------------------------

    @property
    def version_paths(self) -> list[Path]:
        """The absolute version locations, in configured order."""
        if self.version_locations:
            return [resolve_location(v).absolute() for v in self.version_locations]
        return [Path(self.dir, "versions").absolute()]

    @property
    def versions(self) -> str:
        """The single version location.

        :raises CommandError: when several are configured.
        """
        paths = self.version_paths
        if len(paths) > 1:
            raise CommandError("Multiple version_locations present")
        return str(paths[0])

    @property
    def env_py_location(self) -> str:
        """The path of env.py."""
        return str(Path(self.dir, "env.py"))

    def _files_in(self, root: Path) -> Iterator[os.DirEntry[str]]:
        """Yield the directory entries under ``root`` in load order (sorted, top-down)."""
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name)
        except OSError:
            return
        files = [e for e in entries if e.is_file()]
        yield from files
        if self.sourceless:
            cache = Path(root, "__pycache__")
            if cache.is_dir():
                stems = {e.name.split(".")[0] for e in files}
                yield from sorted(
                    (e for e in os.scandir(cache) if e.name.split(".")[0] not in stems),
                    key=lambda e: e.name,
                )
        if self.recursive_version_locations:
            for entry in entries:
                if entry.is_dir() and entry.name != "__pycache__":
                    yield from self._files_in(Path(entry.path))

    def _revision_entries(self) -> list[tuple[str, os.DirEntry[str]]]:
        seen: set[str] = set()
        found = []
        pattern = _SOURCELESS_FILE if self.sourceless else _SOURCE_FILE
        for root in self.version_paths:
            if not root.is_dir():
                continue
            root_text = str(root)
            real_root = os.path.realpath(root_text)
            for entry in self._files_in(root):
                match = pattern.match(entry.name)
                if not match:
                    continue
                if self.sourceless and match.group(2):
                    source = os.path.join(os.path.dirname(entry.path), match.group(1))
                    if os.path.exists(source) or (
                        match.group(2) == "o" and os.path.exists(source + "c")
                    ):
                        continue
                # Only links need resolving; other files are deduplicated by their root.
                if entry.is_symlink():
                    real = os.path.realpath(entry.path)
                else:
                    real = real_root + entry.path[len(root_text) :]
                if real in seen:
                    continue
                seen.add(real)
                found.append((real, entry))
        return found

    def revision_files(self) -> list[Path]:
        """Every revision file in the version locations, in load order."""
        return [Path(path) for path, _ in self._revision_entries()]

    def _load_scripts(self, entries: list[tuple[str, os.DirEntry[str], os.stat_result]]) -> list[Script]:
        scripts = []
        for path, _, stat in entries:
            if path.endswith(".py"):
                header = _HEADERS.get(path, stat.st_mtime_ns, stat.st_size)
                if header is None:
                    header = read_header(path)
                    _HEADERS.put(path, stat.st_mtime_ns, stat.st_size, header)
                scripts.append(Script.from_header(header, path))
            else:
                scripts.append(Script.from_module(*import_python_file(path), Path(path)))
        return scripts

    # -- the graph ---------------------------------------------------------------------

    @property
    def graph(self) -> RevisionGraph:
        """The revision graph of every file in the version locations.

        Built once per instance; across instances in one process, an unchanged
        set of files (same paths, sizes and modification times) reuses the
        graph already built, imported modules included.
        """
        if self._graph is None:
            entries = [(path, entry, entry.stat()) for path, entry in self._revision_entries()]
            signature = tuple((path, st.st_mtime_ns, st.st_size) for path, _, st in entries)
            key = (
                tuple(str(p) for p in self.version_paths),
                self.sourceless,
                self.recursive_version_locations,
                self.output_encoding,
            )
            graph = None if self.sourceless else _GRAPHS.get(key, signature)
            if graph is None:
                graph = RevisionGraph(self._load_scripts(entries))
                if not self.sourceless:
                    _GRAPHS.put(key, signature, graph)
            self._graph = graph
        return self._graph

    @property
    def revision_map(self) -> RevisionGraph:
        """Alembic's name for :attr:`graph`."""
        return self.graph

    def reload(self) -> None:
        """Forget the graph so the next access reads the files again."""
        self._graph = None

    def get_revision(self, id_: str) -> Script | None:
        """Return the script an identifier names (None for ``base``)."""
        rev = self.graph.get_revision(id_)
        return _as_script(rev) if rev is not None else None

    def get_revisions(self, id_: RevisionIdentifiers) -> tuple[Script, ...]:
        """Return the scripts an identifier, symbol or collection names."""
        return tuple(_as_script(r) for r in self.graph.get_revisions(id_) if isinstance(r, Revision))

    def get_heads(self, consider_depends_on: bool = False) -> list[str]:
        """Return the head revision ids (effective heads with ``consider_depends_on``)."""
        return list(self.graph.real_heads if consider_depends_on else self.graph.heads)

    def get_all_current(self, id_: tuple[str, ...]) -> set[Script]:
        """Return the scripts of ``id_`` that no other script of ``id_`` descends from."""
        return set(cast("list[Script]", self.graph.all_current(id_)))

    def get_current_head(self) -> str | None:
        """Return the single head.

        :raises MultipleHeadsError: when branches are not merged.
        """
        return self.graph.current_head()

    def get_bases(self) -> list[str]:
        """Return the ids of revisions without a down_revision."""
        return list(self.graph.bases)

    def get_base(self) -> str | None:
        """Return the single base.

        :raises CommandError: when there are several.
        """
        bases = self.get_bases()
        if len(bases) > 1:
            raise CommandError("The script directory has multiple bases. Please use get_bases().")
        return bases[0] if bases else None

    def walk_revisions(self, base: str = "base", head: str = "heads") -> Iterator[Script]:
        """Yield the scripts from ``head`` down to ``base``, newest first."""
        for rev in self.graph.iterate_revisions(
            head, base, inclusive=True, assert_relative_length=False
        ):
            yield _as_script(rev)

    def iterate_revisions(
        self, upper: RevisionIdentifiers, lower: RevisionIdentifiers, **kw: Any
    ) -> Iterator[Script]:
        """Yield the scripts between ``lower`` and ``upper``, newest first."""
        for rev in self.graph.iterate_revisions(upper, lower, **kw):
            yield _as_script(rev)

    def as_revision_number(self, id_: str | None) -> str | tuple[str, ...] | None:
        """Resolve a symbol such as ``head`` to revision id(s)."""
        ids, _ = self.graph.resolve_symbols(id_)
        if not ids:
            return None
        if id_ == "heads":
            return ids
        return ids[0]

    # -- writing new revisions -------------------------------------------------------------

    def _now(self) -> datetime.datetime:
        if self.timezone is None:
            return datetime.datetime.now()
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        for name in (self.timezone, self.timezone.upper()):
            try:
                zone = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
            return datetime.datetime.now(tz=datetime.timezone.utc).astimezone(zone)
        raise CommandError(f"Can't locate timezone: {self.timezone}")

    def revision_path(
        self, version_path: Path, rev_id: str, message: str | None, created: datetime.datetime
    ) -> Path:
        """Return where a new revision file goes, from ``file_template``."""
        slug = "_".join(_SLUG_WORD.findall(message or "")).lower()
        if len(slug) > self.truncate_slug_length:
            slug = slug[: self.truncate_slug_length].rsplit("_", 1)[0] + "_"
        fields = {
            "rev": rev_id,
            "slug": slug,
            "epoch": int(created.timestamp()),
            "year": created.year,
            "month": created.month,
            "day": created.day,
            "hour": created.hour,
            "minute": created.minute,
            "second": created.second,
        }
        try:
            name = self.file_template % fields
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"Invalid file_template {self.file_template!r}: {exc}") from exc
        return version_path / f"{name}.py"

    def generate_revision(
        self,
        revid: str,
        message: str | None,
        head: str | Sequence[str] | None = None,
        splice: bool | None = False,
        branch_labels: str | Sequence[str] | None = None,
        version_path: str | os.PathLike[str] | None = None,
        depends_on: str | Sequence[str] | None = None,
        **template_args: Any,
    ) -> Script:
        """Write a new revision file from ``script.py.mako`` and add it to the graph.

        :param revid: the new revision id.
        :param message: the message (docstring and file-name slug).
        :param head: the revision(s) to build on; ``head`` by default.
        :param splice: allow building on a revision that is not a head.
        :param branch_labels: labels for the new revision.
        :param version_path: which version location to write into.
        :param depends_on: revisions or branch labels the new revision depends on.
        :param template_args: extra values for the template (``upgrades``, ``imports``...).
        """
        Revision.verify_id(revid)
        graph = self.graph
        if revid in graph:
            raise RevisionError(f"Revision {revid} already exists")
        try:
            heads = [r for r in graph.get_revisions(head or "head") if isinstance(r, Revision)]
        except RevisionError as exc:
            if "Multiple head" in str(exc):
                raise CommandError(
                    "Multiple heads are present; please specify the head revision on which the "
                    "new revision should be based, or perform a merge."
                ) from exc
            raise
        if len({h.revision for h in heads}) != len(heads):
            raise CommandError("Duplicate head revisions specified")
        created = self._now()
        target_dir = self._choose_version_path(heads, version_path)
        path = self.revision_path(target_dir, revid, message, created)
        if not splice:
            for h in heads:
                if not h.is_head:
                    raise CommandError(
                        f"Revision {h.revision} is not a head revision; please specify --splice "
                        f"to create a new branch from this revision"
                    )
        resolved_depends: list[str] | None = None
        if depends_on:
            resolved_depends = []
            for dep in as_tuple(depends_on):
                rev = graph.get_revision(dep)
                if rev is None:
                    raise CommandError(f"Cannot depend on '{dep}'")
                resolved_depends.append(dep if dep in rev.branch_labels else rev.revision)
        path.parent.mkdir(parents=True, exist_ok=True)
        render_template(
            Path(self.dir, "script.py.mako"),
            path,
            self.output_encoding,
            up_revision=str(revid),
            down_revision=as_scalar(tuple(h.revision for h in heads)),
            branch_labels=as_tuple(branch_labels) or None,
            depends_on=as_scalar(tuple(resolved_depends or ())),
            create_date=created,
            comma=_format_as_comma,
            message=message if message is not None else "empty message",
            **template_args,
        )
        if self.hooks:
            run_post_write_hooks(path, self.hooks)
        script = Script.from_header(read_header(path), path)
        if branch_labels and not script.own_branch_labels:
            raise ScriptError(
                f"Version {script.revision} specified branch_labels {branch_labels}, however the "
                f"migration file {script.path} does not have them; have you upgraded your "
                f"script.py.mako to include the 'branch_labels' section?"
            )
        # A new graph of new nodes: graphs already handed out (and cached) stay as they were.
        self._graph = RevisionGraph([*(s.copy() for s in _scripts(graph)), script])
        return script

    def _choose_version_path(
        self, heads: Iterable[Revision], version_path: str | os.PathLike[str] | None
    ) -> Path:
        paths = self.version_paths
        if version_path is None:
            if len(paths) == 1:
                return paths[0]
            for h in heads:
                return Path(_as_script(h).path).parent
            raise CommandError("Multiple version locations present, please specify --version-path")
        chosen = Path(version_path).absolute()
        if chosen not in paths:
            raise CommandError(
                f"Path {version_path} is not represented in current version locations"
            )
        return chosen


def _scripts(graph: RevisionGraph) -> list[Script]:
    return [_as_script(rev) for rev in graph]


def _as_script(rev: Revision) -> Script:
    if not isinstance(rev, Script):  # pragma: no cover - graphs here hold scripts
        raise TypeError(f"{rev!r} is not a Script")
    return rev


def _format_as_comma(value: str | Iterable[str] | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return ", ".join(value)
