"""``initschema.mmengine``: MMEngine's ``BaseModule`` switched to initschema, compared with
mmengine-lite's own (``deactivated()``) on the same classes; MMEngine 0.10.7's
``tests/test_model/test_base_module.py`` behaviours (model wrappers, an instance's
``init_weights``, plain children with ``init_weights``, TypeErrors) and initializers
registered in MMEngine's registry."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any
from unittest.mock import patch

import pytest
import torch
from torch import nn

pytest.importorskip("mmengine.model")
pytestmark = pytest.mark.openmmlab

import mmengine.model as mm  # noqa: E402
from mmengine.model.weight_init import BaseInit  # noqa: E402
from mmengine.registry import WEIGHT_INITIALIZERS, DefaultScope, Registry  # noqa: E402

import initschema as ins  # noqa: E402
import initschema.mmengine as door  # noqa: E402
from initschema_testing.paths import SUPPORT  # noqa: E402
from initschema_testing.subprocesses import Completed, environ, run_initschema, run_python  # noqa: E402

# The import opened the door for the whole session; other test modules compare with
# MMEngine's own BaseModule, so it is open only during each test of this module.
door.deactivate()


@pytest.fixture(autouse=True)
def _door_open() -> Iterator[None]:
    door.activate()
    try:
        yield
    finally:
        door.deactivate()


class Conv(mm.BaseModule):
    def __init__(self, init_cfg: Any = None) -> None:
        super().__init__(init_cfg)
        self.conv = nn.Conv2d(3, 4, 3)


class Custom(mm.BaseModule):
    """MMEngine's test's CustomLinear: an init_weights of its own."""

    def __init__(self, init_cfg: Any = None) -> None:
        super().__init__(init_cfg)
        self.linear = nn.Linear(2, 3)

    def init_weights(self) -> None:
        nn.init.constant_(self.linear.weight, 1)
        nn.init.normal_(self.linear.bias)


class Net(mm.BaseModule):
    def __init__(self, init_cfg: Any = None, child_cfg: Any = None) -> None:
        super().__init__(init_cfg)
        self.a = Conv(child_cfg)
        self.reg = nn.Linear(3, 4)


class FakeDDP(nn.Module):
    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


class Plain(nn.Module):
    """Not a BaseModule, but with an init_weights: MMEngine calls it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def init_weights(self) -> None:
        nn.init.uniform_(self.fc.weight, -2, 2)


WITHOUT_MMENGINE = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] == 'mmengine':\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, Block())\n"
)
"""The start of a ``python -c`` snippet in which importing MMEngine fails, as where it is
not installed."""

RULES = [
    dict(type="Kaiming", layer="Conv2d"),
    dict(type="Normal", std=0.2, layer="Linear", override=dict(name="reg", type="Uniform")),
]


def _both(build: Callable[[], nn.Module]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``build()`` then ``init_weights()`` from seed 0 with MMEngine's own BaseModule and
    through the door: each one's state dict and the RNG state after it."""
    found = []
    for switched in (False, True):
        with door.deactivated() if not switched else _nothing():
            torch.manual_seed(0)
            model = build()
            model.init_weights()  # type: ignore[operator]
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        found.append({"state": state, "rng": torch.get_rng_state()})
    return found[0], found[1]


class _nothing:
    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        pass


def _assert_same(ref: dict[str, Any], ours: dict[str, Any]) -> None:
    assert list(ours["state"]) == list(ref["state"])
    differ = [k for k, v in ref["state"].items() if not torch.equal(v, ours["state"][k])]
    assert not differ, f"tensors differ: {differ}"
    assert torch.equal(ours["rng"], ref["rng"])


@pytest.fixture
def initschema_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="initschema")
    yield caplog


