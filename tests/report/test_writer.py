"""write_report: both files, written atomically into an existing folder.

The renderers are replaced by stand-ins here (the real ones are exercised in
test_html.py, test_pdf.py and test_rendering.py, and rendering takes seconds).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import theranet.report.html
import theranet.report.pdf
from theranet.report import CycleReport, write_report


@pytest.fixture
def fake_renderers(monkeypatch):
    seen = {}

    def render_html(report, *, generated=None, pngs=None):
        seen["html"] = generated
        return f"<p>{report.title}</p>"

    def render_pdf(report, path, *, generated=None, pngs=None):
        seen["pdf"] = generated
        Path(path).write_bytes(b"%PDF-1.4 stand-in")
        return Path(path)

    monkeypatch.setattr(theranet.report.html, "render_html", render_html)
    monkeypatch.setattr(theranet.report.pdf, "render_pdf", render_pdf)
    return seen


def test_write_report(report, tmp_path, fake_renderers):
    assert isinstance(report, CycleReport)
    (tmp_path / "report.html").write_text("old")  # replaced
    paths = write_report(report, tmp_path)
    assert paths == {"html": tmp_path / "report.html", "pdf": tmp_path / "report.pdf"}
    assert paths["html"].read_text(encoding="utf-8") == f"<p>{report.title}</p>"
    assert paths["pdf"].read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.pdf"]
    assert paths["pdf"].stat().st_mode & 0o044  # not private like a mkstemp file
    # both documents state the same generation time
    assert fake_renderers["html"] is fake_renderers["pdf"] is not None


def test_failed_pdf_leaves_no_temporary_file(report, tmp_path, fake_renderers, monkeypatch):
    def broken(report, path, *, generated=None, pngs=None):
        Path(path).write_bytes(b"%PDF partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(theranet.report.pdf, "render_pdf", broken)
    (tmp_path / "report.pdf").write_bytes(b"%PDF previous")
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(report, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.pdf"]
    assert (tmp_path / "report.pdf").read_bytes() == b"%PDF previous"


def test_missing_folder(report, tmp_path):
    with pytest.raises(NotADirectoryError, match="out_dir"):
        write_report(report, tmp_path / "nope")
