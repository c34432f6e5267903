"""Voxel-wise time-integrated activity (TIA) maps.

:func:`tia_map` fits a time-activity model in every voxel of a series of
quantitative SPECT/PET images of one administration and integrates it from the
injection to infinity, giving a TIA-density map in MBq·h/mL (sum over a region
× voxel volume = the region's TIA in MBq·h, see :meth:`TIAMapResult.total_tia_mbq_h`).

Time points
-----------
Every image must be an activity concentration (MBq/mL) on the same voxel grid.
Each one is placed in time the same way as :mod:`theranet.kinetics.tac` does:

* not decay-corrected (``NONE``): the values are the activity present at the time
  of average activity within the frame (:meth:`Image.values_reference_datetime`,
  DICOM PS3.3 C.8.9.4.1.5); with ``assume_instantaneous_frame=True`` an unknown
  frame duration is taken as zero (values at the acquisition start);
* decay-corrected (``START``/``ADMIN``/``REFERENCE``): the correction is undone,
  the values being decayed (physical half-life of the nuclide) to the acquisition
  start, the time they are then placed at.

So the fitted rate constants are *effective* constants (λ_eff = λ_bio + λ_phys)
and, per the dosimetry rules (``clinical.md`` §6.2), the terminal constant is
constrained to λ_eff ≥ λ_phys. Times are hours after injection and must be
non-negative and strictly increasing in the order the images are given.

Models and the voxel-level integration rule
-------------------------------------------
``"mono"`` (closed form: a numba loop, or vectorised numpy with ``engine="numpy"``)
    Let ``p`` be the index of the voxel's largest value (its measured peak; the
    first one on ties). A mono-exponential ``Â(t) = Â₀ e^{−λt}`` is fitted to the
    points ``p..n−1`` with a positive value, by weighted log-linear least squares:
    minimise ``Σ wᵢ (ln yᵢ − ln Â₀ + λ tᵢ)²`` with ``wᵢ = yᵢ²``. Since
    ``var(ln y) ≈ σ_y²/y²``, these weights make the log-linear fit the first-order
    equivalent of an unweighted fit in the linear domain (constant absolute noise
    σ_y per voxel, the usual model for reconstructed-voxel noise); points ≤ 0 carry
    no information on the log scale and are left out. At least ``min_points``
    positive points from the peak onward are needed. If the fitted λ < λ_phys the
    fit is redone with λ fixed to λ_phys (``MONO_CLAMPED``).

    The TIA is ``head + Â(t_p)/λ``: the fitted curve integrated from the peak
    ``t_p`` to ∞, plus a trapezoid from ``t = 0`` to ``t_p`` through the measured
    points before the peak (negative values taken as 0) ending at the fitted value
    ``Â(t_p)`` (so the curve is continuous). The head starts from ``A(0) = 0``
    (``head="linear"``: linear rise, the rule for organs and tumours with rapid
    uptake, ``clinical.md`` §6.3) or from ``A(0) =`` the first vertex
    (``head="constant"``: blood/whole-body rule). For a peak at the first point
    and ``head="linear"`` this is ``t₁ Â(t₁)/2 + Â(t₁)/λ``.

``"biexp_uptake"`` (numba Levenberg–Marquardt)
    ``A(t) = A₁ (e^{−λ₁t} − e^{−λ₂t})`` fitted to all points by unweighted
    least squares in the linear domain (the same noise model as above), with
    ``λ₁ ≥ λ_phys`` and ``λ₂ > λ₁`` enforced by projection (a parameter on its
    bound with the gradient pointing outward is held fixed for the step); initial
    guess: the best of a small grid around the mono λ and uptake constants
    1.5–300 × λ₁, with A₁ by linear least squares. Converged when the gradient is
    orthogonal to the residual (cosine < 1e-10), the SSE stops decreasing
    (relative 1e-15) or the step vanishes (relative 1e-12). TIA = ``A₁(1/λ₁ − 1/λ₂)``:
    the model has its own uptake phase (``A(0) = 0``), so no head rule applies.
    The uptake constant is capped at ``50/t₁`` (at which ``e^{−λ₂t}`` vanishes at
    every measured time: instantaneous uptake as seen by the data). Needs at
    least 4 time points (with ≤ 3, more than 2 parameters are not fitted,
    ``clinical.md`` §6.2) and 3 positive values in the voxel.

``"auto"``
    ``biexp_uptake`` where an uptake phase was sampled (the voxel's peak is after
    the first time point) and the fit succeeds, ``mono`` otherwise. (AICc
    selection is not used: with the usual 3–4 time points it is undefined for the
    3-parameter model, n ≤ K + 1.) With fewer than 4 time points every voxel is
    ``mono``.

Fallbacks
---------
Each computed voxel ends with one :class:`VoxelModel` code in
:attr:`TIAMapResult.model_used`. A voxel *falls back* (counted in
:attr:`TIAMapResult.n_fallback`, by reason in
:attr:`TIAMapResult.fallback_reason`, logged at INFO) when:

* its bi-exponential fit fails — ``"biexp: too few positive points"``,
  ``"biexp: not converged"`` (``max_iter`` reached), ``"biexp: non-finite"``,
  ``"biexp: bounds violated"`` (A₁ ≤ 0, λ₂ degenerate with λ₁, or the optimum
  pushes λ₁ below λ_phys: active bound with the gradient pointing outward): the
  mono result is used instead;
* its mono fit is clamped, ``"mono: clamped to physical decay"``;
* the mono fit is impossible, ``"mono: too few positive points from the peak"``:
  trapezoid through (0, A(0)) and the measured points (negatives as 0) plus the
  conservative physical tail ``A(t_n)/λ_phys`` (§6.3), code
  ``TRAPEZOID_PHYSICAL_TAIL``;
* no value is positive, ``"no positive value"``: TIA 0, code ``NO_SIGNAL``.

A voxel can have a biexp reason and a mono reason; each reason counts voxels.
Non-finite values inside the mask are refused (:class:`ImageDataError`); voxels
outside the mask are not read.

Speed
-----
The numba kernels release the GIL and run on row blocks in threads (compiled
once, cached on disk). On a 2-core machine, 128³ voxels × 4 time points
(``benchmarks/bench_voxelwise.py``, JIT excluded): about 1.4e7 voxels/s mono and
5e5 voxels/s bi-exponential, against 2–4e3 and 2–3e2 voxels/s for a per-voxel
``scipy.optimize.curve_fit`` loop.
"""

