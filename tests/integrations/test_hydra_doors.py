"""A Hydra app of a user's own, outside the repository, run as real subprocesses: its own
models, conf/ and experiment file, an initializer registered by importing a module and
one by an installed package's entry point; a joblib sweep and a hydra-zen sweep with one
bad job, a callback recording how each job ended, the validated task called by a test."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from initschema_testing.subprocesses import Completed, environ, run_python

pytest.importorskip("hydra_plugins.hydra_joblib_launcher")

MODELS = """
import torch
from torch import nn
import initschema as ins


class Net(ins.BaseModule):
    def __init__(self, width=4, init_cfg=None):
        super().__init__(init_cfg)
        self.body = nn.Linear(width, width)
        self.head = nn.Linear(width, 2)


class Plain(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.body = nn.Linear(width, width)
        self.head = nn.Linear(width, 2)
"""

BY_IMPORT = """
import torch
import initschema as ins


@ins.register_initializer("Shrunk")
class ShrunkInit(ins.WeightInit):
    factor: float = 0.5

    def init_weight(self, weight, generator=None):
        torch.nn.init.constant_(weight, self.factor)
"""

BY_ENTRY_POINT = """
import torch
import initschema as ins


@ins.register_initializer("Tiny")
class TinyInit(ins.WeightInit):
    mode: str = "small"

    def init_weight(self, weight, generator=None):
        torch.nn.init.constant_(weight, 1e-3)
"""

RECORDER = """
from pathlib import Path
from hydra.experimental.callback import Callback


class Recorder(Callback):
    def on_job_end(self, config, job_return, **kwargs):
        with open(Path(config.hydra.runtime.cwd) / "jobs.txt", "a") as out:
            out.write(f"{job_return.status.name} {' '.join(job_return.overrides)}\\n")

    def on_run_end(self, config, job_return=None, **kwargs):
        with open(Path(config.hydra.runtime.cwd) / "jobs.txt", "a") as out:
            out.write(f"run end {job_return.status.name}\\n")
"""

CONFIG = """
defaults:
  - /init@model.init_cfg.body: normal
  - /init@model.init_cfg.custom: shrunk
  - /init@model.init_cfg.tiny: tiny
  - _self_
  - experiment: null

model:
  _target_: usermodels.Net
  init_cfg:
    body: {layer: [Linear], std: 0.02}
    custom: {params: [head.weight], factor: 0.25}
    tiny: {params: [head.bias]}
"""

EXPERIMENT = """
# @package _global_
model:
  init_cfg:
    body:
      std: -2
"""

APP = """
import userinits  # registers Shrunk by import
import initschema.hydra as ins_hydra


@ins_hydra.main(config_path="conf", config_name="config")
def task(cfg):
    model, plan = ins_hydra.instantiate_and_plan(cfg.model, cfg)
    plan.execute()
    print("ran std", cfg.model.init_cfg.body.std, "head", float(model.head.weight[0, 0]))


if __name__ == "__main__":
    task()
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's app folder; its site/ holds an installed dist with an entry point."""
    root = tmp_path_factory.mktemp("userapp")
    files = {
        "usermodels.py": MODELS,
        "userinits.py": BY_IMPORT,
        "site/epinits.py": BY_ENTRY_POINT,
        "site/epinits_dist-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: epinits-dist\n"
        "Version: 0.1\n",
        "site/epinits_dist-0.1.dist-info/entry_points.txt": "[initschema.initializers]\n"
        "tiny = epinits\n",
        "recorder.py": RECORDER,
        "conf/config.yaml": CONFIG,
        "conf/experiment/bad.yaml": EXPERIMENT,
        "app.py": APP,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text).lstrip())
    return root


def _run(app: Path, *args: str, script: str = "app.py") -> Completed:
    """``python SCRIPT ARGS`` in the app's folder, the app and its site/ on PYTHONPATH, with
    Hydra's short error messages (no HYDRA_FULL_ERROR)."""
    env = environ(app, app / "site", unset=["HYDRA_FULL_ERROR"])
    return run_python(script, *args, cwd=app, env=env, timeout=240)


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "Error in config" in line]


