"""Uptake scores of NET imaging: Krenning grade, SSTR PET ratios, NETPET, MIBG extent.

Everything here turns uptake measurements of lesions and reference organs into the
scores used to select patients for radionuclide therapy (clinical.md §3):

* **Krenning grade** 0–4 (clinical.md §3.1, [Krenning]): lesion uptake relative to
  normal liver and spleen (kidney where there is no spleen). The published score is
  visual, on planar 24 h 111In-pentetreotide images; :func:`krenning_grade` is the
  *semi-automatic Krenning-equivalent* of clinical.md §3.1::

      0  lesion not visible
      1  U_les <  k1 * U_liver
      2  k1 * U_liver <= U_les <= U_liver        (within an optional tolerance)
      3  U_liver < U_les <= U_spleen
      4  U_les > U_spleen                         (U_kidney when there is no spleen)

  with ``k1`` (visual "much lower than liver") = 0.5, an [UNCERTAIN] implementation
  choice stored in the table. It never replaces the reader's visual score. On SPECT
  and PET the contrast is higher and scores shift upward, so every score carries its
  modality (:class:`KrenningScore`) and a patient-level grade refuses mixed modalities.
* **Patient-level Krenning** (:func:`patient_krenning`): eligible if all target
  lesions >= 2, "preferred" if all >= 3, "heterogeneous" if any measurable lesion <= 1.
* **SSTR PET ratios** (clinical.md §3.2, [Kratochwil-2015]): tumour-to-liver ratio
  ``TLR = SUVmax,lesion / SUVmean,liver`` (> 2.2 proposed as PRRT criterion) and
  tumour-to-spleen ratio (no formal cut-off); lesion SUVmax > 16.4 predicts response.
  These thresholds were derived with 68Ga-DOTATOC; they are applied only to the tracer
  they were derived with (:class:`ThresholdCheck`).
* **NETPET** dual-tracer grade P0–P5 per lesion and per patient (worst lesion), P4a/P4b
  by the number of FDG > SSTR lesions (clinical.md §3.3, [NETPET]); the Karfis C1–C3
  alternative (:func:`karfis_category`).
* **MIBG extent scores** of neuroblastoma (clinical.md §3.4, [Curie/SIOPEN]): Curie
  (10 segments, 0–3 each, total 0–30) and SIOPEN (12 skeletal regions, 0–6 each,
  total 0–72). The Curie *intensity* score (0–3 relative to liver) is mentioned in
  clinical.md without its definitions and is not implemented.

Units
-----
Uptakes may be given in any common unit — activity concentration (MBq/mL), SUV or
counts per pixel — but the lesion and all reference organs of one score must be in
the **same** unit and from the same image: only ratios enter the scores. Use the
lesion maximum and the reference-organ mean (clinical.md §3.1).

Thresholds
----------
Every cut-off (``k1``, the grade limits, TLR 2.2, SUVmax 16.4, the P4b lesion count,
the Curie/SIOPEN prognostic limits) comes from the ``[score]`` table of the shipped
``theranet/data/eligibility.toml`` with its source, section and verification status
(:func:`score_thresholds`); a caller overrides any of them per call
(``thresholds={"krenning_k1": 0.4}``) or with a complete site table
(:func:`load_score_thresholds`).

Examples
--------
>>> from theranet.imaging import score
>>> score.krenning_grade(lesion_uptake=12.0, liver_uptake=5.0, spleen_uptake=20.0)
3
>>> p = score.patient_krenning([3, 4, 2])
>>> p.min_grade, p.eligible, p.preferred
(2, True, False)
>>> score.uptake_ratios(lesion_max=22.0, liver_mean=10.0, spleen_mean=20.0)
(2.2, 1.1)
>>> score.netpet_patient(["P1", "P4", "P4", "P4"]).grade
'P4b'
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import Any

from theranet import _checks
from theranet import radiopharmaceuticals as rp
from theranet._checks import read_table_text
from theranet._tables import parse_toml
from theranet.errors import TheranetError
from theranet.radiopharmaceuticals import Sourced

__all__ = [
    "CURIE_SEGMENTS",
    "FDG_VS_SSTR",
    "KRENNING_GRADES",
    "NETPET_GRADES",
    "SIOPEN_REGIONS",
    "KarfisResult",
    "KrenningScore",
    "MibgExtent",
    "NetpetLesion",
    "NetpetResult",
    "PatientKrenning",
    "ScoreError",
    "ScoreThresholds",
    "ThresholdCheck",
    "curie_score",
    "curie_segment_score",
    "karfis_category",
    "krenning_grade",
    "krenning_score",
    "load_score_thresholds",
    "mibg_extent",
    "netpet_lesion_grade",
    "netpet_patient",
    "netpet_positive",
    "patient_krenning",
    "score_thresholds",
    "siopen_region_score",
    "siopen_score",
    "suvmax_check",
    "tlr_check",
    "uptake_ratios",
]

logger = logging.getLogger(__name__)

_DATA_FILE = "data/eligibility.toml"
_OVERRIDE_SOURCE = "caller override"

#: Krenning grades, lowest first.
KRENNING_GRADES: tuple[int, ...] = (0, 1, 2, 3, 4)
#: NETPET lesion grades (P4 is split into P4a/P4b only at patient level), best first.
NETPET_GRADES: tuple[str, ...] = ("P0", "P1", "P2", "P3", "P4", "P5")
#: Allowed comparisons of FDG with SSTR uptake in a lesion positive on both.
FDG_VS_SSTR: tuple[str, ...] = ("lower", "equal", "higher")
#: Number of Curie segments: 9 skeletal + 1 soft tissue (clinical.md §3.4).
CURIE_SEGMENTS = 10
#: SIOPEN skeletal regions (clinical.md §3.4): skull, thoracic cage, spine, pelvis and the
#: proximal and distal segment of each of the four limbs.
SIOPEN_REGIONS: tuple[str, ...] = (
    "skull",
    "thoracic_cage",
    "spine",
    "pelvis",
    "right_upper_limb_proximal",
    "right_upper_limb_distal",
    "left_upper_limb_proximal",
    "left_upper_limb_distal",
    "right_lower_limb_proximal",
    "right_lower_limb_distal",
    "left_lower_limb_proximal",
    "left_lower_limb_distal",
)

# key -> (internal unit, allowed unit -> factor, integer)
_SPEC: dict[str, tuple[str, dict[str, float], bool]] = {
    "krenning_k1": ("1", {"1": 1.0}, False),
    "krenning_eligible_min_grade": ("grade", {"grade": 1.0}, True),
    "krenning_preferred_min_grade": ("grade", {"grade": 1.0}, True),
    "krenning_heterogeneous_max_grade": ("grade", {"grade": 1.0}, True),
    "tlr_min": ("1", {"1": 1.0}, False),
    "suvmax_response_min": ("SUVbw", {"SUVbw": 1.0, "g/mL": 1.0}, False),
    "netpet_positive_min_grade": ("grade", {"grade": 1.0}, True),
    "netpet_p4b_min_lesions": ("lesions", {"lesions": 1.0}, True),
    "curie_favourable_max": ("score", {"score": 1.0}, True),
    "siopen_favourable_max": ("score", {"score": 1.0}, True),
}
_GRADE_KEYS = frozenset(k for k, (unit, _, _) in _SPEC.items() if unit == "grade")

_NETPET_SUITABILITY = {
    "P0": "not suitable",
    "P1": "probably suitable",
    "P2": "probably suitable",
    "P3": "probably suitable",
    "P4a": "probably suitable",
    "P4b": "maybe suitable with additional therapy",
    "P5": "not suitable",
}
_NETPET_SOURCE = "NETPET (Chan 2017, via Cancer Imaging 2022 Table 1); clinical.md §3.3"


class ScoreError(TheranetError, ValueError):
    """An uptake, grade, modality, tracer or threshold given to a score is unusable."""


# ----------------------------------------------------------------------------------------
# thresholds


@dataclass(frozen=True)
class ScoreThresholds:
    """The sourced cut-offs of the uptake scores.

    Parameters
    ----------
    values : mapping of str to Sourced
        One entry per key of the ``[score]`` table (internal units: ``"1"`` for
        ratios, ``"grade"``, ``"lesions"``, ``"score"``, ``"SUVbw"``).
    tracers : mapping of str to str
        Canonical radiopharmaceutical a threshold was derived with (only for keys
        that are tracer-dependent, e.g. ``"tlr_min"``).
    version : str
        Table version.
    paths : tuple of str
        Files the table was read from.
    """

    values: Mapping[str, Sourced]
    tracers: Mapping[str, str] = field(default_factory=dict)
    version: str = ""
    paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))
        object.__setattr__(self, "tracers", MappingProxyType(dict(self.tracers)))

    def __getitem__(self, key: str) -> Sourced:
        try:
            return self.values[key]
        except KeyError:
            raise ScoreError(
                "threshold", "unknown key", key, f"use one of {', '.join(sorted(self.values))}"
            ) from None

    def value(self, key: str) -> float:
        """The threshold ``key`` in its internal unit (an int for grades and counts)."""
        return self[key].value  # type: ignore[return-value]

    def tracer(self, key: str) -> str | None:
        """The radiopharmaceutical ``key`` was derived with, or ``None`` if any."""
        self[key]
        return self.tracers.get(key)

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> ScoreThresholds:
        """A copy with some thresholds replaced by caller values (internal units).

        Raises
        ------
        ScoreError
            Unknown key, non-finite or out-of-range value, or a non-integer for a
            grade or count.
        """
        if not overrides:
            return self
        if not isinstance(overrides, Mapping):
            raise ScoreError(
                "thresholds",
                "must be a mapping of key to value",
                overrides,
                "give e.g. {'krenning_k1': 0.4}",
            )
        values = dict(self.values)
        for key, raw in overrides.items():
            values[key] = self[key].overridden(_override_value(key, raw), _OVERRIDE_SOURCE)
        return ScoreThresholds(values, self.tracers, self.version, self.paths)


def _override_value(key: str, raw: Any) -> float | int:
    field_name = f"thresholds[{key!r}]"
    _, _, integer = _SPEC[key]
    if integer:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ScoreError(field_name, "must be an integer", raw, "give a whole number")
        low, high = (0, 4) if key in _GRADE_KEYS else (1, math.inf)
        if not low <= raw <= high:
            raise ScoreError(field_name, f"must be in [{low}, {high}]", raw)
        return int(raw)
    number = _checks.positive(ScoreError, field_name, raw, _SPEC[key][0])
    if key == "krenning_k1" and number > 1.0:
        raise ScoreError(field_name, "must be <= 1 (a fraction of the liver uptake)", raw)
    return number


def _read_doc(text: str, source: str) -> dict[str, Any]:
    return parse_toml(ScoreError, text, source)


def _build(doc: Mapping[str, Any], version: str, paths: tuple[str, ...]) -> ScoreThresholds:
    source = " + ".join(paths)
    table = doc.get("score")
    if not isinstance(table, Mapping):
        raise ScoreError("score", "missing or not a table", table, "add a [score] table", source)
    unknown = sorted(set(table) - set(_SPEC))
    if unknown:
        raise ScoreError(
            "score", "unknown key(s)", unknown, f"allowed keys are {', '.join(_SPEC)}", source
        )
    values: dict[str, Sourced] = {}
    tracers: dict[str, str] = {}
    for key, (unit, factors, integer) in _SPEC.items():
        raw = table.get(key)
        if raw is None:
            raise ScoreError(
                f"score.{key}",
                "missing",
                fix="give value, unit, source, section and status",
                source=source,
            )
        if isinstance(raw, Mapping) and "tracer" in raw:
            raw = dict(raw)
            tracers[key] = _canonical_tracer(raw.pop("tracer"), f"score.{key}.tracer")
        values[key] = _checks.sourced_value(
            ScoreError,
            raw,
            f"score.{key}",
            source,
            factors=factors,
            internal_unit=unit,
            integer=integer,
        )
        if key in _GRADE_KEYS and values[key].value > 4:
            raise ScoreError(f"score.{key}.value", "must be a grade in 0-4", raw, source=source)
    if values["krenning_k1"].value > 1.0:
        raise ScoreError(
            "score.krenning_k1.value", "must be <= 1", values["krenning_k1"].value, source=source
        )
    return ScoreThresholds(values, tracers, version, paths)


@lru_cache(maxsize=1)
def _shipped() -> ScoreThresholds:
    source = f"theranet/{_DATA_FILE}"
    text = resources.files("theranet").joinpath(_DATA_FILE).read_text(encoding="utf-8")
    doc = _read_doc(text, source)
    return _build(doc, str(doc.get("version", "")), (source,))


def load_score_thresholds(path: str | PathLike[str] | None = None) -> ScoreThresholds:
    """Read and validate the ``[score]`` table of an eligibility TOML.

    Parameters
    ----------
    path : str or path-like, optional
        A complete table with the layout of the shipped ``eligibility.toml``
        (its ``[score]`` table must give every key); ``None`` reads the shipped table.

    Returns
    -------
    ScoreThresholds

    Raises
    ------
    ScoreError
        Unreadable file, unknown or missing keys, values without unit, source,
        section or status, disallowed units, a grade outside 0–4 or ``k1`` > 1.
    """
    if path is None:
        return _shipped()
    text, where = read_table_text(ScoreError, path)
    p = Path(where)
    doc = _read_doc(text, str(p))
    return _build(doc, str(doc.get("version", "user")), (str(p),))


def score_thresholds(overrides: Mapping[str, Any] | None = None) -> ScoreThresholds:
    """The shipped score thresholds, with optional per-call overrides (internal units).

    Examples
    --------
    >>> score_thresholds()["tlr_min"].value
    2.2
    >>> score_thresholds({"krenning_k1": 0.4}).value("krenning_k1")
    0.4
    """
    return _shipped().with_overrides(overrides)


def _resolve(thresholds: ScoreThresholds | Mapping[str, Any] | None) -> ScoreThresholds:
    if isinstance(thresholds, ScoreThresholds):
        return thresholds
    return score_thresholds(thresholds)


def _canonical_tracer(name: Any, field_name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ScoreError(
            field_name, "must be a radiopharmaceutical name", name, "give e.g. '68Ga-DOTATOC'"
        )
    try:
        return rp.get(name).name
    except rp.UnknownTracerError as exc:
        raise ScoreError(field_name, "unknown radiopharmaceutical", name, exc.fix) from None


# ----------------------------------------------------------------------------------------
# argument checks


def _uptake(name: str, value: Any) -> float:
    return _checks.non_negative(ScoreError, name, value, "the common uptake unit")


def _reference(name: str, value: Any) -> float:
    return _checks.positive(ScoreError, name, value, "the lesion's uptake unit")


def _check_grade(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in KRENNING_GRADES:
        raise ScoreError(name, "must be a Krenning grade 0-4 (int)", value, "give 0, 1, 2, 3 or 4")
    return int(value)


def _modality(value: Any) -> str:
    for m in rp.MODALITIES:
        if isinstance(value, str) and value.strip().lower() == m.lower():
            return m
    raise ScoreError(
        "modality", "unknown modality", value, f"use one of {', '.join(rp.MODALITIES)}"
    )


# ----------------------------------------------------------------------------------------
# Krenning


@dataclass(frozen=True)
class KrenningScore:
    """A semi-automatic Krenning-equivalent grade of one lesion with its context.

    Parameters
    ----------
    grade : int
        0–4.
    modality : {"planar", "SPECT", "PET"}
        Image the grade was scored on (thresholds are not interchangeable between
        modalities, clinical.md §3.1).
    reference : {"spleen", "kidney"} or None
        Organ used for the grade-3/4 boundary (``None`` when it was not needed).
    k1 : float
        Fraction of the liver uptake used for the grade-1/2 boundary.
    method : str
        Always ``"semi-automatic Krenning-equivalent"``: never a replacement for the
        reader's visual score.
    """

    grade: int
    modality: str
    reference: str | None
    k1: float
    method: str = "semi-automatic Krenning-equivalent"


def _krenning(
    lesion_uptake: Any,
    liver_uptake: Any,
    spleen_uptake: Any,
    kidney_uptake: Any,
    k1: Any,
    liver_tolerance: Any,
    visible: bool,
) -> tuple[int, str | None, float]:
    if not isinstance(visible, bool):
        raise ScoreError("visible", "must be True or False", visible)
    k1_value = score_thresholds().value("krenning_k1") if k1 is None else k1
    k1_value = _checks.positive(ScoreError, "k1", k1_value, "a fraction of the liver uptake")
    if k1_value > 1.0:
        raise ScoreError("k1", "must be <= 1 (a fraction of the liver uptake)", k1_value)
    tolerance = _checks.non_negative(ScoreError, "liver_tolerance", liver_tolerance, "fraction")
    lesion = _uptake("lesion_uptake", lesion_uptake)
    liver = _reference("liver_uptake", liver_uptake)
    spleen = None if spleen_uptake is None else _reference("spleen_uptake", spleen_uptake)
    kidney = None if kidney_uptake is None else _reference("kidney_uptake", kidney_uptake)
    if not visible:
        return 0, None, k1_value
    if lesion < k1_value * liver:
        return 1, None, k1_value
    if lesion <= liver * (1.0 + tolerance):
        return 2, None, k1_value
    reference, upper = ("spleen", spleen) if spleen is not None else ("kidney", kidney)
    if upper is None:
        raise ScoreError(
            "spleen_uptake",
            "needed: the lesion is above liver, grade 3 or 4 depends on the spleen",
            None,
            "give spleen_uptake, or kidney_uptake after splenectomy",
        )
    if upper <= liver:
        logger.warning(
            "%s uptake (%g) <= liver uptake (%g): grade 3 cannot occur", reference, upper, liver
        )
    return (3 if lesion <= upper else 4), reference, k1_value


def krenning_grade(
    lesion_uptake: float,
    liver_uptake: float,
    spleen_uptake: float | None = None,
    *,
    kidney_uptake: float | None = None,
    k1: float | None = None,
    liver_tolerance: float = 0.0,
    visible: bool = True,
) -> int:
    """Semi-automatic Krenning-equivalent grade (0–4) of one lesion, clinical.md §3.1.

    Parameters
    ----------
    lesion_uptake : float
        Lesion maximum (SUVmax on PET, max counts/pixel on SPECT/planar), >= 0.
    liver_uptake : float
        Mean uptake of normal liver (>= 3 cm sphere in the normal right lobe), > 0.
    spleen_uptake : float, optional
        Mean uptake of the spleen, > 0; needed only when the lesion is above liver.
    kidney_uptake : float, optional
        Mean kidney uptake, the reference for grade 4 when there is no spleen
        (splenectomy); ignored when ``spleen_uptake`` is given.
    k1 : float, optional
        Grade 1 below ``k1 * liver_uptake``; default from the table (0.5,
        [UNCERTAIN] implementation choice). ``0 < k1 <= 1``.
    liver_tolerance : float, default 0
        Relative tolerance of "equal to liver": a lesion up to
        ``liver_uptake * (1 + liver_tolerance)`` is still grade 2. 0 reproduces the
        rule of clinical.md §3.1 exactly.
    visible : bool, default True
        False for a lesion not visible on the image (grade 0).

    All uptakes in one common unit (MBq/mL, SUV or counts/pixel) from one image.

    Returns
    -------
    int
        0 not visible; 1 < k1·liver; 2 k1·liver..liver; 3 liver..spleen; 4 > spleen.

    Raises
    ------
    ScoreError
        Negative or non-finite uptake, reference not > 0, ``k1`` outside (0, 1], or
        a lesion above liver without spleen or kidney uptake.

    Examples
    --------
    >>> krenning_grade(4.0, 10.0), krenning_grade(5.0, 10.0), krenning_grade(10.0, 10.0)
    (1, 2, 2)
    >>> krenning_grade(25.0, 10.0, kidney_uptake=20.0)
    4
    """
    grade, _, _ = _krenning(
        lesion_uptake, liver_uptake, spleen_uptake, kidney_uptake, k1, liver_tolerance, visible
    )
    return grade


def krenning_score(
    lesion_uptake: float,
    liver_uptake: float,
    spleen_uptake: float | None = None,
    *,
    modality: str,
    kidney_uptake: float | None = None,
    k1: float | None = None,
    liver_tolerance: float = 0.0,
    visible: bool = True,
) -> KrenningScore:
    """:func:`krenning_grade` with the modality and reference organ stored.

    ``modality`` is one of ``"planar"``, ``"SPECT"``, ``"PET"`` (case ignored); the
    other parameters are those of :func:`krenning_grade`.

    Examples
    --------
    >>> s = krenning_score(25.0, 10.0, 20.0, modality="pet")
    >>> s.grade, s.modality, s.reference
    (4, 'PET', 'spleen')
    """
    modality_name = _modality(modality)
    grade, reference, k1_value = _krenning(
        lesion_uptake, liver_uptake, spleen_uptake, kidney_uptake, k1, liver_tolerance, visible
    )
    return KrenningScore(grade, modality_name, reference, k1_value)


@dataclass(frozen=True)
class PatientKrenning:
    """Patient-level Krenning summary (clinical.md §3.1 default software rule).

    Attributes
    ----------
    grades : tuple of int
        Grades of the target lesions.
    other_grades : tuple of int
        Grades of the other measurable lesions (used for "heterogeneous" only).
    min_grade, max_grade : int
        Lowest and highest target-lesion grade.
    eligible : bool
        All target lesions >= ``krenning_eligible_min_grade`` (2).
    preferred : bool
        All target lesions >= ``krenning_preferred_min_grade`` (3).
    heterogeneous : bool
        Any measurable lesion (target or other) <= ``krenning_heterogeneous_max_grade`` (1).
    modality : str or None
        Common modality of the scores (``None`` when plain grades were given).
    thresholds : mapping of str to Sourced
        The three thresholds used, with their sources.
    """

    grades: tuple[int, ...]
    other_grades: tuple[int, ...]
    min_grade: int
    max_grade: int
    eligible: bool
    preferred: bool
    heterogeneous: bool
    modality: str | None
    thresholds: Mapping[str, Sourced]


def _grades(values: Any, name: str) -> tuple[tuple[int, ...], set[str]]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ScoreError(name, "must be a sequence of grades", values)
    grades: list[int] = []
    modalities: set[str] = set()
    for i, v in enumerate(values):
        if isinstance(v, KrenningScore):
            modalities.add(v.modality)
            v = v.grade
        grades.append(_check_grade(f"{name}[{i}]", v))
    return tuple(grades), modalities


def patient_krenning(
    target_grades: Iterable[int | KrenningScore],
    other_measurable_grades: Iterable[int | KrenningScore] = (),
    *,
    thresholds: ScoreThresholds | Mapping[str, Any] | None = None,
) -> PatientKrenning:
    """Patient-level Krenning summary of the target lesions.

    Parameters
    ----------
    target_grades : iterable of int or KrenningScore
        Grades of the target lesions (at least one).
    other_measurable_grades : iterable of int or KrenningScore, optional
        Grades of the other measurable CT lesions; they count for "heterogeneous".
    thresholds : ScoreThresholds or mapping, optional
        Overrides of ``krenning_eligible_min_grade``, ``krenning_preferred_min_grade``,
        ``krenning_heterogeneous_max_grade``.

    Returns
    -------
    PatientKrenning

    Raises
    ------
    ScoreError
        No target lesion, a grade outside 0–4, or scores from different modalities.

    Examples
    --------
    >>> p = patient_krenning([3, 3], other_measurable_grades=[1])
    >>> p.eligible, p.preferred, p.heterogeneous
    (True, True, True)
    """
    table = _resolve(thresholds)
    targets, modalities = _grades(target_grades, "target_grades")
    others, other_modalities = _grades(other_measurable_grades, "other_measurable_grades")
    if not targets:
        raise ScoreError("target_grades", "empty", fix="give the grade of each target lesion")
    modalities |= other_modalities
    if len(modalities) > 1:
        raise ScoreError(
            "target_grades",
            "scores from different modalities",
            sorted(modalities),
            "score all lesions of a patient on one scan (thresholds are not interchangeable)",
        )
    keys = (
        "krenning_eligible_min_grade",
        "krenning_preferred_min_grade",
        "krenning_heterogeneous_max_grade",
    )
    used = {k: table[k] for k in keys}
    low = min(targets)
    return PatientKrenning(
        grades=targets,
        other_grades=others,
        min_grade=low,
        max_grade=max(targets),
        eligible=low >= table.value(keys[0]),
        preferred=low >= table.value(keys[1]),
        heterogeneous=min(targets + others) <= table.value(keys[2]),
        modality=next(iter(modalities), None),
        thresholds=MappingProxyType(used),
    )


# ----------------------------------------------------------------------------------------
# SSTR PET ratios


def uptake_ratios(
    lesion_max: float, liver_mean: float, spleen_mean: float | None = None
) -> tuple[float, float | None]:
    """Tumour-to-liver and tumour-to-spleen ratios (clinical.md §3.2, [Kratochwil-2015]).

    Parameters
    ----------
    lesion_max : float
        Lesion SUVmax (or maximum in any uptake unit), >= 0.
    liver_mean : float
        Mean uptake of normal liver in the same unit, > 0.
    spleen_mean : float, optional
        Mean uptake of the spleen in the same unit, > 0.

    Returns
    -------
    tlr : float
        ``lesion_max / liver_mean``.
    tsr : float or None
        ``lesion_max / spleen_mean``; ``None`` without a spleen value.
    """
    lesion = _uptake("lesion_max", lesion_max)
    tlr = lesion / _reference("liver_mean", liver_mean)
    tsr = None if spleen_mean is None else lesion / _reference("spleen_mean", spleen_mean)
    return tlr, tsr


@dataclass(frozen=True)
class ThresholdCheck:
    """A tracer-dependent PET threshold applied to one value.

    Attributes
    ----------
    metric : str
        ``"tlr"`` or ``"suvmax"``.
    value : float
        The value checked.
    threshold : float
        The cut-off; the criterion is ``value > threshold``.
    passed : bool or None
        The criterion, or ``None`` when the threshold does not apply to ``tracer``.
    tracer : str
        Canonical radiopharmaceutical of the measurement.
    threshold_tracer : str or None
        Radiopharmaceutical the threshold was derived with (``None``: a caller value).
    source : Sourced
        The threshold with its provenance.
    """

    metric: str
    value: float
    threshold: float
    passed: bool | None
    tracer: str
    threshold_tracer: str | None
    source: Sourced

    @property
    def applicable(self) -> bool:
        """Whether the threshold was derived with the measurement's tracer."""
        return self.threshold_tracer is None or self.threshold_tracer == self.tracer


