"""CT densities and tissue classes, threshold lesions (theranet.imaging.segment)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from theranet.errors import CalibrationError, GeometryError, ImageDataError, QuantityError
from theranet.image import Image, Labels, Quantity
from theranet.imaging.segment import (
    DEFAULT_HU_DENSITY_CURVE,
    SCHNEIDER_2000_CLASSES,
    SCHNEIDER_2000_CURVE,
    HUDensityCurve,
    SegmentationError,
    TissueClasses,
    density_image,
    hu_to_density,
    load_hu_density_curve,
    material_for_class,
    region_masses_g,
    threshold_lesions,
    tissue_classes,
)
from theranet.physics.materials import MATERIALS

#: Schneider, Bortfeld & Schlegel 2000 (Phys Med Biol 45:459) HU-density points as
#: tabulated in OpenGATE opengate/data/Schneider2000DensitiesTable.txt (commit d37427e)
#: and Geant4's DICOM example CT2Density.dat; typed here independently of the module.
SCHNEIDER_POINTS = [
    (-1000, 1.21e-3),
    (-98, 0.93),
    (-97, 0.930486),
    (14, 1.03),
    (23, 1.031),
    (100, 1.119900),
    (101, 1.076200),
    (1600, 1.964200),
    (3000, 2.8),
]


def _affine(voxel_mm: float = 1.0) -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] *= voxel_mm
    return a


def _ct(hu: np.ndarray, voxel_mm: float = 1.0) -> Image:
    return Image(np.asarray(hu), _affine(voxel_mm), Quantity.HU, modality="CT")


def _sphere(shape, centre, radius_vox):
    idx = np.indices(shape)
    c = np.asarray(centre, dtype=float)[:, None, None, None]
    return ((idx - c) ** 2).sum(axis=0) <= radius_vox**2


def _write(tmp_path, text: str):
    path = tmp_path / "curve.csv"
    path.write_text(text)
    return path


# ------------------------------------------------------------------ density curve


def test_default_curve_is_schneider_2000():
    assert DEFAULT_HU_DENSITY_CURVE is SCHNEIDER_2000_CURVE
    assert "Schneider" in SCHNEIDER_2000_CURVE.source
    assert "45:459" in SCHNEIDER_2000_CURVE.source


def test_breakpoints_reproduce_published_densities():
    """At its own points the curve returns the published densities (Schneider 2000 via
    OpenGATE/Geant4, see SCHNEIDER_POINTS). Tolerance 1e-12 relative: the points are
    interpolation nodes, so only float round-off is allowed."""
    hu = np.array([p[0] for p in SCHNEIDER_POINTS], dtype=np.float64)
    rho = np.array([p[1] for p in SCHNEIDER_POINTS])
    assert_allclose(hu_to_density(hu), rho, rtol=1e-12)


def test_interpolation_between_points_is_linear():
    # halfway between (-1000, 0.00121) and (-98, 0.93) of SCHNEIDER_POINTS
    assert_allclose(hu_to_density(-549.0), (0.00121 + 0.93) / 2, rtol=1e-12)


def test_water_close_to_one():
    """0 HU is water: 1.000 g/cm^3. Schneider et al. 2000 (abstract) give the accuracy
    of their mass densities as better than 0.04 g/cm^3; the curve gives 1.0174."""
    assert abs(float(hu_to_density(0.0)) - 1.0) < 0.04


def test_air_matches_nist_dry_air():
    """-1000 HU gives 1.21e-3 g/cm^3; NIST dry air (NISTIR 5632) is 1.205e-3 g/cm^3.
    Tolerance 1 %: the two sources round differently (3 vs 4 significant digits)."""
    assert_allclose(hu_to_density(-1000.0), MATERIALS["air"].density_g_per_cm3, rtol=0.01)


def test_monotonic_within_each_section():
    """Non-decreasing everywhere except the published 100 -> 101 HU step down from the
    soft-tissue section (1.1199) to the skeletal section (1.0762) of Schneider 2000."""
    hu = np.arange(-1100.0, 3100.0, 0.5)
    rho = hu_to_density(hu)
    steps = np.diff(rho)
    falling = hu[1:][steps < 0]
    assert falling.size > 0
    assert np.all((falling > 100.0) & (falling <= 101.0))


def test_clamped_at_the_ends_and_positive():
    rho = hu_to_density(np.array([-3000.0, -1024.0, 3071.0, 10000.0]))
    assert_allclose(rho, [1.21e-3, 1.21e-3, 2.8, 2.8], rtol=1e-12)
    assert np.all(hu_to_density(np.linspace(-5000, 5000, 1001)) > 0)


def test_dtype_and_shape_preserved():
    hu32 = np.zeros((2, 3, 4), np.float32)
    out = hu_to_density(hu32)
    assert out.dtype == np.float32 and out.shape == (2, 3, 4)
    assert hu_to_density(np.zeros((5,), np.int16)).dtype == np.float64
    assert hu_to_density(np.zeros((2, 2), np.float64)).dtype == np.float64


def test_non_finite_hu_refused():
    with pytest.raises(ImageDataError, match="hu"):
        hu_to_density(np.array([0.0, np.nan]))


def test_user_curve_from_csv(tmp_path):
    path = _write(
        tmp_path,
        "# scanner X, 120 kVp\nhu,density_g_per_cm3,note\n"
        "-1000,0.001,air\n0,1.0,water\n1000,1.6,bone\n",
    )
    curve = load_hu_density_curve(path)
    assert curve.hu == (-1000.0, 0.0, 1000.0)
    assert "curve.csv" in curve.source
    assert_allclose(hu_to_density([-500.0, 500.0], curve), [0.5005, 1.3], rtol=1e-12)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("hu,density_g_per_cm3\n0,1.0\n0,1.1\n", "hu_density_curve.hu"),
        ("hu,density_g_per_cm3\n0,1.0\n-10,1.1\n", "hu_density_curve.hu"),
        ("hu,density_g_per_cm3\n-1000,-0.1\n0,1.0\n", "hu_density_curve.density_g_per_cm3"),
        ("hu,density_g_per_cm3\n-1000,0\n0,1.0\n", "hu_density_curve.density_g_per_cm3"),
        ("hu,density_g_per_cm3\n0,1.0\n", "hu_density_curve"),
        ("hu,rho\n0,1.0\n100,1.1\n", "column 'density_g_per_cm3'"),
        ("hu,density_g_per_cm3\n0,abc\n100,1.1\n", "row 2"),
    ],
)
def test_bad_user_curve_refused(tmp_path, text, field):
    with pytest.raises(CalibrationError) as info:
        load_hu_density_curve(_write(tmp_path, text))
    assert info.value.field == field
    assert info.value.source and "curve.csv" in info.value.source


def test_curve_dataclass_validates():
    with pytest.raises(CalibrationError, match="differ in length"):
        HUDensityCurve((0.0, 1.0), (1.0,), "test")
    curve = HUDensityCurve([-1000, 0], [0.001, 1], "test")
    assert curve.hu == (-1000.0, 0.0) and isinstance(curve.density_g_per_cm3, tuple)


# ------------------------------------------------------------------ tissue classes

#: One HU per block and the class it must fall in (boundaries of Schneider 2000 bins,
#: OpenGATE Schneider2000MaterialsTable.txt: -950, -120, 19, 120 HU).
BLOCKS = [
    (-1000, "air"),
    (-951, "air"),
    (-950, "lung"),
    (-700, "lung"),
    (-121, "lung"),
    (-120, "adipose"),
    (-98, "adipose"),
    (18, "adipose"),
    (19, "soft_tissue"),
    (23, "soft_tissue"),
    (119, "soft_tissue"),
    (120, "bone"),
    (1600, "bone"),
]


def _block_ct(voxel_mm: float = 2.0) -> Image:
    hu = np.zeros((len(BLOCKS), 3, 4), dtype=np.int16)
    for k, (value, _) in enumerate(BLOCKS):
        hu[k] = value
    return _ct(hu, voxel_mm)


def test_tissue_classes_of_known_blocks():
    labels = tissue_classes(_block_ct())
    assert labels.names == {1: "air", 2: "lung", 3: "adipose", 4: "soft_tissue", 5: "bone"}
    for k, (value, name) in enumerate(BLOCKS):
        got = np.unique(labels.image.data[k])
        assert got.tolist() == [labels.value_of(name)], (value, name)
    assert labels.image.same_grid(_block_ct())
    assert "Schneider" in labels.image.provenance.steps[-1]


def test_every_class_has_a_shipped_material():
    for name in SCHNEIDER_2000_CLASSES.names:
        assert material_for_class(name) in MATERIALS
    assert material_for_class("soft_tissue") == "soft_tissue"
    assert material_for_class("bone") == "bone"
    with pytest.raises(KeyError):
        material_for_class("liver")


def test_custom_classes_validated():
    with pytest.raises(SegmentationError, match="strictly increasing"):
        TissueClasses(("a", "b", "c"), (0.0, -10.0), ("air", "water", "bone"), "t")
    with pytest.raises(SegmentationError, match="no shipped material"):
        TissueClasses(("a", "b"), (0.0,), ("air", "titanium"), "t")
    two = TissueClasses(("low", "high"), (0.0,), ("air", "water"), "t")
    labels = tissue_classes(_ct(np.array([[[-5, 0, 5]]])), two)
    assert labels.image.data.tolist() == [[[1, 2, 2]]]


def test_ct_quantity_required():
    spect = Image(np.ones((2, 2, 2)), _affine(), Quantity.ACTIVITY_CONCENTRATION)
    for func in (tissue_classes, density_image):
        with pytest.raises(QuantityError) as info:
            func(spect)
        assert info.value.field == "ct.quantity"


def test_density_image_on_ct_grid():
    ct = _block_ct()
    rho = density_image(ct)
    assert rho.same_grid(ct)
    assert rho.quantity in (getattr(Quantity, "DENSITY", Quantity.INTENSITY),)
    assert_allclose(rho.data, hu_to_density(np.asarray(ct.data, np.float64)), rtol=1e-7)
    assert "g/cm^3" in rho.provenance.steps[-1]


def test_masses_of_known_blocks_match_density_times_volume():
    """Mass = density x volume, with the density of each block from the Schneider
    points (linear between neighbours, written out here). 1e-9 relative: sums of
    a few hundred float64 terms."""

    def lin(h, p0, p1):
        (h0, r0), (h1, r1) = p0, p1
        return r0 + (r1 - r0) * (h - h0) / (h1 - h0)

    hu = np.full((4, 5, 6), -1000.0)
    hu[0] = -1000.0  # air
    hu[1] = -700.0  # lung
    hu[2] = 23.0  # soft tissue (breakpoint)
    hu[3, :3] = 1600.0  # bone (breakpoint)
    hu[3, 3:] = 50.0  # soft tissue
    voxel_mm = 2.5
    ct = _ct(hu, voxel_mm)
    labels = tissue_classes(ct)
    v_ml = voxel_mm**3 / 1000.0
    rho_lung = lin(-700.0, SCHNEIDER_POINTS[0], SCHNEIDER_POINTS[1])
    rho_50 = lin(50.0, SCHNEIDER_POINTS[4], SCHNEIDER_POINTS[5])
    expected = {
        "air": 30 * 1.21e-3 * v_ml,
        "lung": 30 * rho_lung * v_ml,
        "adipose": 0.0,
        "soft_tissue": (30 * 1.031 + 12 * rho_50) * v_ml,
        "bone": 18 * 1.9642 * v_ml,
    }
    # float64 densities: 1e-9; the float32 density image: 2e-7 (float32 storage)
    for density, rtol in ((hu_to_density(hu), 1e-9), (density_image(ct), 2e-7)):
        masses = region_masses_g(density, labels)
        assert masses.keys() == expected.keys()
        for name, mass in expected.items():
            assert_allclose(masses[name], mass, rtol=rtol, atol=0, err_msg=name)
    assert_allclose(
        region_masses_g(hu_to_density(hu), labels, voxel_volume_ml=1.0)["bone"],
        18 * 1.9642,
        rtol=1e-9,
    )


def test_masses_refuse_wrong_grid():
    labels = tissue_classes(_block_ct())
    with pytest.raises(GeometryError):
        region_masses_g(np.ones((2, 2, 2)), labels)
    with pytest.raises(GeometryError):
        region_masses_g(density_image(_block_ct(voxel_mm=3.0)), labels)


# ------------------------------------------------------------------ threshold lesions

SHAPE = (40, 40, 40)
BACKGROUND, HOT = 1.0, 8.0
#: name, centre (voxels), radius (voxels); 2 mm voxels
SPHERES = [
    ("big", (12, 12, 12), 6.0),
    ("medium", (28, 28, 12), 4.0),
    ("small", (28, 10, 30), 1.0),
]
VOXEL_MM = 2.0


def _phantom(hot=HOT, quantity=Quantity.ACTIVITY_CONCENTRATION):
    data = np.full(SHAPE, BACKGROUND, dtype=np.float32)
    masks = {}
    for name, centre, r in SPHERES:
        masks[name] = _sphere(SHAPE, centre, r)
        data[masks[name]] = hot
    kidney = np.zeros(SHAPE, bool)
    kidney[30:38, 30:38, 28:36] = True
    data[kidney] = 2 * HOT  # hot organ, not a lesion
    masks["kidney"] = kidney
    return Image(data, _affine(VOXEL_MM), quantity), masks


def test_spheres_found_with_exact_voxels_and_volume():
    img, masks = _phantom()
    v_ml = VOXEL_MM**3 / 1000.0
    lesions = threshold_lesions(img, 0.5 * HOT, exclude=masks["kidney"], min_volume_ml=10 * v_ml)
    # ordered by decreasing volume; the 7-voxel small sphere (< 10 voxels) dropped
    assert lesions.names == {1: "lesion_1", 2: "lesion_2"}
    for value, name in ((1, "big"), (2, "medium")):
        found = lesions.image.data == value
        assert np.array_equal(found, masks[name])  # no blur: the exact voxel set
        r_mm = dict((n, r) for n, _, r in SPHERES)[name] * VOXEL_MM
        analytic_ml = 4 / 3 * math.pi * r_mm**3 / 1000
        # within one voxel layer: |V_vox - V| <= surface area x voxel size
        layer_ml = 4 * math.pi * r_mm**2 * VOXEL_MM / 1000
        assert abs(found.sum() * v_ml - analytic_ml) <= layer_ml
    assert not np.any(lesions.image.data[masks["kidney"]])
    assert lesions.image.same_grid(img)


def test_without_exclusion_the_organ_is_a_lesion_and_no_minimum_keeps_all():
    img, masks = _phantom()
    lesions = threshold_lesions(img, 0.5 * HOT)
    assert len(lesions.names) == 4
    sizes = [int((lesions.image.data == v).sum()) for v in sorted(lesions.names)]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[-1] == int(masks["small"].sum())


def test_within_restricts_search():
    img, masks = _phantom()
    box = np.zeros(SHAPE, bool)
    box[20:36, 20:36, 5:20] = True  # around the medium sphere only
    lesions = threshold_lesions(img, 4.0, within=box)
    assert len(lesions.names) == 1
    assert np.array_equal(lesions.image.data == 1, masks["medium"])


def test_fraction_of_max_and_multiple_of_background():
    img, masks = _phantom()
    organ = masks["kidney"]
    rel = threshold_lesions(img, 0.4, relative_to="max", exclude=organ)
    abs_ = threshold_lesions(img, 0.4 * HOT, exclude=organ)
    assert np.array_equal(rel.image.data, abs_.image.data)
    liver = np.zeros(SHAPE, bool)
    liver[0:8, 30:40, 0:10] = True  # background-only region, mean 1.0
    bg = threshold_lesions(img, 4.0, relative_to="background", background_mask=liver, exclude=organ)
    assert np.array_equal(bg.image.data, abs_.image.data)
    assert "background mean 1" in bg.image.provenance.steps[-1]


def test_connectivity():
    data = np.zeros((3, 3, 3), np.float32)
    data[0, 0, 0] = data[1, 1, 1] = 5.0  # corner neighbours
    img = Image(data, _affine(), Quantity.ACTIVITY_CONCENTRATION)
    assert len(threshold_lesions(img, 1.0).names) == 1
    assert len(threshold_lesions(img, 1.0, connectivity=6).names) == 2
    with pytest.raises(SegmentationError, match="connectivity"):
        threshold_lesions(img, 1.0, connectivity=8)


def test_no_lesion_gives_empty_labels():
    img, _ = _phantom()
    lesions = threshold_lesions(img, 100.0)
    assert lesions.names == {} and not lesions.image.data.any()


def test_quantities_refused_or_accepted():
    img, _ = _phantom()
    counts = img.replace(quantity=Quantity.COUNTS)
    assert len(threshold_lesions(counts, 4.0).names) == 4  # absolute: allowed
    with pytest.raises(QuantityError) as info:
        threshold_lesions(counts, 0.4, relative_to="max")
    assert info.value.field == "activity.quantity"
    for q in (Quantity.HU, Quantity.DOSE):
        with pytest.raises(QuantityError):
            threshold_lesions(img.replace(quantity=q), 4.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"threshold": 1.5, "relative_to": "max"}, "threshold"),
        ({"threshold": 0.0, "relative_to": "max"}, "threshold"),
        ({"threshold": 2.0, "relative_to": "background"}, "background_mask"),
        ({"threshold": 2.0, "relative_to": "median"}, "relative_to"),
        ({"threshold": 2.0, "min_volume_ml": -1.0}, "min_volume_ml"),
        ({"threshold": float("nan")}, "threshold"),
    ],
)
def test_bad_parameters_refused(kwargs, field):
    img, _ = _phantom()
    with pytest.raises(SegmentationError) as info:
        threshold_lesions(img, **kwargs)
    assert info.value.field == field


def test_bad_masks_refused():
    img, _ = _phantom()
    with pytest.raises(GeometryError, match="exclude"):
        threshold_lesions(img, 4.0, exclude=np.zeros((2, 2, 2), bool))
    with pytest.raises(ImageDataError, match="within"):
        threshold_lesions(img, 4.0, within=np.zeros(SHAPE, np.float32))


def test_result_is_labels():
    img, _ = _phantom()
    assert isinstance(threshold_lesions(img, 4.0), Labels)


def test_equal_volumes_ordered_by_higher_maximum():
    data = np.zeros((10, 10, 10), np.float32)
    data[1, 1, 1:3] = 5.0
    data[7, 7, 1:3] = 9.0
    lesions = threshold_lesions(Image(data, _affine(), Quantity.ACTIVITY_CONCENTRATION), 1.0)
    assert lesions.image.data[7, 7, 1] == lesions.value_of("lesion_1")
    assert lesions.image.data[1, 1, 1] == lesions.value_of("lesion_2")
