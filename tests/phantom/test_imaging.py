"""Tests of the image-formation models (SPECT, planar, PET, CT, recovery)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special

from theranet.image import Image, Labels, Quantity
from theranet.phantom.imaging import (
    ScannerModel,
    gaussian_blur,
    linear_attenuation_map,
    measure_recovery,
    pet_model,
    protocol_acquisition_s,
    simulate_ct,
    simulate_pet,
    simulate_planar,
    simulate_spect,
    spect_model,
)
from theranet.physics import photon_attenuation

LU = spect_model("Lu-177")


def _grid(shape, voxel_mm):
    """Axis-aligned (Z, Y, X) affine with the volume centred on the LPS origin."""
    aff = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    aff[:3, 3] = -voxel_mm * (np.asarray(shape) - 1) / 2.0
    return aff


def _radius_mm(shape, voxel_mm, centre_mm=(0.0, 0.0, 0.0)):
    """Distance (mm) of every voxel centre from ``centre_mm`` (Z, Y, X order)."""
    axes = [
        (np.arange(n) - (n - 1) / 2.0) * voxel_mm - c for n, c in zip(shape, centre_mm, strict=True)
    ]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    return np.sqrt(z**2 + y**2 + x**2), (z, y, x)


def _cylinder_phantom(shape=(40, 60, 60), voxel_mm=2.4):
    """Water cylinder (axis z) with two hot spheres, MBq/mL; and its labels."""
    _, (z, y, x) = _radius_mm(shape, voxel_mm)
    conc = np.zeros(shape)
    labels = np.zeros(shape, dtype=np.int16)
    body = (np.hypot(y, x) <= 50.0) & (np.abs(z) <= 24.0)
    conc[body] = 0.05
    labels[body] = 1
    r1, _ = _radius_mm(shape, voxel_mm, (0.0, 0.0, -22.0))
    s1 = r1 <= 8.0
    conc[s1] = 1.0
    labels[s1] = 2
    r2, _ = _radius_mm(shape, voxel_mm, (0.0, 0.0, 22.0))
    s2 = r2 <= 14.0
    conc[s2] = 0.5
    labels[s2] = 3
    aff = _grid(shape, voxel_mm)
    img = Image(conc, aff, Quantity.ACTIVITY_CONCENTRATION, nuclide="Lu-177")
    lab = Labels.from_array(labels, aff, {1: "body", 2: "sphere_small", 3: "sphere_large"})
    return img, lab


def _total_mbq(img: Image) -> float:
    return float(np.sum(np.asarray(img.data, np.float64)) * img.voxel_volume_ml)


def _fwhm_of_profile(profile: np.ndarray, step_mm: float) -> float:
    """FWHM by linear interpolation of the half-maximum crossings."""
    p = np.asarray(profile, dtype=np.float64)
    k = int(np.argmax(p))
    half = p[k] / 2.0
    left = k
    while p[left] > half:
        left -= 1
    right = k
    while p[right] > half:
        right += 1
    xl = left + (half - p[left]) / (p[left + 1] - p[left])
    xr = right - 1 + (p[right - 1] - half) / (p[right - 1] - p[right])
    return (xr - xl) * step_mm


def _analytic_sphere_rc(radius_mm: float, fwhm_mm: float) -> float:
    """Mean over a sphere of its Gaussian-blurred indicator (error-function profile)."""
    s = fwhm_mm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    a = radius_mm

    def blurred(r: float) -> float:
        if r < 1e-9:
            return special.erf(a / (math.sqrt(2) * s)) - math.sqrt(2 / math.pi) * a / s * math.exp(
                -(a**2) / (2 * s**2)
            )
        term = 0.5 * (
            special.erf((a - r) / (math.sqrt(2) * s)) + special.erf((a + r) / (math.sqrt(2) * s))
        )
        gauss = math.exp(-((a - r) ** 2) / (2 * s**2)) - math.exp(-((a + r) ** 2) / (2 * s**2))
        return term - s / (r * math.sqrt(2 * math.pi)) * gauss

    val, _ = integrate.quad(lambda r: blurred(r) * r**2, 0.0, a, epsabs=1e-12, epsrel=1e-10)
    return 3.0 * val / a**3


# -------------------------------------------------------------------- models


def test_models_defaults_and_sources():
    assert LU.sensitivity_cps_per_mbq == pytest.approx(5.7)
    assert LU.planar_sensitivity_cps_per_mbq == pytest.approx(6.1)
    assert LU.fwhm_mm == 12.0 and LU.matrix == (128, 128) and LU.voxel_mm == 4.8
    assert LU.acquisition_s == 1800.0
    assert "Santoro" in LU.sources["sensitivity_cps_per_mbq"]
    for nuc in ("In-111", "I-123", "I-131", "Y-90", "Tc-99m"):
        m = spect_model(nuc)
        assert m.sensitivity_cps_per_mbq > 0
        assert "[UNCERTAIN]" in m.sources["sensitivity_cps_per_mbq"]
    assert spect_model("131I").fwhm_mm == 15.0
    assert pet_model("68Ga").fwhm_mm > pet_model("F-18").fwhm_mm
    assert protocol_acquisition_s(LU, 4.0) == 1800.0
    assert protocol_acquisition_s(LU, 168.0) > protocol_acquisition_s(LU, 96.0) > 1800.0
    with pytest.raises(ValueError):
        spect_model("Ga-68")


# ---------------------------------------------------------------------- SPECT


def test_spect_conserves_activity():
    img, _ = _cylinder_phantom()
    true_total = _total_mbq(img)
    free = simulate_spect(img, LU, seed=0, noise=False)
    assert free.activity_concentration.shape[1:] == (128, 128)
    assert np.allclose(free.activity_concentration.spacing_mm, 4.8)
    assert _total_mbq(free.activity_concentration) == pytest.approx(true_total, rel=5e-3)
    # total reconstructed counts = A x CF x T
    assert float(np.sum(free.counts.data, dtype=np.float64)) == pytest.approx(
        true_total * 5.7 * 1800.0, rel=5e-3
    )
    noisy = simulate_spect(img, LU, seed=1, acquisition_s=600.0)
    assert _total_mbq(noisy.activity_concentration) == pytest.approx(true_total, rel=3e-2)
    assert noisy.counts.quantity is Quantity.COUNTS
    assert noisy.counts.timing.frame_duration_h == pytest.approx(600.0 / 3600.0)
    assert noisy.activity_concentration.calibration_cps_per_mbq == pytest.approx(5.7)
    assert noisy.calibration_cps_per_mbq == pytest.approx(5.7)
    assert np.all(np.mod(noisy.counts.data, 1.0) == 0.0)


@pytest.mark.parametrize("amplification", [1.0, 4.0])
def test_spect_poisson_statistics(amplification):
    shape, v = (30, 40, 40), 4.8
    aff = _grid(shape, v)
    img = Image(np.full(shape, 0.02), aff, Quantity.ACTIVITY_CONCENTRATION)
    model = ScannerModel(**{**_fields(LU), "noise_amplification": amplification})
    res = simulate_spect(img, model, seed=3, grid=img, acquisition_s=900.0)
    expected = np.asarray(res.expected.data) * 5.7 * 900.0 * img.voxel_volume_ml
    flat = expected > 0.999 * expected.max()  # the uniform interior
    assert flat.sum() > 3000
    counts = np.asarray(res.counts.data, np.float64)[flat]
    mean = expected[flat].mean()
    assert counts.mean() == pytest.approx(mean, rel=1e-2)
    assert counts.var(ddof=1) / mean == pytest.approx(amplification, rel=0.08)


def _fields(model):
    import dataclasses

    return {f.name: getattr(model, f.name) for f in dataclasses.fields(model)}


def test_spect_and_pet_resolution_of_line_source():
    shape, v = (8, 81, 81), 1.0
    aff = _grid(shape, v)
    data = np.zeros(shape)
    data[:, 40, 40] = 1.0  # line source along z
    img = Image(data, aff, Quantity.ACTIVITY_CONCENTRATION)
    res = simulate_spect(img, LU, seed=0, grid=img, noise=False)
    prof = np.asarray(res.activity_concentration.data)[4, 40, :]
    assert _fwhm_of_profile(prof, v) == pytest.approx(12.0, rel=0.05)
    prof_y = np.asarray(res.activity_concentration.data)[4, :, 40]
    assert _fwhm_of_profile(prof_y, v) == pytest.approx(12.0, rel=0.05)
    pet = simulate_pet(img, fwhm_mm=5.5, seed=0, noise_level=0.0, grid=img)
    assert _fwhm_of_profile(np.asarray(pet.data)[4, 40, :], v) == pytest.approx(5.5, rel=0.05)
    # anisotropic voxels: sigma is set per axis in mm
    aff2 = np.diag([3.0, 2.0, 1.0, 1.0])
    blurred = gaussian_blur(Image(data, aff2, Quantity.ACTIVITY_CONCENTRATION), 12.0)
    assert _fwhm_of_profile(np.asarray(blurred.data)[4, :, 40], 2.0) == pytest.approx(
        12.0, rel=0.05
    )


# ------------------------------------------------------------------- recovery


@pytest.mark.parametrize(("volume_ml", "voxel_mm"), [(1.0, 0.5), (60.0, 1.0)])
def test_recovery_matches_analytic_sphere(volume_ml, voxel_mm):
    fwhm = 12.0
    radius = (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
    half = radius + 4.0 * fwhm / 2.3548
    n = 2 * math.ceil(half / voxel_mm) + 1
    shape = (n, n, n)
    r, _ = _radius_mm(shape, voxel_mm)
    sphere = r <= radius
    aff = _grid(shape, voxel_mm)
    true = Image(sphere.astype(np.float32), aff, Quantity.ACTIVITY_CONCENTRATION)
    labels = Labels.from_array(sphere.astype(np.int16), aff, {1: "sphere"})
    measured = gaussian_blur(true, fwhm)
    rc = measure_recovery(true, measured, labels)["sphere"]
    analytic = _analytic_sphere_rc(radius, fwhm)
    assert rc == pytest.approx(analytic, rel=0.03)
    if volume_ml == 1.0:
        assert rc < 0.4
    else:
        assert rc > 0.7


def test_recovery_through_spect():
    img, lab = _cylinder_phantom()
    res = simulate_spect(img, LU, seed=0, noise=False)
    rc = measure_recovery(img, res.activity_concentration, lab, on="measured")
    rc_native = measure_recovery(img, res.activity_concentration, lab)
    for d in (rc, rc_native):
        assert d["sphere_small"] < 0.5  # 2.1 mL, 12 mm FWHM
        assert d["sphere_large"] > d["sphere_small"]
        assert 0.85 < d["body"] < 1.05
    with pytest.raises(ValueError):
        measure_recovery(img, res.activity_concentration, lab, on="nowhere")


# ---------------------------------------------------------------------- planar


def test_linear_attenuation_map():
    dens = np.array([[[1.0, 0.26, 1.92, 0.0]]])
    mat = np.array([[[1, 2, 3, 0]]], dtype=np.int16)
    mu = linear_attenuation_map(dens, mat, 0.2084, materials={1: "water", 2: "lung", 3: "bone"})
    assert mu[0, 0, 0] == pytest.approx(photon_attenuation("water").mu_over_rho(0.2084) / 10.0)
    assert mu[0, 0, 1] == pytest.approx(photon_attenuation("lung").mu_over_rho(0.2084) * 0.026)
    assert mu[0, 0, 3] == 0.0
    assert 0.012 < mu[0, 0, 0] < 0.015  # water at 208 keV: about 0.0137 /mm
    lab = Labels.from_array(mat, np.eye(4), {1: "liver", 2: "lungs", 3: "cortical_bone"})
    mu2 = linear_attenuation_map(dens, lab, 0.2084)
    assert mu2[0, 0, 1] == pytest.approx(mu[0, 0, 1])
    assert mu2[0, 0, 2] == pytest.approx(mu[0, 0, 2])


@pytest.mark.parametrize("depth_index", [12, 60])
def test_planar_conjugate_view_recovers_point_source(depth_index):
    shape, v = (21, 80, 41), 2.5  # 200 mm water slab along y (AP)
    aff = _grid(shape, v)
    mu = linear_attenuation_map(
        np.ones(shape), np.ones(shape, dtype=np.int16), 0.2084, materials={1: "water"}
    )
    a_mbq = 50.0
    data = np.zeros(shape)
    data[10, depth_index, 20] = a_mbq / (v**3 / 1000.0)
    img = Image(data, aff, Quantity.ACTIVITY_CONCENTRATION)
    t_s = 600.0
    s = LU.planar_sensitivity_cps_per_mbq
    trans = None
    for noise, tol in ((False, 1e-9), (True, 0.02)):
        res = simulate_planar(img, mu, LU, acquisition_s=t_s, seed=5, noise=noise)
        assert res.anterior.shape == (21, 41)
        trans = res.transmission[10, 20]
        ia, ip = res.anterior.sum() / t_s, res.posterior.sum() / t_s
        estimate = math.sqrt(ia * ip / trans) / s
        assert estimate == pytest.approx(a_mbq, rel=tol)
    mu_w = photon_attenuation("water").mu_over_rho(0.2084) / 10.0
    assert trans == pytest.approx(math.exp(-mu_w * 200.0), rel=1e-9)
    # anterior is -y (index 0 with this affine): a shallow anterior source is brighter
    free = simulate_planar(img, mu, LU, acquisition_s=t_s, seed=0, noise=False)
    brighter_front = free.expected_anterior.sum() > free.expected_posterior.sum()
    assert brighter_front == (depth_index < 40)
    assert res.pixel_mm == (2.5, 2.5)
    assert np.array_equal(res.posterior_as_acquired, res.posterior[:, ::-1])


def test_planar_posterior_is_in_anterior_orientation():
    shape, v = (5, 10, 9), 2.0
    aff = _grid(shape, v)
    data = np.zeros(shape)
    data[2, 5, 1] = 1.0  # off-centre in x
    img = Image(data, aff, Quantity.ACTIVITY_CONCENTRATION)
    mu = np.zeros(shape)
    res = simulate_planar(img, mu, LU, acquisition_s=10.0, seed=0, noise=False)
    assert np.argmax(res.expected_anterior[2]) == 1
    assert np.argmax(res.expected_posterior[2]) == 1
    assert np.argmax(res.posterior_as_acquired[2]) == 7


# ----------------------------------------------------------------- PET and CT


def test_pet_noise_variance_proportional_to_mean():
    shape, v = (20, 40, 40), 4.0
    aff = _grid(shape, v)
    data = np.full(shape, 1.0)
    data[:, :, 20:] = 4.0
    img = Image(data, aff, Quantity.ACTIVITY_CONCENTRATION)
    pet = simulate_pet(img, fwhm_mm=0.0, voxel_mm=4.0, seed=2, noise_level=0.1, grid=img)
    assert pet.quantity is Quantity.ACTIVITY_CONCENTRATION and pet.modality == "PT"
    vals = np.asarray(pet.data, np.float64)
    lo, hi = vals[:, :, :20], vals[:, :, 20:]
    g = 0.1**2 * data.mean()  # reference: mean concentration of the body
    assert lo.mean() == pytest.approx(1.0, rel=0.01)
    assert hi.mean() == pytest.approx(4.0, rel=0.01)
    assert lo.var() / 1.0 == pytest.approx(g, rel=0.08)
    assert hi.var() / 4.0 == pytest.approx(g, rel=0.08)
    assert _total_mbq(pet) == pytest.approx(_total_mbq(img), rel=5e-3)


def test_ct_noise_and_int16():
    hu = np.zeros((10, 50, 50))
    hu[:, :, :10] = -1000.0
    ct = simulate_ct(hu, noise_sd_hu=10.0, seed=4)
    assert ct.data.dtype == np.int16 and ct.quantity is Quantity.HU and ct.modality == "CT"
    water = np.asarray(ct.data, np.float64)[:, :, 10:]
    assert water.mean() == pytest.approx(0.0, abs=0.3)
    assert water.std() == pytest.approx(10.0, rel=0.05)
    ct_img = simulate_ct(Image(hu, np.eye(4), Quantity.HU), seed=4)
    assert np.array_equal(ct_img.data, ct.data)


# --------------------------------------------------------------- determinism


def test_same_seed_same_arrays():
    img, _ = _cylinder_phantom(shape=(20, 40, 40))
    a = simulate_spect(img, LU, seed=11)
    b = simulate_spect(img, LU, seed=11)
    c = simulate_spect(img, LU, seed=12)
    assert np.array_equal(a.counts.data, b.counts.data)
    assert np.array_equal(a.activity_concentration.data, b.activity_concentration.data)
    assert not np.array_equal(a.counts.data, c.counts.data)
    mu = np.full(img.shape, 0.0137)
    p1 = simulate_planar(img, mu, LU, acquisition_s=300.0, seed=7)
    p2 = simulate_planar(img, mu, LU, acquisition_s=300.0, seed=7)
    assert np.array_equal(p1.anterior, p2.anterior)
    assert np.array_equal(p1.posterior, p2.posterior)
    q1 = simulate_pet(img, seed=3)
    q2 = simulate_pet(img, seed=3)
    assert np.array_equal(q1.data, q2.data)
    # inputs are not modified
    assert img.data.max() == pytest.approx(1.0)