def _threshold_check(
    metric: str, key: str, value: Any, tracer: Any, threshold: Any, unit: str
) -> ThresholdCheck:
    number = _uptake(metric, value)
    tracer_name = _canonical_tracer(tracer, "tracer")
    if threshold is None:
        sourced = score_thresholds()[key]
        threshold_tracer = score_thresholds().tracer(key)
    else:
        cut = _checks.positive(ScoreError, "threshold", threshold, unit)
        sourced = Sourced(cut, unit, _OVERRIDE_SOURCE, "clinical.md §3.2", "unconfirmed")
        threshold_tracer = None
    cut_value = float(sourced.value)  # type: ignore[arg-type]
    applies = threshold_tracer is None or threshold_tracer == tracer_name
    passed = (number > cut_value) if applies else None
    return ThresholdCheck(metric, number, cut_value, passed, tracer_name, threshold_tracer, sourced)


def tlr_check(tlr: float, *, tracer: str, threshold: float | None = None) -> ThresholdCheck:
    """Tumour-to-liver ratio criterion ``TLR > 2.2`` ([Kratochwil-2015], clinical.md §3.2).

    Parameters
    ----------
    tlr : float
        SUVmax,lesion / SUVmean,liver (:func:`uptake_ratios`).
    tracer : str
        Radiopharmaceutical of the PET (name or alias, e.g. ``"68Ga-DOTATOC"``).
    threshold : float, optional
        A caller cut-off (then applied to any tracer); default from the table, which
        applies only to the tracer it was derived with (68Ga-DOTATOC): for another
        tracer ``passed`` is ``None``.

    Returns
    -------
    ThresholdCheck

    Examples
    --------
    >>> tlr_check(2.5, tracer="Ga-68 DOTATOC").passed
    True
    >>> tlr_check(2.5, tracer="68Ga-DOTATATE").passed is None
    True
    """
    return _threshold_check("tlr", "tlr_min", tlr, tracer, threshold, "1")


