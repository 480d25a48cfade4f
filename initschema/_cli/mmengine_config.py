"""``initschema validate|plan|report CONFIG.py``: MMEngine Python config files.

The file is read by MMEngine's own ``Config.fromfile`` (``_base_`` inheritance, its
``custom_imports``), then ``--cfg-options KEY=VALUE ...`` are merged as mmdet's
``tools/train.py`` merges them. ``validate`` checks every ``init_cfg`` in it without
building the model; ``plan`` and ``report`` build the config's ``model`` through MMEngine's
registry with the door open (:mod:`initschema.mmengine`), on the meta device for ``plan``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..cfg.init_cfg import parse_init_cfg
from ..errors import InitCfgError, Problem, join_path
from .args import EXIT, import_option
from .build import Built, import_user_module, user_lints, user_path
from .show import print_findings, print_plan, print_report, summary
from .yaml_files import CommandError

__all__ = ["is_mmengine_form", "parser", "run"]

COMMANDS = ("validate", "plan", "report")
_WHAT = {
    "validate": "Validate every init_cfg of an MMEngine Python config file, without building "
    "the model",
    "plan": "Build the model of an MMEngine Python config file through its registry, on the "
    "meta device, and print the plan of its initialization",
    "report": "Build and initialize the model of an MMEngine Python config file and report "
    "the statistics of every parameter",
}
INSTALL = 'pip install "initschema[mmengine]"'


def is_mmengine_form(argv: Sequence[str]) -> bool:
    """Whether a command line is ``validate|plan|report ... CONFIG.py ...``."""
    return len(argv) > 1 and argv[0] in COMMANDS and any(a.endswith(".py") for a in argv[1:])


def parser(command: str) -> argparse.ArgumentParser:
    """The command line of ``initschema validate|plan|report CONFIG.py``."""
    parser = argparse.ArgumentParser(
        prog=f"initschema {command}",
        description=f"{_WHAT[command]} (read with MMEngine's Config.fromfile: _base_ and "
        f"custom_imports included; the file is Python, and runs).",
        epilog=EXIT,
    )
    parser.set_defaults(command=command)
    parser.add_argument("config", metavar="CONFIG.py", help="an MMEngine config file")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override settings in the config, as mmdet's tools/train.py takes them "
        "(model.backbone.init_cfg.std=0.02; lists as a=[1,2])",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    import_option(parser)
    if command != "validate":
        parser.add_argument("--strict", action="store_true", help="warning lints are findings")
    if command == "report":
        parser.add_argument(
            "--seed",
            type=int,
            metavar="N",
            help="seeded execution: each tensor from a generator of (N, its path); without "
            "it, faithful execution (MMEngine's draws) after torch.manual_seed(0)",
        )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the command :func:`parser` read; usage errors are :class:`CommandError`."""
    try:
        from mmengine.config import Config, DictAction
    except ModuleNotFoundError:
        raise CommandError(f"reading an MMEngine config file needs MMEngine: {INSTALL}") from None
    # The user's modules (custom_imports, --import) are found in the current directory, as
    # the other forms find --model: last on sys.path, after every import of our own.
    engine = args.command != "validate"
    user_path(engine)
    for module in args.modules:
        import_user_module(module, "--import", engine=engine)
    options = _options(args.cfg_options, DictAction)
    if not os.path.isfile(args.config):
        raise CommandError(f"{args.config!r} does not exist.")
    cfg = _load(Config, args.config, options)
    status = _validate(args, cfg, Config, options)
    if args.command == "validate" or status:
        return status
    if "model" not in cfg:
        raise CommandError(f"{args.config} has no 'model' to build.")
    return _plan_or_report(args, cfg)


def _options(pairs: Sequence[str], action: Any) -> dict[str, Any]:
    """``KEY=VALUE`` strings as MMEngine's ``DictAction`` parses them."""
    namespace = argparse.Namespace(cfg_options=None)
    try:
        action(option_strings=["--cfg-options"], dest="cfg_options")(None, namespace, pairs)
    except (ValueError, IndexError) as error:
        raise CommandError(f"--cfg-options: expected KEY=VALUE pairs ({error}).") from None
    except RecursionError:  # MMEngine's parser recurses forever on a `dict(...)` value
        raise CommandError(
            "--cfg-options: a value MMEngine's KEY=VALUE syntax cannot read (it takes "
            "numbers, strings, [lists] and (tuples), not dict(...)); set a dict's keys one "
            "by one, e.g. model.init_cfg.type=Normal model.init_cfg.std=0.01."
        ) from None
    return dict(namespace.cfg_options or {})


def _load(config: Any, path: str, options: dict[str, Any]) -> Any:
    try:
        cfg = config.fromfile(path)
        if options:
            cfg.merge_from_dict(options)
    except Exception as error:  # the config is user code: any failure is its message
        raise CommandError(f"{path} cannot be read: {_first_cause(error)}") from None
    return cfg


def _first_cause(error: BaseException) -> str:
    """What went wrong first, in one line: MMEngine wraps a failing ``custom_imports``
    module in an ImportError that lists ``sys.path`` and hides the module's own error."""
    root, seen = error, {id(error)}
    while (cause := root.__cause__ or root.__context__) is not None and id(cause) not in seen:
        root = cause
        seen.add(id(root))
    text = f"{type(root).__name__}: {' '.join(str(root).split())}"
    if root is not error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        text += f" (so {first.split(', the current sys.path')[0]})"
    return text


