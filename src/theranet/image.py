"""The quantitative image: voxel data + geometry + physical meaning + time.

Conventions
-----------
Array order
    ``data`` is indexed in array order ``data[a0, a1, a2]``. Readers of DICOM and
    NIfTI volumes return ``(slice, row, column)`` = ``(Z, Y, X)`` order.
Affine
    ``affine`` is a 4x4 matrix mapping a homogeneous array index
    ``(a0, a1, a2, 1)`` to patient coordinates in mm, DICOM LPS (x towards the
    patient's Left, y towards Posterior, z towards Superior/head). Column ``n`` of
    ``affine[:3, :3]`` is the step in mm taken when index ``a_n`` grows by one.
Quantity and unit
    Every image states what its voxels are (:class:`Quantity`) and is stored in
    the canonical unit of that quantity (:data:`CANONICAL_UNITS`: MBq/mL for
    activity concentration, Gy for dose...). Conversions from file units (Bq/mL)
    happen in the readers and writers only.
Time
    :class:`Timing` holds the acquisition start, frame duration, injection
    datetime and administered activity, and the decay-correction state: which
    instant the voxel values refer to.

Every operation returns a new :class:`Image`; inputs are never modified.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from theranet._checks import positive
from theranet.errors import (
    CalibrationError,
    GeometryError,
    ImageDataError,
    MissingFieldError,
    QuantityError,
    TimingError,
)

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

logger = logging.getLogger(__name__)

__all__ = [
    "CANONICAL_UNITS",
    "DECAY_FACTOR_INCONSISTENT",
    "DecayCorrection",
    "Image",
    "Labels",
    "PatientInfo",
    "Provenance",
    "Quantity",
    "Timing",
    "affine_from_sitk",
    "bsa_dubois_m2",
    "ibw_sugawara_kg",
    "lbm_james128_kg",
    "lbm_janmahasatian_kg",
]

#: Marker a reader records in ``provenance.assumptions`` when Decay Factor
#: (0054,1321) contradicts Frame Reference Time (0054,1300) (clinical.md §4.2);
#: :meth:`Image.to_suv` refuses such an image.
DECAY_FACTOR_INCONSISTENT = "DECAY_FACTOR_INCONSISTENT"

_SUV_KINDS = ("bw", "lbm", "bsa", "ibw")
_LBM_FORMULAS = ("janmahasatian", "james128")
#: Height at which the Sugawara (1999) ideal body weight formulas are anchored, cm.
_SUGAWARA_REFERENCE_HEIGHT_CM = 152.0


class Quantity(enum.Enum):
    """Physical quantity of the voxel values."""

    COUNTS = "counts"
    COUNT_RATE = "count_rate"
    ACTIVITY = "activity"
    ACTIVITY_CONCENTRATION = "activity_concentration"
    SUVBW = "suvbw"
    SUL = "sul"
    SUVBSA = "suvbsa"
    SUVIBW = "suvibw"
    HU = "hu"
    INTENSITY = "intensity"
    DOSE = "dose"
    DOSE_RATE = "dose_rate"
    BED = "bed"
    LABEL = "label"

    @property
    def unit(self) -> str:
        """Canonical unit string of the quantity."""
        return CANONICAL_UNITS[self]

    @property
    def is_extensive(self) -> bool:
        """True where a voxel value scales with voxel volume (counts, activity)."""
        return self in _EXTENSIVE

    @property
    def decays(self) -> bool:
        """True where values follow radioactive decay (counts, activity, SUV)."""
        return self in _DECAYING


#: Canonical unit of each quantity (internal convention: MBq, h, mm, mL, g, Gy).
CANONICAL_UNITS: Mapping[Quantity, str] = {
    Quantity.COUNTS: "counts",
    Quantity.COUNT_RATE: "cps",
    Quantity.ACTIVITY: "MBq",
    Quantity.ACTIVITY_CONCENTRATION: "MBq/mL",
    Quantity.SUVBW: "g/mL",
    Quantity.SUL: "g/mL",
    Quantity.SUVBSA: "cm2/mL",
    Quantity.SUVIBW: "g/mL",
    Quantity.HU: "HU",
    Quantity.INTENSITY: "1",
    Quantity.DOSE: "Gy",
    Quantity.DOSE_RATE: "Gy/h",
    Quantity.BED: "Gy",
    Quantity.LABEL: "1",
}

_EXTENSIVE = frozenset({Quantity.COUNTS, Quantity.COUNT_RATE, Quantity.ACTIVITY})
_DECAYING = frozenset(
    {
        Quantity.COUNTS,
        Quantity.COUNT_RATE,
        Quantity.ACTIVITY,
        Quantity.ACTIVITY_CONCENTRATION,
        Quantity.SUVBW,
        Quantity.SUL,
        Quantity.SUVBSA,
        Quantity.SUVIBW,
    }
)


class DecayCorrection(enum.Enum):
    """Which instant the voxel values refer to.

    ``NONE``: values are what was measured over the frame that started at
    ``Timing.acquisition_start`` and lasted ``Timing.frame_duration_h``.
    ``START``: decay-corrected to the acquisition start. ``ADMIN``: corrected to
    the injection. ``REFERENCE``: corrected to ``Timing.reference``.
    """

    NONE = "NONE"
    START = "START"
    ADMIN = "ADMIN"
    REFERENCE = "REFERENCE"


@dataclass(frozen=True)
class Timing:
    """Acquisition and injection times and the decay-correction state.

    Parameters
    ----------
    acquisition_start : datetime, optional
        Start of the acquisition (DICOM Series or Acquisition DateTime).
    frame_duration_h : float, optional
        Duration of the acquisition frame, h.
    injection : datetime, optional
        Radiopharmaceutical administration datetime.
    administered_activity_mbq : float, optional
        Activity administered at ``injection``, MBq.
    decay_correction : DecayCorrection
        The decay-correction state of the voxel values.
    reference : datetime, optional
        The instant of ``DecayCorrection.REFERENCE``; derived for START/ADMIN.
    injection_source : str, optional
        Which field gave the injection time (for the report).
    """

    acquisition_start: datetime | None = None
    frame_duration_h: float | None = None
    injection: datetime | None = None
    administered_activity_mbq: float | None = None
    decay_correction: DecayCorrection = DecayCorrection.NONE
    reference: datetime | None = None
    injection_source: str | None = None

    def __post_init__(self) -> None:
        if self.frame_duration_h is not None and not self.frame_duration_h >= 0:
            raise TimingError(
                "frame_duration_h",
                "must be >= 0",
                self.frame_duration_h,
                "give the acquisition frame duration in hours",
            )
        if self.administered_activity_mbq is not None and not (
            math.isfinite(self.administered_activity_mbq) and self.administered_activity_mbq > 0
        ):
            raise TimingError(
                "administered_activity_mbq",
                "must be a positive finite activity",
                self.administered_activity_mbq,
                "give the administered activity in MBq",
            )

    @property
    def reference_datetime(self) -> datetime | None:
        """The instant the decay-corrected values refer to (None when NONE)."""
        match self.decay_correction:
            case DecayCorrection.START:
                return self.acquisition_start
            case DecayCorrection.ADMIN:
                return self.injection
            case DecayCorrection.REFERENCE:
                return self.reference
            case _:
                return None

    def hours_after_injection(self, when: datetime | None = None) -> float:
        """Hours from injection to ``when`` (default: the acquisition start)."""
        when = when if when is not None else self.acquisition_start
        if self.injection is None:
            raise TimingError(
                "injection",
                "injection datetime is unknown",
                None,
                "supply it (CLI --injection-datetime, or Timing(injection=...))",
            )
        if when is None:
            raise TimingError(
                "acquisition_start",
                "acquisition datetime is unknown",
                None,
                "supply the acquisition start datetime",
            )
        return _hours_between(self.injection, when)


@dataclass(frozen=True)
class PatientInfo:
    """What is known of the patient's body (no identifiers).

    Parameters
    ----------
    weight_kg, height_cm : float, optional
    sex : {"M", "F"}, optional
    """

    weight_kg: float | None = None
    height_cm: float | None = None
    sex: str | None = None

    def __post_init__(self) -> None:
        for name in ("weight_kg", "height_cm"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise MissingFieldError(name, "must be a positive finite number", v)
        if self.sex is not None and self.sex not in ("M", "F"):
            raise MissingFieldError("sex", "must be 'M' or 'F'", self.sex)


@dataclass(frozen=True)
class Provenance:
    """Where an image came from and what was done to it.

    ``steps`` are the operations in order; ``assumptions`` are what a lenient
    reader assumed in place of missing or inconsistent data.
    """

    source: str = ""
    steps: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()

    def with_step(self, step: str) -> Provenance:
        return dataclasses.replace(self, steps=(*self.steps, step))

    def with_assumptions(self, records: tuple[str, ...] | list[str]) -> Provenance:
        return dataclasses.replace(self, assumptions=(*self.assumptions, *records))


def _hours_between(t0: datetime, t1: datetime) -> float:
    if (t0.tzinfo is None) != (t1.tzinfo is None):
        raise TimingError(
            "datetime",
            "cannot compare a timezone-aware with a naive datetime",
            f"{t0.isoformat()} vs {t1.isoformat()}",
            "give both with or both without a timezone",
        )
    return (t1 - t0).total_seconds() / 3600.0


def _check_affine(affine: np.ndarray) -> np.ndarray:
    a = np.array(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise GeometryError("affine", "must be a 4x4 matrix", a.shape)
    if not np.all(np.isfinite(a)):
        raise GeometryError("affine", "contains non-finite values", None)
    if not np.allclose(a[3], [0, 0, 0, 1]):
        raise GeometryError("affine", "last row must be [0, 0, 0, 1]", a[3].tolist())
    if abs(np.linalg.det(a[:3, :3])) < 1e-9:
        raise GeometryError("affine", "is singular (zero voxel size or degenerate axes)", None)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Image:
    """A 3-D quantitative image.

    Parameters
    ----------
    data : ndarray of shape (A0, A1, A2)
        Voxel values in the canonical unit of ``quantity``. Stored as a
        read-only array; readers give ``(Z, Y, X)`` order.
    affine : ndarray of shape (4, 4)
        Array index -> patient LPS coordinates, mm.
    quantity : Quantity
        What the values are.
    modality : str
        DICOM modality of the source ("NM", "PT", "CT", "MR", "OT").
    nuclide : str, optional
        Canonical nuclide name ("Lu-177").
    tracer : str, optional
        Radiopharmaceutical name ("177Lu-DOTATATE").
    timing : Timing
    patient : PatientInfo
    calibration_cps_per_mbq : float, optional
        Sensitivity used to convert count rate into activity (recorded once applied).
    provenance : Provenance
    corrections : frozenset of str, optional
        Corrections applied to the values, as DICOM Corrected Image (0028,0051)
        terms (``ATTN``, ``SCAT``, ``DECY``, ``DTIM``...); None when unknown.

    Examples
    --------
    >>> import numpy as np
    >>> img = Image(np.ones((2, 3, 4), np.float32), np.diag([2.0, 1.0, 1.0, 1.0]),
    ...             Quantity.ACTIVITY_CONCENTRATION)
    >>> img.unit, img.voxel_volume_ml
    ('MBq/mL', 0.002)
    """

    data: np.ndarray
    affine: np.ndarray
    quantity: Quantity
    modality: str = "OT"
    nuclide: str | None = None
    tracer: str | None = None
    timing: Timing = field(default_factory=Timing)
    patient: PatientInfo = field(default_factory=PatientInfo)
    calibration_cps_per_mbq: float | None = None
    provenance: Provenance = field(default_factory=Provenance)
    corrections: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.corrections is not None:
            object.__setattr__(
                self, "corrections", frozenset(str(c).upper() for c in self.corrections)
            )
        data = np.asarray(self.data)
        if data.ndim != 3:
            raise ImageDataError(
                "data",
                "must be a 3-D array",
                data.shape,
                "stack 2-D planes into shape (1, rows, columns)",
            )
        if data.dtype.kind not in "biuf":
            raise ImageDataError("data", "must be numeric", str(data.dtype))
        if not isinstance(self.quantity, Quantity):
            raise QuantityError("quantity", "must be a Quantity", self.quantity)
        if data.flags.writeable:
            data = data.view()
            data.setflags(write=False)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "affine", _check_affine(self.affine))

    # -- geometry -----------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def unit(self) -> str:
        """Canonical unit of the voxel values."""
        return self.quantity.unit

    @property
    def spacing_mm(self) -> np.ndarray:
        """Voxel size along each array axis, mm, shape (3,)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def voxel_volume_ml(self) -> float:
        """Voxel volume, mL (1 mL = 1000 mm^3)."""
        return float(abs(np.linalg.det(self.affine[:3, :3])) / 1000.0)

    @property
    def origin_mm(self) -> np.ndarray:
        """LPS position of the centre of voxel (0, 0, 0), mm."""
        return self.affine[:3, 3].copy()

    def index_to_lps(self, index: np.ndarray) -> np.ndarray:
        """Map array indices (..., 3) to LPS positions (..., 3), mm."""
        index = np.asarray(index, dtype=np.float64)
        return index @ self.affine[:3, :3].T + self.affine[:3, 3]

    def lps_to_index(self, lps_mm: np.ndarray) -> np.ndarray:
        """Map LPS positions (..., 3), mm, to fractional array indices (..., 3)."""
        inv = np.linalg.inv(self.affine)
        lps = np.asarray(lps_mm, dtype=np.float64)
        return lps @ inv[:3, :3].T + inv[:3, 3]

    def same_grid(self, other: Image, atol_mm: float = 1e-4) -> bool:
        """True when ``other`` has the same shape and affine (within ``atol_mm``)."""
        return self.shape == other.shape and bool(
            np.allclose(self.affine, other.affine, atol=atol_mm, rtol=0)
        )

    def replace(self, **changes) -> Image:
        """A copy with some fields changed (the data are shared, read-only)."""
        return dataclasses.replace(self, **changes)

    def _derive(self, data: np.ndarray, step: str, **changes) -> Image:
        return dataclasses.replace(
            self, data=data, provenance=self.provenance.with_step(step), **changes
        )

    def __getitem__(self, item):
        raise TypeError(
            "Image does not support indexing, which would lose the geometry; "
            "use image.data[...] for values or image.crop(...) for a sub-volume"
        )

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.data, dtype=dtype)

    def crop(self, start: tuple[int, int, int], stop: tuple[int, int, int]) -> Image:
        """Sub-volume ``data[start:stop]`` with its affine shifted accordingly."""
        sl = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
        affine = self.affine.copy()
        affine[:3, 3] = self.index_to_lps(np.array(start, dtype=np.float64))
        return self._derive(self.data[sl], f"crop {start}-{stop}", affine=affine)

    # -- checks -------------------------------------------------------------
    def check_finite(self) -> Image:
        """Raise :class:`ImageDataError` if any voxel is NaN or infinite."""
        if self.data.dtype.kind == "f":
            bad = ~np.isfinite(self.data)
            if bad.any():
                first = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ImageDataError(
                    "data",
                    f"{int(bad.sum())} non-finite voxel(s), first at index {first}",
                    None,
                    "mask or repair the voxels before quantification",
                    self.provenance.source or None,
                )
        return self

    # -- decay --------------------------------------------------------------
    def _nuclide_obj(self):
        if self.nuclide is None:
            raise MissingFieldError(
                "nuclide",
                "unknown, needed for decay correction",
                None,
                "set the nuclide (e.g. image.replace(nuclide='Lu-177'), CLI --nuclide)",
            )
        from theranet.nuclides import Nuclide

        return Nuclide(self.nuclide)

    def values_reference_datetime(self, *, assume_instantaneous_frame: bool = False) -> datetime:
        """The instant at which the voxel values equal the activity present.

        For decay-corrected images this is the correction reference. For
        uncorrected images (``NONE``) it is the time of average activity in the
        frame, ``t_start + (1/λ) ln(λT / (1 - exp(-λT)))`` (DICOM PS3.3
        C.8.9.4.1.5), which needs the frame duration ``T``.
        """
        t = self.timing
        ref = t.reference_datetime
        if t.decay_correction is not DecayCorrection.NONE:
            if ref is None:
                field_name = {
                    DecayCorrection.START: "acquisition_start",
                    DecayCorrection.ADMIN: "injection",
                    DecayCorrection.REFERENCE: "reference",
                }[t.decay_correction]
                raise TimingError(
                    f"timing.{field_name}",
                    f"unknown, needed for {t.decay_correction.value} decay correction",
                    None,
                    "supply the datetime",
                )
            return ref
        if t.acquisition_start is None:
            raise TimingError(
                "timing.acquisition_start",
                "unknown, needed to place the values in time",
                None,
                "supply the acquisition start datetime",
            )
        if t.frame_duration_h is None:
            if assume_instantaneous_frame:
                return t.acquisition_start
            raise TimingError(
                "timing.frame_duration_h",
                "unknown for an image without decay correction",
                None,
                "supply the frame duration or pass assume_instantaneous_frame=True",
            )
        lam = self._nuclide_obj().decay_constant_per_h
        dur = t.frame_duration_h
        if dur == 0 or lam * dur < 1e-9:
            offset_h = dur / 2.0
        else:
            offset_h = math.log(lam * dur / (-math.expm1(-lam * dur))) / lam
        from datetime import timedelta

        return t.acquisition_start + timedelta(hours=offset_h)

    def decay_correct_to(
        self, when: datetime, *, assume_instantaneous_frame: bool = False
    ) -> Image:
        """Values decay-corrected to ``when``: the activity present at that instant.

        Parameters
        ----------
        when : datetime
            Target instant (same timezone awareness as the image times).
        assume_instantaneous_frame : bool
            For uncorrected images with no frame duration, treat the values as
            the activity at the acquisition start (recorded in provenance).
        """
        if not self.quantity.decays:
            raise QuantityError(
                "quantity",
                "does not decay; decay correction applies to counts, "
                "activity, activity concentration and SUV",
                self.quantity.value,
            )
        src = self.values_reference_datetime(assume_instantaneous_frame=assume_instantaneous_frame)
        nuc = self._nuclide_obj()
        factor = 2.0 ** (-_hours_between(src, when) / nuc.half_life_h)
        prov = self.provenance
        if (
            self.timing.decay_correction is DecayCorrection.NONE
            and self.timing.frame_duration_h is None
        ):
            prov = prov.with_assumptions(("frame duration unknown: values taken at frame start",))
        timing = dataclasses.replace(
            self.timing, decay_correction=DecayCorrection.REFERENCE, reference=when
        )
        out = dataclasses.replace(
            self,
            data=(self.data * factor).astype(np.result_type(self.data.dtype, np.float32)),
            timing=timing,
            provenance=prov,
        )
        return out.replace(
            provenance=out.provenance.with_step(
                f"decay-corrected {nuc.name} from {src.isoformat()} to {when.isoformat()}"
                f" (x{factor:.6g})"
            )
        )

    # -- quantity conversions ----------------------------------------------
    def to_activity_concentration(self, calibration_cps_per_mbq: float) -> Image:
        """Counts or count rate -> activity concentration (MBq/mL).

        ``C = R / (CF * V_voxel)``, with ``R`` the count rate per voxel (counts
        divided by the frame duration), ``CF`` the system sensitivity in cps/MBq
        (the SPECT "Becquerel calibration", measured with the same protocol) and
        ``V_voxel`` in mL. The result keeps the decay-correction state.
        """
        cf = calibration_cps_per_mbq
        if cf is None or not (isinstance(cf, int | float) and math.isfinite(cf) and cf > 0):
            raise CalibrationError(
                "calibration_cps_per_mbq",
                "must be a positive finite sensitivity",
                cf,
                "give the measured system sensitivity in cps/MBq (CLI --calibration-cps-per-mbq)",
            )
        if self.quantity is Quantity.COUNTS:
            dur = self.timing.frame_duration_h
            if dur is None or dur <= 0:
                raise TimingError(
                    "timing.frame_duration_h",
                    "needed to turn counts into a count rate",
                    dur,
                    "supply the acquisition duration (DICOM Actual Frame Duration)",
                )
            rate = self.data / (dur * 3600.0)
        elif self.quantity is Quantity.COUNT_RATE:
            rate = self.data
        else:
            raise QuantityError(
                "quantity",
                "calibration applies to counts or count rate",
                self.quantity.value,
            )
        conc = np.asarray(rate, dtype=np.float64) / (cf * self.voxel_volume_ml)
        return self._derive(
            conc.astype(np.float32),
            f"calibrated: {cf:g} cps/MBq -> MBq/mL",
            quantity=Quantity.ACTIVITY_CONCENTRATION,
            calibration_cps_per_mbq=float(cf),
        )

    def to_activity(self) -> Image:
        """Activity concentration (MBq/mL) -> activity per voxel (MBq)."""
        if self.quantity is not Quantity.ACTIVITY_CONCENTRATION:
            raise QuantityError("quantity", "needs activity concentration", self.quantity.value)
        return self._derive(
            self.data * np.float32(self.voxel_volume_ml),
            "activity per voxel",
            quantity=Quantity.ACTIVITY,
        )

    def to_suv(
        self,
        kind: str = "bw",
        *,
        lbm_formula: str = "janmahasatian",
        ibw_cap: bool = False,
    ) -> Image:
        """Activity concentration -> SUV (body weight, lean body mass, BSA or IBW).

        ``SUV = C * N / A_inj`` with ``C`` the activity concentration
        decay-corrected to the injection time, ``A_inj`` the administered
        activity and ``N`` the normaliser (clinical.md §4.1):

        ========  ==========================================================  ======
        kind      N                                                           unit
        ========  ==========================================================  ======
        ``bw``    body weight, g (SUVbw, QIBA)                                g/mL
        ``lbm``   lean body mass, g (SUL): Janmahasatian 2005 (default) or    g/mL
                  James 1976 "James-128" (:func:`lbm_james128_kg`)
        ``bsa``   body surface area, cm^2 (DuBois & DuBois 1916)              cm2/mL
        ``ibw``   ideal body weight, g (Sugawara 1999)                        g/mL
        ========  ==========================================================  ======

        Bringing ``C`` back to the injection is the same as decaying
        ``A_inj`` to the values' reference time (``A_ref = A_inj 2^(-Δt/T½)``,
        clinical.md §4.2): the readers resolve DICOM START / ADMIN / NONE into
        :class:`Timing`, and the ICRP-107 half-life of ``nuclide`` is used.

        Refused (clinical.md §4.1, §4.2): values that are not activity
        concentration; an unknown injection time, administered activity or
        weight (height and sex for ``lbm`` and ``ibw``, height for ``bsa``);
        known ``corrections`` lacking ``ATTN``, or lacking ``DECY`` while the
        values claim a scanner decay correction (START, ADMIN); an injection
        after the acquisition start (negative decay time); an image whose
        reader recorded :data:`DECAY_FACTOR_INCONSISTENT`.

        Parameters
        ----------
        kind : {"bw", "lbm", "bsa", "ibw"}
        lbm_formula : {"janmahasatian", "james128"}
            Lean body mass formula for ``kind="lbm"``, named in the provenance.
        ibw_cap : bool
            ``kind="ibw"`` only: cap the ideal body weight at the body weight
            (3D Slicer). Default False: the Sugawara value unclamped (MITK),
            with a recorded warning when IBW > W or H < 152 cm. Implementations
            differ, so clinical.md §4.1 makes this a parameter.

        Returns
        -------
        Image
            Same grid, quantity ``SUVBW``, ``SUL``, ``SUVBSA`` or ``SUVIBW``,
            values referred to the injection time.
        """
        if kind not in _SUV_KINDS:
            raise ValueError(f"kind: unknown SUV kind {kind!r}; use one of {_SUV_KINDS}")
        if lbm_formula not in _LBM_FORMULAS:
            raise ValueError(
                f"lbm_formula: unknown {lbm_formula!r}; use 'janmahasatian' or 'james128'"
            )
        if self.quantity is not Quantity.ACTIVITY_CONCENTRATION:
            raise QuantityError(
                "quantity",
                "SUV needs activity concentration (MBq/mL)",
                self.quantity.value,
                "calibrate counts first (to_activity_concentration)",
            )
        t = self.timing
        if t.injection is None:
            raise TimingError(
                "timing.injection",
                "unknown, needed for SUV",
                None,
                "supply the injection datetime (CLI --injection-datetime)",
            )
        if t.administered_activity_mbq is None:
            raise MissingFieldError(
                "timing.administered_activity_mbq",
                "unknown, needed for SUV",
                None,
                "supply the administered activity (CLI --activity-mbq)",
            )
        if self.patient.weight_kg is None:
            raise MissingFieldError(
                "patient.weight_kg",
                "unknown (Patient's Weight (0010,1030) absent or 0), needed for SUV",
                None,
                "supply the patient's weight in kg: CLI --weight-kg; Python "
                "read_series(..., patient_weight_kg=...) or "
                "image.replace(patient=PatientInfo(weight_kg=...))",
            )
        normaliser, unit, quantity, label, notes = self._suv_normaliser(kind, lbm_formula, ibw_cap)
        self._check_suv_corrections()
        self._check_suv_decay_reference()
        at_inj = self.decay_correct_to(t.injection)
        if self.corrections is None:
            notes = ("corrections unknown: attenuation correction taken as applied for SUV", *notes)
        if notes:
            at_inj = at_inj.replace(provenance=at_inj.provenance.with_assumptions(notes))
        factor = normaliser / t.administered_activity_mbq  # g or cm^2 per MBq
        return at_inj._derive(
            (at_inj.data * factor).astype(np.float32),
            f"{label}: x {normaliser / 1000.0 if unit == 'g' else normaliser:.6g} "
            f"{'kg * 1000' if unit == 'g' else 'cm2'} / {t.administered_activity_mbq:.6g} MBq",
            quantity=quantity,
        )

    def _suv_normaliser(
        self, kind: str, lbm_formula: str, ibw_cap: bool
    ) -> tuple[float, str, Quantity, str, tuple[str, ...]]:
        """(normaliser, its unit "g" or "cm2", quantity, label, notes) of an SUV kind."""
        p = self.patient
        w = p.weight_kg
        assert w is not None  # checked by to_suv
        if kind == "bw":
            return w * 1000.0, "g", Quantity.SUVBW, "SUVbw", ()
        h, sex = p.height_cm, p.sex
        what = {"lbm": "lean body mass (SUL)", "bsa": "body surface area (SUVbsa)",
                "ibw": "ideal body weight (SUVibw)"}[kind]  # fmt: skip
        if h is None or (kind != "bsa" and sex is None):
            fields = "patient.height_cm" if kind == "bsa" else "patient.height_cm/sex"
            raise MissingFieldError(
                fields,
                f"unknown, needed for the {what}",
                h if kind == "bsa" else (h, sex),
                "supply them: CLI --height-cm"
                + ("" if kind == "bsa" else " and --sex")
                + "; Python image.replace(patient=PatientInfo(weight_kg=..., height_cm=...,"
                " sex='M' or 'F')) (DICOM Patient's Size (0010,1020) in m, Patient's Sex "
                "(0010,0040))",
            )
        if kind == "lbm":
            if lbm_formula == "james128":
                lbm = lbm_james128_kg(w, h, sex)  # type: ignore[arg-type]
            else:
                lbm = lbm_janmahasatian_kg(w, h, sex)  # type: ignore[arg-type]
            return lbm * 1000.0, "g", Quantity.SUL, f"SUL ({lbm_formula})", ()
        if kind == "bsa":
            bsa_cm2 = bsa_dubois_m2(w, h) * 1e4
            return bsa_cm2, "cm2", Quantity.SUVBSA, "SUVbsa (DuBois)", ()
        ibw = ibw_sugawara_kg(h, sex)  # type: ignore[arg-type]
        notes: list[str] = []
        if h < _SUGAWARA_REFERENCE_HEIGHT_CM:
            notes.append(
                f"SUVibw: height {h:.4g} cm below {_SUGAWARA_REFERENCE_HEIGHT_CM:g} cm; the "
                f"Sugawara ideal body weight {ibw:.4g} kg is extrapolated"
            )
        if ibw > w:
            capped = "; capped at the body weight (ibw_cap=True)" if ibw_cap else ""
            notes.append(
                f"SUVibw: Sugawara ideal body weight {ibw:.4g} kg exceeds the body weight "
                f"{w:.4g} kg{capped}"
            )
            if ibw_cap:
                ibw = w
        for note in notes:
            logger.warning(note)
        label = "SUVibw (Sugawara" + (", capped at W)" if ibw_cap else ")")
        return ibw * 1000.0, "g", Quantity.SUVIBW, label, tuple(notes)

    def _check_suv_corrections(self) -> None:
        """Refuse SUV when Corrected Image (0028,0051) lacks ATTN, or DECY for START/ADMIN."""
        c = self.corrections
        if c is None:
            return
        state = self.timing.decay_correction
        lacking = [x for x in ("ATTN", "DECY") if x not in c]
        if state not in (DecayCorrection.START, DecayCorrection.ADMIN) and "DECY" in lacking:
            # NONE: the values are corrected here from the acquisition times (§4.2)
            lacking.remove("DECY")
        if lacking:
            why = []
            if "ATTN" in lacking:
                why.append("SUV needs attenuation-corrected values (ATTN), QIBA")
            if "DECY" in lacking:
                why.append(
                    f"the values are marked decay-corrected ({state.value}) but DECY is "
                    "absent, so the correction is not confirmed"
                )
            raise QuantityError(
                "corrections",
                "; ".join(why) + f" (Corrected Image (0028,0051) lacks {' and '.join(lacking)})",
                sorted(c),
                "use the attenuation- and decay-corrected reconstruction; if the corrections "
                "were applied and the header omits them, set image.replace(corrections=...)",
            )

    def _check_suv_decay_reference(self) -> None:
        """Refuse SUV with a negative decay time or an inconsistent Decay Factor (§4.2)."""
        t = self.timing
        if any(DECAY_FACTOR_INCONSISTENT in a for a in self.provenance.assumptions):
            raise TimingError(
                "DecayFactor (0054,1321)",
                f"{DECAY_FACTOR_INCONSISTENT}: the reader found the Decay Factor inconsistent "
                "with Frame Reference Time (0054,1300) and the half-life, so the reference "
                "time of the values is in doubt; SUV refused",
                None,
                "check the series' reference time and half-life, and re-export the series",
                self.provenance.source or None,
            )
        assert t.injection is not None  # checked by to_suv
        if t.acquisition_start is not None:
            decay_h = _hours_between(t.injection, t.acquisition_start)
            if decay_h < 0:
                raise TimingError(
                    "timing.injection",
                    f"after the acquisition start {t.acquisition_start.isoformat()}: the decay "
                    f"time would be negative ({decay_h * 60:.4g} min)",
                    t.injection.isoformat(),
                    "check the injection and scan datetimes (CLI --injection-datetime)",
                )

    # -- resampling ---------------------------------------------------------
    def resample_to(
        self,
        reference: Image,
        *,
        method: str = "auto",
        fill_value: float = 0.0,
        max_subsamples: int = 4,
    ) -> Image:
        """Values on the grid of ``reference`` (its shape and affine).

        Parameters
        ----------
        reference : Image
            Supplies the target grid.
        method : {"auto", "conserve", "linear", "nearest"}
            ``auto``: ``nearest`` for labels, ``conserve`` for activity-like
            quantities, ``linear`` otherwise. ``conserve`` averages the source
            over each target voxel (trilinear sampling on a regular sub-grid of
            up to ``max_subsamples`` points per axis, chosen from the ratio of
            voxel sizes), so total activity is preserved; extensive quantities
            (counts, MBq per voxel) are converted to densities and back.
        fill_value : float
            Value for target voxels outside the source.
        """
        if method == "auto":
            if self.quantity is Quantity.LABEL:
                method = "nearest"
            elif self.quantity.decays:
                method = "conserve"
            else:
                method = "linear"
        if method not in ("conserve", "linear", "nearest"):
            raise ValueError(
                f"method: unknown {method!r}; use 'auto', 'conserve', 'linear' or 'nearest'"
            )
        if self.quantity is Quantity.LABEL and method != "nearest":
            raise QuantityError(
                "method",
                "labels can only be resampled with 'nearest'",
                method,
            )

        src = np.asarray(self.data)
        extensive = self.quantity.is_extensive
        if extensive:
            src = src / self.voxel_volume_ml
        # target index -> source index
        m = np.linalg.inv(self.affine) @ reference.affine
        shape = reference.shape
        if method == "conserve":
            ratio = reference.spacing_mm / self.spacing_mm
            n_sub = np.clip(np.ceil(ratio - 1e-6).astype(int), 1, max_subsamples)
        else:
            n_sub = np.ones(3, dtype=int)
        offsets = [((np.arange(n) + 0.5) / n - 0.5) for n in n_sub]
        order = 0 if method == "nearest" else 1
        off_diagonal = m[:3, :3] - np.diag(np.diag(m[:3, :3]))
        if (fill_value == 0.0 or extensive) and np.all(np.abs(off_diagonal) < 1e-9):
            # axes aligned (possibly flipped): the same sums, one axis at a time
            out = _resample_separable(src, m, shape, offsets, order)
        else:
            out = _resample_general(src, m, shape, offsets, order, fill_value, extensive)
        if extensive:
            out = out * reference.voxel_volume_ml
        dtype = (
            self.data.dtype if method == "nearest" else np.result_type(self.data.dtype, np.float32)
        )
        return self._derive(
            out.astype(dtype),
            f"resampled ({method}, subsamples {tuple(int(n) for n in n_sub)}) to grid {shape}",
            affine=reference.affine.copy(),
        )

    # -- SimpleITK bridge ---------------------------------------------------
    def to_sitk(self) -> sitk.Image:
        """SimpleITK image with the same geometry (array axes must be right-handed
        or left-handed; SimpleITK stores any orthonormal-ish direction)."""
        import SimpleITK as sitk

        # sitk index (x, y, z) = array index reversed (a2, a1, a0)
        img = sitk.GetImageFromArray(np.ascontiguousarray(self.data))
        cols = self.affine[:3, :3][:, ::-1]
        spacing = np.linalg.norm(cols, axis=0)
        direction = cols / spacing
        img.SetSpacing(tuple(float(s) for s in spacing))
        img.SetDirection(tuple(float(v) for v in direction.reshape(-1)))
        img.SetOrigin(tuple(float(v) for v in self.affine[:3, 3]))
        return img

    @classmethod
    def from_sitk(cls, img: sitk.Image, quantity: Quantity, **kwargs) -> Image:
        """Image from a SimpleITK image (array in (z, y, x) order)."""
        import SimpleITK as sitk

        data = sitk.GetArrayFromImage(img)
        return cls(data, affine_from_sitk(img), quantity, **kwargs)


