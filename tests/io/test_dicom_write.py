"""RT Dose and SEG writers: dciodvfy, pydicom/SimpleITK geometry, highdicom round trip."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime

import numpy as np
import pydicom
import pytest

from theranet.errors import GeometryError
from theranet.image import Image, Labels, Quantity
from theranet.io.dicom_series import read_series
from theranet.io.dicom_write import segment_codes, write_rtdose, write_seg
from theranet.phantom.dicom_export import DicomContext, write_ct_series

SHAPE = (6, 16, 16)
CT_AFFINE = np.array(
    [
        [0.0, 0.0, 1.5, -12.0],
        [0.0, 2.0, 0.0, -16.0],
        [2.5, 0.0, 0.0, 30.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


@pytest.fixture(scope="module")
def ct_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ct")
    hu = np.full(SHAPE, -100.0)
    hu[:, 4:12, 4:12] = 40.0
    write_ct_series(
        folder,
        Image(hu, CT_AFFINE, Quantity.HU),
        DicomContext(3),
        acquisition_datetime=datetime(2026, 1, 12, 9, 30),
    )
    return folder


@pytest.fixture(scope="module")
def ct(ct_folder):
    return read_series(ct_folder)


def _dose_on(affine, shape, seed=0):
    rng = np.random.default_rng(seed)
    return Image(rng.uniform(0.0, 12.0, shape), affine, Quantity.DOSE)


def _coarse_affine():
    a = CT_AFFINE.copy()
    a[:3, :3] *= 2.0
    return a


def _labels(ct):
    data = np.zeros(SHAPE, np.int16)
    data[1:4, 3:7, 3:7] = 1
    data[2:5, 8:12, 9:13] = 2
    data[4, 1, 1] = 3
    return Labels(
        Image(data, ct.affine, Quantity.LABEL),
        {1: "kidney_left", 2: "liver", 3: "lesion_1", 4: "mystery"},
    )


def _dciodvfy_errors(path) -> list[str]:
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy not installed: apt-get install dicom3tools")
    out = subprocess.run([exe, "-new", str(path)], capture_output=True, text=True, timeout=60)
    return [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]


# ---------------------------------------------------------------------------- RT Dose


@pytest.mark.parametrize("grid", ["ct", "coarse"])
def test_rtdose_roundtrip(tmp_path, ct_folder, ct, grid):
    affine = ct.affine if grid == "ct" else _coarse_affine()
    shape = SHAPE if grid == "ct" else (3, 8, 8)
    dose = _dose_on(affine, shape)
    path, plan = write_rtdose(tmp_path / "dose.dcm", dose, ct_folder, uid_seed=1)
    assert path.is_file() and plan.is_file()

    ds = pydicom.dcmread(path)
    ref = pydicom.dcmread(next(ct_folder.glob("CT_*.dcm")), stop_before_pixels=True)
    assert ds.DoseUnits == "GY" and ds.DoseType == "PHYSICAL" and ds.DoseSummationType == "PLAN"
    assert ds.FrameOfReferenceUID == ref.FrameOfReferenceUID
    assert ds.StudyInstanceUID == ref.StudyInstanceUID
    assert ds.PatientID == ref.PatientID
    plan_ds = pydicom.dcmread(plan)
    assert ds.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == plan_ds.SOPInstanceUID
    assert ds.BitsAllocated == 16 and ds.PixelRepresentation == 0

    # geometry from pydicom
    gfov = np.array([float(v) for v in ds.GridFrameOffsetVector])
    assert gfov[0] == 0.0
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    dy, dx = (float(v) for v in ds.PixelSpacing)
    normal = np.cross(iop[:3], iop[3:])
    rebuilt = np.eye(4)
    rebuilt[:3, 0] = normal * gfov[1]
    rebuilt[:3, 1] = iop[3:] * dy
    rebuilt[:3, 2] = iop[:3] * dx
    rebuilt[:3, 3] = ipp
    np.testing.assert_allclose(rebuilt, dose.affine, atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.diff(gfov), gfov[1], atol=1e-6)

    scaling = float(ds.DoseGridScaling)
    values = ds.pixel_array.astype(np.float64) * scaling
    assert values.shape == dose.shape
    assert np.max(np.abs(values - dose.data)) <= scaling

    # SimpleITK
    sitk = pytest.importorskip("SimpleITK")
    img = sitk.ReadImage(str(path))
    np.testing.assert_allclose(img.GetOrigin(), dose.origin_mm, atol=1e-4)
    np.testing.assert_allclose(img.GetSpacing(), dose.spacing_mm[::-1], atol=1e-4)

    for p in (path, plan):
        assert _dciodvfy_errors(p) == [], p


def test_rtdose_deterministic(tmp_path, ct_folder, ct):
    dose = _dose_on(ct.affine, SHAPE)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, ap = write_rtdose(tmp_path / "a" / "d.dcm", dose, ct_folder, uid_seed="x")
    b, bp = write_rtdose(tmp_path / "b" / "d.dcm", dose, ct_folder, uid_seed="x")
    assert a.read_bytes() == b.read_bytes() and ap.read_bytes() == bp.read_bytes()


def test_rtdose_flipped_slices(tmp_path, ct_folder):
    a = CT_AFFINE.copy()
    a[:3, 0] *= -1  # slices towards the feet: written in ascending order
    dose = _dose_on(a, SHAPE)
    path, _ = write_rtdose(tmp_path / "dose.dcm", dose, ct_folder)
    ds = pydicom.dcmread(path)
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    np.testing.assert_allclose(ipp, a[:3, 3] + 5 * a[:3, 0], atol=1e-4)
    values = ds.pixel_array * float(ds.DoseGridScaling)
    assert np.max(np.abs(values - dose.data[::-1])) <= float(ds.DoseGridScaling)


def test_rtdose_oblique_refused(tmp_path, ct_folder):
    c, s = np.cos(0.3), np.sin(0.3)
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    a = CT_AFFINE.copy()
    a[:3, :3] = rot @ a[:3, :3]
    with pytest.raises(GeometryError, match="oblique"):
        write_rtdose(tmp_path / "dose.dcm", _dose_on(a, SHAPE), ct_folder)
    assert list(tmp_path.iterdir()) == []


def test_rtdose_sheared_refused(tmp_path, ct_folder):
    a = CT_AFFINE.copy()
    a[0, 0] = 0.5  # slice step not along the normal
    with pytest.raises(GeometryError):
        write_rtdose(tmp_path / "dose.dcm", _dose_on(a, SHAPE), ct_folder)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- SEG


def test_seg_roundtrip(tmp_path, ct_folder, ct):
    hd = pytest.importorskip("highdicom")
    labels = _labels(ct)
    path = write_seg(tmp_path / "seg.dcm", labels, ct_folder, uid_seed=2)
    seg = hd.seg.segread(path)
    assert (
        seg.FrameOfReferenceUID
        == pydicom.dcmread(
            next(ct_folder.glob("CT_*.dcm")), stop_before_pixels=True
        ).FrameOfReferenceUID
    )
    names = {int(s.SegmentNumber): s.SegmentLabel for s in seg.SegmentSequence}
    assert list(names.values()) == ["kidney_left", "liver", "lesion_1", "mystery"]
    types = [s.SegmentedPropertyTypeCodeSequence[0].CodeMeaning for s in seg.SegmentSequence]
    assert types == ["Kidney", "Liver", "Neoplasm", "Tissue"]

    files = sorted(ct_folder.glob("CT_*.dcm"))
    uids = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files]
    for number, name in names.items():
        arr = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=uids, segment_numbers=[number]
        )[..., 0]
        np.testing.assert_array_equal(arr.astype(bool), labels.mask(name), err_msg=name)

    assert _dciodvfy_errors(path) == []


def test_seg_other_grid_refused(tmp_path, ct_folder, ct):
    labels = _labels(ct)
    moved = Labels(labels.image.replace(affine=_coarse_affine()), labels.names)
    with pytest.raises(GeometryError, match="resample_to"):
        write_seg(tmp_path / "seg.dcm", moved, ct_folder)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "category", "typ"),
    [
        ("kidneys", "Organ", "Kidney"),
        ("Right Kidney", "Organ", "Kidney"),
        ("spleen", "Organ", "Spleen"),
        ("tumour 2", "Morphologically Abnormal Structure", "Neoplasm"),
        ("whatever", "Tissue", "Tissue"),
    ],
)
def test_segment_codes(name, category, typ):
    c, t = segment_codes(name)
    assert (c.meaning, t.meaning) == (category, typ)
