"""Probes: small maps from a latent (D,) to a physical quantity (P,), e.g. the agent's position.

A probe is fitted in seconds from (latent, target) pairs: closed-form ridge regression
(``kind="linear"``) or a small MLP trained with Adam (``kind="mlp"``). It reports its held-out
R² and is differentiable, so region guardrails built on it (:mod:`lewm_mpc.energies.regions`)
also work with gradient planners. :func:`fit_probe_from_dataset` encodes dataset frames with a
world model and fits a probe against the recorded env states. The fitting maths (split,
ridge regression, MLP, R²) lives in :mod:`lewm_mpc.energies.probe_fitting`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from lewm_mpc.energies._io import finite_or_none, load_head, none_to_nan, save_head
from lewm_mpc.energies.base import TensorCache
from lewm_mpc.energies.probe_fitting import _fit_linear, _fit_mlp, _pairs, _r2, _split
from lewm_mpc.energies.probe_fitting import _standardize as _standardize  # re-exported
from lewm_mpc.energies.probe_fitting import _uniform as _uniform  # re-exported
from lewm_mpc.models.checkpoint import CheckpointError

if TYPE_CHECKING:
    from lewm_mpc.data.dataset import EpisodeDataset
    from lewm_mpc.types import LatentWorldModel

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": F.silu,
    "tanh": torch.tanh,
    "relu": F.relu,
}
PROBE_KINDS = ("linear", "mlp")
_KIND = "lewm_mpc.Probe"


class Probe:
    """A fitted map from latents ``(..., D)`` to a quantity ``(..., P)``.

    A stack of affine layers ``x @ W + b`` with an activation between them (one layer: a
    linear probe). Build one with :meth:`fit` or :meth:`load`; the constructor takes the
    weights directly (e.g. ``Probe([W], [b])`` for a known linear read-out).

    Args:
        weights: per layer, a (in, out) matrix; the first ``in`` is D, the last ``out`` is P.
        biases: per layer, an (out,) vector.
        activation: nonlinearity between layers (``"silu"``, ``"tanh"`` or ``"relu"``).
        r2: held-out R² per output (NaN where undefined); empty when unknown.
        num_train: pairs the probe was fitted on.
        num_val: held-out pairs its R² was measured on.

    Attributes:
        r2: held-out R² per output dimension (tuple of P floats, or empty).
        r2_mean: mean of the defined entries of ``r2`` (NaN when none is).
        num_train: pairs the probe was fitted on.
        num_val: held-out pairs behind ``r2``.
    """

    def __init__(
        self,
        weights: Sequence[torch.Tensor],
        biases: Sequence[torch.Tensor],
        activation: str = "silu",
        *,
        r2: Sequence[float] = (),
        num_train: int = 0,
        num_val: int = 0,
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if not weights or len(weights) != len(biases):
            raise ValueError(
                f"need one bias per weight and at least one layer, got {len(weights)} weights "
                f"and {len(biases)} biases"
            )
        width = None
        for index, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
            if weight.ndim != 2 or bias.shape != weight.shape[1:]:
                raise ValueError(
                    f"layer {index}: weight must be (in, out) and bias (out,), got "
                    f"{tuple(weight.shape)} and {tuple(bias.shape)}"
                )
            if width is not None and weight.shape[0] != width:
                raise ValueError(f"layer {index} takes {weight.shape[0]} inputs, expected {width}")
            if not (weight.is_floating_point() and torch.isfinite(weight).all()):
                raise ValueError(f"layer {index}: weights must be finite floats")
            width = weight.shape[1]
        r2 = tuple(float(value) for value in r2)
        if r2 and len(r2) != width:
            raise ValueError(f"r2 must have one entry per output ({width}), got {len(r2)}")
        self._weights = tuple(w.detach() for w in weights)
        self._biases = tuple(b.detach() for b in biases)
        self._cache = TensorCache(*self._weights, *self._biases)
        self._act = ACTIVATIONS[activation]
        self.activation = activation
        self.r2 = r2
        defined = [value for value in r2 if math.isfinite(value)]
        self.r2_mean = sum(defined) / len(defined) if defined else math.nan
        self.num_train = int(num_train)
        self.num_val = int(num_val)

    # --------------------------------------------------------------------------- shape
    @property
    def input_dim(self) -> int:
        """Latent size D."""
        return int(self._weights[0].shape[0])

    @property
    def output_dim(self) -> int:
        """Size P of the probed quantity."""
        return int(self._weights[-1].shape[1])

    @property
    def kind(self) -> str:
        """``"linear"`` (one layer) or ``"mlp"``."""
        return "linear" if len(self._weights) == 1 else "mlp"

    @property
    def weights(self) -> tuple[torch.Tensor, ...]:
        """Per-layer (in, out) matrices, as stored."""
        return self._weights

    @property
    def biases(self) -> tuple[torch.Tensor, ...]:
        """Per-layer (out,) vectors, as stored."""
        return self._biases

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        """Map latents ``(..., D)`` to ``(..., P)`` on their device and in their dtype.

        Differentiable with respect to ``latents``.
        """
        if latents.shape[-1:] != (self.input_dim,):
            raise ValueError(
                f"probe expects latents of size D={self.input_dim} in the last dimension, got "
                f"shape {tuple(latents.shape)}"
            )
        params = self._cache.like(latents)
        count = len(self._weights)
        x = latents
        for index in range(count):
            x = x @ params[index] + params[count + index]  # (..., out)
            if index < count - 1:
                x = self._act(x)
        return x  # (..., P)

    def __repr__(self) -> str:
        widths = [self.input_dim, *(int(w.shape[1]) for w in self._weights)]
        r2 = ", ".join(f"{value:.3f}" for value in self.r2)
        return f"Probe(kind={self.kind!r}, widths={widths}, r2=({r2}))"

    # ------------------------------------------------------------------------- fitting
    @classmethod
    def fit(
        cls,
        latents: torch.Tensor | np.ndarray,
        targets: torch.Tensor | np.ndarray,
        kind: str = "linear",
        ridge: float = 1e-3,
        val_fraction: float = 0.2,
        seed: int = 0,
        *,
        groups: np.ndarray | Sequence[int] | None = None,
        hidden: int = 64,
        steps: int = 500,
        lr: float = 1e-2,
    ) -> Probe:
        """Fit a probe from pairs and measure its R² on a held-out part.

        Args:
            latents: (N, D) latents.
            targets: (N, P) quantities to predict.
            kind: ``"linear"`` (closed-form ridge regression with a bias) or ``"mlp"`` (two
                SiLU hidden layers of width ``hidden`` trained with full-batch Adam).
            ridge: L2 penalty on the weights relative to the mean squared error (the bias is
                not penalized; the MLP fits standardized inputs and targets).
            val_fraction: fraction of the pairs (or of the groups) held out to measure R²; the
                probe is fitted on the rest.
            seed: seed of the split and of the MLP's initialisation.
            groups: optional (N,) group id per pair (e.g. episode ids): whole groups are held
                out, so correlated frames of one episode do not inflate the R².
            hidden: MLP hidden width.
            steps: MLP Adam steps.
            lr: MLP learning rate (cosine-decayed to 0).

        Returns:
            The probe, with ``r2`` per output measured on the held-out pairs.

        Raises:
            ValueError: bad shapes, non-finite values, too few pairs, or bad options.
        """
        if kind not in PROBE_KINDS:
            raise ValueError(f"kind must be one of {PROBE_KINDS}, got {kind!r}")
        if not (math.isfinite(ridge) and ridge >= 0):
            raise ValueError(f"ridge must be >= 0, got {ridge}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if kind == "mlp" and not (hidden >= 1 and steps >= 1 and lr > 0):
            raise ValueError(
                f"hidden and steps must be >= 1 and lr > 0, got {hidden}, {steps} and {lr}"
            )
        x, y = _pairs(latents, targets)
        train, val = _split(x.shape[0], val_fraction, seed, groups)
        with torch.inference_mode(False), torch.enable_grad():
            x, y = x.clone(), y.clone()  # normal tensors even if given inference tensors
            if kind == "linear":
                weights, biases = _fit_linear(x[train], y[train], ridge)
            else:
                generator = torch.Generator(device=x.device).manual_seed(seed)
                weights, biases = _fit_mlp(x[train], y[train], ridge, hidden, steps, lr, generator)
        with torch.no_grad():
            r2 = _r2(cls(weights, biases)(x[val]), y[val])
        return cls(weights, biases, r2=r2, num_train=len(train), num_val=len(val))

    # ------------------------------------------------------------------------- storage
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the probe to the folder ``path`` (``model.safetensors`` + ``config.json``)."""
        tensors = {f"layers.{i}.weight": w for i, w in enumerate(self._weights)}
        tensors |= {f"layers.{i}.bias": b for i, b in enumerate(self._biases)}
        config = {
            "num_layers": len(self._weights),
            "activation": self.activation,
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "r2": finite_or_none(self.r2),
            "num_train": self.num_train,
            "num_val": self.num_val,
        }
        return save_head(path, _KIND, tensors, config)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Probe:
        """Read a probe written by :meth:`save`.

        Raises:
            CheckpointError: missing, corrupted or foreign files.
        """
        tensors, config = load_head(path, _KIND)
        try:
            count = int(config["num_layers"])
            weights = [tensors[f"layers.{i}.weight"].to(device) for i in range(count)]
            biases = [tensors[f"layers.{i}.bias"].to(device) for i in range(count)]
            return cls(
                weights,
                biases,
                config["activation"],
                r2=none_to_nan(config["r2"]),
                num_train=config["num_train"],
                num_val=config["num_val"],
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{path} holds an invalid probe: {error}") from None


def fit_probe_from_dataset(
    world_model: LatentWorldModel,
    dataset: EpisodeDataset,
    episode_ids: np.ndarray | Sequence[int] | None = None,
    target: str | Sequence[int] | Callable[[np.ndarray], np.ndarray] = "state",
    *,
    kind: str = "linear",
    max_samples: int = 5000,
    batch_size: int = 256,
    seed: int = 0,
    **fit_kwargs: Any,
) -> Probe:
    """Encode dataset frames with a world model and fit a probe to their env states.

    Held-out R² is measured on whole held-out episodes. The model is put in eval mode while
    encoding (and restored afterwards); encoding runs under ``torch.inference_mode``.

    Args:
        world_model: the model whose latents the probe reads (pixel models encode
            ``dataset.pixels``, state models ``dataset.state``).
        dataset: the episodes.
        episode_ids: episodes to use (default: all); at least 2, since whole ones are held out.
        target: ``"state"`` (the full recorded state, e.g. Two-Room's agent xy), a sequence of
            state columns, or a function from states (M, Ds) float64 to targets (M, P).
        kind: probe kind (see :meth:`Probe.fit`).
        max_samples: at most this many frames, drawn uniformly without replacement.
        batch_size: frames encoded per forward pass.
        seed: seed of the frame subsample, the split and the MLP.
        **fit_kwargs: further :meth:`Probe.fit` arguments (``ridge``, ``val_fraction``, ...).

    Returns:
        The fitted probe (on the model's device).
    """
    if max_samples < 4 or batch_size < 1:
        raise ValueError(
            f"max_samples must be >= 4 and batch_size >= 1, got {max_samples} and {batch_size}"
        )
    ids = dataset.episode_ids if episode_ids is None else np.asarray(episode_ids, dtype=np.int64)
    slices = [dataset.episode_slice(int(episode)) for episode in ids]
    rows = np.concatenate([np.arange(part.start, part.stop) for part in slices])  # (M,)
    if len(rows) > max_samples:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_samples, replace=False))
    states = dataset.state[rows]  # (M, Ds)
    targets = _targets(states, target)  # (M, P)
    pixels = getattr(world_model, "obs_dtype", torch.uint8) == torch.uint8
    source = dataset.pixels if pixels else dataset.state
    device = world_model.device
    training = getattr(world_model, "training", None)
    if training:
        world_model.eval()  # type: ignore[attr-defined]
    try:
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                obs = torch.from_numpy(source[rows[start : start + batch_size]])  # (b, *obs)
                obs = obs.to(device) if pixels else obs.to(device, torch.float32)
                chunks.append(world_model.encode(obs))  # (b, D)
    finally:
        if training:
            world_model.train()  # type: ignore[attr-defined]
    latents = torch.cat(chunks)  # (M, D)
    targets_t = torch.as_tensor(targets, dtype=latents.dtype, device=device)
    return Probe.fit(
        latents, targets_t, kind=kind, seed=seed, groups=dataset.episode_idx[rows], **fit_kwargs
    )


# ------------------------------------------------------------------------------ helpers
def _targets(
    states: np.ndarray, target: str | Sequence[int] | Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """(M, Ds) states -> (M, P) targets."""
    if isinstance(target, str):
        if target != "state":
            raise ValueError(f"target must be 'state', state columns or a callable, got {target!r}")
        return np.asarray(states, dtype=np.float64)
    if callable(target):
        values = np.asarray(target(np.array(states)), dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]  # (M, 1)
        if values.ndim != 2 or values.shape[0] != states.shape[0]:
            raise ValueError(
                f"target function must return ({states.shape[0]}, P) values, got {values.shape}"
            )
        return values
    columns = [int(c) for c in target]
    if not columns or not all(0 <= c < states.shape[1] for c in columns):
        raise ValueError(f"state columns must lie in [0, {states.shape[1]}), got {columns}")
    return np.asarray(states[:, columns], dtype=np.float64)
