"""Planners: shared receding-horizon machinery, the update rules built on it, a registry of
planner names and the presets shipped with the package."""

from lewm_mpc.planners.base import Optimized, Planner, PlannerConfig
from lewm_mpc.planners.cem import CEM, CEMConfig
from lewm_mpc.planners.cmaes import CMAES, CMAESConfig, CMAESState
from lewm_mpc.planners.gradient import GradientConfig, GradientPlanner
from lewm_mpc.planners.mppi import MPPI, MPPIConfig
from lewm_mpc.planners.plugins import load_plugins
from lewm_mpc.planners.presets import Preset, build_planner, load_preset, preset_names
from lewm_mpc.planners.registry import (
    PlannerEntry,
    get_planner_entry,
    make_planner,
    planner_names,
    register_planner,
    unregister_planner,
)
from lewm_mpc.planners.sampling import (
    GaussianSamplingConfig,
    SamplingConfig,
    SamplingPlanner,
    SamplingSearch,
    SamplingState,
)

__all__ = [
    "CEM",
    "CMAES",
    "MPPI",
    "CEMConfig",
    "CMAESConfig",
    "CMAESState",
    "GaussianSamplingConfig",
    "GradientConfig",
    "GradientPlanner",
    "MPPIConfig",
    "Optimized",
    "Planner",
    "PlannerConfig",
    "PlannerEntry",
    "Preset",
    "SamplingConfig",
    "SamplingPlanner",
    "SamplingSearch",
    "SamplingState",
    "build_planner",
    "get_planner_entry",
    "load_plugins",
    "load_preset",
    "make_planner",
    "planner_names",
    "preset_names",
    "register_planner",
    "unregister_planner",
]
