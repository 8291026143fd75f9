"""The failure corpus: a directory, or a Redis that a fleet of workers shares.

`--db DIR` is Hypothesis's directory database.  `--db redis://HOST:PORT/N`
(or `rediss://` for TLS) is Hypothesis's `RedisExampleDatabase`, with its keys
under `onceflow:<corpus name>:` so that one Redis serves many projects.  The
shared corpus never stops a worker: if Redis goes away mid-run, whatever the
worker finds is kept in a local fallback directory (and pushed to Redis when a
later fetch reaches it again); an entry that is not a valid Hypothesis choice
sequence is skipped with a warning.
"""

from __future__ import annotations

import re
import sys
import time
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

from hypothesis.database import (DirectoryBasedExampleDatabase, ExampleDatabase,
                                 choices_from_bytes)

from onceflow.errors import OnceflowError

__all__ = ["CorpusError", "SharedCorpus", "connect", "corpus_prefix", "default_corpus_name",
           "is_redis_url", "open_corpus", "redact", "validate_corpus_name"]

REDIS_SCHEMES = ("redis", "rediss")
CORPUS_TTL = timedelta(days=8)  # Hypothesis's default: examples survive between weekly runs
RETRY_FIRST, RETRY_MAX = 5.0, 60.0  # seconds between reconnection attempts while Redis is away
FETCH_EVERY = 3.0  # s: failures are fetched again at most this often (Redis traffic)
FETCH_SIDE_EVERY = 30.0  # s: the same for Hypothesis's secondary and pareto keys
_SIDE_KEYS = (b".secondary", b".pareto")
CONNECT_TIMEOUT = 3.0
COMMAND_TIMEOUT = 10.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class CorpusError(OnceflowError, ValueError):
    """The corpus cannot be used (bad path or URL, Redis unreachable, no password, ...)."""


def warn(message: str) -> None:
    """One warning line on stderr."""
    print(f"onceflow: warning: {message}", file=sys.stderr, flush=True)


# -- names ---------------------------------------------------------------------------------

def validate_corpus_name(name: str) -> str:
    """`name` if it is usable as a key namespace, else a CorpusError that says what fits."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise CorpusError(f"bad corpus name {str(name)[:60]!r}: use 1-100 letters, digits, "
                          "'.', '_' or '-', starting with a letter or digit (e.g. "
                          "--corpus-name my-connector)")
    return name


def default_corpus_name(start: Path | None = None) -> str:
    """The `[project] name` of the nearest pyproject.toml at or above `start` (cwd), else 'default'."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        try:
            if not candidate.is_file():
                continue
            with candidate.open("rb") as stream:
                data = tomllib.load(stream)
        except (OSError, tomllib.TOMLDecodeError):
            continue
        name = data.get("project", {}).get("name") if isinstance(data.get("project"), dict) else None
        if isinstance(name, str):
            normal = re.sub(r"[-_.]+", "-", name).lower().strip("-")
            if _NAME.fullmatch(normal):
                return normal
        return "default"
    return "default"


def corpus_prefix(name: str) -> str:
    """Every Redis key of corpus `name` starts with this."""
    return f"onceflow:{validate_corpus_name(name)}:"


# -- Redis URLs ----------------------------------------------------------------------------

def is_redis_url(spec: object) -> bool:
    text = str(spec)
    return "://" in text and text.split("://", 1)[0].lower() in REDIS_SCHEMES


