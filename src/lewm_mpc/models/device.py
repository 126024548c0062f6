"""Where models run: ``"auto"`` resolves to CUDA when available, else the CPU."""

from __future__ import annotations

import torch


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; any other name as ``torch.device``.

    Raises:
        ValueError: a name torch does not know, or a CUDA (or MPS) device that is not
            available here (CUDA missing, or an index beyond the visible GPUs).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"unknown device {str(name)!r}; expected auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(name)!r} requested but CUDA is not available; use 'cpu' or 'auto'"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"device {str(name)!r} requested but only {count} CUDA device(s) are visible"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(name)!r} requested but MPS is not available")
    return device
