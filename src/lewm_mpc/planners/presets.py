"""Planner presets stored as TOML (see the files beside ``planners/README.md``).

A preset names the planner, its config fields and the task energy::

    planner = "cem"            # cem | mppi | gradient
    [config]
    num_samples = 300
    iterations = 30
    [energy]
    running_weight = 1.0

``build_planner(model, "planners/tworoom_cem.toml", seed=3)`` returns a ready planner; keyword
arguments override config fields.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lewm_mpc.energies import GoalDistance
from lewm_mpc.planners.base import Planner, PlannerConfig
from lewm_mpc.types import LatentWorldModel


def planner_classes() -> dict[str, type[Planner]]:
    """Planner kinds a preset may name."""
    import lewm_mpc.planners as planners

    return {
        name.lower(): cls
        for name, cls in vars(planners).items()
        if isinstance(cls, type) and issubclass(cls, Planner) and cls is not Planner
    }


@dataclass(frozen=True)
class Preset:
    """A parsed preset: planner class, its config and the task energy."""

    planner: type[Planner]
    config: PlannerConfig
    energy: GoalDistance


def load_preset(path: str | Path) -> Preset:
    """Parse and validate a preset file (clear ValueError on any problem)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"planner preset {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML: {error}") from None
    unknown = sorted(set(data) - {"planner", "config", "energy", "description"})
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {unknown}")
    classes = planner_classes()
    kind = str(data.get("planner", "")).lower()
    if kind not in classes:
        raise ValueError(f"{path}: planner must be one of {sorted(classes)}, got {kind!r}")
    cls = classes[kind]
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    config_data: dict[str, Any] = dict(data.get("config", {}))
    bad = sorted(set(config_data) - fields)
    if bad:
        raise ValueError(f"{path}: {cls.config_class.__name__} has no fields {bad}")
    try:
        config = cls.config_class(**config_data)
        energy = GoalDistance(**dict(data.get("energy", {})))
    except TypeError as error:
        raise ValueError(f"{path}: {error}") from None
    return Preset(cls, config, energy)


def build_planner(model: LatentWorldModel, preset: str | Path, **overrides: Any) -> Planner:
    """Instantiate the preset's planner for ``model``; ``overrides`` replace config fields."""
    parsed = load_preset(preset)
    return parsed.planner(model, parsed.config, energy=parsed.energy, **overrides)
