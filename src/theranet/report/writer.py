"""Write a cycle report's HTML page and PDF into a folder."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from theranet.report.model import CycleReport

__all__ = ["write_report"]


def _replace_atomically(target: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``target``, then rename it."""
    # a fresh name rather than mkstemp, whose 0600 mode would stick to the report
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_report(report: CycleReport, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``report.html`` and ``report.pdf`` into ``out_dir``.

    Parameters
    ----------
    report : CycleReport
    out_dir : path-like
        An existing folder; files of the same names are replaced. Each file is
        written to a temporary file in ``out_dir`` and renamed into place, so a
        reader never sees a partial file.

    Returns
    -------
    dict of str to Path
        ``{"html": .../report.html, "pdf": .../report.pdf}``.

    Raises
    ------
    NotADirectoryError
        When ``out_dir`` is not an existing folder.
    """
    from theranet.report.html import render_html
    from theranet.report.pdf import render_pdf

    out = Path(out_dir)
    if not out.is_dir():
        raise NotADirectoryError(
            f"out_dir: {str(out)!r} is not an existing folder; create it first"
        )
    generated = datetime.now(UTC)
    paths = {"html": out / "report.html", "pdf": out / "report.pdf"}
    pngs: dict[str, bytes] = {}
    page = render_html(report, generated=generated, pngs=pngs)
    _replace_atomically(paths["html"], lambda tmp: tmp.write_text(page, encoding="utf-8"))
    # the PDF places the same figure renderings (drawn once)
    _replace_atomically(
        paths["pdf"], lambda tmp: render_pdf(report, tmp, generated=generated, pngs=pngs)
    )
    return paths
