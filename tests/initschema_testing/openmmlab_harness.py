"""Build real OpenMMLab models from their shipped configs and run ``init_weights`` on them,
with MMEngine's own ``BaseModule`` or through the door, ``import initschema.mmengine``.

Run in a subprocess, once per engine (``tests/parity/test_openmmlab_models.py`` does)::

    cd tests/initschema_testing
    python openmmlab_harness.py --engine {mmengine,initschema} --out FILE.pt SPEC...
    python openmmlab_harness.py --prepare --ckpt-dir DIR SPEC...   # checkpoints first

A SPEC is ``package:config`` with an optional ``#variant``, the config relative to the
package's shipped ``.mim/configs`` (``mmdet:rtmdet/rtmdet_tiny_8xb32-300e_coco.py``).
Checkpoints that need a network (URLs, ``torchvision://``, a missing local file) are switched
off, as ``init_cfg=None`` / ``pretrained=None``; a variant instead points them at a local
checkpoint that ``--prepare`` builds with unpatched MMEngine, so both engines load one file.

``FILE.pt`` holds, per SPEC, ``{"state", "rng", "error", "foreign", "seconds"}``: the state
dict after ``init_weights`` (detached clones, or with ``--state digest`` a per-tensor
``(dtype, shape, blake2b, mean, std)`` row, small enough for 60 models), the CPU RNG state
after it, ``None`` or ``"ExcType: message"`` (then also a ``"traceback"``), and, under the
door, the modules whose ``init_weights`` is still MMEngine's own. One failing model never
hides the others.

The imports need care: ``mmdet``'s and ``mmseg``'s ``__init__`` assert ``mmcv < 2.2.0``,
``mmpretrain``'s imports its whole API, and ``mmcv-lite`` has no compiled ops. So the three
packages are registered bare (their ``__path__``, not their ``__init__``), ``mmcv._ext``
and, when absent, ``torchvision`` are stubs (no ``init_weights`` calls them), and only each
package's ``models`` is imported, which fills the ``MODELS`` registry.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import random
import sys
import time
import traceback
import types
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

PACKAGES = ("mmdet", "mmseg", "mmpretrain")
BUILD_SEED = 1  # not INIT_SEED, so a tensor init_weights skips keeps a value no init draws
INIT_SEED = 0
CKPT_SEED = 2  # checkpoints differ from both the built and the initialized weights
REMOTE = ("http://", "https://", "torchvision://", "open-mmlab://", "mmcls://", "modelzoo://")

# --- imports: bare packages and stubs ------------------------------------------------------


def _register_bare_package(name: str) -> None:
    """Put ``name`` in ``sys.modules`` as a package without running its ``__init__``."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not installed; see tests/requirements-openmmlab.txt")
    package = types.ModuleType(name)
    package.__path__ = list(spec.submodule_search_locations)
    import mmcv
    import mmengine
    from mmengine.utils import digit_version

    package.__file__ = spec.origin
    package.__spec__ = spec
    package.__package__ = name
    sys.modules[name] = package
    # What model code imports from the package itself (``from mmdet import mmcv_version``).
    package.__version__ = importlib.import_module(f"{name}.version").__version__  # type: ignore[attr-defined]
    package.digit_version = digit_version  # type: ignore[attr-defined]
    package.mmcv_version = digit_version(mmcv.__version__)  # type: ignore[attr-defined]
    package.mmengine_version = digit_version(mmengine.__version__)  # type: ignore[attr-defined]


class _StubMeta(type):
    """A stub class: it may be subclassed (``class X(transforms.RandomResizedCrop)``), any
    attribute is another stub (``InterpolationMode.BILINEAR``), calling it raises."""

    def __getattr__(cls, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _StubMeta(attr, (), {"__module__": cls.__module__})

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"{cls.__module__}.{cls.__name__} is a stub of openmmlab_harness "
            f"(no compiled mmcv ops, no torchvision); building or initializing called it"
        )


