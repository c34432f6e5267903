"""Regions from DICOM SEG, RTSTRUCT and NIfTI on a reference grid (synthetic data only)."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from theranet.errors import DicomReadError, GeometryError
from theranet.image import Image, Labels, Quantity
from theranet.io.dicom_series import read_series
from theranet.io.dicom_write import write_seg
from theranet.io.nifti import write_nifti
from theranet.io.regions import (
    RTSTRUCT_STORAGE,
    RegionError,
    read_regions,
    read_rtstruct,
    read_seg,
)
from theranet.phantom.dicom_export import DicomContext, write_ct_series

hd = pytest.importorskip("highdicom")

SHAPE = (6, 16, 16)
# slices along z (2.5 mm), rows along y (2 mm), columns along x (1.5 mm)
CT_AFFINE = np.array(
    [
        [0.0, 0.0, 1.5, -12.0],
        [0.0, 2.0, 0.0, -16.0],
        [2.5, 0.0, 0.0, 30.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
CTX = DicomContext(3)
FOR_UID = CTX.frame_of_reference_uid
OTHER_FOR = "1.2.826.0.1.3680043.8.498.999"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ct_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ct")
    hu = np.full(SHAPE, -100.0)
    write_ct_series(
        folder, Image(hu, CT_AFFINE, Quantity.HU), CTX, acquisition_datetime=datetime(2026, 1, 12)
    )
    return folder


@pytest.fixture(scope="module")
def ct(ct_folder):
    return read_series(ct_folder)


@pytest.fixture(scope="module")
def sources(ct_folder):
    return [pydicom.dcmread(p) for p in sorted(ct_folder.glob("CT_*.dcm"))]


def _labels(ct) -> Labels:
    data = np.zeros(SHAPE, np.int16)
    data[1:4, 3:7, 3:7] = 1
    data[2:5, 8:12, 9:13] = 2
    data[4, 1, 1] = 3
    return Labels(
        Image(data, ct.affine, Quantity.LABEL),
        {1: "kidney_left", 2: "liver", 3: "lesion_1", 4: "mystery"},
    )


def _hd_seg(path, sources, masks, labels, *, seg_type="BINARY", spacing=True):
    """A SEG written with highdicom directly: ``masks`` (Z, Y, X, segments) in source
    order, or (Z, Y, X) label values for ``seg_type="LABELMAP"``."""
    algo = hd.AlgorithmIdentificationSequence(
        name="test", family=pydicom.sr.codedict.codes.DCM.ArtificialIntelligence, version="1"
    )
    tissue = pydicom.sr.codedict.codes.SCT.Tissue
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=k,
            segment_label=label,
            segmented_property_category=tissue,
            segmented_property_type=tissue,
            algorithm_type="AUTOMATIC",
            algorithm_identification=algo,
        )
        for k, label in enumerate(labels, start=1)
    ]
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=masks,
        segmentation_type=seg_type,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(entropy_srcs=[str(path), "series"]),
        series_number=1,
        sop_instance_uid=generate_uid(entropy_srcs=[str(path), "instance"]),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="0",
        **({"max_fractional_value": 255} if seg_type == "FRACTIONAL" else {}),
    )
    if not spacing:
        del seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SpacingBetweenSlices
    seg.save_as(path)
    return path


def _source_order(ct, sources) -> list[int]:
    """Slice index in ``ct`` of each source dataset."""
    return [
        round(float(ct.lps_to_index(np.array([float(v) for v in d.ImagePositionPatient]))[0]))
        for d in sources
    ]


def _masks_in_source_order(ct, sources, volume_masks):
    order = _source_order(ct, sources)
    return np.stack([np.asarray(m)[order] for m in volume_masks], axis=-1).astype(np.uint8)


# ---------------------------------------------------------------- SEG


def test_seg_round_trip(tmp_path, ct_folder, ct):
    labels = _labels(ct)
    path = write_seg(tmp_path / "seg.dcm", labels, ct_folder, uid_seed=1)
    out = read_seg(path, ct, frame_of_reference_uid=FOR_UID)
    np.testing.assert_array_equal(out.image.data, labels.image.data)
    assert out.names == labels.names  # the empty segment keeps its name
    np.testing.assert_array_equal(out.image.affine, ct.affine)
    assert out.image.quantity is Quantity.LABEL
    assert "segments copied directly onto the reference grid" in out.image.provenance.steps
    assert not any("not compared" in a for a in out.image.provenance.assumptions)
    # the same through the dispatcher; without the UID the comparison is recorded as skipped
    again = read_regions(path, ct)
    np.testing.assert_array_equal(again.image.data, labels.image.data)
    assert any("not compared" in a for a in again.image.provenance.assumptions)


def test_seg_on_permuted_reference_copied(tmp_path, ct_folder, ct):
    """Reference with axes (y, x, z), x reversed: still copied, not resampled."""
    labels = _labels(ct)
    path = write_seg(tmp_path / "seg.dcm", labels, ct_folder)
    nz, ny, nx = SHAPE
    affine = np.eye(4)
    affine[:3, 0] = ct.affine[:3, 1]  # y
    affine[:3, 1] = -ct.affine[:3, 2]  # x, reversed
    affine[:3, 2] = ct.affine[:3, 0]  # z
    affine[:3, 3] = ct.affine[:3, 3] + (nx - 1) * ct.affine[:3, 2]
    ref = Image(np.zeros((ny, nx, nz), np.float32), affine, Quantity.HU)
    out = read_seg(path, ref)
    expected = np.transpose(labels.image.data, (1, 2, 0))[:, ::-1, :]
    np.testing.assert_array_equal(out.image.data, expected)
    assert "segments copied directly onto the reference grid" in out.image.provenance.steps


def test_seg_on_coarser_reference_resampled(tmp_path, ct_folder, ct):
    labels = _labels(ct)
    path = write_seg(tmp_path / "seg.dcm", labels, ct_folder)
    coarse = CT_AFFINE.copy()
    coarse[:3, 1:3] *= 2.0  # same origin: coarse centres fall on fine centres, no ties
    ref = Image(np.zeros((6, 8, 8), np.float32), coarse, Quantity.HU)
    out = read_seg(path, ref)
    expected = labels.resample_to(ref)
    np.testing.assert_array_equal(out.image.data, expected.image.data)
    assert out.image.data.any()
    assert any("resampled" in s for s in out.image.provenance.steps)


def test_seg_sparse_frames_without_spacing(tmp_path, ct, sources):
    """Empty frames omitted and no Spacing Between Slices: slices 1 and 4 stay slices 1 and 4."""
    vol = np.zeros(SHAPE, bool)
    vol[1, 2:5, 2:5] = True
    vol[4, 2:5, 2:5] = True
    masks = _masks_in_source_order(ct, sources, [vol])
    path = _hd_seg(tmp_path / "sparse.dcm", sources, masks, ["Region"], spacing=False)
    out = read_seg(path, ct)
    np.testing.assert_array_equal(out.image.data.astype(bool), vol)
    # resampled (in-plane twice coarser), the frames stay one slice thick
    coarse = CT_AFFINE.copy()
    coarse[:3, 1:3] *= 2.0
    out = read_seg(path, Image(np.zeros((6, 8, 8), np.float32), coarse, Quantity.HU))
    assert np.flatnonzero(out.image.data.any(axis=(1, 2))).tolist() == [1, 4]


def test_seg_fractional(tmp_path, ct, sources):
    vol = np.zeros(SHAPE, np.float32)
    vol[1, 2:5, 2:5] = 0.7
    vol[2, 2:5, 2:5] = 0.3
    masks = np.stack([np.asarray(vol)[_source_order(ct, sources)]], axis=-1)
    path = _hd_seg(tmp_path / "frac.dcm", sources, masks, ["Tumour  Core"], seg_type="FRACTIONAL")
    out = read_seg(path, ct)
    assert out.names == {1: "tumour_core"}
    np.testing.assert_array_equal(out.image.data.astype(bool), vol >= 0.5)
    low = read_seg(path, ct, fraction_threshold=0.2)
    np.testing.assert_array_equal(low.image.data.astype(bool), vol > 0)
    with pytest.raises(ValueError, match="fraction_threshold"):
        read_seg(path, ct, fraction_threshold=0.0)


def test_label_map_seg(tmp_path, ct, sources):
    vol = np.zeros(SHAPE, np.uint8)
    vol[1, 2:5, 2:5] = 1
    vol[3, 6:9, 6:9] = 2
    labelmap = vol[_source_order(ct, sources)]
    path = _hd_seg(tmp_path / "lm.dcm", sources, labelmap, ["Liver", "Spleen"], seg_type="LABELMAP")
    out = read_regions(path, ct)
    assert out.names == {1: "liver", 2: "spleen"}
    np.testing.assert_array_equal(out.image.data, vol)


def test_seg_overlap(tmp_path, ct, sources):
    a = np.zeros(SHAPE, bool)
    b = np.zeros(SHAPE, bool)
    a[2, 2:8, 2:8] = True
    b[2, 5:10, 5:10] = True
    masks = _masks_in_source_order(ct, sources, [a, b])
    path = _hd_seg(tmp_path / "overlap.dcm", sources, masks, ["Liver", "Lesion 1"])
    with pytest.raises(RegionError, match=r"'liver' and 'lesion_1' \(9 voxels\)"):
        read_seg(path, ct)
    out = read_seg(path, ct, overlap="last")
    assert out.names == {1: "liver", 2: "lesion_1"}
    assert out.present() == {"liver": 36 - 9, "lesion_1": 25}
    assert np.all(out.image.data[b] == 2)
    assert any("overlap" in s for s in out.image.provenance.assumptions)
    only = read_seg(path, ct, regions=["Liver"])
    assert only.names == {1: "liver"}
    np.testing.assert_array_equal(only.image.data.astype(bool), a)
    with pytest.raises(RegionError, match="spleen"):
        read_seg(path, ct, regions=["spleen"])
    with pytest.raises(ValueError, match="overlap"):
        read_seg(path, ct, overlap="first")


def test_seg_duplicate_names_refused(tmp_path, ct, sources):
    a = np.zeros(SHAPE, bool)
    a[2, 2:4, 2:4] = True
    masks = _masks_in_source_order(ct, sources, [a, ~a])
    path = _hd_seg(tmp_path / "dup.dcm", sources, masks, ["Liver", "liver"])
    with pytest.raises(RegionError, match="same normalised name"):
        read_seg(path, ct)


def test_seg_other_frame_of_reference_refused(tmp_path, ct_folder, ct):
    path = write_seg(tmp_path / "seg.dcm", _labels(ct), ct_folder)
    with pytest.raises(GeometryError, match=r"FrameOfReferenceUID \(0020,0052\).*Fix"):
        read_seg(path, ct, frame_of_reference_uid=OTHER_FOR)

    class WithFor:  # a reference that carries its frame of reference
        def __init__(self, image, uid):
            self._image, self.frame_of_reference_uid = image, uid

        def __getattr__(self, name):
            return getattr(self._image, name)

    with pytest.raises(GeometryError, match="FrameOfReferenceUID"):
        read_seg(path, WithFor(ct, OTHER_FOR))


def test_seg_outside_reference_refused(tmp_path, ct_folder, ct):
    path = write_seg(tmp_path / "seg.dcm", _labels(ct), ct_folder)
    cropped = ct.crop((0, 2, 2), (6, 16, 16))  # loses lesion_1 at row 1, column 1
    with pytest.raises(GeometryError, match="'lesion_1' extends outside the reference grid"):
        read_seg(path, cropped)
    out = read_seg(path, cropped, regions=["kidney_left", "liver"])
    assert set(out.present()) == {"kidney_left", "liver"}


# ---------------------------------------------------------------- RTSTRUCT

# Reference for the contours: 8 slices with z decreasing (-2 mm), rows along y
# (1.1 mm), columns along x (0.9 mm); anisotropic so that swapped axes show.
RT_SHAPE = (8, 48, 40)
RT_AFFINE = np.array(
    [
        [0.0, 0.0, 0.9, -18.0],
        [0.0, 1.1, 0.0, -25.0],
        [-2.0, 0.0, 0.0, 12.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def _z(k: float) -> float:
    return 12.0 - 2.0 * k


def _square(cx, cy, side, z):
    h = side / 2
    return [(cx - h, cy - h, z), (cx + h, cy - h, z), (cx + h, cy + h, z), (cx - h, cy + h, z)]


def _circle(cx, cy, r, z, n=64):
    a = 2 * np.pi * np.arange(n) / n
    return [(cx + r * math.cos(t), cy + r * math.sin(t), z) for t in a]


def _write_rtstruct(path, rois, *, for_uid=FOR_UID):
    """``rois``: list of (name, [(ContourGeometricType, points)...]) or
    (name, contours, frame of reference UID)."""
    ds = Dataset()
    ds.SOPClassUID = RTSTRUCT_STORAGE
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(path), "instance"])
    ds.Modality = "RTSTRUCT"
    ds.PatientName = "ANON^SYNTHETIC"
    ds.PatientID = "SYNTHETIC-0001"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[str(path), "series"])
    ds.StructureSetLabel = "synthetic"
    ds.StructureSetDate = "20260112"
    ds.StructureSetTime = "090000"
    fors = sorted({for_uid} | {r[2] for r in rois if len(r) > 2})
    ref_items = []
    for uid in fors:
        item = Dataset()
        item.FrameOfReferenceUID = uid
        ref_items.append(item)
    ds.ReferencedFrameOfReferenceSequence = DicomSequence(ref_items)
    roi_items, contour_items, obs_items = [], [], []
    for number, roi in enumerate(rois, start=10):  # ROI Numbers need not start at 1
        name, contours = roi[0], roi[1]
        item = Dataset()
        item.ROINumber = number
        item.ReferencedFrameOfReferenceUID = roi[2] if len(roi) > 2 else for_uid
        item.ROIName = name
        item.ROIGenerationAlgorithm = "MANUAL"
        roi_items.append(item)
        rc = Dataset()
        rc.ReferencedROINumber = number
        rc.ROIDisplayColor = [255, 0, 0]
        seq = []
        for kind, pts in contours:
            c = Dataset()
            c.ContourGeometricType = kind
            c.NumberOfContourPoints = len(pts)
            c.ContourData = [format_number_as_ds(float(v)) for p in pts for v in p]
            seq.append(c)
        rc.ContourSequence = DicomSequence(seq)
        contour_items.append(rc)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = "ORGAN"
        obs.ROIInterpreter = ""
        obs_items.append(obs)
    ds.StructureSetROISequence = DicomSequence(roi_items)
    ds.ROIContourSequence = DicomSequence(contour_items)
    ds.RTROIObservationsSequence = DicomSequence(obs_items)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def rt_ref():
    return Image(np.zeros(RT_SHAPE, np.float32), RT_AFFINE, Quantity.HU)


def _poly_index(ref: Image, pts) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) continuous indices of LPS points on an axial slice."""
    idx = ref.lps_to_index(np.array(pts, dtype=float))
    return idx[:, 1], idx[:, 2]


