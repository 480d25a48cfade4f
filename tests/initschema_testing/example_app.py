"""The example Hydra app (``examples/``, ``conf/``) and the shipped library
(``initschema/conf/``): its models, the strategies and the pairs that go together, and
composing its config. ``examples/`` is put on ``sys.path`` so ``import train`` finds the app."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from initschema_testing.paths import ROOT

CONF = ROOT / "conf"
LIBRARY = ROOT / "initschema" / "conf"
sys.path.insert(0, str(ROOT / "examples"))
import train  # noqa: E402, F401  (examples/train.py, the app under test, for the tests)

MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
CLASSIFIERS = sorted(
    m
    for m in MODELS
    if OmegaConf.load(CONF / "model" / f"{m}.yaml")._target_ == "models.Classifier"
)
"""The models with a backbone and a head (the others are language models)."""
STRATEGY_FILES = sorted((LIBRARY / "init_strategy").glob("*.yaml"))
STRATEGIES = [*sorted(p.stem for p in STRATEGY_FILES), "finetune"]
"""The shipped strategies, and the example app's fine-tuning (which names the backbone,
so the app's experiment composes it instead of a strategy file): see ``strategy_overrides``."""
ONLY_WITH: dict[str, list[str]] = {
    # It loads a checkpoint's "backbone." entries into the model's backbone.
    "finetune": CLASSIFIERS,
    # They override the submodule `head` by name: an error where a model has none (as in
    # MMEngine), and only the classifiers have one.
    **dict.fromkeys(
        ["resnet_kaiming", "retinanet_head", "vit_mmpretrain", "vit_timm_jax"], CLASSIFIERS
    ),
    # It reads n_layer (GPT2Config's name) from the model's config: no other model has it.
    "gpt2": ["gpt"],
}
"""Strategies that are meaningful only with some models. Every other strategy goes with
every model: one made for another family may match nothing (lints), but must validate,
compile and initialize."""
PAIRS = [(m, s) for s in STRATEGIES for m in MODELS if m in ONLY_WITH.get(s, MODELS)]


def strategy_overrides(model: str, strategy: str) -> list[str]:
    """Command-line overrides that select ``strategy`` for ``model``."""
    if strategy == "llama_torchtitan":
        # Its output std is dim ** -0.5, left ??? (no arithmetic in OmegaConf): any value
        # will do here, the experiment llama_torchtitan writes the model's.
        return [
            f"model={model}",
            f"init_strategy@model.init_cfg={strategy}",
            "model.init_cfg.output.std=0.125",
        ]
    if strategy != "finetune":
        return [f"model={model}", f"init_strategy@model.init_cfg={strategy}"]
    return [
        f"model={model}",
        "init_strategy@model.init_cfg=pytorch_default",
        "+init@model.backbone.init_cfg.pretrained=backbone_pretrained",
        "+init@model.init_cfg.head=head_normal",
    ]


def compose_app(overrides: list[str], conf: Path = CONF) -> Any:
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)
