"""The ``initschema`` command as a user outside this repository meets it: the installed console
script in real subprocesses, from the folder of an app of their own (its models, ``conf/`` and
an experiment file), with no PYTHONPATH, a 100-column terminal, and never a traceback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from initschema import __version__
from initschema._cli.yaml_files import CommandError, load_yaml
from initschema_testing.subprocesses import (
    Completed,
    environ,
    run_initschema,
    run_initschema_into_head,
)

MODELS = """
import torch
from torch import nn

import initschema as ins


class Head(ins.BaseModule):
    def __init__(self, init_cfg=None):
        super().__init__(init_cfg)
        self.fc = nn.Linear(16, 4)


class Net(ins.BaseModule):
    def __init__(self, width=16, init_cfg=None):
        super().__init__(init_cfg)
        self.conv = nn.Conv2d(3, width, 3)
        self.norm = nn.BatchNorm2d(width)
        self.head = Head()


def plain():
    return nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))


def broken():
    raise RuntimeError("the data folder is missing")


def many():
    return nn.Sequential(*(nn.Linear(2, 2) for _ in range(2000)))
"""

CONFIG = """\
defaults:
  - /init@model.init_cfg.convs: conv_kaiming
  - /init@model.init_cfg.head: head_normal
  - _self_
  - experiment: null

model:
  _target_: models.Net
  width: 16
  init_cfg: {}
"""

EXPERIMENT = """\
# @package _global_
model:
  init_cfg:
    head:
      std: 0.5
"""

PLANTED = 'open({marker!r}, "w").write("planted code ran")\n'


def _run(cwd: Path, *args: str, module: bool = False) -> Completed:
    """The installed console script (or ``python -m initschema``) in ``cwd``: no PYTHONPATH,
    100 columns; no run may print a traceback."""
    result = run_initschema(*args, cwd=cwd, env=environ(COLUMNS="100"), module=module)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's app outside the repository: models.py, conf/config.yaml, an experiment."""
    root = tmp_path_factory.mktemp("app")
    (root / "models.py").write_text(MODELS)
    (root / "conf" / "experiment").mkdir(parents=True)
    (root / "conf" / "config.yaml").write_text(CONFIG)
    (root / "conf" / "experiment" / "wide_head.yaml").write_text(EXPERIMENT)
    (root / "init.yaml").write_text("linears: {type: Normal, layer: Linear, std: 0.02}\n")
    (root / "conf" / "plain.yaml").write_text(PLAIN)
    return root


PLAIN = """\
defaults:
  - /init@init_rules.linears: linear_normal
  - _self_

model:
  _target_: models.plain
"""


HYDRA = ("--config-dir", "conf", "--config-name", "config")


