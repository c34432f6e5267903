"""Registration of time points (theranet.imaging.register).

The phantom is a CT-like volume defined analytically in LPS mm: an ellipsoidal
body (0 HU) in air (-1000 HU), a lung-like region (-800 HU) and four bone-like
spheres (700 HU) placed asymmetrically so that every rotation is identifiable,
blurred by a 1-voxel Gaussian like a reconstructed CT. A moving image with a
known transform ``T0`` is sampled directly from the analytic phantom at
``T0^-1(x)`` (no interpolation), so the transform to recover is exactly ``T0``.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from theranet.errors import GeometryError, QuantityError
from theranet.image import DecayCorrection, Image, Quantity, Timing
from theranet.imaging.register import (
    Registration,
    apply,
    identity,
    register_deformable,
    register_rigid,
)

SHAPE = (40, 48, 48)  # (Z, Y, X)
SPACING_MM = (5.0, 4.0, 4.0)  # (dz, dy, dx)
ORIGIN_MM = (-92.0, -96.0, -95.0)  # LPS of voxel (0, 0, 0)


def _affine(shape=SHAPE, spacing=SPACING_MM, origin=ORIGIN_MM) -> np.ndarray:
    """(Z, Y, X) array order: a0 steps along LPS z, a1 along y, a2 along x."""
    a = np.eye(4)
    a[:3, :3] = 0.0
    a[2, 0], a[1, 1], a[0, 2] = spacing
    a[:3, 3] = origin
    return a


def _grid(shape=SHAPE, spacing=SPACING_MM, origin=ORIGIN_MM) -> Image:
    return Image(
        np.zeros(shape, np.float32), _affine(shape, spacing, origin), Quantity.HU, modality="CT"
    )


def _hu(p: np.ndarray) -> np.ndarray:
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    hu = np.full(x.shape, -1000.0)
    hu[(x / 80) ** 2 + (y / 55) ** 2 + (z / 88) ** 2 <= 1] = 0.0
    hu[((x - 30) / 20) ** 2 + ((y + 5) / 22) ** 2 + ((z - 20) / 35) ** 2 <= 1] = -800.0
    for (cx, cy, cz), r in [
        ((10, 35, -20), 14),
        ((-45, 10, -40), 12),
        ((25, -25, 55), 10),
        ((-30, -5, 40), 9),
    ]:
        hu[(x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= r * r] = 700.0
    return hu


def _lps(grid: Image) -> np.ndarray:
    """LPS position of every voxel centre, shape (Z, Y, X, 3), mm."""
    return grid.index_to_lps(np.indices(grid.shape, dtype=np.float64).transpose(1, 2, 3, 0))


def _apply_tx(tx: sitk.Transform, p: np.ndarray) -> np.ndarray:
    """An affine-family SimpleITK transform applied to points (..., 3), vectorised."""
    e = sitk.Euler3DTransform(tx)
    m = np.array(e.GetMatrix()).reshape(3, 3)
    c = np.array(e.GetCenter())
    return (p - c) @ m.T + c + np.array(e.GetTranslation())


def _phantom(grid: Image | None = None, sample_at: sitk.Transform | None = None) -> Image:
    """The phantom on ``grid``; with ``sample_at``, the value at x is P(sample_at(x))."""
    grid = grid if grid is not None else _grid()
    p = _lps(grid)
    if sample_at is not None:
        p = _apply_tx(sample_at, p)
    return grid.replace(data=ndimage.gaussian_filter(_hu(p), 1.0).astype(np.float32))


def _centre(img: Image) -> np.ndarray:
    return img.index_to_lps((np.array(img.shape) - 1) / 2.0)


def _euler(rot_deg, t_mm, centre) -> sitk.Euler3DTransform:
    tx = sitk.Euler3DTransform()
    tx.SetCenter(tuple(float(c) for c in centre))
    tx.SetRotation(*(math.radians(a) for a in rot_deg))
    tx.SetTranslation(tuple(float(t) for t in t_mm))
    return tx


def _moved(fixed: Image, true_tx: sitk.Transform) -> Image:
    """Moving CT whose anatomy sits at true_tx(p) for anatomy at p in ``fixed``."""
    return _phantom(_grid(), sample_at=sitk.Euler3DTransform(true_tx).GetInverse())


def _max_error_mm(fixed: Image, found: sitk.Transform, true_tx: sitk.Transform) -> float:
    """Largest distance between found(x) and true(x) over body voxels, mm."""
    pts = fixed.index_to_lps(np.argwhere(np.asarray(fixed.data) > -500)[::11])
    return float(np.max(np.linalg.norm(_apply_tx(found, pts) - _apply_tx(true_tx, pts), axis=1)))


def _timing() -> Timing:
    inj = datetime(2026, 1, 1, 8, 0)
    return Timing(
        acquisition_start=inj + timedelta(hours=24),
        frame_duration_h=0.5,
        injection=inj,
        administered_activity_mbq=7400.0,
        decay_correction=DecayCorrection.START,
    )


def _spect_blob(centre_mm, grid_origin=(-100.0, -100.0, -100.0)) -> Image:
    """Activity concentration: a Gaussian blob (sigma 10 mm, peak 2 MBq/mL) on a
    40^3 grid of 5 mm voxels, in (Z, Y, X) order."""
    shape = (40, 40, 40)
    grid = Image(
        np.zeros(shape, np.float32),
        _affine(shape, (5.0, 5.0, 5.0), grid_origin),
        Quantity.ACTIVITY_CONCENTRATION,
    )
    r2 = ((_lps(grid) - np.asarray(centre_mm)) ** 2).sum(axis=-1)
    return grid.replace(
        data=(2.0 * np.exp(-r2 / (2 * 10.0**2))).astype(np.float32),
        modality="NM",
        nuclide="Lu-177",
        tracer="177Lu-DOTATATE",
        timing=_timing(),
    )


def _centroid_mm(img: Image) -> np.ndarray:
    w = np.asarray(img.data, dtype=np.float64)
    return (_lps(img) * w[..., None]).sum(axis=(0, 1, 2)) / w.sum()


@pytest.fixture(scope="module")
def fixed() -> Image:
    return _phantom()


# A 5-degree rotation about the LPS z axis plus a translation, about a point that
# is not the image centre, so the recovered parameters must be compared as
# point maps (the registration rotates about the fixed image's centre).
ROTATION = _euler((0.0, 0.0, 5.0), (3.0, -2.0, 1.5), (10.0, -5.0, 0.0))


@pytest.fixture(scope="module")
def rotated(fixed) -> tuple[Image, Registration]:
    moving = _moved(fixed, ROTATION)
    return moving, register_rigid(fixed, moving)


# -- rigid ---------------------------------------------------------------------------
@pytest.mark.parametrize("initializer", ["geometry", "none"])
def test_translation_by_origin_shift_is_recovered(fixed, initializer):
    """The same voxels placed 7.5, -4, 3 mm further: T(x) = x + d exactly.

    Tolerance 1 mm (a quarter of a voxel); the error found is ~0.05 mm.
    """
    d = np.array([7.5, -4.0, 3.0])
    affine = fixed.affine.copy()
    affine[:3, 3] += d
    moving = fixed.replace(affine=affine)
    reg = register_rigid(fixed, moving, initializer=initializer)
    assert reg.kind == "rigid"
    np.testing.assert_allclose(reg.translation_mm, d, atol=1.0)
    np.testing.assert_allclose(reg.rotation_deg, 0.0, atol=0.5)
    assert reg.metric_after > reg.metric_before
    assert reg.metric_after > 0.95
    # a pure translation moves every body voxel by |d|
    assert reg.mean_displacement_mm == pytest.approx(np.linalg.norm(d), abs=1.0)


def test_translation_by_resampling_is_recovered(fixed):
    """Moving data resampled with a known SimpleITK transform (linear interpolation)."""
    d = (7.5, -4.0, 3.0)
    true_tx = _euler((0.0, 0.0, 0.0), d, _centre(fixed))
    src = fixed.to_sitk()
    out = sitk.Resample(src, src, true_tx.GetInverse(), sitk.sitkLinear, -1000.0)
    moving = Image.from_sitk(out, Quantity.HU, modality="CT")
    reg = register_rigid(fixed, moving)
    np.testing.assert_allclose(reg.translation_mm, d, atol=1.0)
    assert _max_error_mm(fixed, reg.transform, true_tx) < 1.0
    assert reg.metric_after > reg.metric_before
    assert reg.metric_after > 0.95


def test_rotation_is_recovered(fixed, rotated):
    """5 degrees about z: the angles within 0.5 degree, every body voxel within 1 mm
    (found ~0.1 degree, ~0.3 mm on 4-5 mm voxels)."""
    _, reg = rotated
    np.testing.assert_allclose(reg.rotation_deg, (0.0, 0.0, 5.0), atol=0.5)
    assert _max_error_mm(fixed, reg.transform, ROTATION) < 1.0
    assert reg.metric_after > reg.metric_before
    assert reg.metric_after > 0.95
    assert reg.metric_name == "mattes"
    assert np.isfinite(reg.metric_value) and reg.metric_value < 0
    assert reg.iterations > 0 and reg.stop_condition


@pytest.mark.parametrize("metric", ["mattes", "correlation"])
def test_rotation_about_every_axis_is_recovered(fixed, metric):
    true_tx = _euler((3.0, -2.0, 4.0), (7.5, -4.0, 3.0), _centre(fixed))
    reg = register_rigid(fixed, _moved(fixed, true_tx), metric=metric)
    np.testing.assert_allclose(reg.rotation_deg, (3.0, -2.0, 4.0), atol=0.5)
    np.testing.assert_allclose(reg.translation_mm, (7.5, -4.0, 3.0), atol=1.0)
    assert _max_error_mm(fixed, reg.transform, true_tx) < 1.0


def test_self_registration_is_identity(fixed):
    reg = register_rigid(fixed, fixed)
    assert np.linalg.norm(reg.translation_mm) < 0.2
    np.testing.assert_allclose(reg.rotation_deg, 0.0, atol=0.1)
    assert reg.metric_before == pytest.approx(1.0, abs=1e-9)
    assert reg.metric_after == pytest.approx(1.0, abs=1e-3)
    assert reg.max_displacement_mm < 0.5


def test_same_inputs_give_identical_transforms(fixed, rotated):
    moving, _ = rotated
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    a = register_rigid(fixed, moving, sampling_fraction=0.1)
    b = register_rigid(fixed, moving, sampling_fraction=0.1)
    # single-threaded only for the call: ITK's global default is restored
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == threads
    assert a.transform.GetParameters() == b.transform.GetParameters()
    assert a.transform.GetFixedParameters() == b.transform.GetFixedParameters()
    assert a.iterations == b.iterations


def test_registration_without_overlap_is_refused(fixed):
    affine = fixed.affine.copy()
    affine[:3, 3] += (0.0, 0.0, 2000.0)
    far = fixed.replace(affine=affine)
    with pytest.raises(GeometryError) as info:
        register_rigid(fixed, far, initializer="none")
    assert info.value.field == "moving"


def test_bad_settings_are_refused(fixed):
    with pytest.raises(ValueError, match="metric"):
        register_rigid(fixed, fixed, metric="mse")
    with pytest.raises(ValueError, match="smoothing_sigmas_mm"):
        register_rigid(fixed, fixed, smoothing_sigmas_mm=(4.0, 0.0))
    with pytest.raises(ValueError, match="initializer"):
        register_rigid(fixed, fixed, initializer="moments")


# -- identity ------------------------------------------------------------------------
def test_identity_registration(fixed):
    reg = identity(fixed)
    assert reg.kind == "identity"
    assert reg.translation_mm == (0.0, 0.0, 0.0)
    assert reg.metric_after == 1.0
    assert reg.max_displacement_mm == 0.0
    spect = _spect_blob((0.0, 0.0, 0.0))
    out = apply(reg, spect, spect)
    # resampling at the same voxel centres returns the values
    np.testing.assert_allclose(out.data, spect.data, rtol=0, atol=1e-6)
    assert out.provenance.steps[-1].startswith("registered (identity)")


# -- apply ---------------------------------------------------------------------------
def test_apply_moves_activity_to_the_reference_anatomy(fixed, rotated):
    """A blob at anatomy point p of the fixed CT appears at ROTATION(p) in the
    moving time point; registered onto the reference SPECT grid (another grid than
    the CT) its centroid returns to p within 1 mm."""
    _, reg = rotated
    p = np.array([20.0, 10.0, -15.0])
    moving_spect = _spect_blob(_apply_tx(ROTATION, p))
    reference = _spect_blob((0.0, 0.0, 0.0), grid_origin=(-98.0, -97.0, -99.0))
    out = apply(reg, moving_spect, reference)
    assert np.linalg.norm(_centroid_mm(out) - p) < 1.0
    assert out.same_grid(reference)
    for name in ("quantity", "nuclide", "tracer", "timing", "modality", "patient"):
        assert getattr(out, name) == getattr(moving_spect, name), name
    assert out.unit == "MBq/mL"
    assert out.data.dtype == np.float32
    step = out.provenance.steps[-1]
    assert step.startswith("registered (rigid, t=(") and "resampled linearly" in step


def test_apply_is_exact_for_a_linear_field_on_an_oblique_grid(fixed, rotated):
    """Linear interpolation of a linear field is exact, so the value at every
    output voxel must be the field at T(x): checks the index order, direction
    cosines and origin of both grids, including a non-axis-aligned reference."""
    _, reg = rotated
    grad = np.array([0.01, -0.02, 0.03])  # MBq/mL per mm along LPS x, y, z

    def field(p):
        return 5.0 + p @ grad

    moving = Image(
        np.zeros((50, 56, 60), np.float32),
        _affine((50, 56, 60), (4.0, 3.5, 3.0), (-90.0, -98.0, -125.0)),
        Quantity.ACTIVITY_CONCENTRATION,
    )
    moving = moving.replace(data=field(_lps(moving)).astype(np.float32))
    tilt = _euler((20.0, -10.0, 30.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    rot = np.array(tilt.GetMatrix()).reshape(3, 3)
    ref_affine = _affine((24, 24, 24), (3.0, 3.0, 3.0), (-30.0, -30.0, -30.0))
    ref_affine[:3, :3] = rot @ ref_affine[:3, :3]
    reference = Image(np.zeros((24, 24, 24), np.float32), ref_affine, Quantity.HU)
    out = apply(reg, moving, reference, default_value=-1.0)
    expected = field(_apply_tx(reg.transform, _lps(reference)))
    inside = out.data != -1.0
    assert inside.mean() > 0.99
    # float32 values of size ~10: tolerance 1e-4 MBq/mL
    np.testing.assert_allclose(out.data[inside], expected[inside], rtol=0, atol=1e-4)


def test_apply_refuses_extensive_quantities(fixed):
    spect = _spect_blob((0.0, 0.0, 0.0))
    activity = spect.to_activity()
    with pytest.raises(QuantityError) as info:
        apply(identity(fixed), activity, fixed)
    assert info.value.field == "moving.quantity"
    assert "voxel_volume_ml" in info.value.fix
    counts = spect.replace(quantity=Quantity.COUNTS)
    with pytest.raises(QuantityError):
        apply(identity(fixed), counts, fixed)


def test_apply_refuses_images_without_overlap(fixed):
    far = _spect_blob((0.0, 0.0, 0.0), grid_origin=(-100.0, -100.0, 900.0))
    with pytest.raises(GeometryError) as info:
        apply(identity(fixed), far, fixed)
    assert info.value.field == "reference"
    assert "overlap" in info.value.problem


def test_apply_labels_need_nearest(fixed):
    labels = Image((np.asarray(fixed.data) > 300).astype(np.uint8), fixed.affine, Quantity.LABEL)
    with pytest.raises(QuantityError) as info:
        apply(identity(fixed), labels, fixed)
    assert info.value.field == "method"
    out = apply(identity(fixed), labels, fixed, method="nearest")
    assert out.data.dtype == np.uint8
    np.testing.assert_array_equal(out.data, labels.data)


def test_apply_does_not_touch_its_inputs(fixed, rotated):
    _, reg = rotated
    spect = _spect_blob((0.0, 0.0, 0.0))
    before = np.array(spect.data)
    params = reg.transform.GetParameters()
    apply(reg, spect, fixed)
    np.testing.assert_array_equal(spect.data, before)
    assert reg.transform.GetParameters() == params
    with pytest.raises(dataclasses.FrozenInstanceError):
        reg.kind = "identity"  # type: ignore[misc]


# -- deformable ----------------------------------------------------------------------
BUMP_MM = np.array([7.0, 4.0, -3.0])
BUMP_CENTRE_MM = np.array([20.0, 10.0, 0.0])
SHIFT_MM = np.array([3.0, -2.0, 1.0])


def _bump(p: np.ndarray) -> np.ndarray:
    """Smooth local displacement u(p): a Gaussian (sigma 35 mm) of peak |BUMP_MM| = 8.6 mm."""
    w = np.exp(-((p - BUMP_CENTRE_MM) ** 2).sum(-1) / (2 * 35.0**2))
    return w[..., None] * BUMP_MM


@pytest.fixture(scope="module")
def deformed_case(fixed) -> tuple[Image, Registration, np.ndarray, np.ndarray]:
    """Moving CT showing at y the anatomy at y - u(y) + s; its rigid registration;
    body points of the fixed grid and their true images T(x) = y, where
    y - u(y) + s = x (solved by fixed-point iteration, u is a contraction here)."""
    grid = _grid()
    p = _lps(grid)
    moving = grid.replace(
        data=ndimage.gaussian_filter(_hu(p - _bump(p) + SHIFT_MM), 1.0).astype(np.float32)
    )
    rigid = register_rigid(fixed, moving)
    pts = fixed.index_to_lps(np.argwhere(np.asarray(fixed.data) > -500)[::5])
    truth = pts.copy()
    for _ in range(30):
        truth = pts + _bump(truth) - SHIFT_MM
    return moving, rigid, pts, truth


def _errors_mm(tx: sitk.Transform, pts: np.ndarray, truth: np.ndarray) -> np.ndarray:
    found = np.array([tx.TransformPoint(tuple(v)) for v in pts])
    return np.linalg.norm(found - truth, axis=1)


def _check_deformable(rigid: Registration, deformed: Registration, pts, truth) -> None:
    assert deformed.kind == "rigid+bspline"
    assert deformed.translation_mm == rigid.translation_mm
    assert deformed.metric_before == pytest.approx(rigid.metric_before)
    assert deformed.metric_after > rigid.metric_after + 0.01
    near = np.linalg.norm(pts - BUMP_CENTRE_MM, axis=1) < 40.0
    e_rigid = _errors_mm(rigid.transform, pts, truth)
    e_bspline = _errors_mm(deformed.transform, pts, truth)
    # near the bump the rigid map is ~4.5 mm off, the B-spline one ~1-1.5 mm
    assert e_bspline[near].mean() < 0.6 * e_rigid[near].mean()
    assert e_bspline.mean() < e_rigid.mean()


def test_deformable_reduces_a_smooth_local_deformation(fixed, deformed_case):
    """Fast settings (one level, 5000 samples, 15 iterations: ~2 s)."""
    moving, rigid, pts, truth = deformed_case
    deformed = register_deformable(
        fixed, moving, initial=rigid, shrink_factors=(1,), max_samples=5000, max_iterations=15
    )
    _check_deformable(rigid, deformed, pts, truth)


@pytest.mark.slow
def test_deformable_with_defaults(fixed, deformed_case):
    """Default settings (two levels, 10000 samples: ~8 s on two cores)."""
    moving, rigid, pts, truth = deformed_case
    _check_deformable(rigid, register_deformable(fixed, moving, initial=rigid), pts, truth)


def test_deformable_refuses_a_deformable_initial(fixed, deformed_case):
    _, rigid, _, _ = deformed_case
    done = dataclasses.replace(rigid, kind="rigid+bspline")
    with pytest.raises(ValueError, match="initial"):
        register_deformable(fixed, fixed, initial=done)