def _area_perimeter(u, v) -> tuple[float, float]:
    """Shoelace area and perimeter, in index units (pixels)."""
    area = 0.5 * abs(np.dot(u, np.roll(v, -1)) - np.dot(v, np.roll(u, -1)))
    perimeter = float(np.sum(np.hypot(np.diff(u, append=u[0]), np.diff(v, append=v[0]))))
    return float(area), perimeter


SQUARE = (1.3, -2.2, 14.0)  # centre x, y, side (mm)
CIRCLE = (-3.1, 4.7, 9.0)  # centre x, y, radius (mm)


def _standard_rois():
    sq = [("CLOSED_PLANAR", _square(SQUARE[0], SQUARE[1], SQUARE[2], _z(k))) for k in (1, 2, 3)]
    circ = [("CLOSED_PLANAR", _circle(CIRCLE[0], CIRCLE[1], CIRCLE[2], _z(k))) for k in (4, 5)]
    ring = [
        ("CLOSED_PLANAR", _square(0.0, 0.0, 24.0, _z(6))),
        ("CLOSED_PLANAR", _square(0.0, 0.0, 10.0, _z(6))),  # hole
        ("CLOSED_PLANAR", _square(-12.0, 14.0, 4.0, _z(6))),  # separate island
    ]
    marker = [("POINT", [(0.0, 0.0, _z(0))])]
    return [("Square Box", sq), ("Circle", circ), ("Ring", ring), ("Marker", marker)]


