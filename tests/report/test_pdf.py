"""The PDF report: structure, metadata, text and pagination."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.report.builders import lattice_names, make_report
from tests.report.conftest import NAMES
from theranet._version import __version__
from theranet.report import _format
from theranet.report.pdf import A4_PORTRAIT_IN, _Document, _Measure


def page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", pdf))


def test_structure_and_metadata(pdf_path):
    data = pdf_path.read_bytes()
    assert data.startswith(b"%PDF")
    # header + table, 4 figures, registration/methods/versions
    assert page_count(data) == 6
    assert f"theranet {__version__}".encode() in data  # Creator
    assert b"/Title" in data and b"Cycle 1 dosimetry" in data
    # every page A4 portrait: 8.27 x 11.69 in = 595.4 x 841.7 pt
    boxes = re.findall(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)
    assert len(boxes) == 6
    for width_pt, height_pt in boxes:
        assert float(width_pt) == pytest.approx(A4_PORTRAIT_IN[0] * 72)
        assert float(height_pt) == pytest.approx(A4_PORTRAIT_IN[1] * 72)


def test_text_is_extractable(pdf_path):
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext not found: install poppler-utils")
    out = subprocess.run(
        ["pdftotext", "-layout", str(pdf_path), "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for name in NAMES:
        assert name in out
    assert "page 1 of 6" in out and "page 6 of 6" in out
    assert "Reviewed by" in out


def test_long_dose_table_is_paginated():
    report = make_report(lattice_names(90), shape=(24, 24, 24))
    doc = _Document(report, "now", _Measure())
    doc.new_page(running_header=False)
    doc.title_block()
    doc.table(_format.dose_table(report), "Absorbed doses", fold_constant=True)
    assert len(doc.pages) >= 2
    texts = [t.get_text() for page in doc.pages for t in page.texts]
    assert "Absorbed doses (continued)" in texts
    for name in ("liver", "lesion 80"):
        assert name in texts
    # constant columns are folded into a note, the other text stays >= 7 pt
    assert all(t.get_fontsize() >= 7 for page in doc.pages for t in page.texts)
    assert doc.y <= doc.bottom
