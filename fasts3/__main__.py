"""``python -m fasts3``: the ``fasts3`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