class TestActivation:
    def test_active_on_mmengines_class(self) -> None:
        """The door is open on MMEngine's class itself (the name bound here before)."""
        assert door.active()
        assert mm.BaseModule is door.BaseModule
        assert getattr(mm.BaseModule.init_weights, "_initschema_base_init_weights", False)

    def test_twice_is_harmless_and_deactivate_restores(self) -> None:
        """activate() twice changes nothing; deactivate() gives MMEngine's methods back."""
        door.activate()
        door.activate()
        switched = mm.BaseModule.init_weights
        with door.deactivated():
            assert not door.active()
            assert mm.BaseModule.init_weights.__module__ == "mmengine.model.base_module"
            assert mm.BaseModule.__init__.__module__ == "mmengine.model.base_module"
            assert Custom.init_weights.__qualname__ == "Custom.init_weights"
            assert not hasattr(Custom.init_weights, "__wrapped_init_weights__")
        assert door.active()
        assert mm.BaseModule.init_weights is switched
        assert hasattr(Custom.init_weights, "__wrapped_init_weights__")

    def test_same_as_mmengine(self) -> None:
        """Rules, overrides, a child init_cfg and user init_weights: MMEngine's bits."""

        def build() -> nn.Module:
            net = Net(RULES, dict(type="Xavier", layer="Conv2d", distribution="uniform"))
            net.custom = Custom()
            return net

        _assert_same(*_both(build))

    def test_bad_init_cfg_fails_when_built(self) -> None:
        """MMEngine accepts a negative std when building; the door does not."""
        with door.deactivated():
            Net(dict(type="Normal", std=-1, layer="Linear"))
        with pytest.raises(ins.InitCfgError, match=r"Net\.init_cfg\.std"):
            Net(dict(type="Normal", std=-1, layer="Linear"))

    def test_bad_override_fails_before_any_write(self) -> None:
        """MMEngine writes the first rule, then raises on the override naming nothing; the
        door raises first and leaves every weight as it was."""
        cfg = [dict(type="Constant", val=3, layer="Conv2d"), dict(RULES[1], override={"name": "x"})]
        with door.deactivated():
            net = Net(cfg)
            with pytest.raises(RuntimeError, match="did not have attribute x"):
                net.init_weights()
            assert torch.all(net.a.conv.weight == 3)
        net = Net(cfg)
        before = {k: v.clone() for k, v in net.state_dict().items()}
        with pytest.raises(ins.InitCfgError, match=r"init_cfg\[1\]\.override\.name"):
            net.init_weights()
        assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())

    def test_classes_and_names_from_before_the_import(self) -> None:
        """In a fresh process: a class defined, and BaseModule bound by name, before the
        import are switched; without MMEngine the import names the pip install."""
        code = (
            "from mmengine.model import BaseModule\n"
            "from torch import nn\n"
            "class Early(BaseModule):\n"
            "    def __init__(self, init_cfg=None):\n"
            "        super().__init__(init_cfg); self.fc = nn.Linear(2, 2)\n"
            "import initschema.mmengine, initschema\n"
            "try:\n"
            "    Early(dict(type='Normal', sdt=1, layer='Linear'))\n"
            "except initschema.InitCfgError as e:\n"
            "    print('refused:', e)\n"
            "m = Early(dict(type='Constant', val=2, layer='Linear'))\n"
            "m.init_weights(); print('weight', m.fc.weight.flatten().tolist())\n"
        )
        run = run_python("-c", code)
        assert run.returncode == 0, run.stderr
        assert "refused: Early.init_cfg.sdt: unknown key 'sdt' for Normal" in run.stdout
        assert "weight [2.0, 2.0, 2.0, 2.0]" in run.stdout

    def test_missing_mmengine_names_the_install(self) -> None:
        """Without MMEngine: a ModuleNotFoundError saying which pip install fixes it."""
        code = WITHOUT_MMENGINE + "import initschema.mmengine\n"
        run = run_python("-c", code)
        assert run.returncode == 1
        assert 'pip install "initschema[mmengine]"' in run.stderr


