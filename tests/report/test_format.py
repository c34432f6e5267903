"""Number formatting shared by the HTML and PDF reports."""

from __future__ import annotations

import math

import pytest

from theranet.report._format import (
    DASH,
    fmt_activity,
    fmt_datetime,
    fmt_hours,
    fmt_num,
    fmt_pm,
    fmt_rel_sd_percent,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0, "0"),
        (0.012345, "0.0123"),
        (1.0, "1.00"),
        (12.345, "12.3"),
        (9.996, "10.0"),
        (1234.6, "1235"),
        (2.5e-5, "2.50e-05"),
        (3.2e7, "3.20e+07"),
        (-4.56, "-4.56"),
        (math.nan, DASH),
        (math.inf, DASH),
        (None, DASH),
    ],
)
def test_fmt_num(value, expected):
    assert fmt_num(value) == expected


@pytest.mark.parametrize(
    ("value", "sd", "expected"),
    [
        (12.345, 1.234, "12.3 ± 1.2"),
        (960.0, 76.8, "960 ± 77"),
        (6.7213, 0.67213, "6.72 ± 0.67"),
        (0.5, 120.0, "0.50 ± 120"),
        (3.0, math.nan, f"3.00 ± {DASH}"),
        (math.nan, math.nan, DASH),
        (0.0, 0.0, "0 ± 0"),
    ],
)
def test_fmt_pm(value, sd, expected):
    assert fmt_pm(value, sd) == expected


def test_other_formats():
    assert fmt_rel_sd_percent(20.0, 2.0) == "10"
    assert fmt_rel_sd_percent(0.0, 0.0) == DASH
    assert fmt_hours(4.0) == "4" and fmt_hours(4.25) == "4.2" and fmt_hours(math.nan) == DASH
    assert fmt_activity(7400.0) == "7400 MBq (7.40 GBq)"
    assert fmt_datetime("2026-03-02T10:00:00") == "2026-03-02 10:00"
    assert fmt_datetime("2026-03-02T10:00:00+01:00") == "2026-03-02 10:00 +0100"
    assert fmt_datetime("yesterday") == "yesterday"