def suvmax_check(suvmax: float, *, tracer: str, threshold: float | None = None) -> ThresholdCheck:
    """Lesion-response criterion ``SUVmax > 16.4`` ([Kratochwil-2015], clinical.md §3.2).

    SUV thresholds depend on tracer, scanner, reconstruction and uptake time; the
    shipped one applies only to 68Ga-DOTATOC (sensitivity 95 %, specificity 60 %).
    Parameters as in :func:`tlr_check`.
    """
    return _threshold_check("suvmax", "suvmax_response_min", suvmax, tracer, threshold, "SUVbw")


# ----------------------------------------------------------------------------------------
# NETPET and Karfis


def netpet_positive(
    grade: int, *, thresholds: ScoreThresholds | Mapping[str, Any] | None = None
) -> bool:
    """Whether a lesion is positive for NETPET: modified Krenning grade >= 2 (uptake > background).

    Examples
    --------
    >>> netpet_positive(1), netpet_positive(2)
    (False, True)
    """
    grade = _check_grade("grade", grade)
    return grade >= _resolve(thresholds).value("netpet_positive_min_grade")


@dataclass(frozen=True)
class NetpetLesion:
    """Dual-tracer (SSTR + FDG PET) findings of one matched lesion.

    Parameters
    ----------
    sstr_positive, fdg_positive : bool
        Positive on SSTR / FDG PET (uptake > background, :func:`netpet_positive`).
    fdg_vs_sstr : {"lower", "equal", "higher"}, optional
        FDG uptake relative to SSTR uptake; required when positive on both.
    """

    sstr_positive: bool
    fdg_positive: bool
    fdg_vs_sstr: str | None = None

    def __post_init__(self) -> None:
        for name in ("sstr_positive", "fdg_positive"):
            if not isinstance(getattr(self, name), bool):
                raise ScoreError(name, "must be True or False", getattr(self, name))
        if self.fdg_vs_sstr is not None and self.fdg_vs_sstr not in FDG_VS_SSTR:
            raise ScoreError(
                "fdg_vs_sstr",
                "unknown comparison",
                self.fdg_vs_sstr,
                f"use one of {', '.join(FDG_VS_SSTR)}",
            )
        if self.sstr_positive and self.fdg_positive and self.fdg_vs_sstr is None:
            raise ScoreError(
                "fdg_vs_sstr",
                "needed for a lesion positive on both PETs",
                None,
                "give 'lower', 'equal' or 'higher' (FDG uptake relative to SSTR uptake)",
            )

    @property
    def grade(self) -> str:
        """NETPET lesion grade ``"P0"`` … ``"P5"`` (clinical.md §3.3)."""
        if not self.sstr_positive:
            return "P5" if self.fdg_positive else "P0"
        if not self.fdg_positive:
            return "P1"
        return {"lower": "P2", "equal": "P3", "higher": "P4"}[self.fdg_vs_sstr]  # type: ignore[index]


