"""Plugins: the modules that register your sources, operators and sinks.

They load as a user expects: `onceflow --plugin MODULE` (before or after the
subcommand; the current directory is importable), installed packages through
the entry-point group `onceflow.plugins`, and `[tool.onceflow] plugins = [...]`
in the pyproject.toml of the current directory (or the nearest parent that
has one).  A token names only the components it uses, never a module; the
reproduce commands printed for a scenario carry the `--plugin`s that register
them.
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from onceflow.errors import PluginError

if TYPE_CHECKING:
    from onceflow.scenario import Scenario

__all__ = ["ENTRY_POINT_GROUP", "LOADED", "load", "load_configured", "plugins_for",
           "reproduce_command"]

ENTRY_POINT_GROUP = "onceflow.plugins"

#: Modules loaded by name (`--plugin`, pyproject.toml), in the order they loaded.
LOADED: list[str] = []
_STATE = {"configured": False}


def _cwd_importable() -> None:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def load(module: str, *, origin: str = "--plugin") -> None:
    """Import `module` (it registers components); PluginError in one line if it fails."""
    if not isinstance(module, str) or not module.strip():
        raise PluginError(f"{origin}: give a module name, e.g. {origin} my_connector")
    module = module.strip()
    _cwd_importable()
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise PluginError(f"cannot import plugin module {module!r} ({origin}): no such "
                              f"module; is it installed, or in the current directory "
                              f"{os.getcwd()}?") from None
        raise PluginError(f"cannot import plugin module {module!r} ({origin}): "
                          f"ModuleNotFoundError: {exc}") from None
    except BaseException as exc:  # user code failing to import is an input error
        if isinstance(exc, KeyboardInterrupt):
            raise
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise PluginError(f"cannot import plugin module {module!r} ({origin}): "
                          f"{type(exc).__name__}: {text}") from None
    if module not in LOADED:
        LOADED.append(module)


def load_entry_points() -> list[str]:
    """Load every installed plugin of the group `onceflow.plugins`: a module, or a
    callable that registers components (called with no arguments)."""
    names = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            target = ep.load()
            if callable(target):
                target()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise PluginError(f"installed plugin {ep.name!r} ({ep.value}, entry point group "
                              f"{ENTRY_POINT_GROUP}) failed to load: {type(exc).__name__}: "
                              f"{str(exc)[:200]}") from None
        names.append(ep.name)
    return names


def pyproject_plugins(start: Path | None = None) -> tuple[Path | None, list[str]]:
    """The `[tool.onceflow] plugins` list of the nearest pyproject.toml at or above `start`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        path = folder / "pyproject.toml"
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise PluginError(f"cannot read {path}: {exc}") from None
            value = data.get("tool", {}).get("onceflow", {}).get("plugins", [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PluginError(f"{path}: [tool.onceflow] plugins must be a list of module "
                                  f"names, got {value!r}")
            return path, list(value)
    return None, []


def load_configured(explicit: Iterable[str] = (), *, start: Path | None = None) -> None:
    """Load entry-point plugins and pyproject.toml's (once per process), then `explicit`."""
    _cwd_importable()
    if not _STATE["configured"]:
        _STATE["configured"] = True
        load_entry_points()
        path, modules = pyproject_plugins(start)
        for module in modules:
            load(module, origin=f"[tool.onceflow] plugins in {path}")
    for module in explicit:
        load(module)


def plugins_for(scenario: "Scenario", timeline: Any = None) -> tuple[str, ...]:
    """The modules to load to replay `scenario` (on `timeline`, a `TimelineSpec`): those
    loaded by name in this process, and those that registered a component the scenario
    or the timeline uses: its source, operators (of every upgraded job graph the
    timeline restores into too), sink and store."""
    from onceflow.registry import OPERATORS, SINKS, SOURCES, STORES  # noqa: PLC0415

    topologies = [scenario.topology]
    for step in getattr(timeline, "steps", ()) or ():
        if getattr(step, "topology", None) is not None:
            topologies.append(step.topology)
    specs: list[Any] = [OPERATORS.get(v.kind) for t in topologies for v in t.vertices]
    specs += [SOURCES.get(scenario.source), SINKS.get(scenario.sink),
              STORES.get(scenario.store)]
    modules = list(LOADED)
    for spec in specs:
        module = getattr(spec, "module", "") if spec is not None else ""
        if module and module != "__main__" and not getattr(spec, "builtin", False) \
                and module not in modules:
            modules.append(module)
    return tuple(modules)


def plugin_flags(plugins: Iterable[str]) -> str:
    return "".join(f" --plugin {m}" for m in plugins)


def reproduce_command(token: str, plugins: Iterable[str] = (), command: str = "replay") -> str:
    """`onceflow [--plugin M ...] replay TOKEN`."""
    return f"onceflow{plugin_flags(plugins)} {command} {token}"
