"""Tests of red-marrow dosimetry. S-values here are INVENTED round numbers for hand
arithmetic, not physics data."""

from __future__ import annotations

import pytest

from theranet.dosimetry.marrow import (
    BLOOD_DENSITY_G_PER_ML,
    ICRP89_RED_MARROW_MASS_G,
    blood_based_marrow_dose,
    image_based_marrow_dose,
    local_deposition_dose_gy,
    remainder_of_body_s,
    rmblr_from_hematocrit,
)
from theranet.dosimetry.organ import DosimetryInputError


def test_sgouros_check():
    # Sgouros 1993: Hct 0.47, RMECFF 0.19 -> 0.36
    assert rmblr_from_hematocrit(0.47) == pytest.approx(0.19 / 0.53)
    assert round(rmblr_from_hematocrit(0.47), 2) == 0.36


@pytest.mark.parametrize("hct", [0.0, 0.8, -0.1, 1.0, 47.0, float("nan")])
def test_hematocrit_out_of_range(hct):
    with pytest.raises(DosimetryInputError, match="hematocrit"):
        rmblr_from_hematocrit(hct)


def test_constants():
    assert BLOOD_DENSITY_G_PER_ML == 1.06
    assert ICRP89_RED_MARROW_MASS_G == {"male": 1170.0, "female": 900.0}


def test_blood_based_default_rmblr_hand_arithmetic():
    # 1.06 MBq h/mL -> 1 MBq h/g; x 1 x 1000 g = 1000 MBq h; x 1e-5 x 3.6 = 0.036 Gy
    d = blood_based_marrow_dose(1.06, marrow_mass_g=1000.0, s_rm_rm_mgy_per_mbq_s=1e-5)
    assert d.rmblr == 1.0
    assert d.tia_rm_mbq_h == pytest.approx(1000.0)
    assert d.dose_gy == pytest.approx(0.036)
    assert d.remainder_dose_gy == 0.0
    assert d.method == "blood-based"
    assert any("Forrer" in n for n in d.notes)


def test_blood_based_hematocrit():
    d = blood_based_marrow_dose(
        1.06, marrow_mass_g=1000.0, s_rm_rm_mgy_per_mbq_s=1e-5, hematocrit=0.47
    )
    assert d.rmblr == pytest.approx(0.19 / 0.53)
    assert d.dose_gy == pytest.approx(0.036 * 0.19 / 0.53)
    with pytest.raises(DosimetryInputError, match="not both"):
        blood_based_marrow_dose(
            1.0, marrow_mass_g=1.0, s_rm_rm_mgy_per_mbq_s=1.0, hematocrit=0.4, rmblr=1.0
        )


def test_blood_based_with_given_remainder_s_and_organs():
    d = blood_based_marrow_dose(
        1.06,
        marrow_mass_g=1000.0,
        s_rm_rm_mgy_per_mbq_s=1e-5,
        remainder_tia_mbq_h=10000.0,
        s_rm_rb_mgy_per_mbq_s=1e-7,
        organ_tia_mbq_h={"kidneys": 500.0},
        s_rm_organ_mgy_per_mbq_s={"kidneys": 2e-7},
    )
    assert d.self_dose_gy == pytest.approx(0.036)
    assert d.remainder_dose_gy == pytest.approx(10000 * 1e-7 * 3.6)
    assert d.organ_doses_gy["kidneys"] == pytest.approx(500 * 2e-7 * 3.6)
    assert d.dose_gy == pytest.approx(0.036 + 0.0036 + 0.00036)


def test_remainder_of_body_s_hand_arithmetic():
    # m_TB 70000, m_RM 1000, m_K 300 -> m_RB 68700
    s = remainder_of_body_s(2e-7, 70000.0, {"rm": 1e-5, "k": 3e-7}, {"rm": 1000.0, "k": 300.0})
    assert s == pytest.approx((2e-7 * 70000 - 1e-5 * 1000 - 3e-7 * 300) / 68700)
    with pytest.raises(DosimetryInputError, match="negative"):
        remainder_of_body_s(1e-9, 70000.0, {"rm": 1e-5}, {"rm": 1000.0})


def test_blood_based_remainder_correction():
    d = blood_based_marrow_dose(
        1.06,
        marrow_mass_g=1000.0,
        s_rm_rm_mgy_per_mbq_s=1e-5,
        remainder_tia_mbq_h=10000.0,
        s_rm_tb_mgy_per_mbq_s=2e-7,
        phantom_total_body_mass_g=70000.0,
        phantom_marrow_mass_g=1000.0,
        organ_tia_mbq_h={"k": 500.0},
        s_rm_organ_mgy_per_mbq_s={"k": 3e-7},
        phantom_organ_masses_g={"k": 300.0},
    )
    s_rb = (2e-7 * 70000 - 1e-5 * 1000 - 3e-7 * 300) / 68700
    assert d.remainder_dose_gy == pytest.approx(10000 * s_rb * 3.6)
    with pytest.raises(DosimetryInputError, match="s_rm_rb"):
        blood_based_marrow_dose(
            1.0, marrow_mass_g=1.0, s_rm_rm_mgy_per_mbq_s=1.0, remainder_tia_mbq_h=1.0
        )


