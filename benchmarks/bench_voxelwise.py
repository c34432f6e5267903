"""Speed of voxel-wise TIA maps (:func:`theranet.kinetics.voxelwise.tia_map`).

128×128×128 voxels × 4 time points (4, 24, 96, 168 h, 177Lu), noisy
uptake-washout curves with voxel-to-voxel varying kinetics. Throughput in
voxels/s of the whole ``tia_map`` call (input checks, stacking, fits, maps),
after a warm-up call that compiles the numba kernel (JIT time excluded).

Baseline, measured in the same run: the straightforward per-voxel loop with
``scipy.optimize.curve_fit`` (same model, same data) on a random subset of
voxels, in voxels/s.

``run()`` returns ``{name: {"value": x, "unit": u, "baseline": b}}``.
"""

from __future__ import annotations

import math
import time
import warnings
from datetime import datetime, timedelta

import numpy as np

SHAPE = (128, 128, 128)
TIMES_H = (4.0, 24.0, 96.0, 168.0)
N_BASELINE_MONO = 400
N_BASELINE_BIEXP = 200


def _best_of(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _series(shape=SHAPE, seed: int = 0):
    from theranet.image import DecayCorrection, Image, Quantity, Timing
    from theranet.nuclides import Nuclide

    rng = np.random.default_rng(seed)
    lam_p = Nuclide("Lu-177").decay_constant_per_h
    t = np.array(TIMES_H)
    n_vox = int(np.prod(shape))
    t_eff = rng.uniform(30.0, 140.0, n_vox)  # h
    t_up = rng.uniform(0.5, 15.0, n_vox)  # h
    l1 = np.maximum(math.log(2) / t_eff, lam_p)
    l2 = l1 + math.log(2) / t_up
    a1 = rng.gamma(2.0, 0.05, n_vox)  # MBq/mL
    clean = a1[:, None] * (np.exp(-l1[:, None] * t) - np.exp(-l2[:, None] * t))
    noisy = clean * (1 + 0.05 * rng.standard_normal(clean.shape))
    t_inj = datetime(2026, 1, 5, 9, 0)
    images = [
        Image(
            noisy[:, i].reshape(shape).astype(np.float32),
            np.diag([4.42, 4.42, 4.42, 1.0]),
            Quantity.ACTIVITY_CONCENTRATION,
            modality="NM",
            nuclide="Lu-177",
            timing=Timing(
                acquisition_start=t_inj + timedelta(hours=ti),
                injection=t_inj,
                decay_correction=DecayCorrection.START,
            ),
        )
        for i, ti in enumerate(TIMES_H)
    ]
    return images, noisy, t, lam_p


def _baseline_mono(Y, t, lam_p) -> float:
    """Per-voxel curve_fit of a mono-exponential (linear domain), voxels/s."""
    from scipy.optimize import curve_fit

    def f(tt, a, lam):
        return a * np.exp(-lam * tt)

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for y in Y:
            try:
                (a, lam), _ = curve_fit(f, t, y, p0=(max(y[0], 1e-6), 2 * lam_p), maxfev=2000)
            except RuntimeError:
                continue
            _ = a / max(lam, lam_p)
    return len(Y) / (time.perf_counter() - t0)


def _baseline_biexp(Y, t, lam_p) -> float:
    """Per-voxel curve_fit of the uptake-washout model with bounds, voxels/s."""
    from scipy.optimize import curve_fit

    def f(tt, a, l1, l2):
        return a * (np.exp(-l1 * tt) - np.exp(-l2 * tt))

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for y in Y:
            try:
                (a, l1, l2), _ = curve_fit(
                    f,
                    t,
                    y,
                    p0=(max(y.max(), 1e-6) * 1.2, 2 * lam_p, 0.3),
                    bounds=([0.0, lam_p, lam_p], [np.inf, 10.0, 50.0]),
                    max_nfev=2000,
                )
            except (RuntimeError, ValueError):
                continue
            _ = a * (1 / l1 - 1 / l2)
    return len(Y) / (time.perf_counter() - t0)


def run() -> dict:
    from theranet.kinetics.voxelwise import tia_map

    images, Y, t, lam_p = _series()
    n_vox = Y.shape[0]
    # warm-up: compile (or load from cache) the numba kernels on a small series
    small, _, _, _ = _series((4, 4, 4), seed=1)
    tia_map(small, model="biexp_uptake")

    mono_s = _best_of(lambda: tia_map(images, model="mono"), repeat=3)
    mono_np_s = _best_of(lambda: tia_map(images, model="mono", engine="numpy"), repeat=2)
    biexp_s = _best_of(lambda: tia_map(images, model="biexp_uptake"), repeat=2)
    auto_s = _best_of(lambda: tia_map(images, model="auto"), repeat=2)

    rng = np.random.default_rng(2)
    base_mono = _baseline_mono(Y[rng.choice(n_vox, N_BASELINE_MONO, replace=False)], t, lam_p)
    base_biexp = _baseline_biexp(Y[rng.choice(n_vox, N_BASELINE_BIEXP, replace=False)], t, lam_p)
    return {
        "tia_map_mono_128cube_4tp_voxels_per_s": {
            "value": n_vox / mono_s,
            "unit": "voxel/s",
            "baseline": base_mono,
        },
        "tia_map_mono_numpy_128cube_4tp_voxels_per_s": {
            "value": n_vox / mono_np_s,
            "unit": "voxel/s",
            "baseline": base_mono,
        },
        "tia_map_biexp_128cube_4tp_voxels_per_s": {
            "value": n_vox / biexp_s,
            "unit": "voxel/s",
            "baseline": base_biexp,
        },
        "tia_map_auto_128cube_4tp_voxels_per_s": {
            "value": n_vox / auto_s,
            "unit": "voxel/s",
            "baseline": base_biexp,
        },
    }


if __name__ == "__main__":
    for name, r in run().items():
        b = r["baseline"]
        print(f"{name:45s} {r['value']:.4g} {r['unit']}  baseline {b:.4g}  x{r['value'] / b:.0f}")