class TestHydraApp:
    def test_plan_finds_the_apps_targets(self, app: Path) -> None:
        """models.Net from the current directory, without PYTHONPATH; the table fits 100
        columns and shows the arguments the rules set."""
        result = _run(app, "plan", *HYDRA)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("InitPlan for Net")
        assert "Normal(std=0.01)" in result.stdout and "Kaiming()" in result.stdout
        assert _widest(result.stdout) <= 100

    @pytest.mark.parametrize("command", ["validate", "plan", "diff", "report"])
    def test_positional_override(self, app: Path, command: str) -> None:
        """A Hydra override as a positional argument, as the app takes it."""
        result = _run(app, command, *HYDRA, "model.init_cfg.head.std=-1")
        assert result.returncode == 1
        assert result.stderr.splitlines() == [
            "Error in config model.init_cfg.head.std: std should be greater than or equal to 0, "
            "got -1.0. [set on the command line: model.init_cfg.head.std=-1]"
        ]

    def test_diff_an_experiment(self, app: Path) -> None:
        """diff against an experiment file: only the head's weight changes, the change
        spelled out, within 100 columns."""
        result = _run(app, "diff", *HYDRA, "experiment=wide_head")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "1 of 6 parameters change (without the overrides → with them)"
        row = next(line for line in lines if "│ head.fc.weight" in line)
        assert "Normal(std=0.01 → 0.5)" in row
        assert _widest(result.stdout) <= 100

    def test_diff_of_equal_values_is_empty(self, app: Path) -> None:
        """Setting a value to what it already is changes nothing."""
        result = _run(app, "diff", *HYDRA, "model.init_cfg.head.std=0.01", "--json")
        assert json.loads(result.stdout) == {"ok": True, "changed": []}

    def test_validate_summary(self, app: Path) -> None:
        """A valid composed config: one line on stdout, nothing on stderr."""
        result = _run(app, "validate", *HYDRA)
        assert result.returncode == 0
        assert result.stdout == "config composed from conf: valid, 1 init_cfg with 2 rules\n"
        assert result.stderr == ""

    def test_failed_instantiate(self, app: Path) -> None:
        """A _target_ that does not exist, or a model that raises: one line, exit 2."""
        missing = _run(app, "plan", *HYDRA, "model._target_=models.Nope")
        assert missing.returncode == 2
        assert len(missing.stderr.splitlines()) == 1
        assert missing.stderr.startswith("initschema plan: error: building model failed:")
        assert "models.Nope" in missing.stderr
        raising = _run(app, "report", "--model", "models:broken", "--config", "init.yaml")
        assert raising.returncode == 2
        assert raising.stderr == (
            "initschema report: error: --model models:broken failed to build the model: "
            "RuntimeError: the data folder is missing\n"
        )

    def test_report_and_plot(self, app: Path) -> None:
        """report runs the config's model; --plot says where it wrote."""
        pytest.importorskip("matplotlib")
        result = _run(app, "report", *HYDRA, "--plot", "out.png")
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stderr == f"Wrote the plot to {app / 'out.png'}\n"
        assert (app / "out.png").read_bytes()[:4] == b"\x89PNG"


class TestModelFactory:
    def test_plain_module_needs_config(self, app: Path) -> None:
        """--model of a plain nn.Module without --config: a usage error naming --config."""
        result = _run(app, "plan", "--model", "models:plain")
        assert result.returncode == 2
        assert result.stderr.startswith("initschema plan: error: --model models:plain builds")
        assert "pass --config FILE.yaml" in result.stderr

    def test_report_shows_the_plans_lints(self, app: Path) -> None:
        """A params pattern matching nothing: report lists the lint plan lists; --strict
        fails on it."""
        (app / "nomatch.yaml").write_text(
            "linears: {type: Normal, layer: Linear}\nextra: {type: Zeros, params: [nope.*]}\n"
        )
        args = ["--model", "models:plain", "--config", "nomatch.yaml"]
        plan = _run(app, "plan", *args)
        report = _run(app, "report", *args)
        assert "[unmatched-pattern] init_cfg.extra.params: 'nope.*'" in plan.stdout
        assert "[unmatched-pattern] init_cfg.extra.params: 'nope.*'" in report.stdout
        assert report.returncode == 0
        assert report.stdout.startswith("4 parameters, 0 findings, 1 lint warning (below)\n")
        strict = _run(app, "report", *args, "--strict")
        assert strict.returncode == 1
        assert strict.stderr.startswith("Error in config init_cfg.extra.params: 'nope.*'")
        assert "(strict: unmatched-pattern)" in strict.stderr

    def test_the_commands_meta_build_is_not_a_lint(self, app: Path) -> None:
        """plan builds on the meta device by its own choice: nothing about tensors left
        there, and --strict has nothing to fail on (the unwritten Linear keeps PyTorch's
        default, an INFO lint)."""
        (app / "first.yaml").write_text("first: {type: Zeros, params: ['0.*']}\n")
        args = ["plan", "--model", "models:plain", "--config", "first.yaml"]
        result = _run(app, *args)
        assert "stays-on-meta" not in result.stdout
        assert "[default-init] 2 parameters keep PyTorch's default" in result.stdout
        strict = _run(app, *args, "--strict")
        assert strict.returncode == 0 and strict.stderr == ""

    def test_broken_pipe(self, app: Path) -> None:
        """diff --json | head: the reader leaves early, the command ends quietly."""
        (app / "b.yaml").write_text("linears: {type: Normal, layer: Linear, std: 0.5}\n")
        args = ["diff", "--model", "models:many", "init.yaml", "b.yaml", "--json"]
        result = run_initschema_into_head(*args, cwd=app, env=environ())
        assert result.stdout == '{"ok": tru'
        assert result.returncode == 141
        assert result.stderr == ""


