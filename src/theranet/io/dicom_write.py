"""Write results as DICOM: absorbed dose as RT Dose, regions as Segmentation.

RT Dose (:func:`write_rtdose`)
    RT Dose Storage, one multi-frame object on an axis-aligned grid, unsigned
    16-bit pixels with Dose Grid Scaling ``max / 65535`` (the 2022 build of
    dicom3tools ``dciodvfy`` aborts on 32-bit RT Dose pixel data), Grid Frame
    Offset Vector in the relative form (first value 0), Dose Units ``GY``,
    Dose Type ``PHYSICAL``. Patient, study and frame of reference are those of
    the reference CT.

    **Dose Summation Type.** DICOM has no term for a radiopharmaceutical
    therapy. Every term that fits a "total dose of the treatment" (``PLAN``,
    ``FRACTION``, ``BRACHY``) makes Referenced RT Plan Sequence (300C,0002)
    Type 1C-required, ``MULTI_PLAN`` needs two plans, ``RECORD`` a treatment
    record, and ``PLAN_OVERVIEW`` is unknown to the 2022 dicom3tools build.
    We write ``PLAN`` and, beside the dose, a minimal RT Plan object (RT
    General Plan with RT Plan Geometry ``TREATMENT_DEVICE``, which needs no
    structure set; no fraction scheme, beams or brachy sources) that the dose
    references, so both objects validate with ``dciodvfy``.
Segmentation (:func:`write_seg`)
    Binary DICOM SEG through :class:`highdicom.seg.Segmentation`, one segment
    per named region, referencing the CT series the labels were drawn on
    (highdicom rejects multi-frame NM sources, so regions must be on the CT
    grid).

UIDs are ``2.25.`` UUID-5 UIDs from :func:`theranet.io._dicom_build.deterministic_uid`
when ``uid_seed`` is given (same inputs and seed: identical files), random
otherwise. Every writer goes through :func:`theranet.io._atomic.atomic_paths`:
the outputs appear all together or not at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes
from pydicom.tag import Tag
from pydicom.uid import generate_uid

from theranet.errors import GeometryError, ImageDataError, InconsistentSeriesError, QuantityError
from theranet.image import Image, Labels, Quantity
from theranet.io._atomic import atomic_paths
from theranet.io._dicom_build import da as _da
from theranet.io._dicom_build import deterministic_uid, file_meta
from theranet.io._dicom_build import ds as _ds
from theranet.io._dicom_build import slice_geometry as _slice_geometry
from theranet.io._dicom_build import tm as _tm
from theranet.io.dicom_series import read_series

__all__ = [
    "RT_DOSE_STORAGE",
    "RT_PLAN_STORAGE",
    "SEGMENTATION_STORAGE",
    "segment_codes",
    "write_rtdose",
    "write_seg",
]

RT_DOSE_STORAGE = "1.2.840.10008.5.1.4.1.1.481.2"
RT_PLAN_STORAGE = "1.2.840.10008.5.1.4.1.1.481.5"
SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"

_MANUFACTURER = "theranet"
_VERSION_NAME = "THERANET"  # SH, at most 16 characters

#: Patient and General Study attributes copied from the reference CT.
_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "PatientIdentityRemoved",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
)
_TYPE2_EMPTY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "PositionReferenceIndicator",
)

# ------------------------------------------------------------------ helpers


def _uid_factory(uid_seed: object | None, kind: str):
    def uid(*purpose: object) -> str:
        if uid_seed is None:
            return generate_uid()
        return deterministic_uid("theranet-dicom-write", kind, uid_seed, *purpose)

    return uid


def _read_reference(reference: str | Path | Iterable[Dataset | str | Path]) -> list[Dataset]:
    """Datasets of the reference CT series, in no particular order."""
    if isinstance(reference, str | Path):
        folder = Path(reference)
        if not folder.is_dir():
            raise FileNotFoundError(f"reference CT folder does not exist: {folder}")
        files = sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() != ".json"
        )
        items: list[Dataset | str | Path] = list(files)
    else:
        items = list(reference)
    datasets = [
        it if isinstance(it, Dataset) else pydicom.dcmread(it, stop_before_pixels=True)
        for it in items
    ]
    if not datasets:
        raise InconsistentSeriesError("reference CT", "holds no DICOM file", str(reference))
    for keyword in ("SeriesInstanceUID", "FrameOfReferenceUID", "StudyInstanceUID"):
        values = {str(ds.get(keyword, "")) for ds in datasets}
        if len(values) != 1 or values == {""}:
            raise InconsistentSeriesError(
                keyword,
                "the reference CT must be one series with one frame of reference",
                sorted(values),
                "pass the folder of a single CT series",
            )
    return datasets


def _copy_patient_study(ds: Dataset, ref: Dataset) -> None:
    for keyword in _COPIED:
        if keyword in ref and ref[keyword].value not in (None, ""):
            setattr(ds, keyword, ref[keyword].value)
        elif keyword in _TYPE2_EMPTY:
            setattr(ds, keyword, "")


def _file_meta(ds: Dataset) -> None:
    file_meta(ds, "theranet", _VERSION_NAME)


def _content_datetime(ref: Dataset, uid_seed: object | None) -> datetime:
    """Now, or (for reproducible output with a seed) the reference CT's series time."""
    if uid_seed is None:
        return datetime.now().replace(microsecond=0)
    for d, t in (("SeriesDate", "SeriesTime"), ("StudyDate", "StudyTime")):
        if ref.get(d) and ref.get(t):
            try:
                return datetime.strptime(f"{ref.get(d)}{str(ref.get(t))[:6]}", "%Y%m%d%H%M%S")
            except ValueError:
                continue
    return datetime(2000, 1, 1)