class _StubModule(types.ModuleType):
    """A module whose every attribute is a stub class."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        stub = _StubMeta(attr, (), {"__module__": self.__name__})
        setattr(self, attr, stub)
        return stub


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``root`` and every ``root.*`` as a :class:`_StubModule`."""

    def __init__(self, root: str) -> None:
        self.root = root

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname == self.root or fullname.startswith(self.root + "."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def _install_stubs() -> None:
    """``mmcv._ext`` (compiled ops, absent in mmcv-lite) and, if missing, ``torchvision``.

    ``mmcv.utils.ext_loader`` only checks that the op names exist; the PyPI torchvision
    wheels do not import beside every torch, and mmpretrain imports it at module level.
    """
    sys.modules.setdefault("mmcv._ext", _StubModule("mmcv._ext"))
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        sys.meta_path.insert(0, _StubFinder("torchvision"))


def _offline() -> None:
    """A checkpoint this script failed to make local fails at once, not after a DNS timeout."""
    import socket

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("openmmlab_harness runs offline: a checkpoint still needs the network")

    socket.getaddrinfo = refuse  # type: ignore[assignment]
    socket.socket.connect = refuse  # type: ignore[method-assign]


def _import_models(packages: Sequence[str], engine: str = "mmengine") -> None:
    """Each package's ``models``; with ``engine="initschema"`` the first package's before
    ``import initschema.mmengine`` and the others' after, as a project's imports may come
    in either order."""
    for name in PACKAGES:  # all three: mmpretrain's models import mmdet's
        _register_bare_package(name)
    for index, name in enumerate(packages):
        if engine == "initschema" and index == min(1, len(packages) - 1):
            import initschema.mmengine  # noqa: F401
        importlib.import_module(f"{name}.models")


# --- configs -------------------------------------------------------------------------------


def _split(spec: str) -> tuple[str, str, str]:
    """``"mmdet:pvt/x.py#local-ckpt"`` → ``("mmdet", "pvt/x.py", "local-ckpt")``."""
    package, _, rest = spec.partition(":")
    config, _, variant = rest.partition("#")
    if package not in PACKAGES or not config:
        raise ValueError(f"{spec!r}: expected PACKAGE:CONFIG[#VARIANT], PACKAGE in {PACKAGES}")
    if variant and variant not in VARIANTS:
        raise ValueError(f"{spec!r}: unknown variant {variant!r}; known: {sorted(VARIANTS)}")
    return package, config, variant


def _model_cfg(package: str, config: str) -> Any:
    from mmengine.config import Config

    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations is not None
    root = Path(next(iter(spec.submodule_search_locations))) / ".mim" / "configs"
    return Config.fromfile(str(root / config)).model


def _needs_network(checkpoint: Any) -> bool:
    return isinstance(checkpoint, str) and (
        checkpoint.startswith(REMOTE) or not os.path.exists(checkpoint)
    )


# A checkpoint site: the module (dotted path in the built model) whose weights it holds,
# and the rule (a dict with ``checkpoint``) or ``pretrained`` string found there.
Site = tuple[str, Any]
Fix = Callable[[str, Any], Any]


def _fix_checkpoints(cfg: Any, fix: Fix, path: tuple[str, ...] = ()) -> None:
    """Replace, in place, every checkpoint site of a model config that needs a network by
    ``fix(module_path, site)`` (``None`` removes it). Other rules are never touched.

    ``init_cfg`` belongs to the module its dict builds; ``pretrained`` of a model with a
    ``backbone`` (mmseg's segmentors) to that backbone, of any other to that module."""
    if isinstance(cfg, list):
        for item in cfg:
            _fix_checkpoints(item, fix, path)
        return
    if not isinstance(cfg, dict):
        return
    for key in list(cfg):
        value = cfg[key]
        if key == "pretrained" and _needs_network(value):
            owner = (*path, "backbone") if not path and "backbone" in cfg else path
            cfg[key] = fix(".".join(owner), value)
        elif key == "init_cfg" and isinstance(value, (dict, list)):
            rules = value if isinstance(value, list) else [value]
            fixed = [
                fix(".".join(path), rule)
                if isinstance(rule, dict) and _needs_network(rule.get("checkpoint"))
                else rule
                for rule in rules
            ]
            kept = [rule for rule in fixed if rule is not None]
            cfg[key] = (kept or None) if isinstance(value, list) else (kept[0] if kept else None)
        else:
            _fix_checkpoints(value, fix, (*path, key))


def _drop(module_path: str, site: Any) -> None:
    return None


def _build(package: str, model_cfg: Any) -> nn.Module:
    from mmengine.registry import DefaultScope

    registry = importlib.import_module(f"{package}.registry")
    with DefaultScope.overwrite_default_scope(package):
        model: nn.Module = registry.MODELS.build(model_cfg)
    return model


# --- variants: the cases that load a checkpoint --------------------------------------------
#
# A variant has a ``prepare`` (run by ``--prepare`` with unpatched MMEngine; writes the
# checkpoints) and an ``apply`` (points the config at them). Every checkpoint holds the
# weights of a model built under CKPT_SEED, so loading it is visible.


def _ckpt_file(ckpt_dir: Path, spec: str, module_path: str = "") -> Path:
    name = f"{spec}@{module_path}" if module_path else spec
    return ckpt_dir / ("".join(c if c.isalnum() or c in "-_." else "_" for c in name) + ".pth")


def _build_for_ckpt(package: str, model_cfg: Any) -> nn.Module:
    """The model a checkpoint is made from, every float tensor drawn anew: a constructor's
    zeros (ViT's pos_embed) would make a skipped entry look loaded."""
    torch.manual_seed(CKPT_SEED)
    model = _build(package, model_cfg)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.normal_()
    return model


def _state(module: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().clone() for k, v in module.state_dict().items()}


def _local_sites(cfg: Any) -> list[Site]:
    sites: list[Site] = []
    _fix_checkpoints(copy.deepcopy(cfg), lambda path, site: sites.append((path, site)))
    return sites


def _prepare_local(package: str, spec: str, cfg: Any, ckpt_dir: Path) -> None:
    """Each site's checkpoint is its own module's weights: flat, or for a rule with a
    ``prefix`` under ``state_dict`` with that prefix, as a whole classifier's would be."""
    sites = _local_sites(cfg)
    if not sites:
        raise ValueError(f"{spec!r}: #local-ckpt, but the config loads no remote checkpoint")
    _fix_checkpoints(cfg, _drop)
    model = _build_for_ckpt(package, cfg)
    for module_path, site in sites:
        module = model.get_submodule(module_path)
        prefix = site.get("prefix", "") if isinstance(site, dict) else ""
        state = _state(module, prefix)
        torch.save(
            {"state_dict": state} if prefix else state, _ckpt_file(ckpt_dir, spec, module_path)
        )


def _apply_local(spec: str, cfg: Any, ckpt_dir: Path) -> None:
    def local(module_path: str, site: Any) -> Any:
        file = str(_ckpt_file(ckpt_dir, spec, module_path))
        if isinstance(site, str):
            return file
        site = copy.copy(site)  # a ConfigDict still: PVT reads ``init_cfg.checkpoint``
        site["checkpoint"] = file
        return site

    _fix_checkpoints(cfg, local)


def _prepare_vit384(package: str, spec: str, cfg: Any, ckpt_dir: Path) -> None:
    """A 224-pixel ViT classifier's checkpoint (``backbone.``-prefixed keys, as a trained
    classifier has them) for a 384-pixel backbone, whose pos_embed is resized on load."""
    cfg.backbone.img_size = 224
    torch.save({"state_dict": _state(_build_for_ckpt(package, cfg))}, _ckpt_file(ckpt_dir, spec))


def _apply_vit384(spec: str, cfg: Any, ckpt_dir: Path) -> None:
    cfg.backbone.img_size = 384
    checkpoint = str(_ckpt_file(ckpt_dir, spec))
    cfg.backbone.init_cfg = dict(type="Pretrained", checkpoint=checkpoint, prefix="backbone.")


def _prepare_segmenter384(package: str, spec: str, cfg: Any, ckpt_dir: Path) -> None:
    """A 384-pixel ViT backbone's weights for the 512-pixel Segmenter (resized on load)."""
    _fix_checkpoints(cfg, _drop)
    cfg.backbone.img_size = (384, 384)
    torch.save(_state(_build_for_ckpt(package, cfg).backbone), _ckpt_file(ckpt_dir, spec))


def _apply_segmenter384(spec: str, cfg: Any, ckpt_dir: Path) -> None:
    _fix_checkpoints(cfg, lambda path, site: str(_ckpt_file(ckpt_dir, spec)))


Prepare = Callable[[str, str, Any, Path], None]
Apply = Callable[[str, Any, Path], None]
VARIANTS: dict[str, tuple[Prepare, Apply]] = {
    # Every remote checkpoint becomes a local one of the same module (PVT's untyped
    # ``init_cfg=dict(checkpoint=...)``, ``Pretrained`` with a prefix, SAN's Pretrained_Part).
    "local-ckpt": (_prepare_local, _apply_local),
    # mmpretrain's ViT at 384 px from a 224 px classifier: Pretrained with a prefix.
    "vit384-from-224": (_prepare_vit384, _apply_vit384),
    # mmseg's Segmenter at 512 px from a 384 px backbone (``pretrained``).
    "segmenter-384-ckpt": (_prepare_segmenter384, _apply_segmenter384),
}


def _model_cfg_for(spec: str, ckpt_dir: Path | None) -> tuple[str, Any]:
    package, config, variant = _split(spec)
    cfg = _model_cfg(package, config)
    if variant:
        if ckpt_dir is None:
            raise ValueError(f"{spec!r} loads a checkpoint: pass --ckpt-dir (after --prepare)")
        VARIANTS[variant][1](spec, cfg, ckpt_dir)
        missing = _local_sites(cfg)
        if missing:
            raise FileNotFoundError(f"{spec!r}: checkpoint missing; run --prepare first: {missing}")
    _fix_checkpoints(cfg, _drop)
    return package, cfg


def prepare(specs: Sequence[str], ckpt_dir: Path) -> None:
    """Write the checkpoints of every SPEC with a variant (unpatched MMEngine only)."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        package, config, variant = _split(spec)
        if variant:
            VARIANTS[variant][0](package, spec, _model_cfg(package, config), ckpt_dir)


# --- running -------------------------------------------------------------------------------


def _digest(tensor: torch.Tensor) -> tuple[str, tuple[int, ...], str, float, float]:
    """Bitwise identity (blake2b of the bytes) plus two numbers to read a difference by."""
    flat = tensor.detach().contiguous().reshape(-1)
    digest = hashlib.blake2b(flat.view(torch.uint8).numpy().tobytes(), digest_size=16)
    stats = flat.double() if flat.is_floating_point() else None
    mean = float(stats.mean()) if stats is not None and flat.numel() else 0.0
    std = float(stats.std()) if stats is not None and flat.numel() > 1 else 0.0
    return str(tensor.dtype), tuple(tensor.shape), digest.hexdigest(), mean, std


def _foreign(model: nn.Module, engine: str) -> list[str]:
    """Under the door, the modules whose ``init_weights`` is still MMEngine's own."""
    from mmengine.model import BaseModule

    if engine != "initschema":
        return []
    return sorted(
        f"{path or '<root>'}: {type(m).__name__}.init_weights is MMEngine's"
        for path, m in model.named_modules()
        if isinstance(m, BaseModule)
        and not getattr(method := type(m).init_weights, "_initschema_base_init_weights", False)
        and not hasattr(method, "__wrapped_init_weights__")
    )


def _run_one(spec: str, ckpt_dir: Path | None, engine: str, state_mode: str) -> dict[str, Any]:
    package, cfg = _model_cfg_for(spec, ckpt_dir)
    random.seed(BUILD_SEED)
    torch.manual_seed(BUILD_SEED)
    model = _build(package, cfg)
    torch.manual_seed(INIT_SEED)
    model.init_weights()  # type: ignore[operator]
    rng = torch.get_rng_state()
    state = model.state_dict()
    if state_mode == "digest":
        kept: dict[str, Any] = {k: _digest(v) for k, v in state.items()}
    else:
        kept = {k: v.detach().clone() for k, v in state.items()}
    return {"state": kept, "rng": rng, "error": None, "foreign": _foreign(model, engine)}


def run(
    engine: str, specs: Sequence[str], ckpt_dir: Path | None, state_mode: str
) -> dict[str, dict[str, Any]]:
    _import_models(sorted({_split(s)[0] for s in specs}), engine)
    results: dict[str, dict[str, Any]] = {}
    for spec in specs:
        start = time.perf_counter()
        try:
            result = _run_one(spec, ckpt_dir, engine, state_mode)
        except Exception as e:
            print(f"--- {spec} [{engine}]", file=sys.stderr)
            traceback.print_exc()
            message = str(e).strip().splitlines()
            result = {
                "state": {},
                "rng": None,
                "error": f"{type(e).__name__}: {message[0] if message else ''}",
                "traceback": traceback.format_exc(),
                "foreign": [],
            }
        result["seconds"] = round(time.perf_counter() - start, 3)
        results[spec] = result
        print(f"{engine} {result['seconds']:7.2f}s {spec} {result['error'] or 'ok'}", flush=True)
    return results


def _quiet() -> None:
    """MMEngine's logger and the models' deprecation warnings say nothing useful here."""
    from mmengine.logging import MMLogger

    MMLogger.get_instance("mmengine").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="package:config[#variant]")
    parser.add_argument("--engine", choices=("mmengine", "initschema"), default="mmengine")
    parser.add_argument("--out", type=Path, help="where to torch.save the results")
    parser.add_argument("--ckpt-dir", type=Path, help="local checkpoints for the variants")
    parser.add_argument("--prepare", action="store_true", help="only write the checkpoints")
    parser.add_argument("--state", choices=("full", "digest"), default="full")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)  # two engines run side by side; also keeps results comparable
    _offline()
    _install_stubs()
    _quiet()
    if args.prepare:
        if args.ckpt_dir is None:
            parser.error("--prepare needs --ckpt-dir")
        _import_models(sorted({_split(s)[0] for s in args.specs}))
        prepare(args.specs, args.ckpt_dir)
        return 0
    if args.out is None:
        parser.error("--out is required (unless --prepare)")
    results = run(args.engine, args.specs, args.ckpt_dir, args.state)
    torch.save(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
