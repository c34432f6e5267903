"""Absorbed dose from time-integrated activity: voxel dosimetry and dose-volume
histograms.

Submodules: :mod:`theranet.dosimetry.voxel` (kernel convolution, density
correction, local deposition) and :mod:`theranet.dosimetry.dvh`.
"""

from __future__ import annotations

import importlib

#: Public name -> submodule defining it (imported on first access).
_EXPORTS = {
    "DoseResult": "voxel",
    "convolve_dose": "voxel",
    "voxel_dose": "voxel",
    "DVH": "dvh",
}
# The function ``dvh`` is not re-exported: the package attribute ``dvh`` is the
# submodule once imported. Use ``from theranet.dosimetry.dvh import dvh``.

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
