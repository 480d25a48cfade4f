"""A small MMEngine project for tests/integrations/test_mmengine_runner.py: a ``BaseModel`` with
``BaseModule`` children and init_cfgs (Kaiming, Normal with an override, Constant, and
``ToyScaled``, an initializer registered in MMEngine's ``WEIGHT_INITIALIZERS``), a tiny
synthetic dataset, and a hook that saves the weights and RNG state after ``init_weights``.

A config names it in ``custom_imports``; :func:`main` trains one iteration through
``Runner.from_cfg`` (``python -c "import mmengine_toy; mmengine_toy.main(CONFIG, OUT)"``
with ``tests`` on the path, so that the config's import finds this module, not a copy).
"""

from __future__ import annotations

from typing import Any

import torch
from mmengine.dataset import BaseDataset
from mmengine.hooks import Hook
from mmengine.model import BaseModel, BaseModule
from mmengine.model.weight_init import BaseInit, update_init_info
from mmengine.registry import DATASETS, HOOKS, MODELS, WEIGHT_INITIALIZERS
from torch import nn


@WEIGHT_INITIALIZERS.register_module(name="ToyScaled")
class ToyScaledInit(BaseInit):
    """Normal(0, 1) times ``scale`` into the weights of the ``layer`` modules (all of them as
    an override), as a project's own initializer would be written."""

    def __init__(self, scale: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale = scale

    def __call__(self, module: nn.Module) -> None:
        def init(m: nn.Module) -> None:
            names = [type(m).__name__, *(b.__name__ for b in type(m).__bases__)]
            if (self.wholemodule or set(names) & set(self.layer)) and hasattr(m, "weight"):
                with torch.no_grad():
                    m.weight.normal_().mul_(self.scale)
                    if getattr(m, "bias", None) is not None:
                        m.bias.fill_(self.bias)

        module.apply(init)
        if hasattr(module, "_params_init_info"):
            update_init_info(module, init_info=f"ToyScaled, scale={self.scale}")


class Stem(BaseModule):
    def __init__(self, init_cfg: Any = None) -> None:
        super().__init__(init_cfg)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)


class Head(BaseModule):
    def __init__(self, init_cfg: Any = None) -> None:
        super().__init__(init_cfg)
        self.hidden = nn.Linear(8, 16)
        self.fc_cls = nn.Linear(16, 4)


@MODELS.register_module()
class ToyNet(BaseModel):
    def __init__(self, init_cfg: Any = None, stem: dict[str, Any] | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        stem_cfg = [
            dict(type="Kaiming", layer="Conv2d"),
            dict(type="Constant", val=1, layer="BatchNorm2d"),
        ]
        self.stem = Stem(**(stem or {"init_cfg": stem_cfg}))
        self.head = Head(
            init_cfg=dict(
                type="Normal",
                std=0.01,
                layer="Linear",
                override=dict(name="fc_cls", type="Normal", std=0.1),
            )
        )
        self.extra = nn.Linear(8, 4)

    def forward(
        self, inputs: torch.Tensor, labels: torch.Tensor, mode: str = "loss", **kwargs: Any
    ) -> Any:
        # MMEngine's default collate gives lists: one tensor and one int per sample.
        inputs, labels = torch.stack(list(inputs)), torch.as_tensor(labels)
        x = self.stem.norm(self.stem.conv(inputs)).relu().mean((2, 3))
        logits = self.head.fc_cls(self.head.hidden(x).relu()) + self.extra(x)
        loss = nn.functional.cross_entropy(logits, labels)
        return {"loss": loss} if mode == "loss" else logits


@DATASETS.register_module()
class ToyDataset(BaseDataset):
    def __init__(self, size: int = 8, **kwargs: Any) -> None:
        self.size = size
        super().__init__(serialize_data=False, **kwargs)

    def load_data_list(self) -> list[dict[str, Any]]:
        generator = torch.Generator().manual_seed(7)
        return [
            {"inputs": torch.randn(3, 6, 6, generator=generator), "labels": i % 4}
            for i in range(self.size)
        ]


@HOOKS.register_module()
class SaveAfterInit(Hook):
    """Saves the weights and the RNG state right after ``init_weights`` (the first hook
    call after it), so that a test sees init apart from training."""

    def __init__(self, out: str) -> None:
        self.out = out

    def before_train(self, runner: Any) -> None:
        state = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}
        torch.save({"state": state, "rng": torch.get_rng_state()}, self.out)


def main(config: str, out: str) -> None:
    from mmengine.config import Config
    from mmengine.runner import Runner

    runner = Runner.from_cfg(Config.fromfile(config))
    runner.train()
    state = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}
    torch.save({"state": state, "rng": torch.get_rng_state()}, out)
