"""A real SQLite database per timeline, on the standard library's `sqlite3`.

Tables (open a kept file with the `sqlite3` shell):

- `data`: the transactional log, one row per record written (`pos` is the log
  position; `txn` is NULL for a plain append);
- `upserts`: records written by key (`key` is the one the sink chose);
- `transactions`: one row per transaction: owner sink and subtask, state
  (open, precommitted, committed, aborted, expired), begun and ended times, and
  the producer (transactional id, epoch) it was begun with, if any;
- `producers`: each transactional id's current epoch and who initialized it last;
- `metadata`: the small per-owner map sinks keep beside the data (JSON values);
- `visibility`: every moment records became visible to read-committed readers.

Read-committed and read-uncommitted views are SQL queries over these tables,
so a sink that speaks SQL to the database (`SQLiteStore.sql`) is judged by
what it left there.  The database lives in memory unless `keep_store(DIR)`
asks for a file per timeline in DIR.  `fork` copies the database with the
backup API from a copy taken at `mark()` (snapshot completion), then replays
the operations logged since.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterator

from onceflow.stores.protocol import (ABORTED, COMMITTED, EXPIRED, OPEN, PRECOMMITTED, Entry,
                                      ProducerFencedError, StoreError, Transaction,
                                      TransactionLostError, Visible, check_begin)

__all__ = ["SQLiteStore", "keep_store", "kept_directory"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS data (
    pos INTEGER PRIMARY KEY, id TEXT NOT NULL, key INTEGER, value INTEGER,
    split INTEGER, "offset" INTEGER, txn TEXT, written REAL NOT NULL);
CREATE INDEX IF NOT EXISTS data_txn ON data(txn);
CREATE TABLE IF NOT EXISTS upserts (
    key TEXT PRIMARY KEY, id TEXT NOT NULL, rkey INTEGER, value INTEGER,
    split INTEGER, "offset" INTEGER, written REAL NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (
    id TEXT PRIMARY KEY, sink TEXT NOT NULL, subtask INTEGER NOT NULL,
    state TEXT NOT NULL, begun REAL NOT NULL, ended REAL, producer TEXT, epoch INTEGER);
CREATE INDEX IF NOT EXISTS transactions_producer ON transactions(producer);
CREATE TABLE IF NOT EXISTS producers (
    tid TEXT PRIMARY KEY, epoch INTEGER NOT NULL, sink TEXT NOT NULL, subtask INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS metadata (
    owner TEXT NOT NULL, name TEXT NOT NULL, value TEXT, PRIMARY KEY (owner, name));
CREATE TABLE IF NOT EXISTS visibility (
    seq INTEGER PRIMARY KEY, time REAL NOT NULL, version INTEGER NOT NULL, txn TEXT,
    ids TEXT NOT NULL, upsert INTEGER NOT NULL);
"""

_KEEP: contextvars.ContextVar[Path | None] = contextvars.ContextVar("onceflow_keep_store",
                                                                    default=None)
_LIVE = (OPEN, PRECOMMITTED)


@contextlib.contextmanager
def keep_store(directory: str | os.PathLike[str] | None) -> Iterator[Path | None]:
    """Within the block, every SQLite store is a file `DIR/<run>-t<timeline>....sqlite`."""
    if directory is None:
        yield None
        return
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".onceflow-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StoreError(f"cannot keep stores in {str(directory)!r}: {exc.strerror or exc}; "
                         "pass a writable directory to --keep-store") from None
    token = _KEEP.set(path)
    try:
        yield path
    finally:
        _KEEP.reset(token)


def kept_directory() -> Path | None:
    return _KEEP.get()


def _fail(what: str, exc: BaseException) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        fix = "another process holds the database; close it and retry"
    elif "not a database" in text or "malformed" in text or "file is encrypted" in text:
        fix = "the file is not an SQLite database onceflow wrote; remove it or pick another path"
    elif "readonly" in text or "read-only" in text or "unable to open" in text:
        fix = "make the file and its directory writable, or pick another path"
    else:
        fix = "check the database file and its directory"
    return StoreError(f"SQLite store {what}: {text}; {fix}")


