"""Planar conjugate-view quantification (theranet.imaging.conjugate_view).

Every expected value is computed here in closed form from the geometry of the
test (parallel-hole projection, narrow-beam attenuation) or typed from a
published table, never taken from the module's own output.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from theranet.errors import (
    CalibrationError,
    GeometryError,
    ImageDataError,
    QuantityError,
    TimingError,
)
from theranet.image import Image, Quantity
from theranet.imaging.conjugate_view import (
    Background,
    ConjugateViewError,
    Overlap,
    background_thickness_mm,
    dew_primary,
    geometric_mean,
    hu_to_mu_per_mm,
    mu_map_from_ct,
    planar_sensitivity_cps_per_mbq,
    project_to_view,
    refuse_overlap,
    roi_activity_mbq,
    self_attenuation_factor,
    tew_primary,
    transmission_from_mu_map,
    whole_body_activity_from_reference_mbq,
    whole_body_activity_mbq,
)

S_CPS_PER_MBQ = 12.5  # planar sensitivity of the test camera
T_S = 600.0  # acquisition time per view
MU_PER_MM = 0.011  # ~ soft tissue at 364 keV (NIST mu/rho 0.110 cm^2/g x 1.0 g/cm^3)
SHAPE = (12, 10)


def _blob(centre=(5, 4)) -> np.ndarray:
    """A normalised 3 x 3 point-spread pattern (sums to 1), the same in both views."""
    k = np.zeros(SHAPE)
    r, c = centre
    k[r - 1 : r + 2, c - 1 : c + 2] = [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    return k / k.sum()


def _affine(spacing=(2.0, 2.0, 2.0), origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    a = np.diag([*spacing, 1.0])
    a[:3, 3] = origin
    return a


def _zyx_affine(dz: float, dy: float, dx: float) -> np.ndarray:
    """(Z, Y, X) array order, LPS: axis 0 -> z (head), 1 -> y (posterior), 2 -> x (left)."""
    return np.array(
        [[0.0, 0.0, dx, 0.0], [0.0, dy, 0.0, 0.0], [dz, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    )


# ---------------------------------------------------------------------------- geometric mean


def test_geometric_mean_flips_an_acquired_posterior():
    ant = np.array([[4.0, 1.0, 0.0]])
    post_acquired = np.array([[0.0, 4.0, 9.0]])  # mirrored: column 0 looks along ray 2
    gm = geometric_mean(ant, post_acquired, posterior_flipped=False)
    assert_allclose(gm, [[6.0, 2.0, 0.0]])
    gm2 = geometric_mean(ant, post_acquired[:, ::-1], posterior_flipped=True)
    assert_allclose(gm2, gm)


def test_geometric_mean_refuses_ambiguity_and_bad_counts():
    a = np.ones((2, 2))
    with pytest.raises(ConjugateViewError, match="posterior_flipped"):
        geometric_mean(a, a, posterior_flipped=None)  # type: ignore[arg-type]
    with pytest.raises(ImageDataError, match="shape"):
        geometric_mean(a, np.ones((2, 3)), posterior_flipped=True)
    with pytest.raises(ImageDataError, match=">= 0"):
        geometric_mean(a, -a, posterior_flipped=True)
    with pytest.raises(ImageDataError, match="finite"):
        geometric_mean(a, a * np.nan, posterior_flipped=True)


# ---------------------------------------------------------------------------- scatter


def test_tew_with_a_flat_scatter_spectrum_gives_the_primary():
    """Flat scatter spectrum s (counts/keV): C_lower = s W_l, C_upper = s W_u, and
    the scatter in the peak window is s W_peak, which TEW recovers exactly (Ogawa 1991,
    clinical.md §4.4). Tolerance: rounding only."""
    rng = np.random.default_rng(3)
    primary = rng.uniform(100, 1000, SHAPE)
    s_per_kev = rng.uniform(0.5, 5.0, SHAPE)
    w_peak, w_low, w_up = 72.9, 6.0, 6.0  # 131I: 20 % window at 364.5 keV, 6 keV side windows
    res = tew_primary(
        primary + s_per_kev * w_peak,
        s_per_kev * w_low,
        s_per_kev * w_up,
        width_peak_kev=w_peak,
        width_lower_kev=w_low,
        width_upper_kev=w_up,
    )
    assert_allclose(res.primary, primary, rtol=1e-12)
    assert_allclose(res.scatter, s_per_kev * w_peak, rtol=1e-12)
    assert res.n_clipped == 0 and res.clipped_counts == 0.0


def test_tew_is_exact_for_a_linear_scatter_spectrum_and_without_upper_window():
    """Trapezoid rule: a scatter spectrum linear across the peak window has area
    W_peak (s_low + s_up) / 2. Without an upper window (99mTc) C_upper = 0."""
    s_low, s_up, w_peak = 4.0, 1.0, 28.0
    res = tew_primary(
        np.array([500.0 + w_peak * (s_low + s_up) / 2]),
        np.array([s_low * 3.0]),
        np.array([s_up * 3.0]),
        width_peak_kev=w_peak,
        width_lower_kev=3.0,
        width_upper_kev=3.0,
    )
    assert_allclose(res.primary, [500.0], rtol=1e-12)
    res0 = tew_primary(
        np.array([500.0 + w_peak * s_low / 2]),
        np.array([s_low * 3.0]),
        None,
        width_peak_kev=w_peak,
        width_lower_kev=3.0,
        width_upper_kev=None,
    )
    assert_allclose(res0.primary, [500.0], rtol=1e-12)


def test_tew_clips_negative_pixels_and_reports_them():
    res = tew_primary(
        np.array([10.0, 100.0]),
        np.array([5.0, 1.0]),
        np.array([5.0, 1.0]),
        width_peak_kev=20.0,
        width_lower_kev=2.0,
        width_upper_kev=2.0,
    )
    # scatter = (5/2 + 5/2) * 20/2 = 50 and (0.5 + 0.5) * 10 = 10
    assert_allclose(res.primary, [0.0, 90.0])
    assert res.n_clipped == 1
    assert res.clipped_counts == pytest.approx(40.0)


def test_tew_bad_input():
    a = np.ones(3)
    with pytest.raises(ConjugateViewError, match="width_lower_kev"):
        tew_primary(a, a, a, width_peak_kev=10, width_lower_kev=0, width_upper_kev=2)
    with pytest.raises(ConjugateViewError, match="together"):
        tew_primary(a, a, None, width_peak_kev=10, width_lower_kev=2, width_upper_kev=2)
    with pytest.raises(ImageDataError, match="shape"):
        tew_primary(a, np.ones(4), a, width_peak_kev=10, width_lower_kev=2, width_upper_kev=2)


def test_dew_with_known_k_gives_the_primary_and_clips():
    """C_peak = primary + k C_sw by construction (Jaszczak 1984); k = 0.5 (99mTc)."""
    rng = np.random.default_rng(5)
    primary = rng.uniform(50, 500, SHAPE)
    sw = rng.uniform(10, 100, SHAPE)
    res = dew_primary(primary + 0.5 * sw, sw, 0.5)
    assert_allclose(res.primary, primary, rtol=1e-12)
    clipped = dew_primary(np.array([1.0, 10.0]), np.array([10.0, 2.0]), 0.5)
    assert_allclose(clipped.primary, [0.0, 9.0])
    assert clipped.n_clipped == 1 and clipped.clipped_counts == pytest.approx(4.0)
    with pytest.raises(ConjugateViewError, match="k"):
        dew_primary(primary, sw, -0.1)


# ---------------------------------------------------------------------------- self-attenuation


def test_self_attenuation_factor_closed_form():
    """f = x / sinh(x), x = mu t / 2 (MIRD 16). x = 1: 1/sinh(1) = 0.8509181282;
    small x: 1 - x^2/6 (Taylor); thin source: 1."""
    assert self_attenuation_factor(0.01, 200.0) == pytest.approx(1 / math.sinh(1.0), rel=1e-12)
    assert self_attenuation_factor(1e-5, 100.0) == pytest.approx(1 - (5e-4) ** 2 / 6, rel=1e-12)
    assert self_attenuation_factor(0.02, 0.0) == 1.0
    big = self_attenuation_factor(1.0, 2000.0)  # x = 1000, no overflow
    assert big == pytest.approx(2000.0 * math.exp(-1000.0), rel=1e-9)
    arr = self_attenuation_factor(0.01, np.array([0.0, 200.0]))
    assert_allclose(arr, [1.0, 1 / math.sinh(1.0)], rtol=1e-12)
    with pytest.raises(ConjugateViewError):
        self_attenuation_factor(-0.01, 10.0)


def _point_views(activity_mbq, depth_mm, body_mm, mu=MU_PER_MM):
    """Narrow-beam counts of a point source at depth d in a slab of thickness L."""
    n = activity_mbq * S_CPS_PER_MBQ * T_S
    return n * math.exp(-mu * depth_mm) * _blob(), n * math.exp(
        -mu * (body_mm - depth_mm)
    ) * _blob()


@pytest.mark.parametrize("depth_mm", [5.0, 60.0, 110.0, 215.0])
def test_point_source_activity_does_not_depend_on_depth(depth_mm):
    """I_A I_P = (S t A)^2 e^{-mu L} whatever the depth d: the conjugate view returns
    A exactly (MIRD 16 eq. for a point source, f = 1). Tolerance: rounding."""
    body_mm = 220.0
    ant, post = _point_views(3.7, depth_mm, body_mm)
    res = roi_activity_mbq(
        ant,
        post,
        _blob() > 0,
        posterior_flipped=True,
        transmission=math.exp(-MU_PER_MM * body_mm),
        sensitivity_cps_per_mbq=S_CPS_PER_MBQ,
        acquisition_s=T_S,
    )
    assert res.activity_mbq == pytest.approx(3.7, rel=1e-12)
    assert res.self_attenuation == 1.0
    assert res.transmission == pytest.approx(math.exp(-MU_PER_MM * body_mm), rel=1e-12)
    # the same with the posterior as acquired (mirrored) and a transmission map
    tmap = np.full(SHAPE, math.exp(-MU_PER_MM * body_mm))
    res2 = roi_activity_mbq(
        ant,
        post[:, ::-1],
        _blob() > 0,
        posterior_flipped=False,
        transmission=tmap,
        sensitivity_cps_per_mbq=S_CPS_PER_MBQ,
        acquisition_s=T_S,
    )
    assert res2.activity_mbq == pytest.approx(3.7, rel=1e-12)


@pytest.mark.parametrize(("depth_mm", "thickness_mm"), [(10.0, 80.0), (40.0, 150.0)])
def test_uniform_slab_source_needs_the_sinh_factor(depth_mm, thickness_mm):
    """Slab source of thickness t from depth d in a body of thickness L:
    I_A = S t_acq A e^{-mu d} (1 - e^{-mu t}) / (mu t) and
    I_P = S t_acq A e^{-mu (L - d - t)} (1 - e^{-mu t}) / (mu t), so
    sqrt(I_A I_P / e^{-mu L}) = S t_acq A sinh(x)/x with x = mu t / 2: the factor
    f = x / sinh(x) of MIRD 16 gives A exactly; without it, A sinh(x)/x."""
    body_mm, a_mbq, mu = 240.0, 5.0, MU_PER_MM
    n = a_mbq * S_CPS_PER_MBQ * T_S * (1 - math.exp(-mu * thickness_mm)) / (mu * thickness_mm)
    ant = n * math.exp(-mu * depth_mm) * _blob()
    post = n * math.exp(-mu * (body_mm - depth_mm - thickness_mm)) * _blob()
    common = dict(
        posterior_flipped=True,
        transmission=math.exp(-mu * body_mm),
        sensitivity_cps_per_mbq=S_CPS_PER_MBQ,
        acquisition_s=T_S,
    )
    res = roi_activity_mbq(
        ant, post, _blob() > 0, source_thickness_mm=thickness_mm, mu_per_mm=mu, **common
    )
    assert res.activity_mbq == pytest.approx(a_mbq, rel=1e-12)
    x = mu * thickness_mm / 2
    assert res.self_attenuation == pytest.approx(x / math.sinh(x), rel=1e-12)
    thin = roi_activity_mbq(ant, post, _blob() > 0, **common)
    assert thin.activity_mbq == pytest.approx(a_mbq * math.sinh(x) / x, rel=1e-12)


def test_roi_pixels_get_their_own_ray_correction():
    """Two point sources on rays of different thickness, one ROI: the count-weighted
    correction makes the sum exact when each ray has its own transmission."""
    l1, l2 = 150.0, 260.0
    a1, a2 = 2.0, 3.0
    k1, k2 = _blob((2, 2)), _blob((8, 7))
    ant = (
        S_CPS_PER_MBQ
        * T_S
        * (a1 * math.exp(-MU_PER_MM * 20) * k1 + a2 * math.exp(-MU_PER_MM * 200) * k2)
    )
    post = (
        S_CPS_PER_MBQ
        * T_S
        * (a1 * math.exp(-MU_PER_MM * (l1 - 20)) * k1 + a2 * math.exp(-MU_PER_MM * (l2 - 200)) * k2)
    )
    tmap = np.where(k1 > 0, math.exp(-MU_PER_MM * l1), math.exp(-MU_PER_MM * l2))
    res = whole_body_activity_mbq(
        ant,
        post,
        posterior_flipped=True,
        transmission=tmap,
        sensitivity_cps_per_mbq=S_CPS_PER_MBQ,
        acquisition_s=T_S,
    )
    assert res.activity_mbq == pytest.approx(a1 + a2, rel=1e-12)
    # each source alone in its ROI
    for k, a in ((k1, a1), (k2, a2)):
        r = roi_activity_mbq(
            ant * (k > 0),
            post * (k > 0),
            k > 0,
            posterior_flipped=True,
            transmission=tmap,
            sensitivity_cps_per_mbq=S_CPS_PER_MBQ,
            acquisition_s=T_S,
        )
        assert r.activity_mbq == pytest.approx(a, rel=1e-12)


# ---------------------------------------------------------------------------- background


def test_thickness_fraction_background_is_exact_without_attenuation():
    """mu = 0: an organ of thickness t with concentration c_o inside a body of
    thickness T with background c_b gives per pixel counts S t_acq p (c_o t + c_b (T - t))
    (p: pixel area); the background ROI (no organ) gives S t_acq p c_b T. Subtracting
    b (1 - t/T) leaves the organ exactly (Kojima/Buijs form); 'conventional' takes
    away c_b t per pixel too much."""
    body, organ_t, c_o, c_b, px_area = 200.0, 80.0, 5e-4, 1e-4, 4.0  # mm, MBq/mm^3, mm^2
    organ = np.zeros(SHAPE, dtype=bool)
    organ[3:7, 3:6] = True
    bg_roi = np.zeros(SHAPE, dtype=bool)
    bg_roi[9:11, 1:9] = True
    k = S_CPS_PER_MBQ * T_S * px_area
    counts = np.where(organ, k * (c_o * organ_t + c_b * (body - organ_t)), k * c_b * body)
    thick = np.where(organ, organ_t, 0.0)
    truth = c_o * organ_t * px_area * organ.sum()
    common = dict(
        posterior_flipped=True,
        transmission=1.0,
        sensitivity_cps_per_mbq=S_CPS_PER_MBQ,
        acquisition_s=T_S,
        source_thickness_mm=thick,
        mu_per_mm=0.0,
    )
    res = roi_activity_mbq(
        counts, counts, organ, background=Background(bg_roi, body_thickness_mm=body), **common
    )
    assert res.activity_mbq == pytest.approx(truth, rel=1e-12)
    conv = roi_activity_mbq(
        counts, counts, organ, background=Background(bg_roi, method="conventional"), **common
    )
    assert conv.activity_mbq == pytest.approx(truth - c_b * organ_t * px_area * organ.sum())


def _slab_phantom():
    """(Z, Y, X) = (12, 110, 10) voxels of 2 mm: a 200 mm body (y 5..104) with an
    organ (y 30..79, 100 mm) in rows 3..6, columns 3..5."""
    dy = 2.0
    vol_shape = (SHAPE[0], 110, SHAPE[1])
    body = np.zeros(vol_shape, dtype=bool)
    body[:, 5:105, :] = True
    organ = np.zeros(vol_shape, dtype=bool)
    organ[3:7, 30:80, 3:6] = True
    return dy, body, organ


def test_background_thickness_matches_the_closed_form():
    """W_A = (1 - e^{-mu d1})/mu + e^{-mu (d1 + t)} (1 - e^{-mu d2})/mu for background
    in front (d1) and behind (d2) an organ of thickness t (all tissue of the same mu);
    midpoint-rule error (mu dy)^2/24 < 2e-5 here."""
    dy, body, organ = _slab_phantom()
    mu = np.where(body, MU_PER_MM, 0.0)
    aff = _zyx_affine(2.0, dy, 2.0)
    w_a, w_p = background_thickness_mm(mu, body & ~organ, aff, rows_toward="head")
    m = MU_PER_MM
    d1, t, d2 = 50.0, 100.0, 50.0
    front = (1 - math.exp(-m * d1)) / m
    behind = math.exp(-m * (d1 + t)) * (1 - math.exp(-m * d2)) / m
    assert_allclose(w_a[4, 4], front + behind, rtol=1e-4)
    assert_allclose(w_p[4, 4], front + behind, rtol=1e-4)  # symmetric here
    assert_allclose(w_a[0, 0], (1 - math.exp(-m * 200.0)) / m, rtol=1e-4)
    zero_mu = background_thickness_mm(np.zeros_like(mu), body & ~organ, aff, rows_toward="head")
    assert_allclose(zero_mu[0][4, 4], 100.0)
    assert_allclose(zero_mu[1][0, 0], 200.0)


def test_attenuated_thickness_background_recovers_the_organ():
    """Organ and background of uniform concentration in an attenuating slab, views in
    closed form (narrow-beam attenuation): the CT-based background removes the
    background exactly, the MIRD 16 equation with f then gives the organ activity.
    Tolerance 0.1 %: the templates' midpoint rule (see the previous test)."""
    dy, body, organ = _slab_phantom()
    m, c_o, c_b, px = MU_PER_MM, 4e-4, 1e-4, 4.0  # 1/mm, MBq/mm^3, MBq/mm^3, mm^2
    d1, t, d2, total = 50.0, 100.0, 50.0, 200.0
    k = S_CPS_PER_MBQ * T_S * px
    organ_px = organ.any(axis=1)
    # organ slab [d1, d1 + t]; background [0, d1] and [d1 + t, total] on organ rays
    organ_a = c_o * math.exp(-m * d1) * (1 - math.exp(-m * t)) / m
    organ_p = c_o * math.exp(-m * d2) * (1 - math.exp(-m * t)) / m
    bg_a = c_b * ((1 - math.exp(-m * d1)) + math.exp(-m * (d1 + t)) * (1 - math.exp(-m * d2))) / m
    bg_p = c_b * ((1 - math.exp(-m * d2)) + math.exp(-m * (d2 + t)) * (1 - math.exp(-m * d1))) / m
    bg_only = c_b * (1 - math.exp(-m * total)) / m
    ant = k * np.where(organ_px, organ_a + bg_a, bg_only)
    post = k * np.where(organ_px, organ_p + bg_p, bg_only)
    aff = _zyx_affine(2.0, dy, 2.0)
    mu = np.where(body, m, 0.0)
    w_a, w_p = background_thickness_mm(mu, body & ~organ, aff, rows_toward="head")
    bg_roi = np.zeros(SHAPE, dtype=bool)
    bg_roi[9:11, :] = True
    truth = c_o * t * px * organ_px.sum()
    res = roi_activity_mbq(
        ant,
        post,
        organ_px,
        posterior_flipped=True,
        transmission=math.exp(-m * total),
        sensitivity_cps_per_mbq=S_CPS_PER_MBQ,
        acquisition_s=T_S,
        background=Background(
            bg_roi,
            method="attenuated_thickness",
            anterior_thickness_mm=w_a,
            posterior_thickness_mm=w_p,
        ),
        source_thickness_mm=np.where(organ_px, t, 0.0),
        mu_per_mm=m,
    )
    assert res.activity_mbq == pytest.approx(truth, rel=1e-3)
    assert res.anterior_background_counts == pytest.approx(k * bg_a * organ_px.sum(), rel=1e-3)


