"""Planner x environment comparison sweeps: jobs, executors (local processes or Ray), a
resumable JSON-lines store, and summaries (JSON, CSV, markdown, success-vs-latency plot).

    lewm-mpc bench --envs tworoom --seeds 0,1 --pairs 50 --executor local --workers 2

or from Python::

    from lewm_mpc.bench import SweepConfig, make_executor, run_sweep
    with make_executor("local", workers=2) as executor:
        outcome = run_sweep(SweepConfig(envs=("tworoom",)), executor, "results/")
"""

from lewm_mpc.bench.budget import PLANNERS, Budget, configured_evals, make_planner
from lewm_mpc.bench.command import main
from lewm_mpc.bench.executors import (
    Executor,
    InlineExecutor,
    ProcessExecutor,
    RayExecutor,
    make_executor,
)
from lewm_mpc.bench.jobs import ENVS, MODES, Job, Protocol, Source, SweepConfig, make_jobs
from lewm_mpc.bench.report import SummaryRow, summarize, write_report
from lewm_mpc.bench.store import ResultStore
from lewm_mpc.bench.sweep import SweepOutcome, run_sweep
from lewm_mpc.bench.worker import JobResult, run_job

__all__ = [
    "ENVS",
    "MODES",
    "PLANNERS",
    "Budget",
    "Executor",
    "InlineExecutor",
    "Job",
    "JobResult",
    "ProcessExecutor",
    "Protocol",
    "RayExecutor",
    "ResultStore",
    "Source",
    "SummaryRow",
    "SweepConfig",
    "SweepOutcome",
    "configured_evals",
    "main",
    "make_executor",
    "make_jobs",
    "make_planner",
    "run_job",
    "run_sweep",
    "summarize",
    "write_report",
]
