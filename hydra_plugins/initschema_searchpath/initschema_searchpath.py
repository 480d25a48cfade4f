"""Puts initschema's rule library on every Hydra app's search path.

With initschema installed, any ``@hydra.main`` app can compose ``init`` rules
(``- /init@model.init_cfg.convs: conv_kaiming``, ``+init@model.init_cfg.head=normal``)
and ``init_strategy`` strategies without importing initschema first: Hydra loads this
plugin (it scans the ``hydra_plugins`` namespace package), which registers one
structured config per initializer in the ``init`` group (after importing the modules
of the ``initschema.initializers`` entry point group, where packages register their
own initializers) and appends ``pkg://initschema.conf`` to the search path.
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class InitschemaSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from initschema.hydra import register_configs

        register_configs()
        search_path.append(provider="initschema", path="pkg://initschema.conf")
