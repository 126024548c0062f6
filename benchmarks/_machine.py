"""Machine facts the benchmarks share: the measured fp32 matmul peak and timing helpers.

Imported by the benchmark scripts beside it (each puts this folder on ``sys.path``).
"""

from __future__ import annotations

import platform
import time

import torch


def synchronize(device: torch.device | str) -> None:
    """Wait for queued kernels on ``device`` (a no-op on CPU, where ops are synchronous)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_gflops(
    size: int = 2048, repeats: int = 10, device: torch.device | str = "cpu"
) -> float:
    """Best-of fp32 GEMM throughput (GFLOP/s) of ``size`` x ``size`` matrices on ``device``.

    The best of ``repeats`` timed products after one warm-up is the machine's practical peak
    for the current thread count (``torch.get_num_threads()``).
    """
    if size < 1 or repeats < 1:
        raise ValueError(f"size and repeats must be >= 1, got {size}, {repeats}")
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b  # warm-up
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def round_robin(count: int, round_index: int) -> list[int]:
    """Indices ``0..count-1`` rotated by ``round_index``: the order in which interleaved
    timing visits its contenders in that round, so none always runs first."""
    shift = round_index % count
    return [*range(shift, count), *range(shift)]


def cpu_model_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine_info(device: torch.device | str = "cpu") -> dict[str, object]:
    """Threads, versions and the device name, for results files."""
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model_name()
    return {
        "device": str(device),
        "device_name": name or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
