"""NIfTI images with a JSON sidecar that keeps what NIfTI cannot hold.

A NIfTI file stores voxels and a RAS+ affine; the sidecar (``name.json`` beside
``name.nii.gz``) stores the quantity and unit, the nuclide and tracer, the
acquisition and injection times with the decay-correction state, the
administered activity, the patient's weight/height/sex, the calibration and the
provenance, and for label maps the region names. Reading a file written here
gives back an equal :class:`~theranet.image.Image`.

Axis convention: NIfTI arrays are stored as ``(i, j, k)`` (usually x, y, z);
:func:`read_nifti` returns them in ``(k, j, i)`` order like the DICOM readers, with
the affine permuted to match, and :func:`write_nifti` reverses that.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path

import numpy as np

from theranet.errors import (
    Assumptions,
    DicomReadError,
    ImageDataError,
    MissingFieldError,
    Strictness,
    UnitError,
)
from theranet.image import (
    DecayCorrection,
    Image,
    Labels,
    PatientInfo,
    Provenance,
    Quantity,
    Timing,
)
from theranet.io._atomic import atomic_paths

__all__ = ["SIDECAR_VERSION", "read_labels", "read_nifti", "sidecar_path", "write_nifti"]

SIDECAR_VERSION = 1

# RAS <-> LPS: negate x and y.
_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])
# array-order reversal (i, j, k) <-> (k, j, i)
_REVERSE = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)

# Units accepted in a sidecar and their factor to the canonical unit.
_UNIT_FACTORS: dict[Quantity, dict[str, float]] = {
    Quantity.ACTIVITY_CONCENTRATION: {"MBq/mL": 1.0, "kBq/mL": 1e-3, "Bq/mL": 1e-6},
    Quantity.ACTIVITY: {"MBq": 1.0, "kBq": 1e-3, "Bq": 1e-6, "GBq": 1e3},
    Quantity.DOSE: {"Gy": 1.0, "mGy": 1e-3},
    Quantity.DOSE_RATE: {"Gy/h": 1.0, "mGy/h": 1e-3},
    Quantity.BED: {"Gy": 1.0},
}


def sidecar_path(path: str | Path) -> Path:
    """``x.nii.gz`` / ``x.nii`` -> ``x.json``."""
    p = Path(path)
    name = p.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return p.with_name(name[: -len(ext)] + ".json")
    raise ValueError(f"path: not a NIfTI file name (.nii or .nii.gz): {p.name!r}")


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def _parse_iso(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise MissingFieldError(
            field, "not an ISO 8601 datetime", value, "write e.g. 2026-03-01T09:30:00"
        ) from None


def _sidecar_dict(image: Image, label_names: dict[int, str] | None) -> dict:
    t, p = image.timing, image.patient
    d = {
        "theranet_sidecar_version": SIDECAR_VERSION,
        "quantity": image.quantity.value,
        "unit": image.unit,
        "modality": image.modality,
        "nuclide": image.nuclide,
        "tracer": image.tracer,
        "timing": {
            "acquisition_start": _iso(t.acquisition_start),
            "frame_duration_h": t.frame_duration_h,
            "injection": _iso(t.injection),
            "injection_source": t.injection_source,
            "administered_activity_mbq": t.administered_activity_mbq,
            "decay_correction": t.decay_correction.value,
            "reference": _iso(t.reference),
        },
        "patient": {"weight_kg": p.weight_kg, "height_cm": p.height_cm, "sex": p.sex},
        "calibration_cps_per_mbq": image.calibration_cps_per_mbq,
        "corrections": None if image.corrections is None else sorted(image.corrections),
        "provenance": {
            "source": image.provenance.source,
            "steps": list(image.provenance.steps),
            "assumptions": list(image.provenance.assumptions),
        },
    }
    if label_names is not None:
        d["labels"] = {str(k): v for k, v in sorted(label_names.items())}
    return d


def write_nifti(
    image: Image | Labels, path: str | Path, *, dtype: np.dtype | str | None = None
) -> Path:
    """Write ``image`` as NIfTI-1 with its JSON sidecar, atomically.

    Parameters
    ----------
    image : Image or Labels
    path : path
        Ends in ``.nii.gz`` or ``.nii``; the sidecar goes beside it.
    dtype : dtype, optional
        Storage type (default: the image's own; float64 is stored as float32).

    Returns
    -------
    Path
        The NIfTI path.
    """
    import nibabel as nib

    names = None
    if isinstance(image, Labels):
        names = dict(image.names)
        image = image.image
    path = Path(path)
    side = sidecar_path(path)
    data = np.asarray(image.data)
    if dtype is not None:
        data = data.astype(dtype)
    elif data.dtype == np.float64:
        data = data.astype(np.float32)
    elif data.dtype == np.bool_:
        data = data.astype(np.uint8)
    arr = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    ras = _FLIP @ image.affine @ _REVERSE
    img = nib.Nifti1Image(arr, ras)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(ras, code=1)
    img.set_sform(ras, code=1)
    img.header["descrip"] = f"theranet {image.quantity.value} [{image.unit}]"[:79].encode()
    with atomic_paths([path, side]) as (tmp_img, tmp_side):
        nib.save(img, tmp_img)
        tmp_side.write_text(json.dumps(_sidecar_dict(image, names), indent=2) + "\n")
    return path


def _load(path: Path):
    import nibabel as nib

    if not path.is_file():
        raise FileNotFoundError(f"path: no such NIfTI file: {path}")
    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises several types for corrupt files
        raise DicomReadError(
            "file",
            f"cannot be read as NIfTI ({type(exc).__name__}: {exc})",
            path.name,
            "the file is truncated or not NIfTI; re-export it",
        ) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ImageDataError("data", "NIfTI image must be 3-D", data.shape, None, path.name)
    return img, data


def read_nifti(
    path: str | Path,
    *,
    quantity: Quantity | str | None = None,
    strictness: Strictness | str = Strictness.STRICT,
) -> Image:
    """Read a NIfTI image and its sidecar.

    Parameters
    ----------
    path : path
        ``.nii`` or ``.nii.gz``.
    quantity : Quantity or str, optional
        Required when there is no sidecar (``"activity_concentration"`` with
        values in MBq/mL, ``"hu"``, ``"label"``...); must agree with the sidecar
        when both are given.
    strictness : {"strict", "lenient"}
        Lenient reading accepts a sidecar of a newer version, or a sidecar of a
        decaying quantity (counts, activity, activity concentration, SUV)
        without ``timing.decay_correction`` (NONE assumed), and records it.

    Raises
    ------
    MissingFieldError
        No sidecar and no ``quantity`` argument; no ``timing.decay_correction``
        for a decaying quantity (strict).
    UnitError
        The sidecar unit is unknown for its quantity.
    ImageDataError
        Non-finite voxels in an image of a physical quantity.
    """
    return _read(path, quantity, strictness)[0]


def _read(
    path: str | Path, quantity: Quantity | str | None, strictness: Strictness | str
) -> tuple[Image, dict]:
    path = Path(path)
    assumptions = Assumptions(strictness)
    img, data = _load(path)
    ras = np.asarray(img.affine, dtype=np.float64)
    affine = _FLIP @ ras @ _REVERSE
    data = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    side = sidecar_path(path)
    q_arg = Quantity(quantity) if isinstance(quantity, str) else quantity
    if not side.is_file():
        if q_arg is None:
            raise MissingFieldError(
                "sidecar",
                "absent, so the quantity and unit of the voxels are unknown",
                side.name,
                "write the JSON sidecar, or pass quantity= (CLI --quantity)",
            )
        image = Image(
            data,
            affine,
            q_arg,
            provenance=Provenance(
                source=f"NIfTI {path.name}",
                assumptions=(f"no sidecar: quantity {q_arg.value} in {q_arg.unit} as given",),
            ),
        )
        return (image.check_finite() if q_arg is not Quantity.LABEL else image), {}
    try:
        meta = json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise MissingFieldError("sidecar", f"is not valid JSON ({exc})", side.name) from None
    version = meta.get("theranet_sidecar_version")
    if version is None:
        raise MissingFieldError(
            "theranet_sidecar_version",
            "absent from the sidecar",
            side.name,
            "write the sidecar with theranet, or add the key",
        )
    if version > SIDECAR_VERSION:
        assumptions.allow(
            MissingFieldError(
                "theranet_sidecar_version",
                f"newer than this reader ({SIDECAR_VERSION})",
                version,
                "upgrade theranet",
            ),
            "read as version 1",
        )
    try:
        q = Quantity(meta["quantity"])
    except (KeyError, ValueError):
        raise MissingFieldError(
            "quantity",
            "absent or unknown in the sidecar",
            meta.get("quantity"),
            f"use one of {[x.value for x in Quantity]}",
        ) from None
    if q_arg is not None and q_arg is not q:
        raise UnitError(
            "quantity",
            f"argument {q_arg.value!r} disagrees with the sidecar",
            q.value,
            "drop the argument or fix the sidecar",
        )
    unit = meta.get("unit")
    if unit is None:
        raise UnitError("unit", "absent from the sidecar", None, f'write "unit": "{q.unit}"')
    steps: list[str] = []
    if unit != q.unit:
        factor = _UNIT_FACTORS.get(q, {}).get(unit)
        if factor is None:
            raise UnitError(
                "unit",
                f"not a known unit of {q.value}",
                unit,
                f"store values in {q.unit} (or one of {sorted(_UNIT_FACTORS.get(q, {}))})",
            )
        data = data.astype(np.float32) * np.float32(factor)
        steps.append(f"converted {unit} -> {q.unit}")
    tm = meta.get("timing") or {}
    if tm.get("decay_correction") is None and q.decays:
        # the decay-correction state decides which instant the values refer to
        assumptions.allow(
            MissingFieldError(
                "timing.decay_correction",
                f"absent from the sidecar (quantity {q.value}), so the instant the values "
                "refer to is unknown",
                side.name,
                f'write "timing": {{"decay_correction": ...}} (one of '
                f"{[x.value for x in DecayCorrection]}), or read with strictness='lenient' "
                "to assume NONE (not decay-corrected)",
            ),
            "decay correction assumed NONE (values as measured over the frame)",
        )
    try:
        dc = DecayCorrection(tm.get("decay_correction") or "NONE")
    except ValueError:
        raise MissingFieldError(
            "timing.decay_correction",
            "unknown",
            tm.get("decay_correction"),
            f"use one of {[x.value for x in DecayCorrection]}",
        ) from None
    timing = Timing(
        acquisition_start=_parse_iso(tm.get("acquisition_start"), "timing.acquisition_start"),
        frame_duration_h=tm.get("frame_duration_h"),
        injection=_parse_iso(tm.get("injection"), "timing.injection"),
        administered_activity_mbq=tm.get("administered_activity_mbq"),
        decay_correction=dc,
        reference=_parse_iso(tm.get("reference"), "timing.reference"),
        injection_source=tm.get("injection_source"),
    )
    pt = meta.get("patient") or {}
    patient = PatientInfo(
        weight_kg=pt.get("weight_kg"), height_cm=pt.get("height_cm"), sex=pt.get("sex")
    )
    pv = meta.get("provenance") or {}
    prov = Provenance(
        source=pv.get("source") or f"NIfTI {path.name}",
        steps=(*pv.get("steps", ()), *steps),
        assumptions=(*pv.get("assumptions", ()), *assumptions.records),
    )
    cal = meta.get("calibration_cps_per_mbq")
    if cal is not None and not (math.isfinite(cal) and cal > 0):
        raise MissingFieldError(
            "calibration_cps_per_mbq", "must be positive and finite", cal, "fix the sidecar"
        )
    if q is Quantity.LABEL and data.dtype.kind == "f":
        if not np.all(np.isfinite(data)) or not np.all(data == np.round(data)):
            raise ImageDataError("data", "label values must be integers", None, None, path.name)
        data = data.astype(np.int32)
    image = Image(
        data,
        affine,
        q,
        modality=meta.get("modality") or "OT",
        nuclide=meta.get("nuclide"),
        tracer=meta.get("tracer"),
        timing=timing,
        patient=patient,
        calibration_cps_per_mbq=cal,
        provenance=prov,
        corrections=None if meta.get("corrections") is None else frozenset(meta["corrections"]),
    )
    if q is not Quantity.LABEL:
        image.check_finite()
    return image, meta


def read_labels(path: str | Path, names: dict[int, str] | None = None) -> Labels:
    """Read a label map; names from the sidecar's ``labels`` or the ``names`` argument.

    Without a sidecar, ``names`` is required (label value -> region name).
    """
    path = Path(path)
    has_sidecar = sidecar_path(path).is_file()
    image, meta = _read(path, None if has_sidecar else Quantity.LABEL, Strictness.STRICT)
    if image.quantity is not Quantity.LABEL:
        raise UnitError(
            "quantity",
            "the sidecar does not describe a label map",
            image.quantity.value,
            "read it with read_nifti",
        )
    if image.data.dtype.kind not in "biu":
        image = image.replace(data=image.data.astype(np.int32))
    found = names
    if found is None and "labels" in meta:
        found = {int(k): v for k, v in meta["labels"].items()}
    if found is None:
        raise MissingFieldError(
            "labels",
            "no region names for the label map",
            path.name,
            "give names={1: 'liver', ...} or a sidecar with a \"labels\" object",
        )
    return Labels(image, found)
