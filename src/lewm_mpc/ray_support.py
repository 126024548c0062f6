"""Connecting to Ray (the optional ``ray`` extra) for benchmarks and data collection."""

from __future__ import annotations

import os
from typing import Any


def import_ray() -> Any:
    """The ``ray`` module, or an ImportError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ImportError("the Ray executor needs Ray: pip install 'lewm-mpc[ray]'") from None
    return ray


def connect(ray: Any, address: str | None, num_cpus: int | None) -> bool:
    """Connect to ``address`` (else ``RAY_ADDRESS``), or start a local cluster of ``num_cpus``
    CPUs when there is neither; nothing if Ray is already initialized. Returns whether a local
    cluster was started here (the caller then shuts it down)."""
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, **options)
        return False
    ray.init(num_cpus=num_cpus, **options)
    return True


__all__ = ["connect", "import_ray"]
