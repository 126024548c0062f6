"""Load user planners by module: importing a plugin runs its ``register_planner(...)`` calls.

A plugin is a module path importable from the working directory or ``PYTHONPATH``
(``my_lab.planners``) or a ``.py`` file (``my_planners.py``). The command line loads them with
``--plugin``, and ``lewm-mpc bench`` loads them again in every worker process before a job runs.
Loading is idempotent: a plugin already imported in this process is not imported again.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def is_plugin_file(spec: str) -> bool:
    """Whether ``spec`` names a ``.py`` file (else a module path)."""
    return spec.endswith(".py") or "/" in spec or os.sep in spec


def load_plugins(specs: Sequence[str]) -> None:
    """Import each plugin module (module path or ``.py`` file), registering its planners.

    Args:
        specs: module paths (``my_lab.planners``) or ``.py`` file paths; relative paths and
            top-level modules are looked up from the working directory.

    Raises:
        ValueError: a plugin cannot be found or fails to import (the message names it).
    """
    for spec in specs:
        if is_plugin_file(spec):
            _load_file(spec)
        else:
            _load_module(spec)


def _load_module(name: str) -> None:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:  # the console script does not add it
        sys.path.append(cwd)
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is not None and f"{name}.".startswith(f"{error.name}."):
            raise ValueError(
                f"plugin {name!r}: no module named {error.name!r} (pass a module importable "
                "from the working directory or PYTHONPATH, or a .py file)"
            ) from None
        raise ValueError(f"plugin {name!r} failed to import: {error}") from error
    except Exception as error:
        raise ValueError(f"plugin {name!r} failed to import: {error}") from error


def _load_file(spec: str) -> None:
    path = Path(spec).expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"plugin file {spec!r} does not exist")
    # One module per file: a digest of the path keeps equal file names apart.
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"_lewm_mpc_plugin_{path.stem.replace('-', '_')}_{digest}"
    if name in sys.modules:
        return
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"plugin file {spec!r} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise ValueError(f"plugin file {spec!r} failed to import: {error}") from error