def redact(url: str) -> str:
    """`url` with its password replaced by ***, for messages and reports."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _validate_url(url: str) -> None:
    shown = redact(url)
    if any(ch.isspace() for ch in url):
        raise CorpusError(f"bad Redis URL {shown!r}: it contains spaces")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in url) or len(url) > 2000:
        raise CorpusError(f"bad Redis URL {shown[:60]!r}: control characters or over 2000 "
                          "characters; use redis://HOST:PORT/N")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CorpusError(f"bad Redis URL {shown!r}: {exc}; use redis://HOST:PORT/N") from None
    if parts.scheme.lower() not in REDIS_SCHEMES:
        raise CorpusError(f"bad Redis URL {shown!r}: use redis:// or rediss:// (TLS)")
    if not parts.hostname:
        raise CorpusError(f"bad Redis URL {shown!r}: no host; use redis://HOST:PORT/N")
    if port == 0:
        raise CorpusError(f"bad Redis URL {shown!r}: port 0; use redis://HOST:PORT/N")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise CorpusError(f"bad Redis URL {shown!r}: the database {db!r} is not a number; "
                          "use redis://HOST:PORT/N with N a number such as 0")


def connect(url: str) -> Any:
    """A `redis.Redis` client for `url` that answered a PING; CorpusError otherwise."""
    _validate_url(url)
    scheme, rest = url.split("://", 1)
    url = f"{scheme.lower()}://{rest}"
    shown = redact(url)
    try:
        import redis  # noqa: PLC0415
        from redis.backoff import NoBackoff  # noqa: PLC0415
        from redis.retry import Retry  # noqa: PLC0415
    except ImportError:
        raise CorpusError(f"--db {shown} needs the redis client: pip install 'onceflow[redis]'") from None
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT,
                                      socket_timeout=COMMAND_TIMEOUT, retry=Retry(NoBackoff(), 0))
    except (ValueError, TypeError) as exc:
        raise CorpusError(f"bad Redis URL {shown!r}: {exc}") from None
    has_password = urlsplit(url).password is not None
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        if has_password:
            raise CorpusError(f"Redis at {shown} refused the password: {exc}; fix the "
                              "password in the URL") from None
        raise CorpusError(f"Redis at {shown} requires a password: give it in the URL, "
                          "redis://:PASSWORD@HOST:PORT/N (or USER:PASSWORD@)") from None
    except redis.TimeoutError:
        hint = (" (is it a TLS port? rediss:// needs one)" if url.lower().startswith("rediss")
                else "")
        raise CorpusError(f"Redis at {shown} did not answer within {CONNECT_TIMEOUT:g} s{hint}; "
                          "check the host and port, or start it") from None
    except redis.ConnectionError as exc:
        raise CorpusError(f"cannot reach Redis at {shown}: {_first_line(exc)}; start it or "
                          "fix --db") from None
    except redis.ResponseError as exc:
        raise CorpusError(f"Redis at {shown} refused the connection: {_first_line(exc)}") from None
    except redis.RedisError as exc:
        raise CorpusError(f"Redis at {shown}: {_first_line(exc)}") from None
    except (TypeError, ValueError) as exc:  # an unknown ?option=, a host name IDNA rejects
        raise CorpusError(f"bad Redis URL {shown!r}: {_first_line(exc)}") from None
    return client


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200].rstrip(".") if text else type(exc).__name__


# -- the shared corpus ---------------------------------------------------------------------

class _Away(Exception):
    """Redis is unreachable; the operation falls back to the local directory."""


class SharedCorpus(ExampleDatabase):
    """Hypothesis's Redis database, namespaced, with a local fallback and corrupt-entry skipping."""

    def __init__(self, client: Any, *, url: str, name: str, fallback: str | Path,
                 on_warning: Callable[[str], None] = warn) -> None:
        from hypothesis.extra.redis import RedisExampleDatabase  # noqa: PLC0415

        super().__init__()
        self.url = redact(url)
        self.name = validate_corpus_name(name)
        prefix = corpus_prefix(name)
        self.remote = RedisExampleDatabase(client, expire_after=CORPUS_TTL,
                                           key_prefix=f"{prefix}corpus:".encode(),
                                           listener_channel=f"{prefix}corpus-changes")
        self.fallback = Path(fallback)
        self._local: DirectoryBasedExampleDatabase | None = None
        self.on_warning = on_warning
        self.away_since: float | None = None
        self.retry_at = 0.0
        self.retry_delay = RETRY_FIRST
        self.kept_locally = 0
        self.pushed = 0
        self.skipped = 0
        self._warned: set[bytes] = set()
        self._cache: dict[bytes, tuple[float, list[bytes]]] = {}

    def __repr__(self) -> str:
        return f"SharedCorpus({self.url!r}, name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SharedCorpus) and other.url == self.url
                and other.name == self.name)

    def __hash__(self) -> int:
        return hash((self.url, self.name))

    @property
    def away(self) -> bool:
        return self.away_since is not None

    def local(self, *, create: bool) -> DirectoryBasedExampleDatabase | None:
        if self._local is None and (create or self.fallback.is_dir()):
            self.fallback.mkdir(parents=True, exist_ok=True)
            self._local = DirectoryBasedExampleDatabase(str(self.fallback))
        return self._local

    # Redis calls, guarded: a connection failure marks Redis away; retried with a growing delay
    def _remote(self, call: Callable[[], Any]) -> Any:
        import redis  # noqa: PLC0415

        if self.away_since is not None:
            if time.monotonic() < self.retry_at:
                raise _Away
            try:
                self.remote.redis.ping()
            except redis.RedisError:
                self.retry_delay = min(RETRY_MAX, self.retry_delay * 2)
                self.retry_at = time.monotonic() + self.retry_delay
                raise _Away from None
            self.on_warning(f"Redis at {self.url} is back after "
                            f"{time.monotonic() - self.away_since:.0f} s; entries kept in "
                            f"{self.fallback} are pushed to it as they are fetched")
            self.away_since = None
            self.retry_delay = RETRY_FIRST
        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self.away_since = time.monotonic()
            self.retry_at = self.away_since + self.retry_delay
            self.on_warning(f"lost Redis at {self.url} ({_first_line(exc)}); fuzzing goes on and "
                            f"keeps what it finds in {self.fallback}")
            raise _Away from None

    def fetch(self, key: bytes) -> Iterable[bytes]:
        import redis  # noqa: PLC0415

        remote: list[bytes] = []
        reached = False
        cached = self._cache.get(key)
        fresh_for = FETCH_EVERY if not key.endswith(_SIDE_KEYS) else FETCH_SIDE_EVERY
        if cached is not None and time.monotonic() - cached[0] < fresh_for:
            remote, reached = list(cached[1]), True
        else:
            try:
                remote = list(self._remote(lambda: list(self.remote.fetch(key))))
                reached = True
                self._cache[key] = (time.monotonic(), list(remote))
            except _Away:
                self._cache.pop(key, None)
            except redis.ResponseError as exc:  # e.g. WRONGTYPE: another type is stored there
                self._cache[key] = (time.monotonic(), [])
                self._skip(key, f"corpus key {key[:60]!r} in {self.url} is unreadable "
                                f"({_first_line(exc)}); skipped")
        local_db = self.local(create=False)
        local = list(local_db.fetch(key)) if local_db is not None else []
        seen: set[bytes] = set()
        remote_set = set(remote)
        for value in remote + local:
            if value in seen:
                continue
            seen.add(value)
            if not isinstance(value, bytes) or choices_from_bytes(value) is None:
                self._skip(value, f"skipped a corrupt entry of the shared corpus "
                                  f"({len(value) if isinstance(value, bytes) else '?'} bytes "
                                  f"under {key[:40]!r}): not a Hypothesis choice sequence")
                continue
            if reached and value not in remote_set:
                self._push(key, value)
            yield value

    def _push(self, key: bytes, value: bytes) -> None:
        import redis  # noqa: PLC0415

        try:
            self._remote(lambda: self.remote.save(key, value))
            self.pushed += 1
            self._cache.pop(key, None)
        except (_Away, redis.ResponseError):
            pass

    def _skip(self, marker: bytes, message: str) -> None:
        if marker not in self._warned:
            self._warned.add(marker)
            self.skipped += 1
            self.on_warning(message)

    def save(self, key: bytes, value: bytes) -> None:
        import redis  # noqa: PLC0415

        self._cache.pop(key, None)
        try:
            self._remote(lambda: self.remote.save(key, value))
        except _Away:
            self._keep(key, value)
        except redis.ResponseError as exc:  # e.g. WRONGTYPE, OOM, READONLY replica
            self._skip(b"save:" + key, f"Redis at {self.url} refused a corpus entry "
                                       f"({_first_line(exc)}); kept in {self.fallback}")
            self._keep(key, value)

    def _keep(self, key: bytes, value: bytes) -> None:
        local_db = self.local(create=True)
        assert local_db is not None
        local_db.save(key, value)
        self.kept_locally += 1

    def delete(self, key: bytes, value: bytes) -> None:
        import redis  # noqa: PLC0415

        self._cache.pop(key, None)
        try:
            self._remote(lambda: self.remote.delete(key, value))
        except (_Away, redis.ResponseError):
            pass
        local_db = self.local(create=False)
        if local_db is not None:
            local_db.delete(key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        import redis  # noqa: PLC0415

        self._cache.pop(src, None)
        self._cache.pop(dest, None)
        try:
            self._remote(lambda: self.remote.move(src, dest, value))
        except (_Away, redis.ResponseError):
            self._keep(dest, value)
        local_db = self.local(create=False)
        if local_db is not None and src != dest:
            local_db.delete(src, value)

    def _start_listening(self) -> None:  # Hypothesis's change listeners: Redis pub/sub
        self.remote.add_listener(self._broadcast_change)

    def _stop_listening(self) -> None:
        self.remote.remove_listener(self._broadcast_change)

    def describe(self) -> dict[str, Any]:
        """What a report says about this corpus."""
        return {"url": self.url, "name": self.name, "fallback": str(self.fallback),
                "redis_away": self.away, "kept_locally": self.kept_locally,
                "pushed": self.pushed, "skipped_corrupt": self.skipped}


def open_directory(path: str | Path) -> DirectoryBasedExampleDatabase:
    if not str(path).strip():
        raise CorpusError("the corpus path is empty; give a directory, e.g. --db .onceflow/db")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CorpusError(f"corpus path {p} is a file; give a directory (or a new path)")
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / ".onceflow-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CorpusError(f"cannot use {p} as the corpus directory: {exc.strerror or exc}") from None
    return DirectoryBasedExampleDatabase(str(p))


def open_corpus(spec: str | Path | None, *, name: str | None = None,
                fallback: str | Path | None = None,
                on_warning: Callable[[str], None] = warn) -> ExampleDatabase | None:
    """The failure corpus `spec` names: None, a directory, or a `redis://` / `rediss://` URL.

    A Redis URL is checked at once (reachable, authenticated); the corpus keys
    are namespaced by `name` (default: the pyproject name of the current
    project) and `fallback` (default `.onceflow/fallback/<name>`) keeps what is
    found while Redis is away.
    """
    if spec is None:
        return None
    if not is_redis_url(spec):
        if "://" in str(spec):
            raise CorpusError(f"--db {redact(str(spec))!r}: unknown scheme; give a directory or "
                              "redis://HOST:PORT/N (rediss:// for TLS)")
        return open_directory(spec)
    corpus_name = validate_corpus_name(name) if name is not None else default_corpus_name()
    client = connect(str(spec))
    where = Path(fallback) if fallback is not None else Path(".onceflow/fallback") / corpus_name
    if where.exists() and not where.is_dir():
        raise CorpusError(f"fallback path {where} is a file; give a directory")
    return SharedCorpus(client, url=str(spec), name=corpus_name, fallback=where,
                        on_warning=on_warning)
