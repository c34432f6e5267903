"""Time-activity curves from images and labels."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest
from numpy.testing import assert_allclose

from theranet.errors import GeometryError, QuantityError, TimingError
from theranet.image import DecayCorrection, Image, Labels, Quantity, Timing
from theranet.kinetics.tac import tacs_from_images

LU177_HALF_LIFE_H = 6.647 * 24  # ICRP-107
INJ = datetime(2026, 4, 1, 9, 0)
AFF = np.diag([4.0, 4.0, 4.0, 1.0])  # 0.064 mL voxels


def _true_activity_mbq(t_h):
    # bi-exponential clearance of a region, effective half-lives 20 h and 80 h
    return 300 * math.exp(-math.log(2) * t_h / 20) + 500 * math.exp(-math.log(2) * t_h / 80)


def _labels():
    d = np.zeros((6, 6, 6), np.int16)
    d[1:3, 1:3, 1:3] = 1  # 8 voxels
    d[3:6, 3:6, 3:6] = 2  # 27 voxels
    return Labels.from_array(d, AFF, {1: "kidney", 2: "liver"})


def _image(t_h, state, duration_h=0.5, cf=8.0):
    """Region 'kidney' holds _true_activity_mbq at the instant the values represent."""
    lam = math.log(2) / LU177_HALF_LIFE_H
    acq = INJ + timedelta(hours=t_h)
    if state is DecayCorrection.NONE:
        # frame-average activity over [t, t+T]
        k1, k2 = math.log(2) / 20, math.log(2) / 80
        a = (
            300 * (math.exp(-k1 * t_h) - math.exp(-k1 * (t_h + duration_h))) / k1
            + 500 * (math.exp(-k2 * t_h) - math.exp(-k2 * (t_h + duration_h))) / k2
        ) / duration_h
    elif state is DecayCorrection.START:
        a = _true_activity_mbq(t_h)
    else:  # ADMIN: values decay-corrected back to the injection
        a = _true_activity_mbq(t_h) * math.exp(lam * t_h)
    data = np.zeros((6, 6, 6), np.float32)
    data[1:3, 1:3, 1:3] = a / (8 * 0.064)
    data[3:6, 3:6, 3:6] = 1.0
    return Image(
        data,
        AFF,
        Quantity.ACTIVITY_CONCENTRATION,
        nuclide="Lu-177",
        calibration_cps_per_mbq=cf,
        timing=Timing(
            acquisition_start=acq,
            frame_duration_h=duration_h,
            injection=INJ,
            administered_activity_mbq=7400.0,
            decay_correction=state,
        ),
    )


def test_states_give_the_activity_at_acquisition():
    imgs = [
        _image(96.0, DecayCorrection.ADMIN),
        _image(4.0, DecayCorrection.START),
        _image(24.0, DecayCorrection.NONE),
    ]
    tac = tacs_from_images(imgs, _labels())["kidney"]
    assert tac.volume_ml == pytest.approx(8 * 0.064)
    assert tac.times_h[0] == pytest.approx(4.0)
    assert tac.times_h[2] == pytest.approx(96.0)
    # NONE: time of average activity in the frame (DICOM C.8.9.4.1.5) is ~ mid-frame
    assert 24.0 < tac.times_h[1] < 24.25
    expected = [_true_activity_mbq(t) for t in tac.times_h]
    # float32 storage; the NONE point is referenced with the physical decay
    # constant while the region clears faster, a second-order effect over 0.5 h
    assert_allclose(tac.activity_mbq, expected, rtol=2e-4)


def test_counting_uncertainty_is_poisson():
    # N = A * CF * T counts; sd = A / sqrt(N)
    tac = tacs_from_images([_image(24.0, DecayCorrection.START, 0.5, 8.0)], _labels())["kidney"]
    a = _true_activity_mbq(24.0)
    assert tac.activity_sd_mbq[0] == pytest.approx(a / math.sqrt(a * 8.0 * 1800.0), rel=1e-4)


def test_unknown_calibration_noted():
    img = _image(24.0, DecayCorrection.START).replace(calibration_cps_per_mbq=None)
    tac = tacs_from_images([img], _labels())["kidney"]
    assert np.isnan(tac.activity_sd_mbq[0])
    assert tac.notes


def test_images_resampled_to_label_grid():
    # Labels on a 2 mm grid inside the uniform 1 MBq/mL block of the 4 mm image
    # (voxels 3..5 cover 10-22 mm): 4^3 fine voxels of 0.008 mL hold 0.512 MBq.
    fine = np.zeros((12, 12, 12), np.int16)
    fine[6:10, 6:10, 6:10] = 1
    labels = Labels.from_array(fine, np.diag([2.0, 2.0, 2.0, 1.0]) @ _shift(0.5), {1: "block"})
    tac = tacs_from_images([_image(24.0, DecayCorrection.START)], labels)["block"]
    assert tac.volume_ml == pytest.approx(64 * 0.008)
    assert tac.activity_mbq[0] == pytest.approx(0.512, rel=1e-6)


def _shift(d):
    m = np.eye(4)
    m[:3, 3] = d
    return m


def test_masks_and_errors():
    imgs = [_image(4.0, DecayCorrection.START), _image(24.0, DecayCorrection.START)]
    m = np.zeros((6, 6, 6), bool)
    m[1, 1, 1] = True
    out = tacs_from_images(imgs, masks={"lesion 1": m}, reference=imgs[0])
    assert out["lesion 1"].n_voxels == 1
    with pytest.raises(GeometryError):
        tacs_from_images(imgs, masks={"x": np.zeros((2, 2, 2), bool)}, reference=imgs[0])
    with pytest.raises(TimingError, match="same time"):
        tacs_from_images([imgs[0], imgs[0]], _labels())
    counts = imgs[0].replace(quantity=Quantity.COUNTS)
    with pytest.raises(QuantityError, match="calibrate"):
        tacs_from_images([counts], _labels())
    other = imgs[1].replace(
        timing=Timing(
            acquisition_start=INJ + timedelta(hours=50),
            injection=INJ + timedelta(days=56),
            decay_correction=DecayCorrection.START,
        )
    )
    with pytest.raises(TimingError):
        tacs_from_images([imgs[0], other], _labels())
