"""theranet: a workbench for neuroendocrine-tumour theranostics.

The front door holds the few types and verbs most users need; the rest lives in
the subpackages (``theranet.io``, ``theranet.nuclides``...).

>>> import theranet
>>> theranet.Nuclide("177Lu").name
'Lu-177'
"""

from __future__ import annotations

import logging

from theranet._version import __version__
from theranet.errors import Strictness, TheranetError
from theranet.image import DecayCorrection, Image, Labels, PatientInfo, Quantity, Timing
from theranet.io import discover, read_image, write_nifti
from theranet.nuclides import Nuclide

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "DecayCorrection",
    "Image",
    "Labels",
    "Nuclide",
    "PatientInfo",
    "Quantity",
    "Strictness",
    "TheranetError",
    "Timing",
    "__version__",
    "discover",
    "read_image",
    "write_nifti",
]
