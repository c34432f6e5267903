"""Folder discovery: a directory tree -> patients, studies, series, time points.

Only headers are read. Patients are keyed by a pseudonym (a hash of Patient ID
and birth date), never by the identifier itself, so the result can be logged.
NIfTI files with a theranet sidecar are discovered too (one series each).

A *time point* is a group of series whose acquisitions start within
``gap_h`` of each other after the same injection: a SPECT/CT session gives one
time point holding its NM and CT series.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from theranet.errors import Assumptions, DicomReadError, Strictness, TheranetError
from theranet.io._dicom_common import (
    dicom_datetime,
    radiopharmaceutical_info,
    read_dataset,
)

logger = logging.getLogger(__name__)

__all__ = ["PatientGroup", "SeriesRef", "Study", "TimePoint", "discover"]


@dataclass(frozen=True)
class SeriesRef:
    """One series found on disk.

    Attributes
    ----------
    paths : tuple of Path
        Its files (one for multi-frame NM and NIfTI).
    kind : str
        ``"spect"``, ``"planar"``, ``"pet"``, ``"ct"``, ``"mr"``, ``"nifti"`` or ``"other"``.
    modality : str
    series_uid, study_uid, frame_of_reference_uid : str
    description : str
    acquisition_start : datetime or None
    injection : datetime or None
    hours_after_injection : float or None
    """

    paths: tuple[Path, ...]
    kind: str
    modality: str
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    description: str
    acquisition_start: datetime | None
    injection: datetime | None

    @property
    def hours_after_injection(self) -> float | None:
        if self.injection is None or self.acquisition_start is None:
            return None
        try:
            return (self.acquisition_start - self.injection).total_seconds() / 3600.0
        except TypeError:  # naive vs aware
            return None

    @property
    def is_emission(self) -> bool:
        return self.kind in ("spect", "planar", "pet")


@dataclass(frozen=True)
class TimePoint:
    """Series acquired together after one injection."""

    injection: datetime | None
    hours_after_injection: float | None
    series: tuple[SeriesRef, ...]

    def of_kind(self, kind: str) -> tuple[SeriesRef, ...]:
        return tuple(s for s in self.series if s.kind == kind)


@dataclass(frozen=True)
class Study:
    study_uid: str
    series: tuple[SeriesRef, ...]


@dataclass(frozen=True)
class PatientGroup:
    """All series of one patient.

    Attributes
    ----------
    pseudonym : str
        12 hex digits, a hash of the patient identity (not reversible).
    studies : tuple of Study
    time_points : tuple of TimePoint
        Sorted by injection, then time after injection.
    skipped : tuple of str
        Files that were not DICOM images, with the reason (lenient discovery).
    """

    pseudonym: str
    studies: tuple[Study, ...]
    time_points: tuple[TimePoint, ...]
    skipped: tuple[str, ...] = field(default=())


def _pseudonym(patient_id: str, birth: str) -> str:
    return hashlib.sha256(f"{patient_id}|{birth}".encode()).hexdigest()[:12]


def _kind(ds) -> str:
    modality = str(ds.get("Modality", "")).upper()
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if modality == "NM":
        if any("TOMO" in v for v in image_type[2:3]) or "RECON TOMO" in image_type:
            return "spect"
        return "planar"
    return {"PT": "pet", "CT": "ct", "MR": "mr"}.get(modality, "other")


def _series_start(ds) -> datetime | None:
    for date_kw, time_kw in (
        ("AcquisitionDate", "AcquisitionTime"),
        ("SeriesDate", "SeriesTime"),
        ("StudyDate", "StudyTime"),
    ):
        dt = dicom_datetime(ds, date_kw, time_kw)
        if dt is not None:
            return dt
    return None


#: NIfTI sidecar (modality, quantity) -> series kind; anything else is "nifti".
_NIFTI_KINDS = {
    ("NM", "activity_concentration"): "spect",
    ("NM", "counts"): "spect",
    ("PT", "activity_concentration"): "pet",
    ("CT", "hu"): "ct",
}


def _nifti_kind(meta: dict) -> str:
    """Kind of a NIfTI image from its sidecar: a SPECT, PET or CT volume as the
    project writes them (modality and quantity), else ``"nifti"``."""
    key = (str(meta.get("modality") or "").upper(), str(meta.get("quantity") or "").lower())
    return _NIFTI_KINDS.get(key, "nifti")


def _nifti_series(path: Path) -> tuple[str, SeriesRef] | None:
    from theranet.io.nifti import sidecar_path

    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text())
    except json.JSONDecodeError:
        return None
    tm = meta.get("timing") or {}

    def iso(v):
        try:
            return datetime.fromisoformat(v) if v else None
        except ValueError:
            return None

    key = str(meta.get("patient_pseudonym") or "nifti")
    ref = SeriesRef(
        paths=(path,),
        kind=_nifti_kind(meta),
        modality=str(meta.get("modality") or "OT"),
        series_uid=str(path),
        study_uid=str(path.parent),
        frame_of_reference_uid="",
        description=str(meta.get("quantity", "")),
        acquisition_start=iso(tm.get("acquisition_start")),
        injection=iso(tm.get("injection")),
    )
    return key, ref


def discover(
    root: str | Path,
    *,
    strictness: Strictness | str = Strictness.STRICT,
    gap_h: float = 1.0,
) -> list[PatientGroup]:
    """Group every DICOM and sidecar-NIfTI file under ``root``.

    Parameters
    ----------
    root : path
        Folder to walk recursively.
    strictness : {"strict", "lenient"}
        Strict discovery refuses a file that is not DICOM (it may be a
        truncated image); lenient discovery skips it and lists it in
        ``PatientGroup.skipped``. Hidden files, ``DICOMDIR``, JSON sidecars and
        text files are always ignored.
    gap_h : float
        Series starting within ``gap_h`` hours of each other form one time point.

    Returns
    -------
    list of PatientGroup
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"root: not a folder: {root}")
    mode = Strictness.parse(strictness)
    files: dict[tuple[str, str, str], list] = defaultdict(list)
    headers: dict[tuple[str, str, str], object] = {}
    nifti: dict[str, list[SeriesRef]] = defaultdict(list)
    skipped: list[str] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith(".") or path.name == "DICOMDIR":
            continue
        if path.suffix.lower() in (".json", ".txt", ".md", ".csv", ".html", ".pdf"):
            continue
        if path.name.endswith((".nii", ".nii.gz")):
            found = _nifti_series(path)
            if found is None:
                skipped.append(f"{path.relative_to(root)}: NIfTI without a sidecar")
            else:
                nifti[found[0]].append(found[1])
            continue
        try:
            ds = read_dataset(path, stop_before_pixels=True)
        except DicomReadError as exc:
            if mode is Strictness.STRICT:
                raise
            skipped.append(f"{path.relative_to(root)}: {exc.problem}")
            continue
        key = (
            _pseudonym(str(ds.get("PatientID", "")), str(ds.get("PatientBirthDate", ""))),
            str(ds.get("StudyInstanceUID", "")),
            str(ds.get("SeriesInstanceUID", "")),
        )
        files[key].append(path)
        headers.setdefault(key, ds)

    by_patient: dict[str, list[SeriesRef]] = defaultdict(list)
    for key, paths in files.items():
        ds = headers[key]
        start = _series_start(ds)
        kind = _kind(ds)
        injection = None
        if kind in ("spect", "planar", "pet"):
            try:
                info = radiopharmaceutical_info(
                    ds, start, Assumptions(Strictness.LENIENT), require_injection=False
                )
                injection = info.injection
            except TheranetError as exc:
                logger.warning("series %s: injection time unreadable: %s", key[2], exc)
        by_patient[key[0]].append(
            SeriesRef(
                paths=tuple(sorted(paths)),
                kind=kind,
                modality=str(ds.get("Modality", "")),
                series_uid=key[2],
                study_uid=key[1],
                frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
                description=str(ds.get("SeriesDescription", "")),
                acquisition_start=start,
                injection=injection,
            )
        )
    for key, refs in nifti.items():
        by_patient[key].extend(refs)

    groups = []
    for pseudonym, refs in sorted(by_patient.items()):
        studies: dict[str, list[SeriesRef]] = defaultdict(list)
        for r in refs:
            studies[r.study_uid].append(r)
        groups.append(
            PatientGroup(
                pseudonym=pseudonym,
                studies=tuple(Study(uid, tuple(s)) for uid, s in sorted(studies.items())),
                time_points=_time_points(refs, gap_h),
                skipped=tuple(skipped),
            )
        )
    logger.info("discovered %d patient(s) under %s", len(groups), root.name)
    return groups


