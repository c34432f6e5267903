"""The demo's dosimetry: `theranet dosimetry` on the default digital patient
(177Lu-DOTATATE, 7.4 GBq, 4 time points), from DICOM to report, in a fresh
process so that import time and peak memory (max RSS of the child) count.

Baseline (same run): reading the four SPECT files and the reference CT alone,
the part of the job no dosimetry can avoid.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_READ_ONLY = """
import sys, glob
from theranet.io import read_nm_spect, read_series
for f in sorted(glob.glob(sys.argv[1] + '/tp*/spect.dcm')):
    read_nm_spect(f)
read_series(sys.argv[1] + '/tp1_4h/ct')
"""


def _child(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak resident memory in MB) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the maximum over all children so far (kB on Linux)
    return wall, max(peak_kb, before) / 1024.0


def run() -> dict:
    from theranet.phantom.generate import generate_study

    with tempfile.TemporaryDirectory() as d:
        study = Path(d) / "study"
        gt = generate_study(study, activity_gbq=7.4, seed=0).truth
        exe = [sys.executable, "-m", "theranet.cli"]
        base, _ = _child([sys.executable, "-c", _READ_ONLY, str(study)])
        args = [*exe, "dosimetry", str(study), "--out", str(Path(d) / "out"), "--quiet"]
        args += ["--fwhm-mm", str(gt["spect_fwhm_mm"]), "--fwhm-sd-mm", "1"]
        args += ["--calibration-sd-percent", "5", "--registry", str(Path(d) / "registry.sqlite")]
        wall, peak_mb = _child(args)
        assert json.loads((study / "ground_truth.json").read_text())["seed"] == 0
    return {
        "demo_dosimetry_dicom_to_report_s": {"value": wall, "unit": "s", "baseline": base},
        "demo_dosimetry_peak_memory_mb": {"value": peak_mb, "unit": "MB", "baseline": None},
    }
