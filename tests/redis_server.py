"""A real redis-server for the tests: started on a free loopback port, stopped afterwards.

Nothing is started globally: each server lives in a temporary directory and
dies with the test that needs it.  `.ci/run` installs Debian's redis-server
when it is missing; without it these tests fail (they do not skip).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, folder: Path, *, password: str | None = None, port: int | None = None,
                 tls: bool = False) -> None:
        self.folder = folder
        self.password = password
        self.port = port or free_port()
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def cert(self) -> Path:
        return self.folder / "cert.pem"

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.cert}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _self_signed(self) -> list[str]:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.fail("openssl is not installed: apt-get install openssl")
        key = self.folder / "key.pem"
        subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        str(key), "-out", str(self.cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True,
                       capture_output=True)
        return ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.cert),
                "--tls-key-file", str(key), "--tls-ca-cert-file", str(self.cert),
                "--tls-auth-clients", "no"]

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: apt-get install redis-server "
                        "(.ci/run installs it)")
        self.folder.mkdir(parents=True, exist_ok=True)
        ports = self._self_signed() if self.tls else ["--port", str(self.port)]
        args = [binary, *ports, "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.folder), "--daemonize", "no",
                "--loglevel", "warning"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis.from_url(self.url)


@contextmanager
def redis_server(folder: Path, *, password: str | None = None,
                 tls: bool = False) -> Iterator[RedisServer]:
    server = RedisServer(folder, password=password, tls=tls).start()
    try:
        yield server
    finally:
        server.stop()
