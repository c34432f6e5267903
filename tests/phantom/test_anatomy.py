"""Tests of the digital NET patient's voxel anatomy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from theranet.image import Quantity
from theranet.phantom.anatomy import (
    REFERENCE_MASSES_G,
    TISSUES,
    Anatomy,
    Tissue,
    build_anatomy,
)
from theranet.phantom.regions import FIRST_LESION_LABEL, LESION_SITES, ORGANS, lesion_name

#: Tolerance of voxelised organ masses against the ICRP 89 reference (seed 0).
MASS_TOLERANCE = 0.40


@pytest.fixture(scope="module")
def ref() -> Anatomy:
    return build_anatomy()


@pytest.fixture(scope="module")
def heavy() -> Anatomy:
    return build_anatomy(weight_kg=95.0)


def _data(a: Anatomy) -> np.ndarray:
    return np.asarray(a.labels.image.data)


def _ring_labels(lab: np.ndarray, value: int) -> np.ndarray:
    """Labels of the voxels 6-adjacent to region ``value`` (computed in its bounding box)."""
    (box,) = ndimage.find_objects((lab == value).astype(np.int8))
    box = tuple(slice(max(q.start - 1, 0), q.stop + 1) for q in box)
    sub = lab[box]
    mask = sub == value
    ring = ndimage.binary_dilation(mask, ndimage.generate_binary_structure(3, 1)) & ~mask
    return sub[ring]


def test_grid_types_and_margin(ref: Anatomy) -> None:
    lab = _data(ref)
    assert lab.dtype == np.int16
    assert ref.labels.image.quantity is Quantity.LABEL
    assert ref.density_g_per_cm3.dtype == np.float32
    assert ref.hu.dtype == np.float32
    assert ref.body_mask.dtype == bool
    assert ref.density_g_per_cm3.shape == ref.hu.shape == ref.body_mask.shape == ref.shape
    nz, ny, nx = ref.shape
    assert nz <= 450 and ny <= 220 and nx <= 200
    assert ref.voxel_volume_ml == pytest.approx(2.4**3 / 1000)
    # a margin of air on every face
    for face in (lab[0], lab[-1], lab[:, 0], lab[:, -1], lab[:, :, 0], lab[:, :, -1]):
        assert not face.any()
    np.testing.assert_array_equal(ref.body_mask, lab > 0)
    assert not lab.flags.writeable


def test_every_organ_present_and_named(ref: Anatomy) -> None:
    present = ref.labels.present()
    for value, name in ORGANS.items():
        assert name in ref.regions, name
        info = ref.regions[name]
        assert info.label == value and info.kind == "organ" and info.site is None
        assert ref.labels.names[value] == name
        assert present[name] == info.n_voxels >= 1
    assert ref.regions["pituitary"].n_voxels >= 1
    assert set(ref.labels.names.values()) == set(ref.regions)


def test_volumes_and_masses_consistent(ref: Anatomy) -> None:
    counts = np.bincount(_data(ref).ravel())
    for r in ref.regions.values():
        assert r.volume_ml == pytest.approx(r.n_voxels * ref.voxel_volume_ml)
        assert r.mass_g == pytest.approx(r.volume_ml * r.density_g_per_cm3)
        assert r.n_voxels == counts[r.label]
    assert ref.mask("liver").sum() == ref.regions["liver"].n_voxels


@pytest.mark.parametrize(
    "regions",
    [
        ("liver",),
        ("kidney_cortex", "kidney_medulla"),
        ("spleen",),
        ("lungs",),
        ("pancreas",),
        ("thyroid",),
        ("red_marrow",),
        ("brain",),
        ("heart_wall", "heart_blood"),
        ("adrenals",),
        ("salivary_glands",),
        ("pituitary",),
    ],
)
def test_masses_within_reference_range(ref: Anatomy, regions: tuple[str, ...]) -> None:
    mass = sum(ref.regions[r].mass_g for r in regions)
    reference = sum(REFERENCE_MASSES_G[r][0] for r in regions)
    assert sum(ref.regions[r].reference_mass_g for r in regions) == pytest.approx(reference)
    assert abs(mass / reference - 1.0) <= MASS_TOLERANCE, (regions, mass, reference)


def test_voxelised_masses_hit_their_targets(ref: Anatomy) -> None:
    for r in ref.regions.values():
        if r.target_mass_g is not None and r.target_mass_g > 10.0:
            assert r.mass_g == pytest.approx(r.target_mass_g, rel=0.05), r.name
    # the pituitary (0.6 g) is a few tens of voxels: within 30 %
    assert ref.regions["pituitary"].mass_g == pytest.approx(0.6, rel=0.3)


def test_lesions(ref: Anatomy) -> None:
    lab = _data(ref)
    lesions = ref.lesions()
    assert {r.site for r in lesions} == set(LESION_SITES)
    for r in lesions:
        assert r.label >= FIRST_LESION_LABEL
        assert r.reference_mass_g is None and r.diameter_mm is not None
        assert r.parent == {"liver": "liver", "pancreas": "pancreas", "node": "remainder"}.get(
            r.site, "red_marrow"
        )
    names = {r.name for r in lesions}
    liver = [r for r in lesions if r.site == "liver"]
    assert {lesion_name("liver", i + 1) for i in range(len(liver))} <= names
    assert len(liver) >= 4
    vols = [r.volume_ml for r in liver]
    assert min(vols) <= 2.0 and max(vols) >= 40.0
    assert all(0.8 <= v <= 65.0 for v in vols)
    liver_label = ref.regions["liver"].label
    for r in liver:
        # inside the liver with a rim of parenchyma: no contact with other lesions
        assert np.all(_ring_labels(lab, r.label) == liver_label), r.name
    panc = next(r for r in lesions if r.site == "pancreas")
    assert 9.0 <= panc.diameter_mm <= 20.0
    ring = _ring_labels(lab, panc.label)
    assert np.mean(ring == ref.regions["pancreas"].label) >= 0.5
    bone = next(r for r in lesions if r.site == "bone")
    assert 8.0 <= bone.diameter_mm <= 20.0
    allowed = {ref.regions["red_marrow"].label, ref.regions["cortical_bone"].label}
    assert set(np.unique(_ring_labels(lab, bone.label)).tolist()) <= allowed
    nodes = [r for r in lesions if r.site == "node"]
    assert len(nodes) == 2
    fat_air = {0, ref.regions["subcutaneous_fat"].label, ref.regions["cortical_bone"].label}
    z_kidney = ref.regions["kidney_cortex"].centre_mm[2]
    for r in nodes:
        assert 15.0 <= r.diameter_mm <= 30.0
        assert not set(np.unique(_ring_labels(lab, r.label)).tolist()) & fat_air
        assert abs(r.centre_mm[2] - z_kidney) < 120.0


def test_same_seed_same_patient(ref: Anatomy) -> None:
    again = build_anatomy(seed=0)
    np.testing.assert_array_equal(_data(again), _data(ref))
    np.testing.assert_array_equal(again.density_g_per_cm3, ref.density_g_per_cm3)
    np.testing.assert_array_equal(again.hu, ref.hu)
    np.testing.assert_array_equal(again.affine, ref.affine)
    assert dict(again.regions) == dict(ref.regions)


def test_different_seed_different_patient(ref: Anatomy) -> None:
    other = build_anatomy(seed=1)
    assert other.shape == ref.shape  # the body outline does not depend on the seed
    assert not np.array_equal(_data(other), _data(ref))
    for organ in ("liver", "spleen", "kidney_cortex"):
        assert other.regions[organ].mass_g != pytest.approx(ref.regions[organ].mass_g, rel=0.01)
    assert [r.volume_ml for r in other.lesions()] != [r.volume_ml for r in ref.lesions()]


def test_weight_scales_masses(ref: Anatomy, heavy: Anatomy) -> None:
    ratio = 95.0 / 73.0
    for organ in ("liver", "spleen", "kidney_cortex", "lungs", "brain", "pancreas"):
        assert heavy.regions[organ].reference_mass_g == pytest.approx(
            ref.regions[organ].reference_mass_g * ratio
        )
        got = heavy.regions[organ].mass_g / ref.regions[organ].mass_g
        assert got == pytest.approx(ratio, rel=0.05), organ
    # skeleton and body volume scale with body mass through the transverse size
    assert heavy.regions["red_marrow"].mass_g / ref.regions["red_marrow"].mass_g == pytest.approx(
        ratio, rel=0.08
    )
    assert heavy.body_mask.sum() / ref.body_mask.sum() == pytest.approx(ratio, rel=0.08)
    assert heavy.shape[0] == ref.shape[0] and heavy.shape[2] > ref.shape[2]


def test_height_scales_lengths_not_masses(ref: Anatomy) -> None:
    tall = build_anatomy(height_cm=190.0)
    for organ in ("liver", "spleen", "kidney_cortex", "lungs"):
        assert tall.regions[organ].mass_g == pytest.approx(ref.regions[organ].mass_g, rel=0.05)
    h_ref = ref.regions["brain"].centre_mm[2] - ref.regions["bladder"].centre_mm[2]
    h_tall = tall.regions["brain"].centre_mm[2] - tall.regions["bladder"].centre_mm[2]
    assert h_tall / h_ref == pytest.approx(190.0 / 175.0, rel=0.03)
    assert tall.shape[0] > ref.shape[0]


def test_female_reference_masses() -> None:
    f = build_anatomy(sex="F", height_cm=163.0, weight_kg=60.0, voxel_mm=4.0)
    assert f.regions["liver"].reference_mass_g == pytest.approx(1400.0)
    assert f.regions["kidney_cortex"].reference_mass_g == pytest.approx(192.5)
    assert abs(f.regions["liver"].mass_g / 1400.0 - 1.0) <= MASS_TOLERANCE


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="sex"):
        build_anatomy(sex="X")
    with pytest.raises(ValueError, match="weight_kg"):
        build_anatomy(weight_kg=-1.0)


def test_lps_orientation(ref: Anatomy) -> None:
    c = {n: np.asarray(r.centre_mm) for n, r in ref.regions.items()}
    assert np.all(np.diag(ref.affine[:3, :3][:, ::-1]) > 0)  # x<-a2, y<-a1, z<-a0
    assert c["liver"][0] < 0 < c["spleen"][0]  # liver on the patient's right
    assert c["brain"][2] > c["thyroid"][2] > c["lungs"][2] > c["liver"][2] > c["bladder"][2]
    assert c["kidney_cortex"][1] > c["pancreas"][1]  # kidneys posterior
    assert c["heart_blood"][1] < c["red_marrow"][1]  # heart anterior to the spine
    assert c["heart_blood"][0] > 0  # heart left of the midline
    # the vertex is at z = height
    zmax = ref.labels.image.index_to_lps(np.argwhere(ref.body_mask).max(axis=0))[2]
    assert zmax == pytest.approx(1750.0, abs=3.0)


def test_densities_and_hu(ref: Anatomy) -> None:
    lab = _data(ref)
    expected_density = {
        "lungs": 0.26,
        "cortical_bone": 1.92,
        "subcutaneous_fat": 0.95,
        "muscle": 1.05,
        "liver": 1.06,
        "heart_blood": 1.06,
        "bladder": 1.02,
        "brain": 1.04,
        "red_marrow": 1.10,
    }
    for name, rho in expected_density.items():
        assert ref.regions[name].density_g_per_cm3 == pytest.approx(rho, abs=1e-3)
    n = max(r.label for r in ref.regions.values()) + 1
    rho_lut = np.full(n, 0.001205, dtype=np.float32)
    hu_lut = np.full(n, TISSUES["air"].hu, dtype=np.float32)
    for r in ref.regions.values():
        rho_lut[r.label], hu_lut[r.label] = r.density_g_per_cm3, r.hu
        assert r.hu == pytest.approx(TISSUES[r.material].hu)
        assert r.density_g_per_cm3 == TISSUES[r.material].density_g_per_cm3
    np.testing.assert_array_equal(ref.density_g_per_cm3, rho_lut[lab])
    np.testing.assert_array_equal(ref.hu, hu_lut[lab])
    assert np.all(ref.hu[lab == 0] < -990)
    hu = {n: r.hu for n, r in ref.regions.items()}
    assert hu["bladder"] == pytest.approx(20.0, abs=0.5)  # water composition at 1.02
    assert hu["lungs"] < -700 and hu["subcutaneous_fat"] < -50 and hu["cortical_bone"] > 1000
    assert 20 < hu["muscle"] < 60 and 100 < hu["red_marrow"] < 250
    liver_les = [r for r in ref.lesions() if r.site == "liver"]
    assert all(-15.0 <= r.hu - hu["liver"] <= -5.0 for r in liver_les)
    bone = next(r for r in ref.lesions() if r.site == "bone")
    assert bone.hu > hu["red_marrow"] + 200


def test_hu_relation() -> None:
    water = Tissue("w", 1.0, (("water", 1.0),), "test")
    assert water.hu == pytest.approx(0.0, abs=1e-9)
    assert TISSUES["air"].hu == pytest.approx(-1000.0, abs=2.0)
    # a mixture keeps mass: density of the spongiosa mixture
    mix = TISSUES["spongiosa"]
    rho = sum(f * {"soft_tissue": 1.05, "bone": 1.92}[m] for m, f in mix.components)
    assert rho == pytest.approx(mix.density_g_per_cm3, abs=1e-3)
