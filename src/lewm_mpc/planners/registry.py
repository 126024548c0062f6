"""One registry of planner names: the built-in ``cem``, ``mppi``, ``cmaes``, ``gradient`` and
``hybrid``, plus any a user registers. Names are case-insensitive.

``make_planner("mppi", model, num_samples=200, seed=0)`` builds a planner by name; presets
(:mod:`lewm_mpc.planners.presets`), the benchmarks and the command line all go through here, so
a registered planner works everywhere a built-in one does::

    register_planner("shooting", RandomShooting)       # a Planner subclass
    planner = make_planner("Shooting", model, num_samples=64)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from lewm_mpc.planners.base import Planner, PlannerConfig
from lewm_mpc.planners.cem import CEM
from lewm_mpc.planners.cmaes import CMAES
from lewm_mpc.planners.gradient import HYBRID_DEFAULTS, GradientConfig, GradientPlanner
from lewm_mpc.planners.mppi import MPPI
from lewm_mpc.types import LatentWorldModel

_NAME = re.compile(r"[a-z][a-z0-9_\-]*")


@dataclass(frozen=True)
class PlannerEntry:
    """A registered planner.

    Attributes:
        name: lower-case registry name.
        factory: called as ``factory(model, config, energy=..., guardrails=..., **overrides)``,
            like a :class:`~lewm_mpc.planners.base.Planner` subclass (keyword ``overrides``
            replace config fields).
        config_class: the config dataclass the factory takes.
        defaults: config fields this name sets on top of ``config_class``'s defaults (the
            hybrid's CEM stage, for example).
    """

    name: str
    factory: Callable[..., Planner]
    config_class: type[PlannerConfig]
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        """One line with class names, not module paths."""
        factory = getattr(self.factory, "__name__", repr(self.factory))
        defaults = f", defaults={dict(self.defaults)}" if self.defaults else ""
        return (
            f"PlannerEntry(name={self.name!r}, factory={factory}, "
            f"config_class={self.config_class.__name__}{defaults})"
        )

    def make_config(self, **fields: Any) -> PlannerConfig:
        """The entry's config with ``fields`` on top of its defaults.

        Raises:
            ValueError: a field is unknown or a value is invalid.
        """
        known = {spec.name for spec in dataclasses.fields(self.config_class)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(f"{self.config_class.__name__} has no fields {unknown}")
        return self.config_class(**{**self.defaults, **fields})


_REGISTRY: dict[str, PlannerEntry] = {}
_BUILTIN = ("cem", "mppi", "cmaes", "gradient", "hybrid")


def _key(name: str) -> str:
    if not isinstance(name, str):
        raise ValueError(f"planner name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    if not _NAME.fullmatch(key):
        raise ValueError(
            f"bad planner name {name!r}: use a letter followed by letters, digits, '_' or '-'"
        )
    return key


def register_planner(
    name: str,
    factory: Callable[..., Planner],
    config_class: type[PlannerConfig] | None = None,
    *,
    overwrite: bool = False,
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Make a planner buildable by name (case-insensitive) everywhere planners are named.

    Args:
        name: registry name, e.g. ``"shooting"``; stored lower-case.
        factory: a :class:`~lewm_mpc.planners.base.Planner` subclass, or any callable taking
            ``(model, config, *, energy=None, guardrails=(), **config_overrides)``.
        config_class: its config dataclass (default: ``factory.config_class``).
        overwrite: replace an existing user entry of the same name (built-ins stay).
        defaults: config fields the name implies on top of ``config_class``'s defaults.

    Raises:
        ValueError: a bad or taken name, a non-callable factory, or no config class.
    """
    key = _key(name)
    if key in _REGISTRY and (not overwrite or key in _BUILTIN):
        why = "is built in" if key in _BUILTIN else "is taken (pass overwrite=True to replace it)"
        raise ValueError(f"planner name {key!r} {why}")
    if not callable(factory):
        raise ValueError(f"planner factory for {key!r} must be callable, got {factory!r}")
    config_class = config_class or getattr(factory, "config_class", None)
    if not (isinstance(config_class, type) and issubclass(config_class, PlannerConfig)):
        raise ValueError(
            f"planner {key!r} needs a config_class (a PlannerConfig subclass), got {config_class!r}"
        )
    entry = PlannerEntry(key, factory, config_class, MappingProxyType(dict(defaults or {})))
    if defaults:
        entry.make_config()  # validate the defaults now, not at first use
    _REGISTRY[key] = entry


def unregister_planner(name: str) -> None:
    """Remove a user-registered planner (built-ins cannot be removed).

    Raises:
        ValueError: the name is built in or not registered.
    """
    key = get_planner_entry(name).name
    if key in _BUILTIN:
        raise ValueError(f"planner {key!r} is built in and cannot be unregistered")
    del _REGISTRY[key]


def planner_names() -> tuple[str, ...]:
    """Registered planner names, sorted and lower-case."""
    return tuple(sorted(_REGISTRY))


def get_planner_entry(name: str) -> PlannerEntry:
    """The registry entry of ``name`` (case-insensitive).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in _REGISTRY:
        raise ValueError(f"unknown planner {name!r}; known planners: {list(planner_names())}")
    return _REGISTRY[key]


def make_planner(name: str, model: LatentWorldModel, **kwargs: Any) -> Planner:
    """Build the planner registered as ``name`` for ``model``.

    Args:
        name: a registry name, any case (``"cem"``, ``"MPPI"``, ``"hybrid"``, ...).
        model: the world model.
        **kwargs: the planner's constructor keywords: config fields (``num_samples=...``,
            ``seed=...``), ``energy``, ``guardrails``, or a whole ``config``.

    Raises:
        ValueError: an unknown name, an unknown config field or an invalid value.
    """
    entry = get_planner_entry(name)
    config = kwargs.pop("config", None)
    return entry.factory(model, entry.make_config() if config is None else config, **kwargs)


register_planner("cem", CEM)
register_planner("mppi", MPPI)
register_planner("cmaes", CMAES)
register_planner("gradient", GradientPlanner)
register_planner("hybrid", GradientPlanner, GradientConfig, defaults=HYBRID_DEFAULTS)
