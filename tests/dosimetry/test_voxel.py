"""Voxel dosimetry: FFT convolution against scipy, energy conservation, the local
deposition formula by hand, density correction and geometry checks."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.signal import fftconvolve

from theranet.dosimetry.voxel import convolve_dose, voxel_dose
from theranet.errors import GeometryError, QuantityError
from theranet.image import Image, Quantity


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory):
    # keep the test kernels out of the user's cache
    mp = pytest.MonkeyPatch()
    mp.setenv("THERANET_CACHE_DIR", str(tmp_path_factory.mktemp("kernels")))
    yield
    mp.undo()


@pytest.mark.parametrize(
    ("shape", "kshape"), [((40, 33, 28), (11, 11, 11)), ((9, 30, 31), (7, 5, 12))]
)
def test_convolution_equals_fftconvolve(shape, kshape):
    rng = np.random.default_rng(0)
    a = rng.random(shape) * 100.0
    k = rng.random(kshape)
    ref = fftconvolve(a, k, mode="same") * 3.6
    single = convolve_dose(a, k)
    double = convolve_dose(a, k, precision="double")
    assert single.dtype == np.float32 and single.shape == shape
    assert np.abs(single - ref).max() <= 1e-5 * ref.max()
    assert np.abs(double - ref).max() <= 1e-12 * ref.max()


def test_convolution_speed_sanity():
    # the acceptance (<= 1.2x fftconvolve, < 1 s) is measured in benchmarks/bench_dose.py;
    # here only a loose guard against a gross regression
    rng = np.random.default_rng(1)
    a = rng.random((128, 128, 128))
    k = rng.random((21, 21, 21))

    def best(f):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
        return min(times)

    ours = best(lambda: convolve_dose(a, k))
    ref = best(lambda: fftconvolve(a, k, mode="same"))
    assert ours < 3.0 * ref + 0.05


def test_zero_padding_no_wrap_around():
    tia = np.zeros((8, 8, 32))
    tia[:, :, 0] = 1.0  # activity on one face
    k = np.ones((5, 5, 21))  # reaches 10 voxels: would wrap to the far face without padding
    dose = convolve_dose(tia, k)
    assert dose[:, :, 0].min() > 0
    assert np.abs(dose[:, :, 11:]).max() <= 1e-6 * dose.max()
    assert dose[:, :, 10].min() > 0


def test_point_source_reproduces_kernel():
    tia = np.zeros((15, 15, 15))
    tia[7, 7, 7] = 2.0  # MBq h
    res = voxel_dose(tia, "Lu-177", voxel_mm=4.8, n_voxels=4)
    full = res.s_values.full()
    assert full.shape == (9, 9, 9)
    expected = np.zeros_like(tia)
    expected[3:12, 3:12, 3:12] = 2.0 * 3.6 * full
    got = res.dose.data
    assert np.abs(got - expected).max() <= 1e-6 * expected.max()
    assert res.dose.quantity is Quantity.DOSE and res.dose.unit == "Gy"
    assert res.method == "convolution" and "Lu-177" in res.kernel


def test_uniform_infinite_source_conserves_energy():
    # Beta-only 177Lu kernel (range < 2 mm) in a volume much larger than its range:
    # in the centre every emitted beta energy is absorbed, so the dose equals the
    # local-deposition dose of the beta energy (within 1 %).
    tia = np.ones((21, 21, 21))
    conv = voxel_dose(tia, "Lu-177", voxel_mm=2.0, emissions="beta", n_voxels=4)
    local = voxel_dose(tia, "Lu-177", voxel_mm=2.0, emissions="beta", method="local")
    centre = float(conv.dose.data[10, 10, 10])
    ref = float(local.dose.data[10, 10, 10])
    assert centre == pytest.approx(ref, rel=0.01)
    # the local dose is uniform
    np.testing.assert_allclose(local.dose.data, ref)


def test_local_by_hand_y90():
    # 1 MBq h in 1 mL of unit-density water; 90Y E_np = 0.9329 MeV (ICRP-107)
    tia = np.zeros((3, 3, 3))
    tia[1, 1, 1] = 1.0
    res = voxel_dose(tia, "Y-90", voxel_mm=10.0, material="water", method="local")
    expected = 3.6e9 * 0.9329 * 1.602e-13 / 1e-3  # Gy (0.538)
    assert res.dose.data[1, 1, 1] == pytest.approx(expected, rel=1e-3)
    assert res.dose.data.sum() == pytest.approx(expected, rel=1e-3)  # all local
    # explicit density: twice the mass, half the dose
    res2 = voxel_dose(tia, "Y-90", voxel_mm=10.0, density_g_per_cm3=2.0, method="local")
    assert res2.dose.data[1, 1, 1] == pytest.approx(expected / 2, rel=1e-3)


def test_density_correction_halves_dose_where_density_doubles():
    rng = np.random.default_rng(2)
    tia = rng.random((12, 12, 12))
    conv = voxel_dose(tia, "Lu-177", voxel_mm=4.8, n_voxels=3)
    rho0 = conv.s_values.density_g_per_cm3
    rho = np.full(tia.shape, rho0)
    rho[6:] = 2.0 * rho0
    corr = voxel_dose(
        tia, "Lu-177", voxel_mm=4.8, n_voxels=3, density_g_per_cm3=rho,
        method="density_corrected",
    )  # fmt: skip
    np.testing.assert_allclose(corr.dose.data[:6], conv.dose.data[:6], rtol=1e-6)
    np.testing.assert_allclose(corr.dose.data[6:], conv.dose.data[6:] / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="density_g_per_cm3"):
        voxel_dose(tia, "Lu-177", voxel_mm=4.8, n_voxels=3, method="density_corrected")


def test_image_geometry():
    tia = np.zeros((7, 9, 11))
    tia[3, 4, 5] = 1.0
    # axis-aligned with a flip and permuted axes: spacing per array axis (2, 3, 4) mm
    affine = np.array([[0, 0, -4.0, 10], [0, 3.0, 0, 0], [2.0, 0, 0, -5], [0, 0, 0, 1]])
    img = Image(tia, affine, Quantity.ACTIVITY, nuclide="Lu-177")
    res = voxel_dose(img, "Lu-177", n_voxels=2)
    assert res.s_values.voxel_mm == (2.0, 3.0, 4.0)
    assert res.dose.same_grid(img) and res.dose.quantity is Quantity.DOSE
    assert res.dose.data[3, 4, 5] == pytest.approx(3.6 * res.s_values.self_s, rel=1e-5)
    oblique = affine.copy()
    oblique[:3, :3] = affine[:3, :3] @ np.array(
        [[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]]
    )
    with pytest.raises(GeometryError, match="oblique"):
        voxel_dose(Image(tia, oblique, Quantity.ACTIVITY), "Lu-177")
    with pytest.raises(QuantityError):
        voxel_dose(Image(tia, affine, Quantity.HU), "Lu-177")
    # a concentration (MBq/mL) or counts are not MBq h per voxel
    for q in (Quantity.ACTIVITY_CONCENTRATION, Quantity.COUNTS, Quantity.SUVBW):
        with pytest.raises(QuantityError, match="voxel volume"):
            voxel_dose(Image(tia, affine, q, nuclide="Lu-177"), "Lu-177")
    with pytest.raises(GeometryError, match="voxel_mm"):
        voxel_dose(tia, "Lu-177")