def _rt_series(
    ds: Dataset, ref: Dataset, *, sop_class: str, sop_uid: str, modality: str, when: datetime
) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate = _da(when)
    ds.InstanceCreationTime = _tm(when)
    _copy_patient_study(ds, ref)
    ds.Modality = modality
    ds.SeriesDate = _da(when)
    ds.SeriesTime = _tm(when)
    ds.OperatorsName = ""
    ds.Manufacturer = _MANUFACTURER
    ds.SoftwareVersions = "theranet"


def _axis_aligned_geometry(dose: Image) -> tuple[np.ndarray, np.ndarray, float, float, float]:
    """(row cosines, column cosines, row spacing, column spacing, signed slice step)."""
    row_cos, col_cos, _, dy, dx, s = _slice_geometry(dose)
    for name, v in (("row", row_cos), ("column", col_cos)):
        if np.max(np.abs(v)) < 1.0 - 1e-6:
            raise GeometryError(
                "dose.affine",
                f"the {name} direction is oblique; RT Dose is written for axis-aligned grids only",
                np.round(v, 6).tolist(),
                "resample the dose onto an axis-aligned grid (e.g. dose.resample_to(ct))",
            )
    return row_cos, col_cos, dy, dx, s


# ------------------------------------------------------------------ RT Dose


