"""Training loop: prediction loss + lambda * SIGReg, with validation, checkpoints and resume.

A run directory holds its newest checkpoints (``checkpoints/step-<N>/``, each the world model,
``config.json`` + ``model.safetensors``, and the resume state, ``train_state.json`` +
``train_state.safetensors``: optimizer, step, RNG states) and a ``metrics.jsonl`` log.
``WorldModel.load(run_dir)`` loads the newest checkpoint. A checkpoint is committed as one unit
(:mod:`lewm_mpc.models.run_dir`), so a kill at any instant leaves a run that loads and resumes,
and Ctrl-C saves the completed steps before exiting (at a step boundary): an interrupted run
resumes exactly where it stopped (bit-identical on CPU). A second Ctrl-C aborts at once,
keeping the last checkpoint. Rerunning a finished run with more ``steps`` trains it further
(the learning-rate schedule stretched to the new length).

Under ``torchrun`` (:mod:`lewm_mpc.distributed`) the same loop runs data-parallel: each process
draws ``batch_size / N`` windows from its shard of the training episodes, gradients are averaged
by ``DistributedDataParallel``, SIGReg and the projectors' BatchNorm see the global batch, so the
objective is the one a single process computes on the concatenated batch. Rank 0 validates,
logs and commits checkpoints; a run resumes on any number of processes (bit-identically on the
same number).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from lewm_mpc import distributed
from lewm_mpc.atomic import atomic_write, defer_interrupts, graceful_interrupts
from lewm_mpc.data import EpisodeDataset, WindowSampler, action_stats
from lewm_mpc.data.windows import WindowBatch
from lewm_mpc.models.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    file_sha256,
    load_tensors_checked,
    read_json,
    save_tensors_atomic,
)
from lewm_mpc.models.config import WorldModelConfig
from lewm_mpc.models.device import resolve_device
from lewm_mpc.models.jepa import WorldModel
from lewm_mpc.models.run_dir import (
    checkpoint_dir,
    prune_checkpoints,
    remove_staging,
    staged_checkpoint,
)
from lewm_mpc.models.run_meta import DatasetRef, RunMeta, SplitMeta, TrainingMeta
from lewm_mpc.models.sigreg import SIGRegConfig
from lewm_mpc.state_targets import StateTargets
from lewm_mpc.tensorboard import TensorBoardLog
from lewm_mpc.types import ObsMode

STATE_JSON = "train_state.json"
STATE_TENSORS = "train_state.safetensors"
METRICS = "metrics.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """Optimization settings (CPU defaults; LeWM used lr 5e-5, batch 128 on a GPU).

    Attributes:
        steps: optimizer steps.
        batch_size: windows per step (each window has ``num_frames`` frames); with N
            processes, the global batch (N must divide it).
        num_frames: frames per window T (T - 1 teacher-forced transitions).
        lr: peak AdamW learning rate (linear warm-up, cosine decay to 10%).
        warmup_steps: warm-up length.
        weight_decay: AdamW weight decay.
        grad_clip: max gradient norm.
        sigreg_weight: lambda.
        sigreg_projections: random directions per step.
        sigreg_knots: quadrature knots on [0, 3].
        state_loss_weight: weight of an auxiliary loss asking a linear head on every embedding
            to regress its frame's z-scored task features (:mod:`lewm_mpc.state_targets`);
            0 (default, LeWorldModel's objective) trains without it.
        val_fraction: share of episodes held out (split by episode).
        val_every: steps between validation passes (and the final step).
        val_batches: batches per validation pass.
        checkpoint_every: steps between checkpoints (and the final step).
        keep_checkpoints: committed checkpoints kept in the run folder (the newest).
        bn_calibration_batches: training batches over which every BatchNorm's running statistics
            are recomputed (a plain average, no momentum) before each validation pass and each
            checkpoint, so eval mode (planning) normalizes with the statistics of the current
            weights; 0 keeps the momentum averages.
        seed: seeds model init, window sampling and SIGReg directions.
        device: "auto" (CUDA if available), "cpu" or "cuda[:i]".
    """

    steps: int = 3000
    batch_size: int = 64
    num_frames: int = 4
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 1e-3
    grad_clip: float = 1.0
    sigreg_weight: float = 0.09
    sigreg_projections: int = 256
    sigreg_knots: int = 17
    state_loss_weight: float = 0.0
    val_fraction: float = 0.1
    val_every: int = 500
    val_batches: int = 8
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    bn_calibration_batches: int = 32
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.bn_calibration_batches < 0:
            raise ValueError(
                f"bn_calibration_batches must be >= 0, got {self.bn_calibration_batches}"
            )
        for name in ("steps", "val_every", "val_batches", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError(
                f"batch_size must be >= 2 (SIGReg compares samples), got {self.batch_size}"
            )
        if self.num_frames < 2:
            raise ValueError(
                f"num_frames must be >= 2 (a frame and its successor), got {self.num_frames}"
            )
        if not self.lr > 0 or self.warmup_steps < 0 or self.weight_decay < 0:
            raise ValueError("need lr > 0, warmup_steps >= 0, weight_decay >= 0")
        if not self.grad_clip > 0 or self.sigreg_weight < 0 or self.state_loss_weight < 0:
            raise ValueError("need grad_clip > 0, sigreg_weight >= 0 and state_loss_weight >= 0")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")

    def learning_rate(self, step: int) -> float:
        """Schedule: linear warm-up then cosine decay to 10% of ``lr``."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        return self.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress))))


@dataclass(frozen=True)
class TrainSummary:
    """What a finished (or already complete) run reports; ``seconds`` is the total training
    time, summed over resumed sessions."""

    run_dir: Path
    steps: int
    train_loss: float
    val_loss: float
    val_prediction: float
    seconds: float
    num_parameters: int


def model_config_for(
    dataset: EpisodeDataset, base: WorldModelConfig, obs_mode: ObsMode
) -> WorldModelConfig:
    """Fill the data-dependent fields: observation kind and size, action dim and bounds (from
    the dataset's meta).

    Raises:
        ValueError: The dataset records no action bounds, or the model's ``action_block`` is not
            a multiple of the dataset's (rows recorded in blocks cannot be split).
    """
    low, high = dataset.meta.action_bounds()
    if base.action_block % dataset.action_block:
        raise ValueError(
            f"the model's action_block {base.action_block} must be a multiple of the dataset's "
            f"{dataset.action_block} (env actions per row)"
        )
    if obs_mode == "pixels":
        image = dataset.image_shape
        fields: dict[str, Any] = {"obs_mode": "pixels", "image_size": image[0]}
    else:
        fields = {"obs_mode": "state", "state_dim": dataset.state_dim}
    return dataclasses.replace(
        base, action_dim=len(low), action_low=low, action_high=high, **fields
    )


# TrainConfig fields a resumed run may change: they do not alter the steps already taken.
RESUMABLE_CHANGES = ("steps", "keep_checkpoints")


def _normalized_identity(identity: Any) -> Any:
    """A stored run identity with its model config in the current spelling (``obs_kind`` of
    earlier runs read as ``obs_mode``), so runs started before the rename still resume."""
    if isinstance(identity, dict) and isinstance(identity.get("model_config"), dict):
        config = WorldModelConfig.from_dict(identity["model_config"]).to_dict()
        identity = {**identity, "model_config": json.loads(json.dumps(config))}
    if isinstance(identity, dict) and isinstance(identity.get("train_config"), dict):
        # fields added since: their value in older runs
        added = {"bn_calibration_batches": 0, "state_loss_weight": 0.0}
        train_config = {**added, **identity["train_config"]}
        for name in RESUMABLE_CHANGES:
            train_config.pop(name, None)
        identity = {**identity, "train_config": train_config}
    return identity


def identity_differences(stored: Any, current: Any, prefix: str = "") -> list[str]:
    """``"field: run has A, now B"`` for each leaf where two run identities differ."""
    if isinstance(stored, dict) and isinstance(current, dict):
        lines = []
        for key in sorted(set(stored) | set(current), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in stored or key not in current:
                lines.append(f"{name}: only in the {'run' if key in stored else 'new settings'}")
            else:
                lines.extend(identity_differences(stored[key], current[key], name))
        return lines
    return [] if stored == current else [f"{prefix}: run has {stored!r}, now {current!r}"]


class _BatchSource(Protocol):
    def sample(self) -> WindowBatch: ...


@dataclass(frozen=True)
class _ProcessSlice:
    """This process's slice of each batch a sampler draws alike in every process."""

    sampler: WindowSampler
    group: distributed.ProcessGroup

    def sample(self) -> WindowBatch:
        batch = self.sampler.sample()
        size = batch.obs.shape[0] // self.group.world_size
        part = slice(self.group.rank * size, (self.group.rank + 1) * size)
        return WindowBatch(batch.obs[part], batch.actions[part], batch.rows[part])


@torch.no_grad()
def calibrate_batchnorm(model: WorldModel, sampler: _BatchSource, batches: int) -> None:
    """Recompute every BatchNorm's running statistics as the plain average over ``batches``
    training batches (train-mode forward passes without gradients or dropout).

    The momentum averages that training leaves lag behind the weights; when the embedding
    statistics move quickly (a high learning rate), eval mode, which planning uses, normalizes
    with stale statistics and predicts badly. The global torch RNG is left untouched.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or batches < 1:
        return
    was_training = model.training
    momenta = [norm.momentum for norm in norms]
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[]):
        for _ in range(batches):
            batch = sampler.sample()
            obs = torch.as_tensor(batch.obs, device=device)  # (B, T, *obs_shape)
            flat = obs.reshape(obs.shape[0] * obs.shape[1], *obs.shape[2:])  # (B*T, *obs)
            z = model.encode(flat).reshape(obs.shape[0], obs.shape[1], -1)  # (B, T, D)
            actions = torch.as_tensor(batch.actions, device=device)
            model.predict(z[:, :-1], model.embed_actions(actions[:, :-1]))
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.train(was_training)


class _Objective(torch.nn.Module):
    """The training loss as a module's forward, so DistributedDataParallel can wrap it: the
    world model's, plus ``state_weight`` x the state head's MSE when there is a head."""

    def __init__(
        self,
        model: WorldModel,
        weight: float,
        config: SIGRegConfig,
        generator: torch.Generator,
        state_head: torch.nn.Linear | None = None,
        state_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.model, self.state_head = model, state_head
        self.weight, self.config, self.generator = weight, config, generator
        self.state_weight = state_weight

    def forward(
        self, obs: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        terms = self.model.loss(obs, actions, self.weight, self.config, self.generator)
        state = terms.total.new_zeros(())
        if self.state_head is not None and targets is not None:
            assert terms.latents is not None
            state = (self.state_head(terms.latents) - targets).pow(2).mean()  # over (B, T, F)
        return terms.total + self.state_weight * state, terms.prediction, terms.sigreg, state


def _shard_seed(seed: int, group: distributed.ProcessGroup, step: int) -> int:
    """Sampler seed of one process: the run seed for one process from the start (as before
    multi-process training existed), else a hash of (seed, processes, rank, step)."""
    if not group.distributed and step == 0:
        return seed
    sequence = np.random.SeedSequence([seed, group.world_size, group.rank, step])
    return int(sequence.generate_state(1)[0])


class Trainer:
    """Owns the model, optimizer, samplers and RNGs of one run directory (of this process's
    part of it under torch.distributed)."""

    def __init__(
        self,
        run_dir: str | Path,
        dataset: EpisodeDataset,
        model_config: WorldModelConfig,
        config: TrainConfig,
        obs_mode: ObsMode = "pixels",
        dataset_ref: DatasetRef | None = None,
        tensorboard: str | Path | None = None,
    ) -> None:
        """Build the model, optimizer and samplers (nothing is read or written yet).

        Args:
            run_dir: Output folder.
            dataset: The episodes.
            model_config: Full architecture (see :func:`model_config_for`).
            config: Optimization settings.
            obs_mode: ``"pixels"`` or ``"state"``.
            dataset_ref: The dataset file (path and hash), recorded in the checkpoint.
            tensorboard: Also log the metrics as TensorBoard events in this folder.
        """
        self.run_dir = Path(run_dir)
        self.tensorboard = tensorboard
        self.config = config
        self.dataset = dataset
        self.obs_mode = obs_mode
        self.group = group = distributed.current()
        self.device = distributed.device_for(resolve_device(config.device), group)
        if config.batch_size % group.world_size or config.batch_size // group.world_size < 2:
            raise ValueError(
                f"batch_size {config.batch_size} must be a multiple of the {group.world_size} "
                "processes, with at least 2 windows per process"
            )
        torch.manual_seed(config.seed)  # the same initial weights in every process
        self.model = WorldModel(model_config).to(self.device)
        train_ids, val_ids = dataset.split(config.val_fraction, seed=config.seed)
        mean, std = action_stats(dataset, train_ids)
        self.model.set_action_stats(torch.as_tensor(mean), torch.as_tensor(std))
        block = model_config.action_block // dataset.action_block  # rows per model step
        shard = train_ids[group.rank :: group.world_size]  # this process's episodes
        if shard.size == 0:
            raise ValueError(
                f"{train_ids.size} training episodes cannot be shared by {group.world_size} "
                "processes; use fewer processes"
            )
        self._local_batch = config.batch_size // group.world_size
        self._shard = shard
        self.train_sampler = WindowSampler(
            dataset, shard, config.num_frames, block, self._local_batch, obs_mode,
            _shard_seed(config.seed, group, 0),
        )  # fmt: skip
        self.val_sampler = WindowSampler(
            dataset, val_ids, config.num_frames, block, config.batch_size, obs_mode,
            config.seed + 1,
        )  # fmt: skip
        self._train_ids, self._block = train_ids, block
        self.state_targets: StateTargets | None = None
        self.state_head: torch.nn.Linear | None = None
        if config.state_loss_weight > 0:
            self.state_targets = StateTargets.from_dataset(dataset, train_ids)
            self.state_head = torch.nn.Linear(model_config.latent_dim, self.state_targets.dim)
            self.state_head.to(self.device)
        head_parameters = [] if self.state_head is None else list(self.state_head.parameters())
        self.optimizer = torch.optim.AdamW(
            [*self.model.parameters(), *head_parameters], lr=config.lr,
            weight_decay=config.weight_decay,
        )  # fmt: skip
        self.sigreg_config = SIGRegConfig(config.sigreg_projections, config.sigreg_knots)
        # Seeded alike in every process: all draw the same SIGReg directions at each step.
        self.sigreg_gen = torch.Generator(device=self.device).manual_seed(config.seed + 2)
        objective = _Objective(
            self.model, config.sigreg_weight, self.sigreg_config, self.sigreg_gen,
            self.state_head, config.state_loss_weight,
        )  # fmt: skip
        self.objective: torch.nn.Module = objective
        if group.distributed:  # buffers stay equal: BatchNorm statistics span every process
            self.objective = DistributedDataParallel(
                objective, device_ids=[self.device] if self.device.type == "cuda" else None,
                forward_sync_buffers=False,
            )  # fmt: skip
            torch.manual_seed(_shard_seed(config.seed, group, 0))  # dropout differs per process
        self.step = 0
        self.train_seconds = 0.0  # accumulated over sessions (resumes included)
        self._session_start = time.perf_counter()
        self.model.run_meta = RunMeta(
            obs_mode=model_config.obs_mode,  # type: ignore[arg-type]
            env_id=dataset.meta.env_id,
            env_config=dataset.meta.env_config,
            dataset=dataset_ref,
            split=SplitMeta(config.val_fraction, config.seed, tuple(int(i) for i in val_ids)),
            training=TrainingMeta.from_config(config),
        )

    # ------------------------------------------------------------------------ training
    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device, non_blocking=True)

    def train_step(self) -> dict[str, float]:
        """One optimizer step; returns its losses."""
        self.model.train()
        batch = self.train_sampler.sample()
        lr = self.config.learning_rate(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        targets = None
        if self.state_targets is not None:
            frames = batch.obs.shape[1]
            targets = self._to_device(
                self.state_targets.for_windows(self.dataset, batch.rows, frames, self._block)
            )  # (B, T, F)
        total, prediction, regularizer, state = self.objective(
            self._to_device(batch.obs), self._to_device(batch.actions), targets
        )
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()  # under DDP: gradients averaged over the processes
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.step += 1
        return {
            "loss": total.item(),  # this process's batch: fit() averages over processes
            "pred": prediction.item(),
            "sigreg": regularizer.item(),
            **({} if self.state_head is None else {"state": state.item()}),
            "grad_norm": float(grad_norm),
            "lr": lr,
        }

    def calibrate(self) -> None:
        """:func:`calibrate_batchnorm` on windows drawn with a seed of (run seed, step), so a
        resumed run calibrates exactly as an uninterrupted one."""
        cfg = self.config
        if cfg.bn_calibration_batches == 0:
            return
        sampler = WindowSampler(
            self.dataset, self._train_ids, cfg.num_frames, self._block, cfg.batch_size,
            self.obs_mode, seed=(cfg.seed + 4) * 1_000_003 + self.step,
        )  # fmt: skip
        # Several processes: each takes its slice of the same batches, and the BatchNorms
        # average over the global batch, so the statistics match one process's.
        source = _ProcessSlice(sampler, self.group) if self.group.distributed else sampler
        calibrate_batchnorm(self.model, source, cfg.bn_calibration_batches)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean losses over ``val_batches`` validation batches (eval mode, fixed SIGReg RNG).

        The same numbers at any process count: SIGReg over each validation batch itself, so
        one process (rank 0) can validate alone."""
        self.model.eval()
        gen = torch.Generator(device=self.device).manual_seed(self.config.seed + 3)
        totals = {"val_loss": 0.0, "val_pred": 0.0, "val_sigreg": 0.0}
        count = 0
        for batch in self.val_sampler.iterate_epoch():
            if batch.obs.shape[0] < 2:  # a 1-window remainder: SIGReg needs two samples
                continue
            terms = self.model.loss(
                self._to_device(batch.obs), self._to_device(batch.actions),
                self.config.sigreg_weight, self.sigreg_config, gen, global_batch=False,
            )  # fmt: skip
            totals["val_loss"] += terms.total.item()
            totals["val_pred"] += terms.prediction.item()
            totals["val_sigreg"] += terms.sigreg.item()
            count += 1
            if count >= self.config.val_batches:
                break
        if count == 0:  # fewer than two validation windows: nothing to measure
            return dict.fromkeys(totals, float("nan"))
        return {k: v / count for k, v in totals.items()}

    # ---------------------------------------------------------------------- persistence
    def _identity(self) -> dict[str, Any]:
        return {
            "model_config": self.model.config.to_dict(),
            "train_config": dataclasses.asdict(self.config),
            "obs_key": self.obs_mode,
            "dataset": {
                "env_id": self.dataset.meta.env_id,
                "rows": self.dataset.num_rows,
                "episodes": self.dataset.num_episodes,
            },
        }

    def save(self) -> None:
        """Commit a checkpoint, model + resume state, as one unit (Ctrl-C held until done);
        prune the older ones. Every process calls it; rank 0 writes what all of them hold."""
        per_process = distributed.gather_objects(
            {"sampler": self.train_sampler.state_dict(), "rng": torch.get_rng_state()}
        )  # rank order
        if not self.group.is_main:
            distributed.barrier()  # until rank 0 has committed the checkpoint
            return
        tensors: dict[str, torch.Tensor] = {
            "rng.sigreg": self.sigreg_gen.get_state(),
            "rng.torch": torch.get_rng_state(),
        }
        if self.state_head is not None:
            tensors["state_head.weight"] = self.state_head.weight.detach()
            tensors["state_head.bias"] = self.state_head.bias.detach()
        if self.group.distributed:
            for rank, part in enumerate(per_process):
                tensors[f"rng.torch.{rank}"] = part["rng"]
        opt_state = self.optimizer.state_dict()
        for index, per_param in opt_state["state"].items():
            for key, value in per_param.items():
                tensors[f"opt.{index}.{key}"] = torch.as_tensor(value)
        now = time.perf_counter()
        self.train_seconds += now - self._session_start
        self._session_start = now
        with defer_interrupts():
            self.model.run_meta = dataclasses.replace(
                self.model.run_meta, step=self.step, train_seconds=round(self.train_seconds, 2)
            )
            with staged_checkpoint(self.run_dir, self.step) as folder:
                self.model.save(folder)
                sha = save_tensors_atomic(tensors, folder / STATE_TENSORS)
                state = {
                    "step": self.step,
                    "identity": self._identity(),
                    "param_groups": opt_state["param_groups"],
                    "sampler": self.train_sampler.state_dict(),
                    "tensors_sha256": sha,
                    "processes": self.group.world_size,
                    "process_samplers": [part["sampler"] for part in per_process],
                }
                with atomic_write(folder / STATE_JSON) as tmp:
                    tmp.write_text(json.dumps(state, indent=1))
            prune_checkpoints(self.run_dir, self.config.keep_checkpoints)
            for name in (CONFIG_FILE, WEIGHTS_FILE, STATE_JSON, STATE_TENSORS):
                (self.run_dir / name).unlink(missing_ok=True)  # a superseded older-layout run
        distributed.barrier()

    def try_resume(self) -> bool:
        """Restore from the newest checkpoint of ``run_dir`` if it holds one; refuse other
        settings (naming the fields that differ) and a run already past ``config.steps``.

        A run saved by the same number of processes resumes each process's sampler and RNG
        states (bit-identical continuation); another number reseeds them from the step."""
        if self.group.is_main:
            remove_staging(self.run_dir)  # what a kill while committing or pruning left
            prune_checkpoints(self.run_dir, self.config.keep_checkpoints)
        distributed.barrier()  # the others read only after the clean-up
        folder = checkpoint_dir(self.run_dir)
        if folder is None:
            return False
        path = folder / STATE_JSON
        if not path.exists():
            raise ValueError(
                f"{folder} holds a model checkpoint but no resume state; pick another output "
                "folder (nothing was overwritten)"
            )
        state = read_json(path, "training state")
        stored = _normalized_identity(state.get("identity"))
        current = _normalized_identity(json.loads(json.dumps(self._identity())))
        if stored != current:
            differences = identity_differences(stored, current)
            raise ValueError(
                f"{self.run_dir} holds a run with other settings ({'; '.join(differences[:3])}"
                f"{'; ...' if len(differences) > 3 else ''}); pass the same settings to resume "
                "it, or choose another output folder (nothing was overwritten)"
            )
        if int(state["step"]) > self.config.steps:
            raise ValueError(
                f"{self.run_dir} is already at step {state['step']}, past the {self.config.steps} "
                f"steps asked for; pass steps >= {state['step']} to train it further, or choose "
                "another output folder (nothing was overwritten)"
            )
        tensors = load_tensors_checked(folder / STATE_TENSORS, state.get("tensors_sha256"))
        restored = WorldModel.load(folder, self.device)
        self.model.load_state_dict(restored.state_dict())
        opt_state: dict[str, Any] = {"state": {}, "param_groups": state["param_groups"]}
        for name, value in tensors.items():
            if name.startswith("opt."):
                _, index, key = name.split(".", 2)
                opt_state["state"].setdefault(int(index), {})[key] = value.to(self.device)
        try:
            self.optimizer.load_state_dict(opt_state)
        except (ValueError, KeyError) as error:
            raise CheckpointError(
                f"optimizer state in {self.run_dir} is unusable: {error}"
            ) from None
        self.sigreg_gen.set_state(tensors["rng.sigreg"])
        if self.state_head is not None:
            with torch.no_grad():
                self.state_head.weight.copy_(tensors["state_head.weight"])
                self.state_head.bias.copy_(tensors["state_head.bias"])
        self.step = int(state["step"])
        self._restore_process_state(state, tensors)
        self.train_seconds = restored.run_meta.train_seconds
        return True

    def _restore_process_state(
        self, state: dict[str, Any], tensors: dict[str, torch.Tensor]
    ) -> None:
        """This process's window sampler and torch RNG: as saved when the run had as many
        processes, else reseeded from (seed, processes, rank, step)."""
        group = self.group
        if int(state.get("processes", 1)) != group.world_size:
            seed = _shard_seed(self.config.seed, group, self.step)
            self.train_sampler = WindowSampler(
                self.dataset, self._shard, self.config.num_frames, self._block,
                self._local_batch, self.obs_mode, seed,
            )  # fmt: skip
            torch.manual_seed(seed)
        elif group.distributed:
            self.train_sampler.load_state_dict(state["process_samplers"][group.rank])
            torch.set_rng_state(tensors[f"rng.torch.{group.rank}"])
        else:
            self.train_sampler.load_state_dict(state["sampler"])
            torch.set_rng_state(tensors["rng.torch"])

    def _log(self, record: dict[str, Any]) -> None:
        with open(self.run_dir / METRICS, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def _truncate_log(self) -> None:
        """Drop log lines past the restored step (written after the last checkpoint)."""
        path = self.run_dir / METRICS
        if not path.exists():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            if isinstance(record, dict) and record.get("step", 0) <= self.step:
                kept.append(line)
        with atomic_write(path) as tmp:
            tmp.write_text("".join(line + "\n" for line in kept))

    # -------------------------------------------------------------------------- driver
    def fit(self, progress: bool = True) -> TrainSummary:
        """Train to ``config.steps``, resuming if the run directory holds a partial run.

        Under torch.distributed every process calls it; rank 0 validates, logs, shows the
        progress bar and writes checkpoints."""
        main = self.group.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        distributed.barrier()
        self.try_resume()
        if main:
            self._truncate_log()  # drop lines past the restored step (all on a fresh start)
        board = None
        if self.tensorboard is not None and main:
            board = TensorBoardLog(self.tensorboard, purge_step=self.step + 1)
        self._session_start = time.perf_counter()
        cfg = self.config
        last: dict[str, float] = {"loss": float("nan")}
        val: dict[str, float] = {}
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            desc="train",
            disable=not (progress and main),
            dynamic_ncols=True,
        )
        try:
            with graceful_interrupts() as interrupt:
                while self.step < cfg.steps:
                    last = self.train_step()
                    # One collective: the global batch's losses, and whether any process was
                    # interrupted (all then stop at this step).
                    last, stopping = distributed.step_summary(last, interrupt.requested)
                    bar.update(1)
                    record: dict[str, Any] = {"step": self.step, **last}
                    final = self.step == cfg.steps
                    validating = self.step % cfg.val_every == 0 or final
                    saving = stopping or self.step % cfg.checkpoint_every == 0 or final
                    if validating or saving:
                        self.calibrate()  # eval-mode statistics of the current weights
                    if validating and main:
                        val = self.validate()
                        record.update(val)
                    if self.step % 10 == 0:
                        shown = {
                            "loss": f"{last['loss']:.4f}",
                            "pred": f"{last['pred']:.4f}",
                            "sigreg": f"{last['sigreg']:.3f}",
                        }
                        if "val_pred" in val:  # after the first validation pass
                            shown["val"] = f"{val['val_pred']:.4f}"
                        bar.set_postfix(shown)
                    if main:
                        self._log(record)
                    if board is not None:
                        board.scalars(self.step, last, "train")
                        validated = {k.removeprefix("val_"): v for k, v in val.items()}
                        board.scalars(self.step, validated if validating else {}, "val")
                    if saving:
                        self.save()
                    if stopping:
                        raise KeyboardInterrupt
        finally:
            bar.close()
            if board is not None:
                board.close()
        if not val:  # the run was already complete (or this is not rank 0)
            val = self.validate()
        return TrainSummary(
            run_dir=self.run_dir,
            steps=self.step,
            train_loss=last["loss"],
            val_loss=val["val_loss"],
            val_prediction=val["val_pred"],
            seconds=self.train_seconds,
            num_parameters=self.model.num_parameters(),
        )


def train(
    dataset_path: str | Path,
    run_dir: str | Path,
    model_config: WorldModelConfig | None = None,
    config: TrainConfig | None = None,
    obs_mode: ObsMode = "pixels",
    progress: bool = True,
    tensorboard: str | Path | None = None,
) -> TrainSummary:
    """Train (or resume) a world model on a collected dataset.

    Any dataset that records its action bounds works: collected ones, or a robot's own data
    written with ``lewm_mpc.data.write_episodes`` (no environment is needed). Started by
    ``torchrun`` (several processes), it joins their group and trains data-parallel.

    Args:
        dataset_path: HDF5 dataset (``lewm_mpc.data`` format).
        run_dir: output folder (checkpoint, resume state, metrics).
        model_config: architecture; data-dependent fields are filled from the dataset.
        config: optimization settings.
        obs_mode: "pixels" or "state" observations.
        progress: show a tqdm bar.
        tensorboard: also log the training curves as TensorBoard events in this folder
            (needs the ``tb`` extra).
    """
    config = config or TrainConfig()
    dataset = EpisodeDataset.load(dataset_path)
    base = model_config or WorldModelConfig()
    full = model_config_for(dataset, base, obs_mode)
    reference = DatasetRef(str(dataset_path), file_sha256(Path(dataset_path)))
    joined = distributed.init_from_environment(config.device)  # under torchrun
    try:
        trainer = Trainer(run_dir, dataset, full, config, obs_mode, reference, tensorboard)
        return trainer.fit(progress)
    finally:
        if joined:
            distributed.shutdown()
