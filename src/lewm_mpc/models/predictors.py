"""Action-conditioned latent predictors.

Both predictors share one contract: ``forward(z, a)`` takes embeddings (B, T, D) and action
embeddings (B, T, E) and returns (B, T, D) where output ``t`` predicts embedding ``t + 1`` from
embeddings ``<= t`` and action ``t`` (causal), using at most ``history`` past embeddings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLPPredictor(nn.Module):
    """Residual MLP over a window of the last ``history`` embeddings (the CPU default).

    next = z_t + MLP([z_{t-history+1}, ..., z_t, a_t]); the first positions of a sequence pad
    their history by repeating the first embedding.
    """

    def __init__(
        self, latent_dim: int, action_embed_dim: int, hidden_dim: int, depth: int, history: int
    ) -> None:
        super().__init__()
        if depth < 1 or history < 1:
            raise ValueError(f"depth and history must be >= 1, got {depth}, {history}")
        self.history = history
        layers: list[nn.Module] = []
        in_dim = history * latent_dim + action_embed_dim
        for _ in range(depth):
            layers += [nn.Linear(in_dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.GELU()]
            in_dim = hidden_dim
        layers.append(nn.Linear(in_dim, latent_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        if self.history == 1:
            window = z  # (B, T, D)
        else:
            pad = z[:, :1].expand(-1, self.history - 1, -1)  # (B, history-1, D)
            padded = torch.cat([pad, z], dim=1)  # (B, T + history - 1, D)
            # unfold: (B, T, D, history) -> (B, T, history, D) -> (B, T, history * D)
            window = padded.unfold(1, self.history, 1).transpose(-1, -2).flatten(2)
        return z + self.net(torch.cat([window, a], dim=-1))  # (B, T, D)


class _Attention(nn.Module):
    """Causal multi-head self-attention behind its own LayerNorm (LeWorldModel's): q/k/v
    without bias, ``heads * head_dim`` wide."""

    def __init__(self, dim: int, heads: int, head_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        self.to_out = nn.Linear(heads * head_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        qkv = self.to_qkv(self.norm(x))  # (B, T, 3 * heads * head_dim)
        # -> 3 x (B, heads, T, head_dim)
        q, k, v = qkv.view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        return F.dropout(self.to_out(out.transpose(1, 2).flatten(2)), p)  # (B, T, dim)


class _AdaLNBlock(nn.Module):
    """Transformer block whose branches are modulated by the action (AdaLN-zero): each branch
    is norm (no affine) -> shift/scale -> [LayerNorm -> attention | LayerNorm -> MLP] -> gate."""

    def __init__(
        self, dim: int, heads: int, head_dim: int, mlp_dim: int, cond_dim: int, dropout: float
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = _Attention(dim, heads, head_dim, dropout)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(mlp_dim, dim), nn.Dropout(dropout),
        )  # fmt: skip
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * dim))
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(cond).chunk(6, dim=-1)
        x = x + gate1 * self.attn(self.norm1(x) * (1 + scale1) + shift1)
        return x + gate2 * self.mlp(self.norm2(x) * (1 + scale2) + shift2)


class TransformerPredictor(nn.Module):
    """LeWorldModel's predictor (paper config): a causal AdaLN transformer over a window of at
    most ``history`` embeddings, each conditioned on its action block, with learned positions
    of the window's slots and a final LayerNorm.

    A sequence longer than ``history`` is predicted window by window, as a rollout does: output
    ``t`` sees embeddings ``t - history + 1 .. t`` at slots ``0 .. history - 1``.
    """

    def __init__(
        self,
        latent_dim: int,
        action_embed_dim: int,
        depth: int,
        heads: int,
        mlp_dim: int,
        history: int,
        dropout: float = 0.1,
        head_dim: int = 64,
    ) -> None:
        super().__init__()
        self.history = history
        self.pos = nn.Parameter(torch.randn(1, history, latent_dim) * 0.02)
        self.blocks = nn.ModuleList(
            _AdaLNBlock(latent_dim, heads, head_dim, mlp_dim, action_embed_dim, dropout)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(latent_dim)

    def _causal(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        x = z + self.pos[:, : z.shape[1]]  # (B, T <= history, D)
        for block in self.blocks:
            x = block(x, a)
        return self.norm(x)

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        batch, length, dim = z.shape
        if length <= self.history:
            return self._causal(z, a)
        head = self._causal(z[:, : self.history - 1], a[:, : self.history - 1])
        # Every full window, as a batch: (B, W, D, history) -> (B * W, history, D)
        windows = length - self.history + 1
        z_windows = z.unfold(1, self.history, 1).permute(0, 1, 3, 2).flatten(0, 1)
        a_windows = a.unfold(1, self.history, 1).permute(0, 1, 3, 2).flatten(0, 1)
        tail = self._causal(z_windows, a_windows)[:, -1].view(batch, windows, dim)
        return torch.cat([head, tail], dim=1)  # (B, T, D)
