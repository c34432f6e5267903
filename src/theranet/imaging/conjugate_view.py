"""Planar conjugate-view activity quantification (MIRD Pamphlet 16).

Activity of a source region from an anterior and a posterior planar view
(clinical.md §4.3; Siegel et al. 1999, MIRD Pamphlet No. 16, J Nucl Med
40:37S-61S [MIRD-16])::

    A_j = sqrt( I_A I_P / e^(-mu_e T) ) * f_j / C
    f_j = (mu_j t_j / 2) / sinh(mu_j t_j / 2)

``I_A``, ``I_P``: background-corrected count rates (cps) of the region in the
two views; ``e^(-mu_e T)``: transmission through the patient along the
projection; ``f_j``: self-attenuation of a source of thickness ``t_j`` and
linear attenuation coefficient ``mu_j`` (1 for a thin source); ``C``: planar
system sensitivity (cps/MBq), measured with a source in air, same collimator and
window (§4.5).

What is implemented, and from where
-----------------------------------
* :func:`geometric_mean` -- pixel-wise ``sqrt(ANT * flip(POST))`` (§4.3,
  [syd-doc]); scatter is removed from each view first (``ANT_EM - k ANT_SC``).
* :func:`tew_primary` -- triple-energy-window scatter estimate (Ogawa 1991,
  §4.4): ``C_scatter = (C_lower/W_lower + C_upper/W_upper) * W_peak / 2``,
  ``C_primary = max(0, C_peak - C_scatter)``.
* :func:`dew_primary` -- dual-energy-window (Jaszczak 1984, §4.4):
  ``C_primary = C_peak - k * C_scatter_window``, negative pixels clipped to 0.
  ``k`` is nuclide-, window- and camera-specific (0.5 is the classic 99mTc
  value): a calibration the user supplies, never a default.
  Both return the number of clipped pixels and the counts removed by clipping.
* :func:`self_attenuation_factor` -- ``f_j`` above.
* :func:`hu_to_mu_per_mm` / :func:`mu_map_from_ct` -- linear attenuation
  coefficient at the photopeak energy from CT: mass density from the CT number
  (:func:`theranet.imaging.segment.hu_to_density`, Schneider et al. 2000 by
  default) times the NIST mass attenuation coefficient
  (:func:`theranet.physics.materials.photon_attenuation`) of the voxel's tissue
  class (:data:`theranet.imaging.segment.SCHNEIDER_2000_CLASSES`: air, lung,
  adipose, soft tissue, bone). The density curve is piecewise linear with
  separate sections below and above 0 HU, the generalisation of the bilinear
  HU -> mu conversion of §4.3. At 0 HU it gives 1.017 g/cm^3 (the Schneider
  soft-tissue fit), so water comes out 1.5-1.8 % above its NIST value at
  150-400 keV (tests/imaging/test_conjugate_view.py).
* :func:`transmission_from_mu_map` -- ``exp(-integral mu dl)`` along the
  anterior-posterior rays of a mu map (§4.3, CT-based transmission); a measured
  transmission ``I_trans / I_0`` (flood or line source) can be passed instead.
* :func:`project_to_view` -- a 3-D CT-grid quantity (mu, a region mask, a
  thickness) projected onto the planar view, in the anterior-view orientation;
  :func:`background_thickness_mm` -- the attenuated thickness of background
  tissue along each ray, for the background correction below.
* :func:`roi_activity_mbq` -- the MIRD 16 equation for a region of interest,
  with background and overlap corrections (below).
* :func:`whole_body_activity_mbq` -- pixel-by-pixel attenuation correction
  of the geometric mean with a transmission map, summed over the body.
* :func:`whole_body_activity_from_reference_mbq` -- the classic form without
  attenuation correction: whole-body geometric-mean count rate relative to a
  first scan taken before any excretion (retention x activity at that scan).
* :func:`planar_sensitivity_cps_per_mbq` -- ``C = R_source / A_source`` (§4.5).

Background correction
---------------------
Counts from the activity in front of and behind the organ are removed with a
background ROI drawn next to the organ, separately in each view
(:class:`Background`). Three methods:

``"conventional"``
    ``I = sum_ROI (counts - b)``, ``b`` the mean counts per pixel of the
    background ROI: as if the background filled the whole thickness of the
    body in front of and behind the organ (overestimates the background).
``"thickness_fraction"``
    ``I = sum_ROI (counts - b * (1 - t / T))``, ``t`` the organ thickness and
    ``T`` the body thickness along each ray: only the part of the body not
    occupied by the organ contributes background. The organ-thickness
    correction of Kojima et al. (1993) in the simplified form compared by Buijs
    et al. (1998, J Nucl Med 39:2167-2172) and discussed in MIRD 16.
    [UNCERTAIN: reproduced from secondary descriptions of these papers, not
    checked against their text.] It neglects attenuation and assumes the
    background ROI lies over the same body thickness as the organ.
``"attenuated_thickness"``
    ``I_v = sum_ROI (counts_v - beta_v * W_v)`` for each view ``v``, with
    ``W_v`` the background tissue along each ray weighted by its attenuation
    towards that view's detector, ``W_v = integral m(l) exp(-mu path to the
    detector) dl`` (mm, from CT: :func:`background_thickness_mm`; ``m`` = 1 in
    body tissue outside the organ), and ``beta_v = sum_BG counts_v / sum_BG
    W_v`` the background counts per attenuated mm measured in the background
    ROI. The same idea as the thickness fraction, extended with CT to the
    attenuation of the background in front of and behind the organ and to a
    background ROI over a different body thickness (with ``mu = 0`` and the
    same thickness it reduces to ``"thickness_fraction"``). [Assumption: a
    uniform background concentration in the body outside the organ;
    this extension is theranet's, not a published method.]

Overlapping organs
------------------
MIRD 16 asks that source ROIs do not overlap, or that the contribution of an
overlapping organ be removed. :func:`refuse_overlap` raises for overlapping
ROIs; :class:`Overlap` subtracts, over the pixels the two organs share, the
mean background-corrected counts per pixel of the other organ measured in a
reference ROI over a part of it that does not overlap. [Assumption: the other
organ's counts per pixel are uniform and equally attenuated in the overlap and
in the reference ROI.]

Conventions
-----------
* Views are 2-D count arrays (rows, columns). "Anterior-view orientation":
  the posterior view mirrored left-right (columns reversed), so that pixel
  ``[r, c]`` of both views looks along the same ray -- what
  :func:`theranet.io.read_nm_planar` returns. Every function taking a posterior
  view requires ``posterior_flipped`` (True: already in the anterior-view
  orientation; False: as the posterior detector records it).
* Counts, not count rates: ``acquisition_s`` converts (whole body: the time a
  point of the patient spends under the detector).
* Activities are at the scan time: no decay correction is made here (decay of
  the calibration source to the scan mid-time belongs to the caller, §4.5).
* The CT is not on the planar grid: a projection from :func:`project_to_view`
  must be resampled and registered to the planar view by the caller (a planar
  NM object carries no patient geometry).

Units: counts, s, cps, cps/MBq, MBq, mm, 1/mm, MeV, keV (window widths).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from theranet._checks import finite_number, positive
from theranet.errors import (
    CalibrationError,
    GeometryError,
    ImageDataError,
    QuantityError,
    TheranetError,
    TimingError,
)
from theranet.image import Image, Quantity
from theranet.imaging.segment import (
    DEFAULT_HU_DENSITY_CURVE,
    DEFAULT_TISSUE_CLASSES,
    HUDensityCurve,
    TissueClasses,
    hu_to_density,
)
from theranet.physics.materials import photon_attenuation

__all__ = [
    "BACKGROUND_METHODS",
    "Background",
    "ConjugateViewError",
    "Overlap",
    "RoiActivity",
    "ScatterCorrection",
    "WholeBodyActivity",
    "WholeBodyRetention",
    "background_thickness_mm",
    "dew_primary",
    "geometric_mean",
    "hu_to_mu_per_mm",
    "mu_map_from_ct",
    "planar_sensitivity_cps_per_mbq",
    "project_to_view",
    "refuse_overlap",
    "roi_activity_mbq",
    "self_attenuation_factor",
    "tew_primary",
    "transmission_from_mu_map",
    "whole_body_activity_from_reference_mbq",
    "whole_body_activity_mbq",
]

logger = logging.getLogger(__name__)

_MIRD16 = "Siegel et al. 1999, MIRD Pamphlet No. 16, J Nucl Med 40:37S-61S (clinical.md §4.3)"

#: Background methods of :class:`Background`.
BACKGROUND_METHODS = ("conventional", "thickness_fraction", "attenuated_thickness")

#: Largest |cosine| an image axis may deviate from an LPS axis and still count as
#: aligned with it (about 2.6 degrees).
_ALIGNED_COS = 0.999


class ConjugateViewError(TheranetError, ValueError):
    """A conjugate-view parameter (transmission, window, ROI, method) is unusable."""


# ---------------------------------------------------------------------------- checks


def _counts(name: str, value: ArrayLike) -> NDArray[np.float64]:
    """A non-negative, finite count array (float64)."""
    a = np.asarray(value)
    if a.dtype.kind not in "biuf":
        raise ImageDataError(name, "counts must be numeric", str(a.dtype))
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ImageDataError(
            name,
            "counts must be finite",
            int(np.count_nonzero(~np.isfinite(a))),
            "replace NaN/inf pixels",
        )
    if a.size and a.min() < 0:
        raise ImageDataError(
            name,
            "counts must be >= 0",
            float(a.min()),
            "remove scatter with tew_primary/dew_primary, which clip negative pixels to 0",
        )
    return a


def _same_shape(reference_name: str, reference: np.ndarray, name: str, a: np.ndarray) -> None:
    if a.shape != reference.shape:
        raise ImageDataError(
            name,
            f"shape differs from {reference_name} {reference.shape}",
            a.shape,
            "give views of one acquisition, on the same pixel grid",
        )


def _view(name: str, value: ArrayLike) -> NDArray[np.float64]:
    a = _counts(name, value)
    if a.ndim != 2:
        raise ImageDataError(
            name, "must be a 2-D view (rows, columns)", a.shape, "pass one energy window"
        )
    return a


def _mask(name: str, value: ArrayLike, shape: tuple[int, ...]) -> NDArray[np.bool_]:
    m = np.asarray(value)
    if m.dtype.kind not in "biu":
        raise ImageDataError(
            name, "must be a boolean (or integer, nonzero = inside) mask", str(m.dtype)
        )
    if m.shape != shape:
        raise ImageDataError(
            name,
            f"shape must be that of the views {shape}",
            m.shape,
            "project or resample the ROI onto the planar grid",
        )
    return m.astype(bool)


def _map_or_scalar(
    name: str, value: ArrayLike, shape: tuple[int, ...], *, unit: str
) -> NDArray[np.float64] | float:
    """A finite, non-negative number or an array of the views' shape."""
    a = np.asarray(value)
    if a.dtype.kind not in "iuf":
        raise ConjugateViewError(name, "must be a number or a numeric array", str(a.dtype))
    a = a.astype(np.float64)
    if a.ndim == 0:
        v = float(a)
        if not (math.isfinite(v) and v >= 0):
            raise ConjugateViewError(name, "must be finite and >= 0", v, f"give it in {unit}")
        return v
    if a.shape != shape:
        raise ImageDataError(
            name, f"shape must be that of the views {shape}", a.shape, "or give one number"
        )
    if not np.all(np.isfinite(a)) or a.min() < 0:
        raise ConjugateViewError(name, "values must be finite and >= 0", None, f"in {unit}")
    return a


