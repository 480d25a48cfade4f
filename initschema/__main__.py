"""``python -m initschema``: the same as the ``initschema`` command."""

import os
import sys

# `python -m` puts the current directory first on sys.path: a rich.py there would stand in
# for the installed package. The command makes it importable itself, last.
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from .cli import main

sys.exit(main())
