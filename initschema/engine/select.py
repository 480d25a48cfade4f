"""What a rule selects below the module it is attached to: the tensors its ``params``
patterns match, and the submodules an override names (an attribute, a dotted path or a
pattern). ``layer`` is matched by the rule itself (:meth:`WeightInit.matches`)."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..cfg.patterns import compile_path_pattern, is_pattern
from ..errors import did_you_mean, join_path
from .walk import Tree, below

__all__ = ["select_modules", "select_tensors"]


def select_tensors(
    tree: Tree, module: nn.Module, path: str, patterns: tuple[str, ...]
) -> tuple[list[tuple[str, nn.Module, list[str]]], list[str]]:
    """The tensors (parameters, then buffers, of each module) below ``module`` whose path
    relative to it matches one of ``patterns``, grouped by owner in model order:
    (owner's path, owner, attribute names); and the patterns that matched nothing."""
    regexes = [(pattern, compile_path_pattern(pattern)) for pattern in patterns]
    used: set[str] = set()
    seen: set[int] = set()
    groups = []
    for relative, owner in [("", module), *below(tree, path)]:
        names = []
        for table in (owner._parameters, owner._buffers):
            for name, tensor in table.items():
                if tensor is None or id(tensor) in seen:
                    continue
                tensor_path = join_path(relative, name)
                hits = [p for p, regex in regexes if regex.fullmatch(tensor_path)]
                if hits:
                    used.update(hits)
                    seen.add(id(tensor))
                    names.append(name)
        if names:
            groups.append((join_path(path, relative) if relative else path, owner, names))
    return groups, [p for p in patterns if p not in used]


def select_modules(
    tree: Tree, module: nn.Module, path: str, name: str, full: str
) -> list[tuple[str, nn.Module]] | str:
    """The submodules an override ``name`` selects below ``module`` (at ``path``; at
    ``full`` in the whole model, for messages): an attribute, a dotted path, or every
    module whose relative path matches a pattern (in model order, possibly none) — as
    (model-relative path, module); or, for a name or dotted path that names no
    submodule, why."""
    if is_pattern(name):
        regex = compile_path_pattern(name)
        return [
            (join_path(path, relative), sub)
            for relative, sub in below(tree, path)
            if regex.fullmatch(relative)
        ]
    target: Any = module
    walked = ""
    for part in name.split("."):
        at = join_path(full, walked) if walked else full
        where = f"module '{at}'" if at else "the root module"
        if not hasattr(target, part):
            kids = [n for n, _ in target.named_children()]
            return (
                f"{where} ({type(target).__name__}) has no attribute {part!r}"
                f"{did_you_mean(part, kids) or ';'} its submodules are {', '.join(kids) or 'none'}."
            )
        target = getattr(target, part)
        walked = join_path(walked, part)
        if not isinstance(target, nn.Module):
            return (
                f"{part!r} of {where} is a {type(target).__name__}, not a submodule; an "
                f"override names a submodule and initializes all of it."
            )
    found = tree.module_paths.get(id(target), join_path(path, name))
    return [(found, target)]
