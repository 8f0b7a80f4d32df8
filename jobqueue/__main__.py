"""`python -m jobqueue`: the same as the `jobqueue` command."""

from __future__ import annotations

import sys

from jobqueue.cli import main

if __name__ == "__main__":
    sys.exit(main())
