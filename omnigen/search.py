"""The one bisection of the package: the most of something (calls, ports) that still fits.

Every "at most N" in a message (port budgets, calls within a budget, calls that fit the host,
calls an imported RTP range carries) is this search over a condition that holds up to some
number and fails above it; the standard library's bisect does the halving.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable


def most_that_fits(low: int, high: int, fits: Callable[[int], bool]) -> int:
    """The largest n in [low, high) with fits(n), given that fits(low) holds (it is not asked) and that
    fits holds up to some number and fails above it (fits(high) is not asked either)."""
    return low + bisect.bisect_left(range(low + 1, high), True, key=lambda n: not fits(n))