def test_blood_based_bad_inputs():
    with pytest.raises(DosimetryInputError, match="marrow_mass_g"):
        blood_based_marrow_dose(1.0, marrow_mass_g=0.0, s_rm_rm_mgy_per_mbq_s=1.0)
    with pytest.raises(DosimetryInputError, match="blood_tia"):
        blood_based_marrow_dose(-1.0, marrow_mass_g=1.0, s_rm_rm_mgy_per_mbq_s=1.0)


def test_local_deposition_lu177_constant():
    # clinical.md §6.1: 0.1479 MeV/decay -> 0.0853 Gy per GBq h per kg
    assert local_deposition_dose_gy(1000.0, 0.1479, 1000.0) == pytest.approx(0.0853, rel=1e-3)


def test_image_based_s_value_hand_arithmetic():
    # 39 MBq h / (0.78 * 0.05) = 1000 MBq h; x 1e-5 x 3.6 = 0.036 Gy
    d = image_based_marrow_dose(
        39.0,
        red_marrow_fraction_in_voi=0.05,
        recovery_coefficient=0.78,
        marrow_mass_g=1000.0,
        s_rm_rm_mgy_per_mbq_s=1e-5,
    )
    assert d.tia_rm_mbq_h == pytest.approx(1000.0)
    assert d.dose_gy == pytest.approx(0.036)
    assert d.method == "image-based"


def test_image_based_local_deposition():
    d = image_based_marrow_dose(
        39.0,
        red_marrow_fraction_in_voi=0.05,
        recovery_coefficient=0.78,
        marrow_mass_g=1000.0,
        nuclide="Lu-177",
    )
    # 1000 MBq h, ~0.1479 MeV/decay, 1 kg -> ~0.0853 Gy
    assert d.dose_gy == pytest.approx(0.0853, rel=5e-3)


def test_image_based_bad_inputs():
    kw = dict(recovery_coefficient=0.78, marrow_mass_g=1000.0, s_rm_rm_mgy_per_mbq_s=1e-5)
    with pytest.raises(DosimetryInputError, match="red_marrow_fraction"):
        image_based_marrow_dose(1.0, red_marrow_fraction_in_voi=0.0, **kw)
    with pytest.raises(DosimetryInputError, match="red_marrow_fraction"):
        image_based_marrow_dose(1.0, red_marrow_fraction_in_voi=1.5, **kw)
    with pytest.raises(DosimetryInputError, match="recovery"):
        image_based_marrow_dose(
            1.0,
            red_marrow_fraction_in_voi=0.1,
            recovery_coefficient=1.2,
            marrow_mass_g=1.0,
            s_rm_rm_mgy_per_mbq_s=1.0,
        )
    with pytest.raises(TypeError):
        image_based_marrow_dose(1.0, recovery_coefficient=0.78, marrow_mass_g=1.0)  # no fraction
    with pytest.raises(DosimetryInputError, match="nuclide"):
        image_based_marrow_dose(
            1.0, red_marrow_fraction_in_voi=0.1, recovery_coefficient=0.78, marrow_mass_g=1.0
        )


def test_remainder_correction_uses_the_phantom_marrow_s_value():
    """MIRD remainder correction subtracts the *phantom's* marrow (S and mass):
    with a patient marrow of 1400 g the phantom S(RM<-RM) must be given, and the
    result then equals the hand formula with the phantom values."""
    common = dict(
        remainder_tia_mbq_h=10000.0,
        s_rm_tb_mgy_per_mbq_s=2e-7,
        phantom_total_body_mass_g=70000.0,
        phantom_marrow_mass_g=1000.0,
    )
    with pytest.raises(DosimetryInputError, match="phantom_s_rm_rm"):
        blood_based_marrow_dose(1.06, marrow_mass_g=1400.0, s_rm_rm_mgy_per_mbq_s=1e-5 / 1.4,
                                **common)  # fmt: skip
    d = blood_based_marrow_dose(
        1.06,
        marrow_mass_g=1400.0,
        s_rm_rm_mgy_per_mbq_s=1e-5 / 1.4,
        phantom_s_rm_rm_mgy_per_mbq_s=1e-5,
        **common,
    )
    s_rb = (2e-7 * 70000 - 1e-5 * 1000) / 69000
    assert d.remainder_dose_gy == pytest.approx(10000 * s_rb * 3.6, rel=1e-12)
