"""The cycle report as a multi-page A4 PDF, drawn with matplotlib only (PdfPages).

Pages: the header and the dose table (continued on further pages when it does
not fit), one page per figure, then registration, methods, versions and the
signature line. Every page carries a running footer with ``page i of N``.
Text is laid out in inches from the top-left corner of the page, with widths
measured by the Agg renderer so that table cells wrap instead of overflowing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from theranet._version import __version__
from theranet.report import _format
from theranet.report.model import CycleReport

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from theranet.report.figures import FigureSpec

__all__ = ["A4_PORTRAIT_IN", "render_pdf"]

#: A4 portrait page (width, height), inches.
A4_PORTRAIT_IN = (8.27, 11.69)
_MARGIN_X = 0.55
_MARGIN_TOP = 0.5
_MARGIN_BOTTOM = 0.6
_TABLE_PT = 7.5
_TABLE_MIN_PT = 6.0  # wide tables shrink to this size before words break
_BODY_PT = 9.0
_SMALL_PT = 8.0
_INK = "#1b1f23"
_MUTED = "#59636e"
_RULE = "#d0d7de"
_STRIPE = "#f3f5f7"
_HEAD = "#e7ebef"


class _Measure:
    """Text widths in inches, from the Agg renderer (what the PDF shows to within
    a point: both use the same font metrics)."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_agg import RendererAgg

        self._renderer = RendererAgg(10, 10, 72)
        self._cache: dict[tuple[str, float, str], float] = {}

    def width_in(self, text: str, size_pt: float, weight: str = "normal") -> float:
        key = (text, size_pt, weight)
        if key not in self._cache:
            from matplotlib.font_manager import FontProperties

            from theranet.report.figures import RC

            prop = FontProperties(family=RC["font.family"], size=size_pt, weight=weight)
            w, _, _ = self._renderer.get_text_width_height_descent(text, prop, ismath=False)
            self._cache[key] = (w * 1.02 + 0.5) / 72.0
        return self._cache[key]

    def wrap(self, text: str, width_in: float, size_pt: float, weight: str = "normal") -> list[str]:
        """Greedy word wrap to ``width_in``; words longer than a line are split."""
        lines: list[str] = []
        for paragraph in str(text).split("\n"):
            current = ""
            for word in paragraph.split(" "):
                candidate = f"{current} {word}" if current else word
                if self.width_in(candidate, size_pt, weight) <= width_in:
                    current = candidate
                    continue
                if current:
                    lines.append(current)
                current = word
                while len(current) > 1 and self.width_in(current, size_pt, weight) > width_in:
                    cut = len(current) - 1
                    while cut > 1 and self.width_in(current[:cut], size_pt, weight) > width_in:
                        cut -= 1
                    lines.append(current[:cut])
                    current = current[cut:]
            lines.append(current)
        return lines

    def longest_word_in(self, text: str, size_pt: float, weight: str = "normal") -> float:
        words = str(text).split()
        return max((self.width_in(w, size_pt, weight) for w in words), default=0.0)


def _fold_constant_columns(table: _format.Table) -> tuple[_format.Table, str]:
    """``table`` without its constant text columns, and a note stating them."""
    if len(table.rows) < 3:
        return table, ""
    keep, folded = [], []
    for j, header in enumerate(table.headers):
        values = {row[j] for row in table.rows}
        if j > 0 and not table.numeric[j] and len(values) == 1:
            folded.append(f"{header}: {values.pop()}")
        else:
            keep.append(j)
    if not folded:
        return table, ""
    reduced = _format.Table(
        tuple(table.headers[j] for j in keep),
        tuple(table.numeric[j] for j in keep),
        tuple(tuple(row[j] for j in keep) for row in table.rows),
    )
    return reduced, "All regions — " + "; ".join(folded) + "."


