"""The digital NET patient: anatomy, tracer kinetics, image formation, vendor-style
DICOM and ground truth (the project's test bench and the demo's default).

>>> from theranet.phantom import generate_study  # doctest: +SKIP
>>> study = generate_study("out/phantom", tracer="177Lu-DOTATATE", seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

__all__ = ["build_anatomy", "generate_study", "patient_kinetics"]

_LAZY = {
    "build_anatomy": "theranet.phantom.anatomy",
    "generate_study": "theranet.phantom.generate",
    "patient_kinetics": "theranet.phantom.kinetics",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'theranet.phantom' has no attribute {name!r}")