def write_rtdose(
    path: str | Path,
    dose: Image,
    reference_ct_datasets_or_folder: str | Path | Iterable[Dataset | str | Path],
    *,
    series_description: str = "theranet absorbed dose",
    uid_seed: object | None = None,
    plan_stub_path: str | Path | None = None,
    series_number: int = 901,
) -> tuple[Path, Path]:
    """Write an absorbed-dose map as RT Dose, with the minimal RT Plan it references.

    Parameters
    ----------
    path : str or Path
        Output RT Dose file (its folder must exist).
    dose : Image
        Absorbed dose, ``Quantity.DOSE`` (Gy), ``(slices, rows, columns)``, finite
        and >= 0, on an axis-aligned grid (rows and columns along patient axes,
        slice step along the slice normal). It need not be on the CT grid.
    reference_ct_datasets_or_folder : path or iterable of Dataset or path
        The CT series the dose was computed on: its patient, study and frame of
        reference are copied.
    series_description : str
        Series Description of the RT Dose.
    uid_seed : object, optional
        Give it for deterministic UIDs and content date/time (same inputs and
        seed: identical files).
    plan_stub_path : str or Path, optional
        Output RT Plan file; default ``<dose stem>_plan.dcm`` beside ``path``.
    series_number : int
        Series Number of the RT Dose (the plan gets ``series_number + 1``).

    Returns
    -------
    (Path, Path)
        The RT Dose and RT Plan files.

    Raises
    ------
    QuantityError
        ``dose`` is not ``Quantity.DOSE``.
    ImageDataError
        Non-finite or negative values.
    GeometryError
        Oblique or sheared grid.

    Notes
    -----
    Pixels are uint16 with Dose Grid Scaling ``max / 65535`` (``1`` for an
    all-zero map): the stored dose is within half a scaling step of ``dose``.
    Frames are written in increasing position along the slice normal
    (``row x column`` cosines), so the Grid Frame Offset Vector is
    ``0, dz, 2 dz...`` with ``dz > 0``. See the module notes for the Dose
    Summation Type ``PLAN`` and the RT Plan stub.
    """
    path = Path(path)
    plan_path = (
        Path(plan_stub_path)
        if plan_stub_path is not None
        else (path.with_name(f"{path.stem}_plan.dcm"))
    )
    if plan_path.resolve() == path.resolve():
        raise ValueError("plan_stub_path: must differ from path")
    if dose.quantity is not Quantity.DOSE:
        raise QuantityError(
            "dose.quantity", "write_rtdose needs an absorbed dose (Gy)", dose.quantity.value
        )
    data = np.asarray(dose.data, dtype=np.float64)
    if not np.all(np.isfinite(data)):
        raise ImageDataError("dose.data", "non-finite values cannot be written", None)
    if data.size and data.min() < 0:
        raise ImageDataError("dose.data", "negative dose cannot be stored as unsigned", data.min())
    row_cos, col_cos, dy, dx, s = _axis_aligned_geometry(dose)
    origin = dose.affine[:3, 3].copy()
    if s < 0:  # write frames in increasing position along the normal
        data = data[::-1]
        origin = origin + (dose.shape[0] - 1) * dose.affine[:3, 0]
        s = -s
    refs = _read_reference(reference_ct_datasets_or_folder)
    ref = refs[0]
    uid = _uid_factory(uid_seed, "rtdose")
    when = _content_datetime(ref, uid_seed)
    peak = float(data.max()) if data.size else 0.0
    scaling = float(_ds(peak / 65535.0)) if peak > 0 else 1.0
    if peak > 0 and peak / scaling > 65535.0:  # DS rounding pushed the top value over
        scaling = float(_ds(scaling * (1 + 1e-9) + 1e-15))
        while peak / scaling > 65535.0:
            scaling = float(_ds(scaling * (1 + 1e-6)))
    stored = np.clip(np.rint(data / scaling), 0, 65535).astype("<u2")
    nz, rows, cols = data.shape

    plan = Dataset()
    _rt_series(
        plan,
        ref,
        sop_class=RT_PLAN_STORAGE,
        sop_uid=uid("plan-instance"),
        modality="RTPLAN",
        when=when,
    )
    plan.SeriesDescription = f"{series_description} (plan reference)"[:64]
    plan.SeriesInstanceUID = uid("plan-series")
    plan.SeriesNumber = int(series_number) + 1
    plan.InstanceNumber = 1
    plan.RTPlanLabel = "THERANET RNT"
    plan.RTPlanName = "radionuclide therapy"
    plan.RTPlanDescription = (
        "Stub: radiopharmaceutical therapy; no beams, sources or fractions. "
        "Referenced by the theranet RT Dose."
    )
    plan.RTPlanDate = _da(when)
    plan.RTPlanTime = _tm(when)
    plan.RTPlanGeometry = "TREATMENT_DEVICE"

    ds = Dataset()
    _rt_series(
        ds,
        ref,
        sop_class=RT_DOSE_STORAGE,
        sop_uid=uid("dose-instance"),
        modality="RTDOSE",
        when=when,
    )
    ds.SeriesDescription = series_description
    ds.SeriesInstanceUID = uid("dose-series")
    ds.SeriesNumber = int(series_number)
    ds.InstanceNumber = 1
    ds.ContentDate = _da(when)
    ds.ContentTime = _tm(when)
    ds.ImagePositionPatient = [_ds(v) for v in origin]
    ds.ImageOrientationPatient = [_ds(v) for v in (*row_cos, *col_cos)]
    ds.SliceThickness = _ds(s)
    ds.PixelSpacing = [_ds(dy), _ds(dx)]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = nz
    ds.FrameIncrementPointer = Tag("GridFrameOffsetVector")
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseComment = "absorbed dose, radiopharmaceutical therapy (theranet)"
    ds.DoseSummationType = "PLAN"
    ds.GridFrameOffsetVector = [_ds(k * s) for k in range(nz)]
    ds.DoseGridScaling = _ds(scaling)
    plan_ref = Dataset()
    plan_ref.ReferencedSOPClassUID = RT_PLAN_STORAGE
    plan_ref.ReferencedSOPInstanceUID = plan.SOPInstanceUID
    ds.ReferencedRTPlanSequence = DicomSequence([plan_ref])
    ds.PixelData = np.ascontiguousarray(stored).tobytes()

    for d in (ds, plan):
        _file_meta(d)
    with atomic_paths([path, plan_path]) as (tmp_dose, tmp_plan):
        ds.save_as(tmp_dose, enforce_file_format=True)
        plan.save_as(tmp_plan, enforce_file_format=True)
    return path, plan_path


