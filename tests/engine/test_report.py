"""InitReport: table, JSON and logging."""

from __future__ import annotations

import json
import logging

import pytest
from torch import nn

import initschema as ins
from initschema_testing import zoo

KIT = zoo.kits()["initschema"]


def _report() -> ins.InitReport:
    model = zoo.toy_net(KIT, [dict(type="Normal", layer="Linear", std=0.02)])
    return ins.compile_plan(model).execute()


class TestInitReport:
    def test_table(self) -> None:
        """The table has a row per parameter and says what wrote it."""
        text = str(_report())
        assert text.splitlines()[0].startswith("initialized ToyNet: 8 parameters, 2 by init_cfg")
        assert "unchanged" in next(line for line in text.splitlines() if "conv1.weight" in line)
        assert "Normal(" in next(line for line in text.splitlines() if "fc.weight" in line)

    def test_json(self) -> None:
        """to_json round-trips through json with every parameter."""
        data = json.loads(_report().to_json())
        rows = {row["path"]: row for row in data["parameters"]}
        assert rows["fc.bias"]["provenance"]["source"] == "init_cfg[0]"
        assert rows["conv1.weight"]["provenance"] is None
        assert len(rows) == 8

    def test_logging(self, caplog: pytest.LogCaptureFixture) -> None:
        """One INFO summary line; per-parameter lines only at DEBUG."""
        with caplog.at_level(logging.INFO, logger="initschema"):
            _report()
        info = [
            r
            for r in caplog.records
            if r.levelno == logging.INFO and "initialized" in r.getMessage()
        ]
        assert len(info) == 1 and not [r for r in caplog.records if r.levelno == logging.DEBUG]
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="initschema"):
            _report()
        assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 8

    def test_unknown_parameter(self) -> None:
        """Asking for a parameter that does not exist is a KeyError."""
        with pytest.raises(KeyError, match="no parameter 'nope'"):
            _report()["nope"]


class TestNotebooks:
    def test_plan_and_report_render_as_html(self) -> None:
        """_repr_html_ gives a fragment with the title, every parameter and the lints."""
        model = nn.Sequential(nn.Linear(2, 2))
        plan = ins.compile_plan(model, dict(type="Normal", layer=["Linear", "Conv3d"]))
        html = plan._repr_html_()
        assert html.startswith("<p>InitPlan for Sequential: 1 action over 2 parameters</p><pre")
        assert "0.weight" in html and "0.bias" in html and "Lints:" in html
        assert "<html" not in html
        report = plan.execute()._repr_html_()
        assert report.startswith("<p>initialized Sequential: 2 parameters, 2 by init_cfg rules")
        assert "0.bias" in report


class TestWidth:
    """Tables fit the terminal by wrapping between words, never inside a path."""

    @staticmethod
    def _plan(name: str, rule: str) -> ins.InitPlan:
        model = nn.ModuleDict({name: nn.Sequential(nn.Linear(3, 3))})
        cfg = {rule: {"type": "Call", "method": "reset_parameters", "layer": "Linear"}}
        return ins.compile_plan(model, cfg)

    def test_fits_the_terminal(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With COLUMNS=80 the plan wraps its initializer cell to fit, paths whole."""
        monkeypatch.setenv("COLUMNS", "80")
        lines = str(self._plan("block", "reset")).splitlines()
        assert max(len(line) for line in lines) <= 80
        assert "block.0.weight" in lines[4] and "init_cfg.reset" in lines[4]
        assert "(may write)" not in lines[4] and "(may write)" in lines[5]

    def test_paths_are_never_cut(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A terminal narrower than the paths: the table grows rather than cut one."""
        monkeypatch.setenv("COLUMNS", "40")
        name, rule = "a_rather_long_module_name_for_a_block", "calls_reset_parameters_on_linears"
        text = str(self._plan(name, rule))
        assert f"{name}.0.weight" in text and f"init_cfg.{rule}" in text
        assert "…" not in text

    def test_one_line_per_row_into_a_pipe(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without a terminal (no COLUMNS), a row stays on one line, for grep."""
        monkeypatch.delenv("COLUMNS", raising=False)
        lines = str(self._plan("block", "reset")).splitlines()
        rows = [line for line in lines if "0.weight" in line]
        assert len(rows) == 1 and "(may write)" in rows[0]
