"""Energies over predicted latent trajectories, and their composition into an objective.

An energy is any callable ``(latents (S, H+1, D), actions (S, H, block*A), goal (S, D)) -> (S,)``
(see :class:`lewm_mpc.types.Energy`). Guardrails are energies returning a non-negative
violation; a hard guardrail must be zero for a plan to count as feasible, a soft one is a
weighted penalty.

* task energies (:mod:`.task`): :class:`GoalDistance`, :class:`WeightedGoalDistance`,
  :class:`ProbedGoalDistance`, and their weighted sum :class:`EnergySum`;
* action guardrails (:mod:`.actions`): :class:`ActionMagnitude`, :class:`ActionSmoothness`
  (action bounds are hard by projection in every planner);
* learned latent read-outs: :class:`Probe` (:mod:`.probes`), :class:`ConstraintHead`
  (:mod:`.constraints`);
* region guardrails on a probed quantity (:mod:`.regions`): :class:`KeepOutBox`,
  :class:`KeepOutDisc`, :class:`StayInsideBox`;
* calibrated safety margins for them (:mod:`.calibration`): :func:`calibrate_probe_margin`;
* composition (:mod:`.base`): :class:`Guardrail`, :class:`Objective`.
"""

from lewm_mpc.energies.actions import ActionMagnitude, ActionSmoothness
from lewm_mpc.energies.base import Guardrail, GuardrailEnergy, Objective, ObjectiveValue
from lewm_mpc.energies.calibration import ProbeMargin, calibrate_probe_margin
from lewm_mpc.energies.constraints import ConstraintHead
from lewm_mpc.energies.probes import Probe, fit_probe_from_dataset
from lewm_mpc.energies.regions import KeepOutBox, KeepOutDisc, StayInsideBox
from lewm_mpc.energies.task import (
    EnergySum,
    GoalDistance,
    ProbedGoalDistance,
    WeightedGoalDistance,
)

__all__ = [
    "ActionMagnitude",
    "ActionSmoothness",
    "ConstraintHead",
    "EnergySum",
    "GoalDistance",
    "Guardrail",
    "GuardrailEnergy",
    "KeepOutBox",
    "KeepOutDisc",
    "Objective",
    "ObjectiveValue",
    "Probe",
    "ProbeMargin",
    "ProbedGoalDistance",
    "StayInsideBox",
    "WeightedGoalDistance",
    "calibrate_probe_margin",
    "fit_probe_from_dataset",
]