def _snap(coords: np.ndarray) -> np.ndarray:
    """Round-off (inv(A) @ A != I exactly) snapped to integers, so grid points on
    the source's edge are not taken as outside it."""
    snapped = np.rint(coords)
    return np.where(np.abs(coords - snapped) < 1e-6, snapped, coords)


def _resample_general(
    src: np.ndarray,
    m: np.ndarray,
    shape: tuple[int, int, int],
    offsets: list[np.ndarray],
    order: int,
    fill_value: float,
    extensive: bool,
) -> np.ndarray:
    """Mean of the interpolated source over sub-samples of each target voxel.

    A source voxel covers its index +-0.5: inside that the edge-padded source is
    interpolated; outside, the fill value is taken.
    """
    from scipy import ndimage

    grid = np.indices(shape, dtype=np.float64).reshape(3, -1)
    acc = np.zeros(grid.shape[1], dtype=np.float64)
    padded = np.pad(src.astype(np.float64, copy=False), 1, mode="edge")
    upper = np.array(src.shape)[:, None] - 0.5
    for o0, o1, o2 in itertools.product(*offsets):
        coords = _snap(m[:3, :3] @ (grid + np.array([[o0], [o1], [o2]])) + m[:3, 3:4])
        if order == 0:
            coords = np.rint(coords)
        outside = np.any((coords < -0.5) | (coords > upper), axis=0)
        vals = ndimage.map_coordinates(
            padded, coords + 1.0, order=order, mode="nearest", prefilter=False
        )
        vals[outside] = 0.0 if extensive else fill_value
        acc += vals
    n = np.prod([len(o) for o in offsets])
    return (acc / float(n)).reshape(shape)


