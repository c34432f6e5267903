"""Dose-volume histograms against hand-made dose arrays."""

from __future__ import annotations

import numpy as np
import pytest

from theranet.dosimetry.dvh import dvh
from theranet.errors import ImageDataError


def test_linear_ramp_exact():
    # 101 voxels with doses 0, 1, ..., 100 Gy (shuffled, inside a larger masked array)
    rng = np.random.default_rng(3)
    dose = np.full((11, 11, 11), 1e6)
    mask = np.zeros(dose.shape, bool)
    idx = rng.choice(dose.size, 101, replace=False)
    mask.flat[idx] = True
    dose.flat[idx] = rng.permutation(np.arange(101.0))
    h = dvh(dose, mask, bins=100)
    assert h.n_voxels == 101
    assert h.d(50) == np.median(np.arange(101.0)) == 50.0
    assert h.d(2) == 98.0  # hottest 2 % (>= 2.02 voxels): 98, 99, 100 Gy
    assert h.d(98) == 2.0
    assert h.d(0) == h.max == 100.0
    assert h.d(100) == h.min == 0.0
    assert h.mean == pytest.approx(50.0)
    # V(x): voxels with dose >= x, exactly
    assert h.v(0.0) == 1.0
    assert h.v(50.0) == pytest.approx(51 / 101)
    assert h.v(50.5) == pytest.approx(50 / 101)
    assert h.v(100.0) == pytest.approx(1 / 101)
    assert h.v(100.1) == 0.0
    np.testing.assert_allclose(h.v([0.0, 100.1]), [1.0, 0.0])
    # the binned curve is the same function at the edges
    np.testing.assert_array_equal(h.dose_gy, np.linspace(0, 100, 101))
    np.testing.assert_allclose(h.volume_fraction, (101 - np.arange(101)) / 101)
    # consistency: at least p % receives D(p), and less than p % more than D(p)
    for p in (2, 5, 33.3, 50, 95, 98):
        assert h.v(h.d(p)) >= p / 100
        assert h.v(np.nextafter(h.d(p), np.inf)) < p / 100


def test_uniform_and_two_level():
    h = dvh(np.full((4, 4, 4), 3.0), np.ones((4, 4, 4), bool))
    assert h.d(98) == h.d(2) == h.mean == 3.0
    assert h.v(3.0) == 1.0 and h.v(3.0001) == 0.0
    # a quarter at 10 Gy, the rest at 2 Gy
    d = np.full(8, 2.0)
    d[:2] = 10.0
    h = dvh(d, np.ones(8, bool), bins=[0.0, 2.0, 5.0, 10.0, 11.0])
    np.testing.assert_allclose(h.volume_fraction, [1.0, 1.0, 0.25, 0.25, 0.0])
    assert h.d(25) == 10.0 and h.d(26) == 2.0
    assert h.mean == pytest.approx(4.0)


def test_errors():
    with pytest.raises(ImageDataError, match="selects no voxel"):
        dvh(np.ones(3), np.zeros(3, bool))
    with pytest.raises(ImageDataError, match="shape"):
        dvh(np.ones(3), np.ones(4, bool))
    with pytest.raises(ValueError, match="percent"):
        dvh(np.ones(3), np.ones(3, bool)).d(101)
    with pytest.raises(ValueError, match="edges"):
        dvh(np.ones(3), np.ones(3, bool), bins=[1.0, 0.0])