def test_rtstruct_areas_and_positions(tmp_path, rt_ref):
    path = _write_rtstruct(tmp_path / "rs.dcm", _standard_rois())
    out = read_rtstruct(path, rt_ref, frame_of_reference_uid=FOR_UID)
    assert out.names == {1: "square_box", 2: "circle", 3: "ring"}  # the marker has no area
    notes = out.image.provenance.assumptions
    assert any("'Marker'" in n and "POINT" in n for n in notes)
    assert any("'Marker'" in n and "left out" in n for n in notes)
    data = out.image.data
    pixel = RT_AFFINE[0, 2], RT_AFFINE[1, 1]  # x, y voxel size (mm)

    def check(label, k, polygons, centre=None):
        mask = data[k] == label
        areas = [_area_perimeter(*_poly_index(rt_ref, p)) for p in polygons]
        area = areas[0][0] - sum(a for a, _ in areas[1:2]) + sum(a for a, _ in areas[2:])
        perimeter = sum(p for _, p in areas)
        # every voxel whose centre-decision can go either way touches the boundary:
        # at most one voxel per unit of perimeter (in voxels)
        assert abs(mask.sum() - area) <= perimeter, (label, k, mask.sum(), area)
        if centre is not None:
            rows, cols = np.nonzero(mask)
            idx = np.stack([np.full(rows.size, k), rows, cols], axis=1)
            lps = rt_ref.index_to_lps(idx).mean(axis=0)
            # centroid within half a voxel of the shape's centre, per axis
            assert abs(lps[0] - centre[0]) <= pixel[0] / 2
            assert abs(lps[1] - centre[1]) <= pixel[1] / 2
            assert lps[2] == pytest.approx(_z(k))

    for k in (1, 2, 3):
        check(1, k, [_square(SQUARE[0], SQUARE[1], SQUARE[2], _z(k))], SQUARE[:2])
    for k in (4, 5):
        check(2, k, [_circle(CIRCLE[0], CIRCLE[1], CIRCLE[2], _z(k))], CIRCLE[:2])
    ring = [
        _square(0.0, 0.0, 24.0, _z(6)),
        _square(0.0, 0.0, 10.0, _z(6)),
        _square(-12.0, 14.0, 4.0, _z(6)),
    ]
    check(3, 6, ring)
    # the hole is empty, the island is there and apart from the ring
    hole = rt_ref.lps_to_index(np.array([0.0, 0.0, _z(6)]))
    assert data[6, round(hole[1]), round(hole[2])] == 0
    island = rt_ref.lps_to_index(np.array([-12.0, 14.0, _z(6)]))
    assert data[6, round(island[1]), round(island[2])] == 3
    # nothing on slices without contours
    assert not data[[0, 7]].any()


