"""Observation and action encoders, and the BatchNorm projector head.

Pixel observations arrive as uint8 (B, H, W, 3); state observations as float (B, Ds).
Every observation encoder returns (B, feature_dim) features that a :class:`Projector`
maps to the embedding space.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lewm_mpc.models.global_batchnorm import GlobalBatchNorm1d


def _images_to_float(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1]."""
    return pixels.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


class Projector(nn.Module):
    """Linear -> BatchNorm -> GELU -> Linear, applied over the last dim of any-rank input.

    The BatchNorm normalizes over the global batch of a multi-process run
    (:class:`~lewm_mpc.models.global_batchnorm.GlobalBatchNorm1d`).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            GlobalBatchNorm1d(hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        out = self.net(x.reshape(-1, x.shape[-1]))  # (prod(lead), out_dim)
        return out.reshape(*lead, out.shape[-1])


class ConvEncoder(nn.Module):
    """Small strided CNN for low-resolution images (the CPU default).

    Each conv halves the resolution (kernel 4, stride 2); the final map is flattened and
    mapped to ``feature_dim``.
    """

    def __init__(self, image_size: int, channels: tuple[int, ...], feature_dim: int) -> None:
        super().__init__()
        final = image_size // 2 ** len(channels)
        if final < 1 or image_size % 2 ** len(channels):
            raise ValueError(
                f"image_size {image_size} must be divisible by 2**{len(channels)} "
                f"(one halving per conv layer, channels={channels})"
            )
        layers: list[nn.Module] = []
        in_ch = 3
        for out_ch in channels:
            layers += [nn.Conv2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            in_ch = out_ch
        self.convs = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(in_ch * final * final, feature_dim), nn.LayerNorm(feature_dim)
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(_images_to_float(pixels)))  # (B, feature_dim)


# ImageNet statistics: LeWorldModel's ViT sees pixels / 255 normalized with them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VIT_LAYER_NORM_EPS = 1e-12  # HuggingFace ViT's


class _ViTBlock(nn.Module):
    """Pre-norm ViT layer with HuggingFace ViT's maths: separate q/k/v projections with bias,
    exact GELU, LayerNorm eps 1e-12."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"ViT width {dim} must be divisible by its {heads} heads")
        self.heads, self.dropout = heads, dropout
        self.norm1 = nn.LayerNorm(dim, eps=VIT_LAYER_NORM_EPS)
        self.query, self.key, self.value = (nn.Linear(dim, dim) for _ in range(3))
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=VIT_LAYER_NORM_EPS)
        self.fc1 = nn.Linear(dim, mlp_dim)
        self.fc2 = nn.Linear(mlp_dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        # (B, N, dim) -> (B, heads, N, dim / heads)
        return x.view(batch, tokens, self.heads, dim // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        p = self.dropout if self.training else 0.0
        attended = F.scaled_dot_product_attention(
            self._split(self.query(h)), self._split(self.key(h)), self._split(self.value(h)),
            dropout_p=p,
        )  # fmt: skip
        x = x + F.dropout(self.out(attended.transpose(1, 2).flatten(2)), p)  # (B, N, dim)
        return x + F.dropout(self.fc2(F.gelu(self.fc1(self.norm2(x)))), p)


class ViTEncoder(nn.Module):
    """ViT with a CLS token, LeWorldModel's encoder (HuggingFace ``ViTModel`` maths; the paper
    config: ViT-tiny/14 at 224 px): uint8 (B, H, W, 3) pixels, scaled to [0, 1] and normalized
    with the ImageNet mean and std, -> (B, dim), the final-norm CLS token."""

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        dim: int,
        depth: int,
        heads: int,
        mlp_dim: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} not divisible by patch_size {patch_size}")
        num_patches = (image_size // patch_size) ** 2
        self.patchify = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, num_patches + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(_ViTBlock(dim, heads, mlp_dim, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=VIT_LAYER_NORM_EPS)
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        images = pixels.permute(0, 3, 1, 2).float().div(255.0)  # (B, 3, H, W) in [0, 1]
        patches = self.patchify((images - self.pixel_mean) / self.pixel_std)  # (B, dim, h, w)
        tokens = patches.flatten(2).transpose(1, 2)  # (B, h*w, dim)
        cls = self.cls.expand(tokens.shape[0], -1, -1)  # (B, 1, dim)
        x = torch.cat([cls, tokens], dim=1) + self.pos  # (B, 1 + h*w, dim)
        for block in self.blocks:
            x = block(x)
        return self.norm(x[:, 0])  # (B, dim): the CLS token (the norm is per token)


class StateEncoder(nn.Module):
    """MLP for vector observations."""

    def __init__(self, state_dim: int, hidden_dim: int, feature_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(state_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, feature_dim),
            nn.LayerNorm(feature_dim),
        )

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(state.float())  # (B, feature_dim)


class ActionEncoder(nn.Module):
    """Embeds a block of ``action_block`` normalized env actions, flattened to (.., block * A)."""

    def __init__(self, block_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(block_dim, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim)
        )

    def forward(self, action_blocks: torch.Tensor) -> torch.Tensor:
        return self.net(action_blocks)  # (..., embed_dim)


class BlockEmbedder(nn.Module):
    """LeWorldModel's action encoder (its ``Embedder``): a per-block linear map to 10 features
    (a kernel-1 Conv1d there), then Linear(10, 4E) -> SiLU -> Linear(4E, E)."""

    SMOOTHED_DIM = 10
    MLP_SCALE = 4

    def __init__(self, block_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.smooth = nn.Linear(block_dim, self.SMOOTHED_DIM)
        self.net = nn.Sequential(
            nn.Linear(self.SMOOTHED_DIM, self.MLP_SCALE * embed_dim),
            nn.SiLU(),
            nn.Linear(self.MLP_SCALE * embed_dim, embed_dim),
        )

    def forward(self, action_blocks: torch.Tensor) -> torch.Tensor:
        return self.net(self.smooth(action_blocks))  # (..., embed_dim)
