"""search.most_that_fits: the package's one bisection, against counting up."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from omnigen.search import most_that_fits


@given(st.integers(min_value=-50, max_value=50), st.integers(min_value=1, max_value=300), st.integers(min_value=0, max_value=400))
def test_it_finds_the_largest_number_that_fits(low: int, span: int, threshold_offset: int) -> None:
    high = low + span
    threshold = low + threshold_offset  # fits(n) holds for n <= threshold
    asked: list[int] = []

    def fits(n: int) -> bool:
        asked.append(n)
        return n <= threshold

    expected = max(n for n in range(low, high) if n == low or fits(n))
    asked.clear()
    assert most_that_fits(low, high, fits) == expected
    assert all(low < n < high for n in asked), "neither bound is asked"
