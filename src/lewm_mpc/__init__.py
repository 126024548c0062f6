"""lewm_mpc: model-predictive control with learned latent (JEPA) world models."""

from lewm_mpc import energies, envs
from lewm_mpc.energies import (
    ActionMagnitude,
    ActionSmoothness,
    ConstraintHead,
    GoalDistance,
    Guardrail,
    KeepOutBox,
    KeepOutDisc,
    Objective,
    Probe,
    StayInsideBox,
    WeightedGoalDistance,
    fit_probe_from_dataset,
)
from lewm_mpc.models import CheckpointError, WorldModel, WorldModelConfig, named_config
from lewm_mpc.oracle import SimulatorModel
from lewm_mpc.planners import (
    CEM,
    MPPI,
    CEMConfig,
    GradientConfig,
    GradientPlanner,
    MPPIConfig,
    Planner,
    PlannerConfig,
)
from lewm_mpc.types import Energy, LatentWorldModel, PlanResult, Policy

__version__ = "0.1.0"

__all__ = [
    "CEM",
    "MPPI",
    "ActionMagnitude",
    "ActionSmoothness",
    "CEMConfig",
    "CheckpointError",
    "ConstraintHead",
    "Energy",
    "GoalDistance",
    "GradientConfig",
    "GradientPlanner",
    "Guardrail",
    "KeepOutBox",
    "KeepOutDisc",
    "LatentWorldModel",
    "MPPIConfig",
    "Objective",
    "PlanResult",
    "Planner",
    "PlannerConfig",
    "Policy",
    "Probe",
    "SimulatorModel",
    "StayInsideBox",
    "WeightedGoalDistance",
    "WorldModel",
    "WorldModelConfig",
    "energies",
    "envs",
    "fit_probe_from_dataset",
    "named_config",
]