def _transmission(value: ArrayLike, shape: tuple[int, ...] | None) -> NDArray[np.float64] | float:
    """Transmission factor(s) in (0, 1]: a number, or an array of ``shape``."""
    a = np.asarray(value)
    if a.dtype.kind not in "iuf":
        raise ConjugateViewError(
            "transmission", "must be a number or a numeric array", str(a.dtype)
        )
    a = a.astype(np.float64)
    if a.ndim and shape is not None and a.shape != shape:
        raise ImageDataError(
            "transmission",
            f"shape must be that of the views {shape}",
            a.shape,
            "project the mu map onto the planar grid (transmission_from_mu_map), or give one "
            "number",
        )
    bad = ~np.isfinite(a) | (a <= 0) | (a > 1)
    if np.any(bad):
        worst = float(a[bad].flat[0])
        raise ConjugateViewError(
            "transmission",
            "must lie in (0, 1] (I_trans / I_0 or exp(-integral mu dl))",
            worst,
            "a value > 1 usually means the blank and transmission scans are swapped; 0 means "
            "an opaque ray",
        )
    return float(a) if a.ndim == 0 else a


def _sensitivity(value: Any) -> float:
    return positive(CalibrationError, "sensitivity_cps_per_mbq", value, "cps/MBq")


def _duration(name: str, value: Any) -> float:
    return positive(TimingError, name, value, "s")


def _flip(posterior: np.ndarray, posterior_flipped: Any) -> np.ndarray:
    if not isinstance(posterior_flipped, bool):
        raise ConjugateViewError(
            "posterior_flipped",
            "must be True or False",
            posterior_flipped,
            "True when the posterior view is already mirrored into the anterior-view "
            "orientation (theranet.io.read_nm_planar), False when it is as the posterior "
            "detector records it",
        )
    return posterior if posterior_flipped else posterior[:, ::-1]


# ---------------------------------------------------------------------------- views


def geometric_mean(
    anterior: ArrayLike, posterior: ArrayLike, *, posterior_flipped: bool
) -> NDArray[np.float64]:
    """Pixel-wise geometric mean of conjugate views, ``sqrt(ANT * flip(POST))``.

    Parameters
    ----------
    anterior, posterior : array_like of shape (rows, columns)
        Counts (scatter already removed, e.g. with :func:`dew_primary`).
    posterior_flipped : bool
        True when ``posterior`` is already in the anterior-view orientation
        (as :func:`theranet.io.read_nm_planar` returns it); False when it is as
        the posterior detector records it (it is then mirrored left-right).

    Returns
    -------
    ndarray of shape (rows, columns), counts
        In the anterior-view orientation (clinical.md §4.3, [syd-doc]).

    Raises
    ------
    ImageDataError
        Shapes differ, non-finite or negative counts.
    ConjugateViewError
        ``posterior_flipped`` is not a bool.

    Examples
    --------
    >>> geometric_mean([[4.0, 0.0]], [[1.0, 9.0]], posterior_flipped=False).tolist()
    [[6.0, 0.0]]
    """
    ant = _view("anterior", anterior)
    post = _view("posterior", posterior)
    _same_shape("anterior", ant, "posterior", post)
    return np.sqrt(ant * _flip(post, posterior_flipped))


@dataclass(frozen=True, eq=False)
class ScatterCorrection:
    """Primary counts after a window-based scatter subtraction.

    Attributes
    ----------
    primary : ndarray
        ``max(0, peak - scatter)``, counts, the shape of the peak window.
    scatter : ndarray
        The scatter estimate subtracted, counts.
    n_clipped : int
        Pixels where ``peak - scatter`` was negative (set to 0).
    clipped_counts : float
        Counts added back by clipping (the sum of ``scatter - peak`` over those
        pixels), >= 0: the bias the clipping introduces in a sum.
    method : str
        What was done, with its source.
    """

    primary: NDArray[np.float64]
    scatter: NDArray[np.float64]
    n_clipped: int
    clipped_counts: float
    method: str