@dataclass
class _Document:
    """Pages being written, with a cursor ``y`` (inches from the top)."""

    report: CycleReport
    generated: str
    measure: _Measure

    def __post_init__(self) -> None:
        self.pages: list[Figure] = []
        self.y = 0.0

    # -- geometry ------------------------------------------------------------
    @property
    def width(self) -> float:
        return A4_PORTRAIT_IN[0] - 2 * _MARGIN_X

    @property
    def bottom(self) -> float:
        return A4_PORTRAIT_IN[1] - _MARGIN_BOTTOM

    def new_page(self, running_header: bool = True) -> Figure:
        from theranet.report.figures import new_figure

        fig = new_figure(A4_PORTRAIT_IN)
        self.pages.append(fig)
        self.y = _MARGIN_TOP
        if running_header:
            self.text(f"{self.report.title}", _SMALL_PT, color=_MUTED, advance=False, x=_MARGIN_X)
            self.text(
                f"patient {self.report.patient}",
                _SMALL_PT,
                color=_MUTED,
                ha="right",
                x=_MARGIN_X + self.width,
            )
            self.rule(color=_RULE)
            self.y += 0.12
        return fig

    @property
    def page(self) -> Figure:
        return self.pages[-1]

    def need(self, height_in: float) -> bool:
        """Start a new page unless ``height_in`` fits; True when a page was started."""
        if self.y + height_in > self.bottom:
            self.new_page()
            return True
        return False

    # -- drawing ---------------------------------------------------------------
    def text(
        self,
        s: str,
        size_pt: float,
        *,
        weight: str = "normal",
        color: str = _INK,
        x: float | None = None,
        ha: str = "left",
        advance: bool = True,
        line_factor: float = 1.3,
    ) -> None:
        """One line of text whose top is at the cursor."""
        fig = self.page
        fig.text(
            _MARGIN_X if x is None else x,
            A4_PORTRAIT_IN[1] - self.y,
            s,
            fontsize=size_pt,
            fontweight=weight,
            color=color,
            ha=ha,
            va="top",
            transform=fig.dpi_scale_trans,
            parse_math=False,
        )
        if advance:
            self.y += size_pt * line_factor / 72.0

    def rule(self, color: str = _INK, lw: float = 0.6) -> None:
        from matplotlib.lines import Line2D

        fig = self.page
        h = A4_PORTRAIT_IN[1] - self.y
        fig.add_artist(
            Line2D(
                [_MARGIN_X, _MARGIN_X + self.width],
                [h, h],
                transform=fig.dpi_scale_trans,
                color=color,
                lw=lw,
            )
        )

    def box(self, top: float, bottom: float, face: str, edge: str = "none", lw: float = 0.0):
        from matplotlib.patches import Rectangle

        fig = self.page
        fig.add_artist(
            Rectangle(
                (_MARGIN_X, A4_PORTRAIT_IN[1] - bottom),
                self.width,
                bottom - top,
                transform=fig.dpi_scale_trans,
                facecolor=face,
                edgecolor=edge,
                lw=lw,
                zorder=-1,
            )
        )

    def heading(self, s: str, size_pt: float = 11.0, keep_with_in: float = 0.6) -> None:
        self.need(size_pt * 1.6 / 72.0 + keep_with_in)
        self.y += 0.08
        self.text(s, size_pt, weight="bold", line_factor=1.5)

    def paragraph(self, s: str, size_pt: float = _BODY_PT, color: str = _INK) -> None:
        for line in self.measure.wrap(s, self.width, size_pt):
            self.need(size_pt * 1.3 / 72.0)
            self.text(line, size_pt, color=color)

    # -- tables ------------------------------------------------------------------
    def _widths_at(
        self, table: _format.Table, pad: float, size_pt: float
    ) -> tuple[list[float], list[float]]:
        """Natural and minimum column widths (in) at one text size: a number or a
        word is never broken at the minimum."""
        m = self.measure
        natural, minimum = [], []
        for j, header in enumerate(table.headers):
            cells = [row[j] for row in table.rows]
            cell_w = max((m.width_in(c, size_pt) for c in cells), default=0.0)
            head_w = m.width_in(header, size_pt, "bold")
            head_word = m.longest_word_in(header, size_pt, "bold")
            # headers may take two lines before the cells do
            natural.append(max(cell_w, head_word, head_w / 2) + 2 * pad)
            if table.numeric[j]:
                minimum.append(max(cell_w, head_word) + 2 * pad)
            else:
                words = max((m.longest_word_in(c, size_pt) for c in cells), default=0.0)
                minimum.append(min(max(words, head_word) + 2 * pad, natural[-1]))
        return natural, minimum

    def _table_size(self, table: _format.Table, pad: float) -> float:
        """The table's text size, pt: the standard one, or smaller (not below
        ``_TABLE_MIN_PT``) when the columns would otherwise have to break words and
        numbers to fit the page."""
        _, minimum = self._widths_at(table, pad, _TABLE_PT)
        text = sum(minimum) - 2 * pad * len(minimum)
        room = self.width - 2 * pad * len(minimum)
        if text <= room or text <= 0.0:
            return _TABLE_PT
        # text widths scale with the size; the padding does not (a little margin
        # for rounding in the measured widths)
        return max(_TABLE_MIN_PT, _TABLE_PT * room / text * 0.995)

    def _column_widths(self, table: _format.Table, pad: float, size_pt: float) -> list[float]:
        natural, minimum = self._widths_at(table, pad, size_pt)
        total, avail = sum(natural), self.width
        if total <= avail:
            return [w + (avail - total) * w / total for w in natural]
        if sum(minimum) > avail:
            low = sum(minimum)
            return [lo * avail / low for lo in minimum]
        # water-filling: cap the widest columns first (never below their longest
        # word or number), so short ones (region names) stay on one line while
        # long ones (methods, long headers) wrap
        lo_cap, hi_cap = 0.0, max(natural)
        for _ in range(50):
            cap = (lo_cap + hi_cap) / 2
            used = sum(max(lo, min(n, cap)) for lo, n in zip(minimum, natural, strict=True))
            lo_cap, hi_cap = (cap, hi_cap) if used <= avail else (lo_cap, cap)
        widths = [max(lo, min(n, lo_cap)) for lo, n in zip(minimum, natural, strict=True)]
        spare = avail - sum(widths)
        return [w + spare * w / sum(widths) for w in widths]

    def table(self, table: _format.Table, title: str, fold_constant: bool = False) -> None:
        """Draw ``table`` from the cursor, continuing on new pages as needed.

        With ``fold_constant``, text columns (but the first) holding the same
        value in every row (of three or more) are left out and stated in a note
        under the table.
        """
        m = self.measure
        note = ""
        if fold_constant:
            table, note = _fold_constant_columns(table)
        pad_x, pad_y = 0.05, 0.035
        if not table.rows:
            self.heading(title, keep_with_in=0.3)
            self.text("None.", _BODY_PT, color=_MUTED)
            return
        size = self._table_size(table, pad_x)
        line_h = size * 1.25 / 72.0
        widths = self._column_widths(table, pad_x, size)
        lefts = [_MARGIN_X + sum(widths[:j]) for j in range(len(widths))]

        def cell_lines(row: tuple[str, ...], weight: str) -> list[list[str]]:
            return [
                m.wrap(cell, max(w - 2 * pad_x, 0.1), size, weight)
                for cell, w in zip(row, widths, strict=True)
            ]

        head = cell_lines(table.headers, "bold")
        head_h = max(len(c) for c in head) * line_h + 2 * pad_y
        bodies = [cell_lines(row, "normal") for row in table.rows]
        heights = [max(len(c) for c in b) * line_h + 2 * pad_y for b in bodies]

        def draw_row(lines: list[list[str]], height: float, weight: str, face: str | None):
            top = self.y
            if face is not None:
                self.box(top, top + height, face)
            for j, cell in enumerate(lines):
                right = table.numeric[j]
                x = lefts[j] + widths[j] - pad_x if right else lefts[j] + pad_x
                for k, line in enumerate(cell):
                    self.y = top + pad_y + k * line_h
                    self.text(
                        line,
                        size,
                        weight=weight,
                        x=x,
                        ha="right" if right else "left",
                        advance=False,
                    )
            self.y = top + height
            self.rule(color=_RULE, lw=0.5)

        def start(continued: bool) -> None:
            self.heading(title + (" (continued)" if continued else ""), keep_with_in=0.0)
            draw_row(head, head_h, "bold", _HEAD)

        self.need(0.4 + head_h + heights[0])
        start(False)
        for i, (lines, height) in enumerate(zip(bodies, heights, strict=True)):
            if self.y + height > self.bottom:
                self.new_page()
                start(True)
            draw_row(lines, height, "normal", _STRIPE if i % 2 else None)
        self.y += 0.05
        if note:
            self.paragraph(note, _SMALL_PT)
        self.y += 0.05

    # -- blocks -------------------------------------------------------------------
    def title_block(self) -> None:
        r = self.report
        self.text(r.title, 16.0, weight="bold", line_factor=1.45)
        items = _format.header_items(r)
        label_w = max(self.measure.width_in(k, _BODY_PT) for k, _ in items) + 0.25
        for label, value in items:
            lines = self.measure.wrap(value, self.width - label_w, _BODY_PT, "bold")
            self.text(label, _BODY_PT, color=_MUTED, advance=False)
            for line in lines:
                self.text(line, _BODY_PT, weight="bold", x=_MARGIN_X + label_w)
        self.y += 0.1
        self.rule()
        self.y += 0.1

    def warnings_block(self) -> None:
        warnings = [str(w) for w in self.report.warnings]
        if not warnings:
            return
        size = _BODY_PT
        line_h = size * 1.3 / 72.0
        indent = 0.3
        lines: list[tuple[str, bool, bool]] = [("Warnings \u2014 read before signing", True, False)]
        for w in warnings:
            wrapped = self.measure.wrap(w, self.width - indent - 0.15, size)
            lines += [(s, False, k == 0) for k, s in enumerate(wrapped)]
        self.need(3 * line_h + 0.2)
        box_top = self.y
        self.y += 0.08
        for text, bold, bullet in lines:
            if self.y + line_h + 0.08 > self.bottom:
                self.box(box_top, self.y + 0.05, "#fdf2e9", "#d35400", 1.2)
                self.new_page()
                box_top = self.y
                self.y += 0.08
            if bullet:
                self.text("\u2022", size, x=_MARGIN_X + 0.15, advance=False, color="#a04000")
            self.text(
                text,
                size,
                weight="bold" if bold else "normal",
                x=_MARGIN_X + (0.12 if bold else indent),
                color="#a04000" if bold else _INK,
            )
        self.y += 0.05
        self.box(box_top, self.y, "#fdf2e9", "#d35400", 1.2)
        self.y += 0.15

    def figure_page(self, number: int, spec: FigureSpec, png: bytes | None = None) -> None:
        self.new_page()
        self.text(f"Figure {number}. {spec.title}", 10.0, weight="bold", line_factor=1.6)
        available = self.bottom - self.y - 0.1
        width_in, height_in = spec.size_in
        height = min(height_in, available)
        width = min(width_in, self.width)
        page_w, page_h = A4_PORTRAIT_IN
        rect = (
            (page_w - width) / 2 / page_w,
            (page_h - self.y - height) / page_h,
            width / page_w,
            height / page_h,
        )
        if png is None:
            spec.draw_into(self.page, rect)
        else:
            import io

            from matplotlib.image import imread

            pixels = imread(io.BytesIO(png), format="png")
            ax = self.page.add_axes(rect)
            ax.imshow(pixels, interpolation="none")
            ax.set_axis_off()
            ax.set_aspect("equal", anchor="N")
        self.y += height + 0.1
        alt = self.measure.wrap(spec.alt, self.width, _SMALL_PT)
        if self.y + len(alt) * _SMALL_PT * 1.3 / 72 <= self.bottom:
            for line in alt:
                self.text(line, _SMALL_PT, color=_MUTED)

    def signature(self) -> None:
        self.need(0.9)
        self.y += 0.45
        fig = self.page
        base = A4_PORTRAIT_IN[1] - self.y - 0.16
        self.text("Reviewed by:", 10.0, advance=False)
        self.text("Date:", 10.0, x=_MARGIN_X + 4.6, advance=False)
        from matplotlib.lines import Line2D

        for x0, x1 in ((_MARGIN_X + 1.05, _MARGIN_X + 4.3), (_MARGIN_X + 5.05, _MARGIN_X + 7.0)):
            fig.add_artist(
                Line2D([x0, x1], [base, base], transform=fig.dpi_scale_trans, color=_INK, lw=0.6)
            )
        self.y += 0.4

    def footers(self) -> None:
        n = len(self.pages)
        left = f"theranet {__version__} \u00b7 generated {self.generated}"
        for i, fig in enumerate(self.pages, start=1):
            y = _MARGIN_BOTTOM * 0.45
            for x, s, ha in (
                (_MARGIN_X, left, "left"),
                (_MARGIN_X + self.width, f"page {i} of {n}", "right"),
            ):
                fig.text(
                    x,
                    y,
                    s,
                    fontsize=_SMALL_PT,
                    color=_MUTED,
                    ha=ha,
                    va="center",
                    transform=fig.dpi_scale_trans,
                    parse_math=False,
                )


