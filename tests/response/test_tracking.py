"""Lesion tracking over studies (theranet.response.tracking) on synthetic label maps.

Lesions are digitised spheres and ellipsoids placed in LPS mm; the expected
correspondences follow from their placement. The booking rules tested in
``Matching.baseline_diameters_mm`` are RECIST 1.1's (Eisenhauer et al. 2009,
Eur J Cancer 45:228, and the RECIST 1.1 FAQ): fragments' longest diameters are
added; coalesced lesions book the merged diameter once (first id) and 0 mm on
the others; a disappeared lesion is 0 mm.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from theranet.errors import GeometryError
from theranet.image import Labels
from theranet.imaging.register import Registration
from theranet.response.measure import MeasurementError
from theranet.response.tracking import Match, Merge, Split, match_lesions

SHAPE = (20, 60, 60)  # (Z, Y, X)
SPACING_MM = 2.0


def _affine(spacing=SPACING_MM, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] = 0.0
    a[2, 0] = a[1, 1] = a[0, 2] = spacing
    a[:3, 3] = origin
    return a


def _lps(shape, affine) -> np.ndarray:
    idx = np.indices(shape, dtype=np.float64).reshape(3, -1).T
    return (idx @ affine[:3, :3].T + affine[:3, 3]).reshape((*shape, 3))


def _labels(lesions, shape=SHAPE, affine=None) -> Labels:
    """``lesions``: {value: (centre_mm, semi_axes_mm)}; later ones overwrite."""
    affine = _affine() if affine is None else affine
    p = _lps(shape, affine)
    data = np.zeros(shape, np.int16)
    for value, (centre, axes) in lesions.items():
        q = (p - np.asarray(centre)) / np.asarray(axes, dtype=np.float64)
        data[(q**2).sum(axis=-1) <= 1.0] = value
    return Labels.from_array(data, affine, {v: f"lesion {v}" for v in lesions})


def _translation(d_mm) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = d_mm
    return m


BASELINE = {
    1: ((30.0, 30.0, 20.0), (8.0, 8.0, 8.0)),
    2: ((80.0, 40.0, 20.0), (6.0, 6.0, 6.0)),
    3: ((40.0, 90.0, 20.0), (5.0, 5.0, 5.0)),
}


def test_shifted_lesions_matched_new_and_disappeared_flagged():
    baseline = _labels(BASELINE)
    follow_up = _labels(
        {
            10: ((33.0, 29.0, 21.0), (8.0, 8.0, 8.0)),  # lesion 1, moved 3.3 mm
            20: ((81.0, 40.0, 20.0), (4.0, 4.0, 4.0)),  # lesion 2, shrunk
            40: ((90.0, 95.0, 20.0), (5.0, 5.0, 5.0)),  # new, 50 mm from any lesion
        }
    )  # lesion 3 is gone
    m = match_lesions(baseline, follow_up)
    assert [(x.baseline, x.follow_up, x.by) for x in m.matched] == [
        (1, 10, "overlap"),
        (2, 20, "overlap"),
    ]
    assert m.new == (40,) and m.disappeared == (3,)
    assert m.splits == () and m.merges == ()
    assert m.matched[0].distance_mm == pytest.approx(math.sqrt(9 + 1 + 1), abs=0.5)
    # stable ids: follow-up labels take the baseline ids; the new one the next free id
    assert m.lesion_ids() == {10: 1, 20: 2, 40: 4}
    assert m.baseline_diameters_mm({10: 16.0, 20: 8.0, 40: 10.0}) == {1: 16.0, 2: 8.0, 3: 0.0}


def test_transform_brings_a_large_shift_back():
    """The follow-up anatomy lies 24 mm (12 voxels) further along x (a patient shift):
    without the transform nothing overlaps and the centroids are 24 mm > 15 mm apart;
    with the baseline -> follow-up translation of +24 mm the lesions coincide (Dice 1)."""
    shift = np.array([24.0, 0.0, 0.0])
    baseline = _labels(BASELINE, shape=(20, 60, 80))
    moved = {v + 10: (tuple(np.add(c, shift)), a) for v, (c, a) in BASELINE.items()}
    follow_up = _labels(moved, shape=(20, 60, 80))

    plain = match_lesions(baseline, follow_up)
    assert plain.matched == () and plain.new == (11, 12, 13) and plain.disappeared == (1, 2, 3)

    sitk_tx = sitk.TranslationTransform(3, tuple(shift))
    registration = Registration(
        transform=sitk_tx,
        kind="rigid",
        translation_mm=tuple(shift),
        rotation_deg=(0.0, 0.0, 0.0),
        metric_name="none",
        metric_value=math.nan,
        metric_before=0.0,
        metric_after=1.0,
        stop_condition="test",
        iterations=0,
        mean_displacement_mm=24.0,
        max_displacement_mm=24.0,
    )
    for transform in (_translation(shift), sitk_tx, registration):
        m = match_lesions(baseline, follow_up, transform=transform)
        assert [(x.baseline, x.follow_up) for x in m.matched] == [(1, 11), (2, 12), (3, 13)]
        assert all(x.by == "overlap" and x.dice == pytest.approx(1.0) for x in m.matched)
        assert all(x.distance_mm == pytest.approx(0.0, abs=1e-6) for x in m.matched)
        assert m.new == () and m.disappeared == ()


def test_different_grids_share_the_frame_of_reference():
    baseline = _labels(BASELINE)
    coarse = _affine(3.0, origin=(1.0, -0.5, 0.5))
    follow_up = _labels({5: BASELINE[2], 6: BASELINE[1]}, shape=(14, 40, 40), affine=coarse)
    m = match_lesions(baseline, follow_up)
    assert [(x.baseline, x.follow_up) for x in m.matched] == [(1, 6), (2, 5)]
    # the same spheres digitised on 2 mm and 3 mm grids: Dice 0.83 and 0.73
    assert all(x.dice > 0.6 for x in m.matched)
    assert m.disappeared == (3,)


def test_distance_fallback_up_to_max_distance():
    """A lesion that shrank to 2 mm radius and moved 12 mm no longer overlaps; it is
    matched by centroid distance under 15 mm, and is new beyond ``max_distance_mm``."""
    baseline = _labels({1: ((30.0, 30.0, 20.0), (4.0, 4.0, 4.0))})
    follow_up = _labels({7: ((42.0, 30.0, 20.0), (2.0, 2.0, 2.0))})
    m = match_lesions(baseline, follow_up)
    assert m.matched == (Match(1, 7, 0.0, pytest.approx(12.0, abs=1e-9), "distance"),)
    far = match_lesions(baseline, follow_up, max_distance_mm=10.0)
    assert far.matched == () and far.new == (7,) and far.disappeared == (1,)


def test_split_books_the_sum_of_fragments():
    """A 40 mm lesion that fragments into two 12 mm pieces at its ends."""
    baseline = _labels({4: ((50.0, 50.0, 20.0), (20.0, 8.0, 8.0))})
    follow_up = _labels(
        {
            1: ((36.0, 50.0, 20.0), (6.0, 6.0, 6.0)),
            2: ((64.0, 50.0, 20.0), (6.0, 6.0, 6.0)),
        }
    )
    m = match_lesions(baseline, follow_up)
    assert m.matched == () and m.merges == () and m.new == () and m.disappeared == ()
    assert len(m.splits) == 1 and isinstance(m.splits[0], Split)
    assert (m.splits[0].baseline, m.splits[0].follow_ups) == (4, (1, 2))
    assert m.lesion_ids() == {1: 4, 2: 4}
    # RECIST 1.1: a fragmented lesion's diameter is the sum of the fragments' LDs
    assert m.baseline_diameters_mm({1: 12.0, 2: 11.5}) == {4: 23.5}


def test_merge_books_the_merged_diameter_on_the_first_id():
    """Two adjacent 12 mm lesions coalesce into one 40 x 16 mm lesion."""
    baseline = _labels(
        {
            5: ((64.0, 50.0, 20.0), (6.0, 6.0, 6.0)),
            3: ((36.0, 50.0, 20.0), (6.0, 6.0, 6.0)),
        }
    )
    follow_up = _labels({9: ((50.0, 50.0, 20.0), (20.0, 8.0, 8.0))})
    m = match_lesions(baseline, follow_up)
    assert m.merges == (Merge((3, 5), 9, m.merges[0].dice),)
    assert m.merges[0].first == 3
    assert m.matched == () and m.splits == () and m.new == () and m.disappeared == ()
    assert m.lesion_ids() == {9: 3}
    # RECIST 1.1: the coalesced lesion's LD counts once, on the first id; the other 0
    assert m.baseline_diameters_mm({9: 40.0}) == {3: 40.0, 5: 0.0}


def test_tangled_links_drop_the_weakest():
    """Follow-up 1 covers baseline 1 and grazes baseline 2, which follow-up 2 covers:
    the weak graze (1 <- 2) is dropped, leaving two one-to-one matches."""
    baseline = _labels(
        {1: ((40.0, 50.0, 20.0), (10.0, 10.0, 10.0)), 2: ((64.0, 50.0, 20.0), (8.0, 8.0, 8.0))}
    )
    follow_up = _labels(
        {1: ((43.0, 50.0, 20.0), (14.0, 12.0, 12.0)), 2: ((66.0, 50.0, 20.0), (7.0, 8.0, 8.0))}
    )
    m = match_lesions(baseline, follow_up, min_overlap=0.01)
    assert [(x.baseline, x.follow_up) for x in m.matched] == [(1, 1), (2, 2)]
    assert m.splits == () and m.merges == ()


def test_new_lesion_next_to_a_known_one_stays_new():
    """The distance fallback never makes a split: a lesion appearing 12 mm from a
    matched one is new."""
    baseline = _labels({1: ((30.0, 30.0, 20.0), (6.0, 6.0, 6.0))})
    follow_up = _labels(
        {1: ((30.0, 30.0, 20.0), (6.0, 6.0, 6.0)), 2: ((30.0, 42.0, 20.0), (3.0, 3.0, 3.0))}
    )
    m = match_lesions(baseline, follow_up)
    assert [(x.baseline, x.follow_up) for x in m.matched] == [(1, 1)]
    assert m.new == (2,) and m.lesion_ids() == {1: 1, 2: 2}


def test_refusals():
    lab = _labels(BASELINE)
    with pytest.raises(MeasurementError, match="min_overlap"):
        match_lesions(lab, lab, min_overlap=0.0)
    with pytest.raises(MeasurementError, match="max_distance_mm"):
        match_lesions(lab, lab, max_distance_mm=-1.0)
    with pytest.raises(GeometryError, match="transform"):
        match_lesions(lab, lab, transform=np.zeros((4, 4)))
    with pytest.raises(TypeError, match="transform"):
        match_lesions(lab, lab, transform=[1, 2, 3])
    m = match_lesions(lab, lab)
    with pytest.raises(KeyError, match="follow-up lesion 3"):
        m.baseline_diameters_mm({1: 10.0, 2: 10.0})
