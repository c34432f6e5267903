"""Tests of the image model: geometry, decay, quantity conversion, resampling."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy import integrate

from theranet.errors import (
    CalibrationError,
    GeometryError,
    ImageDataError,
    MissingFieldError,
    QuantityError,
    TimingError,
)
from theranet.image import (
    DecayCorrection,
    Image,
    Labels,
    PatientInfo,
    Quantity,
    Timing,
    affine_from_sitk,
    lbm_james128_kg,
    lbm_janmahasatian_kg,
)

# ICRP-107 half-lives (ICRP Publication 107, 2008), h.
LU177_HALF_LIFE_H = 6.647 * 24
GA68_HALF_LIFE_H = 67.71 / 60
T0 = datetime(2026, 3, 2, 10, 0, 0)


def _oblique_affine(spacing=(3.0, 2.0, 2.5), angle_deg=17.0, origin=(-120.0, -80.0, 35.0)):
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag(spacing)
    aff[:3, 3] = origin
    return aff


def _activity_image(data, affine=None, **timing):
    t = Timing(acquisition_start=T0, decay_correction=DecayCorrection.START, **timing)
    return Image(
        np.asarray(data, dtype=np.float32),
        np.diag([4.0, 4.0, 4.0, 1.0]) if affine is None else affine,
        Quantity.ACTIVITY_CONCENTRATION,
        modality="NM",
        nuclide="Lu-177",
        timing=t,
    )


class TestGeometry:
    def test_voxel_volume_and_spacing(self):
        img = Image(np.zeros((2, 3, 4)), _oblique_affine(), Quantity.HU)
        assert_allclose(img.spacing_mm, [3.0, 2.0, 2.5], rtol=1e-12)
        # 3 x 2 x 2.5 mm^3 = 15 mm^3 = 0.015 mL
        assert img.voxel_volume_ml == pytest.approx(0.015, rel=1e-12)

    def test_index_lps_round_trip(self):
        img = Image(np.zeros((2, 3, 4)), _oblique_affine(), Quantity.HU)
        idx = np.array([[0, 0, 0], [1.5, 2, 3], [7, -1, 2]])
        assert_allclose(img.lps_to_index(img.index_to_lps(idx)), idx, atol=1e-10)

    def test_sitk_round_trip_oblique(self):
        img = Image(
            np.arange(24, dtype=np.float32).reshape(2, 3, 4), _oblique_affine(), Quantity.HU
        )
        s = img.to_sitk()
        assert_allclose(affine_from_sitk(s), img.affine, atol=1e-9)
        # physical point of sitk index (x=c, y=r, z=k) equals our affine of (k, r, c)
        p = s.TransformIndexToPhysicalPoint((3, 2, 1))
        assert_allclose(p, img.index_to_lps([1, 2, 3]), atol=1e-9)
        assert_allclose(Image.from_sitk(s, Quantity.HU).data, img.data)

    def test_singular_affine_refused(self):
        with pytest.raises(GeometryError, match="singular"):
            Image(np.zeros((2, 2, 2)), np.diag([1.0, 0.0, 1.0, 1.0]), Quantity.HU)

    def test_not_3d_refused(self):
        with pytest.raises(ImageDataError, match="3-D"):
            Image(np.zeros((2, 2)), np.eye(4), Quantity.HU)

    def test_indexing_refused_with_hint(self):
        img = Image(np.zeros((2, 2, 2)), np.eye(4), Quantity.HU)
        with pytest.raises(TypeError, match="crop"):
            img[0]

    def test_crop_moves_origin(self):
        img = Image(np.arange(60.0).reshape(3, 4, 5), _oblique_affine(), Quantity.HU)
        sub = img.crop((1, 1, 2), (3, 4, 5))
        assert sub.shape == (2, 3, 3)
        assert_allclose(sub.index_to_lps([0, 0, 0]), img.index_to_lps([1, 1, 2]))
        assert sub.data[0, 0, 0] == img.data[1, 1, 2]

    def test_data_read_only_and_ops_return_new(self):
        img = _activity_image(np.ones((2, 2, 2)))
        with pytest.raises(ValueError):
            img.data[0, 0, 0] = 5
        out = img.decay_correct_to(T0 + timedelta(hours=24))
        assert out is not img
        assert img.data[0, 0, 0] == 1.0
        assert img.timing.decay_correction is DecayCorrection.START

    def test_check_finite(self):
        d = np.ones((2, 2, 2), np.float32)
        d[1, 0, 1] = np.nan
        with pytest.raises(ImageDataError, match=r"1 non-finite voxel.*\(1, 0, 1\)"):
            Image(d, np.eye(4), Quantity.ACTIVITY_CONCENTRATION).check_finite()


class TestDecay:
    def test_one_half_life(self):
        # Definition of the half-life; ICRP-107 T1/2(177Lu) = 6.647 d.
        img = _activity_image(np.full((2, 2, 2), 8.0))
        out = img.decay_correct_to(T0 + timedelta(hours=LU177_HALF_LIFE_H))
        assert_allclose(out.data, 4.0, rtol=2e-4)  # 0.2 % ICRP rounding of 6.647 d
        assert out.timing.decay_correction is DecayCorrection.REFERENCE
        assert out.timing.reference == T0 + timedelta(hours=LU177_HALF_LIFE_H)
        assert "decay-corrected" in out.provenance.steps[-1]

    def test_back_to_injection(self):
        inj = T0 - timedelta(hours=24)
        img = _activity_image(np.ones((1, 1, 1)), injection=inj)
        out = img.decay_correct_to(inj)
        assert out.data[0, 0, 0] == pytest.approx(2 ** (24 / LU177_HALF_LIFE_H), rel=2e-4)

    @settings(max_examples=30, deadline=None)
    @given(st.floats(min_value=-200, max_value=400), st.floats(min_value=-200, max_value=400))
    def test_composition(self, a_h, b_h):
        # decay(a + b) == decay(a).decay(b): exponential decay composes.
        img = _activity_image(np.full((1, 1, 1), 3.0))
        t1 = T0 + timedelta(hours=a_h)
        t2 = t1 + timedelta(hours=b_h)
        direct = img.decay_correct_to(t2).data[0, 0, 0]
        chained = img.decay_correct_to(t1).decay_correct_to(t2).data[0, 0, 0]
        assert chained == pytest.approx(direct, rel=1e-5)  # float32 storage

    def test_uncorrected_frame_average_time(self):
        # Values without decay correction are the frame average; they equal the
        # instantaneous activity at T_ave = (1/λ) ln(λT/(1-e^{-λT})) after the
        # start (DICOM PS3.3 C.8.9.4.1.5). Check against direct integration.
        dur_h = 0.5
        lam = math.log(2) / GA68_HALF_LIFE_H
        a0 = 100.0
        mean_over_frame = integrate.quad(lambda t: a0 * math.exp(-lam * t), 0, dur_h)[0] / dur_h
        img = Image(
            np.full((1, 1, 1), mean_over_frame, np.float32),
            np.eye(4),
            Quantity.ACTIVITY_CONCENTRATION,
            nuclide="Ga-68",
            timing=Timing(acquisition_start=T0, frame_duration_h=dur_h),
        )
        at_start = img.decay_correct_to(T0)
        assert at_start.data[0, 0, 0] == pytest.approx(a0, rel=2e-5)

    def test_uncorrected_without_duration_refused(self):
        img = Image(
            np.ones((1, 1, 1)),
            np.eye(4),
            Quantity.ACTIVITY_CONCENTRATION,
            nuclide="Lu-177",
            timing=Timing(acquisition_start=T0),
        )
        with pytest.raises(TimingError, match="frame_duration_h"):
            img.decay_correct_to(T0)
        out = img.decay_correct_to(T0, assume_instantaneous_frame=True)
        assert out.provenance.assumptions

    def test_no_nuclide_refused(self):
        img = Image(
            np.ones((1, 1, 1)),
            np.eye(4),
            Quantity.ACTIVITY_CONCENTRATION,
            timing=Timing(acquisition_start=T0, decay_correction=DecayCorrection.START),
        )
        with pytest.raises(MissingFieldError, match="nuclide"):
            img.decay_correct_to(T0)

    def test_dose_does_not_decay(self):
        img = Image(np.ones((1, 1, 1)), np.eye(4), Quantity.DOSE)
        with pytest.raises(QuantityError):
            img.decay_correct_to(T0)

    def test_naive_aware_mix_refused(self):
        from datetime import UTC

        img = _activity_image(np.ones((1, 1, 1)))
        with pytest.raises(TimingError, match="timezone"):
            img.decay_correct_to(datetime(2026, 3, 3, tzinfo=UTC))


class TestQuantity:
    def test_counts_to_concentration(self):
        # C = N / (T * CF * V): 36000 counts in 0.25 h at 10 cps/MBq in 4x4x4 mm
        # (0.064 mL) -> 36000 / 900 s / 10 / 0.064 = 62.5 MBq/mL.
        img = Image(
            np.full((1, 1, 1), 36000.0),
            np.diag([4.0, 4.0, 4.0, 1.0]),
            Quantity.COUNTS,
            timing=Timing(acquisition_start=T0, frame_duration_h=0.25),
        )
        out = img.to_activity_concentration(10.0)
        assert out.quantity is Quantity.ACTIVITY_CONCENTRATION
        assert out.unit == "MBq/mL"
        assert out.data[0, 0, 0] == pytest.approx(62.5, rel=1e-6)
        assert out.calibration_cps_per_mbq == 10.0

    @pytest.mark.parametrize("cf", [-5.0, 0.0, float("nan"), float("inf"), None])
    def test_bad_calibration(self, cf):
        img = Image(np.ones((1, 1, 1)), np.eye(4), Quantity.COUNT_RATE)
        with pytest.raises(CalibrationError, match="calibration_cps_per_mbq") as exc:
            img.to_activity_concentration(cf)
        assert "Fix:" in str(exc.value)

    def test_counts_need_duration(self):
        img = Image(np.ones((1, 1, 1)), np.eye(4), Quantity.COUNTS)
        with pytest.raises(TimingError, match="frame_duration_h"):
            img.to_activity_concentration(5.0)

    def test_suvbw(self):
        # QIBA: SUVbw = C * W[g] / A_inj(decay-corrected to the same time).
        # 5 kBq/mL at 60 min after 370 MBq of 18F (T1/2 109.77 min), 70 kg.
        inj = T0 - timedelta(minutes=60)
        img = Image(
            np.full((1, 1, 1), 5e-3, np.float32),
            np.eye(4),
            Quantity.ACTIVITY_CONCENTRATION,
            nuclide="F-18",
            patient=PatientInfo(weight_kg=70.0),
            timing=Timing(
                acquisition_start=T0,
                injection=inj,
                administered_activity_mbq=370.0,
                decay_correction=DecayCorrection.START,
            ),
        )
        expected = 5e-3 * 70000.0 / (370.0 * 2 ** (-60 / 109.77))
        suv = img.to_suv("bw")
        assert suv.quantity is Quantity.SUVBW
        assert suv.data[0, 0, 0] == pytest.approx(expected, rel=2e-4)

    def test_suv_refused_without_attenuation_correction(self):
        # QIBA FDG profile / clinical.md §4.1: SUV requires ATTN in Corrected Image.
        img = _activity_image(np.ones((1, 1, 1)), injection=T0, administered_activity_mbq=100.0)
        img = img.replace(patient=PatientInfo(weight_kg=70.0))
        with pytest.raises(QuantityError, match="ATTN"):
            img.replace(corrections=frozenset({"DECY", "SCAT"})).to_suv()
        ok = img.replace(corrections={"attn", "decy"}).to_suv()
        assert ok.corrections == {"ATTN", "DECY"}
        assert not any("corrections unknown" in a for a in ok.provenance.assumptions)
        unknown = img.to_suv()
        assert any("corrections unknown" in a for a in unknown.provenance.assumptions)

    def test_suv_missing_weight(self):
        img = _activity_image(np.ones((1, 1, 1)), injection=T0, administered_activity_mbq=100.0)
        with pytest.raises(MissingFieldError, match="weight_kg"):
            img.to_suv()

    def test_lbm_janmahasatian(self):
        # Janmahasatian 2005: male 9270 W / (6680 + 216 BMI); 70 kg, 175 cm,
        # BMI 22.857 -> 55.86 kg (hand arithmetic).
        assert lbm_janmahasatian_kg(70, 175, "M") == pytest.approx(55.857, abs=1e-3)
        assert lbm_janmahasatian_kg(70, 175, "F") == pytest.approx(
            9270 * 70 / (8780 + 244 * 70 / 1.75**2), rel=1e-12
        )

    def test_james128_validity_limit(self):
        # James-128 LBM peaks at BMI 42.97 kg/m^2 (male), clinical.md §4.1.
        h = 175.0
        w_ok = 42.9 * (h / 100) ** 2
        w_bad = 43.1 * (h / 100) ** 2
        assert lbm_james128_kg(w_ok, h, "M") > 0
        with pytest.raises(MissingFieldError, match="James-128"):
            lbm_james128_kg(w_bad, h, "M")


class TestResample:
    def _blob(self):
        rng = np.random.default_rng(3)
        z, y, x = np.indices((40, 40, 40))
        d = np.exp(-((z - 18.3) ** 2 + (y - 21.1) ** 2 + (x - 19.7) ** 2) / (2 * 5.0**2))
        return (d * 10 + rng.uniform(0, 0.1, d.shape)).astype(np.float32)

    def test_identity(self):
        img = _activity_image(self._blob(), affine=_oblique_affine((2.0, 2.0, 2.0)))
        out = img.resample_to(img)
        assert_allclose(out.data, img.data, rtol=1e-6)

    def test_activity_conserved_downsampling(self):
        # Total activity = sum(C) * V_voxel must be preserved (within 1 %) when
        # resampling a 2 mm image onto a shifted, rotated 4.42 mm grid covering it.
        src = _activity_image(self._blob(), affine=_oblique_affine((2.0, 2.0, 2.0), 0.0))
        target_aff = _oblique_affine((4.42, 4.42, 4.42), 9.0, origin=(-140.0, -100.0, 20.0))
        target = Image(np.zeros((30, 30, 30)), target_aff, Quantity.HU)
        out = src.resample_to(target)
        total_src = float(src.data.sum()) * src.voxel_volume_ml
        total_out = float(out.data.sum()) * out.voxel_volume_ml
        assert total_out == pytest.approx(total_src, rel=0.01)
        assert out.same_grid(target)

    def test_counts_conserved(self):
        src = Image(self._blob(), np.diag([2.0, 2.0, 2.0, 1.0]), Quantity.COUNTS)
        target = Image(np.zeros((20, 20, 20)), np.diag([4.0, 4.0, 4.0, 1.0]), Quantity.HU)
        target = target.replace(
            affine=target.affine
            @ np.array([[1, 0, 0, 0.25], [0, 1, 0, 0.25], [0, 0, 1, 0.25], [0, 0, 0, 1]])
        )
        out = src.resample_to(target)
        assert float(out.data.sum()) == pytest.approx(float(src.data.sum()), rel=0.01)

    def test_labels_nearest(self):
        d = np.zeros((10, 10, 10), np.int16)
        d[2:6, 3:8, 1:4] = 3
        d[6:9, 1:3, 5:9] = 7
        labels = Labels.from_array(d, np.diag([2.0, 2.0, 2.0, 1.0]), {3: "liver", 7: "kidney"})
        target = Image(np.zeros((7, 7, 7)), np.diag([3.0, 3.0, 3.0, 1.0]), Quantity.HU)
        out = labels.resample_to(target)
        assert set(np.unique(out.image.data)) <= {0, 3, 7}
        assert out.image.data.dtype == np.int16
        assert out.present().keys() == {"liver", "kidney"}

    def test_labels_refuse_linear(self):
        img = Image(np.zeros((2, 2, 2), np.int32), np.eye(4), Quantity.LABEL)
        with pytest.raises(QuantityError):
            img.resample_to(img, method="linear")


class TestLabels:
    def test_mask_and_errors(self):
        d = np.zeros((3, 3, 3), np.uint8)
        d[1, 1, 1] = 2
        lab = Labels.from_array(d, np.eye(4), {2: "tumour"})
        assert lab.mask("tumour").sum() == 1
        with pytest.raises(KeyError, match="known regions"):
            lab.mask("liver")
        with pytest.raises(ImageDataError):
            Labels(Image(d.astype(np.float32), np.eye(4), Quantity.LABEL), {2: "x"})
        with pytest.raises(ValueError, match="background"):
            Labels.from_array(d, np.eye(4), {0: "bg"})


@pytest.mark.parametrize("method", ["conserve", "linear", "nearest"])
def test_separable_path_equals_general_path(method):
    # The axis-aligned fast path must give the same sums as the general one.
    from theranet.image import _resample_general, _resample_separable

    rng = np.random.default_rng(5)
    src = rng.random((9, 11, 13))
    m = np.eye(4)
    m[:3, :3] = np.diag([0.37, -1.9, 2.6])  # zoom, flip
    m[:3, 3] = [0.2, 17.3, -3.1]
    shape = (21, 8, 6)
    offsets = [np.array([-0.25, 0.25]), np.array([0.0]), np.array([-1 / 3, 0.0, 1 / 3])]
    if method != "conserve":
        offsets = [np.array([0.0])] * 3
    order = 0 if method == "nearest" else 1
    fast = _resample_separable(src, m, shape, offsets, order)
    slow = _resample_general(src, m, shape, offsets, order, 0.0, False)
    assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)
