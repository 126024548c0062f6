"""Training: losses fall, checkpoints load, and an interrupted run resumes without losing work."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_config
from lewm_mpc import WorldModel
from lewm_mpc.models.run_dir import checkpoint_dir, committed_checkpoints
from lewm_mpc.training import TrainConfig, train

FAST = dict(
    batch_size=8,
    num_frames=3,
    val_every=10,
    val_batches=2,
    checkpoint_every=5,
    sigreg_projections=32,
    warmup_steps=2,
    bn_calibration_batches=4,
)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint_dir(run) / "model.safetensors"))


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


def test_bfloat16_training_keeps_float32_weights_and_learns(tiny_dataset, tmp_path):
    config = TrainConfig(steps=20, precision="bfloat16", **FAST)
    summary = train(tiny_dataset, tmp_path / "run", tiny_config(), config, progress=False)
    records = [
        json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    ]
    assert records[-1]["pred"] < records[0]["pred"]  # the prediction loss falls
    assert summary.val_loss == summary.val_loss  # not NaN
    weights = _weights(tmp_path / "run").values()
    assert {w.dtype for w in weights if w.is_floating_point()} == {torch.float32}
    # a run made in float32 is not resumed in bfloat16: the precision is part of its identity
    with pytest.raises(ValueError, match="precision: run has 'bfloat16', now 'float32'"):
        train(tiny_dataset, tmp_path / "run", tiny_config(), TrainConfig(steps=20, **FAST),
              progress=False)  # fmt: skip


@pytest.mark.slow  # compiling the step takes about a minute on a CPU
def test_compiled_training_matches_eager_and_resumes_without_it(tiny_dataset, tmp_path):
    import numpy as np

    from lewm_mpc.data import EpisodeDataset

    eager = TrainConfig(steps=6, **FAST)
    train(tiny_dataset, tmp_path / "eager", tiny_config(), eager, progress=False)
    compiled = dataclasses.replace(eager, compile=True)
    train(tiny_dataset, tmp_path / "compiled", tiny_config(), compiled, progress=False)

    def losses(run: Path) -> list[float]:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [record["loss"] for record in map(json.loads, lines) if "loss" in record]

    # the same step losses (float rounding apart); the weights are compared through what they
    # compute: biases right before a BatchNorm get no gradient, and Adam turns the rounding
    # noise of that zero into steps of either sign
    assert losses(tmp_path / "compiled") == pytest.approx(losses(tmp_path / "eager"), rel=1e-4)
    assert _weights(tmp_path / "eager").keys() == _weights(tmp_path / "compiled").keys()
    frames = torch.as_tensor(np.asarray(EpisodeDataset.load(tiny_dataset).pixels[:32]))
    with torch.no_grad():
        reference = WorldModel.load(tmp_path / "eager").encode(frames)
        torch.testing.assert_close(WorldModel.load(tmp_path / "compiled").encode(frames),
                                   reference, rtol=0, atol=1e-3)  # fmt: skip
    # compile is not part of the run's identity: the finished run is recognized without it
    assert train(tiny_dataset, tmp_path / "compiled", tiny_config(), eager,
                 progress=False).steps == 6  # fmt: skip


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
    weights = checkpoint_dir(tmp_path / "run") / "model.safetensors"
    before = weights.read_bytes()
    with pytest.raises(ValueError, match=r"train_config\.lr: run has 0\.001, now 0\.01"):
        train(
            tiny_dataset,
            tmp_path / "run",
            tiny_config(),
            TrainConfig(steps=5, lr=1e-2, **{k: v for k, v in FAST.items()}),
            progress=False,
        )
    assert weights.read_bytes() == before


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
    state = json.loads((checkpoint_dir(tmp_path / "run") / "train_state.json").read_text())
    interrupted_at = state["step"]
    assert 12 <= interrupted_at < steps
    assert WorldModel.load(tmp_path / "run").run_meta.step == interrupted_at

    for run_dir in ("run", "ref"):  # fresh processes: no state of the test process leaks in
        finished = [*command[:4], str(tmp_path / run_dir), str(steps)]
        subprocess.run(finished, cwd=tests_dir, check=True, capture_output=True, timeout=300)
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
        ({"precision": "float16"}, "precision must be one of float32, bfloat16"),
        ({"compile": "yes"}, "compile must be True or False"),
        ({"prefetch": 1}, "prefetch must be True, False or None"),
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


def test_a_finished_run_trains_further_with_more_steps(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_dataset, run, tiny_config(), TrainConfig(steps=5, **FAST), progress=False)
    summary = train(tiny_dataset, run, tiny_config(), TrainConfig(steps=8, **FAST), progress=False)
    assert summary.steps == 8 and WorldModel.load(run).run_meta.step == 8
    assert WorldModel.load(run).run_meta.training.steps == 8
    with pytest.raises(ValueError, match="already at step 8, past the 6 steps"):
        train(tiny_dataset, run, tiny_config(), TrainConfig(steps=6, **FAST), progress=False)


def test_only_the_newest_checkpoints_are_kept(tiny_dataset, tmp_path):
    config = TrainConfig(steps=12, **{**FAST, "checkpoint_every": 2, "keep_checkpoints": 3})
    train(tiny_dataset, tmp_path / "run", tiny_config(), config, progress=False)
    assert [step for step, _ in committed_checkpoints(tmp_path / "run")] == [8, 10, 12]
    assert [
        p.name for p in (tmp_path / "run/checkpoints").iterdir() if p.name.startswith(".")
    ] == []
    older = WorldModel.load(committed_checkpoints(tmp_path / "run")[0][1])  # any step loads
    assert older.run_meta.step == 8
    umask = os.umask(0)
    os.umask(umask)
    newest = committed_checkpoints(tmp_path / "run")[-1][1]  # what a dataset gets, not 0600
    for path in (newest, *newest.iterdir()):
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert stat.S_IMODE(path.stat().st_mode) == expected, path.name


def test_a_run_in_the_single_folder_layout_resumes_into_checkpoints(tiny_dataset, tmp_path):
    """Runs written before checkpoints/step-<N>/ (all files in the run folder) resume."""
    run = tmp_path / "run"
    train(tiny_dataset, run, tiny_config(), TrainConfig(steps=5, **FAST), progress=False)
    (folder,) = [f for _, f in committed_checkpoints(run)]
    for item in folder.iterdir():
        item.rename(run / item.name)
    for leftover in (run / "checkpoints").iterdir():
        leftover.rmdir()
    assert WorldModel.load(run).run_meta.step == 5  # the old layout loads
    reference = tmp_path / "ref"  # the same two sessions, in the current layout
    for run_dir in (run, reference):
        for steps in (5, 10):
            train(tiny_dataset, run_dir, tiny_config(), TrainConfig(steps=steps, **FAST),
                  progress=False)  # fmt: skip
    assert not (run / "config.json").exists()  # superseded by checkpoints/step-10
    resumed, expected = _weights(run), _weights(reference)
    assert all(torch.equal(resumed[k], expected[k]) for k in expected)


KILL_SCRIPT = """
import os, sys
import torch
torch.set_num_threads(int(sys.argv[4]))  # the test process's: bit-identical results
from conftest import tiny_config
from lewm_mpc.training import TrainConfig, train
import test_training as t
kill_after, commits = int(sys.argv[3]), [0]
def counted(real):
    def commit(*args, **kwargs):
        real(*args, **kwargs)
        commits[0] += 1
        if commits[0] == kill_after:
            os._exit(9)  # like kill -9: no cleanup, no finally
    return commit
