"""The ``initschema`` command, run as a user runs it: a subprocess, exit statuses, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from initschema_testing.paths import ROOT
from initschema_testing.subprocesses import Completed, environ, run_initschema, run_python

CONF = ROOT / "conf"
GOOD = "convs: {type: Kaiming, layer: Conv2d, mode: fan_in}\nhead: {type: Normal, layer: Linear}\n"
BAD = "convs: {type: Kaiming, layer: Conv2d, mode: fan_middle}\nhead: {type: Normal, std: -1}\n"
FACTORY = (
    "import torch.nn as nn\n\n"
    "def net():\n"
    "    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), "
    "nn.Linear(8, 4))\n"
)


def _cli(tmp_path: Path, *args: str) -> Completed:
    """The ``initschema`` console script (``python -m initschema`` where it is not installed
    next to this Python) in ``tmp_path``, where the files and factories are."""
    return run_initschema(*args, cwd=tmp_path, env=environ(tmp_path, ROOT / "examples"))


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
        result = run_python("-c", code, cwd=files)
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
        assert "Kaiming(mode='fan_in')" in result.stdout  # what the rule sets, no defaults

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
    def test_a_config_and_its_overrides(self, tmp_path: Path) -> None:
        """A Hydra config without and with overrides: what the overrides change."""
        args = ["diff", "--config-dir", str(CONF), "--config-name", "config", "--json"]
        result = _cli(tmp_path, *args, "--override", "model.init_cfg.head.std=0.5")
        assert result.returncode == 0, result.stderr
        changed = json.loads(result.stdout)["changed"]
        assert [row["path"] for row in changed] == ["head.fc.weight"]
        assert changed[0]["b"] == {
            "initializer": "Normal(mean=0, std=0.5)",
            "rule": "model.init_cfg.head",
        }

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
        assert text.startswith("1 of 6 parameters change (good.yaml → other.yaml)\n")
        row = next(line for line in text.splitlines() if "│ 0.weight" in line)
        assert "Kaiming(mode='fan_in' → 'fan_out')" in row and "init_cfg.convs" in row


class TestReport:
    def test_clean_model(self, files: Path) -> None:
        """Every parameter as its formula predicts: exit 0; --json gives each row."""
        args = ["report", "--model", "nets:net", "--config", "good.yaml", "--seed", "1", "--json"]
        result = _cli(files, *args)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert (data["ok"], data["findings"], data["seed"]) == (True, [], 1)
        rows = {row["path"]: row for row in data["parameters"]}
        assert list(rows) == [f"{i}.{n}" for i in (0, 1, 3) for n in ("weight", "bias")]
        # Kaiming(mode='fan_in', relu) on a 8×3×3×3 conv: √2/√27.
        assert rows["0.weight"]["expected"]["std"] == pytest.approx(2**0.5 / 27**0.5)
        assert rows["0.weight"]["writer"] == "write" and rows["1.weight"]["writer"] == "none"
        assert rows["3.bias"]["measured"] == {"mean": 0, "std": 0, "min": 0, "max": 0}

    def test_findings_exit_1(self, files: Path) -> None:
        """A user module's parameter nothing writes: exit 1, the table flags it, a finding
        says why; a bad config is exit 1 too, before anything is built."""
        (files / "flagged.py").write_text(
            "import torch\nfrom torch import nn\n\n\n"
            "class Scale(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            # zeros, not torch.empty: raw memory may hold NaN, a second finding
            "        self.gamma = nn.Parameter(torch.zeros(16))\n\n\n"
            "def net():\n"
            "    return nn.Sequential(nn.Linear(16, 16), Scale())\n"
        )
        result = _cli(files, "report", "--model", "flagged:net", "--config", "good.yaml")
        assert result.returncode == 1, result.stderr
        # the plan's lints too: a Conv2d rule on a model with none, 1.gamma unwritten
        assert result.stdout.startswith("3 parameters, 1 finding at 1 path, 2 lint warnings")
        assert "\n  [unmatched-layer] init_cfg.convs.layer: 'Conv2d'" in result.stdout
        row = next(line for line in result.stdout.splitlines() if "│ 1.gamma" in line)
        assert "not written" in row and row.rstrip("│ ").endswith("uninitialized")
        assert "\nFindings:\n  1.gamma: nothing wrote it, and Scale is no torch module" in (
            result.stdout
        )
        bad = _cli(files, "report", "--model", "nets:net", "--config", "bad.yaml")
        assert bad.returncode == 1 and bad.stderr.startswith("Error in config init_cfg.convs")

    def test_hydra_config_and_plot(self, tmp_path: Path) -> None:
        """The example app's model from its config, faithful; --plot writes a PNG."""
        pytest.importorskip("matplotlib")
        args = ["report", "--config-dir", str(CONF), "--config-name", "config"]
        result = _cli(tmp_path, *args, "--plot", "out.png")
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("31 parameters, 0 findings\n")
        data = (tmp_path / "out.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000

    def test_plot_without_matplotlib(self, files: Path) -> None:
        """--plot without matplotlib: exit 2 before any work, naming the install."""
        code = (
            "import sys; sys.modules['matplotlib'] = None; from initschema.cli import main; "
            "sys.exit(main(['report', '--model', 'nets:net', '--plot', 'out.png']))"
        )
        result = run_python("-c", code, cwd=files)
        assert result.returncode == 2
        assert "initschema report: error: --plot: Drawing the report needs matplotlib" in (
            result.stderr
        )
        assert "pip install 'initschema[plot]'" in result.stderr
