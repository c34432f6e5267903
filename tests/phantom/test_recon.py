"""Tests of the optional projection + OSEM SPECT path (pytomography)."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from theranet.image import Image, Quantity
from theranet.phantom.imaging import spect_model
from theranet.phantom.recon import simulate_spect_osem

LU = spect_model("Lu-177")
NATIVE_MM = 2.4
SHAPE = (64, 100, 100)  # (Z, Y, X), 2.4 mm: 153.6 x 240 x 240 mm
SPHERE_CENTRE_MM = (0.0, 0.0, 40.0)
SPHERE_R_MM = 20.0
BACKGROUND, HOT = 0.05, 0.4  # MBq/mL
MU_WATER_208KEV = 0.0137  # 1/mm
# Not a module-level importorskip: the missing-backend test must run without the extra.
_SKIP_REASON = (
    "optional extra 'recon' (pytomography, torch) not installed: pip install 'theranet[recon]'"
)


def _affine(shape, voxel_mm):
    aff = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    aff[:3, 3] = -voxel_mm * (np.asarray(shape) - 1) / 2.0
    return aff


def _coords(shape, voxel_mm):
    axes = [(np.arange(n) - (n - 1) / 2.0) * voxel_mm for n in shape]
    return np.meshgrid(*axes, indexing="ij")


def _phantom():
    """Water cylinder (axis z, r 100 mm, length 120 mm) with a hot sphere; conc, mu."""
    z, y, x = _coords(SHAPE, NATIVE_MM)
    body = (np.hypot(y, x) <= 100.0) & (np.abs(z) <= 60.0)
    cz, cy, cx = SPHERE_CENTRE_MM
    sphere = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= SPHERE_R_MM**2
    conc = np.where(body, BACKGROUND, 0.0)
    conc[sphere] = HOT
    mu = np.where(body, MU_WATER_208KEV, 0.0)
    img = Image(conc, _affine(SHAPE, NATIVE_MM), Quantity.ACTIVITY_CONCENTRATION)
    return img, mu


def test_missing_backend_raises_with_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytomography", None)
    img, mu = _phantom()
    with pytest.raises(ImportError, match=r"pip install 'theranet\[recon\]'"):
        simulate_spect_osem(img, mu, LU, seed=0)


@pytest.mark.slow
def test_osem_cylinder_hot_sphere_quantitative():
    pytest.importorskip("pytomography", reason=_SKIP_REASON)
    img, mu = _phantom()
    t0 = time.perf_counter()
    rec = simulate_spect_osem(img, mu, LU, seed=1)
    elapsed = time.perf_counter() - t0
    assert rec.quantity is Quantity.ACTIVITY_CONCENTRATION
    assert rec.modality == "NM"
    assert rec.shape == (32, 50, 50)
    assert np.all(np.isfinite(rec.data))

    true_total = float(np.sum(img.data) * img.voxel_volume_ml)
    rec_total = float(np.sum(rec.data, dtype=np.float64) * rec.voxel_volume_ml)
    assert rec_total == pytest.approx(true_total, rel=0.05)

    # Hot-sphere recovery (mean over the voxels whose centre is in the sphere).
    z, y, x = (
        np.asarray(c) for c in np.meshgrid(*[np.arange(n) for n in rec.shape], indexing="ij")
    )
    lps = rec.affine[:3, :3] @ np.stack([z.ravel(), y.ravel(), x.ravel()]) + rec.affine[:3, 3:4]
    centre = np.asarray(SPHERE_CENTRE_MM)[:, None]
    inside = (np.sum((lps - centre) ** 2, axis=0) <= SPHERE_R_MM**2).reshape(rec.shape)
    recovery = float(np.mean(np.asarray(rec.data)[inside])) / HOT
    assert 0.3 < recovery < 1.0, recovery
    print(f"OSEM 32x50x50: {elapsed:.1f} s, total {rec_total / true_total:.4f}, RC {recovery:.3f}")
