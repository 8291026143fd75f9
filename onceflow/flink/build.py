"""Find Java 17+ and the `apache-flink` wheel; compile a generated job, cached by content."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from attrs import frozen

from onceflow.flink.errors import FlinkError, FlinkUnavailable

__all__ = ["Toolchain", "cache_dir", "compile_job", "toolchain"]

MIN_JAVA = 17
CACHE_ENV = "ONCEFLOW_FLINK_CACHE"


@frozen
class Toolchain:
    java: str
    javac: str
    java_version: int
    flink_home: Path  # the installed pyflink package: lib/*.jar, bin/

    @property
    def classpath(self) -> str:
        return str(self.flink_home / "lib" / "*")


def _java_version(java: str) -> int:
    try:
        proc = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FlinkUnavailable(f"cannot run {java} -version ({exc}); install OpenJDK {MIN_JAVA}+ "
                               "(e.g. apt-get install openjdk-17-jdk-headless) or set JAVA_HOME")
    m = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if m is None:
        raise FlinkUnavailable(f"cannot read the Java version from `{java} -version`; install "
                               f"OpenJDK {MIN_JAVA}+ or set JAVA_HOME")
    major = int(m[1])
    return int(m[2]) if major == 1 and m[2] else major  # "1.8" is Java 8


def _find(tool: str) -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / tool
        return str(candidate) if candidate.exists() else None
    return shutil.which(tool)


def toolchain() -> Toolchain:
    """Java and Flink as installed here, or FlinkUnavailable saying what to install."""
    java, javac = _find("java"), _find("javac")
    where = "in $JAVA_HOME/bin" if os.environ.get("JAVA_HOME") else "on PATH"
    if java is None or javac is None:
        missing = "java" if java is None else "javac"
        raise FlinkUnavailable(f"no {missing} {where}: install a JDK {MIN_JAVA}+ (e.g. apt-get "
                               "install openjdk-17-jdk-headless) or set JAVA_HOME")
    version = _java_version(java)
    if version < MIN_JAVA:
        raise FlinkUnavailable(f"{java} is Java {version}; Flink 2 needs Java {MIN_JAVA}+: install "
                               f"OpenJDK {MIN_JAVA} or point JAVA_HOME at it")
    try:
        import pyflink  # noqa: PLC0415
    except ImportError:
        raise FlinkUnavailable("the apache-flink wheel is not installed: pip install "
                               "'onceflow[flink]'") from None
    home = Path(pyflink.__file__).parent
    if not any((home / "lib").glob("flink-dist*.jar")):
        raise FlinkUnavailable(f"{home}/lib holds no flink-dist jar: reinstall the extra with "
                               "pip install --force-reinstall 'onceflow[flink]'")
    return Toolchain(java, javac, version, home)


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Where compiled jobs are kept: `override`, $ONCEFLOW_FLINK_CACHE, or
    ~/.cache/onceflow/flink."""
    base = override or os.environ.get(CACHE_ENV)
    if base:
        return Path(base)
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "onceflow" / "flink"


def compile_job(tools: Toolchain, name: str, source: str, cache: Path) -> tuple[Path, bool]:
    """The directory holding `name`'s compiled classes, compiling it if not cached.

    Returns (directory, True if it was already cached)."""
    target = cache / name
    done = target / "ok"
    if done.exists():
        return target, True
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FlinkError(f"cannot create the job cache {target}: {exc}; set --cache DIR or "
                         f"${CACHE_ENV} to a writable directory") from None
    (target / f"{name}.java").write_text(source, encoding="utf-8")
    try:
        proc = subprocess.run(
            [tools.javac, "-nowarn", "-encoding", "UTF-8", "-cp", tools.classpath, "-d", str(target),
             str(target / f"{name}.java")], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        raise FlinkError(f"javac took more than 300 s on {target}/{name}.java") from None
    if proc.returncode != 0:
        first = next((line for line in proc.stderr.splitlines() if "error" in line), proc.stderr[:200])
        raise FlinkError(f"javac failed on the generated job {target}/{name}.java: {first.strip()}")
    done.write_text("compiled\n")
    return target, False