def test_background_input_checks():
    organ = np.zeros(SHAPE, dtype=bool)
    organ[2:4, 2:4] = True
    counts = np.full(SHAPE, 100.0)
    common = dict(
        posterior_flipped=True,
        transmission=0.2,
        sensitivity_cps_per_mbq=S_CPS_PER_MBQ,
        acquisition_s=T_S,
    )
    with pytest.raises(ConjugateViewError, match="body_thickness_mm"):
        Background(organ)
    with pytest.raises(ConjugateViewError, match="unknown"):
        Background(organ, method="fancy")
    with pytest.raises(ConjugateViewError, match="overlaps the organ"):
        roi_activity_mbq(
            counts, counts, organ, background=Background(organ, method="conventional"), **common
        )
    with pytest.raises(ConjugateViewError, match="source_thickness_mm"):
        roi_activity_mbq(
            counts, counts, organ, background=Background(~organ, body_thickness_mm=200), **common
        )
    # background as hot as the organ: nothing left
    with pytest.raises(ConjugateViewError, match="net counts"):
        roi_activity_mbq(
            counts, counts, organ, background=Background(~organ, method="conventional"), **common
        )


# ---------------------------------------------------------------------------- overlap


def test_overlap_of_another_organ_is_subtracted_from_its_reference_roi():
    """Organ A (columns 1..4) overlapped in columns 3..4 by organ B (columns 3..7), B
    uniform at 50 counts/pixel in both views, same attenuation: subtracting B's
    counts per pixel measured over columns 5..7 leaves A exactly."""
    a_roi = np.zeros(SHAPE, dtype=bool)
    a_roi[2:6, 1:5] = True
    b = np.zeros(SHAPE, dtype=bool)
    b[2:6, 3:8] = True
    tr = 0.25
    a_per_px = 200.0
    ant = np.where(a_roi, a_per_px, 0.0) + np.where(b, 50.0, 0.0)
    post = ant.copy()
    truth = a_per_px * a_roi.sum() / math.sqrt(tr) / S_CPS_PER_MBQ / T_S
    ref = b & ~a_roi
    common = dict(
        posterior_flipped=True,
        transmission=tr,
        sensitivity_cps_per_mbq=S_CPS_PER_MBQ,
        acquisition_s=T_S,
    )
    res = roi_activity_mbq(ant, post, a_roi, overlaps=[Overlap("B", b, ref)], **common)
    assert res.activity_mbq == pytest.approx(truth, rel=1e-12)
    assert res.anterior_overlap_counts == pytest.approx(50.0 * (a_roi & b).sum())
    with pytest.raises(ConjugateViewError, match="overlap"):
        refuse_overlap({"A": a_roi, "B": b})
    refuse_overlap({"A": a_roi, "B": ref})  # disjoint: no error
    with pytest.raises(ConjugateViewError, match="lies on the organ"):
        roi_activity_mbq(ant, post, a_roi, overlaps=[Overlap("B", b, b)], **common)