from __future__ import annotations

import enum
import logging
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import numba
import numpy as np

from theranet.errors import (
    GeometryError,
    ImageDataError,
    MissingFieldError,
    NuclideError,
    QuantityError,
    TimingError,
)
from theranet.image import DecayCorrection, Image, Quantity

__all__ = ["MODELS", "TIAMapResult", "VoxelModel", "tia_map"]

logger = logging.getLogger(__name__)

#: Accepted values of ``tia_map(model=...)``.
MODELS: tuple[str, ...] = ("mono", "biexp_uptake", "auto")
_HEADS = ("linear", "constant")
_CHUNK = 1 << 16


class VoxelModel(enum.IntEnum):
    """What produced a voxel's TIA (values of :attr:`TIAMapResult.model_used`)."""

    OUTSIDE = 0  #: not in the mask, not computed
    MONO = 1  #: mono-exponential from the peak, fitted λ ≥ λ_phys
    MONO_CLAMPED = 2  #: mono-exponential with λ fixed to λ_phys
    BIEXP_UPTAKE = 3  #: A₁(e^{−λ₁t} − e^{−λ₂t})
    TRAPEZOID_PHYSICAL_TAIL = 4  #: trapezoid + A(t_n)/λ_phys
    NO_SIGNAL = 5  #: no positive value, TIA 0


# biexp status codes (kernel output)
_OK, _FEW, _NOCONV, _NONFINITE, _BOUNDS = 0, 1, 2, 3, 4
_BIEXP_REASON = {
    _FEW: "biexp: too few positive points",
    _NOCONV: "biexp: not converged",
    _NONFINITE: "biexp: non-finite",
    _BOUNDS: "biexp: bounds violated",
}
_R_CLAMPED = "mono: clamped to physical decay"
_R_TRAPEZOID = "mono: too few positive points from the peak"
_R_NOSIGNAL = "no positive value"


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.flags.writeable:
        a = a.view()
        a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class TIAMapResult:
    """Voxel-wise time-integrated activity.

    Attributes
    ----------
    tia_mbq_h_per_ml : ndarray of float64, shape (Z, Y, X)
        TIA density, MBq·h/mL; 0 outside the mask.
    affine : ndarray, shape (4, 4)
        Grid of the input images (array index -> LPS mm).
    lambda_per_h : ndarray of float64, shape (Z, Y, X)
        Terminal effective decay constant used, 1/h: fitted (or λ_phys when
        clamped) for mono, λ₁ for bi-exponential, λ_phys for the trapezoid tail;
        NaN outside the mask and for ``NO_SIGNAL`` voxels.
    lambda_uptake_per_h : ndarray of float64, shape (Z, Y, X)
        λ₂ of bi-exponential voxels, NaN elsewhere.
    model_used : ndarray of uint8, shape (Z, Y, X)
        :class:`VoxelModel` code per voxel.
    n_voxels : int
        Voxels computed (in the mask).
    n_fallback : int
        Voxels that fell back (see the module docstring).
    fallback_reason : dict of str to int
        Voxels per fallback reason (only reasons that occurred).
    times_h : tuple of float
        Hours after injection of the time points.
    nuclide : str
    lambda_phys_per_h : float
    model, head : str
        The requested model and head rule.
    notes : tuple of str
        How the images were placed in time, assumptions made.
    """

    tia_mbq_h_per_ml: np.ndarray
    affine: np.ndarray
    lambda_per_h: np.ndarray
    lambda_uptake_per_h: np.ndarray
    model_used: np.ndarray
    n_voxels: int
    n_fallback: int
    fallback_reason: Mapping[str, int]
    times_h: tuple[float, ...]
    nuclide: str
    lambda_phys_per_h: float
    model: str
    head: str
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in (
            "tia_mbq_h_per_ml",
            "affine",
            "lambda_per_h",
            "lambda_uptake_per_h",
            "model_used",
        ):
            object.__setattr__(self, name, _readonly(getattr(self, name)))
        object.__setattr__(self, "fallback_reason", dict(self.fallback_reason))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.tia_mbq_h_per_ml.shape)  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        """Voxel volume, mL."""
        return float(abs(np.linalg.det(self.affine[:3, :3])) / 1000.0)

    def total_tia_mbq_h(self, mask: np.ndarray | None = None) -> float:
        """TIA in a region, MBq·h: sum of the TIA density × voxel volume.

        Parameters
        ----------
        mask : ndarray of bool, shape (Z, Y, X), optional
            The region (default: every voxel; voxels outside the computed mask
            hold 0).
        """
        if mask is None:
            s = float(self.tia_mbq_h_per_ml.sum(dtype=np.float64))
        else:
            m = np.asarray(mask, dtype=bool)
            if m.shape != self.shape:
                raise GeometryError(
                    "mask", "shape differs from the TIA map", m.shape, f"give a {self.shape} mask"
                )
            s = float(self.tia_mbq_h_per_ml[m].sum(dtype=np.float64))
        return s * self.voxel_volume_ml

    def model_counts(self) -> dict[str, int]:
        """Voxels per :class:`VoxelModel` (computed voxels only)."""
        counts = np.bincount(self.model_used.ravel(), minlength=len(VoxelModel))
        return {m.name: int(counts[m]) for m in VoxelModel if m is not VoxelModel.OUTSIDE}