def test_rtstruct_square_voxel_exact(tmp_path):
    """A square whose edges lie on voxel boundaries gives exactly its voxels."""
    axial = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
    ref = Image(np.zeros((3, 10, 10), np.float32), axial, Quantity.HU)
    pts = [(1.5, 2.5, 1.0), (6.5, 2.5, 1.0), (6.5, 7.5, 1.0), (1.5, 7.5, 1.0)]
    path = _write_rtstruct(tmp_path / "rs.dcm", [("box", [("CLOSED_PLANAR", pts)])])
    out = read_rtstruct(path, ref)
    expected = np.zeros((3, 10, 10), bool)
    expected[1, 3:8, 2:7] = True  # rows: y 2.5..7.5, columns: x 1.5..6.5 (axes z, y, x)
    np.testing.assert_array_equal(out.image.data.astype(bool), expected)
    # the same on a reference whose slices are its last axis (axes x, y, z)
    ref_xyz = Image(np.zeros((10, 10, 3), np.float32), np.eye(4), Quantity.HU)
    out = read_rtstruct(path, ref_xyz)
    np.testing.assert_array_equal(out.image.data.astype(bool), np.transpose(expected, (2, 1, 0)))


def test_rtstruct_oblique_contour_refused(tmp_path, rt_ref):
    pts = [(x, y, _z(3) + 0.15 * x) for x, y, _ in _square(0.0, 0.0, 14.0, 0.0)]
    path = _write_rtstruct(tmp_path / "rs.dcm", [("tilted", [("CLOSED_PLANAR", pts)])])
    with pytest.raises(GeometryError, match="'tilted' is not parallel to the reference slices"):
        read_rtstruct(path, rt_ref)


