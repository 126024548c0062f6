"""Reference LeWM checkpoint and outputs from stable-worldmodel's own model classes.

Builds LeWorldModel (``stable_worldmodel.wm.lewm.LeWM``, stable-worldmodel 0.1.1) from its
hydra-style ``config.json``, fills every state-dict entry deterministically (:func:`fill`), and
writes into ``--out``:

* ``weights.pt`` -- ``torch.save(model.state_dict())``, LeWM's checkpoint format;
* ``config.json`` -- the resolved hydra model config LeWM's ``load_pretrained`` instantiates;
* ``keys.json`` -- ``[name, shape, dtype]`` of the state dict, in sorted-name order;
* ``reference.npz`` -- random inputs (``pixels`` uint8 (2, 4, S, S, 3), ``actions`` float32
  (2, 7, 10), already normalized) and LeWM's outputs: ``emb`` (2, 4, 192), the embeddings of
  the 4 frames, and ``rollout`` (2, 5, 192), 5 autoregressive predictions from the first 3.

Our converter (main venv, without stable-worldmodel) is checked against these numbers. Runs in
``.venv-peers`` (needs ``transformers`` and ``einops``)::

    .venv-peers/bin/python benchmarks/peers/lewm_reference.py --out DIR [--small] [--seed 0]

``--small`` is a tiny variant (1-layer ViT on 28x28 images, 1-layer predictor) for a test
fixture. ``stable_pretraining`` is not installed: :func:`vit_hf` re-implements its
``backbone.utils.vit_hf`` (``pretrained=False``), the encoder LeWM's config names.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BATCH, FRAMES, ACTION_STEPS, CONTEXT, ROLLOUT_STEPS = 2, 4, 7, 3, 5
ACTION_DIM = 10  # frameskip 5 x action dim 2


def bare_package(name: str, path: Path) -> None:
    """Register package ``name`` at ``path`` without running its ``__init__``."""
    package = types.ModuleType(name)
    package.__path__ = [str(path)]  # a namespace for its submodules only
    sys.modules[name] = package


def load_lewm_modules() -> tuple[types.ModuleType, types.ModuleType]:
    """``stable_worldmodel.wm.lewm`` and its ``module`` without running the ``__init__`` of their
    parent packages (they import torchvision and the data stack, not installed here)."""
    if "stable_worldmodel" not in sys.modules:
        spec = importlib.util.find_spec("stable_worldmodel")
        if spec is None or spec.origin is None:
            raise ImportError("stable-worldmodel is not installed (see benchmarks/peers/README.md)")
        bare_package("stable_worldmodel", Path(spec.origin).parent)
    if "stable_worldmodel.wm" not in sys.modules:
        bare_package(
            "stable_worldmodel.wm", Path(sys.modules["stable_worldmodel"].__path__[0]) / "wm"
        )
    return (
        importlib.import_module("stable_worldmodel.wm.lewm"),
        importlib.import_module("stable_worldmodel.wm.lewm.module"),
    )


def vit_hf(
    size: str = "tiny",
    patch_size: int = 16,
    image_size: int = 224,
    pretrained: bool = False,
    use_mask_token: bool = True,
    **kwargs: Any,
) -> torch.nn.Module:
    """``stable_pretraining.backbone.utils.vit_hf`` for ``size="tiny"``, ``pretrained=False``."""
    from transformers import ViTConfig, ViTModel

    if size != "tiny" or pretrained:
        raise ValueError("only the untrained 'tiny' ViT of LeWM's config is supported")
    params = {"hidden_size": 192, "num_hidden_layers": 12, "num_attention_heads": 3}
    params["intermediate_size"] = params["hidden_size"] * 4
    params["image_size"] = image_size
    params["patch_size"] = patch_size
    params.update(kwargs)
    model = ViTModel(ViTConfig(**params), add_pooling_layer=False, use_mask_token=use_mask_token)
    model.config.interpolate_pos_encoding = True
    return model


def lewm_config(small: bool) -> dict[str, Any]:
    """LeWM's resolved hydra model config (full size, or the ``--small`` fixture variant)."""
    encoder: dict[str, Any] = {
        "_target_": "stable_pretraining.backbone.utils.vit_hf",
        "size": "tiny",
        "patch_size": 14,
        "image_size": 28 if small else 224,
        "pretrained": False,
        "use_mask_token": False,
    }
    if small:
        encoder["num_hidden_layers"] = 1
    projector_hidden = 256 if small else 2048
    projector = {
        "_target_": "stable_worldmodel.wm.lewm.module.MLP",
        "input_dim": 192,
        "output_dim": 192,
        "hidden_dim": projector_hidden,
        "norm_fn": {"_target_": "torch.nn.BatchNorm1d", "_partial_": True},
    }
    return {
        "_target_": "stable_worldmodel.wm.lewm.LeWM",
        "encoder": encoder,
        "predictor": {
            "_target_": "stable_worldmodel.wm.lewm.module.Predictor",
            "num_frames": CONTEXT,
            "input_dim": 192,
            "hidden_dim": 192,
            "output_dim": 192,
            "depth": 1 if small else 6,
            "heads": 16,
            "mlp_dim": 256 if small else 2048,
            "dim_head": 64,
            "dropout": 0.1,
            "emb_dropout": 0.0,
        },
        "action_encoder": {
            "_target_": "stable_worldmodel.wm.lewm.module.Embedder",
            "input_dim": ACTION_DIM,
            "emb_dim": 192,
        },
        "projector": projector,
        "pred_proj": dict(projector),
    }


