"""``BaseModule`` and its containers: modules that carry an ``init_cfg`` and run it.

Same contract as MMEngine's: ``init_weights()`` runs the module's own
non-Pretrained rules, then each child's ``init_weights`` (deeper rules win),
then its Pretrained rules; it sets ``is_init`` and a second call only warns.
The difference: the whole tree is validated and planned before the first write.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn

from .cfg import parse_init_cfg

__all__ = ["BaseModule", "ModuleDict", "ModuleList", "Sequential", "initialize"]


class BaseModule(nn.Module):
    """An ``nn.Module`` with an ``init_cfg``, validated when the module is built.

    ``init_cfg`` keeps the value given (a deep copy), as MMEngine does, so code that
    reads or replaces it keeps working; it is parsed again when a plan is compiled.
    """

    def __init__(self, init_cfg: Any = None) -> None:
        super().__init__()
        parse_init_cfg(init_cfg, f"{type(self).__name__}.init_cfg")
        self._is_init = False
        self.init_cfg = copy.deepcopy(init_cfg)

    @property
    def is_init(self) -> bool:
        """Whether ``init_weights`` has run (it does nothing more once it has)."""
        return self._is_init

    @is_init.setter
    def is_init(self, value: bool) -> None:
        self._is_init = value

    def init_weights(self) -> None:
        """Initialize the weights from the ``init_cfg`` of this module and its descendants.

        Raises :class:`~initschema.InitCfgError` before any write when a rule is bad.
        """
        from .execute import running
        from .plan import compile_init_weights

        if self._is_init:
            warnings.warn(
                f"init_weights of {type(self).__name__} has been called more than once; "
                f"it does nothing now (set is_init = False to run it again).",
                stacklevel=2,
            )
            return
        # Called from a user init_weights inside a running plan, this module's lints would
        # ignore what its ancestors' rules write: the outer plan already reported them.
        compile_init_weights(self, log=not running()).execute()

    def __repr__(self) -> str:
        text = super().__repr__()
        if self.init_cfg:
            text += f"\ninit_cfg={self.init_cfg}"
        return text


class Sequential(BaseModule, nn.Sequential):
    """``nn.Sequential`` whose ``init_weights`` reaches its children and has an ``init_cfg``."""

    def __init__(self, *args: nn.Module, init_cfg: Any = None) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.Sequential.__init__(self, *args)


class ModuleList(BaseModule, nn.ModuleList):
    """``nn.ModuleList`` whose ``init_weights`` reaches its children and has an ``init_cfg``."""

    def __init__(self, modules: Iterable[nn.Module] | None = None, init_cfg: Any = None) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.ModuleList.__init__(self, modules)


class ModuleDict(BaseModule, nn.ModuleDict):
    """``nn.ModuleDict`` whose ``init_weights`` reaches its children and has an ``init_cfg``."""

    def __init__(
        self, modules: Mapping[str, nn.Module] | None = None, init_cfg: Any = None
    ) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.ModuleDict.__init__(self, modules)


def initialize(module: nn.Module, init_cfg: Any) -> None:
    """Apply ``init_cfg`` to ``module`` as MMEngine's ``initialize`` does (list order,
    each rule's overrides right after it), after validating all of it."""
    from .plan import compile_plan

    if init_cfg is None:
        raise TypeError("initialize() needs an init_cfg (a dict, a list or named rules), got None")
    compile_plan(module, init_cfg).execute()
