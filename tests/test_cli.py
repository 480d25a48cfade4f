"""The ``initschema`` command, run as a user runs it: a subprocess, exit statuses, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
GOOD = "convs: {type: Kaiming, layer: Conv2d, mode: fan_in}\nhead: {type: Normal, layer: Linear}\n"
BAD = "convs: {type: Kaiming, layer: Conv2d, mode: fan_middle}\nhead: {type: Normal, std: -1}\n"
FACTORY = (
    "import torch.nn as nn\n\n"
    "def net():\n"
    "    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), "
    "nn.Linear(8, 4))\n"
)


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m initschema ARGS`` in ``tmp_path`` (where the files and factories are)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "examples")])}
    return subprocess.run(
        [sys.executable, "-m", "initschema", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        env=env,
    )


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    (tmp_path / "nets.py").write_text(FACTORY)
    return tmp_path


class TestHelp:
    @pytest.mark.parametrize("command", ["validate", "plan", "diff", "schema"])
    def test_every_subcommand_has_help(self, tmp_path: Path, command: str) -> None:
        """--help of each subcommand exits 0 and says what it does."""
        result = _cli(tmp_path, command, "--help")
        assert result.returncode == 0 and f"usage: initschema {command}" in result.stdout


class TestValidate:
    def test_good_file(self, files: Path) -> None:
        """A valid init_cfg file: exit 0, and JSON says how many rules."""
        result = _cli(files, "validate", "good.yaml", "--json")
        assert result.returncode == 0
        assert json.loads(result.stdout) == {
            "ok": True,
            "problems": [],
            "init_cfgs": {"init_cfg": 2},
        }

    def test_bad_file(self, files: Path) -> None:
        """An invalid one: exit 1, every problem with its path."""
        result = _cli(files, "validate", "bad.yaml")
        assert result.returncode == 1
        assert result.stderr.splitlines() == [
            "Error in config init_cfg.convs.mode: 'fan_middle' is not a valid mode; expected "
            "one of fan_in, fan_out.",
            "Error in config init_cfg.head.std: std should be greater than or equal to 0, got -1.",
        ]

    def test_node_of_a_file(self, files: Path) -> None:
        """KEY names the init_cfg inside a bigger file."""
        (files / "model.yaml").write_text(
            "model:\n  init_cfg_x:\n" + "".join(f"    {line}\n" for line in BAD.splitlines())
        )
        result = _cli(files, "validate", "model.yaml", "model.init_cfg_x", "--json")
        assert result.returncode == 1
        paths = [p["path"] for p in json.loads(result.stdout)["problems"]]
        assert paths == ["model.init_cfg_x.convs.mode", "model.init_cfg_x.head.std"]

    def test_imports_no_torch(self, files: Path) -> None:
        """Validating a file builds no model and imports no torch."""
        code = (
            "import sys; from initschema.cli import main; "
            "rc = main(['validate', 'bad.yaml']); print(rc, 'torch' in sys.modules)"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=files, timeout=120
        )
        assert result.stdout.split() == ["1", "False"]

    def test_hydra_config(self, tmp_path: Path) -> None:
        """Every init_cfg of a composed config; an override's problem names its origin."""
        good = _cli(tmp_path, "validate", "--config-dir", str(CONF), "--config-name", "config")
        assert good.returncode == 0, good.stderr
        bad = _cli(
            tmp_path,
            "validate",
            "--config-dir",
            str(CONF),
            "--config-name",
            "config",
            "--override",
            "model.init_cfg.head.std=-1",
        )
        assert bad.returncode == 1
        assert bad.stderr.startswith("Error in config model.init_cfg.head.std: std should be")
        assert bad.stderr.rstrip().endswith("[set on the command line: model.init_cfg.head.std=-1]")

    def test_usage_errors_exit_2(self, files: Path) -> None:
        """A missing file, or no file and no config: exit 2."""
        assert _cli(files, "validate", "nope.yaml").returncode == 2
        assert _cli(files, "validate").returncode == 2


class TestPlan:
    def test_factory_and_file(self, files: Path) -> None:
        """--model and --config: the plan, per parameter, on the meta device."""
        result = _cli(files, "plan", "--model", "nets:net", "--config", "good.yaml")
        assert result.returncode == 0, result.stderr
        assert "InitPlan for Sequential" in result.stdout
        assert (
            "Kaiming(a=0, mode='fan_in', nonlinearity='relu', distribution='normal')"
            in result.stdout
        )

    def test_json(self, files: Path) -> None:
        """--json is plan.to_dict()."""
        result = _cli(files, "plan", "--model", "nets:net", "--config", "good.yaml", "--json")
        data = json.loads(result.stdout)
        assert [a["params"] for a in data["actions"]] == [
            ["0.weight", "0.bias"],
            ["3.weight", "3.bias"],
        ]

    def test_hydra_config_and_compile_errors(self, tmp_path: Path) -> None:
        """The example app's model from its config; a compile error names its config path."""
        args = ["plan", "--config-dir", str(CONF), "--config-name", "config"]
        assert "InitPlan for Classifier" in _cli(tmp_path, *args).stdout
        bad = _cli(tmp_path, *args, "--override", "model.init_cfg.head.override={nope:{}}")
        assert bad.returncode == 1
        assert bad.stderr.startswith("Error in config model.init_cfg.head.override.nope.name:")

    def test_strict(self, files: Path) -> None:
        """--strict: a warning lint is a finding (exit 1)."""
        (files / "nomatch.yaml").write_text("x: {type: Normal, layer: Conv3d}\n")
        args = ["plan", "--model", "nets:net", "--config", "nomatch.yaml"]
        assert _cli(files, *args).returncode == 0
        strict = _cli(files, *args, "--strict")
        assert strict.returncode == 1 and "(strict: unmatched-layer)" in strict.stderr


class TestDiff:
    def test_only_what_changes(self, files: Path) -> None:
        """Two configs on one model: only the parameters whose initialization changes."""
        (files / "other.yaml").write_text(GOOD.replace("fan_in", "fan_out"))
        result = _cli(files, "diff", "--model", "nets:net", "good.yaml", "other.yaml", "--json")
        assert result.returncode == 0, result.stderr
        changed = json.loads(result.stdout)["changed"]
        assert [row["path"] for row in changed] == ["0.weight"]  # the bias stays 0
        assert changed[0]["a"]["initializer"] == (
            "Kaiming(a=0, mode='fan_in', nonlinearity='relu', distribution='normal')"
        )
        text = _cli(files, "diff", "--model", "nets:net", "good.yaml", "other.yaml").stdout
        assert text.startswith("1 of 6 parameters change")
        assert "[init_cfg.convs]" in text
