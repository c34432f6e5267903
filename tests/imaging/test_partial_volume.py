"""Geometric transfer matrix (theranet.imaging.partial_volume)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest
from scipy import ndimage, special

from theranet.errors import GeometryError, QuantityError
from theranet.image import DecayCorrection, Image, Labels, Quantity, Timing
from theranet.imaging.partial_volume import FWHM_TO_SIGMA, transfer_matrix


def _affine(voxel_mm: float, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] *= voxel_mm
    a[:3, 3] = origin
    return a


def _sphere(shape, centre, radius_vox):
    z, y, x = np.indices(shape)
    c = np.asarray(centre)[:, None, None, None]
    return ((np.stack([z, y, x]) - c) ** 2).sum(axis=0) <= radius_vox**2


def _timing(duration_h: float = 0.5) -> Timing:
    inj = datetime(2026, 1, 1, 8, 0)
    return Timing(
        acquisition_start=inj + timedelta(hours=24),
        frame_duration_h=duration_h,
        injection=inj,
        administered_activity_mbq=7400.0,
        decay_correction=DecayCorrection.NONE,
    )


def _chi3_cdf(r_over_sigma: float) -> float:
    """P(|N| <= R) for an isotropic 3-D Gaussian: the chi distribution with 3 dof."""
    u = r_over_sigma
    return special.erf(u / math.sqrt(2)) - math.sqrt(2 / math.pi) * u * math.exp(-(u**2) / 2)


def test_sphere_recovery_matches_monte_carlo():
    """G[i, i] of a sphere = P(|U + N| <= R), U uniform in the sphere, N the PSF.

    Reference: the recovery coefficient of a uniform sphere (Hoffman, Huang & Phelps
    1979, J Comput Assist Tomogr 3:299; Rousset 1998 GTM diagonal), evaluated by
    Monte Carlo (10^6 samples, SE < 0.001). Tolerance 1.5 %: voxelisation of the
    sphere on a 1 mm grid (R = 10 mm) and the discrete Gaussian filter.
    """
    voxel, radius, fwhm = 1.0, 10.0, 12.0
    shape = (56, 56, 56)
    centre = (27.5, 27.5, 27.5)
    mask = _sphere(shape, centre, radius / voxel)
    data = np.where(mask, 1, 0).astype(np.int16)
    labels = Labels.from_array(data, _affine(voxel), {1: "sphere"})
    grid = Image(np.zeros(shape, np.float32), _affine(voxel), Quantity.ACTIVITY_CONCENTRATION)
    g = transfer_matrix(labels, grid, fwhm)
    rng = np.random.default_rng(1)
    n = 1_000_000
    d = rng.normal(size=(n, 3))
    u = d / np.linalg.norm(d, axis=1)[:, None] * radius * rng.random(n)[:, None] ** (1 / 3)
    sigma = fwhm * FWHM_TO_SIGMA
    inside = np.linalg.norm(u + rng.normal(scale=sigma, size=(n, 3)), axis=1) <= radius
    assert g.recovery_coefficients[0] == pytest.approx(inside.mean(), rel=0.015)


def test_blur_centre_matches_chi_distribution():
    """Blurred unit sphere at its centre = P(|N| <= R) (analytic, chi with 3 dof).

    The image of the region is checked through a two-region matrix: a one-voxel
    region at the centre sees the sphere's blur at that point. Tolerance 1 %.
    """
    voxel, radius, fwhm = 1.0, 8.0, 10.0
    shape = (48, 48, 48)
    centre = (24, 24, 24)
    sphere = _sphere(shape, centre, radius)
    data = np.where(sphere, 1, 0).astype(np.int16)
    data[centre] = 2
    labels = Labels.from_array(data, _affine(voxel), {1: "shell", 2: "centre"})
    grid = Image(np.zeros(shape, np.float32), _affine(voxel), Quantity.ACTIVITY_CONCENTRATION)
    g = transfer_matrix(labels, grid, fwhm)
    i = g.regions.index("centre")
    blurred_sphere_at_centre = g.matrix[i].sum()  # shell + centre = the whole sphere
    expected = _chi3_cdf(radius / (fwhm * FWHM_TO_SIGMA))
    assert blurred_sphere_at_centre == pytest.approx(expected, rel=0.01)


def _two_region_scene(noise_seed=None):
    """Fine 2 mm labels, SPECT on a 4 mm grid; image made independently with scipy."""
    fine_shape = (40, 40, 40)
    hot = _sphere(fine_shape, (20, 20, 20), 6)  # 12 mm radius
    body = _sphere(fine_shape, (20, 19.5, 20.5), 17) & ~hot
    data = np.zeros(fine_shape, np.int16)
    data[body] = 1
    data[hot] = 2
    labels = Labels.from_array(data, _affine(2.0), {1: "background", 2: "lesion"})
    truth = {"background": 0.05, "lesion": 1.2}  # MBq/mL
    conc = np.where(hot, truth["lesion"], np.where(body, truth["background"], 0.0))
    fwhm = 12.0
    blurred = ndimage.gaussian_filter(conc, sigma=fwhm * FWHM_TO_SIGMA / 2.0, mode="constant")
    # 2 x 2 x 2 block mean onto the 4 mm grid whose voxel k covers fine voxels 2k, 2k+1
    coarse = blurred.reshape(20, 2, 20, 2, 20, 2).mean(axis=(1, 3, 5))
    grid_affine = _affine(4.0, origin=(1.0, 1.0, 1.0))  # centre of fine voxels 0 and 1
    timing = _timing()
    cf = 5.0  # cps/MBq
    img = Image(
        coarse.astype(np.float64),
        grid_affine,
        Quantity.ACTIVITY_CONCENTRATION,
        nuclide="Lu-177",
        timing=timing,
        calibration_cps_per_mbq=cf,
    )
    return labels, img, truth, fwhm


def test_gtm_recovers_true_concentrations():
    """Noise-free: the correction returns the true concentrations (1e-3)."""
    labels, img, truth, fwhm = _two_region_scene()
    g = transfer_matrix(labels, img, fwhm)
    res = g.correct(img)
    for name, c in zip(res.regions, res.concentration_mbq_per_ml, strict=True):
        assert c == pytest.approx(truth[name], rel=1e-3), name
    # the uncorrected lesion mean is spilled out
    i = res.regions.index("lesion")
    assert res.observed_mbq_per_ml[i] < 0.9 * truth["lesion"]
    assert res.recovery[i] == pytest.approx(res.observed_mbq_per_ml[i] / truth["lesion"])
    assert 1 <= g.condition_number < 10


def test_counting_sd_matches_repeated_noise():
    """Predicted counting SD of the corrected means vs 200 Poisson realisations (20 %)."""
    labels, img, _, fwhm = _two_region_scene()
    g = transfer_matrix(labels, img, fwhm)
    scale = img.calibration_cps_per_mbq * img.timing.frame_duration_h * 3600 * img.voxel_volume_ml
    mean_counts = np.asarray(img.data) * scale
    rng = np.random.default_rng(7)
    est = []
    for _ in range(200):
        noisy = img.replace(data=rng.poisson(mean_counts) / scale)
        est.append(g.correct(noisy).concentration_mbq_per_ml)
    predicted = g.correct(img).concentration_sd_mbq_per_ml
    empirical = np.std(est, axis=0, ddof=1)
    np.testing.assert_allclose(predicted, empirical, rtol=0.2)


def test_sd_unknown_without_calibration():
    labels, img, _, fwhm = _two_region_scene()
    img = img.replace(calibration_cps_per_mbq=None)
    res = transfer_matrix(labels, img, fwhm).correct(img)
    assert np.all(np.isnan(res.concentration_sd_mbq_per_ml))
    assert np.all(np.isfinite(res.concentration_mbq_per_ml))


def test_extra_mask_region():
    labels, img, truth, fwhm = _two_region_scene()
    data = np.array(labels.image.data)
    bg = data == 1
    only_lesion = Labels.from_array(np.where(data == 2, 2, 0), labels.image.affine, {2: "lesion"})
    g = transfer_matrix(only_lesion, img, fwhm, masks={"rest": bg})
    assert g.regions == ("lesion", "rest")
    res = g.correct(img)
    assert res.concentration_mbq_per_ml[0] == pytest.approx(truth["lesion"], rel=1e-3)


def test_bad_inputs():
    labels, img, _, fwhm = _two_region_scene()
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="fwhm_mm"):
            transfer_matrix(labels, img, bad)
    g = transfer_matrix(labels, img, fwhm)
    with pytest.raises(GeometryError, match="grid"):
        g.correct(img.crop((0, 0, 0), (10, 10, 10)))
    with pytest.raises(QuantityError, match="concentration"):
        g.correct(img.replace(quantity=Quantity.COUNTS))
    with pytest.raises(GeometryError, match="overlaps"):
        transfer_matrix(labels, img, fwhm, masks={"x": np.asarray(labels.image.data) == 2})
    far = img.replace(affine=_affine(4.0, origin=(1000.0, 0.0, 0.0)))
    with pytest.raises(GeometryError, match="field of view"):
        transfer_matrix(labels, far, fwhm)


def test_sphere_centre_recovery_equals_the_numerical_integral():
    """Centre of a uniform sphere blurred by a 3-D Gaussian: the Gaussian mass
    within the radius, integrated numerically over shells (4 pi r^2 g(r) dr)."""
    from scipy import integrate

    from theranet.imaging.partial_volume import FWHM_TO_SIGMA, sphere_centre_recovery

    for d_mm, fwhm_mm in [(10.0, 10.0), (20.0, 10.0), (30.0, 10.0), (15.6, 5.5), (40.0, 14.0)]:
        s = fwhm_mm * FWHM_TO_SIGMA

        def shell(r, s=s):
            return 4 * np.pi * r * r * np.exp(-r * r / (2 * s * s)) / (2 * np.pi * s * s) ** 1.5

        expected = integrate.quad(shell, 0.0, d_mm / 2.0, epsabs=1e-13, epsrel=1e-12)[0]
        assert sphere_centre_recovery(d_mm, fwhm_mm) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="diameter_mm"):
        sphere_centre_recovery(0.0, 5.0)
