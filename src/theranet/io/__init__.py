"""Reading and writing images: DICOM (CT, MR, PET, NM SPECT and planar), NIfTI
with a JSON sidecar, and folder discovery.

The readers return :class:`theranet.image.Image` in canonical units with the
path taken to its values and every assumption recorded in its provenance.
"""

from __future__ import annotations

import importlib
from pathlib import Path

__all__ = [
    "discover",
    "read_image",
    "read_labels",
    "read_nifti",
    "read_nm_planar",
    "read_nm_spect",
    "read_series",
    "write_nifti",
]

_LAZY = {
    "discover": "theranet.io.discovery",
    "read_labels": "theranet.io.nifti",
    "read_nifti": "theranet.io.nifti",
    "write_nifti": "theranet.io.nifti",
    "read_nm_spect": "theranet.io.nm",
    "read_nm_planar": "theranet.io.nm",
    "read_series": "theranet.io.dicom_series",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'theranet.io' has no attribute {name!r}")


def read_image(path: str | Path, **kwargs):
    """Read an image from a NIfTI file, an NM SPECT file, or a DICOM series folder.

    Keyword arguments go to the reader chosen: :func:`read_nifti`,
    :func:`read_nm_spect` or :func:`read_series`; those set to None are dropped,
    so one set of options can be passed whatever the file turns out to be. An
    option the chosen reader does not take raises ``TypeError``.
    """
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    from theranet.errors import DicomReadError
    from theranet.io._dicom_common import read_dataset

    path = Path(path)
    if path.name.endswith((".nii", ".nii.gz")):
        return __getattr__("read_nifti")(path, **kwargs)
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() != ".json"
        )
        if not files:
            raise DicomReadError("folder", "contains no files", path.name)
        if len(files) == 1:
            path = files[0]
        else:
            return __getattr__("read_series")(path, **kwargs)
    ds = read_dataset(path, stop_before_pixels=True)
    if str(ds.get("Modality", "")).upper() == "NM":
        return __getattr__("read_nm_spect")(path, **kwargs)
    return __getattr__("read_series")([path], **kwargs)
