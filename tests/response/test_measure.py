"""Lesion measurements (theranet.response.measure) against analytic shapes.

Lesions are digitised analytic solids: a voxel belongs to the lesion when its
centre lies inside. Expected values are the solids' own dimensions (an ellipse
of semi-axes a, b has long axis 2a and short axis 2b; an ellipsoid has volume
4/3 pi a b c) and, for SULpeak, the mean of a piecewise-constant image over a
1 cm^3 sphere (PERCIST 1.0, Wahl et al. 2009, J Nucl Med 50:122S).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from theranet.errors import GeometryError, QuantityError
from theranet.image import Image, Labels, Quantity
from theranet.response.measure import (
    SUL_PEAK_RADIUS_MM,
    Diameter,
    MeasurementError,
    _sphere_weights,
    enhancing_fraction,
    enhancing_longest_diameter_mm,
    longest_axial_diameter_mm,
    mean_value,
    measure_lesions,
    short_axis_mm,
    slice_axis,
    sul_peak,
    volume_ml,
)

PIXEL_MM = 0.8
SLICE_MM = 2.5
CT_SPACING = (SLICE_MM, PIXEL_MM, PIXEL_MM)  # (dz, dy, dx)


def _affine(spacing=CT_SPACING, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    """(Z, Y, X) array order: a0 steps along LPS z, a1 along y, a2 along x."""
    a = np.eye(4)
    a[:3, :3] = 0.0
    a[2, 0], a[1, 1], a[0, 2] = spacing
    a[:3, 3] = origin
    return a


def _lps(shape, affine) -> np.ndarray:
    idx = np.indices(shape, dtype=np.float64).reshape(3, -1).T
    return (idx @ affine[:3, :3].T + affine[:3, 3]).reshape((*shape, 3))


def _ellipsoid(shape, affine, centre_mm, semi_axes_mm, theta_deg=0.0) -> np.ndarray:
    """Voxels whose centre lies in an ellipsoid, its a axis at ``theta_deg`` from
    LPS x in the axial plane, its c axis along z."""
    p = _lps(shape, affine) - np.asarray(centre_mm)
    th = math.radians(theta_deg)
    x = p[..., 0] * math.cos(th) + p[..., 1] * math.sin(th)
    y = -p[..., 0] * math.sin(th) + p[..., 1] * math.cos(th)
    a, b, c = semi_axes_mm
    return (x / a) ** 2 + (y / b) ** 2 + (p[..., 2] / c) ** 2 <= 1.0


# -- diameters -------------------------------------------------------------------
# Ellipsoid centres lie on a slice (z = 10 * 2.5 mm) so that the widest axial slice
# is the central section (2a x 2b); in-plane they sit off the voxel grid.
CENTRE_MM = (32.1, 31.7, 25.0)
SHAPE = (21, 80, 80)


@pytest.mark.parametrize("semi_axes_mm", [(20.0, 12.0, 15.0), (15.0, 6.0, 10.0), (10.0, 8.0, 12.0)])
@pytest.mark.parametrize("theta_deg", [0.0, 30.0, 45.0])
def test_ellipsoid_long_and_short_axis_within_one_pixel(semi_axes_mm, theta_deg):
    affine = _affine()
    mask = _ellipsoid(SHAPE, affine, CENTRE_MM, semi_axes_mm, theta_deg)
    a, b, _ = semi_axes_mm
    ld = longest_axial_diameter_mm(mask, affine)
    sa = short_axis_mm(mask, affine)
    # analytic 2a, 2b of the central section; digitisation limits the accuracy to
    # one in-plane pixel (module notes of theranet.response.measure)
    assert_allclose(ld.diameter_mm, 2 * a, atol=PIXEL_MM)
    assert_allclose(sa.diameter_mm, 2 * b, atol=PIXEL_MM)
    assert ld.slice_index == 10 and sa.slice_index == 10
    # the endpoints are the diameter's ends, in the slice at z = 25 mm
    for d in (ld, sa):
        assert_allclose(np.linalg.norm(d.endpoints_mm[1] - d.endpoints_mm[0]), d.diameter_mm)
        assert_allclose(d.endpoints_mm[:, 2], 25.0, atol=1e-9)
    if b / a <= 0.6:  # a well-defined long axis: along the ellipse's a axis within 6 deg
        u = (ld.endpoints_mm[1] - ld.endpoints_mm[0])[:2] / ld.diameter_mm
        axis = np.array([math.cos(math.radians(theta_deg)), math.sin(math.radians(theta_deg))])
        assert abs(u @ axis) > math.cos(math.radians(6.0))


def test_rotated_30_degrees_exact_numbers():
    """The brief's case: semi-axes 20 x 12 mm rotated 30 degrees on 0.8 x 0.8 x 2.5 mm voxels.

    Pinned regression values (analytic 40 mm and 24 mm; errors -0.08 and +0.14 mm)."""
    affine = _affine()
    mask = _ellipsoid(SHAPE, affine, CENTRE_MM, (20.0, 12.0, 15.0), 30.0)
    assert_allclose(longest_axial_diameter_mm(mask, affine).diameter_mm, 40.0, atol=0.2)
    assert_allclose(short_axis_mm(mask, affine).diameter_mm, 24.0, atol=0.2)


def test_random_ellipses_unbiased_within_one_pixel():
    """Calibration of the half-pixel edge correction on 200 random ellipses (fixed seed):
    every long axis within one pixel of 2a, mean error within 0.15 pixel (module
    notes: +0.08 pixel on 4000 ellipses); short axis within one pixel of 2b."""
    rng = np.random.default_rng(20240611)
    err_ld, err_sa = [], []
    for _ in range(200):
        pixel = float(rng.choice([0.7, 0.8, 1.0]))
        a = rng.uniform(6.0, 25.0)
        b = max(rng.uniform(0.5, 1.0) * a, 3.0)
        n = int(2 * a / pixel) + 8
        affine = _affine((2.5, pixel, pixel))
        centre = (n * pixel / 2 + rng.uniform(-1, 1), n * pixel / 2 + rng.uniform(-1, 1), 0.0)
        mask = _ellipsoid((1, n, n), affine, centre, (a, b, 10.0), rng.uniform(0, 180))
        err_ld.append((longest_axial_diameter_mm(mask, affine).diameter_mm - 2 * a) / pixel)
        err_sa.append((short_axis_mm(mask, affine).diameter_mm - 2 * b) / pixel)
    err_ld, err_sa = np.array(err_ld), np.array(err_sa)
    assert np.all(np.abs(err_ld) <= 1.0)
    assert np.all(np.abs(err_sa) <= 1.0)
    assert abs(err_ld.mean()) < 0.15
    assert abs(err_sa.mean()) < 0.35


def test_rotated_and_permuted_affines_give_the_same_diameters():
    """The same patient-space ellipsoid on a grid rotated 30 degrees about S-I, and on
    a grid stored in (X, Y, Z) array order: diameters within one pixel of 2a, 2b."""
    th = math.radians(30.0)
    rot = np.array([[math.cos(th), -math.sin(th), 0], [math.sin(th), math.cos(th), 0], [0, 0, 1]])
    rotated = _affine(origin=(-40.0, -40.0, -25.0))
    rotated[:3, :3] = rot @ rotated[:3, :3]
    rotated[:3, 3] = rot @ rotated[:3, 3]
    xyz = np.diag([PIXEL_MM, PIXEL_MM, SLICE_MM, 1.0])
    xyz[:3, 3] = (-32.0, -32.0, -25.0)
    for affine, shape, axis in ((rotated, (21, 100, 100), 0), (xyz, (80, 80, 21), 2)):
        assert slice_axis(affine) == axis
        mask = _ellipsoid(shape, affine, (0.3, -0.2, 0.0), (18.0, 9.0, 12.0), 10.0)
        assert_allclose(longest_axial_diameter_mm(mask, affine).diameter_mm, 36.0, atol=PIXEL_MM)
        assert_allclose(short_axis_mm(mask, affine).diameter_mm, 18.0, atol=PIXEL_MM)


def test_small_exact_cases():
    affine = np.eye(4)[[2, 1, 0, 3]]  # 1 mm voxels, (Z, Y, X) order
    line = np.zeros((1, 1, 9), bool)
    line[0, 0, 2:7] = True  # collinear centres 4 mm apart, + half a pixel
    assert_allclose(longest_axial_diameter_mm(line, affine).diameter_mm, 4.5)
    assert_allclose(short_axis_mm(line, affine).diameter_mm, 0.5)
    along_z = np.zeros((9, 1, 1), bool)
    along_z[2:7] = True  # a line across the slices: one voxel in each
    assert_allclose(longest_axial_diameter_mm(along_z, affine).diameter_mm, 0.5)
    one = np.zeros((3, 3, 3), bool)
    one[1, 1, 1] = True
    d = longest_axial_diameter_mm(one, affine)
    assert d.diameter_mm == pytest.approx(0.5) and d.slice_index == 1
    square = np.zeros((2, 6, 6), bool)
    square[1, 1:5, 1:5] = True  # diagonal 3 sqrt(2) between centres
    assert_allclose(longest_axial_diameter_mm(square, affine).diameter_mm, 3 * math.sqrt(2) + 0.5)


def test_grid_without_axial_slices_is_refused():
    # a rotation whose third row is (1, 1, 1)/sqrt(3): every array axis is 54.7
    # degrees from S-I
    z = np.ones(3) / math.sqrt(3)
    x = np.array([1.0, -1.0, 0.0]) / math.sqrt(2)
    y = np.cross(z, x)
    affine = np.eye(4)
    affine[:3, :3] = np.stack([x, y, z])
    with pytest.raises(GeometryError, match="axial"):
        slice_axis(affine)


# -- volume and means -----------------------------------------------------------
def test_volume_of_ellipsoid_within_two_percent():
    affine = _affine()
    a, b, c = 20.0, 12.0, 15.0
    mask = _ellipsoid(SHAPE, affine, CENTRE_MM, (a, b, c), 30.0)
    expected_ml = 4.0 / 3.0 * math.pi * a * b * c / 1000.0  # 15.08 mL
    # digitisation with 2.5 mm slices: measured -0.9 %
    assert_allclose(volume_ml(mask, affine), expected_ml, rtol=0.02)


def test_volume_of_box_is_exact():
    mask = np.zeros((4, 10, 10), bool)
    mask[1:3, 2:7, 3:6] = True  # 2 x 5 x 3 voxels of 2.5 x 0.8 x 0.8 mm
    assert volume_ml(mask, _affine()) == pytest.approx(30 * 1.6 / 1000.0, rel=1e-12)


def test_mean_hu_exact_on_uniform_and_two_valued_blocks():
    data = np.full((4, 10, 10), -1000.0, np.float32)
    data[1:3, 2:8, 2:8] = 45.0
    mask = np.zeros(data.shape, bool)
    mask[1:3, 2:8, 2:8] = True
    ct = Image(data, _affine(), Quantity.HU, modality="CT")
    assert mean_value(ct, mask) == 45.0
    data2 = data.copy()
    data2[1, 2:8, 2:8] = 15.0  # half the voxels at 15 HU, half at 45 HU
    assert mean_value(Image(data2, _affine(), Quantity.HU), mask) == pytest.approx(30.0)


# -- mRECIST ---------------------------------------------------------------------
def test_enhancing_part_fraction_and_diameter():
    """A 40 x 24 mm lesion whose arterially enhancing part (150 HU) is a concentric
    ellipsoid of semi-axes 12 x 8 x 9 mm in necrosis (10 HU), threshold 100 HU."""
    affine = _affine()
    lesion = _ellipsoid(SHAPE, affine, CENTRE_MM, (20.0, 12.0, 15.0), 30.0)
    core = _ellipsoid(SHAPE, affine, CENTRE_MM, (12.0, 8.0, 9.0), 30.0)
    ct = Image(np.where(core, 150.0, 10.0).astype(np.float32), affine, Quantity.HU)
    d = enhancing_longest_diameter_mm(lesion, ct, threshold_hu=100.0)
    assert_allclose(d.diameter_mm, 24.0, atol=PIXEL_MM)
    # volume ratio (12 * 8 * 9) / (20 * 12 * 15) = 0.24; digitisation within 3 %
    assert_allclose(enhancing_fraction(lesion, ct, 100.0), 0.24, rtol=0.03)
    assert enhancing_fraction(lesion, ct, 100.0) == np.count_nonzero(core) / np.count_nonzero(
        lesion
    )
    # no enhancement: no viable tumour
    assert enhancing_longest_diameter_mm(lesion, ct, 200.0) == Diameter(0.0, None, None)
    assert enhancing_fraction(lesion, ct, 200.0) == 0.0


def test_enhancing_refuses_non_ct_and_bad_threshold():
    affine = _affine()
    mask = _ellipsoid(SHAPE, affine, CENTRE_MM, (10.0, 8.0, 12.0))
    pet = Image(np.zeros(SHAPE, np.float32), affine, Quantity.SUL)
    ct = Image(np.zeros(SHAPE, np.float32), affine, Quantity.HU)
    with pytest.raises(QuantityError, match="arterial_ct"):
        enhancing_fraction(mask, pet, 100.0)
    with pytest.raises(MeasurementError, match="threshold_hu"):
        enhancing_longest_diameter_mm(mask, ct, float("nan"))


# -- SULpeak ---------------------------------------------------------------------
PET_MM = 2.0
PET_SHAPE = (40, 40, 40)


def _pet(values: np.ndarray) -> Image:
    return Image(values.astype(np.float32), np.diag([PET_MM] * 3 + [1.0]), Quantity.SUL)


def _radius_mm(centre_mm) -> np.ndarray:
    return np.linalg.norm(_lps(PET_SHAPE, np.diag([PET_MM] * 3 + [1.0])) - centre_mm, axis=-1)


def test_sphere_weights_hold_one_millilitre():
    assert_allclose(SUL_PEAK_RADIUS_MM, (3000.0 / (4.0 * math.pi)) ** (1 / 3))
    assert_allclose(SUL_PEAK_RADIUS_MM, 6.2035, atol=1e-4)
    # sum of partial-voxel weights x voxel volume = 1 mL; 8^3 sub-samples: < 0.5 %
    for spacing in [(2.0, 2.0, 2.0), (4.0, 4.0, 4.0), (2.5, 0.8, 0.8), (3.27, 4.1, 4.1)]:
        w = _sphere_weights(np.diag([*spacing, 1.0]), SUL_PEAK_RADIUS_MM)
        assert_allclose(w.sum() * np.prod(spacing) / 1000.0, 1.0, rtol=0.005)


def test_sul_peak_of_uniform_sphere_is_its_value():
    r = _radius_mm(np.array([39.0, 40.3, 39.5]))
    lesion = r <= 15.0
    pet = _pet(np.where(lesion, 3.0, 0.5))
    # the 6.2 mm sphere fits inside the 15 mm lesion: its mean is the lesion value
    assert_allclose(sul_peak(pet, lesion), 3.0, rtol=1e-9)


def test_sul_peak_with_hot_core_matches_analytic_mean():
    """A 15 mm lesion at SUL 3 with a hot core (SUL 10) of the 33 voxels (0.264 mL)
    within 4 mm of its centre. The voxels reach at most 4 + sqrt(3) = 5.73 mm from
    the centre, inside the 6.20 mm sphere, so the peak sphere centred there holds
    the core whole: SULpeak = 3 + (10 - 3) * 0.264 mL / 1 mL = 4.848."""
    r = _radius_mm(np.array([40.0, 40.0, 40.0]))
    lesion = r <= 15.0
    core = r <= 4.0
    assert np.count_nonzero(core) == 33
    pet = _pet(np.where(core, 10.0, np.where(lesion, 3.0, 0.5)))
    peak = sul_peak(pet, lesion)
    expected = 3.0 + 7.0 * 33 * PET_MM**3 / 1000.0
    assert_allclose(peak, expected, rtol=0.005)  # sphere volume sampled to < 0.5 %
    assert 3.0 < peak < 10.0


def test_sul_peak_refuses_non_sul_and_empty_masks():
    r = _radius_mm(np.array([40.0, 40.0, 40.0]))
    lesion = r <= 10.0
    for quantity in (Quantity.SUVBW, Quantity.ACTIVITY_CONCENTRATION):
        img = Image(np.ones(PET_SHAPE, np.float32), np.diag([2.0, 2.0, 2.0, 1.0]), quantity)
        with pytest.raises(QuantityError, match="SUL"):
            sul_peak(img, lesion)
    with pytest.raises(MeasurementError, match="empty"):
        sul_peak(_pet(np.ones(PET_SHAPE)), np.zeros(PET_SHAPE, bool))


# -- refusals --------------------------------------------------------------------
@pytest.mark.parametrize(
    "measure",
    [
        lambda m: longest_axial_diameter_mm(m, _affine()),
        lambda m: short_axis_mm(m, _affine()),
        lambda m: volume_ml(m, _affine()),
        lambda m: mean_value(Image(np.zeros(m.shape), _affine(), Quantity.HU), m),
        lambda m: enhancing_fraction(m, Image(np.zeros(m.shape), _affine(), Quantity.HU), 100),
    ],
)
def test_empty_masks_are_refused(measure):
    with pytest.raises(MeasurementError, match="mask: is empty"):
        measure(np.zeros((3, 4, 4), bool))


def test_bad_masks_are_refused():
    ct = Image(np.zeros((3, 4, 4)), _affine(), Quantity.HU)
    with pytest.raises(MeasurementError, match="boolean"):
        volume_ml(np.full((3, 4, 4), 0.7), _affine())
    with pytest.raises(GeometryError, match="shape"):
        mean_value(ct, np.ones((3, 4, 5), bool))
    with pytest.raises(GeometryError, match="3-D"):
        volume_ml(np.ones((4, 4), bool), _affine())


# -- all lesions ----------------------------------------------------------------
def test_measure_lesions_on_ct_and_pet_grids():
    affine = _affine()
    shape = (21, 120, 100)
    met = _ellipsoid(shape, affine, (32.1, 31.7, 25.0), (20.0, 12.0, 15.0), 30.0)
    node = _ellipsoid(shape, affine, (50.3, 80.2, 25.0), (10.0, 7.0, 9.0), -20.0)
    data = np.zeros(shape, np.int16)
    data[met] = 3
    data[node] = 7
    labels = Labels.from_array(data, affine, {3: "liver met 1", 7: "node 1"})
    ct = Image(
        np.where(met, 60.0, np.where(node, 30.0, -100.0)).astype(np.float32), affine, Quantity.HU
    )
    organ_data = np.zeros(shape, np.uint8)
    organ_data[:, :60, :] = 1  # the metastasis lies in y < 48 mm
    organs = Labels.from_array(organ_data, affine, {1: "liver"})
    # PET on a coarser 2 mm grid over the same field, SUL 4 in the metastasis
    pet_affine = _affine((2.0, 2.0, 2.0))
    pet_shape = (26, 48, 40)
    p = _lps(pet_shape, pet_affine)
    q = p - np.array([32.1, 31.7, 25.0])
    th = math.radians(30.0)
    x = q[..., 0] * math.cos(th) + q[..., 1] * math.sin(th)
    y = -q[..., 0] * math.sin(th) + q[..., 1] * math.cos(th)
    pet_met = (x / 20.0) ** 2 + (y / 12.0) ** 2 + (q[..., 2] / 15.0) ** 2 <= 1.0
    pet = Image(np.where(pet_met, 4.0, 1.0).astype(np.float32), pet_affine, Quantity.SUL)

    out = measure_lesions(labels, ct, pet_sul=pet, organs=organs)
    assert [m.label for m in out] == [3, 7]
    m3, m7 = out
    assert (m3.name, m3.site, m3.is_node) == ("liver met 1", "liver", False)
    assert (m7.name, m7.site, m7.is_node) == ("node 1", None, True)
    assert_allclose(m3.longest_diameter_mm, 40.0, atol=PIXEL_MM)
    assert_allclose(m3.short_axis_mm, 24.0, atol=PIXEL_MM)
    assert_allclose(m7.short_axis_mm, 14.0, atol=PIXEL_MM)
    assert m7.recist_diameter_mm == m7.short_axis_mm
    assert m3.recist_diameter_mm == m3.longest_diameter_mm
    assert m3.slice_index == 10
    # the same numbers as the single-lesion functions on the full grid
    assert m3.longest_diameter_mm == pytest.approx(longest_axial_diameter_mm(met, affine)[0])
    assert m3.volume_ml == pytest.approx(volume_ml(met, affine))
    assert (m3.mean_hu, m7.mean_hu) == (60.0, 30.0)
    # a 1 mL sphere fits in the 40 x 24 x 30 mm metastasis
    assert_allclose(m3.sul_peak, 4.0, rtol=1e-6)
    assert 1.0 <= m7.sul_peak < 4.0
    # node rule and site overrides
    out2 = measure_lesions(labels, ct, is_node={"liver met 1"}, sites={"node 1": "axilla"})
    assert [m.is_node for m in out2] == [True, False]
    assert [m.site for m in out2] == [None, "axilla"]
    assert out2[0].sul_peak is None


def test_measure_lesions_refuses_wrong_inputs():
    affine = _affine()
    data = np.zeros((3, 4, 4), np.uint8)
    data[1, 1:3, 1:3] = 1
    labels = Labels.from_array(data, affine, {1: "lesion"})
    pet = Image(np.zeros((3, 4, 4)), affine, Quantity.SUL)
    with pytest.raises(QuantityError, match=r"ct\.quantity"):
        measure_lesions(labels, pet)
    ct = Image(np.zeros((3, 4, 4)), affine, Quantity.HU)
    with pytest.raises(QuantityError, match="pet_sul"):
        measure_lesions(labels, ct, pet_sul=ct)
    other = Image(np.zeros((3, 4, 5)), affine, Quantity.HU)
    with pytest.raises(GeometryError, match="labels"):
        measure_lesions(labels, other)