def _clip(peak: np.ndarray, scatter: np.ndarray, method: str) -> ScatterCorrection:
    diff = peak - scatter
    negative = diff < 0
    n = int(np.count_nonzero(negative))
    clipped = float(-diff[negative].sum()) if n else 0.0
    if n:
        logger.info("%s: %d pixel(s) clipped to 0 (%.6g counts)", method, n, clipped)
    return ScatterCorrection(np.where(negative, 0.0, diff), scatter, n, clipped, method)


def _width(name: str, value: Any) -> float:
    return positive(ConjugateViewError, name, value, "keV")


def tew_primary(
    peak: ArrayLike,
    lower: ArrayLike,
    upper: ArrayLike | None,
    *,
    width_peak_kev: float,
    width_lower_kev: float,
    width_upper_kev: float | None,
) -> ScatterCorrection:
    """Triple-energy-window scatter correction (Ogawa et al. 1991).

    ``C_scatter = (C_lower / W_lower + C_upper / W_upper) * W_peak / 2`` and
    ``C_primary = max(0, C_peak - C_scatter)``, per pixel (clinical.md §4.4).

    Parameters
    ----------
    peak, lower, upper : array_like, same shape
        Counts in the photopeak window and in the narrow windows just below and
        above it. ``upper=None`` (with ``width_upper_kev=None``) for a nuclide
        with no window above the peak (99mTc): ``C_upper = 0``.
    width_peak_kev, width_lower_kev, width_upper_kev : float
        Window widths, keV, > 0.

    Returns
    -------
    ScatterCorrection

    Raises
    ------
    ImageDataError
        Shapes differ; counts negative or not finite.
    ConjugateViewError
        A width that is not positive, or ``upper`` and ``width_upper_kev`` not
        both given or both None.

    Notes
    -----
    The scatter estimate is noisy; smoothing the side windows before
    subtraction is common (clinical.md §4.4) and left to the caller.
    """
    c_peak = _counts("peak", peak)
    c_low = _counts("lower", lower)
    _same_shape("peak", c_peak, "lower", c_low)
    w_peak = _width("width_peak_kev", width_peak_kev)
    w_low = _width("width_lower_kev", width_lower_kev)
    scatter = c_low / w_low
    if (upper is None) != (width_upper_kev is None):
        raise ConjugateViewError(
            "upper",
            "give the upper window counts and width_upper_kev together, or neither",
            None,
            "upper=None and width_upper_kev=None when no window lies above the peak",
        )
    if upper is not None:
        c_up = _counts("upper", upper)
        _same_shape("peak", c_peak, "upper", c_up)
        scatter = scatter + c_up / _width("width_upper_kev", width_upper_kev)
    scatter = scatter * w_peak / 2.0
    return _clip(c_peak, scatter, "TEW scatter (Ogawa 1991, clinical.md §4.4)")


def dew_primary(peak: ArrayLike, scatter: ArrayLike, k: float) -> ScatterCorrection:
    """Dual-energy-window scatter correction (Jaszczak et al. 1984).

    ``C_primary = C_peak - k * C_scatter_window`` per pixel, negative pixels
    clipped to 0 and reported (clinical.md §4.4).

    Parameters
    ----------
    peak, scatter : array_like, same shape
        Counts in the photopeak and in the scatter window.
    k : float
        Scatter multiplier, >= 0. Nuclide-, window- and camera-specific (0.5 is
        the classic 99mTc value, Jaszczak 1984): calibrate it.

    Returns
    -------
    ScatterCorrection

    Raises
    ------
    ImageDataError
        Shapes differ; counts negative or not finite.
    ConjugateViewError
        ``k`` negative or not finite.
    """
    c_peak = _counts("peak", peak)
    c_sc = _counts("scatter", scatter)
    _same_shape("peak", c_peak, "scatter", c_sc)
    k = finite_number(ConjugateViewError, "k", k)
    if k < 0:
        raise ConjugateViewError("k", "must be >= 0", k, "calibrate k for the nuclide and windows")
    return _clip(c_peak, k * c_sc, f"DEW scatter, k = {k:g} (Jaszczak 1984, clinical.md §4.4)")


# ---------------------------------------------------------------------------- attenuation


def self_attenuation_factor(
    mu_per_mm: ArrayLike, thickness_mm: ArrayLike
) -> float | NDArray[np.float64]:
    """Source self-attenuation correction ``f = (mu t / 2) / sinh(mu t / 2)``.

    The MIRD 16 factor (clinical.md §4.3) for a source uniformly spread over a
    thickness ``t`` of a medium of linear attenuation coefficient ``mu``; 1 for
    a thin source, < 1 otherwise.

    Parameters
    ----------
    mu_per_mm : float or array_like
        Linear attenuation coefficient of the source region at the photopeak,
        1/mm, >= 0.
    thickness_mm : float or array_like
        Source thickness along the projection, mm, >= 0 (broadcast with
        ``mu_per_mm``).

    Returns
    -------
    float or ndarray
        A float when both arguments are scalars.

    Raises
    ------
    ConjugateViewError
        A negative or non-finite value.

    Examples
    --------
    >>> self_attenuation_factor(0.0, 100.0)
    1.0
    >>> round(self_attenuation_factor(0.01, 200.0), 6)  # x = 1: 1 / sinh(1)
    0.850918
    """
    mu = np.asarray(mu_per_mm, dtype=np.float64)
    t = np.asarray(thickness_mm, dtype=np.float64)
    for name, a in (("mu_per_mm", mu), ("thickness_mm", t)):
        if not np.all(np.isfinite(a)) or (a.size and a.min() < 0):
            raise ConjugateViewError(name, "must be finite and >= 0", None)
    x = np.asarray(0.5 * mu * t, dtype=np.float64)
    f = np.ones(x.shape)
    nz = x > 0
    # x / sinh(x) = 2 x e^-x / (1 - e^-2x), stable for large x
    xs = x[nz]
    f[nz] = 2.0 * xs * np.exp(-xs) / -np.expm1(-2.0 * xs)
    return float(f) if f.ndim == 0 else f


def _uniform_along_ray(transmission: np.ndarray | float) -> np.ndarray | float:
    """``f / sqrt(T) = -ln T / (1 - T)``: a source filling the whole ray (1 at T = 1)."""
    tr = np.asarray(transmission, dtype=np.float64)
    out = np.ones_like(tr)
    inside = tr < 1.0
    out[inside] = -np.log(tr[inside]) / -np.expm1(np.log(tr[inside]))
    return float(out) if out.ndim == 0 else out


def _class_index(hu: np.ndarray, classes: TissueClasses) -> np.ndarray:
    return np.digitize(hu, np.asarray(classes.lower_hu), right=False)


def hu_to_mu_per_mm(
    hu: ArrayLike,
    photon_energy_mev: float,
    *,
    curve: HUDensityCurve = DEFAULT_HU_DENSITY_CURVE,
    classes: TissueClasses = DEFAULT_TISSUE_CLASSES,
) -> float | NDArray[np.float64]:
    """Linear attenuation coefficient of CT numbers at a photon energy.

    ``mu = rho(HU) * (mu/rho)_class(E) / 10``: the mass density of the HU ->
    density ``curve`` (:func:`theranet.imaging.segment.hu_to_density`) times
    the NIST mass attenuation coefficient (coherent scattering included) of the
    material of the voxel's tissue class (``classes``; air, lung, adipose,
    soft tissue, bone by default). The factor 1/10 converts 1/cm to 1/mm.

    Parameters
    ----------
    hu : float or array_like
        CT numbers, HU, finite.
    photon_energy_mev : float
        Photon energy, MeV (e.g. 0.3645 for the 131I photopeak).
    curve : HUDensityCurve
        Default Schneider et al. 2000 (scanner-specific: give the site's curve).
    classes : TissueClasses
        Default :data:`~theranet.imaging.segment.SCHNEIDER_2000_CLASSES`.

    Returns
    -------
    float or ndarray of float64, 1/mm
        A float for a scalar ``hu``.

    Raises
    ------
    ImageDataError
        Non-finite CT numbers.
    EnergyRangeError
        An energy outside the NIST tables (1 keV-20 MeV).

    Examples
    --------
    >>> round(hu_to_mu_per_mm(-1000.0, 0.3645) * 1000, 4)  # air, 1/m
    0.012
    """
    values = np.asarray(hu, dtype=np.float64)
    rho = np.asarray(hu_to_density(values, curve), dtype=np.float64)
    index = _class_index(values, classes)
    mu_rho = np.array(
        [float(photon_attenuation(m).mu_over_rho(photon_energy_mev)) for m in classes.materials]
    )
    mu = rho * mu_rho[index] / 10.0
    return float(mu) if mu.ndim == 0 else mu


