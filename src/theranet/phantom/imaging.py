"""Image formation for the digital patient: SPECT, planar, PET and CT.

The phantom gives the *true* activity concentration (MBq/mL) of one time point on
its native grid (e.g. 2.4 mm voxels, array order ``(Z, Y, X)``, axis-aligned
affine in LPS mm). The functions here turn it into what a scanner would give:

* :func:`simulate_spect` -- reconstructed quantitative SPECT, modelled in image
  space: 3-D Gaussian system resolution, activity-conserving rebinning onto the
  scanner grid, reconstructed counts proportional to activity and Poisson noise;
* :func:`simulate_planar` -- anterior/posterior whole-body views with exact
  parallel-hole attenuation, a 2-D Gaussian blur and Poisson noise;
* :func:`simulate_pet` -- PET in MBq/mL with a Gaussian noise of variance
  proportional to the mean;
* :func:`simulate_ct` -- CT in HU with white Gaussian noise;
* :func:`measure_recovery` -- recovery coefficients per region;
* :func:`linear_attenuation_map` -- mu (1/mm) from density and materials (NIST).

Every function is pure: inputs are never modified; noise comes from
``numpy.random.default_rng(seed)``, so the same seed gives the same arrays.

Model of reconstructed SPECT counts
-----------------------------------
An ideal quantitative reconstruction (attenuation, scatter and dead-time
corrected) gives, in each voxel, counts proportional to the activity it holds:
``N_voxel = A_voxel [MBq] * CF [cps/MBq] * T [s]``, so that the total
reconstructed counts are ``A_total * CF * T`` -- the definition of the SPECT
calibration factor CF of clinical.md §4.5 (``CF = sum R_recon / A``). The
calibrated image is ``C = N / (CF * T * V_voxel)`` in MBq/mL. Physical decay
during the frame is neglected (the activity image holds the mean activity over
the frame). Scatter, septal penetration, depth-dependent resolution and
reconstruction artefacts (Gibbs ringing) are not modelled.

Units: mm, MBq, mL; acquisition durations in seconds where named ``_s``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from scipy import ndimage

from theranet.image import Image, Labels, Quantity
from theranet.nuclides import parse_nuclide
from theranet.physics.materials import get_material, photon_attenuation

__all__ = [
    "CT_HU_RANGE",
    "DEFAULT_REGION_MATERIALS",
    "FWHM_TO_SIGMA",
    "PlanarResult",
    "ScannerModel",
    "SpectResult",
    "gaussian_blur",
    "linear_attenuation_map",
    "measure_recovery",
    "pet_model",
    "protocol_acquisition_s",
    "scanner_grid",
    "simulate_ct",
    "simulate_pet",
    "simulate_planar",
    "simulate_spect",
    "spect_model",
]

#: FWHM = 2 sqrt(2 ln 2) sigma; sigma = FWHM / 2.3548.
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


# ---------------------------------------------------------------------------
# scanner models
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScannerModel:
    """Imaging-system parameters for one nuclide / collimator / window.

    Parameters
    ----------
    name : str
        Short description, e.g. ``"Lu-177 ME 208 keV 20 %"``.
    modality : {"NM", "PT"}
        DICOM modality of the images produced.
    nuclide : str
        Canonical nuclide name (``"Lu-177"``).
    collimator : str
        ``"ME"``, ``"LEHR"``, ``"HE"``; ``""`` for PET.
    photopeaks_kev : tuple of float
        Photopeak energies acquired (window centres), keV; the first one is used
        for attenuation in :func:`simulate_planar`.
    window_percent : float
        Full width of each photopeak window, % of its centre.
    photon_yield : float
        Photons per decay in the acquisition window(s).
    fwhm_mm : float
        Reconstructed SPECT/PET system resolution (FWHM), mm, assumed
        spatially invariant.
    sensitivity_cps_per_mbq : float
        Tomographic calibration factor CF (reconstructed cps per MBq).
    planar_fwhm_mm : float
        Planar system resolution at about 10 cm from the collimator, mm,
        assumed depth-independent.
    planar_sensitivity_cps_per_mbq : float
        Planar sensitivity per view (source in air), cps/MBq.
    matrix : tuple of int
        In-plane reconstruction matrix (rows, columns).
    voxel_mm : float
        Reconstructed (cubic) voxel size, mm.
    n_projections : int
        Number of projection angles (SPECT; 0 for PET).
    s_per_projection : float
        Time per projection, s (SPECT), or frame duration per bed (PET).
    noise_amplification : float
        Variance of the reconstructed counts divided by their mean (1 = Poisson).
        OSEM with resolution recovery amplifies the voxel noise; values > 1 give
        that extra variance (see :func:`simulate_spect`).
    noise_level : float
        PET only: coefficient of variation of a voxel at the reference
        concentration (see :func:`simulate_pet`).
    sources : Mapping[str, str]
        Field name -> source, or the assumption made (``[UNCERTAIN]``).
    """

    name: str
    modality: str
    nuclide: str
    collimator: str
    photopeaks_kev: tuple[float, ...]
    window_percent: float
    photon_yield: float
    fwhm_mm: float
    sensitivity_cps_per_mbq: float
    planar_fwhm_mm: float = float("nan")
    planar_sensitivity_cps_per_mbq: float = float("nan")
    matrix: tuple[int, int] = (128, 128)
    voxel_mm: float = 4.8
    n_projections: int = 60
    s_per_projection: float = 30.0
    noise_amplification: float = 1.0
    noise_level: float = 0.0
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("fwhm_mm", "voxel_mm", "sensitivity_cps_per_mbq", "noise_amplification"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: must be finite and > 0, got {v!r}")
        if self.noise_level < 0:
            raise ValueError(f"noise_level: must be >= 0, got {self.noise_level!r}")
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

    @property
    def acquisition_s(self) -> float:
        """Default total acquisition time, s (projections x time per projection)."""
        n = self.n_projections if self.n_projections > 0 else 1
        return float(n * self.s_per_projection)

    @property
    def sigma_mm(self) -> float:
        """Gaussian sigma of the system resolution, mm."""
        return self.fwhm_mm * FWHM_TO_SIGMA


_SANTORO = "Santoro 2018, EJNMMI Res (doi 10.1186/s13550-018-0459-4); clinical.md §1.9"
_YIELDS = "clinical.md §1.1 (NNDC/ICRP-107 emission yields, not re-verified)"

#: 177Lu reference configuration: SPECT CF 5.7 cps/MBq, planar 6.1 cps/MBq [Santoro-2018].
_LU_CF = 5.7
_LU_PLANAR = 6.1
_LU_YIELD_208 = 0.104

# nuclide -> (collimator, photopeaks keV, window %, yield in window, efficiency
#             factor relative to 177Lu/ME/208 keV, SPECT FWHM mm, planar FWHM mm)
_SPECT_TABLE: dict[str, tuple[str, tuple[float, ...], float, float, float, float, float]] = {
    "Lu-177": ("ME", (208.4,), 20.0, 0.104, 1.0, 12.0, 10.0),
    "In-111": ("ME", (171.3, 245.4), 20.0, 0.906 + 0.941, 1.1, 12.0, 10.0),
    "I-123": ("LEHR", (159.0,), 20.0, 0.83, 1.7, 10.0, 7.5),
    "Tc-99m": ("LEHR", (140.5,), 20.0, 0.89, 1.7, 9.0, 7.4),
    "I-131": ("HE", (364.5,), 20.0, 0.817, 0.5, 15.0, 13.0),
    # 90Y bremsstrahlung: wide window (about 100-200 keV, here centred on 150 keV).
    "Y-90": ("HE", (150.0,), 67.0, 0.02, 1.0, 18.0, 15.0),
}


def spect_model(nuclide: str) -> ScannerModel:
    """Default SPECT/planar model of a gamma-camera nuclide.

    Parameters
    ----------
    nuclide : str
        ``"Lu-177"``, ``"In-111"``, ``"I-123"``, ``"I-131"``, ``"Tc-99m"`` or
        ``"Y-90"`` (bremsstrahlung); any spelling :func:`parse_nuclide` accepts.

    Returns
    -------
    ScannerModel

    Notes
    -----
    Defaults and where they come from (``sources`` of the returned model):

    * Sensitivity: 177Lu, ME collimator, 208 keV 20 % window: SPECT CF
      5.7 cps/MBq and planar 6.1 cps/MBq for one system [Santoro-2018]
      (system-specific; clinical.md §1.9). Other nuclides [UNCERTAIN, assumption]:
      ``CF = 5.7 * (yield_in_window / 0.104) * eff``, where ``eff`` is a
      collimator x crystal efficiency factor relative to the 177Lu ME 208 keV
      configuration: ME/In-111 1.1, LEHR (I-123, Tc-99m) 1.7 (ratio of typical
      vendor nominal per-photon sensitivities, LEHR at 140 keV vs ME at 208 keV),
      HE/I-131 0.5 (thicker septa and lower NaI photopeak efficiency at 364 keV),
      90Y bremsstrahlung 1.0 with an effective 0.02 photons/decay in the window
      (order of magnitude only). Planar sensitivity = SPECT CF x 6.1/5.7.
    * Resolution (reconstructed FWHM at a typical ~20 cm orbit) [UNCERTAIN:
      typical values, not verified against a primary source]: 177Lu ME 12 mm,
      111In ME 12 mm, 123I LEHR 10 mm, 99mTc LEHR 9 mm, 131I HE 15 mm, 90Y
      bremsstrahlung 18 mm (range 15-20 mm). Planar FWHM at 10 cm: 10, 10,
      7.5, 7.4, 13 and 15 mm [UNCERTAIN].
    * Matrix 128 x 128, 4.8 mm voxels; 60 projections x 30 s = 1800 s
      [assumption: a common clinical 177Lu protocol; MIRD-26 leaves it to the
      site]. See :func:`protocol_acquisition_s` for later time points.
    * Noise amplification 1.0 (pure Poisson on reconstructed counts) [assumption;
      OSEM with resolution recovery is noisier: raise it to model that].
    """
    nuc = parse_nuclide(nuclide)
    if nuc not in _SPECT_TABLE:
        raise ValueError(f"nuclide: no SPECT model for {nuc!r}; known: {sorted(_SPECT_TABLE)}")
    coll, peaks, width, yld, eff, fwhm, planar_fwhm = _SPECT_TABLE[nuc]
    cf = _LU_CF * (yld / _LU_YIELD_208) * eff
    planar = cf * _LU_PLANAR / _LU_CF
    if nuc == "Lu-177":
        sens_src = f"{_SANTORO}: SPECT 5.7 cps/MBq (system-specific)"
        planar_src = f"{_SANTORO}: planar 6.1 cps/MBq"
    else:
        sens_src = (
            f"[UNCERTAIN] assumption: 5.7 cps/MBq x ({yld:.3g}/0.104 photons per decay "
            f"in window) x {eff} efficiency factor ({coll} vs 177Lu ME 208 keV)"
        )
        planar_src = "[UNCERTAIN] assumption: SPECT CF x 6.1/5.7 (ratio of the 177Lu system)"
    sources = {
        "sensitivity_cps_per_mbq": sens_src,
        "planar_sensitivity_cps_per_mbq": planar_src,
        "photon_yield": _YIELDS if nuc != "Y-90" else "[UNCERTAIN] bremsstrahlung estimate",
        "fwhm_mm": f"[UNCERTAIN] typical reconstructed {coll} resolution (assumption)",
        "planar_fwhm_mm": f"[UNCERTAIN] typical {coll} planar resolution at 10 cm",
        "matrix": "assumption: 128 x 128 clinical SPECT matrix",
        "voxel_mm": "assumption: 4.8 mm clinical SPECT voxel",
        "n_projections": "assumption: 60 projections x 30 s (common 177Lu protocol)",
        "s_per_projection": "assumption: 30 s per projection",
        "window_percent": "clinical.md §1.9 (20 % photopeak window)",
        "noise_amplification": "assumption: 1 = Poisson on reconstructed counts",
    }
    return ScannerModel(
        name=f"{nuc} {coll} {'/'.join(f'{p:g}' for p in peaks)} keV {width:g} %",
        modality="NM",
        nuclide=nuc,
        collimator=coll,
        photopeaks_kev=peaks,
        window_percent=width,
        photon_yield=yld,
        fwhm_mm=fwhm,
        sensitivity_cps_per_mbq=cf,
        planar_fwhm_mm=planar_fwhm,
        planar_sensitivity_cps_per_mbq=planar,
        sources=sources,
    )


_PET_TABLE = {"F-18": 5.5, "Ga-68": 6.5, "Cu-64": 5.5}


def pet_model(nuclide: str) -> ScannerModel:
    """Default PET model (``"F-18"``, ``"Ga-68"``, ``"Cu-64"``).

    Notes
    -----
    [UNCERTAIN, assumptions] Reconstructed FWHM 5.5 mm for 18F/64Cu (typical of
    an EARL-harmonised OSEM reconstruction), 6.5 mm for 68Ga (longer positron
    range); 4 mm voxels; noise level 0.10 = 10 % voxel coefficient of variation
    at the mean body concentration (see :func:`simulate_pet`); 3 min per bed.
    The sensitivity field is unused by :func:`simulate_pet` (PET is calibrated
    in MBq/mL by the scanner) and set to 1.
    """
    nuc = parse_nuclide(nuclide)
    if nuc not in _PET_TABLE:
        raise ValueError(f"nuclide: no PET model for {nuc!r}; known: {sorted(_PET_TABLE)}")
    return ScannerModel(
        name=f"{nuc} PET",
        modality="PT",
        nuclide=nuc,
        collimator="",
        photopeaks_kev=(511.0,),
        window_percent=0.0,
        photon_yield=float("nan"),
        fwhm_mm=_PET_TABLE[nuc],
        sensitivity_cps_per_mbq=1.0,
        matrix=(0, 0),
        voxel_mm=4.0,
        n_projections=0,
        s_per_projection=180.0,
        noise_level=0.10,
        sources={
            "fwhm_mm": "[UNCERTAIN] typical reconstructed PET resolution (assumption)",
            "voxel_mm": "assumption: 4 mm PET voxel",
            "noise_level": "[UNCERTAIN] assumption: 10 % voxel CV at mean body concentration",
        },
    )


def protocol_acquisition_s(model: ScannerModel, hours_after_injection: float) -> float:
    """Acquisition time of a time point, s, lengthened at late time points.

    ``model.acquisition_s`` (1800 s for 60 x 30 s) up to 48 h, x 4/3 up to
    120 h, x 5/3 after [assumption: clinics lengthen the time per projection
    as the activity decays, e.g. 30 -> 40 -> 50 s; not a published rule].
    """
    if not (math.isfinite(hours_after_injection) and hours_after_injection >= 0):
        raise ValueError(f"hours_after_injection: must be >= 0, got {hours_after_injection!r}")
    base = model.acquisition_s
    if hours_after_injection <= 48.0:
        return base
    if hours_after_injection <= 120.0:
        return base * 4.0 / 3.0
    return base * 5.0 / 3.0


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _as_concentration(activity: Image) -> Image:
    if activity.quantity is Quantity.ACTIVITY_CONCENTRATION:
        return activity
    if activity.quantity is Quantity.ACTIVITY:
        return activity._derive(
            np.asarray(activity.data, dtype=np.float64) / activity.voxel_volume_ml,
            "activity (MBq/voxel) -> activity concentration (MBq/mL)",
            quantity=Quantity.ACTIVITY_CONCENTRATION,
        )
    raise ValueError(
        f"activity.quantity: must be ACTIVITY_CONCENTRATION (MBq/mL) or ACTIVITY, "
        f"got {activity.quantity}"
    )


def gaussian_blur(image: Image, fwhm_mm: float) -> Image:
    """3-D Gaussian blur of an image with the same FWHM (mm) along every axis.

    ``scipy.ndimage.gaussian_filter`` with ``sigma = FWHM / 2.3548 / spacing``
    per axis and ``mode="constant"`` (zero outside the volume: activity blurred
    out of the volume is lost). Works in float32, returns float32.
    """
    if not (math.isfinite(fwhm_mm) and fwhm_mm >= 0):
        raise ValueError(f"fwhm_mm: must be finite and >= 0, got {fwhm_mm!r}")
    data = np.asarray(image.data, dtype=np.float32)
    if fwhm_mm > 0:
        sigma = fwhm_mm * FWHM_TO_SIGMA / image.spacing_mm
        data = ndimage.gaussian_filter(data, sigma=sigma, mode="constant", cval=0.0)
    else:
        data = data.copy()
    return image._derive(data, f"gaussian blur FWHM {fwhm_mm:g} mm")


def scanner_grid(
    image: Image,
    voxel_mm: float,
    matrix: tuple[int, int] | None = None,
) -> Image:
    """A reference grid (zeros) of ``voxel_mm`` cubic voxels for ``image``.

    Axis directions are those of ``image`` (array order ``(Z, Y, X)`` assumed).
    In-plane (axes 1, 2): ``matrix`` voxels (default: enough to cover the
    native extent) centred on the bounding box of the positive voxels (the
    body/activity; the volume centre if none). Axis 0: enough slices to cover
    the native extent, centred on it.
    """
    spacing = image.spacing_mm
    direction = image.affine[:3, :3] / spacing
    extent = np.asarray(image.shape) * spacing
    n0 = math.ceil(extent[0] / voxel_mm - 1e-9)
    if matrix is None or matrix[0] <= 0:
        matrix = tuple(math.ceil(e / voxel_mm - 1e-9) for e in extent[1:])  # type: ignore[assignment]
    shape = (n0, int(matrix[0]), int(matrix[1]))
    centre = (np.asarray(image.shape, dtype=np.float64) - 1.0) / 2.0
    positive = np.asarray(image.data) > 0
    for axis in (1, 2):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(positive.any(axis=other))
        if hit.size:
            centre[axis] = (hit[0] + hit[-1]) / 2.0
    centre_lps = image.index_to_lps(centre)
    rot = direction * voxel_mm
    affine = np.eye(4)
    affine[:3, :3] = rot
    affine[:3, 3] = centre_lps - rot @ ((np.asarray(shape, dtype=np.float64) - 1.0) / 2.0)
    data = np.broadcast_to(np.float32(0.0), shape)
    return Image(data, affine, Quantity.ACTIVITY_CONCENTRATION)


def _seconds_to_timing(image: Image, acquisition_s: float):
    return dataclasses.replace(image.timing, frame_duration_h=acquisition_s / 3600.0)


# ---------------------------------------------------------------------------
# SPECT
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SpectResult:
    """Output of :func:`simulate_spect`.

    Attributes
    ----------
    counts : Image
        Reconstructed counts per voxel (``Quantity.COUNTS``), frame duration in
        ``timing.frame_duration_h``.
    activity_concentration : Image
        Calibrated image ``counts / (CF * T * V_voxel)``, MBq/mL.
    expected : Image
        Noise-free calibrated image (the mean of ``activity_concentration``), MBq/mL.
    calibration_cps_per_mbq : float
        CF used.
    acquisition_s : float
        Acquisition time T, s.
    model : ScannerModel
    """

    counts: Image
    activity_concentration: Image
    expected: Image
    calibration_cps_per_mbq: float
    acquisition_s: float
    model: ScannerModel


def _noisy_counts(mean: np.ndarray, rng: np.random.Generator, amplification: float) -> np.ndarray:
    """Poisson counts; with amplification k, ``k * Poisson(mean / k)``.

    Mean unchanged, variance ``k * mean``; values are multiples of k.
    """
    mean = np.clip(mean, 0.0, None)
    if amplification == 1.0:
        return rng.poisson(mean).astype(np.float64)
    return amplification * rng.poisson(mean / amplification).astype(np.float64)


def simulate_spect(
    activity: Image,
    model: ScannerModel,
    *,
    acquisition_s: float | None = None,
    seed: int | None,
    grid: Image | None = None,
    noise: bool = True,
) -> SpectResult:
    """Quantitative SPECT of a true activity-concentration image.

    Parameters
    ----------
    activity : Image
        True activity concentration, MBq/mL (or activity, MBq per voxel), on the
        phantom's native grid (array order ``(Z, Y, X)``).
    model : ScannerModel
        e.g. ``spect_model("Lu-177")``.
    acquisition_s : float, optional
        Acquisition time T, s; default ``model.acquisition_s``.
    seed : int or None
        Seed of ``numpy.random.default_rng``.
    grid : Image, optional
        Reconstruction grid (only its shape and affine are used); default
        :func:`scanner_grid` with ``model.voxel_mm`` and ``model.matrix``
        (128 x 128 x N, 4.8 mm, centred on the activity in-plane).
    noise : bool
        False gives the noise-free expectation.

    Returns
    -------
    SpectResult

    Notes
    -----
    1. Blur at native resolution: :func:`gaussian_blur` with ``model.fwhm_mm``.
    2. Rebin onto the grid with ``Image.resample_to(grid, method="conserve")``
       (activity-conserving).
    3. Expected reconstructed counts per voxel ``A [MBq] * CF * T`` (total
       counts = total activity x CF x T; see the module notes).
    4. Noise: Poisson, or ``k * Poisson(mean / k)`` with
       ``k = model.noise_amplification`` (same mean, variance ``k`` x mean) as a
       crude stand-in for OSEM noise amplification. Noise is independent
       between voxels (real OSEM noise is spatially correlated).
    5. Calibrated image ``C = N / (CF * T * V)``, MBq/mL.
    """
    t_s = model.acquisition_s if acquisition_s is None else float(acquisition_s)
    if not (math.isfinite(t_s) and t_s > 0):
        raise ValueError(f"acquisition_s: must be finite and > 0, got {t_s!r}")
    conc = _as_concentration(activity)
    blurred = gaussian_blur(conc, model.fwhm_mm)
    if grid is None:
        grid = scanner_grid(conc, model.voxel_mm, model.matrix)
    on_grid = blurred.resample_to(grid, method="conserve")
    cf = model.sensitivity_cps_per_mbq
    v_ml = on_grid.voxel_volume_ml
    scale = cf * t_s * v_ml  # counts per (MBq/mL)
    mean_counts = np.clip(np.asarray(on_grid.data, dtype=np.float64), 0.0, None) * scale
    if noise:
        rng = np.random.default_rng(seed)
        counts = _noisy_counts(mean_counts, rng, model.noise_amplification)
        noise_step = f"Poisson noise (seed {seed}, amplification {model.noise_amplification:g})"
    else:
        counts = mean_counts
        noise_step = "no noise"
    timing = _seconds_to_timing(conc, t_s)
    common = dict(
        modality="NM",
        nuclide=conc.nuclide or model.nuclide,
        timing=timing,
        corrections=frozenset({"ATTN", "SCAT"}),
    )
    counts_img = on_grid._derive(
        counts.astype(np.float32),
        f"SPECT ({model.name}): FWHM {model.fwhm_mm:g} mm, CF {cf:.4g} cps/MBq, "
        f"T {t_s:g} s, {noise_step}",
        quantity=Quantity.COUNTS,
        **common,
    )
    conc_img = counts_img._derive(
        (counts / scale).astype(np.float32),
        f"calibrated: counts / (CF {cf:.4g} cps/MBq x T {t_s:g} s x V {v_ml:.4g} mL)",
        quantity=Quantity.ACTIVITY_CONCENTRATION,
        calibration_cps_per_mbq=cf,
    )
    expected_img = conc_img._derive(
        (mean_counts / scale).astype(np.float32), "noise-free expectation"
    )
    return SpectResult(counts_img, conc_img, expected_img, cf, t_s, model)


# ---------------------------------------------------------------------------
# recovery
# ---------------------------------------------------------------------------


def measure_recovery(
    true: Image,
    measured: Image,
    labels: Labels,
    *,
    on: str = "labels",
) -> dict[str, float]:
    """Recovery coefficient per region: mean measured / mean true concentration.

    Parameters
    ----------
    true, measured : Image
        Activity concentration images (MBq/mL), any grids.
    labels : Labels
        Regions; every present named region gets an RC.
    on : {"labels", "measured"}
        Common grid: ``"labels"`` brings ``true`` and ``measured`` onto the
        label grid (activity-conserving resampling, i.e. trilinear sampling of
        the coarse measured image); ``"measured"`` brings the labels (nearest
        neighbour) and ``true`` (conserving) onto the measured grid, as a VOI
        drawn on CT and transferred to SPECT.

    Returns
    -------
    dict
        Region name -> RC (NaN where the true mean is zero).
    """
    if on == "labels":
        ref = labels.image
        lab = labels
    elif on == "measured":
        ref = measured
        lab = labels if labels.image.same_grid(measured) else labels.resample_to(measured)
    else:
        raise ValueError(f"on: {on!r}; use 'labels' or 'measured'")
    t_img = _as_concentration(true)
    m_img = _as_concentration(measured)
    t = t_img if t_img.same_grid(ref) else t_img.resample_to(ref, method="conserve")
    m = m_img if m_img.same_grid(ref) else m_img.resample_to(ref, method="conserve")
    lab_data = np.asarray(lab.image.data).ravel().astype(np.int64)
    n = int(lab_data.max(initial=0)) + 1
    count = np.bincount(lab_data, minlength=n)
    t_sum = np.bincount(lab_data, weights=np.asarray(t.data, np.float64).ravel(), minlength=n)
    m_sum = np.bincount(lab_data, weights=np.asarray(m.data, np.float64).ravel(), minlength=n)
    out: dict[str, float] = {}
    for value, name in lab.names.items():
        if value >= n or count[value] == 0:
            continue
        out[name] = float(m_sum[value] / t_sum[value]) if t_sum[value] != 0 else float("nan")
    return out


# ---------------------------------------------------------------------------
# attenuation and planar imaging
# ---------------------------------------------------------------------------

#: Phantom region name -> material for :func:`linear_attenuation_map`; regions
#: not listed (and lesions) are ``soft_tissue``; label 0 is ``air``. Red marrow
#: (spongiosa) is taken as soft tissue with its own density [assumption: mu/rho
#: of bone and soft tissue differ by < 5 % at 100-400 keV, Compton-dominated].
DEFAULT_REGION_MATERIALS: Mapping[str, str] = MappingProxyType(
    {
        "lungs": "lung",
        "subcutaneous_fat": "adipose",
        "cortical_bone": "bone",
    }
)


def linear_attenuation_map(
    density_g_per_cm3: np.ndarray,
    material_map: np.ndarray | Labels,
    energy_mev: float,
    *,
    materials: Mapping[int, str] | None = None,
    default_material: str = "soft_tissue",
) -> np.ndarray:
    """Linear attenuation coefficient mu (1/mm) per voxel.

    ``mu = (mu/rho)(material, E) [cm^2/g] * rho [g/cm^3] / 10`` with the NIST
    (Hubbell & Seltzer) mass attenuation coefficients of
    :func:`theranet.physics.photon_attenuation` (coherent scattering included).

    Parameters
    ----------
    density_g_per_cm3 : ndarray
        Density per voxel; voxels with density <= 0 get mu = 0.
    material_map : ndarray of int or Labels
        Integer material/region value per voxel, same shape as the density.
    energy_mev : float
        Photon energy, MeV (e.g. 0.2084 for 177Lu).
    materials : Mapping[int, str], optional
        Value -> material name (``water``, ``soft_tissue``, ``bone``, ``lung``,
        ``adipose``, ``air``). Default: for a :class:`Labels`, its region names
        through :data:`DEFAULT_REGION_MATERIALS`; otherwise every value is
        ``default_material``. Value 0 defaults to ``air``.
    default_material : str
        Material of values not in ``materials``.

    Returns
    -------
    ndarray of float64, 1/mm
    """
    density = np.asarray(density_g_per_cm3, dtype=np.float64)
    if isinstance(material_map, Labels):
        values = np.asarray(material_map.image.data)
        if materials is None:
            materials = {
                v: DEFAULT_REGION_MATERIALS.get(n, default_material)
                for v, n in material_map.names.items()
            }
    else:
        values = np.asarray(material_map)
    if values.shape != density.shape:
        raise ValueError(f"material_map: shape {values.shape} differs from density {density.shape}")
    if values.dtype.kind not in "biu":
        raise ValueError(f"material_map: must hold integers, got {values.dtype}")
    mapping = {0: "air", **dict(materials or {})}
    uniq = np.unique(values)
    mu_over_rho = np.empty(uniq.size, dtype=np.float64)
    for i, v in enumerate(uniq):
        mat = get_material(mapping.get(int(v), default_material)).name
        mu_over_rho[i] = float(photon_attenuation(mat).mu_over_rho(energy_mev))
    lookup = mu_over_rho[np.searchsorted(uniq, values)]
    return np.where(density > 0, lookup * density / 10.0, 0.0)


@dataclass(frozen=True, eq=False)
class PlanarResult:
    """Output of :func:`simulate_planar`.

    Views are 2-D arrays indexed by the two array axes other than the
    anterior-posterior one (``(Z, X)`` for a ``(Z, Y, X)`` volume), with row and
    column pixel sizes ``pixel_mm``.

    Attributes
    ----------
    anterior, posterior : ndarray of float64
        Counts (integer-valued when noisy). ``posterior`` is already flipped
        left-right into the anterior orientation: pixel ``[i, j]`` of both views
        looks along the same ray, as the conjugate-view geometric mean
        ``sqrt(ANT * flip(POST))`` requires (clinical.md §4.3). The view as the
        posterior detector records it is :attr:`posterior_as_acquired`.
    expected_anterior, expected_posterior : ndarray of float64
        Noise-free counts.
    transmission : ndarray of float64
        ``exp(-integral of mu dy)`` through the whole volume along each ray
        (no blur), for conjugate-view quantification.
    pixel_mm : tuple of float
        Pixel size (rows, columns), mm (the native voxel size).
    sensitivity_cps_per_mbq : float
        Planar sensitivity used.
    acquisition_s : float
    ap_axis : int
        Array axis of the projection (the LPS y axis of the volume).
    """

    anterior: np.ndarray
    posterior: np.ndarray
    expected_anterior: np.ndarray
    expected_posterior: np.ndarray
    transmission: np.ndarray
    pixel_mm: tuple[float, float]
    sensitivity_cps_per_mbq: float
    acquisition_s: float
    ap_axis: int

    @property
    def posterior_as_acquired(self) -> np.ndarray:
        """The posterior view as the posterior detector sees it (left-right flipped)."""
        return np.flip(self.posterior, axis=1)

    @property
    def geometric_mean(self) -> np.ndarray:
        """Pixel-wise ``sqrt(ANT * POST)`` (posterior in anterior orientation)."""
        return np.sqrt(self.anterior * self.posterior)


def simulate_planar(
    activity: Image,
    mu_per_mm: np.ndarray,
    model: ScannerModel,
    *,
    acquisition_s: float,
    seed: int | None,
    noise: bool = True,
) -> PlanarResult:
    """Anterior and posterior planar views (parallel-hole, no scatter).

    Parameters
    ----------
    activity : Image
        True activity concentration (MBq/mL) or activity (MBq/voxel).
    mu_per_mm : ndarray
        Linear attenuation coefficient on the same grid, 1/mm
        (:func:`linear_attenuation_map`).
    model : ScannerModel
        Gives ``planar_fwhm_mm`` and ``planar_sensitivity_cps_per_mbq``.
    acquisition_s : float
        Acquisition time of each view, s (whole-body: the time a point spends
        under the detector).
    seed : int or None
    noise : bool
        False gives the expectation.

    Returns
    -------
    PlanarResult

    Notes
    -----
    The projection runs along the array axis of LPS y; the anterior detector
    faces the patient's front (decreasing y), the posterior one the back. A
    voxel at the centre of cell ``k`` sees the attenuation of the cells between
    it and the surface plus half its own cell:
    ``L_A = dy * (sum_{j<=k} mu_j - mu_k / 2)``, ``L_P`` likewise towards the
    back, so ``L_A + L_P = dy * sum_j mu_j`` exactly (the parallel-hole
    conjugate-view geometry). Expected counts
    ``S * T * sum_k A_k exp(-L)``, then a 2-D Gaussian blur with
    ``model.planar_fwhm_mm`` (``mode="constant"``), then Poisson noise.
    """
    if not (math.isfinite(acquisition_s) and acquisition_s > 0):
        raise ValueError(f"acquisition_s: must be finite and > 0, got {acquisition_s!r}")
    conc = _as_concentration(activity)
    mu = np.asarray(mu_per_mm, dtype=np.float64)
    if mu.shape != conc.shape:
        raise ValueError(f"mu_per_mm: shape {mu.shape} differs from activity {conc.shape}")
    if not math.isfinite(model.planar_sensitivity_cps_per_mbq):
        raise ValueError("model: no planar sensitivity (use a SPECT model)")
    ap_axis = int(np.argmax(np.abs(conc.affine[1, :3])))
    spacing = conc.spacing_mm
    dy = float(spacing[ap_axis])
    a_mbq = np.asarray(conc.data, dtype=np.float64) * conc.voxel_volume_ml
    # orient so that index 0 along the AP axis is the most anterior cell
    increasing_y = conc.affine[1, ap_axis] > 0
    if not increasing_y:
        a_mbq = np.flip(a_mbq, axis=ap_axis)
        mu = np.flip(mu, axis=ap_axis)
    cum = np.cumsum(mu, axis=ap_axis)
    total = np.take(cum, [-1], axis=ap_axis)
    l_ant = dy * (cum - 0.5 * mu)
    l_post = dy * (total - cum + 0.5 * mu)
    st = model.planar_sensitivity_cps_per_mbq * acquisition_s
    ant = st * np.sum(a_mbq * np.exp(-l_ant), axis=ap_axis)
    post = st * np.sum(a_mbq * np.exp(-l_post), axis=ap_axis)
    transmission = np.exp(-dy * np.squeeze(total, axis=ap_axis))
    other = [a for a in range(3) if a != ap_axis]
    pixel = (float(spacing[other[0]]), float(spacing[other[1]]))
    sigma = [model.planar_fwhm_mm * FWHM_TO_SIGMA / p for p in pixel]
    ant = ndimage.gaussian_filter(ant, sigma=sigma, mode="constant", cval=0.0)
    post = ndimage.gaussian_filter(post, sigma=sigma, mode="constant", cval=0.0)
    ant = np.clip(ant, 0.0, None)
    post = np.clip(post, 0.0, None)
    if noise:
        rng = np.random.default_rng(seed)
        ant_n = rng.poisson(ant).astype(np.float64)
        post_n = rng.poisson(post).astype(np.float64)
    else:
        ant_n, post_n = ant.copy(), post.copy()
    return PlanarResult(
        anterior=ant_n,
        posterior=post_n,
        expected_anterior=ant,
        expected_posterior=post,
        transmission=transmission,
        pixel_mm=pixel,
        sensitivity_cps_per_mbq=model.planar_sensitivity_cps_per_mbq,
        acquisition_s=float(acquisition_s),
        ap_axis=ap_axis,
    )


# ---------------------------------------------------------------------------
# PET and CT
# ---------------------------------------------------------------------------


def simulate_pet(
    activity: Image,
    *,
    fwhm_mm: float = 5.5,
    voxel_mm: float = 4.0,
    seed: int | None,
    noise_level: float = 0.10,
    reference_mbq_per_ml: float | None = None,
    grid: Image | None = None,
    nuclide: str | None = None,
) -> Image:
    """PET image (MBq/mL) of a true activity-concentration image.

    Parameters
    ----------
    activity : Image
        True activity concentration (MBq/mL) on the native grid.
    fwhm_mm : float
        Reconstructed resolution, mm (see :func:`pet_model` for defaults).
    voxel_mm : float
        Cubic voxel size of the PET grid, mm.
    seed : int or None
    noise_level : float
        Coefficient of variation of a voxel whose mean is the reference
        concentration; 0 gives the noise-free image.
    reference_mbq_per_ml : float, optional
        Reference concentration; default the mean true concentration over the
        voxels with positive activity (the body).
    grid : Image, optional
        Target grid; default :func:`scanner_grid` (covers the native volume).
    nuclide : str, optional
        Recorded on the image (default: that of ``activity``).

    Returns
    -------
    Image
        ``Quantity.ACTIVITY_CONCENTRATION``, modality ``"PT"``.

    Notes
    -----
    Blur and activity-conserving rebinning as :func:`simulate_spect`; then
    ``C = mu + sqrt(g * mu) * z`` with ``z ~ N(0, 1)`` independent per voxel and
    ``g = noise_level^2 * C_ref``: the variance is proportional to the mean, as
    for counts (``var/mean = g``), and a voxel at ``C_ref`` has CV
    ``noise_level``. Negative values are kept (an unbiased reconstruction has
    them in cold regions). White noise is an assumption: reconstructed PET
    noise is spatially correlated.
    """
    if not (math.isfinite(noise_level) and noise_level >= 0):
        raise ValueError(f"noise_level: must be >= 0, got {noise_level!r}")
    conc = _as_concentration(activity)
    blurred = gaussian_blur(conc, fwhm_mm)
    if grid is None:
        grid = scanner_grid(conc, voxel_mm)
    mean = np.clip(
        np.asarray(blurred.resample_to(grid, method="conserve").data, dtype=np.float64), 0.0, None
    )
    if reference_mbq_per_ml is None:
        src = np.asarray(conc.data)
        pos = src > 0
        reference_mbq_per_ml = float(src[pos].mean()) if pos.any() else 0.0
    g = noise_level**2 * reference_mbq_per_ml
    if g > 0:
        rng = np.random.default_rng(seed)
        data = mean + np.sqrt(g * mean) * rng.standard_normal(mean.shape)
        step = f"Gaussian noise var = {g:.4g} x mean (CV {noise_level:g} at C_ref, seed {seed})"
    else:
        data = mean
        step = "no noise"
    out = Image(
        data.astype(np.float32),
        grid.affine,
        Quantity.ACTIVITY_CONCENTRATION,
        modality="PT",
        nuclide=nuclide or conc.nuclide,
        tracer=conc.tracer,
        timing=conc.timing,
        patient=conc.patient,
        provenance=conc.provenance,
        corrections=frozenset({"ATTN", "SCAT", "DECY"}),
    )
    return out._derive(out.data, f"PET: FWHM {fwhm_mm:g} mm, {voxel_mm:g} mm voxels, {step}")


#: CT HU range stored (12-bit CT: -1024 .. 3071).
CT_HU_RANGE = (-1024, 3071)


def simulate_ct(
    hu: np.ndarray | Image,
    *,
    noise_sd_hu: float = 10.0,
    seed: int | None,
    affine: np.ndarray | None = None,
) -> Image:
    """CT image in HU with white Gaussian noise, rounded to int16.

    Parameters
    ----------
    hu : ndarray or Image
        Noise-free HU values (e.g. from the phantom's materials).
    noise_sd_hu : float
        Noise standard deviation, HU. Default 10 HU [assumption, UNCERTAIN:
        typical of a diagnostic-dose abdominal CT in water-equivalent tissue;
        the low-dose CT of SPECT/CT is noisier, about 20-30 HU].
    seed : int or None
    affine : ndarray, optional
        For an ndarray input; default ``hu.affine`` or the identity (1 mm voxels).

    Returns
    -------
    Image
        ``Quantity.HU``, modality ``"CT"``, int16 data clipped to
        :data:`CT_HU_RANGE`. The noise is white (real CT noise is correlated).
    """
    if not (math.isfinite(noise_sd_hu) and noise_sd_hu >= 0):
        raise ValueError(f"noise_sd_hu: must be >= 0, got {noise_sd_hu!r}")
    if isinstance(hu, Image):
        if hu.quantity is not Quantity.HU:
            raise ValueError(f"hu.quantity: must be HU, got {hu.quantity}")
        base = hu
    else:
        base = Image(
            np.asarray(hu, dtype=np.float64),
            np.eye(4) if affine is None else affine,
            Quantity.HU,
            modality="CT",
        )
    values = np.asarray(base.data, dtype=np.float64)
    if noise_sd_hu > 0:
        rng = np.random.default_rng(seed)
        values = values + noise_sd_hu * rng.standard_normal(values.shape)
    data = np.clip(np.rint(values), *CT_HU_RANGE).astype(np.int16)
    return base._derive(
        data, f"CT: Gaussian noise SD {noise_sd_hu:g} HU (seed {seed}), int16", modality="CT"
    )
