"""Digital patient speed: `theranet phantom` for four time points (177Lu-DOTATATE,
CT + SPECT per time point, true doses). Baseline (same run): writing the CT series
of one time point alone, the largest I/O part of the job."""

from __future__ import annotations

import tempfile
import time
from datetime import datetime
from pathlib import Path


def run() -> dict:
    from theranet.phantom.anatomy import build_anatomy
    from theranet.phantom.dicom_export import DicomContext, write_ct_series
    from theranet.phantom.generate import generate_study
    from theranet.phantom.imaging import simulate_ct

    with tempfile.TemporaryDirectory() as d:
        generate_study(Path(d) / "warm", times_h=(24.0,), seed=0, with_dose=False)
        t0 = time.perf_counter()
        generate_study(Path(d) / "s", times_h=(4.0, 24.0, 96.0, 168.0), seed=1)
        full = time.perf_counter() - t0
        anatomy = build_anatomy(seed=1)
        ct = simulate_ct(anatomy.hu, seed=1, affine=anatomy.affine)
        t0 = time.perf_counter()
        write_ct_series(Path(d) / "ct", ct, DicomContext(seed=1),
                        acquisition_datetime=datetime(2026, 1, 1, 10))  # fmt: skip
        base = time.perf_counter() - t0
    return {"phantom_177lu_4tp_with_dose_s": {"value": full, "unit": "s", "baseline": base}}
