"""Speed benchmarks of the foundation, each against a baseline measured in the same run.

Usage: ``python benchmarks/run.py --out benchmarks/results.json`` (``make bench``).
Writes ``{name: {"value": x, "unit": u, "baseline": b or null, "ratio": x/b or null}}``.
For times (unit ``s``) a ratio below 1 is faster than the baseline; for rates
(unit ``voxel/s``) a ratio above 1 is.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def _best_of(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_resample() -> dict:
    """SPECT (128^3, 4.42 mm) onto a CT-like grid (256x256x128, 1.95x1.95x3 mm):
    theranet's activity-conserving resampling vs SimpleITK linear resampling
    (which does not conserve activity)."""
    import SimpleITK as sitk

    from theranet.image import Image, Quantity

    rng = np.random.default_rng(0)
    spect = Image(
        rng.gamma(2.0, 1.0, (128, 128, 128)).astype(np.float32),
        np.diag([4.42, 4.42, 4.42, 1.0]),
        Quantity.ACTIVITY_CONCENTRATION,
    )
    ct_aff = np.diag([3.0, 1.95, 1.95, 1.0])
    ct = Image(np.zeros((128, 256, 256), np.int16), ct_aff, Quantity.HU)
    ours = _best_of(lambda: spect.resample_to(ct), repeat=2)
    s_src, s_ref = spect.to_sitk(), ct.to_sitk()
    base = _best_of(
        lambda: sitk.Resample(s_src, s_ref, sitk.Transform(), sitk.sitkLinear, 0.0), repeat=2
    )
    # the reverse direction (downsampling CT-grid activity to SPECT) uses sub-sampling
    fine = spect.resample_to(ct)
    down = _best_of(lambda: fine.resample_to(spect), repeat=2)
    s_fine = fine.to_sitk()
    down_base = _best_of(
        lambda: sitk.Resample(s_fine, s_src, sitk.Transform(), sitk.sitkLinear, 0.0), repeat=2
    )
    # an oblique target (5 degrees about z) takes the general, non-separable path
    a = np.radians(5.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    obl_aff = np.eye(4)
    obl_aff[:3, :3] = rot @ np.diag([3.0, 1.95, 1.95])
    obl = Image(np.zeros((128, 256, 256), np.int16), obl_aff, Quantity.HU)
    oblique = _best_of(lambda: spect.resample_to(obl), repeat=1)
    s_obl = obl.to_sitk()
    oblique_base = _best_of(
        lambda: sitk.Resample(s_src, s_obl, sitk.Transform(), sitk.sitkLinear, 0.0), repeat=1
    )
    return {
        "resample_spect_to_ct_s": {"value": ours, "unit": "s", "baseline": base},
        "resample_spect_to_oblique_ct_s": {
            "value": oblique,
            "unit": "s",
            "baseline": oblique_base,
        },
        "resample_ct_to_spect_conserving_s": {"value": down, "unit": "s", "baseline": down_base},
    }


def bench_nifti() -> dict:
    """Write + read a 256x256x128 float32 image with its sidecar vs plain nibabel."""
    import nibabel as nib

    from theranet.image import Image, Quantity
    from theranet.io.nifti import read_nifti, write_nifti

    data = np.random.default_rng(1).random((128, 256, 256), dtype=np.float32)
    img = Image(data, np.diag([3.0, 1.95, 1.95, 1.0]), Quantity.ACTIVITY_CONCENTRATION)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.nii"

        def ours():
            write_nifti(img, p)
            np.asarray(read_nifti(p).data).sum()

        def base():
            nib.save(nib.Nifti1Image(data, np.eye(4)), p)
            np.asarray(nib.load(p).dataobj).sum()

        return {
            "nifti_round_trip_s": {"value": _best_of(ours), "unit": "s", "baseline": _best_of(base)}
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results.json"))
    ap.add_argument("--only", help="run only the benchmark functions whose module or name "
                    "contains this text (e.g. demo)")  # fmt: skip
    args = ap.parse_args()
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import bench_assess
    import bench_demo
    import bench_dose
    import bench_kernels
    import bench_phantom
    import bench_voxelwise

    results: dict = {}
    for fn in (
        bench_resample,
        bench_nifti,
        bench_voxelwise.run,
        bench_kernels.run,
        bench_dose.run,
        bench_phantom.run,
        bench_demo.run,
        bench_assess.run,
    ):
        if args.only and args.only not in f"{fn.__module__}.{fn.__name__}":
            continue
        results.update(fn())
    for r in results.values():
        b = r.get("baseline")
        r["ratio"] = r["value"] / b if b else None
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for name, r in results.items():
        ratio = f"{r['ratio']:.2f}x baseline" if r["ratio"] else ""
        print(f"{name:40s} {r['value']:.3f} {r['unit']}  {ratio}")


if __name__ == "__main__":
    main()