def _resample_separable(
    src: np.ndarray,
    m: np.ndarray,
    shape: tuple[int, int, int],
    offsets: list[np.ndarray],
    order: int,
) -> np.ndarray:
    """:func:`_resample_general` with fill value 0 for a diagonal ``m``.

    Trilinear weights and the sub-sample grid are both tensor products, so the
    3-D mean factorises into one sparse (target x source) weight matrix per axis.
    """
    from scipy import sparse

    out = src.astype(np.float64, copy=False)
    for axis in range(3):
        n_s, n_t = src.shape[axis], shape[axis]
        rows, cols, vals = [], [], []
        t = np.arange(n_t, dtype=np.float64)
        for o in offsets[axis]:
            c = _snap(m[axis, axis] * (t + o) + m[axis, 3])
            if order == 0:
                c = np.rint(c)
            inside = (c >= -0.5) & (c <= n_s - 0.5)
            cc = np.clip(c[inside], 0.0, n_s - 1.0)
            ti = t[inside].astype(np.int64)
            if order == 0:
                rows.append(ti)
                cols.append(cc.astype(np.int64))
                vals.append(np.ones_like(cc))
            else:
                i0 = np.floor(cc).astype(np.int64)
                frac = cc - i0
                i1 = np.minimum(i0 + 1, n_s - 1)
                rows += [ti, ti]
                cols += [i0, i1]
                vals += [1.0 - frac, frac]
        w = sparse.csr_matrix(
            (
                np.concatenate(vals) / len(offsets[axis]),
                (np.concatenate(rows), np.concatenate(cols)),
            ),
            shape=(n_t, n_s),
        )
        moved = np.moveaxis(out, axis, 0)
        res = w @ moved.reshape(n_s, -1)
        out = np.moveaxis(res.reshape((n_t, *moved.shape[1:])), 0, axis)
    return np.ascontiguousarray(out)