# --------------------------------------------------------------------------- inputs


def _resolve_nuclide(images: Sequence[Image], nuclide) -> str:
    from theranet.nuclides import Nuclide

    names = {}
    for i, img in enumerate(images):
        if img.nuclide is not None:
            names[i] = Nuclide(img.nuclide).name
    if nuclide is not None:
        name = Nuclide(str(nuclide)).name
        for i, n in names.items():
            if n != name:
                raise NuclideError(
                    f"images[{i}].nuclide",
                    f"differs from nuclide={name!r}",
                    n,
                    "give images of one radiopharmaceutical, or the right nuclide",
                )
        return name
    found = set(names.values())
    if not found:
        raise MissingFieldError(
            "nuclide",
            "unknown, needed for the physical decay constant",
            None,
            "pass nuclide='Lu-177' or set it on the images (image.replace(nuclide=...))",
        )
    if len(found) > 1:
        raise NuclideError(
            "images[].nuclide",
            "images of different nuclides",
            sorted(found),
            "compute one TIA map per radiopharmaceutical",
        )
    return found.pop()


def _time_point(
    img: Image, i: int, assume_instantaneous_frame: bool
) -> tuple[float, np.ndarray, str | None]:
    """(hours after injection, voxel values as activity at that time, note)."""
    t = img.timing
    if t.injection is None:
        raise TimingError(
            f"images[{i}].timing.injection",
            "injection datetime is unknown",
            None,
            "supply it (CLI --injection-datetime, or Timing(injection=...))",
            img.provenance.source or None,
        )
    note = None
    if t.decay_correction is DecayCorrection.NONE:
        when = img.values_reference_datetime(assume_instantaneous_frame=assume_instantaneous_frame)
        data = img.data
        if t.frame_duration_h is None:
            note = f"images[{i}]: frame duration unknown, values taken at the frame start"
    else:
        if t.acquisition_start is None:
            raise TimingError(
                f"images[{i}].timing.acquisition_start",
                "unknown, needed to undo the decay correction and place the image in time",
                None,
                "supply the acquisition start datetime",
                img.provenance.source or None,
            )
        when = t.acquisition_start
        src: datetime = img.values_reference_datetime()
        if src != when:
            data = img.decay_correct_to(when).data
            note = (
                f"images[{i}]: {t.decay_correction.value} decay correction undone "
                "(values decayed to the acquisition start)"
            )
        else:
            data = img.data
    hours = t.hours_after_injection(when)
    if not math.isfinite(hours) or hours < 0:
        raise TimingError(
            f"images[{i}].timing",
            f"the image is placed {hours:.4g} h after injection (before it)",
            when.isoformat(),
            "check the injection and acquisition datetimes",
            img.provenance.source or None,
        )
    return hours, data, note


