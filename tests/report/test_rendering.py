"""The report is looked at: PDF pages and the HTML page rendered to pixels.

poppler's ``pdftoppm`` renders the PDF, headless Chromium the HTML; the images
must exist, be of a plausible size and not be blank.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import numpy as np
import pytest
from matplotlib import image as mpimg

TIMEOUT_S = 60


def assert_not_blank(png_path, min_std=0.03, min_ink=0.01) -> None:
    """Pixel SD above ``min_std`` (0-1 scale) and over ``min_ink`` of the pixels
    clearly not white (grey level below 0.9)."""
    assert png_path.stat().st_size > 2000
    pixels = mpimg.imread(png_path)
    grey = pixels[..., :3].mean(axis=-1) if pixels.ndim == 3 else pixels
    assert float(grey.std()) > min_std, f"{png_path.name}: SD {grey.std():.4f}"
    ink = float(np.mean(grey < 0.9))
    assert ink > min_ink, f"{png_path.name}: {ink:.2%} non-white pixels"


def test_pdf_pages_render(pdf_path, tmp_path):
    exe = shutil.which("pdftoppm")
    if exe is None:
        pytest.skip("pdftoppm not found: install poppler-utils")
    subprocess.run(
        [exe, "-r", "60", "-png", str(pdf_path), str(tmp_path / "page")],
        check=True,
        capture_output=True,
        timeout=TIMEOUT_S,
    )
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 3
    for png in pages:
        height, width = mpimg.imread(png).shape[:2]
        # A4 at 60 dpi: 8.27 x 11.69 in -> about 496 x 701 px (poppler rounds up)
        assert abs(width - 8.27 * 60) <= 2 and abs(height - 11.69 * 60) <= 2
        assert_not_blank(png)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    return None


def _screenshot(exe: str, headless_flag: str, html, png, profile) -> bool:
    cmd = [
        exe,
        headless_flag,
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        "--window-size=1200,3000",
        html.as_uri(),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the browser group this test started
        proc.wait()
    return png.exists() and png.stat().st_size > 0


def test_html_renders_in_chromium(html_text, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium not found: install chromium to render the HTML report")
    html = tmp_path / "report.html"
    html.write_text(html_text, encoding="utf-8")
    png = tmp_path / "report.png"
    ok = False
    for flag in ("--headless=new", "--headless"):
        if _screenshot(exe, flag, html, png, tmp_path / f"profile{flag[-3:]}"):
            ok = True
            break
    assert ok, "chromium wrote no screenshot with --headless=new nor --headless"
    height, width = mpimg.imread(png).shape[:2]
    assert (width, height) == (1200, 3000)
    assert_not_blank(png)