def _init_cfgs(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every ``init_cfg`` value in the config, with its key path (``model.backbone.init_cfg``)."""
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            child = join_path(path, str(key))
            if key == "init_cfg":
                if value is not None:
                    found.append((child, _plain(value)))
            else:
                found += _init_cfgs(value, child)
    elif isinstance(node, list | tuple):
        for index, item in enumerate(node):
            found += _init_cfgs(item, join_path(path, index))
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _validate(args: argparse.Namespace, cfg: Any, config: Any, options: dict[str, Any]) -> int:
    root = _plain(cfg.to_dict())
    counts: dict[str, int] = {}
    problems: list[Problem] = []
    with _project_initializers(cfg.get("default_scope")):
        for path, value in _init_cfgs(root):
            try:
                counts[path] = len(parse_init_cfg(value, path))
            except InitCfgError as error:
                problems += error.problems
    if args.command != "validate" and not problems:
        return 0  # plan and report go on, and print their own result
    origins = {p.path: _origin(config, args.config, options, root, p.path) for p in problems}
    return print_findings(
        problems,
        args.json,
        {"init_cfgs": counts},
        summary=summary(args.config, counts),
        origins=origins,
    )


@contextmanager
def _project_initializers(scope: str | None) -> Iterator[None]:
    """Names the config's imports registered in MMEngine's registry mean those classes, as
    under the door. Only when its imports loaded torch: without torch no initializer can
    have been registered there, and validating imports none."""
    if "torch" not in sys.modules:
        yield
        return
    from mmengine.registry import DefaultScope

    from .._mmengine_registry import resolve
    from ..cfg.initializer import WEIGHT_INITIALIZERS

    added = resolve not in WEIGHT_INITIALIZERS.resolvers
    if added:
        WEIGHT_INITIALIZERS.resolvers.append(resolve)
    try:
        with DefaultScope.overwrite_default_scope(scope):
            yield
    finally:
        if added:
            WEIGHT_INITIALIZERS.resolvers.remove(resolve)


_MISSING = object()


def _at(root: Any, path: str) -> Any:
    """The value at a problem's key path (``a.b[1].c``), or ``_MISSING``."""
    node = root
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(node, list) or index >= len(node):
                return _MISSING
            node = node[index]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def _origin(config: Any, path: str, options: dict[str, Any], root: Any, key: str) -> str:
    """Which file set the value at ``key`` (the one that introduces it along the
    ``_base_`` chain), ``--cfg-options``, or "" when that cannot be told."""
    value = _at(root, key)
    try:
        if options and _at(_plain(config.fromfile(path).to_dict()), key) != value:
            return "--cfg-options"
        return _introduced_in(config, os.path.abspath(path), key, value)
    except Exception:  # telling the file is a courtesy: never fail the command for it
        return ""


def _introduced_in(config: Any, path: str, key: str, value: Any) -> str:
    for base in config._get_base_files(path):
        base_path, _ = config._get_cfg_path(base, path)
        base_path = os.path.abspath(base_path)
        if _at(_plain(config.fromfile(base_path).to_dict()), key) == value:
            return _introduced_in(config, base_path, key, value)
    return os.path.relpath(path)


def _plan_or_report(args: argparse.Namespace, cfg: Any) -> int:
    import torch
    from mmengine.registry import MODELS, init_default_scope

    import initschema as ins

    from ..mmengine import activate

    activate()  # the door: validation when built, the project's registered initializers
    if cfg.get("default_scope"):
        init_default_scope(cfg.default_scope)
    torch.manual_seed(0 if getattr(args, "seed", None) is None else args.seed)
    try:
        if args.command == "plan":
            model, on_meta = _build_on_meta(MODELS, cfg.model)
        else:
            model, on_meta = MODELS.build(cfg.model), False
        plan = ins.compile_plan(model, strict=False, log=False)
    except InitCfgError as error:
        return print_findings(error.problems, args.json, {})
    except Exception as error:  # the model's own code: its message, not a traceback
        kind = cfg.model.get("type", "?") if hasattr(cfg.model, "get") else "?"
        raise CommandError(
            f"building the model (type={kind!r}) failed: {type(error).__name__}: {error}"
        ) from None
    # Lints about the meta device describe the command's choice to build there, not the
    # project's model; --strict applies to the rest, as in the other forms.
    built = Built(plan, user_lints(plan, on_meta))
    if args.strict and (strict := built.strict_problems()):
        return print_findings(strict, args.json, {})
    if args.command == "plan":
        return print_plan(plan, built.lints, args.json)
    from ..diagnostics.stats import findings, measure

    stats = measure(plan, plan.execute(seed=args.seed))
    return print_report(plan, stats, findings(plan, stats), built.lints, args.seed, args.json)


def _build_on_meta(registry: Any, model_cfg: Any) -> tuple[Any, bool]:
    """The model on the meta device (no memory, no time), or on the CPU when its code cannot
    be built there (e.g. it reads a tensor's values while being built); and which."""
    import torch

    try:
        with torch.device("meta"):
            return registry.build(model_cfg), True
    except InitCfgError:
        raise
    except Exception:
        return registry.build(model_cfg), False
