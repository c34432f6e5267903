"""Kernel speed: a new (nuclide, voxel size) voxel S-value kernel and a cached one.

Baseline (same run): one monoenergetic electron Monte Carlo kernel at 1 MeV
(20 000 histories), the unit of work the libraries are made of.
"""

from __future__ import annotations

import os
import tempfile
import time


def run() -> dict:
    from theranet.physics.electron_mc import simulate_electron_point_kernel
    from theranet.physics.kernels import voxel_s_values

    with tempfile.TemporaryDirectory() as d:
        os.environ["THERANET_CACHE_DIR"] = d
        voxel_s_values("Lu-177", 4.0, n_voxels=5, n_samples=10_000, use_cache=False)  # warm-up
        t0 = time.perf_counter()
        voxel_s_values("I-131", 4.42, material="soft_tissue", n_voxels=10)
        new = time.perf_counter() - t0
        t0 = time.perf_counter()
        voxel_s_values("I-131", 4.42, material="soft_tissue", n_voxels=10)
        cached = time.perf_counter() - t0
        simulate_electron_point_kernel(1.0, n_histories=1000)  # compile
        t0 = time.perf_counter()
        simulate_electron_point_kernel(1.0, n_histories=20_000)
        base = time.perf_counter() - t0
        del os.environ["THERANET_CACHE_DIR"]
    return {
        "kernel_new_i131_4p42mm_s": {"value": new, "unit": "s", "baseline": base},
        "kernel_cached_i131_4p42mm_s": {"value": cached, "unit": "s", "baseline": base},
    }
