"""``python -m initschema``: the same as the ``initschema`` command."""

import sys

from .cli import main

sys.exit(main())
