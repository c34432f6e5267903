"""Report figures drawn with matplotlib (Agg), one :class:`~matplotlib.figure.Figure` each.

No pyplot: every function builds its own ``Figure`` (with an Agg canvas) under a
local :func:`matplotlib.rc_context`, so nothing leaks into the caller's
matplotlib state.

Conventions
-----------
Size
    Figures are :data:`FIGURE_WIDTH_IN` (7.2 in) wide, to fit an A4 page with
    margins; heights grow with the number of regions and are kept under
    :data:`MAX_HEIGHT_IN`.
Fonts
    No text is smaller than :data:`MIN_FONT_PT` (8 pt).
Orientation
    The maximum-intensity projections use the radiological convention: patient
    right on the viewer's left in the coronal view, anterior on the left in the
    sagittal view, head up. Array axes are matched to the nearest patient axis
    (LPS) from the affine, so oblique grids are shown approximately.
Many regions
    :func:`tac_figures` splits curves into figures of at most
    :data:`MAX_TAC_PER_FIGURE` regions; :func:`tac_figure` refuses more.
    :func:`dose_bar_figure` groups regions by kind (one panel each, own dose
    axis); :func:`dvh_figure` puts a long legend under the axes.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine

from theranet.report._format import DASH, fmt_num

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from theranet.image import Image, Labels
    from theranet.report.model import CurveData, CycleReport, DoseRow

__all__ = [
    "FIGURE_WIDTH_IN",
    "MAX_TAC_PER_FIGURE",
    "MIN_FONT_PT",
    "FigureSpec",
    "dose_bar_figure",
    "dvh_figure",
    "figure_png",
    "figure_specs",
    "overlay_figure",
    "tac_figure",
    "tac_figures",
]

#: Width of every report figure, inches (A4 is 8.27 in wide).
FIGURE_WIDTH_IN = 7.2
#: Tallest figure, inches (fits the content area of an A4 page).
MAX_HEIGHT_IN = 9.6
#: Smallest font size used in the figures, points.
MIN_FONT_PT = 8.0
#: Most regions in one time-activity figure.
MAX_TAC_PER_FIGURE = 12

#: rc settings applied while figures are built and saved.
RC: dict[str, object] = {
    "font.family": "DejaVu Sans",
    "font.size": 8.5,
    "axes.titlesize": 9.0,
    "axes.labelsize": 8.5,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "legend.fontsize": 8.0,
    "legend.title_fontsize": 8.5,
    "figure.titlesize": 10.0,
    "figure.labelsize": 8.5,
    "axes.titlepad": 4.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.interpolation": "nearest",
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "savefig.facecolor": "white",
}

_KIND_COLOURS = {"lesion": "#c0392b", "organ": "#2e86c1", "marrow": "#7d3c98"}
_KIND_ORDER = ("lesion", "organ", "marrow")
_LINESTYLES = ("-", "--", ":", "-.")


@dataclass(frozen=True)
class FigureSpec:
    """A report figure, drawn on demand into a new or a given figure.

    Attributes
    ----------
    key : str
        Short identifier (``"tac-1"``, ``"overlay"``, ``"dvh"``, ``"dose-bars"``).
    title : str
        Caption title.
    alt : str
        Alternative text describing the figure.
    size_in : tuple of float
        Natural (width, height), inches.
    draw : callable
        ``draw(fig, rect)`` draws the content into the part ``rect`` = (left,
        bottom, width, height), figure fraction, of ``fig``.
    constrained : bool
        Lay the content out with matplotlib's constrained layout (else
        ``draw`` places its axes itself, which is faster for many panels).
    """

    key: str
    title: str
    alt: str
    size_in: tuple[float, float]
    draw: Callable[[Figure, tuple[float, float, float, float]], None]
    constrained: bool = True

    def draw_into(self, fig: Figure, rect: tuple[float, float, float, float]) -> None:
        """Draw into the part ``rect`` (figure fraction) of ``fig``."""
        with matplotlib.rc_context(RC):
            if self.constrained:
                fig.set_layout_engine(ConstrainedLayoutEngine(rect=rect))
            else:
                fig.set_layout_engine("none")
            self.draw(fig, rect)

    def figure(self) -> Figure:
        """A new figure of the natural size holding the drawing."""
        fig = new_figure(self.size_in)
        self.draw_into(fig, (0.0, 0.0, 1.0, 1.0))
        return fig


def new_figure(size_in: tuple[float, float]) -> Figure:
    """An empty figure with an Agg canvas."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=size_in)
        FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure, dpi: float = 130) -> bytes:
    """The figure as PNG bytes.

    Parameters
    ----------
    fig : Figure
    dpi : float
        Resolution, dots per inch; the report uses 130 (at least 120 keeps 8 pt
        text legible).
    """
    buf = io.BytesIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def _style_axes(ax: Axes) -> None:
    ax.tick_params(labelsize=MIN_FONT_PT)


