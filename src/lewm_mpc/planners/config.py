"""The config every planner's config extends: :class:`PlannerConfig`, the knobs all planners
share (horizon, receding horizon, seed, warm start, rollout precision), and the rollout
precisions it accepts (:data:`ROLLOUT_DTYPES`, name to the ``torch.autocast`` dtype). The
planner machinery that reads it lives in :mod:`lewm_mpc.planners.base`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

__all__ = ["ROLLOUT_DTYPES", "PlannerConfig"]

ROLLOUT_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


@dataclass(frozen=True)
class PlannerConfig:
    """Knobs every planner shares.

    Attributes:
        horizon: planned model steps (blocks of ``action_block`` env actions).
        receding_horizon: blocks executed between two ``plan`` calls; the warm start shifts
            the previous plan by this many blocks.
        seed: seed of the planner's own ``torch.Generator``.
        warm_start: start each plan from the shifted previous one (after ``reset`` it is cold).
        rollout_dtype: precision of the model rollout: "float32" (default, exact), or
            "bfloat16"/"float16" to run it under ``torch.autocast`` (matmuls in reduced
            precision, faster where the hardware has native support: recent GPUs, CPUs with
            AVX-512 BF16 or AMX). Sampling, energies and ranking stay in float32. The matching
            ``torch.dtype`` (``torch.float32``/``torch.bfloat16``/``torch.float16``) is
            accepted too and stored as its name.
    """

    # Fields of an env's reference budget (``PlannerBudget``: LeWorldModel's CEM) this planner
    # takes when ``lewm-mpc eval`` builds it for that env by name; None: every budget field the
    # config has.
    reference_budget_fields: ClassVar[tuple[str, ...] | None] = None

    horizon: int = 5
    receding_horizon: int = 1
    seed: int = 0
    warm_start: bool = True
    rollout_dtype: str | torch.dtype = "float32"  # a str once constructed

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {self.horizon}")
        if not 1 <= self.receding_horizon <= self.horizon:
            raise ValueError(
                f"receding_horizon must be in [1, horizon={self.horizon}], "
                f"got {self.receding_horizon}"
            )
        dtype: Any = self.rollout_dtype
        if isinstance(dtype, torch.dtype) and dtype in _DTYPE_NAMES:
            object.__setattr__(self, "rollout_dtype", _DTYPE_NAMES[dtype])  # frozen: normalize
        elif not isinstance(dtype, str) or dtype not in ROLLOUT_DTYPES:
            raise ValueError(
                f"rollout_dtype must be one of {sorted(ROLLOUT_DTYPES)} or the matching "
                f"torch.dtype, got {dtype!r}"
            )
