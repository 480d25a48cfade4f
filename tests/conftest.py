"""Shared fixtures: the MMEngine reference (skipped when it is not installed)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _registry_restored() -> Any:
    """Initializers a test registers are gone after it, so tests stay independent."""
    from initschema.registry import WEIGHT_INITIALIZERS

    saved = dict(WEIGHT_INITIALIZERS._classes)
    yield
    WEIGHT_INITIALIZERS._classes.clear()
    WEIGHT_INITIALIZERS._classes.update(saved)


@pytest.fixture(scope="session")
def mm() -> Any:
    """``mmengine.model`` (with its logger kept quiet), or skip the test."""
    model = pytest.importorskip("mmengine.model", reason="mmengine-lite is not installed")
    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel(logging.ERROR)
    return model


def state_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every parameter and buffer."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert list(a) == list(b)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different}"
