"""The examples run as a user runs them."""

from __future__ import annotations

from pathlib import Path

from initschema_testing.paths import ROOT
from initschema_testing.subprocesses import Completed, run_python


def test_tutorial_runs() -> None:
    """examples/tutorial.py runs every section and shows plans, reports and the error."""
    result = run_python(str(ROOT / "examples" / "tutorial.py"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for number in range(1, 9):
        assert f"======== {number}. " in out
    assert "initialized CustomNet: 6 parameters, 4 by init_cfg rules, 2 by user init_weights" in out
    assert "InitCfgError: TwoConvNet.init_cfg.mode: 'fan_middle' is not a valid mode" in out


def _train(tmp_path: Path, *args: str) -> Completed:
    """Run the Hydra app as a user would (its outputs/ go under tmp_path)."""
    return run_python(str(ROOT / "examples" / "train.py"), *args, cwd=tmp_path, timeout=300)


def test_train_good_config(tmp_path: Path) -> None:
    """The default run builds on the meta device, prints the plan and the report."""
    result = _train(tmp_path, "model.init_cfg.convs.mode=fan_in", f"save={tmp_path / 'm.pth'}")
    assert result.returncode == 0, result.stderr
    assert "Built Classifier (on the meta device, then materialized)." in result.stdout
    assert "InitPlan for Classifier" in result.stdout
    assert "Kaiming(mode='fan_in')" in result.stdout  # the arguments the rule sets
    assert (
        "initialized Classifier: 31 parameters, 31 by init_cfg rules, 0 unchanged" in result.stdout
    )
    assert "forward check: logits (2, 10), finite: True" in result.stdout
    assert (tmp_path / "m.pth").exists()


def test_train_experiment(tmp_path: Path) -> None:
    """experiment=vit_small (timm's init, pos_embed and cls_token included, from config
    alone) builds on the meta device; its Call rule gives the patch embedding its default."""
    result = _train(tmp_path, "experiment=vit_small")
    assert result.returncode == 0, result.stderr
    assert "Built Classifier (on the meta device, then materialized)." in result.stdout
    assert (
        "initialized Classifier: 56 parameters, 54 by init_cfg rules, 2 by Call rules, "
        "0 unchanged" in result.stdout
    )


def test_train_bad_value(tmp_path: Path) -> None:
    """A bad value exits non-zero before the model is built, naming the path."""
    result = _train(tmp_path, "model.init_cfg.head.std=-1")
    assert result.returncode == 1
    assert (
        "\nError in config model.init_cfg.head.std: std should be greater than or equal to 0, "
        "got -1.0. [set on the command line: model.init_cfg.head.std=-1]\n" in result.stderr
    )
    assert "Traceback" not in result.stderr and result.stderr.count("Error in config") == 1
    assert "Built" not in result.stdout and "Error in config" not in result.stdout


def test_train_bad_enum(tmp_path: Path) -> None:
    """A bad choice fails at compose time with the full key."""
    result = _train(tmp_path, "model.init_cfg.convs.mode=fan_middle")
    assert result.returncode != 0
    assert "Invalid value 'fan_middle', expected one of [fan_in, fan_out]" in result.stderr
    assert "full_key: model.init_cfg.convs.mode" in result.stderr


def test_train_cfg_job_and_help(tmp_path: Path) -> None:
    """--cfg job prints the composed config; --help works."""
    job = _train(tmp_path, "--cfg", "job", "~init@model.init_cfg.norms")
    assert job.returncode == 0 and "convs:" in job.stdout and "norms:" not in job.stdout
    assert _train(tmp_path, "--help").returncode == 0