class SQLiteStore:
    """The store protocol on an SQLite database (in memory, or a file to keep)."""

    #: `--keep-store DIR` keeps each timeline's database as a file
    keeps_files = True

    def __init__(self, txn_timeout: float, *, label: str = "", path: str | os.PathLike[str] |
                 None = None, source: sqlite3.Connection | None = None) -> None:
        self.txn_timeout = float(txn_timeout)
        self.label = label
        self.ops: list[tuple[Any, ...]] = []
        self.failed_commits: list[tuple[str, float]] = []
        self.transient_failures = 0
        #: How rows are read back as records (the model sets its Record type).
        self.record_type: Any = None
        self._marks: dict[int, sqlite3.Connection] = {}
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._positions = 0
        if path is None:
            keep = _KEEP.get()
            if keep is not None and label:
                path = keep / f"{_safe(label)}.sqlite"
        self.path = None if path is None else Path(path)
        self.db = self._open(source)

    # -- opening ----------------------------------------------------------------

    def _open(self, source: sqlite3.Connection | None) -> sqlite3.Connection:
        target = ":memory:" if self.path is None else str(self.path)
        try:
            if self.path is not None:
                self._replace(self.path)
            db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
            if self.path is not None:
                db.execute("PRAGMA journal_mode=MEMORY")
                db.execute("PRAGMA synchronous=OFF")
            if source is not None:
                source.backup(db)
                columns = {r[1] for r in db.execute("PRAGMA table_info(transactions)")}
                if "producer" not in columns:  # a file from before producer epochs
                    db.execute("ALTER TABLE transactions ADD COLUMN producer TEXT")
                    db.execute("ALTER TABLE transactions ADD COLUMN epoch INTEGER")
            db.executescript(SCHEMA)
        except StoreError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise _fail(f"cannot open {target!r}", exc) from None
        return db

    @staticmethod
    def _replace(path: Path) -> None:
        """A timeline starts from an empty database: remove an earlier run's file, but
        never a file that is not one (a user's database, say) or one in use."""
        if not path.parent.is_dir():
            raise StoreError(f"SQLite store: directory {str(path.parent)!r} is missing; "
                             "create it or pick another path")
        if not path.exists():
            return
        if not path.is_file():
            raise StoreError(f"SQLite store: {str(path)!r} is not a file; pick another path")
        try:
            probe = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                                    timeout=0.0)
            try:
                tables = {r[0] for r in probe.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'")}
                probe.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            finally:
                probe.close()
        except sqlite3.Error as exc:
            raise _fail(f"cannot reuse {str(path)!r}", exc) from None
        if not {"data", "transactions", "metadata"} <= tables:
            raise StoreError(f"SQLite store: {str(path)!r} exists and is not a database onceflow "
                             "wrote; refusing to overwrite it: pick another path")
        try:
            path.unlink()
        except OSError as exc:
            raise StoreError(f"SQLite store: cannot replace {str(path)!r}: "
                             f"{exc.strerror or exc}; make its directory writable") from None

    @classmethod
    def open_file(cls, path: str | os.PathLike[str], *, txn_timeout: float) -> "SQLiteStore":
        """Open an existing database file this store wrote (e.g. one kept by --keep-store),
        for reading it back; it is copied into memory, the file is left as it is."""
        p = Path(path)
        if not p.is_file():
            raise StoreError(f"SQLite store: no file {str(p)!r}; pass a database that "
                             "--keep-store wrote")
        try:
            src = sqlite3.connect(f"file:{p}?mode=ro", uri=True, isolation_level=None)
            try:
                src.execute("PRAGMA quick_check").fetchall()
                tables = {r[0] for r in src.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'")}
                if not {"data", "transactions", "metadata"} <= tables:
                    raise StoreError(f"SQLite store: {str(p)!r} has no onceflow tables (data, "
                                     "transactions, metadata); pass a database --keep-store wrote")
                store = cls(txn_timeout, source=src)
            finally:
                src.close()
        except StoreError:
            raise
        except sqlite3.Error as exc:
            raise _fail(f"cannot read {str(p)!r}", exc) from None
        return store

    def summary(self) -> dict[str, Any]:
        """What the database holds, as plain values: rows, transactions by state, what a
        read-committed reader sees at the last moment recorded, metadata by owner."""
        end = self._sql("SELECT MAX(t) FROM (SELECT MAX(written) AS t FROM data UNION ALL "
                        "SELECT MAX(COALESCE(ended, begun)) FROM transactions UNION ALL "
                        "SELECT MAX(written) FROM upserts)").fetchone()[0] or 0.0
        states = dict(self._sql("SELECT state, COUNT(*) FROM transactions GROUP BY state"))
        committed = self.entries(end)
        blocking = self.blocking_transaction(end)
        owners = [o for (o,) in self._sql("SELECT DISTINCT owner FROM metadata ORDER BY owner")]
        return {"end": float(end), "rows": self._sql("SELECT COUNT(*) FROM data").fetchone()[0],
                "upserts": self._sql("SELECT COUNT(*) FROM upserts").fetchone()[0],
                "transactions": states, "committed": len(committed),
                "distinct": len({e.record[0] for e in committed}),
                "blocking": blocking.id if blocking is not None else None,
                "metadata": {o: self.metadata(o) for o in owners}}

    def _sql(self, statement: str, params: Any = ()) -> sqlite3.Cursor:
        try:
            return self.db.execute(statement, params)
        except sqlite3.Error as exc:
            raise _fail(f"{self.path or 'in memory'} failed", exc) from None

    # -- writes -------------------------------------------------------------------

    def _rows(self, records: list[Any]) -> list[tuple[Any, ...]]:
        if records and self.record_type is None:
            self.record_type = type(records[0])
        try:
            return [(r[0], r[1], r[2], r[3], r[4]) for r in records]
        except (TypeError, IndexError):
            raise StoreError("SQLite store: records must be 5-field tuples (id, key, value, "
                             "split, offset) like onceflow's Record") from None

    def _insert(self, now: float, txn: str | None, records: list[Any]) -> list[int]:
        start = self._positions
        self._positions += len(records)
        rows = self._rows(records)
        try:
            self.db.executemany(
                'INSERT INTO data (pos, id, key, value, split, "offset", txn, written) '
                'VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                [(start + i, *row, txn, now) for i, row in enumerate(rows)])
        except sqlite3.Error as exc:
            raise _fail(f"{self.path or 'in memory'} failed", exc) from None
        return list(range(start, start + len(records)))

    def _visible(self, now: float, txn: str | None, ids: list[str], upsert: bool) -> None:
        self._sql("INSERT INTO visibility (time, version, txn, ids, upsert) VALUES (?, ?, ?, ?, ?)",
                  (now, len(self.ops), txn, json.dumps(ids), int(upsert)))

    def append(self, now: float, records: list[Any]) -> None:
        self.ops.append(("append", now, records))
        self._cache.clear()
        self._insert(now, None, records)
        self._visible(now, None, [r[0] for r in records], False)

    def upsert(self, now: float, records: list[Any], keys: list[str] | None = None) -> None:
        if keys is None:
            keys = [r[0] for r in records]
        elif len(keys) != len(records):
            raise ValueError(f"upsert of {len(records)} records with {len(keys)} keys")
        self.ops.append(("upsert", now, records, keys))
        self._cache.clear()
        rows = self._rows(records)
        try:
            self.db.executemany(
                'INSERT INTO upserts (key, id, rkey, value, split, "offset", written) '
                'VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET id=excluded.id, '
                'rkey=excluded.rkey, value=excluded.value, split=excluded.split, '
                '"offset"=excluded."offset", written=excluded.written',
                [(str(k), *row, now) for k, row in zip(keys, rows)])
        except sqlite3.Error as exc:
            raise _fail(f"{self.path or 'in memory'} failed", exc) from None
        self._visible(now, None, [r[0] for r in records], True)

    def set_metadata(self, now: float, owner: str, name: str, value: Any) -> None:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            raise StoreError(f"metadata {owner}/{name} must be a JSON value, got "
                             f"{type(value).__name__}") from None
        self.ops.append(("set_metadata", now, owner, name, value))
        self._sql("INSERT INTO metadata (owner, name, value) VALUES (?, ?, ?) "
                  "ON CONFLICT(owner, name) DO UPDATE SET value=excluded.value",
                  (owner, name, text))

    def metadata(self, owner: str) -> dict[str, Any]:
        return {name: json.loads(value) for name, value in self._sql(
            "SELECT name, value FROM metadata WHERE owner = ? ORDER BY name", (owner,))}

    def sql(self, now: float, statement: str, params: Any = (), many: bool = False
            ) -> list[tuple[Any, ...]]:
        """Run one SQL statement on the database (`many`: once per parameter tuple); its rows.

        Logged, so forks replay it.  Rows it adds to `data` outside any transaction
        (txn NULL) are visible at once, and recorded as such in `visibility`."""
        self.ops.append(("sql", now, statement, list(params) if many else params, many))
        self._cache.clear()
        before = self._positions
        if many:
            try:
                self.db.executemany(statement, params)
            except sqlite3.Error as exc:
                raise _fail(f"{self.path or 'in memory'} failed", exc) from None
            rows: list[tuple[Any, ...]] = []
        else:
            rows = self._sql(statement, params).fetchall()
        top = self._sql("SELECT COALESCE(MAX(pos) + 1, 0) FROM data").fetchone()[0]
        if top > before:
            self._positions = top
            ids = [i for (i,) in self._sql(
                "SELECT id FROM data WHERE pos >= ? AND txn IS NULL ORDER BY pos", (before,))]
            if ids:
                self._visible(now, None, ids, False)
        return rows

    def begin(self, now: float, txn_id: str, owner: tuple[str, int],
              producer: tuple[str, int] | None = None) -> None:
        if self._state(txn_id) is not None:
            raise ValueError(f"transaction id {txn_id!r} used twice")
        if producer is None:
            self.ops.append(("begin", now, txn_id, owner))
            self._sql("INSERT INTO transactions (id, sink, subtask, state, begun) "
                      "VALUES (?, ?, ?, 'open', ?)", (txn_id, owner[0], owner[1], now))
            return
        tid, epoch = producer[0], int(producer[1])
        self._expire_all(now)
        live = [i for (i,) in self._sql(
            "SELECT id FROM transactions WHERE producer = ? AND epoch = ? "
            "AND state IN ('open', 'precommitted') ORDER BY rowid", (tid, epoch))]
        check_begin(txn_id, tid, epoch, self._epoch(tid), live, now)
        self.ops.append(("begin", now, txn_id, owner, (tid, epoch)))
        self._sql("INSERT INTO transactions (id, sink, subtask, state, begun, producer, epoch) "
                  "VALUES (?, ?, ?, 'open', ?, ?, ?)",
                  (txn_id, owner[0], owner[1], now, tid, epoch))

    def _epoch(self, tid: str) -> int | None:
        row = self._sql("SELECT epoch FROM producers WHERE tid = ?", (tid,)).fetchone()
        return None if row is None else int(row[0])

    def init_producer(self, now: float, transactional_id: str, owner: tuple[str, int]) -> int:
        """Bump the id's epoch (0 on first use), abort its open transaction, fence older
        producers of it; the new epoch (Kafka's initTransactions)."""
        self.ops.append(("init_producer", now, transactional_id, owner))
        self._cache.clear()
        self._expire_all(now)
        current = self._epoch(transactional_id)
        epoch = 0 if current is None else current + 1
        self._sql("INSERT INTO producers (tid, epoch, sink, subtask) VALUES (?, ?, ?, ?) "
                  "ON CONFLICT(tid) DO UPDATE SET epoch=excluded.epoch, sink=excluded.sink, "
                  "subtask=excluded.subtask", (transactional_id, epoch, owner[0], owner[1]))
        self._sql("UPDATE transactions SET state = 'aborted', ended = ? "
                  "WHERE producer = ? AND state IN ('open', 'precommitted')",
                  (now, transactional_id))
        return epoch

    def producers(self) -> dict[str, int]:
        return {tid: int(e) for tid, e in self._sql(
            "SELECT tid, epoch FROM producers ORDER BY tid")}

    def _fence(self, txn_id: str, now: float) -> None:
        row = self._sql("SELECT t.producer, t.epoch, p.epoch FROM transactions t JOIN producers p "
                        "ON t.producer = p.tid WHERE t.id = ?", (txn_id,)).fetchone()
        if row is not None and row[1] < row[2]:
            raise ProducerFencedError(txn_id, row[0], int(row[1]), int(row[2]), now)

    def _state(self, txn_id: str, now: float | None = None) -> str | None:
        row = self._sql("SELECT state, begun FROM transactions WHERE id = ?", (txn_id,)).fetchone()
        if row is None:
            return None
        state, begun = row
        if now is not None and state in _LIVE and now - begun >= self.txn_timeout:
            self._sql("UPDATE transactions SET state = 'expired', ended = ? WHERE id = ?",
                      (begun + self.txn_timeout, txn_id))
            return EXPIRED
        return state

    def write(self, now: float, txn_id: str, records: list[Any]) -> None:
        self.ops.append(("write", now, txn_id, records))
        self._cache.clear()
        state = self._state(txn_id, now)
        if state is None:
            raise KeyError(txn_id)
        self._fence(txn_id, now)
        if state != OPEN:
            # a fenced or expired producer's next send fails (Kafka raises on it)
            raise TransactionLostError(txn_id, state, now, self.txn_timeout)
        self._insert(now, txn_id, records)

    def precommit(self, now: float, txn_id: str) -> None:
        self.ops.append(("precommit", now, txn_id))
        self._cache.clear()
        state = self._state(txn_id, now)
        self._fence(txn_id, now)
        if state == OPEN:
            self._sql("UPDATE transactions SET state = 'precommitted' WHERE id = ?", (txn_id,))
        elif state in (ABORTED, EXPIRED):
            raise TransactionLostError(txn_id, state, now, self.txn_timeout)

    def commit(self, now: float, txn_id: str) -> bool | None:
        """Commit; idempotent.  False when the transaction expired or was aborted,
        None on a transient failure (nothing happened; retry)."""
        self._cache.clear()
        if self.transient_failures:
            self.transient_failures -= 1
            self.ops.append(("fail_commit", now, txn_id))
            return None
        self.ops.append(("commit", now, txn_id))
        state = self._state(txn_id, now)
        if state is None:
            return False
        self._fence(txn_id, now)
        if state == COMMITTED:
            return True
        if state in (ABORTED, EXPIRED):
            self.failed_commits.append((txn_id, now))
            return False
        self._sql("UPDATE transactions SET state = 'committed', ended = ? WHERE id = ?",
                  (now, txn_id))
        ids = [r[0] for r in self._sql("SELECT id FROM data WHERE txn = ? ORDER BY pos", (txn_id,))]
        self._visible(now, txn_id, ids, False)
        return True

    def fail_commit(self, now: float, txn_id: str) -> None:
        """Replays a transient commit failure (it changed nothing)."""
        self.ops.append(("fail_commit", now, txn_id))

    def abort(self, now: float, txn_id: str) -> None:
        self.ops.append(("abort", now, txn_id))
        self._cache.clear()
        self._sql("UPDATE transactions SET state = 'aborted', ended = ? "
                  "WHERE id = ? AND state IN ('open', 'precommitted')", (now, txn_id))

    def _expire_all(self, now: float) -> None:
        self._sql("UPDATE transactions SET state = 'expired', ended = begun + ? "
                  "WHERE state IN ('open', 'precommitted') AND ? - begun >= ?",
                  (self.txn_timeout, now, self.txn_timeout))

    # -- reads --------------------------------------------------------------------

    def version(self) -> int:
        return len(self.ops)

    def mark(self) -> int:
        version = len(self.ops)
        if version not in self._marks:
            copy = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            self.db.backup(copy)
            self._marks[version] = copy
        return version

    def _transactions(self, where: str = "", params: Any = ()) -> list[Transaction]:
        out = []
        for txn_id, sink, subtask, state, begun, ended, producer, epoch in self._sql(
                "SELECT id, sink, subtask, state, begun, ended, producer, epoch FROM transactions "
                f"{where} ORDER BY rowid", params).fetchall():
            t = Transaction(txn_id, (sink, subtask), begun,
                            None if producer is None else (producer, int(epoch)))
            t.state, t.ended = state, ended
            t.positions = [p for (p,) in self._sql(
                "SELECT pos FROM data WHERE txn = ? ORDER BY pos", (txn_id,))]
            out.append(t)
        return out

    @property
    def txns(self) -> dict[str, Transaction]:
        return {t.id: t for t in self._transactions()}

    def unfinished(self, now: float) -> list[Transaction]:
        self._expire_all(now)
        return self._transactions("WHERE state IN ('open', 'precommitted')")

    def open_transactions(self, sink_uid: str) -> list[Transaction]:
        return self._transactions("WHERE sink = ? AND state IN ('open', 'precommitted')",
                                  (sink_uid,))

    def _record(self, row: tuple[Any, ...]) -> Any:
        kind = self.record_type
        return kind(*row) if kind is not None else tuple(row)

    def entries(self, now: float, *, committed_only: bool = True,
                past_open: bool = False) -> list[Entry]:
        key = ("entries", now, committed_only, past_open, len(self.ops))
        cached = self._cache.get(key)
        if cached is not None:
            return list(cached)
        self._expire_all(now)
        out: list[Entry] = []
        rows = self._sql(
            'SELECT d.id, d.key, d.value, d.split, d."offset", d.txn, d.written, t.state, t.ended '
            "FROM data d LEFT JOIN transactions t ON d.txn = t.id ORDER BY d.pos").fetchall()
        for rid, k, v, s, o, txn, written, state, ended in rows:
            record = self._record((rid, k, v, s, o))
            if txn is None:
                out.append(Entry(record, None, written, written))
            elif state == COMMITTED:
                out.append(Entry(record, txn, written, ended))
            elif state in _LIVE:
                if committed_only:
                    if past_open:
                        continue
                    break
                out.append(Entry(record, txn, written, None))
        for rid, k, v, s, o, written in self._sql(
                'SELECT id, rkey, value, split, "offset", written FROM upserts ORDER BY rowid'):
            out.append(Entry(self._record((rid, k, v, s, o)), None, written, written))
        self._cache[key] = out
        return list(out)

    def destroyed(self, now: float) -> list[tuple[Entry, Transaction]]:
        self._expire_all(now)
        txns = {t.id: t for t in self._transactions(
            "WHERE state IN ('aborted', 'expired') AND ended IS NOT NULL AND ended <= ?", (now,))}
        out = []
        for rid, k, v, s, o, txn, written in self._sql(
                'SELECT id, key, value, split, "offset", txn, written FROM data '
                "WHERE txn IS NOT NULL ORDER BY pos"):
            if txn in txns:
                out.append((Entry(self._record((rid, k, v, s, o)), txn, written, None), txns[txn]))
        return out

    def read_committed(self, now: float) -> list[Any]:
        return [e.record for e in self.entries(now)]

    def read_uncommitted(self, now: float) -> list[Any]:
        return [e.record for e in self.entries(now, committed_only=False)]

    def blocking_transaction(self, now: float) -> Transaction | None:
        self._expire_all(now)
        row = self._sql(
            "SELECT d.txn FROM data d JOIN transactions t ON d.txn = t.id "
            "WHERE t.state IN ('open', 'precommitted') ORDER BY d.pos LIMIT 1").fetchone()
        if row is None:
            return None
        return self._transactions("WHERE id = ?", (row[0],))[0]

    def visibility(self) -> list[Visible]:
        return [Visible(time, version, txn, tuple(json.loads(ids)), bool(upsert))
                for time, version, txn, ids, upsert in self._sql(
                    "SELECT time, version, txn, ids, upsert FROM visibility ORDER BY seq")]

    # -- forks --------------------------------------------------------------------

    def fork(self, version: int, *, label: str = "") -> "SQLiteStore":
        """A new database as this one stood after its first `version` operations: a copy
        by the backup API of the latest mark at or before it, plus the operations since."""
        if not 0 <= version <= len(self.ops):
            raise StoreError(f"cannot fork at version {version}: the store has {len(self.ops)} "
                             "operations")
        base = max((v for v in self._marks if v <= version), default=None)
        other = SQLiteStore(self.txn_timeout, label=label,
                            source=self._marks[base] if base is not None else None)
        other.record_type = self.record_type
        if base is not None:
            other.ops = list(self.ops[:base])
            # the next position as `sql` counts it (a count falls short when rows left
            # `data`, and the fork's first statement then reported old rows as new)
            other._positions = other._sql(
                "SELECT COALESCE(MAX(pos) + 1, 0) FROM data").fetchone()[0]
            other._marks[base] = other._copy()
        for op in self.ops[base or 0:version]:
            try:
                getattr(other, op[0])(*op[1:])
            except TransactionLostError:
                pass  # the write failed then too: it is logged, and changed nothing
        return other

    def _copy(self) -> sqlite3.Connection:
        copy = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self.db.backup(copy)
        return copy

    def close(self) -> None:
        for conn in self._marks.values():
            conn.close()
        self._marks.clear()
        self.db.close()


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:120]
