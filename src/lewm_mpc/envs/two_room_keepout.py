"""Two-Room keep-out: a square box across the straight path from start to goal, and the hard
guardrail that keeps a plan out of it.

The box is centred on the midpoint of the segment from start to goal. A pair qualifies when
start and goal lie in the same room, at least ``min_distance`` apart, and a lane of
``clearance`` remains beside the box grown by its safety margin, across the direction of
travel (so a detour exists): :class:`KeepOutScenario`.

:class:`KeepOut` is the keep-out as benchmarked (``benchmarks/tworoom_guardrails.py`` and the
planner-comparison sweep's ``tworoom-keepout`` environment): a probe maps latents to the agent
position; :class:`~lewm_mpc.energies.KeepOutBox` penalizes every predicted step (and points
interpolated between steps) inside the box grown by a safety margin calibrated on held-out
episodes, and is marked hard. Violations are counted on the TRUE simulator state
(:func:`inside_box`). ``lewm-mpc render --keepout`` and ``examples/03_guardrails.py`` show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from lewm_mpc.data import EpisodeDataset
from lewm_mpc.energies import (
    Guardrail,
    KeepOutBox,
    Probe,
    ProbeMargin,
    calibrate_probe_margin,
    fit_probe_from_dataset,
)
from lewm_mpc.envs.two_room_geometry import TwoRoomConfig, room_of
from lewm_mpc.models import WorldModel


@dataclass(frozen=True)
class KeepOutScenario:
    """Geometry of the keep-out box (arena widths).

    Attributes:
        box_half: half side of the square box.
        margin: safety margin the guardrail adds around the box.
        min_distance: least start-goal distance, so the box holds neither.
        clearance: free lane needed beside the grown box.
        env: the arena (room and wall geometry).
    """

    box_half: float = 0.07
    margin: float = 0.03
    min_distance: float = 0.3
    clearance: float = 0.08
    env: TwoRoomConfig = field(default_factory=TwoRoomConfig)

    def __post_init__(self) -> None:
        if not 0 < self.box_half < 0.5:
            raise ValueError(f"box_half must be in (0, 0.5), got {self.box_half}")
        for name in ("margin", "min_distance", "clearance"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def box(self, start: np.ndarray, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) corners of the box between agent positions ``start`` and ``goal``."""
        center = (np.asarray(start[:2], float) + np.asarray(goal[:2], float)) / 2
        return center - self.box_half, center + self.box_half

    def accepts(self, start: np.ndarray, goal: np.ndarray) -> bool:
        """Whether the pair suits the scenario (see the module docstring)."""
        start, goal = np.asarray(start[:2], float), np.asarray(goal[:2], float)
        room = room_of(start)
        if room != room_of(goal) or np.linalg.norm(goal - start) < self.min_distance:
            return False
        radius = self.env.agent_radius  # limits of the agent centre in each room
        x_range = ((radius, self.env.wall_left - radius),
                   (self.env.wall_right + radius, 1 - radius))[room]  # fmt: skip
        y_range = (radius, 1 - radius)
        center = (start + goal) / 2
        reach = self.box_half + self.margin + self.clearance
        across = 1 if abs(goal[0] - start[0]) >= abs(goal[1] - start[1]) else 0  # lane axis
        low, high = (x_range, y_range)[across]
        return bool(low <= center[across] - reach or center[across] + reach <= high)


def inside_box(
    states: np.ndarray, low: Sequence[float] | np.ndarray, high: Sequence[float] | np.ndarray
) -> np.ndarray:
    """(T,) whether the agent position of each (T, >= 2) state lies in the box [low, high]."""
    xy = np.asarray(states)[..., :2]  # (T, 2)
    return np.all((xy >= np.asarray(low)) & (xy <= np.asarray(high)), axis=-1)


@dataclass(frozen=True)
class KeepOut:
    """The benchmarked keep-out: box placement, probe and safety margin.

    Attributes:
        box_half: half side of the square box (arena widths).
        min_distance: least start-goal distance, so the box holds neither.
        clearance: free lane beside the grown box, across the direction of travel.
        substeps: guardrail points per predicted step (a block spans 5 env steps).
        margin_quantile: coverage of the calibrated safety margin
            (:func:`~lewm_mpc.energies.calibrate_probe_margin`).
        margin: a fixed safety margin (agent xy units) instead of the calibrated one; None:
            calibrated.
        probe_kind: latent -> agent xy probe, "linear" or "mlp".
        probe_samples: training frames the probe is fitted on.
    """

    box_half: float = 0.07
    min_distance: float = 0.3
    clearance: float = 0.08
    substeps: int = 5
    margin_quantile: float = 0.99
    probe_kind: str = "mlp"
    probe_samples: int = 6000
    margin: float | None = None

    def __post_init__(self) -> None:
        for name in ("box_half", "min_distance", "clearance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"KeepOut.{name} must be > 0, got {getattr(self, name)}")
        if self.substeps < 1:
            raise ValueError(f"KeepOut.substeps must be >= 1, got {self.substeps}")
        if not 0 < self.margin_quantile < 1:
            raise ValueError(
                f"KeepOut.margin_quantile must be in (0, 1), got {self.margin_quantile}"
            )
        if self.margin is not None and not self.margin >= 0:
            raise ValueError(f"KeepOut.margin must be >= 0 or None, got {self.margin}")

    def scenario(self, margin: float) -> KeepOutScenario:
        """The box geometry and pair filter with safety ``margin``."""
        return KeepOutScenario(self.box_half, margin, self.min_distance, self.clearance)

    def guardrail(
        self, probe: Probe, low: np.ndarray, high: np.ndarray, margin: float
    ) -> Guardrail:
        """The hard keep-out guardrail on the probed agent position."""
        box = KeepOutBox(probe, tuple(low), tuple(high), margin, self.substeps)
        return Guardrail(box, name="keepout", weight=1.0, hard=True)

    def fit_probe(
        self,
        model: WorldModel,
        dataset: EpisodeDataset,
        train_ids: np.ndarray,
        val_ids: np.ndarray,
        seed: int = 0,
    ) -> tuple[Probe, float, ProbeMargin]:
        """Fit the agent-position probe on ``train_ids`` and calibrate its safety margin on
        the held-out ``val_ids`` (torch's global seed is set to ``seed`` first, so the probe
        is the same in every process).

        Returns:
            The probe, the margin to use (``margin`` if set, else the calibrated one) and the
            calibration.
        """
        torch.manual_seed(seed)
        probe = fit_probe_from_dataset(
            model, dataset, train_ids, kind=self.probe_kind, max_samples=self.probe_samples
        )
        calibration = calibrate_probe_margin(
            model, probe, dataset, val_ids, quantile=self.margin_quantile, seed=seed
        )
        return probe, calibration.margin if self.margin is None else self.margin, calibration
