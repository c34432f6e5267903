"""Helpers for writing DICOM: deterministic UIDs, value formatting, slice
geometry of an :class:`~theranet.image.Image` and file meta information.

Shared by the DICOM writers (:mod:`theranet.io.dicom_write`) and the digital
patient's exporter (:mod:`theranet.phantom.dicom_export`).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from pydicom.valuerep import format_number_as_ds

from theranet.errors import GeometryError
from theranet.image import Image

__all__ = ["da", "deterministic_uid", "ds", "dt", "file_meta", "slice_geometry", "tm"]

# Namespace of the name-based UIDs (kept from the first writer so files stay identical).
_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://theranet.invalid/phantom/dicom")


def deterministic_uid(*parts: object) -> str:
    """A ``2.25.`` UID from a name-based (version 5) UUID of ``parts``.

    Parameters
    ----------
    *parts : object
        Converted with ``str`` and joined with a separator that cannot occur in
        them by accident (U+001F), so ``("a", "bc")`` and ``("ab", "c")`` differ.

    Returns
    -------
    str
        At most 44 characters (``2.25.`` and a 128-bit integer).

    Examples
    --------
    >>> deterministic_uid("seed", 7, "study") == deterministic_uid("seed", 7, "study")
    True
    >>> deterministic_uid("seed", 7, "study").startswith("2.25.")
    True
    """
    name = "\x1f".join(str(p) for p in parts)
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, name).int}"


def ds(x: float) -> str:
    return format_number_as_ds(float(x))


def da(d: datetime | date) -> str:
    return d.strftime("%Y%m%d")


def tm(d: datetime) -> str:
    return d.strftime("%H%M%S.%f")


def dt(d: datetime) -> str:
    return d.strftime("%Y%m%d%H%M%S.%f")


def slice_geometry(image: Image) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float, float]:
    """(row cosines, column cosines, slice step, row spacing, column spacing, signed step).

    Row cosines are the direction of increasing column index (``affine[:3, 2]``),
    column cosines that of increasing row index (``affine[:3, 1]``); the signed
    step is ``affine[:3, 0]`` along ``row x column`` cosines.
    """
    a = image.affine
    col_step, row_step, slice_step = a[:3, 2], a[:3, 1], a[:3, 0]
    dx, dy = float(np.linalg.norm(col_step)), float(np.linalg.norm(row_step))
    row_cos, col_cos = col_step / dx, row_step / dy
    if abs(float(row_cos @ col_cos)) > 1e-6:
        raise GeometryError(
            "affine",
            "row and column axes are not orthogonal; DICOM cannot store the grid",
            None,
            "resample the image onto an orthogonal grid",
        )
    normal = np.cross(row_cos, col_cos)
    s = float(slice_step @ normal)
    if not np.allclose(slice_step, s * normal, atol=1e-6 * max(abs(s), 1.0)):
        raise GeometryError(
            "affine",
            "the slice step is not along the slice normal (sheared grid, gantry tilt); "
            "the readers refuse it",
            slice_step.tolist(),
            "resample the image onto an orthogonal grid",
        )
    return row_cos, col_cos, slice_step, dy, dx, s


def file_meta(ds: Dataset, implementation: str, version_name: str) -> None:
    """Set deterministic file meta information and the preamble on ``ds``.

    Parameters
    ----------
    ds : Dataset
        Needs SOPClassUID and SOPInstanceUID.
    implementation : str
        Name the Implementation Class UID is derived from.
    version_name : str
        Implementation Version Name (SH, at most 16 characters).
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = deterministic_uid(implementation, "implementation")
    meta.ImplementationVersionName = version_name
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
