"""Calendar quarters and the day overlap of product windows with them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gppscale.errors import GppscaleError, SpecError
from gppscale.stages.quarters import Quarter, overlap_days, quarters_of

D = np.timedelta64(1, "D")


@pytest.mark.parametrize(
    ("year", "q", "start", "end", "days", "mid_doy"),
    [
        # 2021 Q1: Jan 31 + Feb 28 + Mar 31 = 90 days; middle day = start + 45 days = doy 46 (15 Feb).
        (2021, 1, "2021-01-01", "2021-04-01", 90, 46),
        # leap year: 31 + 29 + 31 = 91 days; doy 1 + 45 = 46.
        (2020, 1, "2020-01-01", "2020-04-01", 91, 46),
        # Q2: 30 + 31 + 30 = 91; 1 Apr is doy 91 (non-leap), + 91 // 2 = 45 → doy 136.
        (2021, 2, "2021-04-01", "2021-07-01", 91, 136),
        # Q3: 31 + 31 + 30 = 92; 1 Jul is doy 182, + 46 → 228 (16 Aug).
        (2021, 3, "2021-07-01", "2021-10-01", 92, 228),
        # Q4 ends on 1 January of the next year: 31 + 30 + 31 = 92; 1 Oct is doy 274, + 46 → 320.
        (2021, 4, "2021-10-01", "2022-01-01", 92, 320),
    ],
)
def test_quarter_properties(year: int, q: int, start: str, end: str, days: int, mid_doy: int) -> None:
    quarter = Quarter(year, q)
    assert quarter.start == np.datetime64(start, "D")
    assert quarter.end == np.datetime64(end, "D")
    assert quarter.start.dtype == np.dtype("datetime64[D]")
    assert quarter.days == days
    assert quarter.label == f"{year}Q{q}"
    assert quarter.mid_doy == mid_doy


@pytest.mark.parametrize("q", [0, 5, -1, True])
def test_quarter_rejects_bad_number(q: int) -> None:
    with pytest.raises(SpecError, match="1, 2, 3 or 4") as info:
        Quarter(2021, q)
    assert isinstance(info.value, GppscaleError)


def test_quarter_is_frozen_and_sorts_by_time() -> None:
    q = Quarter(2021, 2)
    with pytest.raises(AttributeError):
        q.q = 3  # type: ignore[misc]
    assert sorted([Quarter(2022, 1), Quarter(2021, 4), q]) == [q, Quarter(2021, 4), Quarter(2022, 1)]


def test_quarters_of_sorted_unique() -> None:
    got = quarters_of([2022, 2021, 2021], [4, 1])
    assert [q.label for q in got] == ["2021Q1", "2021Q4", "2022Q1", "2022Q4"]
    assert isinstance(got, tuple)
    with pytest.raises(SpecError):
        quarters_of([2021], [7])


def test_overlap_days_straddling_window() -> None:
    # GLASS window starting 30 March: [2021-03-30, 2021-04-07) → 30, 31 March in Q1 (2 days),
    # 1..6 April in Q2 (6 days).
    start = np.array(["2021-03-30"], dtype="datetime64[D]")
    end = start + 8 * D
    assert overlap_days(start, end, Quarter(2021, 1)).tolist() == [2.0]
    assert overlap_days(start, end, Quarter(2021, 2)).tolist() == [6.0]
    assert overlap_days(start, end, Quarter(2021, 3)).tolist() == [0.0]


def test_overlap_days_any_unit_and_nat() -> None:
    # Nanosecond bounds, the last window ending at noon: [2021-06-28T12:00, 2021-07-02T00:00) has
    # 2.5 days in Q2 (28 June noon → 1 July) and 1 day in Q3; NaT gives 0.
    start = np.array(["2021-06-28T12:00", "NaT"], dtype="datetime64[ns]")
    end = np.array(["2021-07-02T00:00", "2021-07-05"], dtype="datetime64[ns]")
    assert overlap_days(start, end, Quarter(2021, 2)).tolist() == [2.5, 0.0]
    assert overlap_days(start, end, Quarter(2021, 3)).tolist() == [1.0, 0.0]


def test_overlap_days_rejects_non_dates() -> None:
    with pytest.raises(SpecError, match="datetime64"):
        overlap_days(np.array([1.0]), np.array([2.0]), Quarter(2021, 1))  # type: ignore[arg-type]


@given(
    st.integers(1999, 2030),
    st.integers(0, 364),
    st.integers(1, 16),
)
def test_overlap_days_sum_to_window_length(year: int, offset: int, length: int) -> None:
    # A window of `length` days inside [1 Jan year, 1 Jan year + 2) is split over the quarters of the
    # two years without loss or double counting.
    start = np.array([np.datetime64(f"{year}-01-01", "D") + offset * D])
    end = start + length * D
    total = sum(overlap_days(start, end, q)[0] for q in quarters_of([year, year + 1], [1, 2, 3, 4]))
    assert total == length