def _plain(text: object) -> str:
    """``text`` with its dollar signs escaped, so matplotlib shows it as typed."""
    return str(text).replace("$", r"\$")


def _wrap(text: str, width: int) -> str:
    return _plain("\n".join(textwrap.wrap(str(text), width=width, break_long_words=True)) or text)


def _finite_max(values: np.ndarray, default: float) -> float:
    """Largest finite value of ``values``, or ``default`` when there is none (or it is <= 0)."""
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else default
    return top if top > 0 else default


# -- time-activity curves ------------------------------------------------------


def _tac_ncols(n: int) -> int:
    if n <= 3:
        return max(n, 1)
    if n == 4:
        return 2
    return 3 if n <= 9 else 4


def _tac_spec(curves: Sequence[CurveData], key: str = "tac", part: str = "") -> FigureSpec:
    curves = list(curves)
    if not curves:
        raise ValueError("curves: empty; a time-activity figure needs at least one curve")
    if len(curves) > MAX_TAC_PER_FIGURE:
        raise ValueError(
            f"curves: {len(curves)} regions, more than {MAX_TAC_PER_FIGURE} in one figure; "
            "use tac_figures(curves), which splits them"
        )
    ncols = _tac_ncols(len(curves))
    nrows = math.ceil(len(curves) / ncols)
    height = min(MAX_HEIGHT_IN, 0.5 + 2.55 * nrows)
    names = ", ".join(c.region for c in curves)
    return FigureSpec(
        key=key,
        title=f"Time-activity curves{part}",
        alt=(
            f"Time-activity curves of {names}: measured activity (MBq) with SD error bars, "
            "the fitted curve, and residuals in % of the fit, against hours after injection."
        ),
        size_in=(FIGURE_WIDTH_IN, height),
        draw=lambda fig, rect: _draw_tac(fig, rect, curves),
        constrained=False,
    )


