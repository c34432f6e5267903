"""The diagnostic assessment report: MIP with the lesions, lesion table, scores and
eligibility, as one self-contained HTML page and an A4 PDF (matplotlib only).

Inputs are the plain summary and lesion rows that ``assessment.json`` and
``lesions.csv`` hold, so the report shows exactly what was written.
"""

from __future__ import annotations

import base64
import io
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from theranet.image import Image, Labels
from theranet.report._format import fmt_num

__all__ = ["LESION_COLUMNS", "mip_figure", "write_assessment_report"]

_A4_IN = (8.27, 11.69)

#: Lesion table columns shown in the report: (key, heading).
LESION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("lesion_id", "lesion"),
    ("site", "site"),
    ("volume_ml", "volume (mL)"),
    ("max_mbq_per_ml", "max (MBq/mL)"),
    ("suv_max", "SUVmax"),
    ("suv_peak", "SUVpeak"),
    ("tlr", "T/L"),
    ("tsr", "T/S"),
    ("krenning_grade", "Krenning-eq."),
    ("pv_limited", "PV-limited"),
    ("netpet", "NETPET"),
)


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return fmt_num(value, 3) if np.isfinite(value) else ""
    return str(value)


def mip_figure(image: Image, lesions: Labels, title: str | None = None):
    """Anterior maximum-intensity projection with the detected lesions outlined.

    Parameters
    ----------
    image : Image
        The uptake image.
    lesions : Labels
        Lesion label map on the image grid.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    data = np.asarray(image.data, dtype=np.float32)
    lab = np.asarray(lesions.image.data) > 0
    a = np.asarray(image.affine, dtype=np.float64)
    ap = int(np.argmax(np.abs(a[1, :3])))
    si = int(np.argmax(np.abs(a[2, :3])))
    lr = 3 - ap - si
    mip = data.max(axis=ap)
    outline = lab.any(axis=ap)
    rest = [ax for ax in range(3) if ax != ap]
    if rest.index(si) != 0:  # rows along S-I
        mip, outline = mip.T, outline.T
    if a[2, si] > 0:  # head at the top
        mip, outline = mip[::-1], outline[::-1]
    if a[0, lr] < 0:  # the patient's right on the viewer's left (anterior view)
        mip, outline = mip[:, ::-1], outline[:, ::-1]
    spacing = np.linalg.norm(a[:3, :3], axis=0)
    aspect = spacing[si] / spacing[lr]
    vmax = float(np.percentile(mip[mip > 0], 99.5)) if np.any(mip > 0) else 1.0
    fig = Figure(figsize=_A4_IN, dpi=110, layout="constrained")
    ax = fig.add_subplot()
    shown = ax.imshow(mip, cmap="gray_r", vmin=0.0, vmax=vmax, aspect=aspect,
                      interpolation="nearest")  # fmt: skip
    if outline.any():
        ax.contour(outline.astype(float), levels=[0.5], colors="#d62728", linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "Anterior MIP, detected lesions outlined in red", fontsize=10)
    ax.text(0.01, 0.99, "R", transform=ax.transAxes, va="top", fontsize=9, color="#444")
    ax.text(0.99, 0.99, "L", transform=ax.transAxes, va="top", ha="right", fontsize=9,
            color="#444")  # fmt: skip
    unit = image.unit
    fig.colorbar(shown, ax=ax, shrink=0.6, label=f"{image.quantity.value} ({unit})")
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _eligibility_rows(summary: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    el = summary.get("eligibility") or {}
    rows = []
    for r in el.get("reasons", []):
        passed = r.get("passed")
        state = "met" if passed is True else "not met" if passed is False else "unknown"
        rows.append((str(r.get("rule", "")), state, str(r.get("text", "")),
                     str(r.get("source", ""))))  # fmt: skip
    return rows


def _html(summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], png: bytes) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("theranet.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    template = env.get_template("assessment.html.j2")
    el = summary.get("eligibility") or {}
    return template.render(
        summary=summary,
        scan=summary["scan"],
        detection=summary["detection"],
        headings=[h for _, h in LESION_COLUMNS],
        lesion_rows=[[_fmt(r.get(k)) for k, _ in LESION_COLUMNS] for r in rows],
        patient=summary["krenning"]["patient"] or {},
        verdict=el.get("verdict", "not asked"),
        therapy=el.get("therapy", summary.get("question") or ""),
        reasons=_eligibility_rows(summary),
        warnings=summary.get("warnings", []),
        mip=base64.b64encode(png).decode("ascii"),
    )


def _pdf(path: Path, summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], fig) -> None:
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    a4 = _A4_IN
    el = summary.get("eligibility") or {}
    with PdfPages(path) as pdf:
        pdf.savefig(fig)
        lines = [
            f"Diagnostic assessment — {summary['scan']['tracer']} {summary['scan']['modality']}",
            "",
            f"Lesions found: {summary['lesions']}   threshold "
            f"{_fmt(summary['detection']['threshold'])} {summary['detection']['unit']}",
            f"Eligibility ({el.get('therapy', summary.get('question') or 'none')}): "
            f"{el.get('verdict', 'not asked')}",
            "",
            "  ".join(f"{h:>12}" for _, h in LESION_COLUMNS),
        ]
        for r in rows:
            lines.append("  ".join(f"{_fmt(r.get(k)):>12}" for k, _ in LESION_COLUMNS))
        lines.append("")
        for rule, state, text, source in _eligibility_rows(summary):
            lines.extend(textwrap.wrap(f"[{state}] {rule}: {text} ({source})", 110))
        for w in summary.get("warnings", []):
            lines.extend(textwrap.wrap(f"warning: {w}", 110))
        per_page = 70
        for start in range(0, len(lines), per_page):
            page = Figure(figsize=a4)
            page.text(0.06, 0.96, "\n".join(lines[start:start + per_page]), va="top",
                      family="monospace", fontsize=6.5)  # fmt: skip
            pdf.savefig(page)


def write_assessment_report(
    out_dir: str | Path,
    summary: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    image: Image,
    lesions: Labels,
) -> dict[str, Path]:
    """Write ``assessment.html`` and ``assessment.pdf`` into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        An existing folder (the caller's temporary output folder).
    summary : mapping
        The content of ``assessment.json``.
    rows : sequence of mapping
        The rows of ``lesions.csv``.
    image : Image
    lesions : Labels

    Returns
    -------
    dict of str to Path
    """
    out = Path(out_dir)
    scan = summary["scan"]
    title = (f"{scan['tracer']} {scan['modality']}: anterior MIP, "
             f"{summary['lesions']} lesions outlined in red")  # fmt: skip
    fig = mip_figure(image, lesions, title)
    png = _png(fig)
    html = out / "assessment.html"
    html.write_text(_html(summary, rows, png), encoding="utf-8")
    pdf = out / "assessment.pdf"
    _pdf(pdf, summary, rows, fig)
    return {"assessment.html": html, "assessment.pdf": pdf}