def mu_map_from_ct(
    ct: Image,
    photon_energy_mev: float,
    *,
    curve: HUDensityCurve = DEFAULT_HU_DENSITY_CURVE,
    classes: TissueClasses = DEFAULT_TISSUE_CLASSES,
) -> NDArray[np.float32]:
    """Linear attenuation coefficient map (1/mm) on the CT grid.

    :func:`hu_to_mu_per_mm` applied to every voxel of ``ct``.

    Parameters
    ----------
    ct : Image
        CT in HU (``Quantity.HU``).
    photon_energy_mev : float
        Photopeak energy, MeV. For a nuclide imaged in several photopeaks
        (111In: 171 and 245 keV) quantify each window with its own map.
    curve, classes
        See :func:`hu_to_mu_per_mm`.

    Returns
    -------
    ndarray of float32, shape of ``ct.data``, 1/mm
        On the grid of ``ct`` (``ct.affine``).

    Raises
    ------
    QuantityError
        ``ct`` is not an Image in HU.
    ImageDataError
        Non-finite CT numbers.
    """
    if not isinstance(ct, Image):
        raise QuantityError("ct", "must be an Image in HU", type(ct).__name__)
    if ct.quantity is not Quantity.HU:
        raise QuantityError(
            "ct.quantity",
            "needs a CT in Hounsfield units",
            ct.quantity.value,
            "pass the CT image (Quantity.HU), e.g. from theranet.io.read_series",
        )
    mu = hu_to_mu_per_mm(np.asarray(ct.data), photon_energy_mev, curve=curve, classes=classes)
    return np.asarray(mu, dtype=np.float32)


def _view_axes(affine: np.ndarray) -> tuple[int, int, int]:
    """Array axes along LPS x (columns), y (projection) and z (rows); aligned axes only."""
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)):
        raise GeometryError("affine", "must be a finite 4 x 4 matrix", a.shape)
    steps = a[:3, :3]
    norms = np.linalg.norm(steps, axis=0)
    if np.any(norms <= 0):
        raise GeometryError("affine", "has a zero-length axis", norms.tolist())
    cosines = np.abs(steps / norms)  # [lps, axis]
    axes = [int(np.argmax(cosines[k])) for k in range(3)]
    if len(set(axes)) != 3 or any(cosines[k, axes[k]] < _ALIGNED_COS for k in range(3)):
        raise GeometryError(
            "affine",
            "image axes are not aligned with the patient axes (oblique volume)",
            np.round(steps, 4).tolist(),
            "resample the volume onto an axis-aligned grid first (Image.resample_to)",
        )
    return axes[0], axes[1], axes[2]


def project_to_view(
    values: ArrayLike | Image,
    affine: ArrayLike | None = None,
    *,
    reduce: str = "integral",
    rows_toward: str = "feet",
) -> NDArray[np.float64]:
    """Project a 3-D quantity along the anterior-posterior axis onto a planar view.

    Parameters
    ----------
    values : array_like of shape (A0, A1, A2) or Image
        E.g. a mu map (1/mm), a region mask, a body mask.
    affine : array_like of shape (4, 4), optional
        Voxel index -> LPS mm; required for an array, taken from an Image. The
        volume must be axis-aligned (no oblique planes).
    reduce : {"integral", "sum", "any"}
        ``"integral"``: ``sum(values) * voxel length along y`` (mm times the
        unit of ``values``: the line integral of mu, or the thickness in mm of
        a mask); ``"sum"``: plain sum; ``"any"``: True where the ray meets a
        nonzero voxel.
    rows_toward : {"feet", "head"}
        Direction of increasing row index. Columns always increase towards
        the patient's left (the anterior-view orientation of
        :func:`theranet.io.read_nm_planar`).

    Returns
    -------
    ndarray of shape (rows, columns)
        float64 (bool for ``"any"``), one pixel per voxel of the two other axes
        (pixel size: the voxel size along z (rows) and x (columns)). Resample
        and register it to the planar view before use.

    Raises
    ------
    GeometryError
        No or an oblique affine, or a volume that is not 3-D.
    ConjugateViewError
        Unknown ``reduce`` or ``rows_toward``.
    ImageDataError
        Non-finite values.
    """
    if isinstance(values, Image):
        data = np.asarray(values.data)
        affine = values.affine if affine is None else affine
    else:
        data = np.asarray(values)
    if affine is None:
        raise GeometryError(
            "affine", "needed to find the anterior-posterior axis", None, "pass the volume's affine"
        )
    if data.ndim != 3:
        raise GeometryError("values", "must be a 3-D volume", data.shape)
    if reduce not in ("integral", "sum", "any"):
        raise ConjugateViewError("reduce", "unknown", reduce, "use 'integral', 'sum' or 'any'")
    if rows_toward not in ("feet", "head"):
        raise ConjugateViewError("rows_toward", "unknown", rows_toward, "use 'feet' or 'head'")
    if data.dtype.kind not in "biuf":
        raise ImageDataError("values", "must be numeric or boolean", str(data.dtype))
    aff = np.asarray(affine, dtype=np.float64)
    x_axis, y_axis, z_axis = _view_axes(aff)
    if reduce == "any":
        proj: np.ndarray = np.any(data != 0, axis=y_axis)
    else:
        v = data.astype(np.float64)
        if not np.all(np.isfinite(v)):
            raise ImageDataError("values", "must be finite", int(np.count_nonzero(~np.isfinite(v))))
        proj = v.sum(axis=y_axis)
        if reduce == "integral":
            proj = proj * float(np.linalg.norm(aff[:3, y_axis]))
    remaining = [a for a in range(3) if a != y_axis]
    # proj axes are the remaining axes in array order; put z (rows) first
    if remaining.index(z_axis) != 0:
        proj = proj.T
    if aff[0, x_axis] < 0:  # columns towards the patient's left (+x in LPS)
        proj = proj[:, ::-1]
    rows_to_head = aff[2, z_axis] > 0
    if rows_to_head != (rows_toward == "head"):
        proj = proj[::-1, :]
    return np.ascontiguousarray(proj)


def transmission_from_mu_map(
    mu_per_mm: ArrayLike | Image,
    affine: ArrayLike | None = None,
    *,
    rows_toward: str = "feet",
) -> NDArray[np.float64]:
    """Transmission ``exp(-integral mu dl)`` along the anterior-posterior rays.

    The CT-based transmission factor ``e^(-mu_e T)`` of MIRD 16
    (clinical.md §4.3), per ray of a parallel-hole projection along LPS y.

    Parameters
    ----------
    mu_per_mm : array_like of shape (A0, A1, A2), 1/mm
        Linear attenuation coefficients at the photopeak (e.g.
        :func:`mu_map_from_ct`), finite and >= 0. An Image carries its affine.
    affine : array_like of shape (4, 4), optional
        Voxel index -> LPS mm, axis-aligned.
    rows_toward : {"feet", "head"}
        See :func:`project_to_view`.

    Returns
    -------
    ndarray of float64, shape (rows, columns)
        In (0, 1], on the CT's in-plane grid, anterior-view orientation.

    Raises
    ------
    ConjugateViewError
        Negative attenuation coefficients.
    GeometryError, ImageDataError
        As :func:`project_to_view`.
    """
    data = np.asarray(mu_per_mm.data if isinstance(mu_per_mm, Image) else mu_per_mm)
    if data.dtype.kind in "iuf" and data.size and np.nanmin(data) < 0:
        raise ConjugateViewError(
            "mu_per_mm", "attenuation coefficients must be >= 0", float(np.nanmin(data))
        )
    line = project_to_view(mu_per_mm, affine, reduce="integral", rows_toward=rows_toward)
    return np.exp(-line)