def affine_from_sitk(img: sitk.Image) -> np.ndarray:
    """4x4 array-order affine ((z, y, x) index -> LPS mm) of a SimpleITK image."""
    direction = np.array(img.GetDirection(), dtype=np.float64).reshape(3, 3)
    spacing = np.array(img.GetSpacing(), dtype=np.float64)
    cols = direction * spacing  # columns: x, y, z steps
    affine = np.eye(4)
    affine[:3, :3] = cols[:, ::-1]
    affine[:3, 3] = img.GetOrigin()
    return affine


def lbm_janmahasatian_kg(weight_kg: float, height_cm: float, sex: str) -> float:
    """Lean body mass, kg (Janmahasatian et al., Clin Pharmacokinet 2005;44:1051).

    male: 9270 W / (6680 + 216 BMI); female: 9270 W / (8780 + 244 BMI), BMI in kg/m^2.
    """
    bmi = weight_kg / (height_cm / 100.0) ** 2
    if sex == "M":
        return 9270.0 * weight_kg / (6680.0 + 216.0 * bmi)
    if sex == "F":
        return 9270.0 * weight_kg / (8780.0 + 244.0 * bmi)
    raise MissingFieldError("sex", "must be 'M' or 'F'", sex)


def lbm_james128_kg(weight_kg: float, height_cm: float, sex: str) -> float:
    """Lean body mass, kg (James 1976, "James-128": male 1.10 W - 128 (W/H)^2,
    female 1.07 W - 148 (W/H)^2, H in cm).

    Refused past the weight at which the formula peaks (``W* = a H^2 / (2 b)``),
    where it falls and becomes meaningless.
    """
    a, b = {"M": (1.10, 128.0), "F": (1.07, 148.0)}.get(sex, (None, None))
    if a is None:
        raise MissingFieldError("sex", "must be 'M' or 'F'", sex)
    w_star = a * height_cm**2 / (2 * b)
    if weight_kg > w_star:
        raise MissingFieldError(
            "patient.weight_kg",
            f"beyond the James-128 validity limit {w_star:.1f} kg",
            weight_kg,
            "use lbm_formula='janmahasatian'",
        )
    return a * weight_kg - b * (weight_kg / height_cm) ** 2