def netpet_lesion_grade(
    sstr_positive: bool, fdg_positive: bool, fdg_vs_sstr: str | None = None
) -> str:
    """NETPET grade of one lesion ([NETPET], clinical.md §3.3).

    ===== ======== ======================== ====================================
    Grade SSTR PET FDG PET                  PRRT suitability (patient level)
    ===== ======== ======================== ====================================
    P0    −        −                        not suitable
    P1    +        −                        probably suitable
    P2    +        + (FDG < SSTR)           probably suitable
    P3    +        + (FDG = SSTR)           probably suitable
    P4    +        + (FDG > SSTR)           P4a (1–2 lesions) / P4b (>= 3)
    P5    −        +                        not suitable
    ===== ======== ======================== ====================================

    ``fdg_vs_sstr`` is required only for a lesion positive on both and ignored
    otherwise.

    Examples
    --------
    >>> netpet_lesion_grade(True, True, "higher"), netpet_lesion_grade(False, True)
    ('P4', 'P5')
    """
    return NetpetLesion(sstr_positive, fdg_positive, fdg_vs_sstr).grade


@dataclass(frozen=True)
class NetpetResult:
    """Patient-level NETPET grade.

    Attributes
    ----------
    grade : str
        ``"P0"``, ``"P1"``, ``"P2"``, ``"P3"``, ``"P4a"``, ``"P4b"`` or ``"P5"``: the
        worst lesion pattern (P5 worst, P0 only when every lesion is P0).
    lesion_grades : tuple of str
        Lesion grades ``"P0"`` … ``"P5"`` in input order.
    n_fdg_dominant : int
        Number of P4 lesions (FDG > SSTR).
    suitability : str
        PRRT suitability of ``grade`` from the NETPET table.
    source : str
        Source of the grading table.
    p4b_threshold : Sourced
        Minimum number of P4 lesions for P4b.
    """

    grade: str
    lesion_grades: tuple[str, ...]
    n_fdg_dominant: int
    suitability: str
    source: str
    p4b_threshold: Sourced


