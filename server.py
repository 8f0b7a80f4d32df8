"""Run jobqueue from a checkout: `python server.py --help` (installed, the same is `jobqueue serve`).

The code lives in handlers/app.py, which the installed package carries as jobqueue.handlers.app.
"""

from __future__ import annotations

import sys

from handlers.app import JobQueueServer, exposure_warnings, main, run

__all__ = ["JobQueueServer", "exposure_warnings", "main", "run"]

if __name__ == "__main__":
    sys.exit(main())