# --------------------------------------------------------------------- SEG

#: Normalised region name -> attribute of ``codes.SCT`` (category Organ unless noted).
_ORGANS = {
    "kidney": "Kidney",
    "kidney cortex": "Kidney",
    "kidney medulla": "Kidney",
    "liver": "Liver",
    "liver parenchyma": "Liver",
    "spleen": "Spleen",
    "lung": "Lung",
    "heart": "Heart",
    "bladder": "Bladder",
    "urinary bladder": "Bladder",
    "pancreas": "Pancreas",
    "stomach": "Stomach",
    "salivary gland": "SalivaryGland",
    "parotid": "ParotidGland",
    "parotid gland": "ParotidGland",
    "submandibular": "SubmandibularGland",
    "submandibular gland": "SubmandibularGland",
    "lacrimal gland": "LacrimalGland",
    "bone marrow": "BoneMarrow",
    "red marrow": "BoneMarrow",
    "red bone marrow": "BoneMarrow",
    "marrow": "BoneMarrow",
    "brain": "Brain",
    "small intestine": "SmallIntestine",
    "small bowel": "SmallIntestine",
    "large intestine": "LargeIntestine",
    "colon": "Colon",
    "adrenal gland": "AdrenalGland",
    "adrenal": "AdrenalGland",
    "prostate": "Prostate",
    "thyroid": "Thyroid",
    "gallbladder": "Gallbladder",
    "duodenum": "Duodenum",
    "esophagus": "Esophagus",
    "pituitary": "Pituitary",
}
#: Tissues and structures that are not organs: (category, type) attributes of ``codes.SCT``.
_TISSUES = {
    "bone": ("Tissue", "Bone"),
    "muscle": ("Tissue", "Muscle"),
    "blood": ("Tissue", "Blood"),
    "aorta": ("AnatomicalStructure", "Aorta"),
    "vertebra": ("AnatomicalStructure", "Vertebra"),
}
_LESION_WORDS = frozenset(
    {
        "lesion",
        "lesions",
        "tumor",
        "tumour",
        "tumors",
        "tumours",
        "neoplasm",
        "metastasis",
        "metastases",
        "met",
        "mets",
        "nodule",
        "gtv",
        "tumor burden",
        "mass",
    }
)
_SIDE_WORDS = frozenset({"left", "right", "l", "r", "lt", "rt", "both", "total", "whole"})


def _normalise(name: str) -> tuple[str, list[str]]:
    words = [w for w in re.split(r"[\s_\-./]+", name.lower()) if w]
    words = [w for w in words if not w.isdigit() and w not in _SIDE_WORDS]
    words = [re.sub(r"\d+$", "", w) for w in words]
    words = [w for w in words if w]
    singular = [
        w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words
    ]
    return " ".join(singular), words


def segment_codes(name: str):
    """Segmented property (category, type) codes of a region name.

    Parameters
    ----------
    name : str
        Region name as in :class:`theranet.image.Labels` (``"kidney_left"``,
        ``"liver"``, ``"lesion_3"``...).

    Returns
    -------
    (pydicom.sr.coding.Code, pydicom.sr.coding.Code)
        Organs known to ``codes.SCT``: (Organ, the organ); lesions (lesion,
        tumour, metastasis...): (Morphologically Abnormal Structure, Neoplasm);
        a few tissues (bone, muscle, blood); anything else: (Tissue, Tissue).

    Examples
    --------
    >>> cat, typ = segment_codes("kidney_left")
    >>> cat.meaning, typ.meaning
    ('Organ', 'Kidney')
    >>> segment_codes("lesion_3")[1].meaning
    'Neoplasm'
    """
    key, words = _normalise(name)
    if set(words) & _LESION_WORDS or key in _LESION_WORDS:
        return codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Neoplasm
    if key in _ORGANS:
        return codes.SCT.Organ, getattr(codes.SCT, _ORGANS[key])
    if key in _TISSUES:
        cat, typ = _TISSUES[key]
        return getattr(codes.SCT, cat), getattr(codes.SCT, typ)
    return codes.SCT.Tissue, codes.SCT.Tissue