def netpet_patient(
    lesion_grades: Iterable[str | NetpetLesion],
    *,
    thresholds: ScoreThresholds | Mapping[str, Any] | None = None,
) -> NetpetResult:
    """Patient-level NETPET grade from matched lesions (worst lesion pattern).

    Parameters
    ----------
    lesion_grades : iterable of str or NetpetLesion
        One grade (``"P0"`` … ``"P5"``) or :class:`NetpetLesion` per lesion matched
        between the SSTR and the FDG PET (co-registered, same lesion IDs).
    thresholds : ScoreThresholds or mapping, optional
        Override of ``netpet_p4b_min_lesions`` (3).

    Returns
    -------
    NetpetResult

    Raises
    ------
    ScoreError
        No lesion, or an unknown grade (``"P4a"``/``"P4b"`` are patient-level only).

    Examples
    --------
    >>> r = netpet_patient(["P1", "P4", "P4"])
    >>> r.grade, r.suitability
    ('P4a', 'probably suitable')
    """
    table = _resolve(thresholds)
    if isinstance(lesion_grades, str | bytes) or not isinstance(lesion_grades, Iterable):
        raise ScoreError("lesion_grades", "must be a sequence of NETPET grades", lesion_grades)
    grades: list[str] = []
    for i, g in enumerate(lesion_grades):
        if isinstance(g, NetpetLesion):
            g = g.grade
        if g not in NETPET_GRADES:
            raise ScoreError(
                f"lesion_grades[{i}]",
                "unknown NETPET lesion grade",
                g,
                f"use one of {', '.join(NETPET_GRADES)}",
            )
        grades.append(g)
    if not grades:
        raise ScoreError("lesion_grades", "empty", fix="give the grade of each matched lesion")
    worst = max(grades, key=NETPET_GRADES.index)
    n_p4 = grades.count("P4")
    p4b = table["netpet_p4b_min_lesions"]
    grade = worst
    if worst == "P4":
        grade = "P4b" if n_p4 >= p4b.value else "P4a"
    return NetpetResult(grade, tuple(grades), n_p4, _NETPET_SUITABILITY[grade], _NETPET_SOURCE, p4b)