def _draw_tac(
    fig: Figure, rect: tuple[float, float, float, float], curves: Sequence[CurveData]
) -> None:
    n = len(curves)
    ncols = _tac_ncols(n)
    nrows = math.ceil(n / ncols)
    title_width = {1: 60, 2: 40, 3: 28, 4: 20}[ncols]
    # fixed margins in inches: placing the axes directly is much faster than the
    # constrained layout for tens of axes
    fw, fh = fig.get_size_inches()
    left_in, bottom_in = rect[0] * fw, rect[1] * fh
    width_in, height_in = rect[2] * fw, rect[3] * fh
    pad_left, pad_right, pad_top, gap = 0.72, 0.12, 0.05, 0.5
    title_h, xaxis_h, res_gap = 0.44, 0.5, 0.1
    cell_w = (width_in - pad_left - pad_right - gap * (ncols - 1)) / ncols
    row_h = (height_in - pad_top) / nrows
    plot_h = max(row_h - title_h - xaxis_h - res_gap, 0.4)

    def frac(x_in: float, y_in: float, w_in: float, h_in: float) -> list[float]:
        return [(left_in + x_in) / fw, (bottom_in + y_in) / fh, w_in / fw, h_in / fh]

    for i, c in enumerate(curves):
        row, col = divmod(i, ncols)
        x = pad_left + col * (cell_w + gap)
        y_top = height_in - pad_top - row * row_h - title_h
        main_h, res_h = 0.74 * plot_h, 0.26 * plot_h
        ax = fig.add_axes(frac(x, y_top - main_h, cell_w, main_h))
        axr = fig.add_axes(frac(x, y_top - main_h - res_gap - res_h, cell_w, res_h), sharex=ax)
        _style_axes(ax)
        _style_axes(axr)
        t = np.asarray(c.times_h, dtype=float)
        a = np.asarray(c.activity_mbq, dtype=float)
        sd = np.asarray(c.activity_sd_mbq, dtype=float)
        ft = np.asarray(c.fit_times_h, dtype=float)
        fa = np.asarray(c.fit_activity_mbq, dtype=float)
        fp = np.asarray(c.fitted_at_points_mbq, dtype=float)
        if ft.size and fa.size == ft.size:
            ax.plot(ft, fa, color="#2e86c1", lw=1.3, label="fit")
        has_sd = np.isfinite(sd) & (sd > 0) & np.isfinite(a) if sd.size == a.size else None
        if has_sd is not None and has_sd.any():
            ax.errorbar(
                t[has_sd],
                a[has_sd],
                yerr=sd[has_sd],
                fmt="none",
                ecolor="0.2",
                elinewidth=0.8,
                capsize=2,
            )
        ax.plot(t, a, "o", color="0.1", ms=3.5, label="measured")
        title = _wrap(c.region, title_width)
        if c.model:
            title += "\n" + _wrap(str(c.model), title_width + 6)
        ax.set_title(title, fontsize=8.5)
        upper = a + np.where(np.isfinite(sd), sd, 0.0) if sd.size == a.size else a
        ax.set_ylim(0.0, 1.1 * _finite_max(np.concatenate([a, fa, upper]), 1.0))
        ax.set_xlim(0.0, 1.03 * _finite_max(np.concatenate([t, ft]), 1.0))
        ax.tick_params(labelbottom=False)

        # residuals, % of the fit at the measured times
        with np.errstate(divide="ignore", invalid="ignore"):
            ok = np.isfinite(fp) & (fp > 0) if fp.size == a.size else np.zeros(a.size, bool)
            res = np.where(ok, (a - fp) / np.where(ok, fp, 1.0) * 100.0, np.nan)
            res_sd = np.where(ok & (np.isfinite(sd) & (sd > 0)), sd / np.where(ok, fp, 1.0), 0.0)
        res_sd = res_sd * 100.0
        axr.axhline(0.0, color="0.5", lw=0.8, ls="--")
        finite = np.isfinite(res)
        if np.any(finite & (res_sd > 0)):
            sel = finite & (res_sd > 0)
            axr.errorbar(
                t[sel],
                res[sel],
                yerr=res_sd[sel],
                fmt="none",
                ecolor="0.2",
                elinewidth=0.8,
                capsize=2,
            )
        axr.plot(t[finite], res[finite], "o", color="0.1", ms=3.0)
        span = np.nanmax(np.abs(res[finite]) + res_sd[finite]) if finite.any() else 0.0
        span = max(10.0, 1.2 * float(span))
        axr.set_ylim(-span, span)
        tick = _nice_tick(0.8 * span)
        axr.set_yticks([-tick, 0.0, tick])
        if col == 0:
            ax.set_ylabel("activity (MBq)")
            axr.set_ylabel("resid. (%)")
        if i + ncols >= n:
            axr.set_xlabel("time after injection (h)")
        if i == 0:
            ax.legend(loc="upper right", frameon=False, handlelength=1.2)


def _nice_tick(limit: float) -> float:
    """Largest of 1, 2, 5 x 10^k not above ``limit`` (> 0)."""
    base = 10.0 ** math.floor(math.log10(limit))
    return max(m * base for m in (1.0, 2.0, 5.0) if m * base <= limit)


def tac_figure(curves: Sequence[CurveData]) -> Figure:
    """Time-activity curves as small multiples, each with a residual panel.

    Parameters
    ----------
    curves : sequence of CurveData
        At most :data:`MAX_TAC_PER_FIGURE` regions; use :func:`tac_figures` for
        more.

    Returns
    -------
    Figure
        One panel per region: measured activity (MBq) with SD error bars where
        the SD is finite, the fitted curve, the model in the title; under it
        the residuals ``(measured - fitted) / fitted`` in %.
    """
    return _tac_spec(curves).figure()


def _tac_chunks(curves: Sequence[CurveData], per_figure: int) -> list[list[CurveData]]:
    curves = list(curves)
    if not curves:
        return []
    n_fig = math.ceil(len(curves) / per_figure)
    size = math.ceil(len(curves) / n_fig)
    return [curves[i : i + size] for i in range(0, len(curves), size)]


