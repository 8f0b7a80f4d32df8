"""How long to wait before trying again after failures in a row: doubling from a base, capped, optionally jittered.

Standard library only, so the client package may use it without pulling in any server code.
"""

from __future__ import annotations

import math
import random


def delay(failures: int, base: float, cap: float, jitter: float = 0.0) -> float:
    """Seconds to wait after `failures` failures: base * 2**failures, at most `cap`, then scaled by a
    factor drawn uniformly from [1 - jitter, 1 + jitter] (no random draw when jitter is 0), so every
    retry loop backs off the same way."""
    try:
        wait = min(cap, base * 2**failures)
    except OverflowError:  # 2**failures too large for a float: far past any cap
        wait = min(cap, math.inf)
    if jitter:
        wait *= random.uniform(1 - jitter, 1 + jitter)
    return wait