@dataclass(frozen=True)
class KarfisResult:
    """Karfis dual-tracer category (clinical.md §3.3).

    Attributes
    ----------
    category : {"C1", "C2", "C3"} or None
        C1 all SSTR+ and all FDG−; C2 all SSTR+ and >= 1 FDG+; C3 >= 1 SSTR−/FDG+
        lesion. ``None`` when an SSTR−/FDG− lesion leaves the patient unclassified.
    prrt_suitable : bool or None
        ``False`` for C3 ("not suitable"); ``None`` otherwise (the source table states
        suitability only for C3).
    source : str
    """

    category: str | None
    prrt_suitable: bool | None
    source: str = "Karfis (via Cancer Imaging 2022 Table 1); clinical.md §3.3"


def karfis_category(lesions: Iterable[NetpetLesion]) -> KarfisResult:
    """Karfis C1–C3 category of a patient from matched dual-tracer lesions.

    Examples
    --------
    >>> karfis_category([NetpetLesion(True, False), NetpetLesion(False, True)]).category
    'C3'
    """
    if isinstance(lesions, str | bytes) or not isinstance(lesions, Iterable):
        raise ScoreError("lesions", "must be a sequence of NetpetLesion", lesions)
    items = list(lesions)
    for i, lesion in enumerate(items):
        if not isinstance(lesion, NetpetLesion):
            raise ScoreError(f"lesions[{i}]", "must be a NetpetLesion", lesion)
    if not items:
        raise ScoreError("lesions", "empty", fix="give each matched lesion")
    if any(not x.sstr_positive and x.fdg_positive for x in items):
        return KarfisResult("C3", False)
    if all(x.sstr_positive for x in items):
        return KarfisResult("C2" if any(x.fdg_positive for x in items) else "C1", None)
    return KarfisResult(None, None)