class TestMMEngineTestBehaviours:
    """What MMEngine 0.10.7's test_base_module.py checks, on both engines."""

    def test_descends_into_model_wrappers(self, initschema_log: Any) -> None:
        """A wrapped child (is_model_wrapper, patched as MMEngine's test does) is
        initialized, and no lint says its init_cfg never runs."""

        def build() -> nn.Module:
            net = Net(RULES)
            net.ddp = FakeDDP(Custom())
            net.ddp2 = FakeDDP(Conv(dict(type="Constant", val=5, layer="Conv2d")))
            return net

        with patch("mmengine.model.base_module.is_model_wrapper", lambda m: type(m) is FakeDDP):
            ref, ours = _both(build)
        _assert_same(ref, ours)
        assert torch.all(ours["state"]["ddp.module.linear.weight"] == 1)
        assert torch.all(ours["state"]["ddp2.module.conv.weight"] == 5)
        assert "unreachable-init-cfg" not in initschema_log.text

    def test_instance_init_weights_is_called(self) -> None:
        """An init_weights assigned on a child instance runs, as in MMEngine."""

        def build() -> nn.Module:
            net = Net(RULES)
            child = net.a

            def own() -> None:
                nn.init.constant_(child.conv.weight, 7)

            child.init_weights = own
            return net

        ref, ours = _both(build)
        _assert_same(ref, ours)
        assert torch.all(ours["state"]["a.conv.weight"] == 7)

    def test_plain_child_with_init_weights(self) -> None:
        """A plain nn.Module child defining init_weights: called, as in MMEngine."""

        def build() -> nn.Module:
            net = Net(RULES)
            net.plain = Plain()
            return net

        _assert_same(*_both(build))

    def test_dump_init_info(self, tmp_path: Any) -> None:
        """The current MMLogger's log file gets the per-parameter section (MMEngine's
        test_dump_init_info), under both engines; the door's names the rule."""
        from mmengine.logging import MMLogger

        texts = {}
        for switched in (False, True):
            name = f"door-dump-{switched}"
            log = tmp_path / f"{name}.log"
            MMLogger.get_instance(name, log_file=str(log))
            try:
                with door.deactivated() if not switched else _nothing():
                    Net(RULES).init_weights()
            finally:
                for handler in MMLogger.get_instance(name).handlers:
                    handler.close()
                MMLogger._instance_dict.pop(name)
            texts[switched] = log.read_text()
        for text in texts.values():
            assert "Name of parameter - Initialization information" in text
            assert "\nreg.weight - torch.Size([4, 3]): \n" in text
        assert "\nUniformInit: a=0, b=1, bias=0 \n" in texts[False]
        assert (
            "\nInitialized by Uniform(a=0, b=1) from init_cfg[1].override at module 'reg' \n"
            in texts[True]
        )

    @pytest.mark.parametrize(
        ("engine_call", "initschema_call"),
        [
            (
                lambda: mm.weight_init.ConstantInit(val=1, bias="1"),
                lambda: ins.ConstantInit(val=1, bias="1"),
            ),
            (
                lambda: mm.weight_init.ConstantInit(val=1, layer=1),
                lambda: ins.ConstantInit(val=1, layer=1),
            ),
            (
                lambda: mm.initialize(nn.Linear(2, 2), "init_cfg"),
                lambda: ins.initialize(nn.Linear(2, 2), "init_cfg"),
            ),
            (
                lambda: mm.initialize(
                    nn.Linear(2, 2), dict(type="Constant", val=1, override="conv")
                ),
                lambda: ins.initialize(
                    nn.Linear(2, 2), dict(type="Constant", val=1, override="conv")
                ),
            ),
        ],
        ids=["bias-str", "layer-int", "init_cfg-str", "override-str"],
    )
    def test_wrong_types_are_type_errors(
        self, engine_call: Callable[[], Any], initschema_call: Callable[[], Any]
    ) -> None:
        """Where MMEngine raises TypeError, the InitCfgError is a TypeError too."""
        with pytest.raises(TypeError):
            engine_call()
        with pytest.raises(ins.InitCfgTypeError) as caught:
            initschema_call()
        assert isinstance(caught.value, TypeError)
        assert isinstance(caught.value, ins.InitCfgError)

    def test_type_error_survives_pickling(self) -> None:
        """Sent back by a process pool, it is still the TypeError it was."""
        import pickle

        with pytest.raises(ins.InitCfgTypeError) as caught:
            ins.ConstantInit(val=1, bias="1")
        again = pickle.loads(pickle.dumps(caught.value))
        assert type(again) is ins.InitCfgTypeError
        assert str(again) == "Constant.bias: bias must be a finite number, got '1'."

    def test_string_init_cfg_is_a_type_error_when_built(self) -> None:
        """A string init_cfg: a TypeError naming it when the module is built."""
        with pytest.raises(ins.InitCfgTypeError, match=r"Conv\.init_cfg"):
            Conv("Kaiming")

    def test_a_bad_value_is_no_type_error(self) -> None:
        """A value of the right type but out of range stays a ValueError only."""
        with pytest.raises(ins.InitCfgError) as caught:
            ins.NormalInit(std=-1)
        assert not isinstance(caught.value, TypeError)


