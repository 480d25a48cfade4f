"""``OpaqueInit``: an initializer that is code of its own (e.g. an MMEngine ``BaseInit``
registered by a project), run on a module like a user ``init_weights``."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict, PrivateAttr

from .initializer import Initializer

__all__ = ["OpaqueInit"]


class OpaqueInit(Initializer):
    """An initializer that is code of its own, run on the whole module its rule is attached
    to (e.g. an MMEngine ``BaseInit`` registered by a project): opaque, like a user
    ``init_weights``; what it wrote is read off tensor version counters."""

    model_config = ConfigDict(frozen=True, extra="allow")

    shadows: ClassVar[str] = ""
    """The built-in initializer this one's name hides, if any (an info-level lint)."""

    _whole: bool = PrivateAttr(default=False)

    @property
    def origin(self) -> str:
        """Where its code comes from (for messages and lints)."""
        return f"{type(self).__module__}.{type(self).__qualname__}"

    def run(self, module: Any) -> None:
        """Initialize ``module`` (and what it selects below it)."""
        raise NotImplementedError

    @property
    def whole(self) -> bool:
        """Whether it runs as an override: on the whole named submodule, ``layer`` aside."""
        return self._whole

    def as_override(self) -> OpaqueInit:
        copied = self.model_copy()
        copied._whole = True
        return copied