os.replace, os.rename = counted(os.replace), counted(os.rename)
config = TrainConfig(**t.KILL_RUN, prefetch=sys.argv[5] == "prefetch")
train(sys.argv[1], sys.argv[2], tiny_config(), config, progress=False)
print(commits[0])
"""
KILL_RUN = dict(steps=4, **{**FAST, "checkpoint_every": 2, "keep_checkpoints": 1})


def _run_killed(
    dataset: Path, run: Path, kill_after: int, prefetch: bool = False
) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", KILL_SCRIPT, str(dataset), str(run), str(kill_after),
               str(torch.get_num_threads()), "prefetch" if prefetch else "-"]  # fmt: skip
    return subprocess.run(command, cwd=Path(__file__).parent, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def _assert_kill_then_resume_is_exact(
    dataset: Path, tmp_path: Path, kill_after: int, prefetch: bool = False
) -> None:
    """Killed and resumed (drawing batches ahead or not) = an uninterrupted run without."""
    run = tmp_path / f"killed-{kill_after}"
    killed = _run_killed(dataset, run, kill_after, prefetch)
    assert killed.returncode == 9, killed.stderr
    if checkpoint_dir(run) is not None:  # whatever was committed loads
        WorldModel.load(run)
    # resume and reference in fresh processes too: no state of the test process leaks in
    assert _run_killed(dataset, run, 0, prefetch).returncode == 0
    reference = tmp_path / "reference"
    if not reference.exists():
        assert _run_killed(dataset, reference, 0).returncode == 0
    resumed, expected = _weights(run), _weights(reference)
    assert all(torch.equal(resumed[k], expected[k]) for k in expected), kill_after
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4]
    assert [step for step, _ in committed_checkpoints(run)] == [4]


@pytest.mark.parametrize("kill_after", [2, 5, 11])  # a staged file, a commit, a prune
def test_a_kill_at_a_file_commit_resumes_bit_identically(tiny_dataset, tmp_path, kill_after):
    _assert_kill_then_resume_is_exact(tiny_dataset, tmp_path, kill_after)


def test_a_run_drawing_batches_ahead_resumes_as_one_that_does_not(tiny_dataset, tmp_path):
    # killed at the first checkpoint's commit, while the batch after it is drawn ahead: the
    # checkpoint holds the sampler's state before that batch, and the resumed run redraws it
    _assert_kill_then_resume_is_exact(tiny_dataset, tmp_path, 5, prefetch=True)


@pytest.mark.slow
def test_a_kill_after_every_single_file_commit_resumes_bit_identically(tiny_dataset, tmp_path):
    total = int(_run_killed(tiny_dataset, tmp_path / "count", 0).stdout.split()[-1])
    assert total >= 10  # two checkpoints of four files, their commits, a prune
    for kill_after in range(1, total + 1):
        _assert_kill_then_resume_is_exact(tiny_dataset, tmp_path, kill_after)


def _tensorboard_scalars(log_dir: Path) -> dict[str, list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_logs_the_curves_once_per_step_across_a_resume(tiny_dataset, tmp_path):
    board = tmp_path / "tb"
    train(tiny_dataset, tmp_path / "run", tiny_config(), TrainConfig(steps=10, **FAST),
          progress=False, tensorboard=board)  # fmt: skip
    scalars = _tensorboard_scalars(board)
    assert scalars["train/loss"] == list(range(1, 11))
    assert scalars["val/pred"] == [10] and "val/loss" in scalars
    train(tiny_dataset, tmp_path / "run", tiny_config(), TrainConfig(steps=15, **FAST),
          progress=False, tensorboard=board)  # fmt: skip
    assert _tensorboard_scalars(board)["train/loss"] == list(range(1, 16))


def test_the_state_loss_trains_a_head_and_resumes_exactly(tiny_dataset, tmp_path):
    """With state_loss_weight > 0 a linear head regresses each frame's task features from its
    embedding; its weights and optimizer state travel with the checkpoint."""
    from lewm_mpc.data import EpisodeDataset
    from lewm_mpc.training import Trainer, model_config_for

    dataset = EpisodeDataset.load(tiny_dataset)
    model_config = model_config_for(dataset, tiny_config(), "pixels")
    config = TrainConfig(steps=12, state_loss_weight=1.0, **FAST)
    whole = Trainer(tmp_path / "whole", dataset, model_config, config)
    assert whole.state_targets is not None and whole.state_targets.dim == 2  # Two-Room: agent xy
    whole.fit(progress=False)
    records = [
        json.loads(line) for line in (tmp_path / "whole/metrics.jsonl").read_text().splitlines()
    ]
    assert records[-1]["state"] < records[0]["state"]  # the head learns
    stopped = Trainer(tmp_path / "resumed", dataset, model_config, config)
    for _ in range(7):
        stopped.train_step()
    stopped.save()
    Trainer(tmp_path / "resumed", dataset, model_config, config).fit(progress=False)
    first, second = _weights(tmp_path / "whole"), _weights(tmp_path / "resumed")
    assert all(torch.equal(first[k], second[k]) for k in first)
