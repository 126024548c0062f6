"""Planners: shared receding-horizon machinery and the update rules built on it."""

from lewm_mpc.planners.base import Optimized, Planner, PlannerConfig
from lewm_mpc.planners.cem import CEM, CEMConfig
from lewm_mpc.planners.gradient import GradientConfig, GradientPlanner
from lewm_mpc.planners.mppi import MPPI, MPPIConfig
from lewm_mpc.planners.presets import build_planner, load_preset

__all__ = [
    "CEM",
    "MPPI",
    "CEMConfig",
    "GradientConfig",
    "GradientPlanner",
    "MPPIConfig",
    "Optimized",
    "Planner",
    "PlannerConfig",
    "build_planner",
    "load_preset",
]