class TestSingleRun:
    def test_good_run_uses_both_custom_initializers(self, app: Path) -> None:
        """The app composes the import-registered and the entry-point initializers."""
        result = _run(app)
        assert result.returncode == 0, result.stderr
        assert "ran std 0.02 head 0.25" in result.stdout

    def test_bad_value_from_the_experiment_file(self, app: Path) -> None:
        """A bad value the user's experiment file wrote: one error line naming that file,
        exit status 1, no traceback; a callback sees the job fail."""
        (app / "jobs.txt").unlink(missing_ok=True)
        result = _run(app, "experiment=bad", "+hydra.callbacks.rec._target_=recorder.Recorder")
        assert result.returncode == 1
        assert "Traceback" not in result.stderr and "ran std" not in result.stdout
        assert _error_lines(result.stdout + result.stderr) == [
            "Error in config model.init_cfg.body.std: std should be greater than or equal "
            "to 0, got -2.0. [set in conf/experiment/bad.yaml]"
        ]
        assert (app / "jobs.txt").read_text() == "FAILED experiment=bad\nrun end FAILED\n"

    def test_task_called_with_a_composed_config(self, app: Path) -> None:
        """A test calling the validated task gets InitCfgError, not SystemExit."""
        check = """
            from hydra import compose, initialize_config_dir
            import initschema as ins
            import app
            with initialize_config_dir(config_dir=%r, version_base="1.3"):
                cfg = compose("config", overrides=["experiment=bad"], return_hydra_config=True)
            try:
                app.task.__wrapped__(cfg)
            except ins.InitCfgError as error:
                print(type(error).__name__, error)
        """
        (app / "check_task.py").write_text(textwrap.dedent(check % str(app / "conf")))
        result = _run(app, script="check_task.py")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == (
            "InitCfgError model.init_cfg.body.std: std should be greater than or equal to 0, "
            "got -2.0. [set in conf/experiment/bad.yaml]"
        )


class TestSweeps:
    def test_joblib_sweep_with_one_bad_job(self, app: Path) -> None:
        """joblib pickles the configs (the import-registered initializer included) to its
        workers: the good jobs run, the bad one fails alone, logs its error, and the
        sweep ends with status 1 and one error line."""
        (app / "jobs.txt").unlink(missing_ok=True)
        result = _run(
            app,
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "hydra.sweep.dir=joblib_sweep",
            "+hydra.callbacks.rec._target_=recorder.Recorder",
            "model.init_cfg.body.std=0.1,-1,0.2",
        )
        assert result.returncode == 1, result.stderr
        assert "BrokenProcessPool" not in result.stderr and "Traceback" not in result.stderr
        assert _error_lines(result.stdout + result.stderr) == [
            "Error in config model.init_cfg.body.std: std should be greater than or equal "
            "to 0, got -1.0. [set on the command line: model.init_cfg.body.std=-1]"
        ]
        log = (app / "joblib_sweep" / "1" / "app.log").read_text()
        assert "Error in config model.init_cfg.body.std" in log
        for good in ("0", "2"):
            assert "Error" not in (app / "joblib_sweep" / good / "app.log").read_text()
        assert sorted((app / "jobs.txt").read_text().splitlines()) == [
            "COMPLETED model.init_cfg.body.std=0.1",
            "COMPLETED model.init_cfg.body.std=0.2",
            "FAILED model.init_cfg.body.std=-1",
        ]

    def test_hydra_zen_launch_sweep(self, app: Path) -> None:
        """hydra-zen's launch(multirun=True) runs jobs with hydra.mode=None: the bad job
        fails as an InitCfgError the calling script catches; the other jobs ran."""
        script = """
            import userinits
            from hydra_zen import launch, make_config
            import initschema as ins
            import initschema.hydra as ins_hydra

            @ins_hydra.validated
            def task(cfg):
                print("ran std", cfg.model.init_cfg.body.std)

            Cfg = make_config(model=dict(init_cfg=dict(
                body=dict(type="Normal", layer=["Linear"], std=0.1),
                custom=dict(type="Shrunk", params=["head.weight"]))))
            try:
                launch(Cfg, task, overrides=["model.init_cfg.body.std=0.1,-1,0.2",
                       "hydra.sweep.dir=zen_sweep"], multirun=True, version_base="1.3")
            except ins.InitCfgError as error:
                print("caught", error.problems[0].path)
            print("the script goes on")
        """
        (app / "zen_sweep.py").write_text(textwrap.dedent(script))
        result = _run(app, script="zen_sweep.py")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert "ran std 0.1" in lines and "ran std 0.2" in lines
        assert lines[-2:] == ["caught model.init_cfg.body.std", "the script goes on"]


class TestEntryPoints:
    def test_schema_includes_entry_point_initializers(self, app: Path) -> None:
        """The JSON Schema knows an installed package's initializers (an editor accepts
        `type: Tiny`), without importing them by hand."""
        result = _run(app, "initschema", "schema", script="-m")
        assert result.returncode == 0, result.stderr
        types = json.loads(result.stdout)["$defs"]["initializer-type"]["enum"]
        assert "Tiny" in types and "Shrunk" not in types  # Shrunk: registered by import
