"""What a cycle report shows: plain data, filled by the pipeline, read by the writers.

The writers (:mod:`theranet.report.html`, :mod:`theranet.report.pdf`) and the
figures (:mod:`theranet.report.figures`) only read these objects; they never
open files or recompute physics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from theranet.image import Image, Labels

__all__ = ["CurveData", "CycleReport", "DoseRow", "RegistrationRow"]


@dataclass(frozen=True)
class DoseRow:
    """One region of the dose table.

    Attributes
    ----------
    region : str
    kind : str
        ``"organ"``, ``"lesion"`` or ``"marrow"``.
    volume_ml, mass_g : float
    tia_mbq_h, tia_sd_mbq_h : float
        Time-integrated activity and its SD, MBq h.
    mean_dose_gy, dose_sd_gy : float
        Mean absorbed dose and its SD, Gy.
    dose_per_gbq_gy : float
        Mean dose per administered GBq, Gy/GBq.
    model : str
        Kinetic model or integration method.
    method : str
        How the dose was obtained (e.g. ``"voxel S-value convolution"``,
        ``"blood-based (EANM 2010)"``).
    bed_gy, eqd2_gy : float
        Biologically effective dose and EQD2, Gy (NaN where not computed).
    """

    region: str
    kind: str
    volume_ml: float
    mass_g: float
    tia_mbq_h: float
    tia_sd_mbq_h: float
    mean_dose_gy: float
    dose_sd_gy: float
    dose_per_gbq_gy: float
    model: str
    method: str = ""
    bed_gy: float = float("nan")
    eqd2_gy: float = float("nan")


@dataclass(frozen=True)
class CurveData:
    """A region's time-activity data and its fitted curve.

    Attributes
    ----------
    region : str
    times_h : ndarray, shape (N,)
        Hours after injection of the measurements.
    activity_mbq : ndarray, shape (N,)
        Measured (partial-volume corrected) activity, MBq.
    activity_sd_mbq : ndarray, shape (N,)
        Its SD, MBq (NaN where unknown).
    fit_times_h : ndarray, shape (M,)
        Times at which the fitted curve is sampled, h (from 0 to beyond the last
        point).
    fit_activity_mbq : ndarray, shape (M,)
        The fitted curve at ``fit_times_h``, MBq.
    fitted_at_points_mbq : ndarray, shape (N,)
        The fitted curve at ``times_h`` (for the residuals), MBq.
    model : str
    """

    region: str
    times_h: np.ndarray
    activity_mbq: np.ndarray
    activity_sd_mbq: np.ndarray
    fit_times_h: np.ndarray
    fit_activity_mbq: np.ndarray
    fitted_at_points_mbq: np.ndarray
    model: str


@dataclass(frozen=True)
class RegistrationRow:
    """Quality of the registration of one time point to the reference.

    Attributes
    ----------
    time_point : str
    hours_after_injection : float
    method : str
        e.g. ``"reference"``, ``"rigid"``, ``"rigid + bspline"``, ``"none"``.
    translation_mm : tuple of float
        Rigid translation found (x, y, z), mm.
    rotation_deg : tuple of float
        Rigid rotation angles found, degrees.
    metric_before, metric_after : float
        The similarity metric before and after (e.g. CT normalised
        cross-correlation, 1 = identical).
    """

    time_point: str
    hours_after_injection: float
    method: str
    translation_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    metric_before: float = float("nan")
    metric_after: float = float("nan")


@dataclass(frozen=True, eq=False)
class CycleReport:
    """Everything a therapy-cycle dosimetry report shows.

    Attributes
    ----------
    title : str
    patient : str
        Pseudonym only; never a name or an identifier from the headers.
    tracer, nuclide : str
    administered_activity_mbq : float
    injection : str
        ISO 8601 date-time of the administration.
    times_h : tuple of float
        Hours after injection of the time points.
    doses : sequence of DoseRow
    curves : sequence of CurveData
    dose : Image
        Absorbed dose map, Gy, on the reference grid.
    activity : Image
        An activity-concentration image on the same grid as ``dose`` (e.g. the
        first SPECT time point resampled), MBq/mL, for the overlay.
    labels : Labels
        Regions on the same grid.
    dvh : mapping of str to tuple of (ndarray, ndarray)
        Region -> (dose_gy, volume_fraction) cumulative DVH.
    methods : sequence of (str, str)
        (step, choice and reason) in order, e.g. ("partial-volume correction",
        "geometric transfer matrix, FWHM 12 mm").
    versions : mapping of str to str
        Software and data versions (theranet, numpy, pydicom, decay data...).
    registration : sequence of RegistrationRow
    warnings : sequence of str
        Everything the reader must know before signing.
    tables : sequence of (str, sequence of str, sequence of sequence of str)
        Further tables (title, column headers, rows of formatted cells) shown
        after the dose table, e.g. the cumulative doses over cycles.
    """

    title: str
    patient: str
    tracer: str
    nuclide: str
    administered_activity_mbq: float
    injection: str
    times_h: tuple[float, ...]
    doses: Sequence[DoseRow]
    curves: Sequence[CurveData]
    dose: Image
    activity: Image
    labels: Labels
    dvh: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    methods: Sequence[tuple[str, str]] = ()
    versions: Mapping[str, str] = field(default_factory=dict)
    registration: Sequence[RegistrationRow] = ()
    warnings: Sequence[str] = ()
    tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[str]]]] = ()