class TestPlantedCode:
    @pytest.mark.parametrize("module", [False, True], ids=["console script", "python -m"])
    def test_planted_modules_do_not_run(self, tmp_path: Path, module: bool) -> None:
        """rich.py and safetensors.py in the current directory never stand in for the
        installed packages, with --model from that directory still found."""
        for name in ("rich", "safetensors"):
            (tmp_path / f"{name}.py").write_text(PLANTED.format(marker=f"MARKER-{name}"))
        (tmp_path / "nets.py").write_text(MODELS)
        (tmp_path / "cfg.yaml").write_text("x: {type: Normal, layer: Linear}\n")
        for args in (
            ["plan", "--model", "torch.nn:Identity", "--config", "cfg.yaml"],
            ["diff", "--model", "nets:plain", "cfg.yaml", "cfg.yaml"],
            ["report", "--model", "nets:plain", "--config", "cfg.yaml"],
            ["validate", "cfg.yaml"],
        ):
            result = _run(tmp_path, *args, module=module)
            assert result.returncode == 0, result.stderr
        assert not list(tmp_path.glob("MARKER-*"))


class TestValidateFile:
    HYDRA_FILE = """\
lr_std: 0.02
model:
  init_cfg:
    head: {type: Normal, std: "${lr_std}"}
    trunk: {type: Pretrained, checkpoint: "???"}
    tail: {type: Normal, std: "${optim.lr}"}
"""

    @pytest.mark.parametrize("nodes", [[], ["model.init_cfg"]], ids=["found", "KEY"])
    def test_unresolved_values_are_notes(self, tmp_path: Path, nodes: list[str]) -> None:
        """??? and an interpolation only the composed config resolves: a note each, exit 0,
        the same in every form; what resolves in the file is checked."""
        (tmp_path / "exp.yaml").write_text(self.HYDRA_FILE)
        result = _run(tmp_path, "validate", "exp.yaml", *nodes)
        assert result.returncode == 0, result.stderr
        assert result.stderr.splitlines() == [
            "Note: model.init_cfg.trunk.checkpoint: not checked: ??? (its value is given when "
            "composed)",
            "Note: model.init_cfg.tail.std: not checked: ${optim.lr} does not resolve in this "
            "file (Interpolation key 'optim.lr' not found)",
        ]
        assert result.stdout == ("exp.yaml: valid, 1 init_cfg with 3 rules; 2 values not checked\n")
        bad = _run(tmp_path, "validate", "exp.yaml", *nodes, "--json")
        assert json.loads(bad.stdout)["notes"][0]["path"] == "model.init_cfg.trunk.checkpoint"

    def test_missing_value_in_a_whole_file(self, tmp_path: Path) -> None:
        """A whole-file init_cfg with a ???: the same note."""
        (tmp_path / "rule.yaml").write_text("trunk:\n  type: Pretrained\n  checkpoint: ???\n")
        result = _run(tmp_path, "validate", "rule.yaml")
        assert result.returncode == 0
        assert "Note: init_cfg.trunk.checkpoint: not checked: ???" in result.stderr

    def test_a_bad_value_beside_notes(self, tmp_path: Path) -> None:
        """A value the file does give is checked: exit 1."""
        (tmp_path / "exp.yaml").write_text(self.HYDRA_FILE.replace("lr_std: 0.02", "lr_std: -1"))
        result = _run(tmp_path, "validate", "exp.yaml")
        assert result.returncode == 1
        assert result.stderr.startswith("Error in config model.init_cfg.head.std: std should be")

    def test_alias_bomb(self, tmp_path: Path) -> None:
        """321 bytes whose aliases expand tenfold per level: refused in well under a second,
        one line, exit 2."""
        lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
            lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 10) + "]")
        bomb = tmp_path / "bomb.yaml"
        bomb.write_text("\n".join(lines) + "\n")
        start = time.perf_counter()
        with pytest.raises(CommandError, match=r"aliases expand to [\d,]{13} nodes"):
            load_yaml(str(bomb))  # over a billion
        assert time.perf_counter() - start < 0.5
        result = _run(tmp_path, "validate", "bomb.yaml")
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
        (tmp_path / "conf").mkdir()
        (tmp_path / "conf" / "config.yaml").write_bytes(bomb.read_bytes())
        composed = _run(tmp_path, "validate", "--config-dir", "conf", "--config-name", "config")
        assert composed.returncode == 2 and "aliases expand" in composed.stderr

    def test_unrelated_broken_file_in_config_dir(self, app: Path) -> None:
        """Only aliases are checked before composing: a broken YAML file the config does not
        use is Hydra's business, not a refusal."""
        (app / "conf" / "scratch").mkdir(exist_ok=True)
        (app / "conf" / "scratch" / "broken.yaml").write_text("a: [\n")
        try:
            result = _run(app, "validate", *HYDRA)
        finally:
            (app / "conf" / "scratch" / "broken.yaml").unlink()
        assert result.returncode == 0, result.stderr

    def test_ordinary_aliases_load(self, tmp_path: Path) -> None:
        """An anchor reused a few times is fine."""
        (tmp_path / "a.yaml").write_text(
            "base: &n {type: Normal, layer: Linear, std: 0.02}\n"
            "model:\n  init_cfg:\n    a: *n\n    b: *n\n"
        )
        result = _run(tmp_path, "validate", "a.yaml", "model.init_cfg")
        assert result.returncode == 0, result.stderr