def background_thickness_mm(
    mu_per_mm: ArrayLike,
    background_mask: ArrayLike,
    affine: ArrayLike,
    *,
    rows_toward: str = "feet",
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Attenuated thickness of background tissue along each ray, towards each detector.

    ``W_v = integral m(l) exp(-integral of mu from l to detector v) dl`` over
    the anterior-posterior ray of each pixel, for the ``"attenuated_thickness"``
    background of :class:`Background`. Discretised per voxel ``k`` of length
    ``dy`` as ``dy * sum_k m_k exp(-L_k)`` with ``L_k`` the attenuation of the
    voxels between ``k`` and the detector plus half of voxel ``k``'s own.

    Parameters
    ----------
    mu_per_mm : array_like of shape (A0, A1, A2), 1/mm
        Attenuation map at the photopeak (:func:`mu_map_from_ct`), >= 0.
    background_mask : array_like of bool, same shape
        Background tissue: the body outside the organ (and outside other
        organs with their own uptake, if known).
    affine : array_like of shape (4, 4)
        Voxel index -> LPS mm, axis-aligned (y towards posterior).
    rows_toward : {"feet", "head"}
        See :func:`project_to_view`.

    Returns
    -------
    (anterior, posterior) : two ndarrays of shape (rows, columns), mm
        Both in the anterior-view orientation. With ``mu = 0`` each is the
        thickness of background tissue along the ray.

    Raises
    ------
    ImageDataError
        Shapes differ; a mask that is not boolean/integer.
    ConjugateViewError, GeometryError
        As :func:`transmission_from_mu_map`.
    """
    mu = np.asarray(mu_per_mm, dtype=np.float64)
    if mu.ndim != 3:
        raise GeometryError("mu_per_mm", "must be a 3-D volume", mu.shape)
    if not np.all(np.isfinite(mu)) or (mu.size and mu.min() < 0):
        raise ConjugateViewError("mu_per_mm", "attenuation coefficients must be finite and >= 0")
    m = np.asarray(background_mask)
    if m.dtype.kind not in "biu":
        raise ImageDataError("background_mask", "must be a boolean mask", str(m.dtype))
    if m.shape != mu.shape:
        raise ImageDataError("background_mask", f"shape must be that of mu {mu.shape}", m.shape)
    aff = np.asarray(affine, dtype=np.float64)
    _, y_axis, _ = _view_axes(aff)
    dy = float(np.linalg.norm(aff[:3, y_axis]))
    anterior_first = aff[1, y_axis] > 0  # LPS y grows towards posterior
    mu_a = mu if anterior_first else np.flip(mu, axis=y_axis)
    m_a = (m != 0) if anterior_first else np.flip(m != 0, axis=y_axis)
    cum = np.cumsum(mu_a, axis=y_axis)
    total = np.take(cum, [-1], axis=y_axis)
    to_anterior = np.where(m_a, np.exp(-dy * (cum - 0.5 * mu_a)), 0.0)
    to_posterior = np.where(m_a, np.exp(-dy * (total - cum + 0.5 * mu_a)), 0.0)
    if not anterior_first:
        to_anterior = np.flip(to_anterior, axis=y_axis)
        to_posterior = np.flip(to_posterior, axis=y_axis)
    return (
        project_to_view(to_anterior, aff, reduce="integral", rows_toward=rows_toward),
        project_to_view(to_posterior, aff, reduce="integral", rows_toward=rows_toward),
    )


# ---------------------------------------------------------------------------- calibration


def planar_sensitivity_cps_per_mbq(
    counts: ArrayLike,
    *,
    acquisition_s: float,
    source_activity_mbq: float,
    background_counts: float = 0.0,
) -> float:
    """Planar system sensitivity ``C = R_source / A_source`` (clinical.md §4.5).

    Parameters
    ----------
    counts : float or array_like
        Counts of the calibration source in air in one view (an image is
        summed).
    acquisition_s : float
        Acquisition duration, s.
    source_activity_mbq : float
        Source activity at the scan mid-time, MBq: decay-correct the calibrated
        activity to that instant before calling.
    background_counts : float
        Room background over the same duration, subtracted.

    Returns
    -------
    float, cps/MBq

    Raises
    ------
    ImageDataError
        Negative or non-finite counts.
    TimingError, CalibrationError
        Non-positive duration, activity, or net count rate.
    """
    total = float(_counts("counts", counts).sum())
    t_s = _duration("acquisition_s", acquisition_s)
    a = positive(CalibrationError, "source_activity_mbq", source_activity_mbq, "MBq")
    bg = finite_number(CalibrationError, "background_counts", background_counts)
    net = total - bg
    if not net > 0:
        raise CalibrationError(
            "counts", "net counts of the source are not > 0", net, "check the source and window"
        )
    return net / t_s / a


# ---------------------------------------------------------------------------- ROI activity


@dataclass(frozen=True, eq=False)
class Background:
    """How to correct a region's counts for the activity in front of and behind it.

    Parameters
    ----------
    mask : array_like of bool, shape of the views
        Background ROI, next to the organ, over tissue without other organs.
    method : {"conventional", "thickness_fraction", "attenuated_thickness"}
        See the module notes.
    body_thickness_mm : float or array_like, optional
        Patient thickness ``T`` along each ray, mm (``"thickness_fraction"``
        only); the organ thickness ``t`` is the ``source_thickness_mm`` of
        :func:`roi_activity_mbq`.
    anterior_thickness_mm, posterior_thickness_mm : array_like, optional
        Attenuated background thickness towards each detector, mm
        (``"attenuated_thickness"`` only; :func:`background_thickness_mm`).

    Raises
    ------
    ConjugateViewError
        An unknown method, or a method without the thickness it needs.
    """

    mask: ArrayLike
    method: str = "thickness_fraction"
    body_thickness_mm: ArrayLike | None = None
    anterior_thickness_mm: ArrayLike | None = None
    posterior_thickness_mm: ArrayLike | None = None

    def __post_init__(self) -> None:
        if self.method not in BACKGROUND_METHODS:
            raise ConjugateViewError(
                "background.method", "unknown", self.method, f"use one of {BACKGROUND_METHODS}"
            )
        if self.method == "thickness_fraction" and self.body_thickness_mm is None:
            raise ConjugateViewError(
                "background.body_thickness_mm",
                "needed for the thickness-fraction background",
                None,
                "give the patient thickness along the rays (e.g. project_to_view of the body "
                "outline), or method='conventional'",
            )
        if self.method == "attenuated_thickness" and (
            self.anterior_thickness_mm is None or self.posterior_thickness_mm is None
        ):
            raise ConjugateViewError(
                "background.anterior_thickness_mm",
                "the attenuated-thickness background needs both views' thickness maps",
                None,
                "compute them with background_thickness_mm(mu map, background tissue mask, ...)",
            )

    def _templates(
        self, shape: tuple[int, ...], organ_thickness_mm: np.ndarray | float | None
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """Background weight per pixel for each view, and the method in words."""
        if self.method == "conventional":
            ones = np.ones(shape)
            return ones, ones, "conventional (whole-thickness) background"
        if self.method == "attenuated_thickness":
            w_ant = _map_or_scalar(
                "background.anterior_thickness_mm", self.anterior_thickness_mm, shape, unit="mm"
            )
            w_post = _map_or_scalar(
                "background.posterior_thickness_mm", self.posterior_thickness_mm, shape, unit="mm"
            )
            return (
                np.broadcast_to(np.asarray(w_ant, dtype=np.float64), shape),
                np.broadcast_to(np.asarray(w_post, dtype=np.float64), shape),
                "background per attenuated mm of background tissue from CT (theranet "
                "extension of the thickness fraction; uniform background assumed)",
            )
        if organ_thickness_mm is None:
            raise ConjugateViewError(
                "source_thickness_mm",
                "needed for the thickness-fraction background (organ thickness t)",
                None,
                "give source_thickness_mm and mu_per_mm, or Background(method='conventional')",
            )
        body = _map_or_scalar("background.body_thickness_mm", self.body_thickness_mm, shape,
                              unit="mm")  # fmt: skip
        body_b = np.broadcast_to(np.asarray(body, dtype=np.float64), shape)
        thick_b = np.broadcast_to(np.asarray(organ_thickness_mm, dtype=np.float64), shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(body_b > 0, thick_b / body_b, 1.0)
        weight = 1.0 - np.clip(frac, 0.0, 1.0)
        return (
            weight,
            weight,
            "background x (1 - t/T), organ-thickness fraction (Kojima 1993 as compared by "
            "Buijs 1998) [UNCERTAIN: simplified form]",
        )


@dataclass(frozen=True, eq=False)
class Overlap:
    """An organ that overlaps the ROI, and a reference ROI over a part of it that does not.

    Parameters
    ----------
    name : str
        The overlapping organ (for the record).
    mask : array_like of bool, shape of the views
        Pixels where that organ lies in front of or behind the ROI's organ.
    reference_mask : array_like of bool
        Pixels over a part of that organ clear of the ROI's organ; its mean
        background-corrected counts per pixel are subtracted over ``mask & roi``.
    """

    name: str
    mask: ArrayLike
    reference_mask: ArrayLike


@dataclass(frozen=True)
class RoiActivity:
    """Activity of a region by the conjugate view, with every step.

    Attributes
    ----------
    activity_mbq : float
        At the scan time (no decay correction).
    n_pixels : int
    anterior_counts, posterior_counts : float
        Raw ROI totals.
    anterior_background_counts, posterior_background_counts : float
        Subtracted as background.
    anterior_overlap_counts, posterior_overlap_counts : float
        Subtracted for overlapping organs.
    anterior_net_counts, posterior_net_counts : float
        ``I_A``, ``I_P`` times the acquisition time.
    geometric_mean_cps : float
        ``sqrt(I_A I_P)``, cps.
    transmission : float
        Effective ``e^(-mu_e T)`` over the ROI.
    self_attenuation : float
        Effective ``f_j`` over the ROI (1 without a source thickness).
    correction_factor : float
        ``f_j / sqrt(e^(-mu_e T))`` as applied.
    sensitivity_cps_per_mbq, acquisition_s : float
    steps : tuple of str
        The method, step by step, with sources.
    """

    activity_mbq: float
    n_pixels: int
    anterior_counts: float
    posterior_counts: float
    anterior_background_counts: float
    posterior_background_counts: float
    anterior_overlap_counts: float
    posterior_overlap_counts: float
    anterior_net_counts: float
    posterior_net_counts: float
    geometric_mean_cps: float
    transmission: float
    self_attenuation: float
    correction_factor: float
    sensitivity_cps_per_mbq: float
    acquisition_s: float
    steps: tuple[str, ...] = field(default=())


def refuse_overlap(roi_masks: Mapping[str, ArrayLike]) -> None:
    """Raise if any two ROIs share a pixel (MIRD 16: source ROIs must not overlap).

    Parameters
    ----------
    roi_masks : Mapping[str, array_like of bool]
        ROI name -> mask, all of one shape.

    Raises
    ------
    ConjugateViewError
        Naming the first overlapping pair and the number of shared pixels;
        the fix names :class:`Overlap`.
    ImageDataError
        Masks of different shapes or types.
    """
    items = list(roi_masks.items())
    if not items:
        return
    shape = np.asarray(items[0][1]).shape
    masks = [(name, _mask(f"roi_masks[{name!r}]", m, shape)) for name, m in items]
    for i, (name_i, m_i) in enumerate(masks):
        for name_j, m_j in masks[i + 1 :]:
            shared = int(np.count_nonzero(m_i & m_j))
            if shared:
                raise ConjugateViewError(
                    f"roi_masks[{name_i!r}], roi_masks[{name_j!r}]",
                    "the ROIs overlap",
                    f"{shared} shared pixels",
                    "redraw the ROIs apart, or correct for the overlap with Overlap(...) in "
                    "roi_activity_mbq",
                )


def _pixel_correction(
    shape: tuple[int, ...],
    transmission: np.ndarray | float,
    mu_per_mm: float | None,
    source_thickness_mm: np.ndarray | float | None,
) -> np.ndarray:
    """Per-pixel ``f / sqrt(T)``, broadcast to ``shape``."""
    tr = np.broadcast_to(np.asarray(transmission, dtype=np.float64), shape)
    if source_thickness_mm is None:
        f = np.ones(shape)
    else:
        f = np.broadcast_to(
            np.asarray(self_attenuation_factor(mu_per_mm, source_thickness_mm)), shape
        )
    return f / np.sqrt(tr)


def roi_activity_mbq(
    anterior: ArrayLike,
    posterior: ArrayLike,
    roi_mask: ArrayLike,
    *,
    posterior_flipped: bool,
    transmission: float | ArrayLike,
    sensitivity_cps_per_mbq: float,
    acquisition_s: float,
    background: Background | None = None,
    source_thickness_mm: float | ArrayLike | None = None,
    mu_per_mm: float | None = None,
    overlaps: Sequence[Overlap] = (),
) -> RoiActivity:
    """Activity in a region of interest by the MIRD 16 conjugate-view equation.

    ``A = sqrt(I_A I_P / e^(-mu_e T)) * f / C`` (clinical.md §4.3, [MIRD-16]).

    Parameters
    ----------
    anterior, posterior : array_like of shape (rows, columns)
        Counts, scatter removed.
    roi_mask : array_like of bool, shape of the views
        The organ's ROI in the anterior-view orientation (the same pixels in
        both views).
    posterior_flipped : bool
        See :func:`geometric_mean`.
    transmission : float or array_like of the views' shape
        ``e^(-mu_e T)`` in (0, 1]: measured ``I_trans / I_0`` over the ROI, or a
        map (:func:`transmission_from_mu_map`). With a map (or a thickness
        map), the correction ``f / sqrt(T)`` is averaged over the ROI pixels
        weighted by their geometric-mean counts, i.e. each pixel's counts get
        the correction of its own ray.
    sensitivity_cps_per_mbq : float
        Planar sensitivity ``C`` (:func:`planar_sensitivity_cps_per_mbq`).
    acquisition_s : float
        Acquisition time of each view, s.
    background : Background, optional
        Background correction; None: none.
    source_thickness_mm : float or array_like, optional
        Organ thickness ``t_j`` along the rays, mm (e.g. :func:`project_to_view`
        of the organ mask); needs ``mu_per_mm``. Gives ``f_j``; required by the
        ``"thickness_fraction"`` background.
    mu_per_mm : float, optional
        Linear attenuation coefficient ``mu_j`` of the organ, 1/mm.
    overlaps : sequence of Overlap
        Overlapping organs to subtract.

    Returns
    -------
    RoiActivity

    Raises
    ------
    ImageDataError
        Shapes differ; counts negative or not finite; a mask of the wrong type.
    CalibrationError, TimingError
        Non-positive sensitivity or acquisition time.
    ConjugateViewError
        Transmission outside (0, 1]; an empty ROI or background ROI;
        ``source_thickness_mm`` without ``mu_per_mm`` (or the reverse); net
        counts not > 0 after the corrections.
    """
    ant = _view("anterior", anterior)
    post = _view("posterior", posterior)
    _same_shape("anterior", ant, "posterior", post)
    post = _flip(post, posterior_flipped)
    shape = ant.shape
    roi = _mask("roi_mask", roi_mask, shape)
    n_roi = int(np.count_nonzero(roi))
    if not n_roi:
        raise ConjugateViewError("roi_mask", "is empty", None, "draw the organ's ROI")
    tr = _transmission(transmission, shape)
    sens = _sensitivity(sensitivity_cps_per_mbq)
    t_s = _duration("acquisition_s", acquisition_s)
    if (source_thickness_mm is None) != (mu_per_mm is None):
        raise ConjugateViewError(
            "source_thickness_mm" if mu_per_mm is not None else "mu_per_mm",
            "source_thickness_mm and mu_per_mm go together (self-attenuation f_j)",
            None,
            "give both, or neither for a thin source (f_j = 1)",
        )
    thick = None
    mu = None
    if source_thickness_mm is not None:
        thick = _map_or_scalar("source_thickness_mm", source_thickness_mm, shape, unit="mm")
        mu = finite_number(ConjugateViewError, "mu_per_mm", mu_per_mm)
        if mu < 0:
            raise ConjugateViewError("mu_per_mm", "must be >= 0", mu)
    steps = [
        f"ROI {n_roi} pixels; counts summed in each view over {t_s:g} s",
    ]

    # background per pixel, in counts, per view
    bg_ant = np.zeros(shape)
    bg_post = np.zeros(shape)
    if background is not None:
        if not isinstance(background, Background):
            raise ConjugateViewError(
                "background", "must be a Background", type(background).__name__
            )
        bg = _mask("background.mask", background.mask, shape)
        n_bg = int(np.count_nonzero(bg))
        if not n_bg:
            raise ConjugateViewError("background.mask", "is empty", None, "draw a background ROI")
        if np.any(bg & roi):
            raise ConjugateViewError(
                "background.mask",
                "overlaps the organ ROI",
                int(np.count_nonzero(bg & roi)),
                "draw the background ROI next to the organ, not on it",
            )
        w_ant, w_post, how = background._templates(shape, thick)
        rates = []
        for view, counts, w in (("anterior", ant, w_ant), ("posterior", post, w_post)):
            denominator = float(w[bg].sum())
            if not denominator > 0:
                raise ConjugateViewError(
                    "background.mask",
                    f"the background weight of the {view} view is 0 over the background ROI",
                    None,
                    "draw the background ROI over body tissue",
                )
            rates.append(float(counts[bg].sum()) / denominator)
        bg_ant = rates[0] * w_ant
        bg_post = rates[1] * w_post
        steps.append(
            f"background from {n_bg} pixels: {float(ant[bg].mean()):.6g} (anterior) and "
            f"{float(post[bg].mean()):.6g} (posterior) counts/pixel; {how}"
        )
    net_ant_px = ant - bg_ant
    net_post_px = post - bg_post

    # overlapping organs: subtract their mean counts per pixel over the shared pixels
    ov_ant = np.zeros(shape)
    ov_post = np.zeros(shape)
    for k, ov in enumerate(overlaps):
        if not isinstance(ov, Overlap):
            raise ConjugateViewError(f"overlaps[{k}]", "must be an Overlap", type(ov).__name__)
        shared = _mask(f"overlaps[{k}].mask", ov.mask, shape) & roi
        ref = _mask(f"overlaps[{k}].reference_mask", ov.reference_mask, shape)
        if not ref.any():
            raise ConjugateViewError(f"overlaps[{k}].reference_mask", "is empty", ov.name)
        if np.any(ref & roi):
            raise ConjugateViewError(
                f"overlaps[{k}].reference_mask",
                "lies on the organ ROI",
                int(np.count_nonzero(ref & roi)),
                "draw it over a part of the overlapping organ clear of the ROI",
            )
        per_px_ant = float(net_ant_px[ref].mean())
        per_px_post = float(net_post_px[ref].mean())
        ov_ant[shared] += max(per_px_ant, 0.0)
        ov_post[shared] += max(per_px_post, 0.0)
        steps.append(
            f"overlap {ov.name!r}: {int(np.count_nonzero(shared))} shared pixels, "
            f"{per_px_ant:.6g}/{per_px_post:.6g} counts/pixel (anterior/posterior) from its "
            f"reference ROI subtracted"
        )
    net_ant_px = net_ant_px - ov_ant
    net_post_px = net_post_px - ov_post

    i_ant = float(net_ant_px[roi].sum())
    i_post = float(net_post_px[roi].sum())
    if not (i_ant > 0 and i_post > 0):
        raise ConjugateViewError(
            "roi_mask",
            "net counts after background and overlap correction are not > 0",
            (round(i_ant, 3), round(i_post, 3)),
            "check the background ROI (is it hotter than the organ?) and the overlaps",
        )

    c_px = _pixel_correction(shape, tr, mu, thick)
    w = np.sqrt(np.clip(net_ant_px, 0, None) * np.clip(net_post_px, 0, None))[roi]
    if not w.sum() > 0:
        w = np.sqrt(ant * post)[roi]
    if not w.sum() > 0:
        w = np.ones(n_roi)
    c_eff = float(np.average(c_px[roi], weights=w))
    tr_roi = np.broadcast_to(np.asarray(tr, dtype=np.float64), shape)[roi]
    tr_eff = float(np.average(1.0 / np.sqrt(tr_roi), weights=w)) ** -2
    f_eff = c_eff * math.sqrt(tr_eff)
    gm_cps = math.sqrt(i_ant * i_post) / t_s
    activity = gm_cps * c_eff / sens
    steps.append(
        f"geometric mean {gm_cps:.6g} cps; transmission {tr_eff:.6g}"
        + (" (ROI effective, count-weighted)" if np.ndim(tr) else "")
        + f"; self-attenuation f = {f_eff:.6g}"
        + (f" (mu {mu:.6g}/mm)" if mu is not None else " (thin source)")
    )
    steps.append(
        f"A = sqrt(I_A I_P / T) f / C = {activity:.6g} MBq with C = {sens:.6g} cps/MBq "
        f"({_MIRD16}); activity at the scan time, not decay-corrected"
    )
    return RoiActivity(
        activity_mbq=activity,
        n_pixels=n_roi,
        anterior_counts=float(ant[roi].sum()),
        posterior_counts=float(post[roi].sum()),
        anterior_background_counts=float(bg_ant[roi].sum()),
        posterior_background_counts=float(bg_post[roi].sum()),
        anterior_overlap_counts=float(ov_ant[roi].sum()),
        posterior_overlap_counts=float(ov_post[roi].sum()),
        anterior_net_counts=i_ant,
        posterior_net_counts=i_post,
        geometric_mean_cps=gm_cps,
        transmission=tr_eff,
        self_attenuation=f_eff,
        correction_factor=c_eff,
        sensitivity_cps_per_mbq=sens,
        acquisition_s=t_s,
        steps=tuple(steps),
    )


# ---------------------------------------------------------------------------- whole body


@dataclass(frozen=True)
class WholeBodyActivity:
    """Whole-body activity by pixel-wise attenuation-corrected geometric mean.

    Attributes
    ----------
    activity_mbq : float
        At the scan time.
    geometric_mean_counts : float
        ``sum sqrt(ANT * POST)`` over the pixels used, uncorrected.
    corrected_counts : float
        ``sum sqrt(ANT * POST) * f / sqrt(T)``.
    n_pixels : int
    self_attenuation : str
    steps : tuple of str
    """

    activity_mbq: float
    geometric_mean_counts: float
    corrected_counts: float
    n_pixels: int
    self_attenuation: str
    steps: tuple[str, ...] = field(default=())


_WB_SELF_ATTENUATION = ("none", "uniform_along_ray")


def whole_body_activity_mbq(
    anterior: ArrayLike,
    posterior: ArrayLike,
    *,
    posterior_flipped: bool,
    transmission: float | ArrayLike,
    sensitivity_cps_per_mbq: float,
    acquisition_s: float,
    self_attenuation: str = "none",
    mask: ArrayLike | None = None,
) -> WholeBodyActivity:
    """Whole-body activity, each pixel corrected for the attenuation along its ray.

    ``A = sum_p sqrt(ANT_p POST_p) * f_p / sqrt(T_p) / (C * t)``: the MIRD 16
    equation (clinical.md §4.3) applied pixel by pixel with a transmission map.

    Parameters
    ----------
    anterior, posterior : array_like of shape (rows, columns)
        Whole-body counts, scatter removed.
    posterior_flipped : bool
        See :func:`geometric_mean`.
    transmission : float or array_like
        ``T_p`` in (0, 1] per pixel (:func:`transmission_from_mu_map`), 1 in air.
    sensitivity_cps_per_mbq : float
    acquisition_s : float
        Time each point spends under the detector, s.
    self_attenuation : {"none", "uniform_along_ray"}
        ``"none"``: ``f_p = 1`` (activity concentrated at one depth per ray,
        e.g. thin organs). ``"uniform_along_ray"``: the activity is spread
        uniformly over the attenuating tissue of each ray, so
        ``f_p = x / sinh(x)`` with ``x = -ln(T_p) / 2`` and
        ``f_p / sqrt(T_p) = -ln T_p / (1 - T_p)``. [Assumption: neither
        describes a real distribution exactly; the first overestimates spread
        activity, the second underestimates concentrated activity.]
    mask : array_like of bool, optional
        Pixels to sum (e.g. the body outline dilated by the resolution);
        default all.

    Returns
    -------
    WholeBodyActivity

    Raises
    ------
    ImageDataError, CalibrationError, TimingError, ConjugateViewError
        As :func:`roi_activity_mbq`; unknown ``self_attenuation``.
    """
    ant = _view("anterior", anterior)
    post = _view("posterior", posterior)
    _same_shape("anterior", ant, "posterior", post)
    post = _flip(post, posterior_flipped)
    shape = ant.shape
    tr = _transmission(transmission, shape)
    sens = _sensitivity(sensitivity_cps_per_mbq)
    t_s = _duration("acquisition_s", acquisition_s)
    if self_attenuation not in _WB_SELF_ATTENUATION:
        raise ConjugateViewError(
            "self_attenuation", "unknown", self_attenuation, f"use one of {_WB_SELF_ATTENUATION}"
        )
    use = np.ones(shape, dtype=bool) if mask is None else _mask("mask", mask, shape)
    gm = np.sqrt(ant * post)
    tr_map = np.broadcast_to(np.asarray(tr, dtype=np.float64), shape)
    if self_attenuation == "none":
        corr = 1.0 / np.sqrt(tr_map)
        how = "f = 1 (no self-attenuation)"
    else:
        corr = np.asarray(_uniform_along_ray(tr_map))
        how = "f = x / sinh(x), x = -ln(T)/2 (source uniform along each ray)"
    gm_sum = float(gm[use].sum())
    corrected = float((gm * corr)[use].sum())
    activity = corrected / t_s / sens
    steps = (
        f"pixel-wise geometric mean over {int(use.sum())} pixels: {gm_sum:.6g} counts",
        f"each pixel x f / sqrt(T) ({how}): {corrected:.6g} counts",
        f"A = {activity:.6g} MBq over {t_s:g} s with C = {sens:.6g} cps/MBq ({_MIRD16}); "
        "activity at the scan time, not decay-corrected",
    )
    return WholeBodyActivity(
        activity_mbq=activity,
        geometric_mean_counts=gm_sum,
        corrected_counts=corrected,
        n_pixels=int(use.sum()),
        self_attenuation=self_attenuation,
        steps=steps,
    )


@dataclass(frozen=True)
class WholeBodyRetention:
    """Whole-body activity relative to a reference (first) scan.

    Attributes
    ----------
    activity_mbq : float
        ``retention_fraction * reference_activity_mbq``, at the scan time.
    retention_fraction : float
        Whole-body geometric-mean count rate over that of the reference scan.
    count_rate_cps, reference_count_rate_cps : float
        ``sqrt(sum ANT * sum POST) / t`` of each scan.
    steps : tuple of str
    """

    activity_mbq: float
    retention_fraction: float
    count_rate_cps: float
    reference_count_rate_cps: float
    steps: tuple[str, ...] = field(default=())


def _total_rate(ant: ArrayLike, post: ArrayLike, t_s: float, prefix: str) -> float:
    a = _counts(f"{prefix}anterior", ant)
    p = _counts(f"{prefix}posterior", post)
    _same_shape(f"{prefix}anterior", a, f"{prefix}posterior", p)
    rate = math.sqrt(float(a.sum()) * float(p.sum())) / t_s
    if not rate > 0:
        raise ConjugateViewError(
            f"{prefix}anterior", "the views hold no counts", None, "check the scan and window"
        )
    return rate


def whole_body_activity_from_reference_mbq(
    anterior: ArrayLike,
    posterior: ArrayLike,
    *,
    acquisition_s: float,
    reference_anterior: ArrayLike,
    reference_posterior: ArrayLike,
    reference_acquisition_s: float,
    reference_activity_mbq: float,
) -> WholeBodyRetention:
    """Whole-body activity from total counts relative to a first scan (no attenuation).

    ``A(t) = [sqrt(N_A N_P) / t_acq] / [sqrt(N_A0 N_P0) / t_acq0] * A_0``, with
    ``N`` the total counts of each whole-body view. The first scan, taken before
    any voiding, holds the whole administered activity (``A_0``: the activity
    administered, decayed to the first scan's time by the caller). The ratio of
    count rates carries the physical decay and the excretion between the
    scans, so ``A(t)`` is the activity at ``t`` (no decay correction).

    Totals do not depend on the views' orientation, so no ``posterior_flipped``
    is needed. [Assumption: the same camera, collimator, windows and scan
    protocol, and an attenuation of the body's activity that does not change
    between the scans -- it does as activity moves between organs, the known
    limit of this method.]

    Parameters
    ----------
    anterior, posterior : array_like
        Counts of the scan.
    acquisition_s : float
    reference_anterior, reference_posterior : array_like
        Counts of the first scan.
    reference_acquisition_s : float
    reference_activity_mbq : float
        Activity in the body at the first scan, MBq.

    Returns
    -------
    WholeBodyRetention

    Raises
    ------
    ImageDataError, TimingError, CalibrationError, ConjugateViewError
        Bad counts, durations or activity; views without counts.
    """
    t_s = _duration("acquisition_s", acquisition_s)
    t0_s = _duration("reference_acquisition_s", reference_acquisition_s)
    a0 = positive(CalibrationError, "reference_activity_mbq", reference_activity_mbq, "MBq")
    rate = _total_rate(anterior, posterior, t_s, "")
    rate0 = _total_rate(reference_anterior, reference_posterior, t0_s, "reference_")
    fraction = rate / rate0
    steps = (
        f"whole-body geometric-mean count rate {rate:.6g} cps vs {rate0:.6g} cps at the "
        f"reference scan: retention {fraction:.6g}",
        f"A = {fraction:.6g} x {a0:.6g} MBq = {fraction * a0:.6g} MBq (no attenuation "
        "correction; activity at the scan time)",
    )
    return WholeBodyRetention(fraction * a0, fraction, rate, rate0, steps)
