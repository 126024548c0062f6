"""Optional TensorBoard logging (the ``tb`` extra): training curves and evaluation results.

lewm-mpc train --data d.h5 --out runs/m --tensorboard runs/tb/m
lewm-mpc eval --model runs/m --data d.h5 --tensorboard runs/tb/m
tensorboard --logdir runs/tb
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class TensorBoardLog:
    """Scalars written as TensorBoard events under ``log_dir``.

    Args:
        log_dir: event folder (created if missing).
        purge_step: drop events at this step and later already in ``log_dir`` (a resumed run
            rewrites the steps after its checkpoint; ``None`` keeps everything).

    Raises:
        ImportError: the ``tensorboard`` package is not installed (the message says how).
    """

    def __init__(self, log_dir: str | Path, purge_step: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError(
                "TensorBoard logging needs the tensorboard package: pip install 'lewm-mpc[tb]'"
            ) from None
        self.log_dir = Path(log_dir)
        self._writer: Any = SummaryWriter(str(self.log_dir), purge_step=purge_step)

    def scalars(self, step: int, values: Mapping[str, float | int | None], prefix: str) -> None:
        """Write each finite value as ``<prefix>/<name>`` at ``step`` (``None``/NaN skipped)."""
        for name, value in values.items():
            if value is not None and math.isfinite(float(value)):
                self._writer.add_scalar(f"{prefix}/{name}", float(value), step)

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
