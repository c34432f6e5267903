"""Lesion detection and measurement (theranet.imaging.lesions) on synthetic images.

Every expected number is worked out here from the scene that is drawn (uniform
regions, known noise, a Gaussian blur of known FWHM) or from a published formula
(clinical.md §3.1, §4.1, §7.3), never from the module's own output.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import ndimage, special

from theranet.errors import ImageDataError, MissingFieldError, QuantityError, TheranetError
from theranet.image import DecayCorrection, Image, Labels, PatientInfo, Quantity, Timing
from theranet.imaging.lesions import (
    COLUMNS,
    DEFAULT_EXCLUDED_ORGANS,
    LIVER_KRENNING3,
    MIBG_EXCLUDED_ORGANS,
    PERCIST_BLOOD_POOL,
    PERCIST_LIVER,
    DetectionSettings,
    LesionDetectionError,
    ReferenceRegionError,
    ThresholdRule,
    detect_lesions,
    lesion_site,
    peak_concentration,
    reference_region,
    split_components,
)

VOXEL_MM = 4.0
FWHM_MM = 8.0
SHAPE = (40, 40, 40)
INJECTION = datetime(2026, 1, 5, 9, 0)

# organ labels of the synthetic scene
LIVER, SPLEEN, KIDNEY, BOWEL, MARROW, HEART = 1, 2, 3, 4, 5, 6
NAMES = {
    LIVER: "liver",
    SPLEEN: "spleen",
    KIDNEY: "kidney_left",
    BOWEL: "small_bowel",
    MARROW: "vertebrae_L1",
    HEART: "heart_blood",
}


def _affine(voxel_mm: float = VOXEL_MM) -> np.ndarray:
    a = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    a[:3, 3] = (-80.0, -80.0, 100.0)
    return a


def _ball(shape, centre, radius_vox) -> np.ndarray:
    idx = np.indices(shape, dtype=float)
    c = np.asarray(centre, dtype=float)[:, None, None, None]
    return ((idx - c) ** 2).sum(axis=0) <= radius_vox**2


def _box(shape, lo, hi) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = True
    return m


def _organs() -> np.ndarray:
    lab = np.zeros(SHAPE, dtype=np.int16)
    lab[_box(SHAPE, (2, 2, 2), (24, 24, 24))] = LIVER  # 22^3 voxels, 88 mm side
    lab[_box(SHAPE, (28, 2, 2), (36, 12, 12))] = SPLEEN
    lab[_box(SHAPE, (28, 26, 26), (36, 34, 34))] = KIDNEY
    lab[_box(SHAPE, (2, 28, 2), (12, 38, 12))] = BOWEL
    lab[_box(SHAPE, (14, 28, 28), (24, 38, 38))] = MARROW
    lab[_box(SHAPE, (28, 2, 26), (38, 12, 36))] = HEART
    return lab


def _labels(lab=None, names=None, voxel_mm: float = VOXEL_MM) -> Labels:
    lab = _organs() if lab is None else lab
    return Labels.from_array(lab, _affine(voxel_mm), NAMES if names is None else names)


def _image(data, quantity=Quantity.ACTIVITY_CONCENTRATION, **kw) -> Image:
    kw.setdefault("nuclide", "Ga-68")
    return Image(np.asarray(data, np.float32), _affine(), quantity, modality="PT", **kw)


def _blur(data: np.ndarray, fwhm_mm: float = FWHM_MM) -> np.ndarray:
    sigma = fwhm_mm / (2.0 * math.sqrt(2.0 * math.log(2.0))) / VOXEL_MM
    return ndimage.gaussian_filter(np.asarray(data, np.float64), sigma, mode="constant")


def _scene(
    liver=1.0, spleen=3.0, kidney=6.0, bowel=0.3, marrow=0.4, heart=0.6, background=0.1
) -> tuple[np.ndarray, np.ndarray]:
    """(true concentration, organ labels), MBq/mL."""
    lab = _organs()
    conc = np.full(SHAPE, background)
    for value, c in (
        (LIVER, liver),
        (SPLEEN, spleen),
        (KIDNEY, kidney),
        (BOWEL, bowel),
        (MARROW, marrow),
        (HEART, heart),
    ):
        conc[lab == value] = c
    return conc, lab


def sphere_centre_recovery(volume_ml: float, fwhm_mm: float) -> float:
    """Centre value of a uniform sphere blurred by a 3-D Gaussian over its true value.

    ``P(|X| <= R)`` for ``X ~ N(0, s^2 I3)`` (chi distribution, 3 degrees of freedom):
    ``erf(a) - 2 a exp(-a^2) / sqrt(pi)`` with ``a = R / (s sqrt 2)``.
    """
    r = (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
    s = fwhm_mm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    a = r / (s * math.sqrt(2.0))
    return float(special.erf(a) - 2.0 * a * math.exp(-(a**2)) / math.sqrt(math.pi))


# ------------------------------------------------------------------ reference region


def test_reference_of_a_checkerboard_liver_is_its_analytic_mean_and_sd():
    # liver voxels alternate 0.9 / 1.1: mean 1.0, population SD 0.1 exactly
    conc, lab = _scene()
    parity = np.indices(SHAPE).sum(axis=0) % 2
    conc = np.where(lab == LIVER, np.where(parity == 0, 0.9, 1.1), conc)
    ref = reference_region(_image(conc), _labels(lab), fwhm_mm=FWHM_MM)
    n = ref.n_voxels
    assert_allclose(ref.mean, 1.0, atol=0.1 / n + 1e-6)  # an odd count leaves one voxel over
    assert_allclose(ref.sd, 0.1 * math.sqrt(n / (n - 1)), rtol=1e-3)
    # eroded by the FWHM: 8 mm = 2 voxels, minus the half voxel to the boundary,
    # so voxels whose centre is >= 3 voxels from the outside: 22 - 2 x 2 = 18 per side
    assert n == 18**3
    assert ref.labels == ("liver",) and ref.method == "eroded" and ref.unit == "MBq/mL"


def test_reference_mean_of_noisy_liver_within_its_standard_error():
    rng = np.random.default_rng(3)
    conc, lab = _scene()
    noisy = conc + rng.normal(0.0, 0.1, SHAPE) * (lab == LIVER)
    ref = reference_region(_image(noisy), _labels(lab), fwhm_mm=FWHM_MM)
    # 4 standard errors of the mean; SD within 5 % (n ~ 5800: its own SE is ~1 %)
    assert abs(ref.mean - 1.0) < 4 * 0.1 / math.sqrt(ref.n_voxels)
    assert_allclose(ref.sd, 0.1, rtol=0.05)


def test_hot_and_cold_lesions_are_left_out_of_the_reference():
    conc, lab = _scene()
    conc[_ball(SHAPE, (12, 12, 12), 3.0)] = 8.0  # hot metastasis in the liver
    conc[_ball(SHAPE, (7, 17, 17), 2.0)] = 0.2  # cold one
    ref = reference_region(_image(conc), _labels(lab), fwhm_mm=FWHM_MM)
    assert ref.mean == pytest.approx(1.0, abs=1e-6)  # only normal liver left
    assert ref.sd == pytest.approx(0.0, abs=1e-6)
    assert ref.excluded_ml > 0
    # without the lesion removal the hot voxels raise the mean
    loose = DetectionSettings(min_volume_ml=1000.0)  # no cluster is lesion-like
    assert reference_region(_image(conc), _labels(lab), fwhm_mm=FWHM_MM, settings=loose).mean > 1.1


def test_sphere_reference_is_a_30_mm_sphere_of_normal_liver():
    conc, lab = _scene()
    settings = DetectionSettings(reference_method="sphere")
    ref = reference_region(_image(conc), _labels(lab), fwhm_mm=FWHM_MM, settings=settings)
    # voxel centres within 15 mm on a 4 mm grid: count them independently
    offsets = np.arange(-3, 4) * VOXEL_MM
    g = np.meshgrid(offsets, offsets, offsets, indexing="ij")
    expected = int(np.count_nonzero(g[0] ** 2 + g[1] ** 2 + g[2] ** 2 <= 15.0**2))
    assert ref.n_voxels == expected
    assert ref.mean == pytest.approx(1.0)
    assert ref.sphere_centre_mm is not None
    centre = np.rint(_image(conc).lps_to_index(np.array(ref.sphere_centre_mm))).astype(int)
    assert lab[tuple(centre)] == LIVER


def test_sphere_that_does_not_fit_is_refused():
    conc, lab = _scene()
    small = np.where(lab == LIVER, 0, lab)
    small[_box(SHAPE, (2, 2, 2), (12, 12, 12))] = LIVER  # 40 mm cube
    settings = DetectionSettings(reference_method="sphere")
    with pytest.raises(ReferenceRegionError, match="sphere"):
        reference_region(_image(conc), _labels(small), fwhm_mm=FWHM_MM, settings=settings)


def test_missing_liver_is_a_typed_error_naming_the_label():
    conc, lab = _scene()
    names = {k: v for k, v in NAMES.items() if v != "liver"}
    lab = np.where(lab == LIVER, 0, lab)
    with pytest.raises(ReferenceRegionError) as info:
        detect_lesions(_image(conc), _labels(lab, names), fwhm_mm=FWHM_MM)
    err = info.value
    assert isinstance(err, TheranetError) and isinstance(err, ValueError)
    assert "'liver'" in str(err) and err.field == "labels"
    assert "blood" in err.fix  # the alternative reference is named


def test_missing_blood_pool_names_heart_blood():
    conc, lab = _scene()
    names = {k: v for k, v in NAMES.items() if v != "heart_blood"}
    lab = np.where(lab == HEART, 0, lab)
    settings = DetectionSettings(rule=PERCIST_BLOOD_POOL)
    with pytest.raises(ReferenceRegionError, match="heart_blood"):
        detect_lesions(_image(conc), _labels(lab, names), fwhm_mm=FWHM_MM, settings=settings)


# ------------------------------------------------------------------ threshold


@pytest.mark.parametrize(
    ("rule", "factor", "k"),
    [(LIVER_KRENNING3, 1.0, 2.0), (PERCIST_LIVER, 1.5, 2.0), (PERCIST_BLOOD_POOL, 2.0, 2.0)],
)
def test_threshold_is_factor_times_mean_plus_k_sd(rule, factor, k):
    # PERCIST 1.0 (Wahl 2009, clinical.md §7.3): 1.5 x liver mean + 2 SD; blood pool
    # 2.0 x mean + 2 SD; Krenning >= 3 (clinical.md §3.1): above liver (+ 2 SD margin)
    assert (rule.factor, rule.k_sd) == (factor, k)
    conc, lab = _scene()
    parity = np.indices(SHAPE).sum(axis=0) % 2
    region = LIVER if rule.reference == "liver" else HEART
    mean = 1.0 if region == LIVER else 0.6
    conc = np.where(lab == region, mean + np.where(parity == 0, -0.1, 0.1), conc)
    table = detect_lesions(
        _image(conc), _labels(lab), fwhm_mm=4.0, settings=DetectionSettings(rule=rule)
    )
    n = table.reference.n_voxels
    sd = 0.1 * math.sqrt(n / (n - 1))
    assert_allclose(table.threshold, factor * mean + k * sd, rtol=1e-3)


def test_rule_and_settings_are_validated():
    with pytest.raises(LesionDetectionError):
        ThresholdRule("kidney", 1.0, 2.0, "x")
    with pytest.raises(LesionDetectionError):
        ThresholdRule("liver", 0.0, 2.0, "x")
    with pytest.raises(LesionDetectionError):
        ThresholdRule("liver", 1.0, -1.0, "x")
    for bad in (
        {"connectivity": 8},
        {"sphere_diameter_mm": 20.0},
        {"reference_method": "ring"},
        {"min_volume_ml": -1.0},
        {"split_depth": 1.5},
        {"excluded_organs": "kidney*"},
        {"outlier_sd": 0.0},
    ):
        with pytest.raises(LesionDetectionError):
            DetectionSettings(**bad)
    with pytest.raises(LesionDetectionError):
        detect_lesions(_image(_scene()[0]), _labels(), fwhm_mm=0.0)


def test_quantities_that_are_not_uptake_are_refused():
    hu = Image(np.zeros(SHAPE, np.float32), _affine(), Quantity.HU, modality="CT")
    with pytest.raises(QuantityError):
        detect_lesions(hu, _labels(), fwhm_mm=FWHM_MM)


# ------------------------------------------------------------------ detection


def test_uniform_node_sphere_is_measured_exactly():
    # no blur, no noise: a 40 mm sphere in soft tissue, 5 MBq/mL
    conc, lab = _scene()
    centre = (30, 20, 18)
    ball = _ball(SHAPE, centre, 5.0)
    conc[ball] = 5.0
    table = detect_lesions(_image(conc), _labels(lab), fwhm_mm=FWHM_MM)
    (les,) = table.lesions
    n = int(np.count_nonzero(ball))
    assert les.n_voxels == n
    assert les.volume_ml == pytest.approx(n * VOXEL_MM**3 / 1000.0)
    # the voxelised sphere is within 5 % of the analytic 4/3 pi (20 mm)^3 = 33.5 mL
    assert les.volume_ml == pytest.approx(4.0 / 3.0 * math.pi * 20.0**3 / 1000.0, rel=0.05)
    expected_centre = _affine()[:3, :3] @ np.array(centre, float) + _affine()[:3, 3]
    assert_allclose(les.centroid_mm, expected_centre, atol=1e-9)
    assert les.max_mbq_per_ml == pytest.approx(5.0)
    assert les.mean_mbq_per_ml == pytest.approx(5.0)
    # the 1 cm^3 peak sphere fits inside the lesion: its mean is the concentration
    assert les.peak_mbq_per_ml == pytest.approx(5.0)
    assert (les.site, les.region) == ("node", "none")
    assert les.tlr == pytest.approx(5.0)  # lesion max / liver mean (clinical.md §3.2)
    assert les.tsr == pytest.approx(5.0 / 3.0)  # lesion max / spleen mean
    assert not les.small_for_peak


def test_liver_metastasis_is_found_inside_the_liver():
    conc, lab = _scene()
    conc[_ball(SHAPE, (12, 12, 12), 3.0)] = 4.0
    table = detect_lesions(_image(_blur(conc)), _labels(lab), fwhm_mm=FWHM_MM)
    (les,) = table.lesions
    assert les.site == "liver" and les.region == "liver"
    centre = _affine()[:3, :3] @ np.array([12.0, 12.0, 12.0]) + _affine()[:3, 3]
    assert_allclose(les.centroid_mm, centre, atol=0.5)
    # the reference liver mean excludes the metastasis and its spill
    assert table.reference.mean == pytest.approx(1.0, rel=1e-3)


def test_bone_lesion_site():
    conc, lab = _scene()
    conc[_ball(SHAPE, (19, 33, 33), 2.0)] = 5.0
    table = detect_lesions(
        _image(conc), _labels(lab), fwhm_mm=FWHM_MM, settings=DetectionSettings(min_volume_ml=0.5)
    )
    (les,) = table.lesions
    assert (les.site, les.region) == ("bone", "vertebrae_L1")


def test_nothing_is_reported_inside_or_spilling_from_excluded_organs():
    # kidney 20x liver, spleen 10x, a hot spot inside the spleen: blurred
    conc, lab = _scene(kidney=20.0, spleen=10.0)
    conc[_ball(SHAPE, (32, 7, 7), 1.5)] = 30.0
    image = _image(_blur(conc))
    table = detect_lesions(image, _labels(lab), fwhm_mm=FWHM_MM)
    assert len(table) == 0
    assert {"spleen", "kidney_left"} <= set(table.dilated_regions)
    assert "small_bowel" in table.excluded_regions
    assert "small_bowel" not in table.dilated_regions  # below the threshold: not dilated
    # without the dilation and spill tests, the kidney's spill-out is reported
    bare = DetectionSettings(exclusion_margin_mm=0.0, drop_spill_tails=False, local_k_sd=None)
    spill = detect_lesions(image, _labels(lab), fwhm_mm=FWHM_MM, settings=bare)
    assert len(spill) >= 1


def test_spill_of_a_flat_organ_one_fwhm_out_is_below_one_percent():
    # the default dilation (one FWHM) rests on this: C/2 erfc(d / (s sqrt 2)) at d = FWHM
    s = FWHM_MM / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    assert 0.5 * special.erfc(FWHM_MM / (s * math.sqrt(2.0))) == pytest.approx(0.00927, abs=1e-5)
    # and the same number from a blurred half-space
    step = np.zeros(2000)
    step[:1000] = 1.0
    blurred = ndimage.gaussian_filter1d(step, s / 0.1, truncate=8.0)  # 0.1 mm samples
    # the edge lies between samples 999 and 1000: one FWHM out is between 1079 and 1080
    at_fwhm = 0.5 * (blurred[999 + 80] + blurred[1000 + 80])
    assert at_fwhm == pytest.approx(0.00927, abs=2e-5)


def test_node_against_a_cold_bowel_is_kept_whole():
    conc, lab = _scene(bowel=0.3)
    node = _ball(SHAPE, (7, 23, 7), 2.0) & (lab == 0)  # touches the bowel (y >= 28)
    conc[node] = 5.0
    table = detect_lesions(
        _image(conc), _labels(lab), fwhm_mm=FWHM_MM, settings=DetectionSettings(min_volume_ml=0.5)
    )
    (les,) = table.lesions
    assert les.n_voxels == int(np.count_nonzero(node))
    assert les.site == "node"


def test_diffuse_marrow_above_liver_is_not_a_lesion_but_a_focus_in_it_is():
    # marrow 1.3 x liver with 10 % noise everywhere: the liver-relative threshold is
    # below the marrow's normal uptake, the marrow's own level is used there
    rng = np.random.default_rng(7)
    conc, lab = _scene(marrow=1.3)
    conc[_ball(SHAPE, (19, 33, 33), 2.0)] = 6.0
    noisy = _blur(conc) * (1.0 + rng.normal(0.0, 0.1, SHAPE))
    table = detect_lesions(_image(noisy), _labels(lab), fwhm_mm=FWHM_MM)
    assert "vertebrae_L1" in table.region_levels
    assert [les.site for les in table.lesions] == ["bone"]
    # without the organ's own level the diffuse marrow becomes one large "lesion"
    off = DetectionSettings(organ_background=False, local_k_sd=None)
    largest = detect_lesions(_image(noisy), _labels(lab), fwhm_mm=FWHM_MM, settings=off).lesions[0]
    focus_ml = np.count_nonzero(_ball(SHAPE, (19, 33, 33), 2.0)) * VOXEL_MM**3 / 1000.0
    assert largest.volume_ml > 5.0 * focus_ml


def test_min_volume_and_connectivity():
    conc, lab = _scene()
    small = _ball(SHAPE, (30, 20, 18), 1.0)  # 7 voxels = 0.448 mL
    conc[small] = 20.0
    assert len(detect_lesions(_image(conc), _labels(lab), fwhm_mm=FWHM_MM)) == 0
    settings = DetectionSettings(min_volume_ml=0.4)
    (les,) = detect_lesions(_image(conc), _labels(lab), fwhm_mm=FWHM_MM, settings=settings).lesions
    assert les.n_voxels == 7 and les.small_for_peak
    # two voxels touching at a corner: one lesion with 26-, two with 6-connectivity
    conc, lab = _scene()
    conc[30, 20, 18] = conc[31, 21, 19] = 50.0
    loose = DetectionSettings(min_volume_ml=0.0, local_k_sd=None, peak_above_threshold=False)
    strict = DetectionSettings(
        min_volume_ml=0.0, local_k_sd=None, peak_above_threshold=False, connectivity=6
    )
    assert len(detect_lesions(_image(conc), _labels(lab), fwhm_mm=FWHM_MM, settings=loose)) == 1
    assert len(detect_lesions(_image(conc), _labels(lab), fwhm_mm=FWHM_MM, settings=strict)) == 2


def test_two_blurred_lesions_joined_by_their_halo_are_split():
    # 8 mm-radius spheres 24 mm apart (8 mm gap = one FWHM): after the blur the valley
    # between them (about 1.2 MBq/mL) stays above the threshold (1 MBq/mL) but far
    # below both maxima: two lesions, each centred on its sphere
    conc, lab = _scene()
    conc[_ball(SHAPE, (30, 16, 18), 2.0)] = 8.0
    conc[_ball(SHAPE, (30, 22, 18), 2.0)] = 6.0
    image = _image(_blur(conc))
    whole = DetectionSettings(split_depth=None)
    assert len(detect_lesions(image, _labels(lab), fwhm_mm=FWHM_MM, settings=whole)) == 1
    table = detect_lesions(image, _labels(lab), fwhm_mm=FWHM_MM)
    assert len(table) == 2
    centres = [
        _affine()[:3, :3] @ np.array(c, float) + _affine()[:3, 3]
        for c in ((30, 16, 18), (30, 22, 18))
    ]
    for les, centre in zip(table.lesions, centres, strict=True):
        assert_allclose(les.centroid_mm, centre, atol=VOXEL_MM / 2)
    assert table.lesions[0].max_mbq_per_ml > table.lesions[1].max_mbq_per_ml


def test_split_components_analytic_cases():
    # valley at 2-3 between peaks of 10, threshold 1: two lesions, each with its peak
    # and the near side of the valley (the bottom voxel goes to either)
    d = np.array([[[10, 10, 3, 2, 10, 10]]], float)
    out = split_components(d, (d >= 1).astype(int), base_level=1.0)[0, 0]
    assert set(out[:3]) == {1} and set(out[4:]) == {2} and out[3] in (1, 2)
    # a shallow valley (9 between peaks 10, threshold 1) is one lesion
    d = np.array([[[10, 10, 9, 10, 10]]], float)
    assert split_components(d, (d >= 1).astype(int), base_level=1.0).tolist() == [[[1, 1, 1, 1, 1]]]
    # a peak smaller than min_voxels does not split
    d = np.array([[[10, 10, 2, 10, 1]]], float)
    out = split_components(d, (d >= 1).astype(int), base_level=1.0, min_voxels=2)
    assert out.tolist() == [[[1, 1, 1, 1, 1]]]


# ------------------------------------------------------------------ peak and recovery


def test_peak_of_a_linear_ramp_is_its_value_at_the_best_centre():
    # the weights of a sphere centred on a voxel are symmetric: the weighted mean of
    # a linear field is its value at the centre, so the peak is the largest value at
    # a voxel centre of the lesion
    idx = np.indices(SHAPE, dtype=float)
    ramp = 1.0 + 0.05 * idx[2]
    mask = _ball(SHAPE, (20, 20, 20), 3.0)
    image = _image(ramp, Quantity.SUVBW)
    assert peak_concentration(image, mask) == pytest.approx(1.0 + 0.05 * 23.0, rel=1e-6)


def test_blurred_sphere_centre_recovers_the_chi3_fraction():
    # a 20 mm-radius uniform sphere on 1 mm voxels blurred with FWHM 16 mm: the centre
    # value over the true one is P(|X| <= R) for a 3-D Gaussian
    n = 81
    sphere = _ball((n, n, n), (40, 40, 40), 20.0).astype(float)
    sigma = 16.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    centre = ndimage.gaussian_filter(sphere, sigma, mode="constant")[40, 40, 40]
    volume_ml = 4.0 / 3.0 * math.pi * 20.0**3 / 1000.0
    assert centre == pytest.approx(sphere_centre_recovery(volume_ml, 16.0), abs=0.01)


def test_lesion_max_follows_the_sphere_recovery():
    conc, lab = _scene(background=0.0)
    conc[_ball(SHAPE, (30, 20, 18), 3.0)] = 10.0  # radius 12 mm = 3 FWHM/2
    table = detect_lesions(_image(_blur(conc)), _labels(lab), fwhm_mm=FWHM_MM)
    (les,) = table.lesions
    volume_ml = np.count_nonzero(_ball(SHAPE, (30, 20, 18), 3.0)) * VOXEL_MM**3 / 1000.0
    # voxelised sphere on a 4 mm grid vs the continuous formula: within 5 %
    assert les.max_mbq_per_ml / 10.0 == pytest.approx(
        sphere_centre_recovery(volume_ml, FWHM_MM), rel=0.05
    )


# ------------------------------------------------------------------ SUV and SUL


def _timed(conc, correction=DecayCorrection.ADMIN, patient=None, hours=1.0):
    timing = Timing(
        acquisition_start=INJECTION + timedelta(hours=hours),
        frame_duration_h=0.25,
        injection=INJECTION,
        administered_activity_mbq=150.0,
        decay_correction=correction,
    )
    patient = patient or PatientInfo(weight_kg=70.0, height_cm=175.0, sex="M")
    return _image(conc, timing=timing, patient=patient, corrections=frozenset({"ATTN", "DECY"}))


def _node_scene(c=0.1):
    conc, lab = _scene(
        liver=0.01,
        spleen=0.03,
        kidney=0.06,
        bowel=0.003,
        marrow=0.004,
        heart=0.006,
        background=0.001,
    )
    conc[_ball(SHAPE, (30, 20, 18), 5.0)] = c
    return conc, lab


def test_suvbw_is_concentration_times_weight_over_activity():
    # SUVbw = C W / A_inj, C decay-corrected to the injection (clinical.md §4.1, QIBA):
    # ADMIN-corrected 0.1 MBq/mL, 70 kg, 150 MBq -> 0.1 x 70000 / 150
    conc, lab = _node_scene()
    (les,) = detect_lesions(_timed(conc), _labels(lab), fwhm_mm=FWHM_MM).lesions
    assert les.suv_max == pytest.approx(0.1 * 70000.0 / 150.0, rel=1e-5)
    assert les.suv_mean == pytest.approx(0.1 * 70000.0 / 150.0, rel=1e-5)
    assert les.suv_peak == pytest.approx(0.1 * 70000.0 / 150.0, rel=1e-5)


def test_suv_of_a_start_corrected_pet_is_decay_corrected_to_injection():
    # START: values at the acquisition start, 60 min after injection; 68Ga half-life
    # 67.71 min (ICRP-107, clinical.md §1.1)
    conc, lab = _node_scene()
    image = _timed(conc, DecayCorrection.START, hours=1.0)
    (les,) = detect_lesions(image, _labels(lab), fwhm_mm=FWHM_MM).lesions
    expected = 0.1 * 2.0 ** (60.0 / 67.71) * 70000.0 / 150.0
    assert les.suv_max == pytest.approx(expected, rel=1e-4)
    assert les.max_mbq_per_ml == pytest.approx(0.1, rel=1e-6)  # the image's own values


def test_sul_janmahasatian_when_asked():
    # Janmahasatian 2005 (clinical.md §4.1): male LBM = 9270 W / (6680 + 216 BMI)
    conc, lab = _node_scene()
    bmi = 70.0 / 1.75**2
    lbm_kg = 9270.0 * 70.0 / (6680.0 + 216.0 * bmi)
    assert lbm_kg == pytest.approx(55.857, abs=1e-3)
    table = detect_lesions(_timed(conc), _labels(lab), fwhm_mm=FWHM_MM, sul_formula="janmahasatian")
    (les,) = table.lesions
    assert les.sul_max == pytest.approx(0.1 * lbm_kg * 1000.0 / 150.0, rel=1e-5)
    assert table.sul_formula == "janmahasatian"
    assert {"sul_max", "sul_mean", "sul_peak"} <= set(table.rows()[0])


def test_sul_james128_when_asked():
    # James 1976 "James-128" (clinical.md §4.1): male LBM = 1.10 W - 128 (W/H)^2, H in cm
    conc, lab = _node_scene()
    lbm_kg = 1.10 * 70.0 - 128.0 * (70.0 / 175.0) ** 2
    (les,) = detect_lesions(
        _timed(conc), _labels(lab), fwhm_mm=FWHM_MM, sul_formula="james128"
    ).lesions
    assert les.sul_max == pytest.approx(0.1 * lbm_kg * 1000.0 / 150.0, rel=1e-5)


def test_sul_without_height_is_refused_and_suv_without_weight_is_noted():
    conc, lab = _node_scene()
    no_height = _timed(conc, patient=PatientInfo(weight_kg=70.0))
    with pytest.raises(MissingFieldError):
        detect_lesions(no_height, _labels(lab), fwhm_mm=FWHM_MM, sul_formula="janmahasatian")
    no_weight = _timed(conc, patient=PatientInfo())
    table = detect_lesions(no_weight, _labels(lab), fwhm_mm=FWHM_MM)
    assert table.lesions[0].suv_max is None and table.liver_mean_suv is None
    assert any("SUVbw not computed" in n and "weight" in n for n in table.notes)
    with pytest.raises(LesionDetectionError):
        detect_lesions(no_weight, _labels(lab), fwhm_mm=FWHM_MM, sul_formula="boer")


def test_image_already_in_suv_has_no_mbq_columns():
    conc, lab = _node_scene(c=0.1)
    suv = _image(conc * 466.0, Quantity.SUVBW)
    table = detect_lesions(suv, _labels(lab), fwhm_mm=FWHM_MM)
    (row,) = table.rows()
    assert row["max_mbq_per_ml"] is None and row["liver_mean_mbq_per_ml"] is None
    assert row["suv_max"] == pytest.approx(46.6, rel=1e-5)
    assert row["liver_mean_suv"] == pytest.approx(4.66, rel=1e-5)
    assert row["tlr"] == pytest.approx(10.0, rel=1e-5)


# ------------------------------------------------------------------ table, labels, sites


def test_rows_have_the_documented_columns_and_the_label_map():
    conc, lab = _node_scene()
    table = detect_lesions(_timed(conc), _labels(lab), fwhm_mm=FWHM_MM)
    (row,) = table.rows()
    assert list(row) == [c for c in COLUMNS if not c.startswith("sul_")]
    assert row["lesion_id"] == 1 and row["site"] == "node"
    assert row["liver_mean_mbq_per_ml"] == pytest.approx(0.01)
    assert row["spleen_mean_mbq_per_ml"] == pytest.approx(0.03)
    assert row["liver_mean_suv"] == pytest.approx(0.01 * 70000.0 / 150.0, rel=1e-5)
    assert row["tlr"] == pytest.approx(10.0) and row["tsr"] == pytest.approx(10.0 / 3.0)
    lab_map = table.labels
    assert lab_map.names == {1: "lesion_1"}
    assert lab_map.image.same_grid(_timed(conc))
    assert int(np.count_nonzero(np.asarray(lab_map.image.data) == 1)) == table.lesions[0].n_voxels
    assert COLUMNS["volume_ml"] == "mL" and COLUMNS["suv_max"] == "g/mL"


def test_labels_on_a_finer_grid_are_resampled_to_the_image():
    conc, lab = _node_scene()
    fine = np.repeat(np.repeat(np.repeat(lab, 2, axis=0), 2, axis=1), 2, axis=2)
    affine = _affine(VOXEL_MM / 2.0)
    affine[:3, 3] -= VOXEL_MM / 4.0  # the 2 x 2 x 2 fine voxels tile each coarse one
    fine_labels = Labels.from_array(fine, affine, NAMES)
    a = detect_lesions(_timed(conc), fine_labels, fwhm_mm=FWHM_MM)
    b = detect_lesions(_timed(conc), _labels(lab), fwhm_mm=FWHM_MM)
    assert a.reference.n_voxels == b.reference.n_voxels
    assert a.rows() == b.rows()


@pytest.mark.parametrize(
    ("voxels", "site"),
    [
        ({"liver": 30, None: 10}, "liver"),
        ({"pancreas": 20, "duodenum": 5}, "pancreas"),
        ({"red_marrow": 5, "cortical_bone": 4, "remainder": 7}, "bone"),
        ({"vertebrae_L2": 12, None: 3}, "bone"),
        ({"rib_left_7": 8}, "bone"),
        ({None: 30}, "node"),
        ({"remainder": 10, "muscle": 3}, "node"),
        ({"subcutaneous_fat": 10}, "node"),
        ({"lung_upper_lobe_left": 12, None: 2}, "other"),
        ({"liver": 5, "pancreas": 5}, "liver"),  # tie: order of SITES
    ],
)
def test_site_rule(voxels, site):
    assert lesion_site(voxels)[0] == site


def test_default_exclusions_cover_the_physiological_organs():
    from theranet.imaging.lesions import matches_any

    for name in (
        "kidney_left",
        "kidney_cortex",
        "spleen",
        "urinary_bladder",
        "bladder",
        "pituitary",
        "adrenal_gland_right",
        "adrenals",
        "small_bowel",
        "colon",
        "duodenum",
        "bowel",
        "salivary_glands",
        "parotid_gland_left",
    ):
        assert matches_any(name, DEFAULT_EXCLUDED_ORGANS), name
    for name in ("liver", "pancreas", "vertebrae_L1", "red_marrow", "lung_lower_lobe_right"):
        assert not matches_any(name, DEFAULT_EXCLUDED_ORGANS), name
    assert not matches_any("adrenal_gland_left", MIBG_EXCLUDED_ORGANS)
    assert matches_any("heart_myocardium", MIBG_EXCLUDED_ORGANS)


def test_inputs_are_not_modified():
    conc, lab = _node_scene()
    image, labels = _timed(conc), _labels(lab)
    before = np.array(image.data), np.array(labels.image.data)
    detect_lesions(image, labels, fwhm_mm=FWHM_MM)
    assert np.array_equal(image.data, before[0]) and np.array_equal(labels.image.data, before[1])


def test_non_finite_voxels_in_the_search_region_are_refused():
    conc, lab = _scene()
    conc[30, 20, 18] = np.nan
    with pytest.raises(ImageDataError, match="non-finite"):
        detect_lesions(_image(conc), _labels(lab), fwhm_mm=FWHM_MM)