# ---------------------------------------------------------------------------- typed errors


def test_roi_activity_typed_errors():
    v = np.full(SHAPE, 10.0)
    roi = np.ones(SHAPE, dtype=bool)
    ok = dict(
        posterior_flipped=True,
        transmission=0.3,
        sensitivity_cps_per_mbq=S_CPS_PER_MBQ,
        acquisition_s=T_S,
    )
    with pytest.raises(ImageDataError, match="shape"):
        roi_activity_mbq(v, np.ones((3, 3)), roi, **ok)
    with pytest.raises(ImageDataError, match="roi_mask"):
        roi_activity_mbq(v, v, np.ones((3, 3), bool), **ok)
    with pytest.raises(CalibrationError, match="sensitivity_cps_per_mbq"):
        roi_activity_mbq(v, v, roi, **{**ok, "sensitivity_cps_per_mbq": 0.0})
    with pytest.raises(TimingError, match="acquisition_s"):
        roi_activity_mbq(v, v, roi, **{**ok, "acquisition_s": -1.0})
    for bad in (0.0, 1.2, float("nan"), np.full(SHAPE, 1.01)):
        with pytest.raises(ConjugateViewError, match="transmission"):
            roi_activity_mbq(v, v, roi, **{**ok, "transmission": bad})
    with pytest.raises(ImageDataError, match="transmission"):
        roi_activity_mbq(v, v, roi, **{**ok, "transmission": np.full((2, 2), 0.5)})
    with pytest.raises(ConjugateViewError, match="empty"):
        roi_activity_mbq(v, v, np.zeros(SHAPE, bool), **ok)
    with pytest.raises(ConjugateViewError, match="go together"):
        roi_activity_mbq(v, v, roi, source_thickness_mm=50.0, **ok)
    with pytest.raises(ImageDataError, match=">= 0"):
        roi_activity_mbq(v - 20, v, roi, **ok)