def _check_inputs(images, mask, model, head, min_points, max_iter):
    if model not in MODELS:
        raise ValueError(f"model: unknown {model!r}; use one of {MODELS}")
    if head not in _HEADS:
        raise ValueError(f"head: unknown {head!r}; use one of {_HEADS}")
    if not isinstance(min_points, int | np.integer) or min_points < 2:
        raise ValueError(f"min_points: must be an integer >= 2 (got {min_points!r})")
    if not isinstance(max_iter, int | np.integer) or max_iter < 1:
        raise ValueError(f"max_iter: must be an integer >= 1 (got {max_iter!r})")
    images = list(images)
    if len(images) < 2:
        raise TimingError(
            "images",
            "at least 2 time points are needed for a TIA",
            len(images),
            "give one image per time point",
        )
    if len(images) < min_points:
        raise TimingError(
            "images",
            f"fewer time points than min_points={min_points}",
            len(images),
            "give more time points or lower min_points",
        )
    if model == "biexp_uptake" and len(images) < 4:
        raise TimingError(
            "images",
            "a 3-parameter uptake-washout fit needs at least 4 time points "
            "(clinical.md §6.2: with n <= 3 do not fit more than 2 parameters)",
            len(images),
            "use model='mono' or 'auto'",
        )
    ref = images[0]
    for i, img in enumerate(images):
        if not isinstance(img, Image):
            raise TypeError(f"images[{i}]: expected an Image, got {type(img).__name__}")
        if img.quantity is not Quantity.ACTIVITY_CONCENTRATION:
            raise QuantityError(
                f"images[{i}].quantity",
                "a TIA map needs activity concentration (MBq/mL)",
                img.quantity.value,
                "calibrate count images first (Image.to_activity_concentration)",
                img.provenance.source or None,
            )
        if i and not img.same_grid(ref):
            raise GeometryError(
                f"images[{i}]",
                "voxel grid (shape/affine) differs from images[0]",
                f"{img.shape} vs {ref.shape}",
                "register and resample every time point onto one grid (img.resample_to(images[0]))",
                img.provenance.source or None,
            )
    injections = {img.timing.injection for img in images if img.timing.injection is not None}
    if len(injections) > 1:
        raise TimingError(
            "images[].timing.injection",
            "images come from different administrations",
            sorted(x.isoformat() for x in injections),
            "compute one TIA map per therapy cycle",
        )
    if mask is not None:
        if isinstance(mask, Image):
            if not mask.same_grid(ref):
                raise GeometryError(
                    "mask",
                    "grid differs from the images",
                    f"{mask.shape} vs {ref.shape}",
                    "resample the mask (method='nearest') onto images[0]",
                )
            mask = mask.data
        mask = np.asarray(mask)
        if mask.shape != ref.shape:
            raise GeometryError(
                "mask", "shape differs from the images", mask.shape, f"give a {ref.shape} mask"
            )
        mask = mask.astype(bool, copy=False)
    return images, mask


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _run_blocks(kernel, m: int, n_threads: int, rows, scalars, outs) -> None:
    """Run ``kernel(*rows[a:b], *scalars, *outs[a:b])`` over row blocks on threads.

    The numba kernels release the GIL, so blocks run in parallel; more blocks
    than threads balance voxels that take longer to fit. (Threads over blocks
    rather than ``parallel=True``: same speed, a fraction of the compile time.)
    """
    if m == 0:
        return
    n_blocks = 1 if n_threads <= 1 else min(8 * n_threads, max(1, m // 2048))
    edges = np.linspace(0, m, n_blocks + 1).astype(np.int64)

    def one(k: int) -> None:
        a, b = int(edges[k]), int(edges[k + 1])
        kernel(*(r[a:b] for r in rows), *scalars, *(o[a:b] for o in outs))

    if n_blocks == 1:
        one(0)
        return
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        list(pool.map(one, range(n_blocks)))


# --------------------------------------------------------------------------- mono


def _mono_chunk(Y, t, lam_p, min_points, constant_head):
    """Mono rule on a (m, n) block. Returns tia, lam, lam_raw, code, peak index."""
    m, n = Y.shape
    idx = np.arange(n)
    p = Y.argmax(axis=1)
    ymax = Y[np.arange(m), p]
    signal = ymax > 0
    scale = np.where(signal, ymax, 1.0)
    Yn = Y / scale[:, None]
    use = (idx[None, :] >= p[:, None]) & (Yn > 0)
    npos = use.sum(axis=1)
    ok = signal & (npos >= min_points)

    W = np.where(use, Yn * Yn, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        L = np.log(np.where(use, Yn, 1.0))
        WL = W * L
        S = W.sum(axis=1)
        St = W @ t
        Stt = W @ (t * t)
        Sl = WL.sum(axis=1)
        Stl = WL @ t
        slope = (S * Stl - St * Sl) / (S * Stt - St * St)
        lam_raw = np.where(ok, -slope, np.nan)
        clamped = ok & ~(lam_raw >= lam_p)
        lam = np.where(clamped, lam_p, lam_raw)
        a = (Sl + lam * St) / S  # ln of the normalised Â0
        a_peak = np.exp(a - lam * t[p]) * scale  # Â(t_p), MBq/mL
        tail = a_peak / lam

    Yc = np.maximum(Y, 0.0)
    # vertices of the head polyline: measured (>= 0) before the peak, Â(t_p) at it
    V = np.where(idx[None, :] < p[:, None], Yc, 0.0)
    V[np.arange(m), p] = np.where(ok, a_peak, 0.0)
    h0 = V[:, 0] if constant_head else 0.0
    dt = np.diff(t)
    seg_in = idx[None, 1:] <= p[:, None]
    head = t[0] * (h0 + V[:, 0]) * 0.5 + ((V[:, :-1] + V[:, 1:]) * dt * 0.5 * seg_in).sum(axis=1)
    tia_mono = head + tail

    # trapezoid over every point + physical tail
    h0c = Yc[:, 0] if constant_head else 0.0
    trap = (
        t[0] * (h0c + Yc[:, 0]) * 0.5
        + ((Yc[:, :-1] + Yc[:, 1:]) * dt * 0.5).sum(axis=1)
        + Yc[:, -1] / lam_p
    )

    code = np.full(m, VoxelModel.TRAPEZOID_PHYSICAL_TAIL, dtype=np.uint8)
    code[ok] = VoxelModel.MONO
    code[clamped] = VoxelModel.MONO_CLAMPED
    code[~signal] = VoxelModel.NO_SIGNAL
    tia = np.where(ok, tia_mono, np.where(signal, trap, 0.0))
    lam_out = np.where(ok, lam, np.where(signal, lam_p, np.nan))
    return tia, lam_out, lam_raw, code, p


@numba.njit(nogil=True, cache=True)
def _mono_kernel(Y, t, lam_p, min_points, constant_head, tia, lam, lam_raw, code, peak):
    """:func:`_mono_chunk`, one voxel per iteration (numba, releases the GIL)."""
    m = Y.shape[0]
    n = Y.shape[1]
    for i in range(m):
        p = 0
        ymax = Y[i, 0]
        for j in range(1, n):
            if Y[i, j] > ymax:
                ymax = Y[i, j]
                p = j
        peak[i] = p
        if not (ymax > 0.0):
            tia[i] = 0.0
            lam[i] = math.nan
            lam_raw[i] = math.nan
            code[i] = 5  # NO_SIGNAL
            continue
        S = 0.0
        St = 0.0
        Stt = 0.0
        Sl = 0.0
        Stl = 0.0
        npos = 0
        for j in range(p, n):
            yn = Y[i, j] / ymax
            if yn > 0.0:
                w = yn * yn
                lg = math.log(yn)
                S += w
                St += w * t[j]
                Stt += w * t[j] * t[j]
                Sl += w * lg
                Stl += w * lg * t[j]
                npos += 1
        if npos >= min_points:
            lr = -(S * Stl - St * Sl) / (S * Stt - St * St)
            lam_raw[i] = lr
            if lr >= lam_p:
                li = lr
                code[i] = 1  # MONO
            else:
                li = lam_p
                code[i] = 2  # MONO_CLAMPED
            lam[i] = li
            a = (Sl + li * St) / S
            a_peak = math.exp(a - li * t[p]) * ymax
            # head polyline: (0, h0), measured (>= 0) before the peak, a_peak at it
            v0 = a_peak if p == 0 else max(Y[i, 0], 0.0)
            h0 = v0 if constant_head else 0.0
            area = t[0] * (h0 + v0) * 0.5
            for j in range(p):
                va = max(Y[i, j], 0.0)
                vb = a_peak if j + 1 == p else max(Y[i, j + 1], 0.0)
                area += (t[j + 1] - t[j]) * (va + vb) * 0.5
            tia[i] = area + a_peak / li
        else:
            lam_raw[i] = math.nan
            lam[i] = lam_p
            code[i] = 4  # TRAPEZOID_PHYSICAL_TAIL
            v0 = max(Y[i, 0], 0.0)
            h0 = v0 if constant_head else 0.0
            area = t[0] * (h0 + v0) * 0.5
            for j in range(n - 1):
                area += (t[j + 1] - t[j]) * (max(Y[i, j], 0.0) + max(Y[i, j + 1], 0.0)) * 0.5
            tia[i] = area + max(Y[i, n - 1], 0.0) / lam_p


# --------------------------------------------------------------------------- biexp


@numba.njit(cache=True, fastmath=False)
def _biexp_sse(t, y, A, l1, l2):
    s = 0.0
    for j in range(t.shape[0]):
        r = A * (math.exp(-l1 * t[j]) - math.exp(-l2 * t[j])) - y[j]
        s += r * r
    return s


@numba.njit(cache=True)
def _biexp_fit_one(t, y, lam_p, lam_init, lam2_cap, max_iter):
    """LM fit of A1 (e^{-l1 t} - e^{-l2 t}) to one voxel; y normalised (max 1).

    Returns (A1, l1, l2, status).
    """
    n = t.shape[0]
    npos = 0
    for j in range(n):
        if y[j] > 0.0:
            npos += 1
    if npos < 3:
        return math.nan, math.nan, math.nan, _FEW

    lo1 = lam_p
    # -- initial guess: grid over (l1, l2), A1 by linear least squares
    l1_0 = lam_init
    if not (l1_0 > lam_p * 1.01):
        l1_0 = lam_p * 1.5
    best = math.inf
    A = math.nan
    l1 = l1_0
    l2 = l1_0 * 10.0
    for a in range(3):
        l1c = l1_0 * (0.7, 1.0, 1.5)[a]
        if l1c < lo1:
            l1c = lo1
        for b in range(6):
            l2c = l1c * (1.5, 3.0, 10.0, 30.0, 100.0, 300.0)[b]
            if l2c > lam2_cap:
                l2c = lam2_cap
            if l2c <= l1c * (1.0 + 1e-6):
                continue
            sgy = 0.0
            sgg = 0.0
            syy = 0.0
            for j in range(n):
                g = math.exp(-l1c * t[j]) - math.exp(-l2c * t[j])
                sgy += g * y[j]
                sgg += g * g
                syy += y[j] * y[j]
            if sgg <= 0.0 or sgy <= 0.0:
                continue
            sse = syy - sgy * sgy / sgg
            if sse < best:
                best = sse
                A = sgy / sgg
                l1 = l1c
                l2 = l2c
    if not (A > 0.0):
        return math.nan, math.nan, math.nan, _BOUNDS

    # -- Levenberg-Marquardt with Marquardt scaling, projected onto the bounds
    sse = _biexp_sse(t, y, A, l1, l2)
    mu = 1e-3
    converged = False
    g1 = 0.0
    gl1 = 0.0
    c1 = 0.0
    for _it in range(max_iter):
        h00 = 0.0
        h01 = 0.0
        h02 = 0.0
        h11 = 0.0
        h12 = 0.0
        h22 = 0.0
        g0 = 0.0
        g1 = 0.0
        g2 = 0.0
        for j in range(n):
            e1 = math.exp(-l1 * t[j])
            e2 = math.exp(-l2 * t[j])
            r = A * (e1 - e2) - y[j]
            j0 = e1 - e2
            j1 = -A * t[j] * e1
            j2 = A * t[j] * e2
            h00 += j0 * j0
            h01 += j0 * j1
            h02 += j0 * j2
            h11 += j1 * j1
            h12 += j1 * j2
            h22 += j2 * j2
            g0 += j0 * r
            g1 += j1 * r
            g2 += j2 * r
        c1 = h11
        gl1 = g1
        if sse <= 1e-26 * n:
            converged = True
            break
        # scale-free stationarity: cosine between residual and each Jacobian column
        rn = math.sqrt(sse)
        tol = 1e-10 * rn
        free1 = not (l1 <= lo1 and g1 > 0.0)
        free2 = not (l2 >= lam2_cap and g2 < 0.0)
        if (
            abs(g0) <= tol * math.sqrt(h00)
            and (abs(g1) <= tol * math.sqrt(h11) or not free1)
            and (abs(g2) <= tol * math.sqrt(h22) or not free2)
        ):
            converged = True
            break
        d0 = max(h00, 1e-30)
        d1 = max(h11, 1e-30)
        d2 = max(h22, 1e-30)
        # active set: a parameter on its bound with the gradient pushing outward
        # is held fixed (its row and column decoupled), so the others take a
        # full Gauss-Newton step instead of a projected, zig-zagging one
        if not free1:
            h01 = 0.0
            h12 = 0.0
            g1 = 0.0
        if not free2:
            h02 = 0.0
            h12 = 0.0
            g2 = 0.0
        accepted = False
        new_sse = sse
        nA = A
        n1 = l1
        n2 = l2
        for _k in range(40):
            a00 = h00 + mu * d0
            a11 = h11 + mu * d1
            a22 = h22 + mu * d2
            # solve [a00 h01 h02; h01 a11 h12; h02 h12 a22] x = -g (Cramer)
            det = (
                a00 * (a11 * a22 - h12 * h12)
                - h01 * (h01 * a22 - h12 * h02)
                + h02 * (h01 * h12 - a11 * h02)
            )
            if not (det > 0.0) or not math.isfinite(det):
                mu *= 10.0
                continue
            b0 = -g0
            b1 = -g1
            b2 = -g2
            x0 = (
                b0 * (a11 * a22 - h12 * h12)
                - h01 * (b1 * a22 - h12 * b2)
                + h02 * (b1 * h12 - a11 * b2)
            ) / det
            x1 = (
                a00 * (b1 * a22 - h12 * b2)
                - b0 * (h01 * a22 - h12 * h02)
                + h02 * (h01 * b2 - b1 * h02)
            ) / det
            x2 = (
                a00 * (a11 * b2 - h12 * b1)
                - h01 * (h01 * b2 - b1 * h02)
                + b0 * (h01 * h12 - a11 * h02)
            ) / det
            nA = A + x0
            n1 = l1 + x1
            if n1 < lo1:
                n1 = lo1
            n2 = l2 + x2
            if n2 > lam2_cap:
                n2 = lam2_cap
            lo2 = n1 * (1.0 + 1e-9)
            if n2 < lo2:
                n2 = lo2
            new_sse = _biexp_sse(t, y, nA, n1, n2)
            if new_sse < sse:
                accepted = True
                break
            mu *= 10.0
            if mu > 1e20:
                break
        if not accepted:
            converged = True  # no descent direction left: a (constrained) minimum
            break
        rel_step = max(
            abs(nA - A) / max(abs(A), 1e-300),
            abs(n1 - l1) / l1,
            abs(n2 - l2) / l2,
        )
        dec = sse - new_sse
        A = nA
        l1 = n1
        l2 = n2
        sse = new_sse
        mu = max(mu * 0.1, 1e-12)
        if dec <= 1e-15 * (sse + dec) or rel_step <= 1e-12:
            converged = True
            break

    if not (math.isfinite(A) and math.isfinite(l1) and math.isfinite(l2) and math.isfinite(sse)):
        return A, l1, l2, _NONFINITE
    if not converged:
        return A, l1, l2, _NOCONV
    if A <= 0.0 or l2 <= l1 * (1.0 + 1e-6):
        return A, l1, l2, _BOUNDS
    # lambda1 on its bound while the residual still pulls it lower
    if l1 <= lo1 * (1.0 + 1e-9) and sse > 1e-26 * n:
        if gl1 > 1e-6 * math.sqrt(c1) * math.sqrt(sse):
            return A, l1, l2, _BOUNDS
    return A, l1, l2, _OK


@numba.njit(nogil=True, cache=True)
def _biexp_kernel(Y, lam_init, t, lam_p, lam2_cap, max_iter, out_tia, out_l1, out_l2, status):
    m = Y.shape[0]
    n = Y.shape[1]
    for i in range(m):
        y = np.empty(n)
        ymax = 0.0
        for j in range(n):
            if Y[i, j] > ymax:
                ymax = Y[i, j]
        if not (ymax > 0.0):
            status[i] = _FEW
            out_tia[i] = math.nan
            out_l1[i] = math.nan
            out_l2[i] = math.nan
            continue
        for j in range(n):
            y[j] = Y[i, j] / ymax
        A, l1, l2, st = _biexp_fit_one(t, y, lam_p, lam_init[i], lam2_cap, max_iter)
        status[i] = st
        out_l1[i] = l1
        out_l2[i] = l2
        out_tia[i] = A * ymax * (1.0 / l1 - 1.0 / l2)
        if st == _OK and not (math.isfinite(out_tia[i]) and out_tia[i] > 0.0):
            status[i] = _NONFINITE


def _biexp(Y, t, lam_p, lam_init, max_iter, n_threads):
    """Bi-exponential fits of the rows of ``Y``: (tia, l1, l2, status)."""
    m = Y.shape[0]
    tia = np.empty(m)
    l1 = np.empty(m)
    l2 = np.empty(m)
    status = np.empty(m, dtype=np.uint8)
    t_first = float(t[0]) if t[0] > 0 else 1e-2
    cap = 50.0 / t_first
    _run_blocks(
        _biexp_kernel,
        m,
        n_threads,
        (
            np.ascontiguousarray(Y, dtype=np.float64),
            np.ascontiguousarray(lam_init, dtype=np.float64),
        ),
        (np.ascontiguousarray(t, dtype=np.float64), float(lam_p), cap, int(max_iter)),
        (tia, l1, l2, status),
    )
    return tia, l1, l2, status


# --------------------------------------------------------------------------- API


def tia_map(
    images: Sequence[Image],
    mask: np.ndarray | Image | None = None,
    *,
    model: str = "mono",
    nuclide=None,
    min_points: int = 2,
    head: str = "linear",
    max_iter: int = 100,
    assume_instantaneous_frame: bool = False,
    engine: str = "numba",
    n_threads: int | None = None,
) -> TIAMapResult:
    """Voxel-wise TIA-density map (MBq·h/mL) from serial activity images.

    Parameters
    ----------
    images : sequence of Image
        Activity-concentration images (MBq/mL) of one administration, on one
        grid, in increasing time after injection (see the module docstring for
        how each is placed in time).
    mask : ndarray of bool or Image, shape (Z, Y, X), optional
        Voxels to compute (default: all). Voxels outside hold TIA 0 and code
        ``OUTSIDE``; their values are not read (NaN there is fine).
    model : {"mono", "biexp_uptake", "auto"}
        Voxel model; see the module docstring.
    nuclide : str or Nuclide, optional
        For λ_phys; default: the images' nuclide (they must agree).
    min_points : int
        Positive points from the peak onward needed for a mono fit (>= 2).
    head : {"linear", "constant"}
        ``A(0)`` of the trapezoid head (mono and trapezoid voxels): 0 (linear
        rise) or the first vertex's value.
    max_iter : int
        Levenberg–Marquardt iterations before a bi-exponential fit is declared
        not converged.
    assume_instantaneous_frame : bool
        For images without decay correction and without a frame duration, take
        the values at the acquisition start instead of refusing.
    engine : {"numba", "numpy"}
        Implementation of the mono stage: a parallel numba loop (default) or
        the vectorised numpy reference (same results to rounding). The
        bi-exponential stage is always numba.
    n_threads : int, optional
        Threads for the numba stages (default: the CPUs this process may use).

    Returns
    -------
    TIAMapResult

    Raises
    ------
    QuantityError
        An image is not an activity concentration.
    GeometryError
        Images (or the mask) are on different grids.
    TimingError
        Unknown injection/acquisition time or frame duration, images before the
        injection, times not strictly increasing, different administrations,
        too few time points for the model.
    MissingFieldError, NuclideError
        Nuclide unknown or inconsistent.
    ImageDataError
        Non-finite values inside the mask.
    """
    images, mask = _check_inputs(images, mask, model, head, min_points, max_iter)
    if engine not in ("numba", "numpy"):
        raise ValueError(f"engine: unknown {engine!r}; use 'numba' or 'numpy'")
    n_threads = _default_threads() if n_threads is None else int(n_threads)
    if n_threads < 1:
        raise ValueError(f"n_threads: must be >= 1 (got {n_threads})")
    from theranet.nuclides import Nuclide

    nuc_name = _resolve_nuclide(images, nuclide)
    nuc = Nuclide(nuc_name)
    lam_p = float(nuc.decay_constant_per_h)
    if not lam_p > 0:
        raise NuclideError("nuclide", "is stable; a TIA needs a decaying nuclide", nuc_name)

    times, datas, notes = [], [], []
    for i, img in enumerate(images):
        if img.nuclide is None:
            img = img.replace(nuclide=nuc_name)
        h, d, note = _time_point(img, i, assume_instantaneous_frame)
        times.append(h)
        datas.append(d)
        if note:
            notes.append(note)
    t = np.array(times, dtype=np.float64)
    if np.any(np.diff(t) <= 0):
        dup = np.any(np.diff(t) == 0)
        raise TimingError(
            "images",
            "two images are at the same time after injection"
            if dup
            else "times after injection are not increasing",
            [round(x, 4) for x in times],
            "give one image per time point, in acquisition order",
        )

    shape = images[0].shape
    m_sel = int(np.prod(shape)) if mask is None else int(np.count_nonzero(mask))
    Y = np.empty((m_sel, len(datas)), dtype=np.float64)
    for j, d in enumerate(datas):
        Y[:, j] = np.asarray(d).reshape(-1) if mask is None else np.asarray(d)[mask]
    bad = ~np.isfinite(Y)
    if bad.any():
        col = np.argwhere(bad)[0][1]
        raise ImageDataError(
            f"images[{int(col)}].data",
            f"{int(bad.any(axis=1).sum())} voxel(s) with non-finite values in the mask",
            None,
            "repair them or exclude them with the mask",
        )
    m_vox, n = Y.shape

    tia = np.empty(m_vox)
    lam = np.empty(m_vox)
    lam_raw = np.empty(m_vox)
    code = np.empty(m_vox, dtype=np.uint8)
    peak = np.empty(m_vox, dtype=np.int64)
    constant_head = head == "constant"
    if engine == "numba":
        _run_blocks(
            _mono_kernel,
            m_vox,
            n_threads,
            (Y,),
            (t, lam_p, int(min_points), constant_head),
            (tia, lam, lam_raw, code, peak),
        )
    else:
        for s in range(0, m_vox, _CHUNK):
            sl = slice(s, min(s + _CHUNK, m_vox))
            tia[sl], lam[sl], lam_raw[sl], code[sl], peak[sl] = _mono_chunk(
                Y[sl], t, lam_p, min_points, constant_head
            )

    reasons: dict[str, int] = {}
    fell_back = code != VoxelModel.MONO
    lam2 = np.full(m_vox, np.nan)
    if model != "mono" and n >= 4:
        if model == "auto":
            try_idx = np.flatnonzero((peak > 0) & (code != VoxelModel.NO_SIGNAL))
            fell_back = code != VoxelModel.MONO
        else:
            try_idx = np.arange(m_vox)
            fell_back = np.ones(m_vox, dtype=bool)
        b_tia, b_l1, b_l2, status = _biexp(
            Y[try_idx], t, lam_p, lam_raw[try_idx], max_iter, n_threads
        )
        good = status == _OK
        gi = try_idx[good]
        tia[gi] = b_tia[good]
        lam[gi] = b_l1[good]
        lam2[gi] = b_l2[good]
        code[gi] = VoxelModel.BIEXP_UPTAKE
        fell_back[gi] = False
        failed = try_idx[~good]
        fell_back[failed] = True
        for st, name in _BIEXP_REASON.items():
            k = int(np.count_nonzero(status == st))
            if k:
                reasons[name] = k
    elif model == "auto":
        notes.append("auto: fewer than 4 time points, every voxel mono")
    for c, name in (
        (VoxelModel.MONO_CLAMPED, _R_CLAMPED),
        (VoxelModel.TRAPEZOID_PHYSICAL_TAIL, _R_TRAPEZOID),
        (VoxelModel.NO_SIGNAL, _R_NOSIGNAL),
    ):
        k = int(np.count_nonzero(code == c))
        if k:
            reasons[name] = k
    n_fallback = int(np.count_nonzero(fell_back))

    def _scatter(v, fill, dtype):
        out = np.full(int(np.prod(shape)), fill, dtype=dtype)
        if mask is None:
            out[:] = v
        else:
            out[mask.reshape(-1)] = v
        return out.reshape(shape)

    result = TIAMapResult(
        tia_mbq_h_per_ml=_scatter(tia, 0.0, np.float64),
        affine=images[0].affine.copy(),
        lambda_per_h=_scatter(lam, np.nan, np.float64),
        lambda_uptake_per_h=_scatter(lam2, np.nan, np.float64),
        model_used=_scatter(code, VoxelModel.OUTSIDE, np.uint8),
        n_voxels=int(m_vox),
        n_fallback=n_fallback,
        fallback_reason=reasons,
        times_h=tuple(float(x) for x in t),
        nuclide=nuc_name,
        lambda_phys_per_h=lam_p,
        model=model,
        head=head,
        notes=tuple(notes),
    )
    if n_fallback:
        logger.info(
            "tia_map (%s): %d of %d voxels fell back: %s",
            model,
            n_fallback,
            m_vox,
            ", ".join(f"{k}: {v}" for k, v in reasons.items()),
        )
    return result
