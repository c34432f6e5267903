"""Voxel dose convolution speed: 128^3 TIA with the 177Lu 4.8 mm kernel (21^3).

Acceptance: :func:`theranet.dosimetry.voxel.convolve_dose` within 1 s and no
slower than 1.2x ``scipy.signal.fftconvolve(tia, kernel, mode="same")`` of the same
arrays, which is the baseline measured in the same run. Best of 5 repetitions each.
"""

from __future__ import annotations

import os
import tempfile
import time


def _best(f, n: int = 5) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def run() -> dict:
    import numpy as np
    from scipy.signal import fftconvolve

    from theranet.dosimetry.voxel import convolve_dose
    from theranet.physics.kernels import voxel_s_values

    with tempfile.TemporaryDirectory() as d:
        old = os.environ.get("THERANET_CACHE_DIR")
        os.environ["THERANET_CACHE_DIR"] = d
        try:
            kernel = voxel_s_values("Lu-177", 4.8, n_voxels=10).full()
        finally:
            if old is None:
                del os.environ["THERANET_CACHE_DIR"]
            else:
                os.environ["THERANET_CACHE_DIR"] = old
    tia = np.random.default_rng(0).random((128, 128, 128))
    convolve_dose(tia, kernel)  # warm-up (plan caches)
    fftconvolve(tia, kernel, mode="same")
    ours = _best(lambda: convolve_dose(tia, kernel))
    base = _best(lambda: fftconvolve(tia, kernel, mode="same"))
    ref = fftconvolve(tia, kernel, mode="same") * 3.6
    err = float(np.abs(convolve_dose(tia, kernel) - ref).max() / ref.max())
    return {
        "dose_convolution_128cube_21kernel_s": {"value": ours, "unit": "s", "baseline": base},
        "dose_convolution_max_rel_error": {"value": err, "unit": "1", "baseline": 1e-5},
    }


if __name__ == "__main__":  # pragma: no cover
    for name, r in run().items():
        print(f"{name}: {r['value']:.3g} {r['unit']} (baseline {r['baseline']:.3g})")