# ---------------------------------------------------------------------------- transmission


def test_transmission_of_a_uniform_mu_map_is_exp_minus_mu_l():
    """exp(-mu L) for a box of water-like tissue of L = 24 voxels x 2.5 mm = 60 mm,
    air (mu = 0) elsewhere."""
    mu = np.zeros((6, 40, 5))
    mu[:, 8:32, :] = MU_PER_MM
    aff = _zyx_affine(3.0, 2.5, 4.0)
    tr = transmission_from_mu_map(mu, aff, rows_toward="head")
    assert tr.shape == (6, 5)
    assert_allclose(tr, math.exp(-MU_PER_MM * 60.0), rtol=1e-12)
    img = Image(mu.astype(np.float32), aff, Quantity.INTENSITY)
    assert_allclose(transmission_from_mu_map(img), math.exp(-MU_PER_MM * 60.0), rtol=1e-6)
    with pytest.raises(ConjugateViewError, match=">= 0"):
        transmission_from_mu_map(-mu, aff)


def test_projection_orientation_anterior_view():
    """Columns towards the patient's left (+x LPS), rows towards the feet by default,
    whatever the array order and the signs of the axes."""
    vol = np.zeros((4, 5, 6))  # (Z, Y, X)
    vol[3, 2, 5] = 1.0  # most superior slice, most left column
    aff = _zyx_affine(2.0, 2.0, 2.0)
    feet = project_to_view(vol, aff, reduce="sum")
    assert feet.shape == (4, 6)
    assert feet[0, 5] == 1.0  # head at row 0 when rows run towards the feet
    head = project_to_view(vol, aff, reduce="sum", rows_toward="head")
    assert head[3, 5] == 1.0
    # the same patient stored (X, Y, Z) with x running towards the right
    vol2 = np.transpose(vol, (2, 1, 0))[::-1]
    aff2 = np.array([[-2.0, 0, 0, 10.0], [0, 2.0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1.0]])
    assert_allclose(project_to_view(vol2, aff2, reduce="sum"), feet)
    length = project_to_view(vol != 0, aff, reduce="integral")
    assert length[0, 5] == pytest.approx(2.0)
    with pytest.raises(GeometryError, match="oblique"):
        c, s = math.cos(0.3), math.sin(0.3)
        oblique = np.array([[0, 0, 2 * c, 0], [0, 2.0, 0, 0], [2.0, 0, 2 * s, 0], [0, 0, 0, 1.0]])
        project_to_view(vol, oblique)
    with pytest.raises(GeometryError, match="affine"):
        project_to_view(vol)
    with pytest.raises(ConjugateViewError, match="rows_toward"):
        project_to_view(vol, aff, rows_toward="up")


