"""The trainer of one run directory: model, optimizer, samplers, RNGs and the loop."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from lewm_mpc import distributed
from lewm_mpc.atomic import graceful_interrupts
from lewm_mpc.data import EpisodeDataset, WindowSampler, action_stats
from lewm_mpc.envs import get_env_spec
from lewm_mpc.envs.symmetry import SceneSymmetries
from lewm_mpc.models.config import WorldModelConfig
from lewm_mpc.models.device import resolve_device
from lewm_mpc.models.jepa import WorldModel
from lewm_mpc.models.run_meta import DatasetRef, RunMeta, SplitMeta, TrainingMeta
from lewm_mpc.models.sigreg import SIGRegConfig
from lewm_mpc.state_targets import StateTargets
from lewm_mpc.tensorboard import TensorBoardLog
from lewm_mpc.training import persistence
from lewm_mpc.training.batchnorm import _ProcessSlice, calibrate_batchnorm
from lewm_mpc.training.config import TrainConfig, TrainSummary
from lewm_mpc.training.objective import _Objective, _shard_seed
from lewm_mpc.training.prefetch import Prefetcher
from lewm_mpc.types import ObsMode


def scene_symmetries(dataset: EpisodeDataset) -> SceneSymmetries:
    """The scene symmetries of the env that recorded ``dataset``.

    Raises:
        ValueError: The dataset records no registered env, or its env declares none.
    """
    env_id = dataset.meta.env_id
    try:
        spec = get_env_spec(str(env_id))
    except ValueError:
        raise ValueError(
            f"augment needs the env that recorded the dataset to declare its scene symmetries; "
            f"the dataset records env {env_id!r}, not a registered env"
        ) from None
    if spec.definition.symmetries is None:
        raise ValueError(
            f"augment needs an env that declares its scene symmetries; {spec.name} declares "
            "none (EnvDefinition.symmetries)"
        )
    return spec.definition.symmetries


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
        self.symmetries = scene_symmetries(dataset) if config.augment else None
        mean, std = action_stats(dataset, train_ids, self.symmetries)
        self.model.set_action_stats(torch.as_tensor(mean), torch.as_tensor(std))
        block = model_config.action_block // dataset.action_block  # rows per model step
        shard = train_ids[group.rank :: group.world_size]  # this process's episodes
        if shard.size == 0:
            raise ValueError(
                f"{train_ids.size} training episodes cannot be shared by {group.world_size} "
                "processes; use fewer processes"
            )
        self._local_batch = config.batch_size // group.world_size
        self._shard, self._block = shard, block
        self.train_sampler = self.make_train_sampler(_shard_seed(config.seed, group, 0))
        self.val_sampler = WindowSampler(
            dataset, val_ids, config.num_frames, block, config.batch_size, obs_mode,
            config.seed + 1,
        )  # fmt: skip
        self._train_ids = train_ids
        on_gpu = self.device.type == "cuda"
        self.prefetcher = Prefetcher(on_gpu if config.prefetch is None else config.prefetch,
                                     pin=on_gpu)  # fmt: skip
        self.state_targets: StateTargets | None = None
        self.state_head: torch.nn.Linear | None = None
        if config.state_loss_weight > 0:
            self.state_targets = StateTargets.from_dataset(dataset, train_ids, self.symmetries)
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
            self.state_head, config.state_loss_weight, config.rollout_weight,
        )  # fmt: skip
        self.objective: torch.nn.Module = objective
        if group.distributed:  # buffers stay equal: BatchNorm statistics span every process
            self.objective = DistributedDataParallel(
                objective, device_ids=[self.device] if self.device.type == "cuda" else None,
                forward_sync_buffers=False,
            )  # fmt: skip
            torch.manual_seed(_shard_seed(config.seed, group, 0))  # dropout differs per process
        # The step's forward pass, compiled on request; the modules (weights, checkpoints) are
        # the same either way.
        self._step_objective = torch.compile(self.objective) if config.compile else self.objective
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

    def make_train_sampler(self, seed: int) -> WindowSampler:
        """This process's training sampler (its episodes, local batch, augmentation)."""
        return WindowSampler(
            self.dataset, self._shard, self.config.num_frames, self._block, self._local_batch,
            self.obs_mode, seed, self.symmetries,
        )  # fmt: skip

    # ------------------------------------------------------------------------ training
    def _autocast(self) -> torch.autocast:
        """bfloat16 autocast of the forward passes when ``precision="bfloat16"``."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.config.precision == "bfloat16")  # fmt: skip

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device, non_blocking=True)

    def train_step(self) -> dict[str, float]:
        """One optimizer step; returns its losses."""
        self.model.train()
        batch = self.prefetcher.next(self.train_sampler)
        lr = self.config.learning_rate(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        targets = None
        if self.state_targets is not None:
            frames = batch.obs.shape[1]
            window_targets = self.state_targets.for_windows(
                self.dataset, batch.rows, frames, self._block, batch.symmetry
            )
            targets = self._to_device(window_targets)  # (B, T, F)
        with self._autocast():
            total, prediction, regularizer, state = self._step_objective(
                batch.obs.to(self.device, non_blocking=True),
                batch.actions.to(self.device, non_blocking=True),
                targets,
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
            with self._autocast():
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
    def save(self) -> None:
        """Commit a checkpoint, model + resume state, as one unit (Ctrl-C held until done);
        prune the older ones. Every process calls it; rank 0 writes what all of them hold."""
        persistence.save(self)

    def try_resume(self) -> bool:
        """Restore from the newest checkpoint of ``run_dir`` if it holds one; refuse other
        settings (naming the fields that differ) and a run already past ``config.steps``.

        A run saved by the same number of processes resumes each process's sampler and RNG
        states (bit-identical continuation); another number reseeds them from the step."""
        return persistence.try_resume(self)

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
            # drop lines past the restored step (all on a fresh start)
            persistence.truncate_log(self)
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
                        persistence.log_record(self, record)
                    if board is not None:
                        board.scalars(self.step, last, "train")
                        validated = {k.removeprefix("val_"): v for k, v in val.items()}
                        board.scalars(self.step, validated if validating else {}, "val")
                    if saving:
                        self.save()
                    if stopping:
                        raise KeyboardInterrupt
        finally:
            self.prefetcher.close()
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
