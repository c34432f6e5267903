"""The cycle report as one self-contained HTML page (jinja2, inline CSS and figures)."""

from __future__ import annotations

import base64
from datetime import datetime
from functools import cache

from theranet._version import __version__
from theranet.report import _format
from theranet.report.model import CycleReport

__all__ = ["render_html"]

#: Resolution of the figures embedded in the page, dots per inch.
HTML_DPI = 130


@cache
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("theranet.report", "templates"),
        autoescape=True,  # the template name ends in .j2: select_autoescape would miss it
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
    )


def render_html(
    report: CycleReport,
    *,
    generated: datetime | None = None,
    dpi: float = HTML_DPI,
    pngs: dict[str, bytes] | None = None,
) -> str:
    """The cycle report as a self-contained HTML page.

    Parameters
    ----------
    report : CycleReport
    generated : datetime, optional
        Shown as the generation time (default: now, UTC).
    dpi : float
        Resolution of the embedded PNG figures, dots per inch.
    pngs : dict of str to bytes, optional
        Filled with the PNG of each figure (key -> bytes) for reuse by the PDF.

    Returns
    -------
    str
        HTML5 with inline CSS and the figures as base64 PNG ``<img>`` with alt
        text; no scripts and no external resources. Every value from the
        report is HTML-escaped.
    """
    from theranet.report.figures import figure_png, figure_specs

    figures = []
    for spec in figure_specs(report):
        fig = spec.figure()
        png = figure_png(fig, dpi=dpi)
        if pngs is not None:
            pngs[spec.key] = png
        width_in, height_in = fig.get_size_inches()
        figures.append(
            {
                "key": spec.key,
                "title": spec.title,
                "alt": spec.alt,
                "png_base64": base64.b64encode(png).decode("ascii"),
                "width_px": round(width_in * dpi),
                "height_px": round(height_in * dpi),
            }
        )
    template = _environment().get_template("cycle.html.j2")
    return template.render(
        title=report.title,
        patient=report.patient,
        header=_format.header_items(report),
        warnings=[str(w) for w in report.warnings],
        doses=_format.dose_table(report),
        tables=_format.extra_tables(report),
        figures=figures,
        registration=_format.registration_table(report),
        methods=_format.methods_table(report),
        versions=_format.versions_table(report),
        generated=_format.generated_text(generated),
        version=__version__,
    )