class ScaledInit(BaseInit):
    """A project's initializer: the weights of ``layer`` modules (all of the module as an
    override) from a normal draw times ``scale``."""

    def __init__(self, scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale = scale

    def __call__(self, module: nn.Module) -> None:
        def init(m: nn.Module) -> None:
            names = {type(m).__name__, *(b.__name__ for b in type(m).__bases__)}
            if (self.wholemodule or names & set(self.layer)) and hasattr(m, "weight"):
                with torch.no_grad():
                    m.weight.normal_().mul_(self.scale)

        module.apply(init)


class FillInit(BaseInit):
    """Fills every weight below with ``value``: registered as ``Zeros`` it shadows
    initschema's built-in of that name."""

    def __init__(self, value: float = 7.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.value = value

    def __call__(self, module: nn.Module) -> None:
        for m in module.modules():
            if isinstance(getattr(m, "weight", None), torch.Tensor):
                nn.init.constant_(m.weight, self.value)


@pytest.fixture
def registered() -> Iterator[Registry]:
    """``Scaled`` in MMEngine's registry, ``Zeros`` too, ``ChildScaled`` in a child
    registry with scope ``doorscope``; all removed afterwards."""
    child = Registry("weight initializer", parent=WEIGHT_INITIALIZERS, scope="doorscope")
    WEIGHT_INITIALIZERS.register_module("Scaled", module=ScaledInit)
    WEIGHT_INITIALIZERS.register_module("Zeros", module=FillInit)
    child.register_module("ChildScaled", module=ScaledInit)
    try:
        yield child
    finally:
        WEIGHT_INITIALIZERS._module_dict.pop("Scaled")
        WEIGHT_INITIALIZERS._module_dict.pop("Zeros")
        WEIGHT_INITIALIZERS._children.pop("doorscope")


class TestRegisteredInMMEngine:
    def test_custom_initializer_gives_mmengine_bits(self, registered: Registry) -> None:
        """A BaseInit registered in MMEngine's registry, as a rule and as an override."""
        cfg = [
            dict(type="Scaled", layer="Conv2d", scale=0.3),
            dict(type="Normal", layer="Linear", override=dict(name="reg", type="Scaled", scale=4)),
        ]
        ref, ours = _both(lambda: Net(cfg))
        _assert_same(ref, ours)
        report = ins.compile_plan(net := Net(cfg)).execute()
        provenance = report["reg.weight"].provenance
        assert provenance is not None and provenance.kind == "method"
        assert provenance.source == "init_cfg[1].override"
        assert "test_mmengine_door.ScaledInit, from MMEngine's registry" in str(
            report["a.conv.weight"].provenance
        )
        assert net.is_init

    def test_child_registry_in_its_scope(self, registered: Registry) -> None:
        """A name registered in a child registry (as mmdet's) resolves in its scope."""
        cfg = dict(type="ChildScaled", layer="Conv2d", scale=2.0)
        with DefaultScope.overwrite_default_scope("doorscope"):
            ref, ours = _both(lambda: Net(cfg))
        _assert_same(ref, ours)
        with pytest.raises(ins.InitCfgError, match="unknown initializer type 'ChildScaled'"):
            Net(cfg)

    def test_arguments_checked_by_the_class_when_built(self, registered: Registry) -> None:
        """The project's class refuses an argument when the module is built, not later."""
        with pytest.raises(ins.InitCfgTypeError, match=r"Net\.init_cfg: .*ScaledInit refused"):
            Net(dict(type="Scaled", sacle=2))

    def test_shadowing_a_builtin_means_the_projects(
        self, registered: Registry, initschema_log: Any
    ) -> None:
        """'Zeros' registered by the project means its class (MMEngine's semantics), with an
        info lint naming the built-in it hides."""
        ref, ours = _both(lambda: Net(dict(type="Zeros", value=7.0)))
        _assert_same(ref, ours)
        assert torch.all(ours["state"]["a.conv.weight"] == 7)
        (lint,) = [r for r in initschema_log.records if "[shadowed-builtin]" in r.getMessage()]
        assert lint.levelno == logging.INFO
        assert "hides initschema's built-in Zeros" in lint.getMessage()
        with door.deactivated():
            assert ins.parse_init_cfg(dict(type="Zeros")).rules[0].init == ins.ZerosInit()


BASE = """
model = dict(
    type="ToyNet",
    init_cfg=dict(type="ToyScaled", layer="Linear", scale=0.2),
    stem=dict(init_cfg=dict(type="Normal", std=0.01, layer="Conv2d")),
)
"""
IMPORTS = 'custom_imports = dict(imports=["mmengine_toy"], allow_failed_imports=False)\n'


class TestCommand:
    """``initschema validate|plan|report CONFIG.py`` through the installed console script,
    on configs with ``_base_`` (the model of tests/initschema_testing/mmengine_toy.py)."""

    @pytest.fixture
    def configs(self, tmp_path: Any) -> Any:
        (tmp_path / "_base_").mkdir()
        (tmp_path / "_base_" / "model.py").write_text(BASE)
        (tmp_path / "good.py").write_text('_base_ = ["./_base_/model.py"]\n' + IMPORTS)
        (tmp_path / "bad.py").write_text(
            '_base_ = ["./_base_/model.py"]\n'
            + IMPORTS
            + "model = dict(stem=dict(init_cfg=dict(std=-1)))\n"
        )
        (tmp_path / "plain.py").write_text(
            "model = dict(type='X', backbone=dict(init_cfg=dict(type='Kaiming', mode='fan_up')))\n"
        )
        return tmp_path

    def _run(self, cwd: Any, *args: str) -> Completed:
        """The ``initschema`` command in ``cwd``, the toy project's modules on PYTHONPATH."""
        return run_initschema(*args, cwd=cwd, env=environ(SUPPORT), timeout=180)

    def test_validate_good(self, configs: Any) -> None:
        """Both init_cfgs (one from _base_, one naming a project's initializer) are valid."""
        result = self._run(configs, "validate", "good.py")
        assert result.returncode == 0, result.stderr
        assert "good.py: valid, 2 init_cfgs with 2 rules" in result.stdout

    def test_validate_bad_names_key_path_and_file(self, configs: Any) -> None:
        """Exit 1, the full key path, and the file that set the value."""
        result = self._run(configs, "validate", "bad.py")
        assert result.returncode == 1
        assert result.stderr == (
            "Error in config model.stem.init_cfg.std: std should be greater than or equal to "
            "0, got -1. (set in bad.py)\n"
        )

    def test_validate_cfg_options(self, configs: Any) -> None:
        """--cfg-options are merged as mmdet's train.py merges them, and named as the origin;
        the project's initializer refuses an argument it does not take."""
        result = self._run(
            configs,
            "validate",
            "good.py",
            "--cfg-options",
            "model.stem.init_cfg.std=-2",
            "model.init_cfg.sacle=2",
            "--json",
        )
        assert result.returncode == 1
        problems = json.loads(result.stdout)["problems"]
        assert [(p["path"], p["file"]) for p in problems] == [
            ("model.init_cfg", "--cfg-options"),
            ("model.stem.init_cfg.std", "--cfg-options"),
        ]
        assert "unexpected keyword argument 'sacle'" in problems[0]["message"]

    def test_validate_base_file_named(self, configs: Any) -> None:
        """A bad value that a _base_ file set names that file."""
        (configs / "_base_" / "model.py").write_text(BASE.replace("0.01", "-0.01"))
        result = self._run(configs, "validate", "good.py")
        assert result.returncode == 1
        assert "model.stem.init_cfg.std: std should be greater" in result.stderr
        assert f"(set in {os.path.join('_base_', 'model.py')})" in result.stderr

    def test_validate_imports_no_torch(self, configs: Any) -> None:
        """A config without custom_imports is validated without importing torch."""
        code = (
            "import sys; from initschema.cli import main; "
            "status = main(['validate', 'plain.py']); "
            "print('torch' in sys.modules); sys.exit(status)"
        )
        result = run_python("-c", code, cwd=configs)
        assert result.returncode == 1
        assert result.stdout == "False\n"
        assert "model.backbone.init_cfg.mode: 'fan_up' is not a valid mode" in result.stderr

    def test_plan_builds_through_the_registry(self, configs: Any) -> None:
        """plan builds the model (meta device) and shows each parameter's writer."""
        result = self._run(configs, "plan", "good.py", "--json")
        assert result.returncode == 0, result.stderr
        actions = json.loads(result.stdout)["actions"]
        assert actions[0]["kind"] == "method"
        assert actions[0]["init"] == {"type": "ToyScaled", "layer": "Linear", "scale": 0.2}
        assert any(a["source"] == "stem.init_cfg" and a["kind"] == "write" for a in actions)

    def test_custom_imports_from_the_current_directory(self, configs: Any) -> None:
        """A project module beside the config (named in custom_imports) is found without
        PYTHONPATH, as --model and _target_ modules are."""
        import shutil

        shutil.copy(SUPPORT / "mmengine_toy.py", configs)
        result = run_initschema("validate", "good.py", cwd=configs, env=environ(), timeout=180)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "good.py: valid, 2 init_cfgs with 2 rules\n"

    def test_plan_leaves_out_its_own_meta_build(self, configs: Any) -> None:
        """plan builds on the meta device by its own choice: no stays-on-meta lint about
        that, in the table or the JSON."""
        (configs / "partial.py").write_text(
            IMPORTS + "model = dict(type='ToyNet', stem=dict(init_cfg=dict(type='Normal', "
            "layer='Conv2d')))\n"
        )  # the norm and `extra` keep PyTorch's defaults: on the meta device, nothing sets them
        result = self._run(configs, "plan", "partial.py")
        assert result.returncode == 0, result.stderr
        assert "[default-init] 4 parameters keep PyTorch's default" in result.stdout
        assert "stays-on-meta" not in result.stdout and "meta device" not in result.stdout
        result = self._run(configs, "plan", "partial.py", "--json")
        kinds = {lint["kind"] for lint in json.loads(result.stdout)["lints"]}
        assert kinds == {"default-init"}

    def test_plan_bad_config(self, configs: Any) -> None:
        """plan checks the config first: the same key path and file as validate."""
        result = self._run(configs, "plan", "bad.py")
        assert result.returncode == 1
        assert "model.stem.init_cfg.std" in result.stderr and "(set in bad.py)" in result.stderr

    def test_report(self, configs: Any) -> None:
        """report initializes for real and measures every parameter."""
        result = self._run(configs, "report", "good.py", "--json")
        assert result.returncode in (0, 1), result.stderr
        rows = {row["path"]: row for row in json.loads(result.stdout)["parameters"]}
        assert set(rows) >= {"stem.conv.weight", "extra.weight", "head.fc_cls.weight"}

    def test_missing_file_and_no_traceback(self, configs: Any) -> None:
        """A missing file or a config that raises: exit 2, one line, no traceback."""
        (configs / "broken.py").write_text("x = 1 / 0\n")
        for name in ("nothere.py", "broken.py"):
            result = self._run(configs, "validate", name)
            assert result.returncode == 2
            assert "Traceback" not in result.stderr
            assert result.stderr.startswith("initschema validate: error: ")

    def test_without_mmengine_names_the_install(self, configs: Any) -> None:
        """Without MMEngine, the CONFIG.py forms say which pip install fixes it."""
        code = WITHOUT_MMENGINE + (
            "from initschema.cli import main\nsys.exit(main(['validate', 'good.py']))\n"
        )
        result = run_python("-c", code, cwd=configs)
        assert result.returncode == 2
        assert 'needs MMEngine: pip install "initschema[mmengine]"' in result.stderr


def test_refused_on_sharded_parameters() -> None:
    """An initializer registered in MMEngine, run on a module holding a DTensor parameter,
    is refused before any write (its code needs whole tensors). In a fresh process: a
    one-rank gloo group on 127.0.0.1."""
    code = """
import socket, torch, torch.distributed as dist
from torch import nn
from torch.distributed.tensor import Replicate, distribute_tensor, init_device_mesh
from mmengine.model.weight_init import BaseInit
from mmengine.registry import WEIGHT_INITIALIZERS
import initschema as ins, initschema.mmengine

@WEIGHT_INITIALIZERS.register_module(name="Scaled")
class ScaledInit(BaseInit):
    def __call__(self, module):
        module.weight.data.mul_(2)

with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
mesh = init_device_mesh("cpu", (1,))
fc = nn.Linear(4, 4)
fc.weight = nn.Parameter(distribute_tensor(fc.weight.detach(), mesh, [Replicate()]))
before = fc.weight.full_tensor().clone()
plan = ins.compile_plan(fc, dict(type="Scaled"))
try:
    plan.execute(seed=0)
except ins.InitSchemaError as error:
    print("refused:", error)
print("unchanged:", torch.equal(before, fc.weight.full_tensor()))
dist.destroy_process_group()
"""
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert "refused: init_cfg: __main__.ScaledInit would run on '(root)' (Linear)" in result.stdout
    assert "unchanged: True" in result.stdout
