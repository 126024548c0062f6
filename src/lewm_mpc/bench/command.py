"""``lewm-mpc bench`` (and ``benchmarks/compare_planners.py``): arguments and entry point."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from lewm_mpc.argtypes import positive_float, positive_int
from lewm_mpc.bench.budget import PLANNERS
from lewm_mpc.bench.executors import make_executor
from lewm_mpc.bench.jobs import ENVS, MODES, SweepConfig
from lewm_mpc.bench.sweep import DEFAULT_OUT, run_sweep

DESCRIPTION = """\
Planners (CEM, MPPI, Gradient, Hybrid) x environments x seeds x held-out pairs, at an equal
number of energy evaluations per plan (equal-budget) and/or under the same per-plan deadline
(equal-time). Finished jobs are appended to OUT/jobs.jsonl as they finish; rerunning the same
command skips them (resume after Ctrl-C). Writes OUT/summary.{json,csv,md} and
OUT/success_vs_latency.png. Models default to runs/bench/ENV/{model,data.h5} (made by
benchmarks/env_success.py) and runs/bench_tworoom/{model,tworoom.h5}. Each job runs with
--threads torch threads (1 by default), so results are identical whichever executor runs them
(equal-time results depend on the clock). A user planner whose config subclasses
SamplingConfig joins the comparison by registry name: --plugin my_planners.py --planners
CEM,shooting."""


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in _names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must be comma-separated integers, got {text!r}"
        ) from None


def _assignment(text: str) -> tuple[str, str]:
    env, sep, path = text.partition("=")
    if not sep or not env or not path:
        raise argparse.ArgumentTypeError(f"expected ENV=PATH, got {text!r}")
    return env.strip(), path.strip()


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's line breaks and shows every default."""


def add_arguments(parser: argparse.ArgumentParser, default_out: Path = DEFAULT_OUT) -> None:
    """The ``bench`` arguments (``--out`` defaults to ``default_out``)."""
    parser.description = DESCRIPTION
    parser.formatter_class = _HelpFormatter
    defaults = SweepConfig()  # its defaults are the documented ones
    sweep = parser.add_argument_group("sweep")
    sweep.add_argument("--envs", type=_names, default=ENVS, help=f"comma list of {list(ENVS)}")
    sweep.add_argument(
        "--planners",
        type=_names,
        default=PLANNERS,
        help=f"comma list of {list(PLANNERS)} or registry names (any case) of sampling planners, "
        "such as those a --plugin registers",
    )
    sweep.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="module path or .py file that registers user planners, imported here and in every "
        "worker (repeatable)",
    )
    sweep.add_argument("--seeds", type=_seeds, default=(0,), help="comma list of seeds")
    sweep.add_argument(
        "--pairs",
        type=positive_int,
        default=defaults.pairs,
        help="held-out start/goal pairs per seed",
    )
    sweep.add_argument("--modes", type=_names, default=MODES, help=f"comma list of {list(MODES)}")
    budget = parser.add_argument_group("planning budget")
    budget.add_argument(
        "--budget",
        type=positive_int,
        default=defaults.budget,
        help="energy evaluations per plan (equal-budget mode)",
    )
    budget.add_argument(
        "--samples",
        type=positive_int,
        default=defaults.samples,
        help="candidates per CEM/MPPI iteration",
    )
    budget.add_argument(
        "--restarts", type=positive_int, default=defaults.restarts, help="gradient restarts"
    )
    budget.add_argument("--horizon", type=positive_int, default=defaults.horizon)
    budget.add_argument(
        "--receding",
        type=positive_int,
        default=defaults.receding_horizon,
        help="blocks executed per plan",
    )
    budget.add_argument(
        "--deadline",
        type=positive_float,
        default=defaults.deadline_s,
        help="per-plan deadline in seconds (equal-time mode)",
    )
    budget.add_argument(
        "--time-budget",
        type=positive_int,
        default=defaults.time_budget,
        help="evaluations per plan in equal-time mode (cut by the deadline)",
    )
    protocol = parser.add_argument_group("protocol")
    protocol.add_argument("--goal-offset", type=positive_int, default=defaults.goal_offset)
    protocol.add_argument(
        "--episode-steps",
        type=positive_int,
        default=defaults.episode_steps,
        help="env steps of MPC per pair",
    )
    protocol.add_argument(
        "--model",
        type=_assignment,
        action="append",
        default=[],
        metavar="ENV=DIR",
        help="model directory of ENV (repeatable)",
    )
    protocol.add_argument(
        "--data",
        type=_assignment,
        action="append",
        default=[],
        metavar="ENV=PATH",
        help="dataset of ENV (repeatable)",
    )
    run = parser.add_argument_group("execution")
    run.add_argument("--executor", choices=("local", "ray"), default="local")
    run.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="local processes (default 1: inline), or the CPUs of a local Ray "
        "cluster (default: all)",
    )
    run.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster address (default: $RAY_ADDRESS, else a local cluster)",
    )
    run.add_argument(
        "--threads", type=positive_int, default=defaults.threads, help="torch threads per job"
    )
    run.add_argument("--device", default=defaults.device, help="torch device")
    run.add_argument("--out", type=Path, default=default_out, help="results folder")
    run.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib)")


def config_from_args(args: argparse.Namespace) -> SweepConfig:
    """The :class:`SweepConfig` the parsed arguments describe."""
    return SweepConfig(
        envs=args.envs,
        planners=args.planners,
        seeds=args.seeds,
        pairs=args.pairs,
        modes=args.modes,
        budget=args.budget,
        samples=args.samples,
        restarts=args.restarts,
        horizon=args.horizon,
        receding_horizon=args.receding,
        deadline_s=args.deadline,
        time_budget=args.time_budget,
        goal_offset=args.goal_offset,
        episode_steps=args.episode_steps,
        device=args.device,
        threads=args.threads,
        models=dict(args.model),
        data=dict(args.data),
        plugins=tuple(args.plugin),
    )


def run_from_args(args: argparse.Namespace, echo: Callable[[str], None] = print) -> None:
    """Run the sweep the arguments describe and print its table."""
    config = config_from_args(args)
    with make_executor(args.executor, args.workers, args.ray_address) as executor:
        outcome = run_sweep(config, executor, args.out, plot=not args.no_plot)
    echo(outcome.files.markdown.read_text())
    echo(f"{outcome.ran} jobs run, {outcome.skipped} already finished; results in {args.out}")


def main(argv: Sequence[str] | None = None, default_out: Path = DEFAULT_OUT) -> int:
    """``lewm-mpc bench`` with these arguments (default: ``sys.argv[1:]``); the entry of
    ``benchmarks/compare_planners.py`` (which passes ``default_out=RESULTS_OUT``). Returns the
    exit status (2 for bad input)."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    parser = argparse.ArgumentParser(prog="lewm-mpc bench", description=__doc__)
    add_arguments(parser, default_out)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run_from_args(args)
    except KeyboardInterrupt:
        print("lewm-mpc bench: interrupted; finished jobs are saved, rerun to resume",
              file=sys.stderr)  # fmt: skip
        return 130
    except (ValueError, FileNotFoundError, ImportError, OSError) as error:
        print(f"lewm-mpc bench: error: {error}", file=sys.stderr)
        return 2
    return 0