def render_pdf(
    report: CycleReport,
    path: str | os.PathLike[str],
    *,
    generated: datetime | None = None,
    pngs: Mapping[str, bytes] | None = None,
) -> Path:
    """Write the cycle report as an A4 portrait PDF.

    Parameters
    ----------
    report : CycleReport
    path : path-like
        The PDF file to write (overwritten).
    generated : datetime, optional
        Shown as the generation time (default: now, UTC).
    pngs : mapping of str to bytes, optional
        Figures already rendered (figure key -> PNG), placed as images instead
        of being drawn again as vector graphics (faster; used by
        :func:`~theranet.report.writer.write_report` so both documents show the
        same pixels).

    Returns
    -------
    Path
        ``path``.

    Notes
    -----
    Page 1 holds the header, the warnings and the dose table (continued on as
    many pages as it needs; tables use 7.5 pt text, cells wrap); each figure
    gets its own page; the last pages hold registration, methods, versions and
    the signature line. Metadata: Title, Subject, Creator ``theranet <version>``.
    """
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages

    from theranet.report.figures import RC, figure_specs

    path = Path(path)
    doc = _Document(report, _format.generated_text(generated), _Measure())
    with matplotlib.rc_context(RC):
        doc.new_page(running_header=False)
        doc.title_block()
        doc.warnings_block()
        doc.table(_format.dose_table(report), "Absorbed doses", fold_constant=True)
        doc.paragraph(
            "TIA: time-integrated activity. SD: standard deviation. "
            f"{_format.DASH}: not available.",
            _SMALL_PT,
            color=_MUTED,
        )
        for title, table in _format.extra_tables(report):
            doc.table(table, title)
        for number, spec in enumerate(figure_specs(report), start=1):
            doc.figure_page(number, spec, None if pngs is None else pngs.get(spec.key))
        doc.new_page()
        doc.table(_format.registration_table(report), "Registration")
        doc.table(_format.methods_table(report), "Methods")
        doc.table(_format.versions_table(report), "Software and data versions")
        doc.signature()
        doc.footers()
        metadata = {
            "Title": str(report.title),
            "Subject": f"{report.tracer} ({report.nuclide}) therapy-cycle dosimetry report",
            "Creator": f"theranet {__version__}",
            "Keywords": "dosimetry, absorbed dose, nuclear medicine",
        }
        with PdfPages(path, metadata=metadata) as pdf:
            for fig in doc.pages:
                pdf.savefig(fig)
    return path
