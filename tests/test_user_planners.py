"""User planners loaded with ``--plugin``: the README's planner runs in ``eval`` and ``bench``."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from conftest import tiny_config
from lewm_mpc.bench import InlineExecutor, JobResult, ProcessExecutor, SweepConfig, run_sweep
from lewm_mpc.cli import main
from lewm_mpc.planners import (
    GradientConfig,
    GradientPlanner,
    load_plugins,
    planner_names,
    register_planner,
    unregister_planner,
)
from lewm_mpc.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
NAME = "shooting"  # the name the README's plugin registers
TINY_BENCH = [
    "--envs", "tworoom", "--pairs", "1", "--modes", "equal-budget", "--budget", "48",
    "--samples", "8", "--restarts", "4", "--goal-offset", "10", "--episode-steps", "10",
    "--no-plot",
]  # fmt: skip


def readme_plugin() -> str:
    """The ``my_planners.py`` of the README's "Write your own planner" section."""
    section = (ROOT / "README.md").read_text().split("## Write your own planner", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


@pytest.fixture
def plugin(tmp_path) -> Path:
    """The README's plugin as a file; its planner is unregistered afterwards."""
    path = tmp_path / "my_planners.py"
    path.write_text(readme_plugin())
    yield path
    if NAME in planner_names():
        unregister_planner(NAME)


@pytest.fixture(scope="module")
def tiny_model(tiny_dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("user_planner_model") / "run"
    config = TrainConfig(steps=10, batch_size=8, num_frames=3, val_every=10, val_batches=1,
                         checkpoint_every=10, sigreg_projections=32, warmup_steps=2)  # fmt: skip
    train(tiny_dataset, run, tiny_config(), config, progress=False)
    return run


def sources(model: Path, data: Path) -> list[str]:
    return ["--model", f"tworoom={model}", "--data", f"tworoom={data}"]


def test_plugin_file_registers_its_planner_once(plugin):
    assert NAME not in planner_names()
    load_plugins([str(plugin)])
    load_plugins([str(plugin)])  # already imported: not registered twice
    assert NAME in planner_names()


def test_plugin_module_path_is_found_in_the_working_directory(plugin, monkeypatch):
    monkeypatch.chdir(plugin.parent)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in ("", ".")])
    try:
        load_plugins(["my_planners"])
        assert NAME in planner_names() and str(plugin.parent) in sys.path
    finally:
        sys.modules.pop("my_planners", None)


def test_eval_runs_a_plugin_planner(plugin, tiny_model, capsys):
    argv = ["eval", "--model", str(tiny_model), "--plugin", str(plugin), "--planner", "Shooting",
            "--pairs", "1", "--goal-offset", "10", "--budget", "10", "--horizon", "2",
            "--samples", "8", "--iterations", "2", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    assert re.search(r"success \d/1 = \d+\.\d%", capsys.readouterr().out)


def test_eval_names_a_missing_plugin_or_planner(plugin, tiny_model, capsys):
    model = ["eval", "--model", str(tiny_model), "--device", "cpu"]
    assert main([*model, "--plugin", "no_such_planners_module", "--planner", NAME]) == 2
    assert "plugin 'no_such_planners_module': no module named" in capsys.readouterr().err
    assert main([*model, "--plugin", str(plugin.with_name("missing.py"))]) == 2
    assert "missing.py' does not exist" in capsys.readouterr().err
    assert main([*model, "--planner", NAME]) == 2  # registered only by its plugin
    err = capsys.readouterr().err
    assert f"unknown planner {NAME!r}" in err and "'cem'" in err and "'mppi'" in err


def test_bench_runs_a_plugin_planner_beside_the_builtins(
    plugin, tiny_model, tiny_dataset, tmp_path, capsys
):
    out = tmp_path / "results"
    argv = ["bench", *TINY_BENCH, *sources(tiny_model, tiny_dataset), "--out", str(out),
            "--plugin", str(plugin), "--planners", "cem,SHOOTING"]  # fmt: skip
    assert main(argv) == 0
    assert "2 jobs run" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "jobs.jsonl").read_text().splitlines()]
    assert [row["job"]["planner"] for row in rows] == ["CEM", NAME]  # built-ins: display names
    assert rows[1]["job"]["plugins"] == [str(plugin.resolve())]
    assert set(rows[1]["energy_evals"]) == {48}  # each plan: 8 samples x 6 iterations
    summary = json.loads((out / "summary.json").read_text())
    assert [row["planner"] for row in summary["rows"]] == ["CEM", NAME]


def test_bench_loads_plugins_in_worker_processes(plugin, tiny_model, tiny_dataset, tmp_path):
    config = SweepConfig(envs=("tworoom",), planners=(NAME,), pairs=1, modes=("equal-budget",),
                         budget=48, samples=8, restarts=4, goal_offset=10, episode_steps=10,
                         models={"tworoom": str(tiny_model)}, data={"tworoom": str(tiny_dataset)},
                         plugins=(str(plugin),))  # fmt: skip
    inline = run_sweep(config, InlineExecutor(), tmp_path / "inline", progress=False, plot=False)
    with ProcessExecutor(1) as pool:  # a spawned process that has never seen the plugin
        spawned = run_sweep(config, pool, tmp_path / "spawned", progress=False, plot=False)
    assert spawned.ran == 1
    assert [r.outcome() for r in spawned.results] == [r.outcome() for r in inline.results]


def test_bench_refuses_unknown_plugins_and_non_sampling_planners(
    plugin, tiny_model, tiny_dataset, tmp_path, capsys
):
    argv = ["bench", *TINY_BENCH, *sources(tiny_model, tiny_dataset), "--out", str(tmp_path)]
    assert main([*argv, "--plugin", "no_such_planners_module", "--planners", NAME]) == 2
    assert "no_such_planners_module" in capsys.readouterr().err
    assert main([*argv, "--planners", f"CEM,{NAME}"]) == 2  # no --plugin: not registered
    assert "planners must be a non-empty subset" in capsys.readouterr().err
    register_planner("adam", GradientPlanner, GradientConfig)
    try:
        with pytest.raises(ValueError, match="bench can only split the evaluation budget for "
                           "sampling planners"):  # fmt: skip
            SweepConfig(planners=("CEM", "adam"))
        assert main([*argv, "--planners", "adam"]) == 2
        assert "config subclassing SamplingConfig" in capsys.readouterr().err
    finally:
        unregister_planner("adam")
    assert not (tmp_path / "jobs.jsonl").exists()


def test_recorded_jobs_keep_their_identity():
    """Rows written before jobs named their plugins load, with unchanged keys."""
    path = ROOT / "benchmarks" / "results" / "compare_planners" / "jobs.jsonl"
    for line in path.read_text().splitlines():
        row = json.loads(line)
        job = JobResult.from_dict(row).job
        assert job.plugins == ()
        assert job.key() == json.dumps(row["job"], sort_keys=True, separators=(",", ":"))
