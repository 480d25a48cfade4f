"""Factories for ``initschema plan/diff/report --model nets:NAME`` (run from examples/)."""

from torch import nn


def small_cnn() -> nn.Module:
    """A plain PyTorch CNN: no init_cfg of its own, so the command takes one (--config)."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3),
        nn.BatchNorm2d(32),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )
