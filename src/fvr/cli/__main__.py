"""``python -m fvr.cli``: the ``fvr`` command."""

import sys

from fvr.cli import main

sys.exit(main())
