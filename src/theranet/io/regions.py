"""Regions from DICOM SEG, DICOM RT Structure Set and NIfTI, on a reference grid.

Every reader returns :class:`~theranet.image.Labels` on the grid of a
``reference`` :class:`~theranet.image.Image` (usually the CT the regions were
drawn on): same shape, same affine, one label per voxel, 0 for background.

Names
    DICOM names (Segment Label (0062,0005), ROI Name (3006,0026)) are
    normalised: surrounding blanks dropped, lower case, every run of blanks
    made one underscore (``"Kidney  Left"`` -> ``"kidney_left"``). Two regions
    of one file with the same normalised name are refused
    (:class:`RegionError`). ``regions=`` selects regions by (normalised) name.
Label values
    SEG: the Segment Number. RTSTRUCT: 1, 2... in the order of the Structure
    Set ROI Sequence (the ROI Number of each is recorded in the provenance).
Overlaps
    A label map holds one region per voxel. ``overlap="error"`` (default)
    refuses regions that share voxels on the reference grid, naming them;
    ``overlap="last"`` gives a shared voxel to the region read last (the
    higher Segment Number; the later ROI in the Structure Set ROI Sequence)
    and records the overlaps.
Frame of reference
    :class:`~theranet.image.Image` does not carry a Frame of Reference UID.
    Pass the reference series' UID as ``frame_of_reference_uid`` (or give the
    reference an attribute of that name): a SEG or RTSTRUCT in another frame of
    reference is then refused (:class:`~theranet.errors.GeometryError`).
    Without it the UIDs are not compared (recorded in the provenance), and only
    the geometry is checked: every labelled voxel and every contour must lie
    on the reference grid.
SEG placement (:func:`read_seg`)
    Frames are read through :mod:`highdicom` (binary, fractional or label-map
    SEG; a fractional value counts as inside from ``fraction_threshold``).
    When the SEG voxels fall on reference voxel centres (in-plane axes and
    slices on the reference's within 0.1 voxel, same slice spacing within 1 %)
    they are copied directly; otherwise each segment is resampled
    (nearest neighbour, through patient coordinates) with
    :meth:`theranet.image.Image.resample_to`. The SEG slice spacing is Spacing
    Between Slices (0018,0088), else Slice Thickness (0018,0050), else the
    spacing of the frame positions; frames absent from a SEG are empty.
RTSTRUCT rasterisation (:func:`read_rtstruct`)
    CLOSED_PLANAR contours are mapped into the reference's continuous index
    space (inverse affine). Each must be parallel to reference slices (its
    points within 0.05 slice of one plane; an oblique contour is refused) and
    is put on the nearest slice (so within half a slice of it). A voxel is
    inside when its centre is inside the polygon by the even-odd rule, and the
    contours of one ROI on one slice combine by exclusive or (a contour inside
    another is a hole). A centre on a left or lower polygon edge counts as
    inside, one on a right or upper edge as outside. POINT and OPEN contours
    are skipped and recorded; an ROI with no closed contour is left out.
NIfTI (:func:`read_regions`)
    Read with :func:`theranet.io.nifti.read_labels`; a label map on another
    grid than the reference is refused: resampling is the caller's decision.

Regions outside the reference grid (a labelled SEG voxel, a contour vertex
more than half a voxel beyond the grid's edge, a contour beyond the first or
last slice) are refused, since cutting them would change the region.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from theranet.errors import (
    Assumptions,
    DicomReadError,
    GeometryError,
    MissingFieldError,
    TheranetError,
)
from theranet.image import Image, Labels, Provenance, Quantity
from theranet.io._dicom_common import read_dataset, tag_name

logger = logging.getLogger(__name__)

__all__ = [
    "LABEL_MAP_SEGMENTATION_STORAGE",
    "RTSTRUCT_STORAGE",
    "SEGMENTATION_STORAGE",
    "RegionError",
    "read_regions",
    "read_rtstruct",
    "read_seg",
]

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
#: Label Map Segmentation Storage (DICOM 2024, segmentation type LABELMAP).
LABEL_MAP_SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
_SEG_CLASSES = (SEGMENTATION_STORAGE, LABEL_MAP_SEGMENTATION_STORAGE)
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"

_OVERLAP_POLICIES = ("error", "last")
#: Largest offset (reference voxels) at which SEG voxels count as on reference centres.
_ALIGN_TOL = 0.1
#: Relative difference of slice spacings below which a SEG counts as on the reference slices.
_SPACING_RTOL = 0.01
#: Largest spread (reference slices) of a contour's points across its plane.
_PLANE_TOL = 0.05
#: Contour offsets from a slice plane (in slices) above which the offset is recorded.
_OFFSET_NOTE = 0.01
#: How far (voxels) beyond the centres of the edge voxels a contour vertex may lie.
_EDGE_TOL = 1.0
#: Round-off below which a coordinate is taken as the integer it is next to.
_SNAP = 1e-6
#: Tolerance (mm) on the affines of a NIfTI label map and the reference (float32 storage).
_NIFTI_ATOL_MM = 1e-3


class RegionError(TheranetError, ValueError):
    """Regions cannot be put in one label map: duplicate names, overlaps, unknown names."""


# ---------------------------------------------------------------- public API


def read_regions(path: str | Path, reference: Image, **kwargs) -> Labels:
    """Read regions from a NIfTI label map, a DICOM SEG or a DICOM RTSTRUCT.

    Parameters
    ----------
    path : str or Path
        ``.nii``/``.nii.gz`` (with its sidecar), or one DICOM file: Segmentation
        Storage (SOP Class 1.2.840.10008.5.1.4.1.1.66.4), Label Map Segmentation
        Storage (1.2.840.10008.5.1.4.1.1.66.7) or RT Structure Set Storage
        (1.2.840.10008.5.1.4.1.1.481.3).
    reference : Image
        The image supplying the grid (shape and affine) of the result.
    **kwargs
        Options of the reader chosen: :func:`read_seg`, :func:`read_rtstruct`,
        or ``names`` (label value -> name, for a NIfTI file without sidecar).
        Options set to None are dropped, so one set of options can be passed
        whatever the file is; an option the chosen reader does not take raises
        ``TypeError``.

    Returns
    -------
    Labels
        On the grid of ``reference``.

    Raises
    ------
    DicomReadError
        The file is neither NIfTI nor a DICOM SEG or RTSTRUCT.
    GeometryError
        A NIfTI label map on another grid than ``reference`` (resample it with
        ``labels.resample_to(reference)`` if that is what you want), or see the
        DICOM readers.
    """
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    path = Path(path)
    if path.name.lower().endswith((".nii", ".nii.gz")):
        return _read_nifti_regions(path, reference, **kwargs)
    if not path.exists():
        raise DicomReadError("path", "does not exist", path.name, "check the path")
    if path.is_dir():
        raise DicomReadError(
            "path",
            "is a folder; regions are read from one file",
            path.name,
            "give the SEG, RTSTRUCT or NIfTI file itself",
        )
    try:
        ds = read_dataset(path, stop_before_pixels=True)
    except DicomReadError as exc:
        raise DicomReadError(
            "path",
            f"not a region file ({exc.problem})",
            path.name,
            "give a NIfTI label map (.nii, .nii.gz), a DICOM SEG or a DICOM RTSTRUCT",
        ) from None
    sop = str(ds.get("SOPClassUID", ""))
    if sop in _SEG_CLASSES:
        return read_seg(path, reference, **kwargs)
    if sop == RTSTRUCT_STORAGE:
        return read_rtstruct(path, reference, **kwargs)
    raise DicomReadError(
        tag_name("SOPClassUID"),
        "not a Segmentation or an RT Structure Set",
        f"{sop} (Modality {ds.get('Modality', '(absent)')})",
        "give a DICOM SEG (1.2.840.10008.5.1.4.1.1.66.4 or .66.7), RTSTRUCT "
        "(1.2.840.10008.5.1.4.1.1.481.3) or a NIfTI label map",
        path.name,
    )


def read_seg(
    path: str | Path,
    reference: Image,
    *,
    overlap: str = "error",
    regions: Iterable[str] | None = None,
    frame_of_reference_uid: str | None = None,
    fraction_threshold: float = 0.5,
) -> Labels:
    """Read a DICOM Segmentation onto the grid of ``reference``.

    Parameters
    ----------
    path : str or Path
        The SEG file (binary, fractional or label-map).
    reference : Image
        The image supplying the grid of the result (the CT the SEG was drawn on,
        or any image in the same frame of reference).
    overlap : {"error", "last"}
        ``"error"`` refuses segments that share reference voxels; ``"last"``
        gives a shared voxel to the higher Segment Number (recorded).
    regions : iterable of str, optional
        Segments to read, by normalised Segment Label; default all.
    frame_of_reference_uid : str, optional
        Frame of Reference UID of ``reference``; default its
        ``frame_of_reference_uid`` attribute if it has one. When known, a SEG
        in another frame of reference is refused.
    fraction_threshold : float
        Fractional SEG: a voxel is inside a segment when its fraction
        (probability or occupancy, 0-1) is at least this. In (0, 1].

    Returns
    -------
    Labels
        Label value = Segment Number; names = normalised Segment Labels. Empty
        segments keep their names.

    Raises
    ------
    DicomReadError
        Not a SEG, or undecodable.
    GeometryError
        Another frame of reference, frames that do not form a volume, or
        labelled voxels outside the reference grid.
    RegionError
        Duplicate names, overlapping segments (``overlap="error"``), or an
        unknown name in ``regions``.
    """
    import highdicom as hd

    _check_overlap(overlap)
    if not 0.0 < float(fraction_threshold) <= 1.0:
        raise ValueError(f"fraction_threshold: must be in (0, 1], got {fraction_threshold!r}")
    path = Path(path)
    source = f"SEG {path.name}"
    ds = read_dataset(path)
    if str(ds.get("SOPClassUID", "")) not in _SEG_CLASSES:
        raise DicomReadError(
            tag_name("SOPClassUID"),
            "not (Label Map) Segmentation Storage",
            str(ds.get("SOPClassUID", "")),
            "read an RTSTRUCT with read_rtstruct, or any region file with read_regions",
            path.name,
        )
    try:
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DicomReadError(
            "Segmentation",
            f"cannot be decoded by highdicom ({type(exc).__name__}: {exc})",
            path.name,
            "re-export the SEG",
        ) from None
    assumptions = Assumptions()
    steps: list[str] = []
    seg_for = _text(ds, "FrameOfReferenceUID")
    if seg_for is None:
        raise MissingFieldError(
            tag_name("FrameOfReferenceUID"),
            "absent: the segments cannot be placed in patient coordinates",
            None,
            "use a SEG of a volume (one with a frame of reference), e.g. drawn on the CT",
            source,
        )
    _check_frame_of_reference(
        {seg_for: []}, reference, frame_of_reference_uid, source, assumptions, steps
    )

    labels_by_number = {}
    for number in seg.segment_numbers:
        label = str(seg.get_segment_description(number).segment_label)
        labels_by_number[int(number)] = label
    chosen = _select(labels_by_number, regions, source, "Segment Label (0062,0005)")
    seg_type = str(getattr(seg.segmentation_type, "value", seg.segmentation_type))
    fractional = seg_type == "FRACTIONAL"
    steps.append(
        f"DICOM SEG ({seg_type}, {len(labels_by_number)} segments, {len(chosen)} read)"
        + (f"; fraction >= {float(fraction_threshold):g} taken as inside" if fractional else "")
    )

    step_mm, spacing_src = _seg_slice_spacing(ds)
    acc = _LabelMap(reference.shape, max(chosen, default=0), overlap)
    paths_taken: set[str] = set()
    for number, name in chosen.items():
        try:
            vol = seg.get_volume(
                segment_numbers=[number],
                dtype=np.float32 if fractional else np.uint8,
            )
        except (ValueError, RuntimeError, KeyError, IndexError) as exc:
            raise GeometryError(
                "PlanePositionSequence (0020,9113)",
                f"the SEG frames do not form a regular volume ({type(exc).__name__}: {exc})",
                None,
                "re-export the SEG from the volume it was drawn on",
                source,
            ) from None
        arr = np.asarray(vol.array)[..., 0]
        mask = arr >= float(fraction_threshold) if fractional else arr > 0
        affine = np.asarray(vol.affine, dtype=np.float64)
        mask, affine = _densify(mask, affine, step_mm, spacing_src, source, assumptions)
        if not mask.any():
            continue
        idx, how = _place(mask, affine, reference, name, source)
        paths_taken.add(how)
        acc.add(number, idx)
    for how in sorted(paths_taken):
        steps.append(f"segments {how}")
    names = {v: _region_name(labels_by_number[v]) for v in chosen}
    data = acc.finish(names, source, assumptions, "Segment Number")
    return _result(data, reference, names, source, steps, assumptions, "SEG")


def read_rtstruct(
    path: str | Path,
    reference: Image,
    *,
    overlap: str = "error",
    regions: Iterable[str] | None = None,
    frame_of_reference_uid: str | None = None,
) -> Labels:
    """Rasterise a DICOM RT Structure Set onto the grid of ``reference``.

    Parameters
    ----------
    path : str or Path
        The RTSTRUCT file.
    reference : Image
        The image supplying the grid: contours must lie on its slice planes
        (within half a slice), parallel to them.
    overlap : {"error", "last"}
        ``"error"`` refuses ROIs that share voxels; ``"last"`` gives a shared
        voxel to the ROI later in the Structure Set ROI Sequence (recorded).
    regions : iterable of str, optional
        ROIs to read, by normalised ROI Name; default all.
    frame_of_reference_uid : str, optional
        Frame of Reference UID of ``reference`` (default: its
        ``frame_of_reference_uid`` attribute if it has one). When known, ROIs in
        another frame of reference are refused; when unknown, ROIs in several
        frames of reference are refused.

    Returns
    -------
    Labels
        Label values 1, 2... in Structure Set ROI order, names = normalised ROI
        Names. ROIs without a closed planar contour are left out (recorded).

    Raises
    ------
    DicomReadError
        Not an RTSTRUCT, or Contour Data that does not hold the points declared.
    GeometryError
        Another frame of reference, an oblique contour, a contour off the grid.
    RegionError
        Duplicate names, overlapping ROIs (``overlap="error"``), or an unknown
        name in ``regions``.
    """
    _check_overlap(overlap)
    path = Path(path)
    source = f"RTSTRUCT {path.name}"
    ds = read_dataset(path)
    if str(ds.get("SOPClassUID", "")) != RTSTRUCT_STORAGE:
        raise DicomReadError(
            tag_name("SOPClassUID"),
            "not RT Structure Set Storage",
            str(ds.get("SOPClassUID", "")),
            "read a SEG with read_seg, or any region file with read_regions",
            path.name,
        )
    assumptions = Assumptions()
    steps: list[str] = []

    rois = list(ds.get("StructureSetROISequence") or [])
    if not rois:
        raise MissingFieldError(
            tag_name("StructureSetROISequence"), "absent or empty", None, None, source
        )
    # position in the sequence (1, 2...) -> (ROI Number, ROI Name, frame of reference)
    roi_info: dict[int, tuple[int, str, str | None]] = {}
    for k, item in enumerate(rois, start=1):
        number = item.get("ROINumber")
        if number is None:
            raise MissingFieldError(tag_name("ROINumber"), "absent", f"ROI item {k}", None, source)
        name = _text(item, "ROIName") or f"roi_{int(number)}"
        roi_info[k] = (int(number), name, _text(item, "ReferencedFrameOfReferenceUID"))
    numbers = [n for n, _, _ in roi_info.values()]
    if len(set(numbers)) != len(numbers):
        raise DicomReadError(
            tag_name("ROINumber"),
            "not unique within the structure set",
            sorted(numbers),
            "re-export the RTSTRUCT",
            source,
        )
    chosen = _select({k: v[1] for k, v in roi_info.items()}, regions, source, tag_name("ROIName"))

    by_for: dict[str | None, list[str]] = {}
    for k in chosen:
        _, name, for_uid = roi_info[k]
        by_for.setdefault(for_uid, []).append(name)
    _check_frame_of_reference(
        by_for, reference, frame_of_reference_uid, source, assumptions, steps, roi_field=True
    )

    contours_by_number: dict[int, list[Dataset]] = {}
    for item in ds.get("ROIContourSequence") or []:
        ref = item.get("ReferencedROINumber")
        if ref is None:
            continue
        contours_by_number.setdefault(int(ref), []).extend(item.get("ContourSequence") or [])

    acc = _LabelMap(reference.shape, len(roi_info), overlap)
    inv = np.linalg.inv(reference.affine)
    max_offset = 0.0
    kept: dict[int, str] = {}
    for k in chosen:
        number, name, _ = roi_info[k]
        planes, skipped, offset = _rasterise_roi(
            contours_by_number.get(number, []), inv, reference, name, source
        )
        max_offset = max(max_offset, offset)
        for kind, count in sorted(skipped.items()):
            assumptions.note(f"ROI {name!r}: {count} {kind} contour(s) skipped (not an area)")
        if not planes:
            assumptions.note(
                f"ROI {name!r} (ROI Number {number}): no closed planar contour; left out"
            )
            continue
        kept[k] = name
        if not any(p.any() for p in planes.values()):
            assumptions.note(f"ROI {name!r}: no voxel centre inside its contours (region empty)")
        steps.append(
            f"ROI {name!r} (ROI Number {number}) -> label {k}: {len(planes)} slice(s) with contours"
        )
        _note_gaps(planes, name, assumptions)
        for (axis, s), inside in sorted(planes.items()):
            # moveaxis keeps the order of the other two axes: the plane is (other[0], other[1])
            acc.add(k, inside, view=np.moveaxis(acc.data, axis, 0)[s])
    if max_offset > _OFFSET_NOTE:
        assumptions.note(
            f"contours lie up to {max_offset:.3g} slice(s) off the reference slice planes; "
            "each was put on the nearest slice"
        )
    steps.append(
        "contours rasterised on the reference slices (even-odd rule on voxel centres, "
        "contours of one slice combined by exclusive or)"
    )
    names = {k: _region_name(v) for k, v in kept.items()}
    data = acc.finish(names, source, assumptions, "ROI")
    return _result(data, reference, names, source, steps, assumptions, "RTSTRUCT")


# ---------------------------------------------------------------- shared


def _text(ds: Dataset, keyword: str) -> str | None:
    v = ds.get(keyword)
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def _region_name(name: str) -> str:
    """``"  Kidney  Left "`` -> ``"kidney_left"``."""
    return "_".join(str(name).lower().split())


def _check_overlap(overlap: str) -> None:
    if overlap not in _OVERLAP_POLICIES:
        raise ValueError(f"overlap: unknown policy {overlap!r}; use 'error' or 'last'")


def _select(
    raw: dict[int, str], regions: Iterable[str] | None, source: str, field: str
) -> dict[int, str]:
    """The regions to read (value -> raw name), refusing duplicate normalised names."""
    groups: dict[str, list[str]] = {}
    for name in raw.values():
        groups.setdefault(_region_name(name), []).append(name)
    dup = {k: v for k, v in groups.items() if len(v) > 1}
    wanted = None
    if regions is not None:
        wanted = {_region_name(r) for r in ([regions] if isinstance(regions, str) else regions)}
        unknown = sorted(wanted - set(groups))
        if unknown:
            raise RegionError(
                "regions",
                "not in the file",
                unknown,
                f"choose among {sorted(groups)}",
                source,
            )
    clash = {k: v for k, v in dup.items() if wanted is None or k in wanted}
    if clash:
        raise RegionError(
            field,
            "several regions have the same normalised name",
            clash,
            "rename them in the file, or leave all but one out with regions=[...]",
            source,
        )
    return {v: n for v, n in raw.items() if wanted is None or _region_name(n) in wanted}


def _check_frame_of_reference(
    by_for: dict[str | None, list[str]],
    reference: Image,
    frame_of_reference_uid: str | None,
    source: str,
    assumptions: Assumptions,
    steps: list[str],
    *,
    roi_field: bool = False,
) -> None:
    field = tag_name("ReferencedFrameOfReferenceUID" if roi_field else "FrameOfReferenceUID")
    ref_for = frame_of_reference_uid
    if ref_for is None:
        ref_for = getattr(reference, "frame_of_reference_uid", None)
    ref_for = str(ref_for).strip() if ref_for else None
    absent = by_for.pop(None, None)
    if absent:
        if ref_for is not None:
            raise MissingFieldError(
                field,
                "absent, so the frame of reference cannot be compared with the reference's",
                absent,
                "re-export the file, or leave frame_of_reference_uid out to check only the "
                "geometry",
                source,
            )
        assumptions.note(f"{field} absent for {absent}")
    if ref_for is not None:
        other = {u: n for u, n in by_for.items() if u != ref_for}
        if other:
            shown = {u: n for u, n in other.items()} if roi_field else sorted(other)
            raise GeometryError(
                field,
                f"differs from the reference's frame of reference {ref_for}",
                shown,
                "read the regions with an image of their own frame of reference (the series "
                "they were drawn on), or register that image to the reference first",
                source,
            )
        steps.append(f"frame of reference {ref_for} matches the reference")
        return
    if len(by_for) > 1:
        raise GeometryError(
            field,
            "the regions are in several frames of reference",
            {u: n for u, n in by_for.items()},
            "pass frame_of_reference_uid= (the reference's), or choose regions=[...] in one",
            source,
        )
    assumptions.note(
        f"{field} not compared: the reference image carries no frame of reference UID "
        "(pass frame_of_reference_uid=); only the geometry was checked"
    )


class _LabelMap:
    """Builds the label map, recording the voxels two regions share."""

    def __init__(self, shape: tuple[int, int, int], max_value: int, overlap: str) -> None:
        dtype = np.uint8 if max_value < 2**8 else np.uint16 if max_value < 2**16 else np.int32
        self.data = np.zeros(shape, dtype=dtype)
        self.overlap = overlap
        self.shared: dict[tuple[int, int], int] = {}

    def add(self, value: int, where, view: np.ndarray | None = None) -> None:
        """Label ``target[where]`` with ``value``; ``target`` is ``view`` (a view of
        the map: a slice plane) or the whole map."""
        target = self.data if view is None else view
        current = target[where]
        clash = (current != 0) & (current != value)
        if clash.any():
            others, counts = np.unique(current[clash], return_counts=True)
            for o, c in zip(others.tolist(), counts.tolist(), strict=True):
                key = (int(o), int(value))
                self.shared[key] = self.shared.get(key, 0) + int(c)
        target[where] = value

    def finish(
        self, names: dict[int, str], source: str, assumptions: Assumptions, what: str
    ) -> np.ndarray:
        if not self.shared:
            return self.data
        pairs = [
            f"{names.get(a, a)!r} and {names.get(b, b)!r} ({n} voxels)"
            for (a, b), n in sorted(self.shared.items())
        ]
        if self.overlap == "error":
            raise RegionError(
                "overlap",
                "regions share voxels, and a label map holds one region per voxel: "
                + "; ".join(pairs),
                None,
                f"pass overlap='last' (a shared voxel goes to the later {what}), or leave "
                "regions out with regions=[...]",
                source,
            )
        for p in pairs:
            assumptions.note(f"overlap: {p}; shared voxels given to the later {what}")
        return self.data


def _result(
    data: np.ndarray,
    reference: Image,
    names: dict[int, str],
    source: str,
    steps: list[str],
    assumptions: Assumptions,
    modality: str,
) -> Labels:
    provenance = Provenance(source=source, steps=tuple(steps), assumptions=assumptions.records)
    image = Image(data, reference.affine, Quantity.LABEL, modality=modality, provenance=provenance)
    logger.info("read %s: %d regions on grid %s", source, len(names), reference.shape)
    return Labels(image, names)


# ---------------------------------------------------------------- SEG


def _pixel_measure(ds: Dataset, keyword: str) -> float | None:
    """A Pixel Measures attribute, shared or of the first frame; None when absent."""
    for seq_kw in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = ds.get(seq_kw)
        if not groups:
            continue
        pm = groups[0].get("PixelMeasuresSequence")
        if pm and pm[0].get(keyword) is not None:
            try:
                v = abs(float(pm[0].get(keyword)))
            except (TypeError, ValueError):
                return None
            return v if np.isfinite(v) and v > 0 else None
    return None


def _seg_slice_spacing(ds: Dataset) -> tuple[float | None, str]:
    for kw in ("SpacingBetweenSlices", "SliceThickness"):
        v = _pixel_measure(ds, kw)
        if v is not None:
            return v, tag_name(kw)
    return None, "the frame positions"


def _densify(
    mask: np.ndarray,
    affine: np.ndarray,
    step_mm: float | None,
    spacing_src: str,
    source: str,
    assumptions: Assumptions,
) -> tuple[np.ndarray, np.ndarray]:
    """The SEG volume with its slices ``step_mm`` apart where that is what they are.

    highdicom spaces the slices of a SEG without Spacing Between Slices by the
    gaps between its frames: frames a few slices apart (empty frames omitted)
    then come at a multiple of the true spacing, and a single frame at 1 mm.
    Slices at ``q`` times Slice Thickness are taken as every ``q``-th slice (the
    others empty, recorded), so that each keeps its own thickness; frames closer
    than Slice Thickness (overlapping reconstruction) keep their spacing.
    """
    col = affine[:3, 0]
    vstep = float(np.linalg.norm(col))
    if mask.shape[0] == 1:
        if step_mm is None:
            raise GeometryError(
                "SpacingBetweenSlices (0018,0088)",
                "absent, and Slice Thickness (0018,0050) too, from a single-plane SEG: "
                "its slice thickness is unknown",
                None,
                "re-export the SEG with Pixel Measures Spacing Between Slices",
                source,
            )
        out = affine.copy()
        out[:3, 0] = col / vstep * step_mm
        return mask, out
    if step_mm is None:
        assumptions.note(f"SEG slice spacing {vstep:.6g} mm from {spacing_src}")
        return mask, affine
    ratio = vstep / step_mm
    if abs(ratio - 1.0) <= 1e-3:
        return mask, affine
    q = round(ratio)
    if q >= 2 and abs(ratio - q) <= 1e-2:
        assumptions.note(
            f"SEG frames {vstep:.6g} mm apart taken as every {q}th slice of "
            f"{spacing_src} {step_mm:.6g} mm (the others empty)"
        )
        dense = np.zeros(((mask.shape[0] - 1) * q + 1, *mask.shape[1:]), dtype=bool)
        dense[::q] = mask
        out = affine.copy()
        out[:3, 0] = col / q
        return dense, out
    if spacing_src == tag_name("SpacingBetweenSlices"):
        raise GeometryError(
            spacing_src,
            f"{step_mm:.6g} mm, but the SEG frames are {vstep:.6g} mm apart",
            None,
            "re-export the SEG with a consistent Spacing Between Slices",
            source,
        )
    assumptions.note(
        f"SEG frames {vstep:.6g} mm apart with {spacing_src} {step_mm:.6g} mm: the frame "
        "spacing is used"
    )
    return mask, affine


def _place(
    mask: np.ndarray, affine: np.ndarray, reference: Image, name: str, source: str
) -> tuple[tuple[np.ndarray, ...], str]:
    """Reference-grid indices of the voxels of ``mask`` (on ``affine``), and the path."""
    m = np.linalg.inv(reference.affine) @ affine
    shape = np.array(reference.shape)
    nz = np.argwhere(mask)
    corners = np.where(_BITS, nz.max(axis=0), nz.min(axis=0))
    ref_corners = corners @ m[:3, :3].T + m[:3, 3]
    if np.any((ref_corners < -0.5 - _ALIGN_TOL) | (ref_corners > shape - 0.5 + _ALIGN_TOL)):
        raise GeometryError(
            "reference",
            f"segment {name!r} extends outside the reference grid {tuple(reference.shape)} "
            f"(its voxels reach reference indices {np.round(ref_corners.min(0), 2).tolist()} "
            f"to {np.round(ref_corners.max(0), 2).tolist()})",
            None,
            "read the SEG with the image it was drawn on (the whole CT series), or one "
            "that covers it",
            source,
        )
    # on the reference voxel centres: the SEG axes are reference axes (a signed
    # permutation, same spacings) and its voxels fall on reference centres
    p = np.rint(m[:3, :3])
    t = np.rint(m[:3, 3])
    permutation = bool(np.all(np.abs(p).sum(axis=0) == 1) and np.all(np.abs(p).sum(axis=1) == 1))
    same_spacing = bool(np.all(np.abs(np.linalg.norm(m[:3, :3], axis=0) - 1) <= _SPACING_RTOL))
    if permutation and same_spacing:
        exact = corners @ p.T + t
        if np.max(np.abs(exact - ref_corners)) <= _ALIGN_TOL:
            ref = nz @ p.T.astype(np.intp) + t.astype(np.intp)
            if ref.min() < 0 or np.any(ref.max(axis=0) >= shape):  # excluded above
                raise AssertionError("segment voxels mapped outside the reference grid")
            return tuple(ref[:, i] for i in range(3)), "copied directly onto the reference grid"
    img = Image(mask.astype(np.uint8), affine, Quantity.LABEL)
    on_ref = np.asarray(img.resample_to(reference, method="nearest").data) > 0
    return np.nonzero(on_ref), "resampled onto the reference grid (nearest neighbour)"


_BITS = np.array([(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=bool)


# ---------------------------------------------------------------- RTSTRUCT


def _rasterise_roi(
    contours: list[Dataset], inv: np.ndarray, reference: Image, name: str, source: str
) -> tuple[dict[tuple[int, int], np.ndarray], dict[str, int], float]:
    """Inside masks per (slice axis, slice index), skipped contours by type, largest offset."""
    shape = reference.shape
    toggles: dict[tuple[int, int], np.ndarray] = {}
    skipped: dict[str, int] = {}
    max_offset = 0.0
    spacing = reference.spacing_mm
    for c in contours:
        kind = (_text(c, "ContourGeometricType") or "(absent)").upper()
        if kind != "CLOSED_PLANAR":
            skipped[kind] = skipped.get(kind, 0) + 1
            continue
        pts = _contour_points(c, name, source)
        if pts.shape[0] < 3:
            skipped["CLOSED_PLANAR with fewer than 3 points"] = (
                skipped.get("CLOSED_PLANAR with fewer than 3 points", 0) + 1
            )
            continue
        idx = pts @ inv[:3, :3].T + inv[:3, 3]
        spread = np.ptp(idx, axis=0)
        axis = 0 if spread[0] <= _PLANE_TOL else int(np.argmin(spread))
        if spread[axis] > _PLANE_TOL:
            raise GeometryError(
                tag_name("ContourData"),
                f"a contour of ROI {name!r} is not parallel to the reference slices (its "
                f"points spread over {spread[axis]:.3g} slices, {spread[axis] * spacing[axis]:.3g}"
                " mm, across the nearest slice direction)",
                None,
                "resample the reference image onto the grid the contours were drawn on, or "
                "read them with that image",
                source,
            )
        plane = float(np.mean(idx[:, axis]))
        s = round(plane)
        if not -0.5 <= plane < shape[axis] - 0.5 or not 0 <= s < shape[axis]:
            raise GeometryError(
                tag_name("ContourData"),
                f"a contour of ROI {name!r} lies outside the reference slices (at slice "
                f"index {plane:.3g} of 0..{shape[axis] - 1})",
                None,
                "read the RTSTRUCT with the image it was drawn on (the whole CT series)",
                source,
            )
        max_offset = max(max_offset, abs(plane - s))
        other = [a for a in range(3) if a != axis]
        u, v = idx[:, other[0]], idx[:, other[1]]
        na, nb = shape[other[0]], shape[other[1]]
        if (
            min(u.min(), v.min()) < -_EDGE_TOL
            or u.max() > na - 1 + _EDGE_TOL
            or v.max() > nb - 1 + _EDGE_TOL
        ):
            raise GeometryError(
                tag_name("ContourData"),
                f"a contour of ROI {name!r} on slice {s} extends beyond the reference grid",
                None,
                "read the RTSTRUCT with the image it was drawn on (the whole field of view)",
                source,
            )
        key = (axis, s)
        if key not in toggles:
            # uint8 wraps modulo 256, which keeps the parity
            toggles[key] = np.zeros((na, nb + 1), dtype=np.uint8)
        _scanline_toggles(toggles[key], u, v)
    planes = {
        key: (np.cumsum(t, axis=1, dtype=np.uint8)[:, :-1] & 1).astype(bool)
        for key, t in toggles.items()
    }
    return planes, skipped, max_offset


def _contour_points(c: Dataset, name: str, source: str) -> np.ndarray:
    # the raw bytes when pydicom has not converted them yet: making one DSfloat per
    # number takes seconds for the contours of a whole body
    elem = c.get_item("ContourData") if "ContourData" in c else None
    value = elem.value if elem is not None else None
    try:
        if value is None:
            pts = np.empty(0, dtype=np.float64)
        elif isinstance(value, bytes):
            text = value.strip(b" \x00")
            pts = np.array(text.split(b"\\") if text else [], dtype=bytes).astype(np.float64)
        else:
            pts = np.array([float(x) for x in np.atleast_1d(value)], dtype=np.float64)
    except (TypeError, ValueError):
        pts = np.array([np.nan])
    declared = c.get("NumberOfContourPoints")
    if (
        pts.size % 3
        or not np.all(np.isfinite(pts))
        or (declared is not None and int(declared) * 3 != pts.size)
    ):
        raise DicomReadError(
            tag_name("ContourData"),
            f"a contour of ROI {name!r} is not a list of finite (x, y, z) points matching "
            f"Number of Contour Points ({declared})",
            f"{pts.size} numbers",
            "re-export the RTSTRUCT",
            source,
        )
    return pts.reshape(-1, 3)


def _snap(x: np.ndarray) -> np.ndarray:
    r = np.rint(x)
    return np.where(np.abs(x - r) < _SNAP, r, x)


def _scanline_toggles(toggles: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
    """Add the crossings of the closed polygon (u, v) to ``toggles``.

    For each row ``r`` (integer ``u``) crossed by an edge, the crossing at
    ``v = x`` toggles ``toggles[r, ceil(x)]``; the parity of the cumulative sum
    along a row is then 1 exactly at the voxel centres inside by the even-odd
    rule, and adding the toggles of several polygons XORs them. An edge covers
    rows ``min(u0, u1) <= r < max(u0, u1)`` (half-open: a vertex on a row is
    counted once).
    """
    na, nb1 = toggles.shape
    u0, v0 = _snap(u), _snap(v)
    u1, v1 = np.roll(u0, -1), np.roll(v0, -1)
    r_start = np.clip(np.ceil(np.minimum(u0, u1)), 0, na).astype(np.intp)
    r_stop = np.clip(np.ceil(np.maximum(u0, u1)), 0, na).astype(np.intp)
    counts = np.maximum(r_stop - r_start, 0)
    total = int(counts.sum())
    if total == 0:
        return
    edge = np.repeat(np.arange(u0.size), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    rows = np.repeat(r_start, counts) + (np.arange(total) - first)
    t = (rows - u0[edge]) / (u1[edge] - u0[edge])
    x = _snap(v0[edge] + t * (v1[edge] - v0[edge]))
    cols = np.clip(np.ceil(x), 0, nb1 - 1).astype(np.intp)
    np.add.at(toggles, (rows, cols), 1)


def _note_gaps(
    planes: dict[tuple[int, int], np.ndarray], name: str, assumptions: Assumptions
) -> None:
    """Record slices without contour between an ROI's first and last contoured slices."""
    for axis in {a for a, _ in planes}:
        slices = sorted(s for a, s in planes if a == axis)
        missing = (slices[-1] - slices[0] + 1) - len(slices)
        if missing > 0:
            assumptions.note(
                f"ROI {name!r}: no contour on {missing} reference slice(s) between its first "
                f"and last contoured slices ({slices[0]}..{slices[-1]}, axis {axis}); the region "
                "is empty there (contours drawn on a coarser series?)"
            )


# ---------------------------------------------------------------- NIfTI


def _read_nifti_regions(path: Path, reference: Image, **kwargs) -> Labels:
    from theranet.io.nifti import read_labels

    labels = read_labels(path, **kwargs)
    if not labels.image.same_grid(reference, atol_mm=_NIFTI_ATOL_MM):
        raise GeometryError(
            "labels",
            f"the label map is not on the reference grid (labels shape "
            f"{labels.image.shape}, affine {np.round(labels.image.affine, 4).tolist()}; "
            f"reference shape {reference.shape}, affine "
            f"{np.round(reference.affine, 4).tolist()})",
            None,
            "resample it yourself if that is right: labels.resample_to(reference) "
            "(nearest neighbour)",
            f"NIfTI {path.name}",
        )
    return labels
