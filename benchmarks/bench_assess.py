"""Diagnostic assessment and response from images, each against the reading of its
inputs measured in the same run (the part no analysis can avoid).

* ``assess_68ga_pet_s``: `theranet assess` on the digital patient's 68Ga-DOTATATE
  PET/CT at 60 min (seed 0; lesions, scores, eligibility, HTML/PDF report).
  Baseline: reading the PET and CT series.
* ``response_3_ct_studies_s``: `theranet response` on three CT studies with lesion
  segmentations (the ``partial_response`` design: measure, register, track, RECIST
  and Choi). Baseline: reading the three CT series.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def run() -> dict:
    from theranet.assessment import run_assessment
    from theranet.io import read_series
    from theranet.phantom.generate import generate_study
    from theranet.phantom.response import generate_response_series
    from theranet.response.studies import assess_studies

    out: dict = {}
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        generate_study(root / "ga", tracer="68Ga-DOTATATE", times_h=(1.0,), seed=0,
                       with_dose=False)  # fmt: skip
        tp = root / "ga" / "tp1_1h"
        labels = root / "ga" / "labels.nii.gz"
        run_assessment(tp, root / "warm", labels_path=labels, fwhm_mm=6.5, report=False)
        t0 = time.perf_counter()
        run_assessment(tp, root / "a", labels_path=labels, fwhm_mm=6.5)
        full = time.perf_counter() - t0
        t0 = time.perf_counter()
        read_series(tp / "pet")
        read_series(tp / "ct")
        base = time.perf_counter() - t0
        out["assess_68ga_pet_s"] = {"value": full, "unit": "s", "baseline": base}

        series = generate_response_series(root / "r", "partial_response", seed=0)
        t0 = time.perf_counter()
        assess_studies(series.study_dirs)
        full = time.perf_counter() - t0
        t0 = time.perf_counter()
        for s in series.study_dirs:
            read_series(s / "ct")
        base = time.perf_counter() - t0
        out["response_3_ct_studies_s"] = {"value": full, "unit": "s", "baseline": base}
    return out
