"""Run a sweep: list its jobs, skip the finished ones, run the rest, store each, report."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from lewm_mpc.atomic import write_text_atomic
from lewm_mpc.bench.executors import Executor
from lewm_mpc.bench.jobs import SweepConfig, make_jobs
from lewm_mpc.bench.report import ReportFiles, write_report
from lewm_mpc.bench.store import ResultStore
from lewm_mpc.bench.worker import JobResult

DEFAULT_OUT = Path("runs/bench/compare_planners")
"""Where ``lewm-mpc bench`` writes by default: under the git-ignored ``runs/``, never over the
committed results (``benchmarks/compare_planners.py`` writes those, to :data:`RESULTS_OUT`)."""
RESULTS_OUT = Path("benchmarks/results/compare_planners")


@dataclass(frozen=True)
class SweepOutcome:
    """What a sweep run did.

    Attributes:
        results: one result per job of the sweep, in job order.
        ran: jobs run now.
        skipped: jobs already finished in the store.
        files: the written summaries.
    """

    results: tuple[JobResult, ...]
    ran: int
    skipped: int
    files: ReportFiles


def run_sweep(
    config: SweepConfig,
    executor: Executor,
    out: str | Path = DEFAULT_OUT,
    progress: bool = True,
    plot: bool = True,
) -> SweepOutcome:
    """Run every job of ``config`` not yet in ``out/jobs.jsonl`` and summarize all of them.

    Each finished job is appended to ``out/jobs.jsonl`` as it arrives, so an interrupted
    sweep resumes where it stopped; the summaries cover exactly this sweep's jobs.

    Args:
        config: the sweep.
        executor: where the jobs run.
        out: results folder.
        progress: show a progress bar over jobs.
        plot: draw ``success_vs_latency.png`` (needs matplotlib).
    """
    out = Path(out)
    jobs = make_jobs(config)
    store = ResultStore(out / "jobs.jsonl")
    finished = store.load()
    pending = [job for job in jobs if job.key() not in finished]
    write_text_atomic(out / "sweep.json", json.dumps(_meta(config), indent=1))
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(pending), desc="bench", unit="job",
               dynamic_ncols=True, disable=not progress)  # fmt: skip
    with bar, contextlib.closing(executor.run(pending)) as stream:
        for result in stream:
            store.append(result)
            finished[result.job.key()] = result
            bar.set_postfix_str(
                f"{result.job.label()}: {'success' if result.success else 'failure'}",
                refresh=False,
            )
            bar.update()
    results = tuple(finished[job.key()] for job in jobs)
    files = write_report(results, out, {"sweep": _meta(config)}, plot=plot)
    return SweepOutcome(results, len(pending), len(jobs) - len(pending), files)


def _meta(config: SweepConfig) -> dict:
    meta = asdict(config)
    meta["models"], meta["data"] = dict(config.models), dict(config.data)
    meta["budgets"] = {mode: asdict(config.mode_budget(mode)) for mode in config.modes}
    return meta
