"""``initschema report --plot``: the picture tells what was measured and expected, and
nothing else (drawn in memory; the figure's artists are read back)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import initschema as ins
from initschema.diagnostics.plot import LABELS, figure
from initschema.diagnostics.stats import measure

pytest.importorskip("matplotlib")

DEPTH = 50


class Net(nn.Module):
    """A token of tiny std, a patch convolution a Call rule resets, many Linears."""

    def __init__(self) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 32))
        self.patch = nn.Conv2d(3, 32, 4)
        self.blocks = nn.ModuleList(nn.Linear(32, 32) for _ in range(DEPTH))


INIT_CFG = [
    {"type": "Normal", "layer": "Linear", "std": 0.02},
    {"type": "Normal", "params": ["cls_token"], "std": 1e-6},
    {"type": "Call", "method": "reset_parameters", "layer": "Conv2d"},
]


@pytest.fixture(scope="module")
def drawn() -> tuple[list[str], object]:
    model = Net()
    plan = ins.compile_plan(model, INIT_CFG)
    stats = measure(plan, plan.execute(seed=0))
    weights = [path for path, p in model.named_parameters() if p.dim() >= 2]
    return weights, figure(plan, stats).axes[0]


class TestDepthAxes:
    def test_no_expected_value_where_nothing_is_expected(self, drawn: tuple) -> None:
        """The Call rule's weight has no expectation: the expected line has a gap there,
        and values at the Linears (N(0, 0.02²) predicts 0.02)."""
        weights, axes = drawn
        (line,) = [line for line in axes.get_lines() if line.get_label() == "expected"]
        values = list(line.get_ydata())
        assert math.isnan(values[weights.index("patch.weight")])
        assert values[weights.index("blocks.0.weight")] == pytest.approx(0.02)

    def test_a_tiny_std_does_not_flatten_the_rest(self, drawn: tuple) -> None:
        """cls_token at 1e-6 sits at the axis's edge, named with its value; the axis spans
        the other weights (0.02 and PyTorch's default conv, ~0.07), not six decades."""
        _, axes = drawn
        low, high = axes.get_ylim()
        assert 1e-3 < low < 0.02 and 0.07 < high < 1
        texts = [text.get_text() for text in axes.texts]
        assert any(t.startswith("cls_token: 1e-06") and "off scale" in t for t in texts), texts

    def test_tick_labels_readable(self, drawn: tuple) -> None:
        """At most LABELS weights named, in a readable size, the first among them."""
        weights, axes = drawn
        labels = axes.get_xticklabels()
        assert len(weights) > LABELS >= len(labels) > 10
        assert labels[0].get_text() == weights[0]
        assert all(label.get_fontsize() >= 7 for label in labels)
