"""The HTML report: content, escaping and self-containment."""

from __future__ import annotations

import re

from tests.report.conftest import NAMES
from theranet.report._format import DASH, fmt_pm


def test_header_and_sections(html_text, report):
    assert html_text.startswith("<!DOCTYPE html>")
    for needle in (
        report.title,
        report.patient,
        report.nuclide,
        "7400 MBq (7.40 GBq)",
        "2026-03-02 10:00",
        "4, 24, 96, 168",
        "Warnings",
        "Registration",
        "Methods",
        "Software and data versions",
        "Reviewed by",
        "2026-03-09 12:00 UTC",
    ):
        assert needle in html_text, needle


def test_regions_and_doses(html_text, report):
    for name in NAMES:
        escaped = name.replace("<", "&lt;")
        assert f"<td>{escaped}</td>" in html_text
    for row in report.doses:
        assert fmt_pm(row.mean_dose_gy, row.dose_sd_gy) in html_text


def test_escaping(html_text):
    assert "a&lt;b" in html_text
    assert "a<b" not in html_text
    assert "metric &lt; 0.9" in html_text  # warnings are escaped too
    assert "<script" not in html_text.lower()


def test_figures_are_embedded(html_text):
    images = re.findall(
        r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]+)"', html_text
    )
    assert len(images) == 4  # TAC, MIP overlay, DVH, dose bars
    for data, alt in images:
        assert data.startswith("iVBORw0KGgo")  # base64 of the PNG signature
        assert len(alt) > 20
    # self-contained: no external resources
    assert not re.search(r'(src|href)="(https?:)?//', html_text)


def test_missing_values_shown_as_dash(report, monkeypatch):
    import dataclasses

    import theranet.report.figures
    from theranet.report.figures import figure_specs
    from theranet.report.html import render_html

    rows = [dataclasses.replace(r, tia_sd_mbq_h=float("nan")) for r in report.doses[:1]]
    small = dataclasses.replace(
        report, doses=rows, curves=report.curves[:1], dvh={}, warnings=(), registration=()
    )
    assert [s.key for s in figure_specs(small)] == ["tac-1", "overlay", "dose-bars"]
    monkeypatch.setattr(theranet.report.figures, "figure_specs", lambda report: [])
    text = render_html(small)
    assert f"± {DASH}" in text
    assert "Warnings" not in text
    assert "No figures." in text