def test_rtstruct_off_plane_assigned_to_nearest_slice(tmp_path, rt_ref):
    pts = _square(0.0, 0.0, 10.0, _z(3) - 0.6)  # 0.3 slice towards slice 4
    path = _write_rtstruct(tmp_path / "rs.dcm", [("box", [("CLOSED_PLANAR", pts)])])
    out = read_rtstruct(path, rt_ref)
    assert np.flatnonzero(out.image.data.any(axis=(1, 2))).tolist() == [3]
    assert any("off the reference slice planes" in n for n in out.image.provenance.assumptions)


def test_rtstruct_outside_reference_refused(tmp_path, rt_ref):
    beyond = _write_rtstruct(
        tmp_path / "z.dcm", [("box", [("CLOSED_PLANAR", _square(0.0, 0.0, 10.0, _z(8.2)))])]
    )
    with pytest.raises(GeometryError, match="outside the reference slices"):
        read_rtstruct(beyond, rt_ref)
    wide = _write_rtstruct(
        tmp_path / "xy.dcm", [("box", [("CLOSED_PLANAR", _square(0.0, 0.0, 80.0, _z(2)))])]
    )
    with pytest.raises(GeometryError, match="beyond the reference grid"):
        read_rtstruct(wide, rt_ref)


def test_rtstruct_gaps_recorded(tmp_path, rt_ref):
    contours = [("CLOSED_PLANAR", _square(0.0, 0.0, 10.0, _z(k))) for k in (1, 3, 5)]
    path = _write_rtstruct(tmp_path / "rs.dcm", [("coarse", contours)])
    out = read_rtstruct(path, rt_ref)
    assert any("no contour on 2 reference slice(s)" in n for n in out.image.provenance.assumptions)


