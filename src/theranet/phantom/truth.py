"""Ground truth of the digital patient: true activities, TIAs and absorbed doses.

The true mean absorbed dose of each region is computed from the true
time-integrated activity distribution at the phantom's native resolution
(uniform within each region) convolved with the project's voxel S-values for
the native voxel size in soft tissue (:mod:`theranet.physics.kernels`), with
FFT convolution over a zero-padded volume (no wrap-around). The kernel extent
is stated with the result: photon cross-dose from farther than the extent is not
included.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["dose_map_gy", "region_means", "tia_map_mbq_h"]


def tia_map_mbq_h(labels_data: np.ndarray, names: Mapping[int, str],
                  tia_mbq_h: Mapping[str, float]) -> np.ndarray:  # fmt: skip
    """Per-voxel TIA (MBq h), each region's TIA spread uniformly over its voxels.

    Parameters
    ----------
    labels_data : ndarray of int, shape (Z, Y, X)
    names : mapping of label value to region name
    tia_mbq_h : mapping of region name to its TIA, MBq h
    """
    counts = np.bincount(labels_data.ravel().astype(np.int64))
    per_voxel = np.zeros(counts.size)
    for value, name in names.items():
        if name in tia_mbq_h and value < counts.size and counts[value] > 0:
            per_voxel[value] = tia_mbq_h[name] / counts[value]
    return per_voxel[labels_data.astype(np.int64)]


def dose_map_gy(
    tia_voxel_mbq_h: np.ndarray,
    s_values_mgy_per_mbq_s: np.ndarray,
) -> np.ndarray:
    """Absorbed dose (Gy) = TIA (MBq h) convolved with the full voxel S-value kernel.

    Parameters
    ----------
    tia_voxel_mbq_h : ndarray, shape (Z, Y, X)
        Time-integrated activity in each voxel, MBq h.
    s_values_mgy_per_mbq_s : ndarray, shape (2n0+1, 2n1+1, 2n2+1)
        Full (mirrored) voxel S-value kernel, mGy/(MBq s), centred.

    Returns
    -------
    ndarray, shape (Z, Y, X)
        Dose, Gy. ``fftconvolve(mode="same")`` zero-pads, so activity does not
        wrap around the volume edges.
    """
    from scipy.signal import fftconvolve

    k = np.asarray(s_values_mgy_per_mbq_s, dtype=np.float64)
    if any(n % 2 == 0 for n in k.shape):
        raise ValueError("s_values_mgy_per_mbq_s: the full kernel must have odd sizes (centred)")
    # MBq h x 3600 s/h x mGy/(MBq s) / 1000 mGy/Gy
    dose = fftconvolve(tia_voxel_mbq_h, k, mode="same") * 3.6
    return np.clip(dose, 0.0, None)


def region_means(values: np.ndarray, labels_data: np.ndarray,
                 names: Mapping[int, str]) -> dict[str, float]:  # fmt: skip
    """Mean of ``values`` over each named region."""
    lab = labels_data.astype(np.int64).ravel()
    sums = np.bincount(lab, weights=values.ravel())
    counts = np.bincount(lab)
    return {
        name: float(sums[v] / counts[v])
        for v, name in names.items()
        if v < counts.size and counts[v] > 0
    }