# ---------------------------------------------------------------------------- HU -> mu

#: NIST mass attenuation coefficients of liquid water (coherent scattering included),
#: cm^2/g: XCOM / Hubbell & Seltzer, NISTIR 5632 (1995), Table 4 "Water, Liquid",
#: https://physics.nist.gov/PhysRefData/XrayMassCoef/ComTab/water.html
NIST_WATER_MU_RHO = {0.15: 0.1505, 0.20: 0.1370, 0.30: 0.1186, 0.40: 0.1061}


def _nist_water(energy_mev: float) -> float:
    """Log-log interpolation between the two bracketing NIST entries (NIST's own
    recommendation for these tables)."""
    es = sorted(NIST_WATER_MU_RHO)
    lo = max(e for e in es if e <= energy_mev)
    hi = min(e for e in es if e > energy_mev)
    s = math.log(NIST_WATER_MU_RHO[hi] / NIST_WATER_MU_RHO[lo]) / math.log(hi / lo)
    return NIST_WATER_MU_RHO[lo] * (energy_mev / lo) ** s


@pytest.mark.parametrize(
    ("energy_mev", "expected_cm2_per_g"),
    # log-log interpolated NIST values: 0.1441 (171.3 keV), 0.1274 (245.4 keV), 0.1100
    # (364.5 keV); computed by _nist_water from the table entries above
    [(0.1713, 0.1441), (0.2454, 0.1274), (0.3645, 0.1100)],
)
def test_hu_zero_gives_the_nist_mu_of_water(energy_mev, expected_cm2_per_g):
    """0 HU (water) at the 111In (171.3, 245.4 keV) and 131I (364.5 keV) photopeaks:
    NIST mu/rho of water x 1.000 g/cm^3, within 2 %. The default Schneider 2000
    density curve gives 1.017 g/cm^3 at 0 HU (its soft-tissue fit), hence up to +1.8 %."""
    assert _nist_water(energy_mev) == pytest.approx(expected_cm2_per_g, abs=1e-4)
    expected_per_mm = expected_cm2_per_g * 1.0 / 10.0
    assert hu_to_mu_per_mm(0.0, energy_mev) == pytest.approx(expected_per_mm, rel=0.02)


