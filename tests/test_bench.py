"""Planner-comparison sweeps: jobs, equal budgets, store/resume, executors, report, CLI."""

from __future__ import annotations

import argparse
import json
import os
import runpy
import stat
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import lewm_mpc as lm
from conftest import tiny_config
from lewm_mpc.bench import (
    PLANNERS,
    Budget,
    Executor,
    InlineExecutor,
    Job,
    JobResult,
    ProcessExecutor,
    ResultStore,
    SweepConfig,
    configured_evals,
    make_executor,
    make_jobs,
    make_planner,
    run_sweep,
    summarize,
    worker,
)
from lewm_mpc.bench.report import markdown, plot_success_vs_latency
from lewm_mpc.bench.worker import run_job
from lewm_mpc.cli import main
from lewm_mpc.envs import get_env_spec
from lewm_mpc.envs.two_room_keepout import KeepOut, inside_box
from lewm_mpc.evaluation import wilson_interval
from lewm_mpc.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
TINY = {"budget": 48, "samples": 8, "restarts": 4, "time_budget": 480, "deadline_s": 0.02,
        "goal_offset": 10, "episode_steps": 10}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_model(tiny_dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("bench_model") / "run"
    config = TrainConfig(steps=10, batch_size=8, num_frames=3, val_every=10, val_batches=1,
                         checkpoint_every=10, sigreg_projections=32, warmup_steps=2)  # fmt: skip
    train(tiny_dataset, run, tiny_config(), config, progress=False)
    return run


def sweep_config(model: Path, data: Path, **overrides) -> SweepConfig:
    fields = {"envs": ("tworoom",), "models": {"tworoom": str(model)},
              "data": {"tworoom": str(data)}, **TINY, **overrides}  # fmt: skip
    return SweepConfig(**fields)


class Recording(Executor):
    """Runs inline, records the jobs it was given, optionally interrupts after ``stop_after``."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.jobs: list[Job] = []
        self.stop_after = stop_after

    def run(self, jobs: Sequence[Job]) -> Iterator[JobResult]:
        self.jobs += list(jobs)
        for count, result in enumerate(InlineExecutor().run(jobs)):
            if count == self.stop_after:
                raise KeyboardInterrupt
            yield result


def outcomes(results: Sequence[JobResult]) -> list[dict]:
    return [r.outcome() for r in results]


# ----------------------------------------------------------------------------------- jobs
def test_jobs_list_every_combination_once(tiny_model, tiny_dataset):
    config = sweep_config(tiny_model, tiny_dataset, seeds=(0, 1), pairs=3)
    jobs = make_jobs(config)
    assert len(jobs) == 2 * 2 * 3 * 4  # modes x seeds x pairs x planners
    identities = {(j.env, j.planner, j.seed, j.pair, j.mode) for j in jobs}
    assert len(identities) == len(jobs) == len({j.key() for j in jobs})
    assert all(Job.from_dict(json.loads(j.key())) == j for j in jobs)
    for job in jobs:
        assert (job.budget.deadline_s is not None) == (job.mode == "equal-time")
        assert job.threads == 1 and job.source.model_sha
    assert jobs[0].planner_seed != replace(jobs[0], pair=1).planner_seed
    assert jobs[0].planner_seed == replace(jobs[0], planner="MPPI").planner_seed


def test_sweep_config_errors_say_what_is_wrong(tiny_model, tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="planners must be"):
        sweep_config(tiny_model, tiny_dataset, planners=("CEM", "iLQR"))
    with pytest.raises(ValueError, match="envs must be"):
        sweep_config(tiny_model, tiny_dataset, envs=("mars",))
    with pytest.raises(ValueError, match="not a multiple of samples"):
        sweep_config(tiny_model, tiny_dataset, budget=50)
    with pytest.raises(FileNotFoundError, match="--model tworoom=DIR"):
        make_jobs(sweep_config(tmp_path / "nothing", tiny_dataset))


# ------------------------------------------------------------------------ equal budgets
@pytest.mark.parametrize("budget", [Budget(), Budget(48, 8, 4, 2), Budget(90000, 300, 30, 10)])
def test_every_planner_is_configured_for_the_same_evaluations(tiny_model, budget):
    model = lm.WorldModel.load(tiny_model)
    for name in PLANNERS:
        assert configured_evals(make_planner(name, model, budget, seed=0)) == budget.evals


def test_every_planner_spends_exactly_the_budget_per_plan(tiny_model):
    model = lm.WorldModel.load(tiny_model)
    env = get_env_spec("tworoom").make(obs_mode="pixels")
    obs, _ = env.reset(seed=0)
    goal = env.unwrapped.render_state(env.unwrapped.goal_state)
    budget = Budget(48, 8, 4, 2)
    for name in PLANNERS:
        result = make_planner(name, model, budget, seed=0).plan(obs, goal)
        assert result.energy_evals == 48, name
    assert budget.iterations == 6 and budget.gradient_steps == 12 and budget.hybrid_steps == 8


def test_budgets_that_cannot_be_split_equally_are_refused():
    with pytest.raises(ValueError, match="multiple of restarts"):
        Budget(48, 8, 5, 2)
    with pytest.raises(ValueError, match="hybrid"):
        Budget(48, 8, 4, 6)  # the CEM stage would use the whole budget


# ------------------------------------------------------------------------ end to end
def test_tiny_sweep_writes_every_output_through_cli_and_script(
    tiny_model, tiny_dataset, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "results"
    argv = [
        "--envs", "tworoom", "--pairs", "1", "--budget", "48", "--samples", "8",
        "--restarts", "4", "--time-budget", "480", "--deadline", "0.02", "--goal-offset", "10",
        "--episode-steps", "10", "--model", f"tworoom={tiny_model}",
        "--data", f"tworoom={tiny_dataset}", "--out", str(out),
    ]  # fmt: skip
    assert main(["bench", *argv]) == 0
    assert "8 jobs run, 0 already finished" in capsys.readouterr().out
    lines = (out / "jobs.jsonl").read_text().splitlines()
    assert len(lines) == 8
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["rows"]) == 8 and summary["sweep"]["budgets"]["equal-budget"]["evals"] == 48
    for row in summary["rows"]:
        assert 0 <= row["ci95_low"] <= row["success_rate"] <= row["ci95_high"] <= 1
        if row["mode"] == "equal-budget":
            assert row["energy_evals_per_plan"] == 48
        else:
            assert row["deadline_s"] == 0.02 and 0 < row["energy_evals_per_plan"] <= 480
    assert (out / "summary.csv").read_text().count("\n") == 9
    assert (out / "summary.md").read_text().count("| tworoom |") == 8
    assert (out / "success_vs_latency.png").read_bytes()[:4] == b"\x89PNG"
    umask = os.umask(0)
    os.umask(umask)
    for name in ("summary.json", "summary.md", "success_vs_latency.png"):  # as datasets: umask
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o666 & ~umask
    # The script is the same entry; a rerun finds everything finished.
    monkeypatch.setattr(sys, "argv", ["compare_planners.py", *argv])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "benchmarks" / "compare_planners.py"), run_name="__main__")
    assert exit_info.value.code == 0
    assert "0 jobs run, 8 already finished" in capsys.readouterr().out
    assert main(["bench", *argv, "--planners", "CEM,iLQR"]) == 2
    assert "planners must be a non-empty subset" in capsys.readouterr().err


def test_bench_writes_under_runs_by_default_and_the_script_to_the_committed_results():
    from lewm_mpc.bench.command import add_arguments
    from lewm_mpc.bench.sweep import DEFAULT_OUT, RESULTS_OUT
    from lewm_mpc.cli import build_parser

    args = build_parser().parse_args(["bench"])
    assert args.out == DEFAULT_OUT == Path("runs/bench/compare_planners")
    assert "/runs/" in (ROOT / ".gitignore").read_text().split()  # never committed
    assert not args.out.is_relative_to(RESULTS_OUT.parent)
    parser = argparse.ArgumentParser()
    add_arguments(parser, RESULTS_OUT)  # what benchmarks/compare_planners.py passes
    assert parser.parse_args([]).out == Path("benchmarks/results/compare_planners")
    assert "RESULTS_OUT" in (ROOT / "benchmarks" / "compare_planners.py").read_text()


# ---------------------------------------------------------------------- store / resume
def test_resume_runs_only_missing_jobs_and_gives_identical_results(
    tiny_model, tiny_dataset, tmp_path
):
    config = sweep_config(tiny_model, tiny_dataset, planners=("CEM", "MPPI"), pairs=3,
                          modes=("equal-budget",))  # fmt: skip
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C after two finished jobs
        run_sweep(config, Recording(stop_after=2), out, progress=False, plot=False)
    assert len(ResultStore(out / "jobs.jsonl").load()) == 2
    resumed = Recording()
    first = run_sweep(config, resumed, out, progress=False, plot=False)
    assert (first.ran, first.skipped, len(resumed.jobs)) == (4, 2, 4)

    # Lose one record and cut the last one short, as a crash mid-write would.
    path = out / "jobs.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:1] + lines[2:-1]) + lines[-1][: len(lines[-1]) // 2])
    rerun = Recording()
    second = run_sweep(config, rerun, out, progress=False, plot=False)
    assert len(rerun.jobs) == 2
    assert {j.key() for j in rerun.jobs} == {
        JobResult.from_dict(json.loads(line)).job.key() for line in (lines[1], lines[-1])
    }
    assert outcomes(second.results) == outcomes(first.results)
    assert len(path.read_text().splitlines()) == 6
    assert len(ResultStore(path).load()) == 6


def test_store_refuses_a_corrupt_middle_line(tiny_model, tiny_dataset, tmp_path):
    config = sweep_config(tiny_model, tiny_dataset, planners=("CEM",), pairs=2,
                          modes=("equal-budget",))  # fmt: skip
    run_sweep(config, InlineExecutor(), tmp_path, progress=False, plot=False)
    path = tmp_path / "jobs.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text('{"not": "a record"}\n' + "".join(lines))
    with pytest.raises(ValueError, match="line 1 is not a job record"):
        ResultStore(path).load()


# ------------------------------------------------------------------------- executors
def test_local_executor_one_or_two_workers_give_identical_results(
    tiny_model, tiny_dataset, tmp_path
):
    config = sweep_config(tiny_model, tiny_dataset, planners=("CEM", "Gradient"), pairs=2,
                          seeds=(0, 1), modes=("equal-budget",))  # fmt: skip
    with make_executor("local", 1) as inline:
        assert isinstance(inline, InlineExecutor)
        one = run_sweep(config, inline, tmp_path / "one", progress=False, plot=False)
    with make_executor("local", 2) as pool:
        assert isinstance(pool, ProcessExecutor)
        two = run_sweep(config, pool, tmp_path / "two", progress=False, plot=False)
    assert one.ran == two.ran == 8
    assert outcomes(one.results) == outcomes(two.results)


@pytest.mark.slow
def test_ray_executor_matches_local_on_a_two_cpu_cluster(tiny_model, tiny_dataset, tmp_path):
    pytest.importorskip("ray", reason="needs the ray extra")
    config = sweep_config(tiny_model, tiny_dataset, planners=("CEM", "Hybrid"), pairs=2,
                          modes=("equal-budget",))  # fmt: skip
    local = run_sweep(config, InlineExecutor(), tmp_path / "local", progress=False, plot=False)
    with make_executor("ray", 2) as executor:
        on_ray = run_sweep(config, executor, tmp_path / "ray", progress=False, plot=False)
    assert on_ray.ran == 4
    assert outcomes(on_ray.results) == outcomes(local.results)


def test_missing_optional_dependencies_name_their_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"lewm-mpc\[ray\]"):
        make_executor("ray")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"lewm-mpc\[plots\]"):
        plot_success_vs_latency([], tmp_path / "plot.png")
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("slurm")


# ---------------------------------------------------------------------------- report
def test_summary_pools_plans_and_counts_successes(tiny_model, tiny_dataset):
    config = sweep_config(tiny_model, tiny_dataset, planners=("CEM",), pairs=3,
                          modes=("equal-budget",))  # fmt: skip
    jobs = make_jobs(config)

    def result(job: Job, success: bool, seconds: tuple[float, ...]) -> JobResult:
        return JobResult(
            job=job, episode=0, start_step=job.pair, success=success,
            steps_to_success=5 * len(seconds) if success else None, plan_seconds=seconds,
            latency_p50_s=float(np.median(seconds)), latency_p95_s=max(seconds),
            energy_evals=(48,) * len(seconds), iterations=(6,) * len(seconds),
            plan_energies=(1.0,) * len(seconds), final_energy=1.0, violations=None,
            seconds=sum(seconds),
        )  # fmt: skip

    results = [result(jobs[0], True, (0.1, 0.2)), result(jobs[1], True, (0.3,)),
               result(jobs[2], False, (0.4, 0.5))]  # fmt: skip
    (row,) = summarize(results)
    assert (row.episodes, row.successes, row.plans) == (3, 2, 5)
    assert row.success_rate == pytest.approx(2 / 3)
    assert row.ci95_low == pytest.approx(wilson_interval(2, 3)[0])
    assert row.latency_p50_s == pytest.approx(0.3)  # median of all five plans
    assert row.steps_to_success_mean == pytest.approx(7.5)
    assert row.energy_evals_per_plan == 48 and row.violations is None


# ---------------------------------------------------------------------- keep-out scenario
@pytest.fixture(scope="module")
def half_held_out_model(tiny_dataset, tmp_path_factory) -> Path:
    """A tiny model that holds out half the episodes (room for keep-out pairs)."""
    run = tmp_path_factory.mktemp("keepout_model") / "run"
    config = TrainConfig(steps=4, batch_size=8, num_frames=3, val_fraction=0.5, val_every=4,
                         val_batches=1, checkpoint_every=4, sigreg_projections=16)  # fmt: skip
    train(tiny_dataset, run, tiny_config(), config, progress=False)
    return run


def test_keepout_scenario_counts_violations_on_the_true_state(
    half_held_out_model, tiny_dataset, monkeypatch
):
    # An untrained probe's calibrated margin leaves no room for a detour: fix a small one.
    monkeypatch.setattr(worker, "KEEPOUT_SETTINGS", KeepOut(margin=0.01))
    worker.clear_cache()
    config = sweep_config(half_held_out_model, tiny_dataset, envs=("tworoom-keepout",),
                          planners=("CEM", "Gradient"), modes=("equal-budget",),
                          pairs=1, goal_offset=20, episode_steps=20)  # fmt: skip
    jobs = make_jobs(config)
    assert jobs[0].source == config.source("tworoom")  # Two-Room's model and data
    results = [run_job(job) for job in jobs]
    for result in results:
        assert isinstance(result.violations, int) and result.violations >= 0
    # The pair suits the scenario: same room, far apart, the box between start and goal.
    scenario = worker.KEEPOUT_SETTINGS.scenario(0.01)
    start = tiny_dataset_state(tiny_dataset, results[0].episode, results[0].start_step)
    goal = tiny_dataset_state(tiny_dataset, results[0].episode, results[0].start_step + 20)
    low, high = scenario.box(start, goal)
    assert np.linalg.norm(goal - start) >= scenario.min_distance
    assert scenario.accepts(start, goal)
    assert not inside_box(np.stack([start, goal]), low, high).any()
    assert inside_box(((low + high) / 2)[None], low, high).all()
    row = summarize(results)[0]
    assert row.env == "tworoom-keepout" and row.episodes_violating is not None
    assert "tworoom-keepout" in markdown([row])


def tiny_dataset_state(path: Path, episode: int, step: int) -> np.ndarray:
    from lewm_mpc.data import EpisodeDataset

    dataset = EpisodeDataset.load(path)
    return np.asarray(dataset.state[dataset.episode_slice(episode)][step])


def test_keepout_scenario_checks_its_settings():
    with pytest.raises(ValueError, match="box_half must be > 0"):
        KeepOut(box_half=0)
    with pytest.raises(ValueError, match="margin_quantile must be in"):
        KeepOut(margin_quantile=1.0)
    with pytest.raises(ValueError, match="margin must be >= 0 or None"):
        KeepOut(margin=-0.1)