class TestHelp:
    def test_version(self, tmp_path: Path) -> None:
        result = _run(tmp_path, "--version")
        assert result.stdout == f"initschema {__version__}\n"

    @pytest.mark.parametrize("command", ["plan", "diff", "report"])
    def test_building_commands_say_they_run_targets(self, tmp_path: Path, command: str) -> None:
        """plan, diff and report say that they run the config's _target_s."""
        text = " ".join(_run(tmp_path, command, "--help").stdout.split())
        assert "running the _target_s it names" in text

    def test_validate_says_it_builds_nothing(self, tmp_path: Path) -> None:
        text = " ".join(_run(tmp_path, "validate", "--help").stdout.split())
        assert "Builds no model, imports no torch and runs nothing the config names" in text


class TestPlainModelApp:
    """A plain nn.Module with its rules under ``init_rules`` (the README's recipe)."""

    PLAIN = ("--config-dir", "conf", "--config-name", "plain")

    def test_validate_checks_init_rules(self, app: Path) -> None:
        """init_rules is validated by default: a bad value there fails, not 'valid'."""
        result = _run(app, "validate", *self.PLAIN, "init_rules.linears.std=-1")
        assert result.returncode == 1
        assert result.stderr.startswith(
            "Error in config init_rules.linears.std: std should be greater than or equal to 0"
        )

    def test_validate_with_nothing_to_check_fails(self, app: Path) -> None:
        """A config with no node under the keys checked is not reported valid."""
        result = _run(app, "validate", *self.PLAIN, "--keys", "init_cfg")
        assert result.returncode == 2
        assert "has no node under init_cfg, so nothing was checked" in result.stderr
        assert "--keys" in result.stderr

    def test_plan_with_rules(self, app: Path) -> None:
        """plan --rules init_rules plans the rules for the plain model, naming their paths."""
        result = _run(app, "plan", *self.PLAIN, "--rules", "init_rules")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("InitPlan for Sequential")
        assert "init_rules.linears" in result.stdout
        assert _widest(result.stdout) <= 100

    def test_plan_without_rules_says_how(self, app: Path) -> None:
        """Without --rules, a plain model is an error at its node that names the option."""
        result = _run(app, "plan", *self.PLAIN)
        assert result.returncode == 1
        assert result.stderr.startswith(
            "Error in config model: builds a Sequential, a plain nn.Module that takes no "
            "init_cfg: keep its rules under a key of the config (init_rules) and plan them "
            "with rules='init_rules' (initschema plan|diff|report: --rules init_rules)."
        )

    def test_diff_with_rules(self, app: Path) -> None:
        """diff compares the rules with and without overrides."""
        result = _run(
            app, "diff", *self.PLAIN, "--rules", "init_rules", "init_rules.linears.std=0.5"
        )
        assert result.returncode == 0, result.stderr
        assert "2 of 4 parameters change" in result.stdout