def test_mu_map_from_ct_air_water_bone_and_checks():
    """Air (-1000 HU) is ~0 next to tissue; 1000 HU is denser than water; the map keeps
    the CT grid. NIST air mu/rho at 364.5 keV ~0.0996 cm^2/g x 0.00121 g/cm^3."""
    hu = np.array([-1000.0, 0.0, 1000.0]).reshape(3, 1, 1) * np.ones((3, 2, 2))
    ct = Image(hu.astype(np.float32), _affine(), Quantity.HU, modality="CT")
    mu = mu_map_from_ct(ct, 0.3645)
    assert mu.shape == ct.shape and mu.dtype == np.float32
    assert mu[0, 0, 0] == pytest.approx(0.0996 * 0.00121 / 10, rel=0.03)
    assert mu[2, 0, 0] > 1.3 * mu[1, 0, 0]
    with pytest.raises(QuantityError):
        mu_map_from_ct(ct.replace(quantity=Quantity.ACTIVITY_CONCENTRATION), 0.3645)
    with pytest.raises(QuantityError):
        mu_map_from_ct(hu, 0.3645)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- whole body


def test_whole_body_uniform_along_ray_is_exact_for_a_uniform_body():
    """A uniform source filling a slab of thickness L: each view holds
    S t A (1 - e^{-mu L}) / (mu L), and sqrt(I_A I_P / T) x f with x = -ln T / 2
    returns A (the slab result with t = L)."""
    lengths = np.linspace(120.0, 300.0, SHAPE[0] * SHAPE[1]).reshape(SHAPE)
    a_px = np.full(SHAPE, 0.01)  # MBq per pixel column
    per_view = (
        S_CPS_PER_MBQ * T_S * a_px * (1 - np.exp(-MU_PER_MM * lengths)) / (MU_PER_MM * lengths)
    )
    res = whole_body_activity_mbq(
        per_view,
        per_view,
        posterior_flipped=True,
        transmission=np.exp(-MU_PER_MM * lengths),
        sensitivity_cps_per_mbq=S_CPS_PER_MBQ,
        acquisition_s=T_S,
        self_attenuation="uniform_along_ray",
    )
    assert res.activity_mbq == pytest.approx(a_px.sum(), rel=1e-12)
    with pytest.raises(ConjugateViewError, match="self_attenuation"):
        whole_body_activity_mbq(
            per_view,
            per_view,
            posterior_flipped=True,
            transmission=0.5,
            sensitivity_cps_per_mbq=S_CPS_PER_MBQ,
            acquisition_s=T_S,
            self_attenuation="sinh",
        )


