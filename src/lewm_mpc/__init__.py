"""lewm_mpc: model-predictive control with learned latent (JEPA) world models."""

from lewm_mpc import energies, envs
from lewm_mpc.control import LoopReport, run_loop
from lewm_mpc.controller import MPCController, PlanRecord
from lewm_mpc.energies import (
    ActionMagnitude,
    ActionSmoothness,
    ConstraintHead,
    EnergySum,
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
from lewm_mpc.models.simulator import SimulatorModel
from lewm_mpc.planners import (
    CEM,
    CMAES,
    MPPI,
    CEMConfig,
    CMAESConfig,
    GradientConfig,
    GradientPlanner,
    MPPIConfig,
    Planner,
    PlannerConfig,
    SamplingPlanner,
    build_planner,
    load_preset,
    make_planner,
    planner_names,
    register_planner,
)
from lewm_mpc.planners.hierarchical import HierarchicalPlanner, LatentGraph
from lewm_mpc.runs import Run, load_run
from lewm_mpc.surprise import (
    BlockSurprise,
    SurpriseEvent,
    SurpriseMonitor,
    SurpriseThreshold,
    calibrate_surprise,
)
from lewm_mpc.types import Energy, LatentWorldModel, ObsMode, PlanResult, Policy

__version__ = "0.1.0"

__all__ = [
    "CEM",
    "CMAES",
    "MPPI",
    "ActionMagnitude",
    "ActionSmoothness",
    "BlockSurprise",
    "CEMConfig",
    "CMAESConfig",
    "CheckpointError",
    "ConstraintHead",
    "Energy",
    "EnergySum",
    "GoalDistance",
    "GradientConfig",
    "GradientPlanner",
    "Guardrail",
    "HierarchicalPlanner",
    "KeepOutBox",
    "KeepOutDisc",
    "LatentGraph",
    "LatentWorldModel",
    "LoopReport",
    "MPCController",
    "MPPIConfig",
    "Objective",
    "ObsMode",
    "PlanRecord",
    "PlanResult",
    "Planner",
    "PlannerConfig",
    "Policy",
    "Probe",
    "Run",
    "SamplingPlanner",
    "SimulatorModel",
    "StayInsideBox",
    "SurpriseEvent",
    "SurpriseMonitor",
    "SurpriseThreshold",
    "WeightedGoalDistance",
    "WorldModel",
    "WorldModelConfig",
    "build_planner",
    "calibrate_surprise",
    "energies",
    "envs",
    "fit_probe_from_dataset",
    "load_preset",
    "load_run",
    "make_planner",
    "named_config",
    "planner_names",
    "register_planner",
    "run_loop",
]