def bsa_dubois_m2(weight_kg: float, height_cm: float) -> float:
    """Body surface area, m^2 (DuBois & DuBois, Arch Intern Med 1916;17:863).

    ``BSA = 0.007184 W^0.425 H^0.725`` with W in kg and H in cm (clinical.md
    §4.1; 3D Slicer SUVFactorCalculator, MITK ``BodySurfaceAreaStrategy``).
    """
    w = positive(MissingFieldError, "patient.weight_kg", weight_kg, "kg")
    h = positive(MissingFieldError, "patient.height_cm", height_cm, "cm")
    return 0.007184 * w**0.425 * h**0.725


def ibw_sugawara_kg(height_cm: float, sex: str) -> float:
    """Ideal body weight, kg (Sugawara et al., Radiology 1999;213:521).

    male ``48.0 + 1.06 (H - 152)``, female ``45.5 + 0.91 (H - 152)``, H in cm
    (clinical.md §4.1; 3D Slicer SUVFactorCalculator, MITK
    ``IdealBodyWeightStrategy``). The value is not clamped (see
    :meth:`Image.to_suv` ``ibw_cap``); a height at which it is not positive is
    refused.
    """
    h = positive(MissingFieldError, "patient.height_cm", height_cm, "cm")
    a, b = {"M": (48.0, 1.06), "F": (45.5, 0.91)}.get(sex, (None, None))
    if a is None or b is None:
        raise MissingFieldError("sex", "must be 'M' or 'F'", sex)
    ibw = a + b * (h - _SUGAWARA_REFERENCE_HEIGHT_CM)
    if ibw <= 0:
        raise MissingFieldError(
            "patient.height_cm",
            f"gives a non-positive Sugawara ideal body weight ({ibw:.3g} kg)",
            height_cm,
            "check the height (cm), or use kind='bw' or 'lbm'",
        )
    return ibw