def test_whole_body_retention_relative_to_first_scan():
    """Counts scale with the activity in the body (same geometry): 40 % retained,
    second scan twice as long."""
    rng = np.random.default_rng(1)
    a0 = rng.uniform(0, 50, SHAPE)
    p0 = rng.uniform(0, 50, SHAPE)
    res = whole_body_activity_from_reference_mbq(
        0.4 * 2 * a0,
        0.4 * 2 * p0,
        acquisition_s=1200.0,
        reference_anterior=a0,
        reference_posterior=p0,
        reference_acquisition_s=600.0,
        reference_activity_mbq=220.0,
    )
    assert res.retention_fraction == pytest.approx(0.4, rel=1e-12)
    assert res.activity_mbq == pytest.approx(88.0, rel=1e-12)
    with pytest.raises(TimingError):
        whole_body_activity_from_reference_mbq(
            a0, p0, acquisition_s=0, reference_anterior=a0, reference_posterior=p0,
            reference_acquisition_s=600.0, reference_activity_mbq=220.0,
        )  # fmt: skip


def test_planar_sensitivity():
    """C = (N - N_bg) / t / A (clinical.md §4.5): 1.2e6 counts in 100 s from 500 MBq."""
    img = np.zeros((4, 4))
    img[1, 1] = 1.2e6 + 300.0
    c = planar_sensitivity_cps_per_mbq(
        img, acquisition_s=100.0, source_activity_mbq=500.0, background_counts=300.0
    )
    assert c == pytest.approx(24.0, rel=1e-12)
    with pytest.raises(CalibrationError):
        planar_sensitivity_cps_per_mbq(img, acquisition_s=100.0, source_activity_mbq=0.0)
    with pytest.raises(TimingError):
        planar_sensitivity_cps_per_mbq(img, acquisition_s=0.0, source_activity_mbq=1.0)
