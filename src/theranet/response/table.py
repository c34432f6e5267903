"""The lesion measurement table clinicians record, read into typed records.

One CSV row is one lesion at one study (imaging time point) of one patient::

    patient_id,study_date,lesion_id,organ,is_node,role,longest_diameter_mm,short_axis_mm,status
    P01,2024-01-10,L1,liver,false,target,42,,
    P01,2024-01-10,N1,lymph node,true,target,,18,
    P01,2024-01-10,B1,bone,false,non_target,,,present
    P01,2024-04-03,L1,liver,false,target,30,,
    P01,2024-04-03,N1,lymph node,true,target,,9,
    P01,2024-04-03,B1,bone,false,non_target,,,present
    P01,2024-04-03,X1,lung,false,new,,,

Columns
-------
``patient_id``, ``lesion_id``, ``organ``
    Free text (``organ`` groups target lesions for the two-per-organ rule).
``study_date``
    ISO date ``YYYY-MM-DD``. The baseline of a patient is the earliest study,
    unless :func:`read_measurements` is given the baseline dates.
``is_node``
    ``true``/``false`` (also ``yes``/``no``, ``1``/``0``). Nodes are measured in
    short axis (RECIST 1.1; clinical.md §7.1).
``role``
    ``target``, ``non_target`` or ``new`` (a new lesion at a follow-up study).
``longest_diameter_mm``, ``short_axis_mm``
    Millimetres, numbers only. A column in another unit (``longest_diameter_cm``) or
    a value with a unit (``"2.1 cm"``) is refused: units are never guessed.
``status``
    * target lesions: empty (measured), or ``too_small`` (RECIST "too small to
      measure", default 5 mm), ``absent`` (disappeared, 0 mm) or ``not_evaluated``;
    * non-target lesions (required): ``present``, ``absent``,
      ``unequivocal_progression`` or ``not_evaluated``;
    * new lesions: empty or ``present`` (unequivocal), ``equivocal`` (PD only once a
      later study confirms it, then dated to its first appearance) or ``absent``.
``slice_thickness_mm`` (optional)
    CT slice thickness; above 5 mm the RECIST measurability minimum becomes twice the
    slice thickness.

A baseline lesion with no row at a follow-up study counts as not evaluated there.
Other columns (notes) are ignored.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from os import PathLike
from pathlib import Path

from theranet.errors import ResponseError

__all__ = [
    "COLUMNS",
    "NEW_STATUSES",
    "NON_TARGET_STATUSES",
    "ROLES",
    "TARGET_STATUSES",
    "Measurement",
    "ResponseError",
    "Study",
    "group_studies",
    "read_measurements",
    "validate_measurements",
]

#: Required CSV columns, in the recommended order.
COLUMNS: tuple[str, ...] = (
    "patient_id",
    "study_date",
    "lesion_id",
    "organ",
    "is_node",
    "role",
    "longest_diameter_mm",
    "short_axis_mm",
    "status",
)
#: Lesion roles.
ROLES: tuple[str, ...] = ("target", "non_target", "new")
#: Accepted ``status`` per role (``""`` = empty cell).
TARGET_STATUSES: tuple[str, ...] = ("", "too_small", "absent", "not_evaluated")
NON_TARGET_STATUSES: tuple[str, ...] = (
    "present",
    "absent",
    "unequivocal_progression",
    "not_evaluated",
)
NEW_STATUSES: tuple[str, ...] = ("", "present", "equivocal", "absent")
_STATUSES = {"target": TARGET_STATUSES, "non_target": NON_TARGET_STATUSES, "new": NEW_STATUSES}

_OPTIONAL_COLUMNS = ("slice_thickness_mm",)
_LENGTH_COLUMNS = ("longest_diameter", "short_axis", "slice_thickness")
_TRUE = frozenset({"true", "yes", "y", "1", "t"})
_FALSE = frozenset({"false", "no", "n", "0", "f"})
_NUMBER_WITH_UNIT = re.compile(r"^\s*[-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)\s*([^\d\s.,+-].*?)\s*$")


def _label(name: str, row: int | None) -> str:
    return f"{name} (row {row})" if row is not None else name


def _key(text: str) -> str:
    return "_".join(str(text).strip().lower().replace("-", " ").replace("_", " ").split())


@dataclass(frozen=True)
class Measurement:
    """One lesion at one study, as recorded.

    Parameters
    ----------
    patient_id, lesion_id, organ : str
        Identifiers; ``organ`` groups target lesions (at most two per organ).
    study_date : datetime.date
        Date of the study (imaging time point).
    is_node : bool
        Lymph node (measured in short axis).
    role : {"target", "non_target", "new"}
    longest_diameter_mm : float or None
        Longest diameter, mm (non-nodal target lesions).
    short_axis_mm : float or None
        Short axis, mm (lymph nodes).
    status : str
        See the module docstring; ``""`` for a measured target lesion.
    slice_thickness_mm : float or None
        CT slice thickness, mm, when recorded.
    row : int or None
        Line of the CSV file (header = line 1), for messages.
    """

    patient_id: str
    study_date: date
    lesion_id: str
    organ: str
    is_node: bool
    role: str
    longest_diameter_mm: float | None = None
    short_axis_mm: float | None = None
    status: str = ""
    slice_thickness_mm: float | None = None
    row: int | None = None

    def __post_init__(self) -> None:
        row = self.row
        for name in ("patient_id", "lesion_id"):
            if not str(getattr(self, name)).strip():
                raise ResponseError(_label(name, row), "is empty", fix=f"give the {name}")
        if not isinstance(self.study_date, date):
            raise ResponseError(
                _label("study_date", row),
                "must be a date",
                self.study_date,
                "give an ISO date YYYY-MM-DD",
            )
        if self.role not in ROLES:
            raise ResponseError(
                _label("role", row),
                "unknown lesion role",
                self.role,
                f"use one of {', '.join(ROLES)}",
            )
        allowed = _STATUSES[self.role]
        if self.status not in allowed:
            shown = ", ".join(repr(s) if s else "empty" for s in allowed)
            raise ResponseError(
                _label("status", row),
                f"not a status of a {self.role} lesion",
                self.status,
                f"use one of {shown}",
            )
        for name in ("longest_diameter_mm", "short_axis_mm", "slice_thickness_mm"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ResponseError(_label(name, row), "must be a number in mm", value)
            if not math.isfinite(value) or value < 0:
                raise ResponseError(
                    _label(name, row), "must be a finite number >= 0", value, "give the size in mm"
                )
        if self.slice_thickness_mm == 0:
            raise ResponseError(
                _label("slice_thickness_mm", row), "must be > 0", 0.0, "give the slice thickness"
            )
        if self.role == "target" and self.status in ("too_small", "absent", "not_evaluated"):
            measured = self.short_axis_mm if self.is_node else self.longest_diameter_mm
            if measured is not None and not (self.status == "absent" and measured == 0):
                raise ResponseError(
                    _label("status", row),
                    f"status {self.status!r} contradicts the recorded diameter {measured} mm",
                    self.status,
                    "give either the measurement or the status, not both",
                )

    @property
    def label(self) -> str:
        """``patient/date/lesion`` (for messages)."""
        return f"{self.patient_id}/{self.study_date.isoformat()}/{self.lesion_id}"


@dataclass(frozen=True)
class Study:
    """All measurements of one patient on one date (one imaging time point).

    Parameters
    ----------
    patient_id : str
    study_date : datetime.date
    measurements : tuple of Measurement
    is_baseline : bool
    """

    patient_id: str
    study_date: date
    measurements: tuple[Measurement, ...]
    is_baseline: bool = False

    def by_lesion(self) -> dict[str, Measurement]:
        """Measurements keyed by lesion id."""
        return {m.lesion_id: m for m in self.measurements}


def _parse_length(text: str, column: str, row: int) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        unit = _NUMBER_WITH_UNIT.match(text)
        if unit:
            found = unit.group(1)
            if found.lower() == "mm":
                fix = f"write the number only; the column {column} is already in mm"
            else:
                fix = f"convert to mm (1 cm = 10 mm) and write the number only in {column}"
            raise ResponseError(
                _label(column, row),
                f"value carries a unit ({found}); units are never guessed",
                text,
                fix,
            ) from None
        fix = "use a point as decimal separator" if "," in text else "give a number in mm"
        raise ResponseError(_label(column, row), "not a number", text, fix) from None
    if not math.isfinite(value):
        raise ResponseError(_label(column, row), "must be finite", text, "give a number in mm")
    if value < 0:
        raise ResponseError(_label(column, row), "must be >= 0", text, "give a size in mm")
    return value


def _parse_date(text: str, row: int) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ResponseError(
            _label("study_date", row), "not an ISO date", text, "write dates as YYYY-MM-DD"
        ) from None


def _parse_bool(text: str, row: int) -> bool:
    key = text.strip().lower()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise ResponseError(_label("is_node", row), "not a yes/no value", text, "write true or false")


def _check_header(fieldnames: Sequence[str] | None, source: str) -> dict[str, str]:
    """Map canonical column name -> header as written; refuse other length units."""
    if not fieldnames:
        raise ResponseError(
            "header", "the file is empty", fix="write the header row", source=source
        )
    header = {}
    for raw in fieldnames:
        if raw is None:
            continue
        name = _key(raw)
        for stem in _LENGTH_COLUMNS:
            if name.startswith(stem) and name != f"{stem}_mm":
                unit = name[len(stem) :].lstrip("_") or "no unit"
                raise ResponseError(
                    f"column {raw!r}",
                    f"lengths must be in mm, this column is in {unit}",
                    raw,
                    f"convert the values to mm and name the column {stem}_mm (units are never "
                    "guessed)",
                    source,
                )
        if name in header:
            raise ResponseError(f"column {raw!r}", "appears twice", raw, "keep one", source)
        header[name] = raw
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ResponseError(
            "header",
            f"missing column(s) {', '.join(missing)}",
            list(fieldnames),
            f"the table needs the columns {', '.join(COLUMNS)}",
            source,
        )
    return header


def read_measurements(
    path: str | PathLike[str],
    *,
    baseline_dates: Mapping[str, date] | None = None,
) -> list[Measurement]:
    """Read and validate a lesion measurement table (CSV).

    Parameters
    ----------
    path : path-like
        CSV file with the columns :data:`COLUMNS` (see the module docstring).
    baseline_dates : mapping of str to datetime.date, optional
        Baseline study date per patient id (e.g. from the treatment record). By
        default the earliest study of each patient is its baseline.

    Returns
    -------
    list of Measurement
        In file order.

    Raises
    ------
    ResponseError
        Naming the column and row: missing or non-mm length columns, unknown role or
        status, non-numeric, negative or unit-suffixed diameters, bad dates, and the
        table-level checks of :func:`validate_measurements`.
    """
    path = Path(path)
    source = path.name
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ResponseError("path", f"cannot open ({exc.strerror})", str(path)) from None
    measurements = []
    with handle:
        reader = csv.DictReader(handle)
        header = _check_header(reader.fieldnames, source)
        for record in reader:
            row = reader.line_num
            cells = {name: (record.get(raw) or "") for name, raw in header.items()}
            if not any(cell.strip() for cell in cells.values()):
                continue
            try:
                measurements.append(_measurement(cells, row))
            except ResponseError as exc:
                raise ResponseError(exc.field, exc.problem, exc.value, exc.fix, source) from None
    if not measurements:
        raise ResponseError("rows", "the table has no measurements", fix="add rows", source=source)
    try:
        validate_measurements(measurements, baseline_dates=baseline_dates)
    except ResponseError as exc:
        raise ResponseError(exc.field, exc.problem, exc.value, exc.fix, source) from None
    return measurements


def _measurement(cells: Mapping[str, str], row: int) -> Measurement:
    role = _key(cells["role"])
    if role not in ROLES:
        raise ResponseError(
            _label("role", row),
            "unknown lesion role",
            cells["role"],
            f"use one of {', '.join(ROLES)}",
        )
    thickness = cells.get("slice_thickness_mm", "")
    return Measurement(
        patient_id=cells["patient_id"].strip(),
        study_date=_parse_date(cells["study_date"], row),
        lesion_id=cells["lesion_id"].strip(),
        organ=cells["organ"].strip(),
        is_node=_parse_bool(cells["is_node"], row),
        role=role,
        longest_diameter_mm=_parse_length(cells["longest_diameter_mm"], "longest_diameter_mm", row),
        short_axis_mm=_parse_length(cells["short_axis_mm"], "short_axis_mm", row),
        status=_key(cells["status"]),
        slice_thickness_mm=_parse_length(thickness, "slice_thickness_mm", row),
        row=row,
    )


def validate_measurements(
    measurements: Iterable[Measurement],
    *,
    baseline_dates: Mapping[str, date] | None = None,
) -> None:
    """Check the table-level rules; raise :class:`ResponseError` on the first problem.

    * no duplicate (patient, date, lesion);
    * no study before the patient's baseline (when ``baseline_dates`` is given), and a
      study on the baseline date;
    * the baseline holds at least one target or non-target lesion and no new lesion;
    * every follow-up lesion that is not ``new`` was recorded at baseline, with the
      same role, node flag and organ;
    * a new lesion's id is not that of a baseline lesion.
    """
    measurements = list(measurements)
    seen: dict[tuple[str, date, str], Measurement] = {}
    for m in measurements:
        key = (m.patient_id, m.study_date, m.lesion_id)
        if key in seen:
            first = seen[key].row
            raise ResponseError(
                _label("lesion_id", m.row),
                f"duplicate lesion at the same study (first at row {first})"
                if first is not None
                else "duplicate lesion at the same study",
                m.label,
                "keep one row per patient, study date and lesion",
            )
        seen[key] = m
    for patient_id, studies in _group(measurements, baseline_dates).items():
        _validate_patient(patient_id, studies)


def _group(
    measurements: Sequence[Measurement], baseline_dates: Mapping[str, date] | None
) -> dict[str, tuple[Study, ...]]:
    by_patient: dict[str, dict[date, list[Measurement]]] = {}
    for m in measurements:
        by_patient.setdefault(m.patient_id, {}).setdefault(m.study_date, []).append(m)
    grouped = {}
    for patient_id, by_date in by_patient.items():
        dates = sorted(by_date)
        baseline = dates[0]
        if baseline_dates is not None and patient_id in baseline_dates:
            baseline = baseline_dates[patient_id]
            early = [d for d in dates if d < baseline]
            if early:
                m = by_date[early[0]][0]
                raise ResponseError(
                    _label("study_date", m.row),
                    f"study before the baseline {baseline.isoformat()} of patient {patient_id}",
                    m.study_date.isoformat(),
                    "correct the date or the baseline date, or leave pre-baseline studies out",
                )
            if baseline not in by_date:
                raise ResponseError(
                    "baseline_dates",
                    f"patient {patient_id} has no study on the baseline date",
                    baseline.isoformat(),
                    f"give one of the study dates {', '.join(d.isoformat() for d in dates)}",
                )
        grouped[patient_id] = tuple(
            Study(patient_id, d, tuple(by_date[d]), is_baseline=(d == baseline)) for d in dates
        )
    return grouped


def _validate_patient(patient_id: str, studies: Sequence[Study]) -> None:
    baseline = studies[0]
    for m in baseline.measurements:
        if m.role == "new":
            raise ResponseError(
                _label("role", m.row),
                "a new lesion cannot be recorded at baseline",
                m.label,
                "record baseline disease as target or non_target",
            )
    reference = {m.lesion_id: m for m in baseline.measurements}
    for study in studies[1:]:
        for m in study.measurements:
            first = reference.get(m.lesion_id)
            if m.role == "new":
                if first is not None and first.study_date == baseline.study_date:
                    raise ResponseError(
                        _label("lesion_id", m.row),
                        "a new lesion reuses the id of a baseline lesion",
                        m.label,
                        "give the new lesion its own id",
                    )
                if first is not None and first.role != "new":
                    raise ResponseError(
                        _label("role", m.row),
                        "role changed since baseline",
                        m.role,
                        f"keep role {first.role!r}",
                    )
                reference.setdefault(m.lesion_id, m)
                continue
            if first is None or first.role == "new":
                raise ResponseError(
                    _label("lesion_id", m.row),
                    f"{m.role} lesion with no baseline record (baseline "
                    f"{baseline.study_date.isoformat()})",
                    m.label,
                    "record it at baseline, correct the id, or give role 'new' if it appeared "
                    "after baseline",
                )
            for name in ("role", "is_node"):
                if getattr(m, name) != getattr(first, name):
                    raise ResponseError(
                        _label(name, m.row),
                        "changed since baseline",
                        getattr(m, name),
                        f"keep the baseline value {getattr(first, name)!r}",
                    )
            if _key(m.organ) != _key(first.organ):
                raise ResponseError(
                    _label("organ", m.row),
                    "changed since baseline",
                    m.organ,
                    f"keep the baseline value {first.organ!r}",
                )


def group_studies(
    measurements: Iterable[Measurement],
    *,
    baseline_dates: Mapping[str, date] | None = None,
) -> dict[str, tuple[Study, ...]]:
    """Group validated measurements by patient into studies ordered by date.

    Parameters
    ----------
    measurements : iterable of Measurement
    baseline_dates : mapping of str to datetime.date, optional
        As in :func:`read_measurements`.

    Returns
    -------
    dict of str to tuple of Study
        Patient id -> studies, earliest first; the first is the baseline.
    """
    measurements = list(measurements)
    validate_measurements(measurements, baseline_dates=baseline_dates)
    return _group(measurements, baseline_dates)