# ----------------------------------------------------------------------------------------
# MIBG extent scores (neuroblastoma)


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ScoreError(name, "must be an integer >= 0", value)
    return int(value)


def _fraction(name: str, value: Any) -> float:
    number = _checks.non_negative(ScoreError, name, value, "fraction 0-1")
    if number > 1.0:
        raise ScoreError(name, "must be a fraction in [0, 1]", value, "give e.g. 0.6 for 60 %")
    return number


def curie_segment_score(n_sites: int, diffuse_fraction: float = 0.0) -> int:
    """Curie score of one segment, 0–3 by extent ([Curie/SIOPEN], clinical.md §3.4).

    0 no site; 1 one site; 2 more than one site; 3 diffuse involvement of more than
    50 % of the segment (``diffuse_fraction > 0.5``).

    Examples
    --------
    >>> curie_segment_score(0), curie_segment_score(1), curie_segment_score(4)
    (0, 1, 2)
    >>> curie_segment_score(1, diffuse_fraction=0.6)
    3
    """
    n = _count("n_sites", n_sites)
    if _fraction("diffuse_fraction", diffuse_fraction) > 0.5:
        return 3
    return min(n, 2)


def curie_score(segment_scores: Sequence[int]) -> int:
    """Total Curie score 0–30: 9 skeletal segments and 1 soft-tissue segment, 0–3 each."""
    if isinstance(segment_scores, str | bytes) or not isinstance(segment_scores, Sequence):
        raise ScoreError("segment_scores", "must be a sequence of 10 scores", segment_scores)
    if len(segment_scores) != CURIE_SEGMENTS:
        raise ScoreError(
            "segment_scores",
            f"needs {CURIE_SEGMENTS} scores (9 skeletal + soft tissue)",
            len(segment_scores),
        )
    total = 0
    for i, s in enumerate(segment_scores):
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= 3:
            raise ScoreError(f"segment_scores[{i}]", "must be an integer 0-3", s)
        total += s
    return total


