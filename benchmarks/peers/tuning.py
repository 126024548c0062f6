"""The tuned rows: a small grid of each peer's own settings, tried on start/goal pairs apart from
the reported ones, at the full budget.

A peer's defaults are its library's (or, where it has none that fits, the shared budget's); the
grid varies the knobs its authors expose for the energy scale and the search width (temperature,
noise, elites, step size), never the budget. Each setting plans every tuning pair once, and the
setting with the lowest geometric mean of our plan energy over them becomes the row
``"<peer> tuned"``. Our planners are not tuned: they run their defaults.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from adapters import Contender, PeerBudget, PlanScorer

GRIDS: dict[str, dict[str, tuple[Any, ...]]] = {
    "swm/CEM": {"topk": (10, 20, 30, 60), "var_scale": (1.0, 0.5)},
    "swm/MPPI": {"temperature": (0.5, 0.1, 0.02), "var_scale": (1.0, 0.5, 0.25)},
    "swm/gradient": {"lr": (0.03, 0.1, 0.3, 1.0)},
    "pytorch_mppi/MPPI": {"lambda_": (1.0, 0.1, 0.01, 0.001), "noise_sigma": (1.0, 0.5, 0.25)},
    "torchrl/CEM": {"top_k": (10, 20, 30, 60)},
}
"""Per peer row: the values tried for each knob (every combination is tried)."""

_ELITE_KEYS = ("topk", "top_k")  # must not exceed the sample count


@dataclass(frozen=True)
class Tuning:
    """One peer's grid and the setting it chose.

    Attributes:
        row: the default row's name.
        settings: every setting tried, in grid order.
        scores: geometric mean plan energy of each setting over the tuning plans.
        means: arithmetic mean plan energy of each setting.
        best: the chosen setting (lowest geometric mean).
        default: the default row's values of the same knobs.
    """

    row: str
    settings: tuple[dict[str, Any], ...]
    scores: tuple[float, ...]
    means: tuple[float, ...]
    best: dict[str, Any]
    default: dict[str, Any]

    @property
    def default_score(self) -> float | None:
        """The default setting's score, if the grid holds it."""
        matches = [g for s, g in zip(self.settings, self.scores, strict=True) if s == self.default]
        return matches[0] if matches else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "row": self.row,
            "best": self.best,
            "default": self.default,
            "default_score": self.default_score,
            "grid": [
                {"settings": s, "energy_geo_mean": g, "energy_mean": m}
                for s, g, m in zip(self.settings, self.scores, self.means, strict=True)
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tuning:
        """Inverse of :meth:`to_dict`."""
        grid = data["grid"]
        return cls(
            data["row"],
            tuple(g["settings"] for g in grid),
            tuple(g["energy_geo_mean"] for g in grid),
            tuple(g["energy_mean"] for g in grid),
            dict(data["best"]),
            dict(data["default"]),
        )


def grid_settings(row: PeerBudget) -> list[dict[str, Any]]:
    """Every combination of ``GRIDS[row.name]`` valid at the row's sample count."""
    grid = GRIDS[row.name]
    samples = int(row.kwargs.get("num_samples", row.kwargs.get("num_candidates", 0)))
    settings = [
        dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())
    ]
    return [s for s in settings if not samples or all(s.get(k, 0) <= samples for k in _ELITE_KEYS)]


def geometric_mean(values: Sequence[float]) -> float:
    """Geometric mean (values floored at 1e-12)."""
    return float(np.exp(np.mean(np.log(np.maximum(np.asarray(values, dtype=float), 1e-12)))))


def tune(
    row: PeerBudget,
    make: Callable[[PeerBudget], Contender],
    scorer: PlanScorer,
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    seed: int,
    on_plan: Callable[[], None] | None = None,
) -> Tuning:
    """Try every grid setting of ``row`` on ``pairs`` (one plan each) and keep the best.

    Args:
        row: a peer's default row (its name is a key of :data:`GRIDS`).
        make: builds the planner of a row.
        scorer: our energy of a returned plan.
        pairs: (start, goal) observations, none of them a reported pair.
        seed: seed of the first pair's plan (pair i plans with ``seed + i``).
        on_plan: called after every plan (progress).

    Returns:
        The grid, the scores and the chosen setting.
    """
    if not pairs:
        raise ValueError(f"{row.name}: tuning needs at least one start/goal pair")
    latents = [scorer.encode(obs, goal) for obs, goal in pairs]
    settings = grid_settings(row)
    scores, means = [], []
    for setting in settings:
        contender = make(row.tuned(setting))
        energies = []
        for index, (obs, goal) in enumerate(pairs):
            contender.reset(seed + index)
            energies.append(scorer.score(*latents[index], contender.plan(obs, goal)).energy)
            if on_plan is not None:
                on_plan()
        scores.append(geometric_mean(energies))
        means.append(float(np.mean(energies)))
    best = settings[int(np.argmin(scores))]
    default = {k: row.kwargs[k] for k in GRIDS[row.name]}
    return Tuning(row.name, tuple(settings), tuple(scores), tuple(means), best, default)