def instantiate(node: Any, targets: dict[str, Any]) -> Any:
    """Hydra's ``instantiate`` for the ``_target_`` / ``_partial_`` keys of ``config.json``."""
    if not isinstance(node, dict):
        return node
    kwargs = {k: instantiate(v, targets) for k, v in node.items() if not k.startswith("_")}
    if "_target_" not in node:
        return kwargs
    target = targets[node["_target_"]]
    return functools.partial(target, **kwargs) if node.get("_partial_") else target(**kwargs)


def build_model(config: dict[str, Any]) -> torch.nn.Module:
    """The LeWM of ``config``, built from stable-worldmodel's own classes."""
    lewm, module = load_lewm_modules()
    targets = {
        "stable_worldmodel.wm.lewm.LeWM": lewm.LeWM,
        "stable_worldmodel.wm.lewm.module.Predictor": module.Predictor,
        "stable_worldmodel.wm.lewm.module.Embedder": module.Embedder,
        "stable_worldmodel.wm.lewm.module.MLP": module.MLP,
        "stable_pretraining.backbone.utils.vit_hf": vit_hf,
        "torch.nn.BatchNorm1d": torch.nn.BatchNorm1d,
    }
    return instantiate(config, targets)


def fill(state_dict: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Deterministic weights (our tests re-create them independently: keep exactly this)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in sorted(state_dict):
        t = state_dict[name]
        shape = tuple(t.shape)
        if not t.is_floating_point():
            out[name] = t.clone()  # e.g. num_batches_tracked: unchanged
        elif name.endswith("running_var"):
            out[name] = torch.from_numpy(1.0 + 0.5 * rng.random(shape)).float()
        elif name.endswith("running_mean"):
            out[name] = torch.from_numpy(0.1 * rng.standard_normal(shape)).float()
        elif len(shape) == 1 and name.endswith("weight"):  # LayerNorm / BatchNorm scales
            out[name] = torch.from_numpy(1.0 + 0.1 * rng.standard_normal(shape)).float()
        else:
            out[name] = torch.from_numpy(0.05 * rng.standard_normal(shape)).float()
    return out


def preprocess(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> LeWM's encoder input: /255, ImageNet-normalized, (B, T, 3, H, W)."""
    x = torch.from_numpy(pixels).float() / 255.0
    x = (x - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    return x.permute(0, 1, 4, 2, 3).contiguous()


@torch.no_grad()
def reference_outputs(
    model: torch.nn.Module, pixels: np.ndarray, actions: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """LeWM's frame embeddings and its autoregressive rollout from the first CONTEXT frames."""
    emb = model.encode({"pixels": preprocess(pixels)})["emb"]
    act_emb = model.action_encoder(torch.from_numpy(actions))
    embs = list(emb[:, :CONTEXT].unbind(dim=1))
    rollout = []
    for step in range(ROLLOUT_STEPS):
        t = CONTEXT - 1 + step
        lo = max(0, t - (CONTEXT - 1))
        window = torch.stack(embs[lo : t + 1], dim=1)
        nxt = model.predict(window, act_emb[:, lo : t + 1])[:, -1]
        embs.append(nxt)
        rollout.append(nxt)
    return emb, torch.stack(rollout, dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--small", action="store_true", help="tiny fixture variant")
    parser.add_argument("--seed", type=int, default=0, help="weight seed (inputs use seed + 1)")
    args = parser.parse_args()

    config = lewm_config(args.small)
    model = build_model(config)
    model.load_state_dict(fill(model.state_dict(), args.seed), strict=True)
    model.eval()

    size = config["encoder"]["image_size"]
    rng = np.random.default_rng(args.seed + 1)
    pixels = rng.integers(0, 256, (BATCH, FRAMES, size, size, 3), dtype=np.uint8)
    actions = rng.standard_normal((BATCH, ACTION_STEPS, ACTION_DIM)).astype(np.float32)
    emb, rollout = reference_outputs(model, pixels, actions)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    torch.save(state, out / "weights.pt")
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    keys = [
        [k, list(state[k].shape), str(state[k].dtype).removeprefix("torch.")] for k in sorted(state)
    ]
    (out / "keys.json").write_text(json.dumps(keys) + "\n")
    np.savez(
        out / "reference.npz",
        pixels=pixels,
        actions=actions,
        emb=emb.numpy().astype(np.float32),
        rollout=rollout.numpy().astype(np.float32),
    )

    n_params = sum(p.numel() for p in model.parameters())
    print(f"wrote {out}: {len(keys)} state-dict entries, {n_params} parameters")
    print(f"max |emb| = {emb.abs().max().item():.6g}")
    print(f"max |rollout| = {rollout.abs().max().item():.6g}")


if __name__ == "__main__":
    main()
