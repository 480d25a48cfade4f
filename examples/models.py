"""Small models for the example Hydra app, each with ``init_cfg`` nodes at several depths.

A model is a ``Classifier(backbone, head)``; the backbone is a ResNet-style CNN, a
ViT-style transformer or an MLP. ``GPT`` is a decoder-only language model. Module names
follow the projects whose init strategies the rule library reproduces (timm's ViT:
``blocks.N.attn.proj``, ``blocks.N.mlp.fc2``, ``pos_embed``, ``cls_token``; GPT-2:
``wte``, ``wpe``, ``h.N.attn.c_proj``, ``h.N.mlp.c_proj``), so that their ``params``
patterns apply. Hydra builds them with ``instantiate``; ``example_input`` is what the
app's forward check feeds them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import initschema as ins


class BasicBlock(ins.BaseModule):
    """Two 3×3 convolutions with batch norm and a residual connection."""

    def __init__(self, channels: int, init_cfg: Any = None) -> None:
        super().__init__(init_cfg)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(out)))


class ResNet(ins.BaseModule):
    """A ResNet-style backbone: stem, then stages of BasicBlocks, global pooling."""

    def __init__(self, widths: list[int], blocks_per_stage: int, init_cfg: Any = None) -> None:
        super().__init__(init_cfg)
        self.stem = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(widths[0])
        stages: list[nn.Module] = []
        for index, width in enumerate(widths):
            blocks: list[nn.Module] = [BasicBlock(width) for _ in range(blocks_per_stage)]
            if index + 1 < len(widths):
                blocks.append(nn.Conv2d(width, widths[index + 1], 3, stride=2, padding=1))
            stages.append(ins.Sequential(*blocks))
        self.stages = ins.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(torch.relu(self.stem_bn(self.stem(x))))
        return x.mean(dim=(2, 3))


class Attention(nn.Module):
    """Multi-head self-attention: a fused ``qkv`` projection and an output ``proj``."""

    def __init__(self, dim: int, heads: int, causal: bool = False) -> None:
        super().__init__()
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # type: ignore[no-any-return]


class Mlp(nn.Module):
    """``fc1`` → GELU → ``fc2``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))  # type: ignore[no-any-return]


class TransformerBlock(ins.BaseModule):
    """Pre-norm self-attention and MLP (timm's names)."""

    def __init__(self, dim: int, heads: int, init_cfg: Any = None) -> None:
        super().__init__(init_cfg)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))  # type: ignore[no-any-return]


class VisionTransformer(ins.BaseModule):
    """A ViT-style backbone. Like timm's, its own ``init_weights`` draws the position
    embedding and class token; it does so before the init_cfg rules run, so that a
    Pretrained rule (which runs last) loads over them."""

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        dim: int,
        depth: int,
        heads: int,
        init_cfg: Any = None,
    ) -> None:
        super().__init__(init_cfg)
        self.patch_embed = nn.Conv2d(3, dim, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (image_size // patch_size) ** 2 + 1, dim))
        self.blocks = ins.ModuleList([TransformerBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def init_weights(self) -> None:
        ins.trunc_normal_(self.pos_embed, std=0.02)
        ins.trunc_normal_(self.cls_token, std=0.02)
        super().init_weights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]  # type: ignore[no-any-return]


class MLP(ins.BaseModule):
    """Flatten, then Linear + ReLU layers."""

    def __init__(self, in_features: int, widths: list[int], init_cfg: Any = None) -> None:
        super().__init__(init_cfg)
        layers: list[nn.Module] = [nn.Flatten()]
        for width in widths:
            layers += [nn.Linear(in_features, width), nn.ReLU()]
            in_features = width
        self.layers = ins.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # type: ignore[no-any-return]


class ClsHead(ins.BaseModule):
    """A linear classification head."""

    def __init__(self, in_channels: int, num_classes: int, init_cfg: Any = None) -> None:
        super().__init__(init_cfg)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)  # type: ignore[no-any-return]


class Classifier(ins.BaseModule):
    """backbone → head; strategies address the head as ``head``."""

    def __init__(self, backbone: nn.Module, head: nn.Module, init_cfg: Any = None) -> None:
        super().__init__(init_cfg)
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))  # type: ignore[no-any-return]

    def example_input(self, batch: int) -> torch.Tensor:
        return torch.randn(batch, 3, 32, 32)


class GPTAttention(nn.Module):
    """Causal self-attention: ``c_attn`` (fused QKV), ``c_proj`` (ends a residual branch)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(dim, 3 * dim)
        self.c_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.c_attn(x).reshape(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(out.transpose(1, 2).reshape(b, n, d))  # type: ignore[no-any-return]


class GPTMlp(nn.Module):
    """``c_fc`` → GELU → ``c_proj`` (ends a residual branch)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(dim, 4 * dim)
        self.c_proj = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(nn.functional.gelu(self.c_fc(x)))  # type: ignore[no-any-return]


class GPTBlock(nn.Module):
    """GPT-2's block: ``ln_1`` → ``attn``, ``ln_2`` → ``mlp``, each a residual branch."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = GPTAttention(dim, heads)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = GPTMlp(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))  # type: ignore[no-any-return]


class GPT(ins.BaseModule):
    """A GPT-2-shaped language model: token and position embeddings (``wte``, ``wpe``),
    ``n_layer`` blocks under ``h``, a final ``ln_f`` and an ``lm_head`` tied to ``wte``."""

    def __init__(
        self,
        vocab_size: int,
        n_positions: int,
        dim: int,
        n_layer: int,
        heads: int,
        init_cfg: Any = None,
    ) -> None:
        super().__init__(init_cfg)
        self.wte = nn.Embedding(vocab_size, dim)
        self.wpe = nn.Embedding(n_positions, dim)
        self.h = nn.ModuleList(GPTBlock(dim, heads) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.wte(tokens) + self.wpe(positions)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))  # type: ignore[no-any-return]

    def example_input(self, batch: int) -> torch.Tensor:
        return torch.randint(0, self.wte.num_embeddings, (batch, 8))
