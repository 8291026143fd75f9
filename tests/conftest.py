"""Shared fixtures of the test suite."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable, Iterator

import pytest

from onceflow.stores import SQLiteStore

#: the kinds of bad SQLite file `bad_sqlite_file` makes
BAD_FILE_KINDS = ("missing", "corrupt", "foreign", "locked", "unreadable", "unwritable",
                  "missing-dir")


@pytest.fixture
def bad_sqlite_file(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Make a bad SQLite file of a kind (`BAD_FILE_KINDS`) and return its path: missing,
    corrupt (not a database), foreign (a database onceflow did not write), locked (an
    exclusive lock held by another connection until the test ends), unreadable (a
    directory), unwritable (under /proc) or in a missing directory."""
    holders: list[sqlite3.Connection] = []

    def make(kind: str) -> Path:
        if kind not in BAD_FILE_KINDS:
            raise ValueError(f"unknown bad file kind {kind!r}; one of {', '.join(BAD_FILE_KINDS)}")
        path = tmp_path / "db.sqlite"
        if kind == "corrupt":
            path.write_bytes(b"not a database at all " * 100)
        elif kind == "foreign":
            sqlite3.connect(path).execute("CREATE TABLE mine (x)").connection.commit()
        elif kind == "locked":
            SQLiteStore(10.0, path=path).close()
            holder = sqlite3.connect(path, isolation_level=None)
            holders.append(holder)
            holder.execute("PRAGMA locking_mode=EXCLUSIVE")
            holder.execute("BEGIN EXCLUSIVE")
            holder.execute("INSERT INTO metadata VALUES ('a', 'b', 'c')")
        elif kind == "unreadable":
            path = tmp_path  # a directory
        elif kind == "unwritable":
            path = Path("/proc/self/onceflow.sqlite")
        elif kind == "missing-dir":
            path = tmp_path / "nope" / "db.sqlite"
        return path

    yield make
    for holder in holders:
        holder.close()
