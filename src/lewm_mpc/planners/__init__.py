"""Planners: shared receding-horizon machinery and the update rules built on it."""

from lewm_mpc.planners.base import Optimized, Planner, PlannerConfig
from lewm_mpc.planners.cem import CEM, CEMConfig

__all__ = ["CEM", "CEMConfig", "Optimized", "Planner", "PlannerConfig"]