def tac_figures(curves: Sequence[CurveData], per_figure: int = MAX_TAC_PER_FIGURE) -> list[Figure]:
    """:func:`tac_figure` for any number of regions: balanced figures of at most
    ``per_figure`` regions each (empty list for no curves)."""
    if not 1 <= per_figure <= MAX_TAC_PER_FIGURE:
        raise ValueError(f"per_figure: {per_figure}; give 1 to {MAX_TAC_PER_FIGURE}")
    return [_tac_spec(chunk).figure() for chunk in _tac_chunks(curves, per_figure)]


# -- MIP overlay -------------------------------------------------------------------


@dataclass(frozen=True)
class _Canonical:
    """Volume reordered to (x, y, z) LPS axes, each ascending."""

    data: np.ndarray
    centres_mm: tuple[np.ndarray, np.ndarray, np.ndarray]
    extent_mm: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]


def _canonical(image: Image, dtype=np.float64) -> _Canonical:
    m = image.affine[:3, :3]
    dominant = np.argmax(np.abs(m), axis=0)  # patient axis of each array axis
    if sorted(dominant.tolist()) != [0, 1, 2]:
        raise ValueError(
            "image.affine: array axes do not map onto distinct patient axes; "
            "resample the image to an axis-aligned grid first"
        )
    perm = [int(np.flatnonzero(dominant == k)[0]) for k in range(3)]
    arr = np.transpose(np.asarray(image.data), perm).astype(dtype, copy=False)
    centres, extents = [], []
    for k in range(3):
        step = float(m[k, perm[k]])
        n = arr.shape[k]
        if step < 0:
            arr = np.flip(arr, axis=k)
        c0 = float(image.affine[k, 3])
        lo = min(c0, c0 + step * (n - 1))
        s = abs(step)
        centres.append(lo + s * np.arange(n))
        extents.append((lo - s / 2, lo + s * (n - 1) + s / 2))
    return _Canonical(arr, tuple(centres), tuple(extents))  # type: ignore[arg-type]


def _nice_length(span_mm: float) -> float:
    target = span_mm / 5.0
    for v in (5, 10, 20, 50, 100, 200, 500):
        if v >= target:
            return float(v)
    return 1000.0


def _orientation(ax: Axes, left: str, right: str, top: str, bottom: str) -> None:
    kw = {
        "transform": ax.transAxes,
        "fontsize": 9,
        "fontweight": "bold",
        "color": "#1a5276",
        "bbox": {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
    }
    ax.text(0.02, 0.5, left, ha="left", va="center", **kw)
    ax.text(0.98, 0.5, right, ha="right", va="center", **kw)
    ax.text(0.5, 0.98, top, ha="center", va="top", **kw)
    ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **kw)


def _check_grid(name: str, image: Image, reference: Image) -> None:
    if not image.same_grid(reference):
        raise ValueError(
            f"{name}: not on the grid of activity (shape {image.shape} vs {reference.shape}); "
            f"resample it first ({name}.resample_to(activity))"
        )


def _overlay_size(activity: Image) -> tuple[float, float]:
    c = _canonical(activity, dtype=np.float32)
    (x0, x1), (y0, y1), (z0, z1) = c.extent_mm
    panels_w = FIGURE_WIDTH_IN - 1.9  # two colour bars with labels
    h = panels_w * (z1 - z0) / ((x1 - x0) + (y1 - y0)) + 0.7
    return FIGURE_WIDTH_IN, float(min(MAX_HEIGHT_IN, max(3.0, h)))


def _overlay_spec(
    activity: Image, dose: Image, labels: Labels | None, contours: bool = True
) -> FigureSpec:
    _check_grid("dose", dose, activity)
    if labels is not None:
        _check_grid("labels", labels.image, activity)
    return FigureSpec(
        key="overlay",
        title="Maximum-intensity projections: activity (grey) and absorbed dose (colour)",
        alt=(
            "Coronal and sagittal maximum-intensity projections of the activity "
            f"concentration ({activity.unit}) in grey with the absorbed-dose projection "
            f"({dose.unit}) in colour"
            + (", region outlines in blue" if labels is not None and contours else "")
            + "; R/L, A/P and H/F mark the patient orientation."
        ),
        size_in=_overlay_size(activity),
        draw=lambda fig, rect: _draw_overlay(fig, activity, dose, labels if contours else None),
    )


