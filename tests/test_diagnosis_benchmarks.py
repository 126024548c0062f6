"""Tiny-budget smoke runs of the diagnosis and shipping scripts: each runs end to end, writes its
results, and (where resumable) a rerun reuses what is done."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from conftest import load_benchmark, tiny_config
from lewm_mpc.data.collection import collect_dataset
from lewm_mpc.evaluation import evaluate_pairs
from lewm_mpc.training import TrainConfig, train


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_dataset) -> Path:
    """A work folder as ``env_success.py`` leaves it: ``data.h5`` and a trained ``model/``."""
    work = tmp_path_factory.mktemp("work")
    shutil.copy(tiny_dataset, work / "data.h5")
    config = TrainConfig(steps=6, batch_size=8, num_frames=3, val_every=6, checkpoint_every=6,
                         sigreg_projections=16, bn_calibration_batches=2)  # fmt: skip
    train(work / "data.h5", work / "model", tiny_config(), config, progress=False)
    return work


def _run(monkeypatch: pytest.MonkeyPatch, name: str, argv: list[str]) -> None:
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *argv])
    load_benchmark(name).main()


def test_diagnose_runs_the_oracle_and_the_model_and_resumes(tiny_run, tmp_path, monkeypatch):
    argv = ["--env", "tworoom", "--work", str(tiny_run), "--out", str(tmp_path), "--pairs", "1",
            "--samples", "4", "--iterations", "1", "--topk", "2", "--workers", "1"]  # fmt: skip
    _run(monkeypatch, "diagnose", argv)
    result = json.loads((tmp_path / "diagnosis_tworoom.json").read_text())
    assert result["oracle"]["pairs"] == 1 and result["learned"]["pairs"] == 1
    assert set(result["probe"]["r2_per_output"]) == {"linear", "mlp"}
    log = (tiny_run / "diagnosis" / "jobs.jsonl").read_text()
    _run(monkeypatch, "diagnose", argv)  # every job is done: nothing runs again
    assert (tiny_run / "diagnosis" / "jobs.jsonl").read_text() == log
    assert "| tworoom" in (tmp_path / "diagnosis.md").read_text()


def test_bn_calibration_compares_a_model_with_its_calibrated_copy(tiny_run, tmp_path, monkeypatch):
    _run(monkeypatch, "bn_calibration", ["--env", "tworoom", "--work", str(tiny_run), "--out",
                                         str(tmp_path), "--pairs", "1", "--samples", "10",
                                         "--iterations", "1", "--batches", "2"])  # fmt: skip
    result = json.loads((tmp_path / "bn_calibration_tworoom.json").read_text())
    assert result["as_saved"]["pairs"] == result["calibrated"]["pairs"] == 1
    assert (tiny_run / "model_calibrated" / "config.json").exists()


def test_export_pretrained_writes_a_loadable_model_with_its_card(tiny_run, tmp_path, monkeypatch):
    import lewm_mpc as lm
    from lewm_mpc.models.pretrained import read_card

    monkeypatch.setenv("LEWM_MPC_PRETRAINED_DIR", str(tmp_path))
    script = load_benchmark("export_pretrained")
    measured: list[dict[str, torch.Tensor]] = []  # the weights the card's success comes from

    def spy(planner, *args, **kwargs):
        measured.append({name: t.clone() for name, t in planner.model.state_dict().items()})
        return evaluate_pairs(planner, *args, **kwargs)

    monkeypatch.setattr(script, "evaluate_pairs", spy)
    monkeypatch.setattr(sys, "argv", ["export_pretrained.py", "--env", "tworoom", "--work",
                                      str(tiny_run), "--pairs", "1", "--batches", "2"])  # fmt: skip
    script.main()
    card = read_card("pretrained:tworoom")
    assert card is not None and card.eval_pairs == 1 and card.data_policy == "scripted"
    shipped = lm.WorldModel.load("pretrained:tworoom")
    assert shipped.run_meta.env_id == "lewm_mpc/TwoRoom-v0"
    # The success on the card is the float16 weights', not the float32 model's it came from.
    weights = shipped.state_dict()
    assert all(torch.equal(measured[0][name], weights[name]) for name in weights)
    trained = lm.WorldModel.load(tiny_run / "model")
    assert any(not torch.equal(p, weights[name]) for name, p in trained.named_parameters())


def test_pusht_angle_visibility_reports_r2(tmp_path, monkeypatch):
    pytest.importorskip("gym_pusht")
    data = collect_dataset("pusht", tmp_path / "pusht.h5", 12, 20, seed=0, progress=False)
    _run(monkeypatch, "pusht_angle_visibility", ["--data", str(data), "--out", str(tmp_path),
                                                 "--steps", "2", "--batch-size", "8",
                                                 "--val-frames", "16"])  # fmt: skip
    result = json.loads((tmp_path / "pusht_angle_visibility.json").read_text())
    assert len(result["r2_cos_sin"]) == 2 and result["steps"] == 2