def write_seg(
    path: str | Path,
    labels: Labels,
    reference_ct_folder: str | Path,
    *,
    algorithm_name: str = "theranet",
    algorithm_version: str = "1",
    algorithm_type: str = "AUTOMATIC",
    series_description: str = "theranet regions",
    series_number: int = 902,
    uid_seed: object | None = None,
    segmentation_type: str = "binary",
) -> Path:
    """Write a label map as a DICOM Segmentation referencing the CT series.

    Parameters
    ----------
    path : str or Path
        Output SEG file (its folder must exist).
    labels : Labels
        Named regions on the grid of the CT series (same shape and affine as
        :func:`theranet.io.dicom_series.read_series` of the folder, to 1e-4 mm).
    reference_ct_folder : str or Path
        Folder of the CT series (single-frame CT Image Storage).
    algorithm_name, algorithm_version : str
        Algorithm Identification of every segment.
    algorithm_type : {"AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"}
    series_description : str
    series_number : int
    uid_seed : object, optional
        Give it for deterministic Series and SOP Instance UIDs.
    segmentation_type : {"binary", "labelmap"}
        ``"binary"``: Segmentation Storage, one frame per segment and slice (read
        by every SEG-aware viewer); ``"labelmap"``: Label Map Segmentation
        Storage (DICOM 2024), one frame per slice holding the segment numbers:
        far smaller and faster for many regions, but newer viewers only.

    Returns
    -------
    Path

    Raises
    ------
    GeometryError
        ``labels`` are not on the CT grid; resample them with
        ``labels.resample_to(ct)``.

    Notes
    -----
    One segment per named region, numbered in increasing label value; codes
    from :func:`segment_codes`. A named region with no voxel is still written
    (as an empty segment).
    """
    import highdicom as hd

    path = Path(path)
    folder = Path(reference_ct_folder)
    ct = read_series(folder)
    if not labels.image.same_grid(ct):
        raise GeometryError(
            "labels.image.affine",
            f"labels are not on the grid of the reference CT (labels {labels.image.shape}, "
            f"CT {ct.shape})",
            None,
            "resample them onto the CT first: labels.resample_to(ct)",
            source=str(folder),
        )
    if not labels.names:
        raise ValueError("labels.names: no named region to write")
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() != ".json"
    )
    sources = [pydicom.dcmread(p) for p in files]
    index = []
    for d in sources:
        k = float(ct.lps_to_index(np.array([float(v) for v in d.ImagePositionPatient]))[0])
        index.append(round(k))
    order = np.argsort(index)
    sources = [sources[i] for i in order]
    slices = [index[i] for i in order]
    if segmentation_type not in ("binary", "labelmap"):
        raise ValueError(f"segmentation_type: {segmentation_type!r}; use 'binary' or 'labelmap'")
    values = sorted(labels.names)
    data = np.asarray(labels.image.data)[slices]
    if segmentation_type == "binary":
        masks = np.stack([data == v for v in values], axis=-1).astype(np.uint8)
        seg_type = hd.seg.SegmentationTypeValues.BINARY
    else:
        lut = np.zeros(int(data.max()) + 1, dtype=np.uint16)
        for number, v in enumerate(values, start=1):
            if v < lut.size:
                lut[v] = number
        masks = lut[data.astype(np.int64)]
        if len(values) < 256:
            masks = masks.astype(np.uint8)
        seg_type = hd.seg.SegmentationTypeValues.LABELMAP
    algo = hd.AlgorithmIdentificationSequence(
        name=algorithm_name,
        family=codes.DCM.ArtificialIntelligence,
        version=algorithm_version,
    )
    descriptions = []
    for number, v in enumerate(values, start=1):
        category, typ = segment_codes(labels.names[v])
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=labels.names[v][:64],
                segmented_property_category=category,
                segmented_property_type=typ,
                algorithm_type=algorithm_type,
                algorithm_identification=algo,
            )
        )
    uid = _uid_factory(uid_seed, "seg")
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=masks,
        segmentation_type=seg_type,
        segment_descriptions=descriptions,
        series_instance_uid=uid("series"),
        series_number=int(series_number),
        sop_instance_uid=uid("instance"),
        instance_number=1,
        manufacturer=_MANUFACTURER,
        manufacturer_model_name="theranet",
        software_versions="theranet",
        device_serial_number="0",
        series_description=series_description,
        omit_empty_frames=False,
    )
    with atomic_paths([path]) as (tmp,):
        seg.save_as(tmp)
    return path