def _draw_overlay(fig: Figure, activity: Image, dose: Image, labels: Labels | None) -> None:
    act = _canonical(activity)
    dos = _canonical(dose)
    a = np.nan_to_num(act.data, nan=0.0, posinf=0.0, neginf=0.0)
    d = np.nan_to_num(dos.data, nan=0.0, posinf=0.0, neginf=0.0)
    (x0, x1), (y0, y1), (z0, z1) = act.extent_mm
    views = [
        # (title, projection axis, horizontal axis, left, right, extent)
        ("coronal MIP", 1, 0, ("R", "L"), (x0, x1, z0, z1)),
        ("sagittal MIP", 0, 1, ("A", "P"), (y0, y1, z0, z1)),
    ]
    bar_w = 0.035 * ((x1 - x0) + (y1 - y0))
    gs = fig.add_gridspec(1, 4, width_ratios=[x1 - x0, y1 - y0, bar_w, bar_w])
    amips = [a.max(axis=ax_) for _, ax_, *_ in views]
    dmips = [d.max(axis=ax_) for _, ax_, *_ in views]
    positive = np.concatenate([m[m > 0].ravel() for m in amips])
    avmax = float(np.percentile(positive, 99.5)) if positive.size else 1.0
    dmax = float(max(m.max() for m in dmips))
    dvmax = dmax if dmax > 0 else 1.0
    lab = _canonical(labels.image, dtype=labels.image.data.dtype) if labels is not None else None
    objects = None
    if lab is not None:
        from scipy import ndimage

        objects = ndimage.find_objects(np.clip(lab.data, 0, None).astype(np.int64))
    axes = []
    im_a = im_d = None
    for k, (title, proj, horiz, (left, right), extent) in enumerate(views):
        ax = fig.add_subplot(gs[0, k])
        axes.append(ax)
        _style_axes(ax)
        im_a = ax.imshow(
            amips[k].T,
            origin="lower",
            extent=extent,
            cmap="Greys",
            vmin=0.0,
            vmax=avmax,
            aspect="equal",
        )
        dm = np.ma.masked_less_equal(dmips[k], 0.10 * dmax if dmax > 0 else np.inf)
        im_d = ax.imshow(
            dm.T,
            origin="lower",
            extent=extent,
            cmap="turbo",
            vmin=0.0,
            vmax=dvmax,
            alpha=0.55,
            aspect="equal",
        )
        if lab is not None and objects is not None:
            _draw_outlines(ax, lab, objects, labels, proj, horiz)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(True)
            spine.set_linewidth(0.6)
        ax.set_title(title)
        _orientation(ax, left, right, "H", "F")
        if k == 0:
            length = _nice_length(extent[1] - extent[0])
            xs = extent[0] + 0.06 * (extent[1] - extent[0])
            ys = extent[2] + 0.08 * (extent[3] - extent[2])
            ax.plot([xs, xs + length], [ys, ys], color="black", lw=2.0, solid_capstyle="butt")
            ax.annotate(
                f"{length:g} mm",
                (xs + length / 2, ys),
                xytext=(0, 4),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8,
            )
    # colour bars in their own grid columns (stealing space from the image axes
    # collapses the constrained layout in short page regions)
    cb_d = fig.colorbar(im_d, cax=fig.add_subplot(gs[0, 2]))
    cb_d.set_label(f"absorbed dose ({dose.unit})", fontsize=8.5)
    cb_a = fig.colorbar(im_a, cax=fig.add_subplot(gs[0, 3]))
    cb_a.set_label(f"activity ({activity.unit})", fontsize=8.5)
    for cb in (cb_d, cb_a):
        cb.ax.tick_params(labelsize=MIN_FONT_PT)


def _draw_outlines(ax, lab: _Canonical, objects, labels: Labels, proj: int, horiz: int) -> None:
    vert = 2
    nh, nv = lab.data.shape[horiz], lab.data.shape[vert]
    for value in sorted(labels.names):
        if value <= 0 or value > len(objects) or objects[value - 1] is None:
            continue
        slc = objects[value - 1]
        projected = (lab.data[slc] == value).any(axis=proj)  # axes (horiz, vert), ascending
        full = np.zeros((nh, nv), dtype=np.float32)
        full[slc[horiz], slc[vert]] = projected
        if full.min() == full.max():
            continue
        ax.contour(
            lab.centres_mm[horiz],
            lab.centres_mm[vert],
            full.T,
            levels=[0.5],
            colors="#1f77b4",
            linewidths=0.6,
        )


