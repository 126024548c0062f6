"""Planners (CEM, MPPI, gradient, hybrid) x environments x seeds on held-out pairs.

The same entry as ``lewm-mpc bench`` (see ``--help``): equal-budget and equal-time modes, local
processes or Ray (``--executor ray``), resumable (finished jobs are skipped on rerun).

    .venv/bin/python benchmarks/compare_planners.py --envs tworoom --workers 2
    .venv/bin/python benchmarks/compare_planners.py --executor ray   # RAY_ADDRESS or local

Writes ``benchmarks/results/compare_planners/{jobs.jsonl,summary.json,summary.csv,summary.md,
success_vs_latency.png}`` (``lewm-mpc bench`` writes to ``runs/bench/compare_planners`` unless
given ``--out``).
"""

from __future__ import annotations

import sys

from lewm_mpc.bench import main
from lewm_mpc.bench.sweep import RESULTS_OUT

if __name__ == "__main__":
    sys.exit(main(default_out=RESULTS_OUT))
