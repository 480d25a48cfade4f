"""``initschema validate|plan|report CONFIG.py`` (``initschema/_cli/mmengine_config.py``)
ends the way every other form of the command ends: the same ``--import`` option, one line
and exit 2 for what it cannot use, no traceback, exit 141 into a closed pipe, and the
report's lints, in text and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from initschema_testing.paths import SUPPORT
from initschema_testing.subprocesses import (
    Completed,
    environ,
    run_initschema,
    run_initschema_into_head,
)

pytest.importorskip("mmengine")

CONFIG = """\
custom_imports = dict(imports=["mmengine_toy"], allow_failed_imports=False)
model = dict(
    type="ToyNet",
    init_cfg=dict(type="Kaiming", layer="Conv2d"),
    stem=dict(init_cfg=dict(type="Normal", std=0.01, layer="Conv2d")),
)
"""

WIDE = """\
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch import nn


@MODELS.register_module()
class Wide(BaseModule):
    def __init__(self, init_cfg=None):
        super().__init__(init_cfg)
        self.layers = nn.ModuleList(nn.Linear(2, 2) for _ in range(2000))
"""


def _run(cwd: Path, *args: str) -> Completed:
    """The ``initschema`` command in ``cwd``, the toy project's modules on PYTHONPATH."""
    return run_initschema(*args, cwd=cwd, env=environ(SUPPORT), timeout=180)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "toy.py").write_text(CONFIG)
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('plugin setup failed')\n")
    (tmp_path / "needs_dep.py").write_text("import not_installed_dep\n")
    (tmp_path / "needs_dep_cfg.py").write_text(
        'custom_imports = dict(imports=["needs_dep"], allow_failed_imports=False)\n'
        'model = dict(type="Wide")\n'
    )
    (tmp_path / "wide.py").write_text(WIDE)
    (tmp_path / "wide_cfg.py").write_text(
        'custom_imports = dict(imports=["wide"], allow_failed_imports=False)\n'
        'model = dict(type="Wide", init_cfg=dict(type="Normal", std=0.02, layer="Linear"))\n'
    )
    return tmp_path


def test_import_option_is_the_commands(project: Path) -> None:
    """--import has the same help in both forms of the command."""
    config_form = _run(project, "plan", "toy.py", "--help").stdout
    yaml_form = _run(project, "plan", "--help").stdout
    for help_text in (config_form, yaml_form):
        assert "in MMEngine's registry) are known (repeatable)" in " ".join(help_text.split())
    assert "Exit status: 0 ok; 1 findings" in " ".join(config_form.split())


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_import_that_raises_is_one_line(project: Path, command: str) -> None:
    """A module named by --import that fails while importing: exit 2, one line, no
    traceback (the CONFIG.py form printed Python's traceback)."""
    result = _run(project, command, "toy.py", "--import", "broken_plugin")
    assert result.returncode == 2
    assert result.stderr == (
        f"initschema {command}: error: --import broken_plugin: importing it failed: "
        "RuntimeError: plugin setup failed\n"
    )


def test_import_that_is_missing(project: Path) -> None:
    """A module that cannot be found: exit 2 and the fix."""
    result = _run(project, "validate", "toy.py", "--import", "no_such_plugin")
    assert result.returncode == 2
    assert "--import no_such_plugin: cannot import it" in result.stderr
    assert "Put the directory that holds it on PYTHONPATH" in result.stderr
    assert "Traceback" not in result.stderr


def test_report_lists_lints(project: Path) -> None:
    """report CONFIG.py shows the plan's lints, in text and in JSON, as report does for the
    other forms (the Linear layers keep PyTorch's default: a default-init lint)."""
    text = _run(project, "report", "toy.py", "--seed", "1")
    assert text.returncode in (0, 1), text.stderr
    assert "Lints:" in text.stdout and "[default-init]" in text.stdout
    data = _run(project, "report", "toy.py", "--seed", "1", "--json")
    lints = json.loads(data.stdout)["lints"]
    assert "default-init" in [lint["kind"] for lint in lints]


def test_closed_pipe_exits_quietly(project: Path) -> None:
    """plan CONFIG.py --json | head on a plan larger than a pipe holds: exit 141 and
    nothing on stderr (the CONFIG.py form printed BrokenPipeError's traceback)."""
    args = ["plan", "wide_cfg.py", "--json"]
    result = run_initschema_into_head(*args, cwd=project, env=environ(SUPPORT))
    assert result.stdout == '{"ok": tru'
    assert result.returncode == 141
    assert result.stderr == ""


def test_import_of_a_module_whose_import_is_missing(project: Path) -> None:
    """--import of a module that exists but imports something not installed names that
    dependency, not PYTHONPATH advice about the module itself."""
    result = _run(project, "validate", "toy.py", "--import", "needs_dep")
    assert result.returncode == 2
    assert result.stderr == (
        "initschema validate: error: --import needs_dep: importing it failed: it imports "
        "'not_installed_dep', which is not installed (No module named 'not_installed_dep').\n"
    )


def test_custom_imports_failure_names_its_cause(project: Path) -> None:
    """A custom_imports module that fails: one line with the module's own error first (MMEngine
    wraps it in an ImportError listing sys.path over several lines)."""
    result = _run(project, "validate", "needs_dep_cfg.py")
    assert result.returncode == 2
    assert result.stderr == (
        "initschema validate: error: needs_dep_cfg.py cannot be read: ModuleNotFoundError: "
        "No module named 'not_installed_dep' (so Failed to import custom modules from "
        "{'imports': ['needs_dep'], 'allow_failed_imports': False})\n"
    )


def test_cfg_options_dict_value_is_a_usage_error(project: Path) -> None:
    """A dict(...) value, which MMEngine's KEY=VALUE parser recurses on forever: exit 2
    with the syntax it takes (it was a RecursionError)."""
    result = _run(
        project,
        "validate",
        "toy.py",
        "--cfg-options",
        'model.init_cfg=[dict(type="Normal",std=-2)]',
    )
    assert result.returncode == 2
    assert "initschema validate: error: --cfg-options: a value MMEngine's" in result.stderr
    assert "set a dict's keys one by one" in result.stderr
    assert "RecursionError" not in result.stderr


def test_failed_build_names_the_model_type(project: Path) -> None:
    """A model type the registry does not know: exit 2, one line naming the type."""
    (project / "unknown.py").write_text('model = dict(type="NoSuchNet")\n')
    result = _run(project, "plan", "unknown.py")
    assert result.returncode == 2
    assert result.stderr.startswith(
        "initschema plan: error: building the model (type='NoSuchNet') failed: KeyError: "
    )
    assert result.stderr.count("\n") == 1


def test_help_describes_each_command(project: Path) -> None:
    """Each command's help says what it does, and the seed option what it means; the main
    help names the CONFIG.py form."""
    report = " ".join(_run(project, "report", "toy.py", "--help").stdout.split())
    assert "Build and initialize the model of an MMEngine Python config file" in report
    assert "seeded execution: each tensor from a generator of (N, its path)" in report
    main = _run(project, "--help").stdout
    assert "initschema validate|plan|report CONFIG.py [--cfg-options KEY=VALUE ...]" in main