@dataclass(frozen=True, eq=False)
class Labels:
    """A label map with names.

    Parameters
    ----------
    image : Image
        Integer-valued image with ``quantity == Quantity.LABEL``; 0 is background.
    names : Mapping[int, str]
        Label value -> region name.
    """

    image: Image
    names: Mapping[int, str]

    def __post_init__(self) -> None:
        if self.image.quantity is not Quantity.LABEL:
            raise QuantityError("image.quantity", "a label map must be LABEL", self.image.quantity)
        if self.image.data.dtype.kind not in "biu":
            raise ImageDataError(
                "image.data", "label values must be integers", str(self.image.data.dtype)
            )
        names = {int(k): str(v) for k, v in dict(self.names).items()}
        if 0 in names:
            raise ValueError("names: label 0 is background and cannot be named")
        if len(set(names.values())) != len(names):
            raise ValueError("names: region names must be unique")
        object.__setattr__(self, "names", names)

    @classmethod
    def from_array(cls, data: np.ndarray, affine: np.ndarray, names: Mapping[int, str]) -> Labels:
        return cls(Image(np.asarray(data), affine, Quantity.LABEL), names)

    def mask(self, name: str) -> np.ndarray:
        """Boolean mask (same shape as the image) of the region called ``name``."""
        for value, n in self.names.items():
            if n == name:
                return self.image.data == value
        raise KeyError(f"name: no region {name!r}; known regions: {sorted(self.names.values())}")

    def value_of(self, name: str) -> int:
        for value, n in self.names.items():
            if n == name:
                return value
        raise KeyError(f"name: no region {name!r}; known regions: {sorted(self.names.values())}")

    def present(self) -> dict[str, int]:
        """Region name -> voxel count, for regions with at least one voxel."""
        counts = np.bincount(self.image.data.ravel().astype(np.int64))
        return {
            n: int(counts[v]) for v, n in self.names.items() if v < counts.size and counts[v] > 0
        }

    def resample_to(self, reference: Image) -> Labels:
        """Labels on the grid of ``reference`` (nearest neighbour)."""
        return Labels(self.image.resample_to(reference, method="nearest"), self.names)
