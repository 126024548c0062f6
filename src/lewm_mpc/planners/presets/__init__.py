"""Planner presets: a planner name, its config fields and the task energy, stored as TOML.

Presets ship inside this package (``preset_names()`` lists them) and load by name; a file of
your own loads by path::

    description = "what this budget is for"   # optional
    planner = "cem"            # any registry name: cem | mppi | cmaes | gradient | hybrid | yours
    [config]                   # fields of the planner's config class
    num_samples = 300
    iterations = 30
    [energy]                   # GoalDistance fields
    running_weight = 1.0

``build_planner(model, "tworoom_cem_10hz", seed=3)`` returns a ready planner; keyword arguments
override config fields (or pass ``energy``/``guardrails``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from lewm_mpc.energies import GoalDistance
from lewm_mpc.planners.base import Planner, PlannerConfig
from lewm_mpc.planners.registry import get_planner_entry
from lewm_mpc.types import LatentWorldModel

_KEYS = {"planner", "config", "energy", "description"}


@dataclass(frozen=True)
class Preset:
    """A parsed preset.

    Attributes:
        planner: registry name of the planner (lower-case).
        config: its validated config.
        energy: the task energy.
        description: the preset's one-line description ("" if none).
        source: where it came from: the shipped name or the file path.
    """

    planner: str
    config: PlannerConfig
    energy: GoalDistance
    description: str = ""
    source: str = ""


def preset_names() -> tuple[str, ...]:
    """Names of the presets shipped with the package, sorted."""
    folder = resources.files(__name__)
    return tuple(sorted(p.name[: -len(".toml")] for p in folder.iterdir() if _is_preset(p.name)))


def load_preset(name_or_path: str | Path) -> Preset:
    """Parse and validate a shipped preset (by name) or a TOML file (by path).

    Args:
        name_or_path: a name from :func:`preset_names` (``"tworoom_cem_10hz"``), or a path
            (a ``Path``, or a string with a directory part or ending in ``.toml``).

    Raises:
        ValueError: an unknown name, a missing file, invalid TOML, unknown keys, an unknown
            planner, config fields its config class lacks, or invalid values (the message
            names the preset).
    """
    source, text = _read(name_or_path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{source} is not valid TOML: {error}") from None
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ValueError(f"{source}: unknown top-level keys {unknown}; expected {sorted(_KEYS)}")
    for table in ("config", "energy"):
        if not isinstance(data.get(table, {}), dict):
            raise ValueError(f"{source}: [{table}] must be a table")
    try:
        entry = get_planner_entry(str(data.get("planner", "")))
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    try:
        config = entry.make_config(**data.get("config", {}))
        energy = GoalDistance(**data.get("energy", {}))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: {error}") from None
    return Preset(entry.name, config, energy, str(data.get("description", "")), source)


def build_planner(
    model: LatentWorldModel, preset: str | Path | Preset, **overrides: Any
) -> Planner:
    """Build a preset's planner for ``model`` through the planner registry.

    Args:
        model: the world model.
        preset: a shipped preset name, a preset file path, or a loaded :class:`Preset`.
        **overrides: config fields to replace (``seed=3``), or ``energy``/``guardrails``.

    Raises:
        ValueError: as :func:`load_preset`, or an invalid override.
    """
    parsed = preset if isinstance(preset, Preset) else load_preset(preset)
    entry = get_planner_entry(parsed.planner)
    return entry.factory(model, parsed.config, **{"energy": parsed.energy, **overrides})


def _is_preset(filename: str) -> bool:
    return filename.endswith(".toml") and not filename.startswith((".", "_"))


def _read(name_or_path: str | Path) -> tuple[str, str]:
    """(source label, TOML text) of a shipped name or a file path."""
    text = str(name_or_path)
    is_path = isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text
    if not is_path:
        names = preset_names()
        if text not in names:
            raise ValueError(
                f"unknown planner preset {text!r}; shipped presets: {list(names)} "
                "(or pass the path of a .toml file)"
            )
        return f"preset {text!r}", resources.files(__name__).joinpath(f"{text}.toml").read_text()
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"planner preset {path} does not exist")
    return str(path), path.read_text()
