"""Shared, rendered-once report fixtures (rendering takes seconds)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.report.builders import make_report

#: Region names of the shared report; "a<b" checks the HTML escaping.
NAMES = ("liver", "a<b", "spleen", "lesion 1")
GENERATED = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def report():
    return make_report(NAMES)


@pytest.fixture(scope="session")
def html_text(report) -> str:
    from theranet.report.html import render_html

    return render_html(report, generated=GENERATED)


@pytest.fixture(scope="session")
def pdf_path(report, tmp_path_factory):
    from theranet.report.pdf import render_pdf

    path = tmp_path_factory.mktemp("pdf") / "report.pdf"
    render_pdf(report, path, generated=GENERATED)
    return path