def _time_points(refs: list[SeriesRef], gap_h: float) -> tuple[TimePoint, ...]:
    """Cluster series by acquisition start; a cluster takes the injection of its
    emission series (all of them must agree)."""
    timed = sorted(
        (r for r in refs if r.acquisition_start is not None),
        key=lambda r: r.acquisition_start.replace(tzinfo=None),
    )
    clusters: list[list[SeriesRef]] = []
    for r in timed:
        if clusters:
            last = clusters[-1][-1].acquisition_start.replace(tzinfo=None)
            if (r.acquisition_start.replace(tzinfo=None) - last).total_seconds() <= gap_h * 3600:
                clusters[-1].append(r)
                continue
        clusters.append([r])
    out = []
    for c in clusters:
        injections = {r.injection for r in c if r.is_emission and r.injection is not None}
        if len(injections) > 1:
            logger.warning("time point with %d different injection times", len(injections))
        inj = min(injections, key=lambda d: d.replace(tzinfo=None)) if injections else None
        emission = [r for r in c if r.is_emission and r.acquisition_start is not None]
        hours = None
        if inj is not None and emission:
            try:
                hours = (emission[0].acquisition_start - inj).total_seconds() / 3600.0
            except TypeError:
                hours = None
        out.append(TimePoint(injection=inj, hours_after_injection=hours, series=tuple(c)))
    untimed = [r for r in refs if r.acquisition_start is None]
    if untimed:
        out.append(TimePoint(injection=None, hours_after_injection=None, series=tuple(untimed)))
    return tuple(out)
