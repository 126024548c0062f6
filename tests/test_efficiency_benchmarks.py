"""Smoke runs of ``benchmarks/efficiency.py`` and ``benchmarks/realtime_budget.py`` at tiny
budgets on a few-step model: both write well-formed results; the stage timers leave the planner
as they found it; the budget search resumes from its cache. The numbers mean nothing here.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

import lewm_mpc as lm
from conftest import load_benchmark, tiny_config
from lewm_mpc.planners import base as planner_base
from lewm_mpc.planners import cem as cem_module
from lewm_mpc.training import TrainConfig, train

load = load_benchmark


@pytest.fixture(scope="module")
def tiny_model(tiny_dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("efficiency_model") / "run"
    config = TrainConfig(steps=2, batch_size=8, num_frames=3, val_every=2, val_batches=1,
                         checkpoint_every=2, sigreg_projections=32, warmup_steps=1)  # fmt: skip
    train(tiny_dataset, run, tiny_config(), config, progress=False)
    return run


def efficiency_args(script: ModuleType, model: Path, data: Path, out: Path, **overrides):
    fields = dict(model=model, data=data, out=out, samples=8, iterations=2, topk=2, plans=1,
                  warmup=0, compile_modes="", peak_size=64, device="cpu")  # fmt: skip
    return script.Args(**{**fields, **overrides})


def test_efficiency_writes_flops_breakdown_and_variants(tiny_model, tiny_dataset, tmp_path):
    script = load("efficiency")
    result = script.main(efficiency_args(script, tiny_model, tiny_dataset, tmp_path))
    flops = result["flops"]
    assert flops["rollout_per_candidate"] > 0 and flops["encode_per_plan"] > 0
    assert flops["evals_per_plan"] == 16
    # Every counted FLOP of a plan is the encoder's or a candidate's rollout/energy.
    assert flops["plan_counted"] == pytest.approx(flops["plan_predicted"], rel=1e-6)
    assert result["throughput"]["fraction_of_peak"] > 0
    stages = result["breakdown"]["stages_ms"]
    assert {"encoding", "sampling", "rollout", "energy", "ranking/update"} <= set(stages)
    assert [row["variant"] for row in result["variants"]] == [
        "eager, inference_mode (default)",
        "eager, no_grad",
        "eager, rollout_dtype=bfloat16",
    ]
    assert all("p50_s" in row for row in result["variants"])
    assert result["variants"][2]["max_abs_diff_latents"] > 0  # it really ran in bfloat16
    assert json.loads((tmp_path / "efficiency.json").read_text())["flops"] == flops
    assert "per energy evaluation" in (tmp_path / "efficiency.md").read_text()


def test_stage_timers_restore_the_planner(tiny_model, tiny_dataset):
    script = load("efficiency")
    model = lm.WorldModel.load(tiny_model)
    planner = lm.CEM(model, num_samples=8, iterations=2, topk=2, seed=0)
    frame = np.zeros(model.obs_shape, dtype=np.uint8)
    planner.reset(seed=0)
    before = planner.plan(frame, frame).actions
    objective, sampler, update = (
        planner.objective,
        cem_module._sample_noise,
        (planner_base.BestSoFar.update),
    )
    timer = script.StageTimer(model.device)
    with script.instrumented(planner, timer):
        planner.reset(seed=0)
        during = planner.plan(frame, frame).actions
    assert set(timer.seconds) >= {"encoding", "rollout", "energy", "sampling", "ranking/update"}
    assert not {"encode", "rollout"} & set(vars(model))
    assert not {"_as_batch", "_clamp", "_ranking", "_package"} & set(vars(planner))
    assert planner.objective is objective and cem_module._sample_noise is sampler
    assert planner_base.BestSoFar.update is update
    planner.reset(seed=0)
    np.testing.assert_array_equal(before, during)  # timing changes nothing planned
    np.testing.assert_array_equal(before, planner.plan(frame, frame).actions)


def test_no_grad_switch_is_undone():
    script = load("efficiency")
    original = torch.inference_mode
    with script.no_grad_instead_of_inference_mode():
        assert torch.inference_mode is not original
    assert torch.inference_mode is original


@pytest.mark.slow
def test_efficiency_compiled_rollout_variant(tiny_model, tiny_dataset, tmp_path):
    script = load("efficiency")
    args = efficiency_args(script, tiny_model, tiny_dataset, tmp_path, compile_modes="default")
    row = script.main(args)["variants"][-1]
    assert row["variant"] == "compile mode=default"
    assert "error" in row or (row["compile_s"] > 0 and row["max_abs_diff_latents"] < 1e-3)


def test_budget_parsing():
    script = load("realtime_budget")
    assert script.Budget.parse("300x30") == script.Budget(300, 30, 30)
    assert script.Budget.parse("64x5").topk == 6
    assert script.Budget.parse("8x2").topk == 2
    assert script.Budget.parse(" 300x30x10 ") == script.Budget(300, 30, 10)
    assert script.Budget.parse("200x10:bfloat16") == script.Budget(200, 10, 20, "bfloat16")
    assert script.Budget.parse("200x10:bfloat16").name == "200x10x20:bfloat16"
    for bad in ("300", "300x", "ax3", "300x30x400", "1x5", "300x30:int8"):
        with pytest.raises(ValueError):
            script.Budget.parse(bad)
    with pytest.raises(ValueError, match="budgets is empty"):
        script.Args(budgets=" ").budget_list  # noqa: B018


def test_realtime_budget_reports_every_budget_and_resumes(
    tiny_model, tiny_dataset, tmp_path, monkeypatch
):
    script = load("realtime_budget")
    args = script.Args(model=tiny_model, data=tiny_dataset, out=tmp_path / "out",
                       work=tmp_path / "work", budgets="8x2,4x1x2:bfloat16", pairs=2,
                       latency_plans=1,
                       threads=0, progress=False)  # fmt: skip
    result = script.main(args)
    assert result["reference"] == "8x2x2"
    assert [row["budget"] for row in result["rows"]] == ["8x2x2", "4x1x2:bfloat16"]
    for row in result["rows"]:
        assert 0.0 <= row["success_rate"] <= 1.0 and row["isolated_p50_s"] > 0
        assert isinstance(row["under_target"], bool) and isinstance(row["within_tolerance"], bool)
    assert result["rows"][0]["within_tolerance"]  # the reference is within its own tolerance
    assert result["recommended"] in (None, "8x2x2", "4x1x2:bfloat16")
    assert "| 4x1x2:bfloat16 | 4 |" in (tmp_path / "out" / "realtime_budget.md").read_text()

    def fail(*_args, **_kwargs):
        raise AssertionError("a cached budget was evaluated again")

    monkeypatch.setattr(script, "run_budget", fail)
    timed = {"isolated_p50_s", "isolated_p95_s", "under_target"}  # re-timed on every run

    def untimed(rows):
        return [{k: v for k, v in row.items() if k not in timed} for row in rows]

    assert untimed(script.main(args)["rows"]) == untimed(result["rows"])
