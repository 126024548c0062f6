"""lewm_mpc: model-predictive control with learned latent (JEPA) world models."""

from lewm_mpc import energies, envs
from lewm_mpc.energies import GoalDistance, Guardrail, Objective
from lewm_mpc.models import CheckpointError, WorldModel, WorldModelConfig, named_config
from lewm_mpc.planners import CEM, CEMConfig, Planner, PlannerConfig
from lewm_mpc.types import Energy, LatentWorldModel, PlanResult, Policy

__version__ = "0.1.0"

__all__ = [
    "CEM",
    "CEMConfig",
    "CheckpointError",
    "Energy",
    "GoalDistance",
    "Guardrail",
    "LatentWorldModel",
    "Objective",
    "PlanResult",
    "Planner",
    "PlannerConfig",
    "Policy",
    "WorldModel",
    "WorldModelConfig",
    "energies",
    "envs",
    "named_config",
]
