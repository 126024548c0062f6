"""What the robot-loop and far-goal benchmarks share: the reference planner of a shipped model,
the envs to run, writing a results pair (``<name>.json`` and ``<name>.md``), and a rate's
interval over correlated blocks.

Imported by the benchmark scripts beside it (each puts this folder on ``sys.path``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from _machine import machine_info

import lewm_mpc as lm
from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.models.pretrained import pretrained_names


def env_names(envs: str) -> list[str]:
    """Comma-separated env names, or every env with a shipped model when empty."""
    return [name for name in envs.split(",") if name] or list(pretrained_names())


def reference_cem(run: lm.Run, seed: int) -> lm.CEM:
    """CEM at the env's reference budget (LeWorldModel's 300 x 30, top 30, horizon 5)."""
    assert run.env_spec is not None
    return lm.CEM(run.model, seed=seed, **run.env_spec.budget.fields_for(lm.CEMConfig))


def pair_seed(seed: int, index: int) -> int:
    """The planner seed of pair ``index`` when each pair is planned with its own draws: a pair's
    runs then draw alike, whatever ran before them."""
    return seed * 1_000_003 + index


def write_results(
    out: Path,
    name: str,
    args: Any,
    rows: list[dict[str, Any]],
    markdown: Callable[[dict[str, Any]], str],
    **extra: Any,
) -> dict[str, Any]:
    """Write ``out/<name>.json`` (args, machine, ``extra``, rows) and its table; print it."""
    result = {"args": {k: str(v) for k, v in asdict(args).items()}, "machine": machine_info(),
              **extra, "rows": rows}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / f"{name}.json", json.dumps(result, indent=1))
    table = markdown(result)
    write_text_atomic(out / f"{name}.md", table)
    print(table)
    return result


def episode_bootstrap_rate(
    events: list[int], trials: list[int], seed: int = 0, draws: int = 2000
) -> tuple[float, float]:
    """95% interval of ``sum(events) / sum(trials)`` resampling whole episodes.

    The blocks of one episode are not independent (surprise comes in runs), so a binomial
    interval over blocks is too narrow; resampling episodes keeps each episode's runs together.
    """
    counts, totals = np.asarray(events, np.float64), np.asarray(trials, np.float64)
    picks = np.random.default_rng(seed).integers(0, len(counts), (draws, len(counts)))
    rates = counts[picks].sum(axis=1) / np.maximum(totals[picks].sum(axis=1), 1)
    low, high = np.quantile(rates, [0.025, 0.975])
    return float(low), float(high)