def test_rtstruct_overlap(tmp_path, rt_ref):
    rois = [
        ("Body", [("CLOSED_PLANAR", _square(0.0, 0.0, 30.0, _z(2)))]),
        ("Tumour", [("CLOSED_PLANAR", _square(2.0, 2.0, 8.0, _z(2)))]),
    ]
    path = _write_rtstruct(tmp_path / "rs.dcm", rois)
    with pytest.raises(RegionError, match="'body' and 'tumour'"):
        read_rtstruct(path, rt_ref)
    out = read_rtstruct(path, rt_ref, overlap="last")
    alone = read_rtstruct(path, rt_ref, regions=["tumour"])
    tumour = alone.image.data.astype(bool)
    assert tumour.any()
    assert np.all(out.image.data[tumour] == 2)
    assert np.all(out.image.data[~tumour & (out.image.data > 0)] == 1)


def test_rtstruct_duplicate_names_refused(tmp_path, rt_ref):
    rois = [
        ("Liver", [("CLOSED_PLANAR", _square(-8.0, 0.0, 6.0, _z(2)))]),
        ("liver ", [("CLOSED_PLANAR", _square(8.0, 0.0, 6.0, _z(2)))]),
    ]
    path = _write_rtstruct(tmp_path / "rs.dcm", rois)
    with pytest.raises(RegionError, match="same normalised name"):
        read_rtstruct(path, rt_ref)


def test_rtstruct_frame_of_reference(tmp_path, rt_ref):
    box = [("CLOSED_PLANAR", _square(0.0, 0.0, 10.0, _z(2)))]
    path = _write_rtstruct(tmp_path / "rs.dcm", [("box", box)])
    with pytest.raises(GeometryError, match=r"ReferencedFrameOfReferenceUID \(3006,0024\)"):
        read_rtstruct(path, rt_ref, frame_of_reference_uid=OTHER_FOR)
    # ROIs in two frames of reference and a reference without one: ambiguous
    mixed = _write_rtstruct(
        tmp_path / "mixed.dcm",
        [("box", box), ("other", [("CLOSED_PLANAR", _square(5, 5, 4, _z(4)))], OTHER_FOR)],
    )
    with pytest.raises(GeometryError, match="several frames of reference"):
        read_rtstruct(mixed, rt_ref)
    out = read_rtstruct(mixed, rt_ref, frame_of_reference_uid=FOR_UID, regions=["box"])
    assert out.names == {1: "box"}


# ---------------------------------------------------------------- dispatch and NIfTI


def test_read_regions_dispatch(tmp_path, ct_folder, ct, rt_ref):
    rs = _write_rtstruct(tmp_path / "rs.dcm", _standard_rois())
    assert read_regions(rs, rt_ref, overlap=None).names == {1: "square_box", 2: "circle", 3: "ring"}
    with pytest.raises(TypeError):
        read_regions(rs, rt_ref, fraction_threshold=0.5)  # a SEG option
    ct_file = sorted(ct_folder.glob("CT_*.dcm"))[0]
    with pytest.raises(DicomReadError, match="not a Segmentation or an RT Structure Set"):
        read_regions(ct_file, ct)
    text = tmp_path / "regions.txt"
    text.write_text("liver 1\n")
    with pytest.raises(DicomReadError, match="not a region file"):
        read_regions(text, ct)
    with pytest.raises(DicomReadError, match="does not exist"):
        read_regions(tmp_path / "absent.dcm", ct)


def test_read_regions_nifti(tmp_path, ct):
    labels = _labels(ct)
    path = write_nifti(labels, tmp_path / "labels.nii.gz")
    out = read_regions(path, ct)
    np.testing.assert_array_equal(out.image.data, labels.image.data)
    assert out.names == labels.names
    moved = CT_AFFINE.copy()
    moved[:3, 3] += [0.0, 0.0, 2.5]
    other = Image(np.zeros(SHAPE, np.float32), moved, Quantity.HU)
    with pytest.raises(GeometryError, match=r"not on the reference grid.*resample_to"):
        read_regions(path, other)
