"""A trainer's checkpoints (model + resume state, committed as one unit) and metrics log."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import TYPE_CHECKING, Any

import torch

from lewm_mpc import distributed
from lewm_mpc.atomic import atomic_write, defer_interrupts
from lewm_mpc.models.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    load_tensors_checked,
    read_json,
    save_tensors_atomic,
)
from lewm_mpc.models.jepa import WorldModel
from lewm_mpc.models.run_dir import (
    checkpoint_dir,
    prune_checkpoints,
    remove_staging,
    staged_checkpoint,
)
from lewm_mpc.training.identity import _normalized_identity, identity_differences
from lewm_mpc.training.objective import _shard_seed

if TYPE_CHECKING:
    from lewm_mpc.training.trainer import Trainer

STATE_JSON = "train_state.json"
STATE_TENSORS = "train_state.safetensors"
METRICS = "metrics.jsonl"


def _identity(trainer: Trainer) -> dict[str, Any]:
    return {
        "model_config": trainer.model.config.to_dict(),
        "train_config": dataclasses.asdict(trainer.config),
        "obs_key": trainer.obs_mode,
        "dataset": {
            "env_id": trainer.dataset.meta.env_id,
            "rows": trainer.dataset.num_rows,
            "episodes": trainer.dataset.num_episodes,
        },
    }


def save(trainer: Trainer) -> None:
    """Commit a checkpoint, model + resume state, as one unit (Ctrl-C held until done);
    prune the older ones. Every process calls it; rank 0 writes what all of them hold."""
    sampler_state = trainer.prefetcher.sampler_state(trainer.train_sampler)  # none drawn ahead
    per_process = distributed.gather_objects(
        {"sampler": sampler_state, "rng": torch.get_rng_state()}
    )  # rank order
    if not trainer.group.is_main:
        distributed.barrier()  # until rank 0 has committed the checkpoint
        return
    tensors: dict[str, torch.Tensor] = {
        "rng.sigreg": trainer.sigreg_gen.get_state(),
        "rng.torch": torch.get_rng_state(),
    }
    if trainer.state_head is not None:
        tensors["state_head.weight"] = trainer.state_head.weight.detach()
        tensors["state_head.bias"] = trainer.state_head.bias.detach()
    if trainer.group.distributed:
        for rank, part in enumerate(per_process):
            tensors[f"rng.torch.{rank}"] = part["rng"]
    opt_state = trainer.optimizer.state_dict()
    for index, per_param in opt_state["state"].items():
        for key, value in per_param.items():
            tensors[f"opt.{index}.{key}"] = torch.as_tensor(value)
    now = time.perf_counter()
    trainer.train_seconds += now - trainer._session_start
    trainer._session_start = now
    with defer_interrupts():
        trainer.model.run_meta = dataclasses.replace(
            trainer.model.run_meta, step=trainer.step, train_seconds=round(trainer.train_seconds, 2)
        )
        with staged_checkpoint(trainer.run_dir, trainer.step) as folder:
            trainer.model.save(folder)
            sha = save_tensors_atomic(tensors, folder / STATE_TENSORS)
            state = {
                "step": trainer.step,
                "identity": _identity(trainer),
                "param_groups": opt_state["param_groups"],
                "sampler": sampler_state,
                "tensors_sha256": sha,
                "processes": trainer.group.world_size,
                "process_samplers": [part["sampler"] for part in per_process],
            }
            with atomic_write(folder / STATE_JSON) as tmp:
                tmp.write_text(json.dumps(state, indent=1))
        prune_checkpoints(trainer.run_dir, trainer.config.keep_checkpoints)
        for name in (CONFIG_FILE, WEIGHTS_FILE, STATE_JSON, STATE_TENSORS):
            (trainer.run_dir / name).unlink(missing_ok=True)  # a superseded older-layout run
    distributed.barrier()


def try_resume(trainer: Trainer) -> bool:
    """Restore from the newest checkpoint of ``run_dir`` if it holds one; refuse other
    settings (naming the fields that differ) and a run already past ``config.steps``.

    A run saved by the same number of processes resumes each process's sampler and RNG
    states (bit-identical continuation); another number reseeds them from the step."""
    if trainer.group.is_main:
        remove_staging(trainer.run_dir)  # what a kill while committing or pruning left
        prune_checkpoints(trainer.run_dir, trainer.config.keep_checkpoints)
    distributed.barrier()  # the others read only after the clean-up
    folder = checkpoint_dir(trainer.run_dir)
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
    current = _normalized_identity(json.loads(json.dumps(_identity(trainer))))
    if stored != current:
        differences = identity_differences(stored, current)
        raise ValueError(
            f"{trainer.run_dir} holds a run with other settings ({'; '.join(differences[:3])}"
            f"{'; ...' if len(differences) > 3 else ''}); pass the same settings to resume "
            "it, or choose another output folder (nothing was overwritten)"
        )
    if int(state["step"]) > trainer.config.steps:
        raise ValueError(
            f"{trainer.run_dir} is already at step {state['step']}, past the "
            f"{trainer.config.steps} steps asked for; pass steps >= {state['step']} to train it "
            "further, or choose another output folder (nothing was overwritten)"
        )
    tensors = load_tensors_checked(folder / STATE_TENSORS, state.get("tensors_sha256"))
    restored = WorldModel.load(folder, trainer.device)
    trainer.model.load_state_dict(restored.state_dict())
    opt_state: dict[str, Any] = {"state": {}, "param_groups": state["param_groups"]}
    for name, value in tensors.items():
        if name.startswith("opt."):
            _, index, key = name.split(".", 2)
            opt_state["state"].setdefault(int(index), {})[key] = value.to(trainer.device)
    try:
        trainer.optimizer.load_state_dict(opt_state)
    except (ValueError, KeyError) as error:
        raise CheckpointError(
            f"optimizer state in {trainer.run_dir} is unusable: {error}"
        ) from None
    trainer.sigreg_gen.set_state(tensors["rng.sigreg"])
    if trainer.state_head is not None:
        with torch.no_grad():
            trainer.state_head.weight.copy_(tensors["state_head.weight"])
            trainer.state_head.bias.copy_(tensors["state_head.bias"])
    trainer.step = int(state["step"])
    _restore_process_state(trainer, state, tensors)
    trainer.train_seconds = restored.run_meta.train_seconds
    return True


def _restore_process_state(
    trainer: Trainer, state: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> None:
    """This process's window sampler and torch RNG: as saved when the run had as many
    processes, else reseeded from (seed, processes, rank, step)."""
    group = trainer.group
    trainer.prefetcher.discard()  # a batch drawn ahead is not the restored stream's
    if int(state.get("processes", 1)) != group.world_size:
        seed = _shard_seed(trainer.config.seed, group, trainer.step)
        trainer.train_sampler = trainer.make_train_sampler(seed)
        torch.manual_seed(seed)
    elif group.distributed:
        trainer.train_sampler.load_state_dict(state["process_samplers"][group.rank])
        torch.set_rng_state(tensors[f"rng.torch.{group.rank}"])
    else:
        trainer.train_sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(tensors["rng.torch"])


def log_record(trainer: Trainer, record: dict[str, Any]) -> None:
    with open(trainer.run_dir / METRICS, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def truncate_log(trainer: Trainer) -> None:
    """Drop log lines past the restored step (written after the last checkpoint)."""
    path = trainer.run_dir / METRICS
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
        if isinstance(record, dict) and record.get("step", 0) <= trainer.step:
            kept.append(line)
    with atomic_write(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in kept))
