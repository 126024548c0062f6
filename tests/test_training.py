"""Training: losses fall, checkpoints load, and an interrupted run resumes without losing work."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_config
from lewm_mpc import WorldModel
from lewm_mpc.training import TrainConfig, train

FAST = dict(
    batch_size=8,
    num_frames=3,
    val_every=10,
    val_batches=2,
    checkpoint_every=5,
    sigreg_projections=32,
    warmup_steps=2,
)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


def test_training_writes_a_loadable_checkpoint_and_metrics(tiny_dataset, tmp_path):
    summary = train(
        tiny_dataset, tmp_path / "run", tiny_config(), TrainConfig(steps=20, **FAST), progress=False
    )
    assert summary.steps == 20 and summary.val_loss == summary.val_loss  # not NaN
    records = [
        json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in records] == list(range(1, 21))
    assert {"val_loss", "val_pred"} <= records[-1].keys()
    model = WorldModel.load(tmp_path / "run")
    assert model.run_meta.env_id == "lewm_mpc/TwoRoom-v0" and model.run_meta.step == 20
    assert model.run_meta.dataset.path == str(tiny_dataset)
    assert model.run_meta.split.val_fraction == 0.1 and model.run_meta.training.steps == 20
    assert model.action_std.min() > 0  # action statistics travel with the checkpoint


def test_validation_skips_a_single_window_remainder(tiny_dataset, tmp_path):
    # batch 5 over the validation windows leaves remainders; none may reach SIGReg alone
    config = TrainConfig(steps=3, **{**FAST, "batch_size": 5, "val_every": 3, "val_batches": 50})
    summary = train(tiny_dataset, tmp_path / "run", tiny_config(), config, progress=False)
    assert summary.val_loss == summary.val_loss  # finite, not NaN


def test_rerunning_a_finished_run_trains_nothing(tiny_dataset, tmp_path):
    config = TrainConfig(steps=5, **FAST)
    train(tiny_dataset, tmp_path / "run", tiny_config(), config, progress=False)
    before = _weights(tmp_path / "run")
    summary = train(tiny_dataset, tmp_path / "run", tiny_config(), config, progress=False)
    assert summary.steps == 5
    after = _weights(tmp_path / "run")
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_different_config_is_refused_and_the_run_left_intact(tiny_dataset, tmp_path):
    train(
        tiny_dataset, tmp_path / "run", tiny_config(), TrainConfig(steps=5, **FAST), progress=False
    )
    before = (tmp_path / "run/model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="different model/training config"):
        train(
            tiny_dataset,
            tmp_path / "run",
            tiny_config(),
            TrainConfig(steps=5, lr=1e-2, **{k: v for k, v in FAST.items()}),
            progress=False,
        )
    assert (tmp_path / "run/model.safetensors").read_bytes() == before


SCRIPT = """
import sys
from conftest import tiny_config
from lewm_mpc.training import TrainConfig, train
import test_training as t
train(sys.argv[1], sys.argv[2], tiny_config(), TrainConfig(steps=int(sys.argv[3]), **t.FAST),
      progress=False)
"""


def test_killed_run_resumes_and_matches_an_uninterrupted_one(tiny_dataset, tmp_path):
    """SIGINT mid-run: the run saves its completed steps; the rerun finishes bit-identically."""
    steps = 60
    tests_dir = str(Path(__file__).parent)
    command = [sys.executable, "-c", SCRIPT, str(tiny_dataset), str(tmp_path / "run"), str(steps)]
    process = subprocess.Popen(command, cwd=tests_dir, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "run/metrics.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 12:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0, "the run finished before it could be interrupted"
    assert "KeyboardInterrupt" in stderr
    state = json.loads((tmp_path / "run/train_state.json").read_text())
    interrupted_at = state["step"]
    assert 12 <= interrupted_at < steps
    assert WorldModel.load(tmp_path / "run").run_meta.step == interrupted_at

    train(
        tiny_dataset,
        tmp_path / "run",
        tiny_config(),
        TrainConfig(steps=steps, **FAST),
        progress=False,
    )
    train(
        tiny_dataset,
        tmp_path / "ref",
        tiny_config(),
        TrainConfig(steps=steps, **FAST),
        progress=False,
    )
    resumed, reference = _weights(tmp_path / "run"), _weights(tmp_path / "ref")
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)
    logged = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert logged == list(range(1, steps + 1))  # no gap and no duplicate around the restart


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"steps": 0}, "steps"),
        ({"num_frames": 1}, "num_frames"),
        ({"val_fraction": 1.0}, "val_fraction"),
    ],
)
def test_invalid_train_configs(fields, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**fields)


def test_batchnorm_calibration_matches_the_statistics_of_the_current_weights(
    tiny_dataset, tmp_path
):
    import numpy as np

    from lewm_mpc.data import EpisodeDataset, WindowSampler
    from lewm_mpc.training import calibrate_batchnorm

    train(tiny_dataset, tmp_path / "run", tiny_config(), TrainConfig(steps=20, **FAST),
          progress=False)  # fmt: skip
    model = WorldModel.load(tmp_path / "run")
    dataset = EpisodeDataset.load(tiny_dataset)
    ids = np.arange(dataset.num_episodes)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert norms

    def normalized_input_stats() -> list[tuple[float, float]]:
        """Per BatchNorm: mean |mean| and mean std of its input normalized by its running
        statistics, in eval mode, on a fresh batch."""
        inputs: list[torch.Tensor] = []
        hooks = [norm.register_forward_hook(lambda m, x, y: inputs.append(x[0])) for norm in norms]
        model.eval()
        batch = WindowSampler(dataset, ids, 3, model.action_block, 32, "pixels", seed=9).sample()
        with torch.no_grad():
            model.loss(torch.as_tensor(batch.obs), torch.as_tensor(batch.actions))
        for hook in hooks:
            hook.remove()
        stats = []
        for norm, x in zip(norms, inputs, strict=True):
            z = (x - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)  # (N, P)
            stats.append((z.mean(0).abs().mean().item(), z.std(0).mean().item()))
        return stats

    def calibrated_well(stats: list[tuple[float, float]]) -> bool:
        return all(mean < 0.5 and 0.5 < std < 2.0 for mean, std in stats)

    assert calibrated_well(normalized_input_stats())  # checkpoints are saved calibrated
    for norm in norms:  # stale statistics, as a lagging momentum average leaves them
        norm.running_mean.add_(3.0)
        norm.running_var.mul_(0.05)
    assert not calibrated_well(normalized_input_stats())
    rng_before = torch.get_rng_state()
    sampler = WindowSampler(dataset, ids, 3, model.action_block, 16, "pixels", seed=2)
    calibrate_batchnorm(model, sampler, batches=8)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the training RNG is untouched
    assert calibrated_well(normalized_input_stats())
    assert all(norm.momentum == 0.1 for norm in norms)
    assert not model.training  # left in the mode it was in