def siopen_region_score(n_discrete_lesions: int, diffuse_fraction: float = 0.0) -> int:
    """SIOPEN score of one skeletal region, 0–6 ([Curie/SIOPEN], clinical.md §3.4).

    0 none; 1, 2, 3 discrete lesions; 4 more than 3 discrete foci or a single diffuse
    lesion < 50 % of the bone; 5 diffuse 50–95 %; 6 diffuse whole bone (> 95 %).

    Examples
    --------
    >>> [siopen_region_score(n) for n in (0, 1, 2, 3, 4)]
    [0, 1, 2, 3, 4]
    >>> siopen_region_score(0, 0.3), siopen_region_score(0, 0.5), siopen_region_score(0, 1.0)
    (4, 5, 6)
    """
    n = _count("n_discrete_lesions", n_discrete_lesions)
    fraction = _fraction("diffuse_fraction", diffuse_fraction)
    if fraction > 0.95:
        return 6
    if fraction >= 0.5:
        return 5
    if fraction > 0.0 or n > 3:
        return 4
    return n


def siopen_score(region_scores: Mapping[str, int] | Sequence[int]) -> int:
    """Total SIOPEN skeletal score 0–72 over the 12 :data:`SIOPEN_REGIONS` (0–6 each)."""
    if isinstance(region_scores, Mapping):
        missing = [r for r in SIOPEN_REGIONS if r not in region_scores]
        extra = sorted(set(region_scores) - set(SIOPEN_REGIONS))
        if missing or extra:
            raise ScoreError(
                "region_scores",
                "must give each SIOPEN region once",
                {"missing": missing, "unknown": extra},
                f"use the keys {', '.join(SIOPEN_REGIONS)}",
            )
        scores = [region_scores[r] for r in SIOPEN_REGIONS]
    elif isinstance(region_scores, Sequence) and not isinstance(region_scores, str | bytes):
        if len(region_scores) != len(SIOPEN_REGIONS):
            raise ScoreError("region_scores", "needs 12 scores", len(region_scores))
        scores = list(region_scores)
    else:
        raise ScoreError("region_scores", "must be a mapping or sequence", region_scores)
    for r, s in zip(SIOPEN_REGIONS, scores, strict=True):
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= 6:
            raise ScoreError(f"region_scores[{r!r}]", "must be an integer 0-6", s)
    return sum(scores)


@dataclass(frozen=True)
class MibgExtent:
    """Curie and SIOPEN totals with the prognostic limits of clinical.md §3.4.

    Attributes
    ----------
    curie : int
        Total Curie score 0–30.
    siopen : int or None
        Total SIOPEN score 0–72.
    curie_favourable : bool
        ``curie <= curie_favourable_max`` (2); Curie > 2 after induction goes with
        poor outcome.
    siopen_favourable : bool or None
        ``siopen <= siopen_favourable_max`` (4).
    thresholds : mapping of str to Sourced
    """

    curie: int
    siopen: int | None
    curie_favourable: bool
    siopen_favourable: bool | None
    thresholds: Mapping[str, Sourced]


def mibg_extent(
    curie_segments: Sequence[int],
    siopen_regions: Mapping[str, int] | Sequence[int] | None = None,
    *,
    thresholds: ScoreThresholds | Mapping[str, Any] | None = None,
) -> MibgExtent:
    """Curie (and SIOPEN) totals of a neuroblastoma 123I-MIBG scan.

    Parameters
    ----------
    curie_segments : sequence of 10 int
        Curie segment scores 0–3 (:func:`curie_segment_score`).
    siopen_regions : mapping or sequence of 12 int, optional
        SIOPEN region scores 0–6 (:func:`siopen_region_score`).
    thresholds : ScoreThresholds or mapping, optional
        Overrides of ``curie_favourable_max``, ``siopen_favourable_max``.
    """
    table = _resolve(thresholds)
    curie = curie_score(curie_segments)
    siopen = None if siopen_regions is None else siopen_score(siopen_regions)
    keys = ("curie_favourable_max", "siopen_favourable_max")
    return MibgExtent(
        curie=curie,
        siopen=siopen,
        curie_favourable=curie <= table.value(keys[0]),
        siopen_favourable=None if siopen is None else siopen <= table.value(keys[1]),
        thresholds=MappingProxyType({k: table[k] for k in keys}),
    )
