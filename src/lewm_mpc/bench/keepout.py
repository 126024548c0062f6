"""Two-Room keep-out as benchmarked: the probe, its calibrated margin and the hard guardrail.

The settings shared by ``benchmarks/tworoom_guardrails.py`` and the planner-comparison sweep
(its ``tworoom-keepout`` environment). The box geometry and the pair filter are
:class:`~lewm_mpc.envs.two_room_keepout.KeepOutScenario`. A probe maps latents to the agent
position; :class:`~lewm_mpc.energies.KeepOutBox` penalizes every predicted step (and points
interpolated between steps) inside the box grown by a safety margin, and is marked hard.
Violations are counted on the TRUE simulator state (``inside_box``).
"""

from __future__ import annotations

from dataclasses import dataclass

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
from lewm_mpc.envs.two_room_keepout import KeepOutScenario
from lewm_mpc.models import WorldModel


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