def overlay_figure(
    activity: Image, dose: Image, labels: Labels | None = None, *, contours: bool = True
) -> Figure:
    """Coronal and sagittal maximum-intensity projections, dose over activity.

    Parameters
    ----------
    activity : Image
        Activity concentration (shown in grey, 0 to the 99.5th percentile of
        the projection), MBq/mL.
    dose : Image
        Absorbed dose on the grid of ``activity``, Gy (shown in colour, alpha
        0.55, above 10 % of its maximum).
    labels : Labels, optional
        Regions on the same grid; their projected outlines are drawn when
        ``contours``.
    contours : bool

    Returns
    -------
    Figure
        Physical aspect ratio from the voxel spacing; radiological orientation
        (R/L, A/P, H/F annotated); colour bars in Gy and MBq/mL; a scale bar.

    Raises
    ------
    ValueError
        When ``dose`` or ``labels`` are not on the grid of ``activity``.
    """
    return _overlay_spec(activity, dose, labels, contours).figure()


# -- DVH -------------------------------------------------------------------------


def _dvh_spec(dvh: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> FigureSpec:
    dvh = dict(dvh)
    if not dvh:
        raise ValueError("dvh: empty; a DVH figure needs at least one region")
    n = len(dvh)
    ncol = _dvh_legend_cols(dvh)
    height = 4.2 if n <= 8 else 4.2 + 0.2 * math.ceil(n / ncol)
    return FigureSpec(
        key="dvh",
        title="Cumulative dose-volume histograms",
        alt="Cumulative dose-volume histograms (volume % against absorbed dose, Gy) of "
        + ", ".join(dvh),
        size_in=(FIGURE_WIDTH_IN, min(MAX_HEIGHT_IN, height)),
        draw=lambda fig, rect: _draw_dvh(fig, dvh),
    )


def _dvh_legend_cols(dvh: Mapping[str, object]) -> int:
    longest = max((len(k) for k in dvh), default=0)
    return 4 if longest <= 16 else 3 if longest <= 24 else 2


def _draw_dvh(fig: Figure, dvh: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
    ax = fig.add_subplot()
    _style_axes(ax)
    colours = matplotlib.colormaps["tab10"].colors
    xmax = 0.0
    for k, (name, (dose_gy, frac)) in enumerate(dvh.items()):
        d = np.asarray(dose_gy, dtype=float)
        v = np.asarray(frac, dtype=float) * 100.0
        ok = np.isfinite(d) & np.isfinite(v)
        if ok.any():
            xmax = max(xmax, float(d[ok].max()))
        ax.plot(
            d[ok],
            v[ok],
            color=colours[k % 10],
            ls=_LINESTYLES[(k // 10) % 4],
            lw=1.3,
            label=_plain(name),
        )
    ax.set_xlim(0.0, 1.03 * xmax if xmax > 0 else 1.0)
    ax.set_ylim(0.0, 102.0)
    ax.set_xlabel("absorbed dose (Gy)")
    ax.set_ylabel("volume (%)")
    ax.grid(True, color="0.9", lw=0.6)
    if len(dvh) <= 8:
        ax.legend(loc="upper right", frameon=False)
    else:
        ax.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.12),
            ncol=_dvh_legend_cols(dvh),
            frameon=False,
        )


def dvh_figure(dvh: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """Cumulative dose-volume histograms, one line per region.

    Parameters
    ----------
    dvh : mapping of str to (ndarray, ndarray)
        Region -> (dose, Gy; volume fraction receiving at least that dose, 0-1).

    Returns
    -------
    Figure
        Volume in % against dose in Gy; colours cycle through 10 hues and line
        styles through 4, so 40 regions stay distinguishable; more than 8
        regions put the legend under the axes.
    """
    return _dvh_spec(dvh).figure()


# -- dose bars -------------------------------------------------------------------


def _group_by_kind(doses: Sequence[DoseRow]) -> list[tuple[str, list[DoseRow]]]:
    groups: dict[str, list[DoseRow]] = {}
    for r in doses:
        groups.setdefault(str(r.kind), []).append(r)
    order = [k for k in _KIND_ORDER if k in groups] + [k for k in groups if k not in _KIND_ORDER]
    return [(k, groups[k]) for k in order]


def _dose_bar_spec(doses: Sequence[DoseRow]) -> FigureSpec:
    doses = list(doses)
    if not doses:
        raise ValueError("doses: empty; a dose bar figure needs at least one region")
    groups = _group_by_kind(doses)
    height = 0.5 + sum(0.75 + 0.24 * len(g) for _, g in groups)
    return FigureSpec(
        key="dose-bars",
        title="Mean absorbed dose per region",
        alt="Horizontal bars of the mean absorbed dose (Gy) with SD error bars, per region: "
        + ", ".join(r.region for r in doses),
        size_in=(FIGURE_WIDTH_IN, float(min(MAX_HEIGHT_IN, max(2.6, height)))),
        draw=lambda fig, rect: _draw_dose_bars(fig, groups),
    )


def _kind_title(kind: str) -> str:
    return {"lesion": "lesions", "organ": "organs", "marrow": "marrow"}.get(kind, kind)


def _draw_dose_bars(fig: Figure, groups: list[tuple[str, list[DoseRow]]]) -> None:
    gs = fig.add_gridspec(len(groups), 1, height_ratios=[len(g) + 1.5 for _, g in groups])
    for k, (kind, rows) in enumerate(groups):
        ax = fig.add_subplot(gs[k, 0])
        _style_axes(ax)
        y = np.arange(len(rows))
        mean = np.array([float(r.mean_dose_gy) for r in rows])
        sd = np.array([float(r.dose_sd_gy) for r in rows])
        finite = np.isfinite(mean)
        colour = _KIND_COLOURS.get(kind, "0.45")
        ax.barh(y, np.where(finite, mean, 0.0), height=0.65, color=colour, alpha=0.85)
        has_sd = finite & np.isfinite(sd) & (sd > 0)
        if has_sd.any():
            ax.errorbar(
                mean[has_sd],
                y[has_sd],
                xerr=sd[has_sd],
                fmt="none",
                ecolor="0.15",
                elinewidth=0.9,
                capsize=2.5,
            )
        reach = np.where(finite, mean + np.where(has_sd, sd, 0.0), 0.0)
        right = float(reach.max()) if reach.size else 0.0
        right = right if right > 0 else 1.0
        for yi, m, r_ in zip(y, mean, reach, strict=True):
            ax.text(
                r_ + 0.02 * right,
                yi,
                fmt_num(m, 3) if np.isfinite(m) else DASH,
                va="center",
                ha="left",
                fontsize=8,
            )
        ax.set_xlim(0.0, 1.22 * right)
        ax.set_yticks(y, labels=[_plain(r.region) for r in rows])
        ax.set_ylim(len(rows) - 0.4, -0.6)
        ax.set_title(_plain(_kind_title(kind)), loc="left")
        ax.set_xlabel("mean absorbed dose (Gy)")
        ax.grid(True, axis="x", color="0.9", lw=0.6)
        ax.set_axisbelow(True)


def dose_bar_figure(doses: Sequence[DoseRow]) -> Figure:
    """Mean absorbed dose per region as horizontal bars with SD error bars.

    Parameters
    ----------
    doses : sequence of DoseRow

    Returns
    -------
    Figure
        One panel per kind (lesions, organs, marrow, others), each with its own
        dose axis in Gy, regions in the given order, value labels at the bars.
    """
    return _dose_bar_spec(doses).figure()


# -- all figures of a report -------------------------------------------------------


def figure_specs(report: CycleReport) -> list[FigureSpec]:
    """The figures of a cycle report, in order, skipping those without data.

    Time-activity curves (one figure per :data:`MAX_TAC_PER_FIGURE` regions),
    the MIP overlay, the DVHs and the dose bars.
    """
    specs: list[FigureSpec] = []
    chunks = _tac_chunks(report.curves, MAX_TAC_PER_FIGURE)
    for i, chunk in enumerate(chunks, start=1):
        part = f" ({i} of {len(chunks)})" if len(chunks) > 1 else ""
        specs.append(_tac_spec(chunk, key=f"tac-{i}", part=part))
    specs.append(_overlay_spec(report.activity, report.dose, report.labels))
    if report.dvh:
        specs.append(_dvh_spec(report.dvh))
    if report.doses:
        specs.append(_dose_bar_spec(report.doses))
    return specs
