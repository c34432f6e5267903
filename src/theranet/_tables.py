"""Plumbing shared by the modules that read a sourced TOML table.

The radiobiology, radiopharmaceutical, planning, pathway and eligibility tables
are each shipped as ``theranet/data/<name>.toml`` and may be overridden by a
site table. This module holds what they do alike: parse the TOML text into the
module's own error (:func:`parse_toml`), read the shipped file
(:func:`read_shipped`), read a user file and merge it over the shipped one
(:func:`load_user_table`), and index named entries by name and alias
(:class:`SourcedTable`). Each module keeps its own error class, messages,
validation and caching.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import resources
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from theranet._checks import lookup_key, read_table_text
from theranet.errors import TheranetError

__all__ = ["SourcedTable", "load_user_table", "parse_toml", "read_shipped"]

_T = TypeVar("_T")


class _Named(Protocol):
    """An entry with a canonical name and aliases."""

    @property
    def name(self) -> str: ...

    @property
    def aliases(self) -> tuple[str, ...]: ...


E = TypeVar("E", bound=_Named)


def parse_toml(error: type[TheranetError], text: str, source: str) -> dict[str, Any]:
    """Parse TOML text, raising the module's error on a syntax error.

    Parameters
    ----------
    error : type
        The module's :class:`~theranet.errors.TheranetError` subclass.
    text : str
        TOML text.
    source : str
        Name of the file for messages.

    Returns
    -------
    dict
        The parsed document (not validated).

    Raises
    ------
    error
        ``TOML: cannot be parsed: ...`` with the fix ``fix the TOML syntax``.
    """
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(
            "TOML", f"cannot be parsed: {exc}", fix="fix the TOML syntax", source=source
        ) from None


def read_shipped(data_file: str, read_toml: Callable[[str, str], _T]) -> tuple[_T, str]:
    """Read a table shipped with the package.

    The caller caches the result (``functools.lru_cache``) so that the shipped
    table is parsed once.

    Parameters
    ----------
    data_file : str
        Path inside the package, e.g. ``"data/radiobiology.toml"``.
    read_toml : callable
        ``read_toml(text, source)`` parses and checks the text.

    Returns
    -------
    tuple
        ``(document, source)`` with ``source == "theranet/<data_file>"``.
    """
    resource = resources.files("theranet").joinpath(data_file)
    source = f"theranet/{data_file}"
    return read_toml(resource.read_text(encoding="utf-8"), source), source


def load_user_table(
    error: type[TheranetError],
    path: str | PathLike[str],
    *,
    merge: bool,
    shipped: tuple[dict[str, Any], str],
    read_toml: Callable[[str, str], dict[str, Any]],
    merge_docs: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
    build: Callable[[dict[str, Any], str, tuple[str, ...]], _T],
) -> _T:
    """Read a user table and build it alone or merged over the shipped one.

    Parameters
    ----------
    error : type
        The module's error, raised when the file cannot be read.
    path : str or path-like
        The user's TOML file.
    merge : bool
        If true, ``merge_docs(shipped_doc, user_doc)`` is built with version
        ``"<shipped>+<user>"`` and paths ``(shipped, user)``; else the user
        document alone, with its own version and path.
    shipped : tuple
        ``(document, source)`` of the shipped table (see :func:`read_shipped`).
    read_toml : callable
        ``read_toml(text, source)`` parses and checks the user text.
    merge_docs : callable
        ``merge_docs(base, override)`` returns the merged document.
    build : callable
        ``build(doc, version, paths)`` validates a document into the table.

    Returns
    -------
    object
        What ``build`` returns. A user table without ``version`` counts as
        version ``"user"``.
    """
    shipped_doc, shipped_source = shipped
    text, where = read_table_text(error, path)
    source = str(Path(where))
    user = read_toml(text, source)
    user_version = str(user.get("version", "user"))
    if not merge:
        return build(user, user_version, (source,))
    version = f"{shipped_doc.get('version', '')}+{user_version}"
    return build(merge_docs(shipped_doc, user), version, (shipped_source, source))


class SourcedTable(Generic[E]):
    """Base of an immutable table of named entries, looked up by name or alias.

    Subclasses set :attr:`_entry_type` (and :attr:`_normalise` where the lookup
    key differs) and implement :meth:`_clash_error`; they may override
    :meth:`_keys`. Their ``get`` uses :meth:`_lookup` and raises their own error.

    Parameters
    ----------
    entries : iterable of E
        The entries, in table order; their lookup keys must be unique.
    version : str
        Version of the table(s) the entries come from.
    paths : tuple of str, optional
        Files the table was read from (shipped table first).

    Raises
    ------
    Exception
        What :meth:`_clash_error` returns, when two entries share a lookup key.
    """

    #: Class of the entries (an entry passed to ``get`` or ``in`` is taken as is).
    _entry_type: ClassVar[type]
    #: Lookup key of a name (default: lower case, spaces and hyphens as underscores).
    _normalise: ClassVar[Callable[[str], str]] = staticmethod(lookup_key)

    def __init__(self, entries: Iterable[E], version: str, paths: tuple[str, ...] = ()) -> None:
        self._entries: tuple[E, ...] = tuple(entries)
        self._version = str(version)
        self._paths = tuple(paths)
        index: dict[str, E] = {}
        for entry in self._entries:
            for key in self._keys(entry):
                other = index.get(key)
                if other is not None and other is not entry:
                    raise self._clash_error(entry, other, key)
                index[key] = entry
        self._index: Mapping[str, E] = MappingProxyType(index)

    def _keys(self, entry: E) -> Iterable[str]:
        """Lookup keys of an entry: its normalised name and aliases."""
        return {self._normalise(n) for n in (entry.name, *entry.aliases)}

    def _clash_error(self, entry: E, other: E, key: str) -> Exception:
        """The error for ``entry`` sharing lookup key ``key`` with ``other``."""
        raise NotImplementedError

    def _lookup(self, name: str) -> E | None:
        """The entry of a name or alias, compared by lookup key; ``None`` if unknown."""
        return self._index.get(self._normalise(name))

    @property
    def version(self) -> str:
        """Table version (``"<shipped>+<user>"`` for a merged table)."""
        return self._version

    @property
    def paths(self) -> tuple[str, ...]:
        """Files the table was read from (shipped table first)."""
        return self._paths

    def names(self) -> tuple[str, ...]:
        """Canonical names in table order."""
        return tuple(e.name for e in self._entries)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, self._entry_type):
            return name in self._entries
        return isinstance(name, str) and self._normalise(name) in self._index

    def __iter__(self) -> Iterator[E]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
