"""Small models for the example Hydra app, each with ``init_cfg`` nodes at several depths.

A model is a ``Classifier(backbone, head)``; the backbone is a ResNet-style CNN, a
ViT-style transformer or an MLP. ``GPT`` and ``Llama`` are decoder-only language models.
Module names follow the projects whose init strategies the rule library reproduces
(timm's ViT: ``blocks.N.attn.proj``, ``blocks.N.mlp.fc2``, ``pos_embed``, ``cls_token``;
GPT-2: ``wte``, ``wpe``, ``h.N.attn.c_proj``, ``h.N.mlp.c_proj``; torchtitan's Llama:
``tok_embeddings``, ``layers.N.attention.wo``, ``layers.N.feed_forward.w2``, ``output``),
so that their ``params`` patterns apply. Hydra builds them with ``instantiate``;
``example_input`` is what the app's forward check feeds them.
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
    """A ViT-style backbone. Its position embedding and class token are drawn when it is
    built (truncated N(0, 0.02²)), not by an ``init_weights`` of its own: a model's rules
    run before its children's ``init_weights`` (MMEngine's order), so code there would
    overwrite what a strategy at the model's ``init_cfg`` writes to them."""

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
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

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


class RoPE(nn.Module):
    """Rotary position embedding: a ``cache`` buffer of cos/sin (not saved in the state
    dict) that ``reset_parameters`` recomputes, as torchtitan's ``RoPE`` does on a model
    built on the meta device (a Call rule runs it)."""

    cache: torch.Tensor

    def __init__(self, head_dim: int, max_seq_len: int, theta: float = 10000.0) -> None:
        super().__init__()
        self.head_dim, self.max_seq_len, self.theta = head_dim, max_seq_len, theta
        self.register_buffer("cache", self._compute(), persistent=False)

    def _compute(self) -> torch.Tensor:
        exponents = torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim
        angles = torch.outer(
            torch.arange(self.max_seq_len, dtype=torch.float32), 1.0 / self.theta**exponents
        )
        return torch.stack([angles.cos(), angles.sin()], dim=-1)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.cache.copy_(self._compute())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate pairs of ``x`` [batch, heads, seq, head_dim] by their positions' angles."""
        cos, sin = self.cache[: x.shape[2]].unbind(-1)
        even, odd = x[..., 0::2], x[..., 1::2]
        return torch.stack([even * cos - odd * sin, even * sin + odd * cos], -1).flatten(-2)


class LlamaAttention(nn.Module):
    """Grouped-query attention with RoPE: ``wq``, ``wk``, ``wv`` and ``wo`` (ends a residual
    branch), no biases."""

    def __init__(self, dim: int, n_heads: int, n_kv_heads: int) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, dim // n_heads
        self.wq = nn.Linear(dim, n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(dim, n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(dim, n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(n_heads * self.head_dim, dim, bias=False)

    def forward(self, x: torch.Tensor, rope: RoPE) -> torch.Tensor:
        b, n, _ = x.shape
        q = self.wq(x).view(b, n, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.wk(x).view(b, n, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.wv(x).view(b, n, self.n_kv_heads, self.head_dim).transpose(1, 2)
        out = nn.functional.scaled_dot_product_attention(
            rope(q), rope(k), v, is_causal=True, enable_gqa=True
        )
        return self.wo(out.transpose(1, 2).reshape(b, n, -1))  # type: ignore[no-any-return]


class FeedForward(nn.Module):
    """SwiGLU: ``w2(silu(w1(x)) * w3(x))``, the hidden size as torchtitan computes it."""

    def __init__(self, dim: int, multiple_of: int) -> None:
        super().__init__()
        hidden = int(2 * 4 * dim / 3)
        hidden = multiple_of * ((hidden + multiple_of - 1) // multiple_of)
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(nn.functional.silu(self.w1(x)) * self.w3(x))  # type: ignore[no-any-return]


class LlamaBlock(nn.Module):
    """Pre-norm (RMSNorm) attention and SwiGLU feed-forward, each a residual branch."""

    def __init__(self, dim: int, n_heads: int, n_kv_heads: int, multiple_of: int) -> None:
        super().__init__()
        self.attention_norm = nn.RMSNorm(dim, eps=1e-5)
        self.attention = LlamaAttention(dim, n_heads, n_kv_heads)
        self.ffn_norm = nn.RMSNorm(dim, eps=1e-5)
        self.feed_forward = FeedForward(dim, multiple_of)

    def forward(self, x: torch.Tensor, rope: RoPE) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), rope)
        return x + self.feed_forward(self.ffn_norm(x))  # type: ignore[no-any-return]


class Llama(ins.BaseModule):
    """A Llama-shaped language model with torchtitan's names: ``tok_embeddings``,
    ``layers.N.{attention_norm, attention.{wq,wk,wv,wo}, ffn_norm, feed_forward.{w1,w2,w3}}``
    (``layers`` a ModuleDict keyed by the layer index, as torchtitan's), ``norm``, an untied
    ``output``, and the rotary embedding's ``rope.cache``."""

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        n_layers: int,
        n_heads: int,
        n_kv_heads: int,
        max_seq_len: int,
        multiple_of: int = 256,
        init_cfg: Any = None,
    ) -> None:
        super().__init__(init_cfg)
        self.tok_embeddings = nn.Embedding(vocab_size, dim)
        self.rope = RoPE(dim // n_heads, max_seq_len)
        self.layers = nn.ModuleDict(
            {str(i): LlamaBlock(dim, n_heads, n_kv_heads, multiple_of) for i in range(n_layers)}
        )
        self.norm = nn.RMSNorm(dim, eps=1e-5)
        self.output = nn.Linear(dim, vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tok_embeddings(tokens)
        for layer in self.layers.values():
            x = layer(x, self.rope)
        return self.output(self.norm(x))  # type: ignore[no-any-return]

    def example_input(self, batch: int) -> torch.Tensor:
        return torch.randint(0, self.tok_embeddings.num_embeddings, (batch, 8))
