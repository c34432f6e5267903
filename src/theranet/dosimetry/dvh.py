"""Cumulative dose-volume histograms of a region.

All voxels of the region are taken to have the same volume, so the cumulative
DVH is exact from the sorted voxel doses: ``V(x)`` is the fraction of voxels
with dose ``>= x`` and ``D(p)`` the largest dose ``d`` with ``V(d) >= p / 100``
(the minimum dose of the hottest ``p`` % of the volume). ``D(0)`` is the maximum,
``D(100)`` the minimum; for an odd number of voxels ``D(50)`` is the median
(for an even number, the upper of the two middle doses).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from theranet.errors import ImageDataError

__all__ = ["DVH", "dvh"]


@dataclass(frozen=True, eq=False)
class DVH:
    """Cumulative dose-volume histogram.

    Attributes
    ----------
    dose_gy : ndarray of shape (n + 1,)
        Bin edges, Gy, increasing from 0 (or the minimum dose, when negative).
    volume_fraction : ndarray of shape (n + 1,)
        Fraction of the region receiving at least ``dose_gy[i]``.
    sorted_dose_gy : ndarray
        The region's voxel doses in increasing order (what :meth:`d` and
        :meth:`v` use, exactly).
    """

    dose_gy: NDArray[np.float64]
    volume_fraction: NDArray[np.float64]
    sorted_dose_gy: NDArray[np.float64]

    @property
    def n_voxels(self) -> int:
        return int(self.sorted_dose_gy.size)

    @property
    def mean(self) -> float:
        """Mean dose, Gy."""
        return float(self.sorted_dose_gy.mean())

    @property
    def min(self) -> float:
        """Minimum dose, Gy."""
        return float(self.sorted_dose_gy[0])

    @property
    def max(self) -> float:
        """Maximum dose, Gy."""
        return float(self.sorted_dose_gy[-1])

    def v(self, dose_gy: ArrayLike) -> float | NDArray[np.float64]:
        """Fraction of the region receiving at least ``dose_gy`` (0..1)."""
        x = np.asarray(dose_gy, dtype=np.float64)
        s = self.sorted_dose_gy
        frac = (s.size - np.searchsorted(s, x, side="left")) / s.size
        return float(frac) if frac.ndim == 0 else frac

    def d(self, percent: ArrayLike) -> float | NDArray[np.float64]:
        """Minimum dose of the hottest ``percent`` % of the region, Gy (D98, D50, D2).

        The largest dose ``d`` with ``v(d) >= percent / 100``.
        """
        p = np.asarray(percent, dtype=np.float64)
        if np.any((p < 0) | (p > 100)) or not np.all(np.isfinite(p)):
            raise ValueError(f"percent: must be in 0..100, got {percent!r}")
        n = self.sorted_dose_gy.size
        # v(s[i]) >= (n - i)/n: the largest i with n - i >= n p/100 (round-off guarded)
        i = np.floor(n * (1.0 - p / 100.0) + 1e-9).astype(np.int64)
        out = self.sorted_dose_gy[np.clip(i, 0, n - 1)]
        return float(out) if out.ndim == 0 else out


def dvh(dose: ArrayLike, mask: ArrayLike, *, bins: int | ArrayLike = 1000) -> DVH:
    """Cumulative DVH of the voxels of ``dose`` where ``mask`` is true.

    Parameters
    ----------
    dose : array_like (or Image)
        Dose, Gy.
    mask : array_like of bool, same shape
        The region.
    bins : int or array_like
        Number of equal bins from 0 to the maximum dose, or increasing bin edges, Gy.

    Returns
    -------
    DVH

    Examples
    --------
    >>> import numpy as np
    >>> h = dvh(np.arange(5.0), np.ones(5, bool), bins=4)
    >>> h.d(50), h.v(3.0), h.volume_fraction.tolist()
    (2.0, 0.4, [1.0, 0.8, 0.6, 0.4, 0.2])
    """
    d = np.asarray(dose, dtype=np.float64)
    m = np.asarray(mask)
    if m.shape != d.shape:
        raise ImageDataError("mask", f"shape must match the dose {d.shape}", m.shape)
    values = np.sort(d[m.astype(bool)], kind="stable")
    if values.size == 0:
        raise ImageDataError("mask", "selects no voxel", int(m.sum()))
    if not np.all(np.isfinite(values)):
        raise ImageDataError("dose", "non-finite doses in the region", None)
    if np.ndim(bins) == 0:
        n = int(bins)  # type: ignore[arg-type]
        if n < 1:
            raise ValueError(f"bins: need at least 1, got {bins!r}")
        lo = min(0.0, float(values[0]))
        hi = float(values[-1]) if values[-1] > lo else lo + 1.0
        edges = np.linspace(lo, hi, n + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("bins: edges must be a 1-D increasing sequence")
    frac = (values.size - np.searchsorted(values, edges, side="left")) / values.size
    values.setflags(write=False)
    edges.setflags(write=False)
    frac.setflags(write=False)
    return DVH(dose_gy=edges, volume_fraction=frac, sorted_dose_gy=values)
