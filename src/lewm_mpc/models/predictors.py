"""Action-conditioned latent predictors.

Both predictors share one contract: ``forward(z, a)`` takes embeddings (B, T, D) and action
embeddings (B, T, E) and returns (B, T, D) where output ``t`` predicts embedding ``t + 1`` from
embeddings ``<= t`` and action ``t`` (causal), using at most ``history`` past embeddings.
"""

from __future__ import annotations

import torch
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


class _AdaLNBlock(nn.Module):
    """Pre-norm transformer block whose norms are modulated by the action (AdaLN-zero)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, cond_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, dim)
        )
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * dim))
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(cond).chunk(6, dim=-1)
        h = self.norm1(x) * (1 + scale1) + shift1
        x = x + gate1 * self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + gate2 * self.mlp(h)


class TransformerPredictor(nn.Module):
    """Causal transformer over the embedding sequence, conditioned on actions (paper config)."""

    def __init__(
        self,
        latent_dim: int,
        action_embed_dim: int,
        depth: int,
        heads: int,
        mlp_dim: int,
        history: int,
        dropout: float = 0.1,
        max_len: int = 32,
    ) -> None:
        super().__init__()
        if latent_dim % heads:
            raise ValueError(f"latent_dim {latent_dim} must be divisible by heads {heads}")
        self.history = history
        self.pos = nn.Parameter(torch.randn(1, max_len, latent_dim) * 0.02)
        self.blocks = nn.ModuleList(
            _AdaLNBlock(latent_dim, heads, mlp_dim, action_embed_dim, dropout) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(latent_dim)

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        length = z.shape[1]
        if length > self.pos.shape[1]:
            raise ValueError(f"sequence length {length} exceeds max_len {self.pos.shape[1]}")
        idx = torch.arange(length, device=z.device)
        # Causal and limited to `history` steps back: True marks a blocked position.
        offset = idx[:, None] - idx[None, :]  # (T, T): query - key
        mask = (offset < 0) | (offset >= self.history)
        x = z + self.pos[:, :length]  # (B, T, D)
        for block in self.blocks:
            x = block(x, a, mask)
        return self.norm(x)  # (B, T, D)
