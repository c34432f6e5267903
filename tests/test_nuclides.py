"""Tests of theranet.nuclides: names, decay and ICRP-107 emission data."""

from __future__ import annotations

import math
import pickle
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from theranet.errors import NuclideError, TimingError
from theranet.nuclides import (
    EMISSION_CLASSES,
    EMISSION_GROUPS,
    BetaSpectrum,
    Emissions,
    Nuclide,
    parse_nuclide,
)

REQUIRED = [
    "Lu-177",
    "Y-90",
    "I-131",
    "I-123",
    "In-111",
    "Ga-68",
    "Cu-64",
    "F-18",
    "C-11",
    "Tc-99m",
    "Y-86",
]

T0 = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)


# ------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "spelling", ["Lu-177", "177Lu", "Lu177", "lu177", "LU-177", "177-Lu", " Lu-177 ", "lu_177"]
)
def test_lu177_spellings_are_canonical(spelling):
    assert parse_nuclide(spelling) == "Lu-177"


@pytest.mark.parametrize("spelling", ["Tc-99m", "99mTc", "Tc99m", "tc-99M", "99m-Tc", "TC99M"])
def test_metastable_spellings_are_canonical(spelling):
    assert parse_nuclide(spelling) == "Tc-99m"


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("90Y", "Y-90"),
        ("131I", "I-131"),
        ("111In", "In-111"),
        ("68Ga", "Ga-68"),
        ("64Cu", "Cu-64"),
        ("18F", "F-18"),
        ("11C", "C-11"),
        ("86Y", "Y-86"),
        ("123I", "I-123"),
        ("177mLu", "Lu-177m"),
        ("93NB", "Nb-93"),  # not the nonexistent 'B-93n'
    ],
)
def test_mass_first_spellings(spelling, canonical):
    assert parse_nuclide(spelling) == canonical


def test_parse_accepts_a_nuclide():
    assert parse_nuclide(Nuclide("177Lu")) == "Lu-177"


@pytest.mark.parametrize(
    "bad", ["", "Lu", "177", "Xx-177", "Lu-999", "Lu-177z", "Lu--177", "Tc-99mm", "L-u177"]
)
def test_bad_names_raise_nuclide_error(bad):
    with pytest.raises(NuclideError) as info:
        parse_nuclide(bad)
    assert info.value.field == "nuclide"
    assert repr(bad) in str(info.value)
    assert "177Lu" in str(info.value)  # lists the accepted spellings
    assert "99mTc" in str(info.value)


def test_bad_name_error_names_the_caller_field():
    with pytest.raises(NuclideError) as info:
        parse_nuclide("Lu-999", field="--nuclide")
    assert info.value.field == "--nuclide"
    assert "'Lu-999'" in str(info.value)


@pytest.mark.parametrize("bad", [177, None, 1.5])
def test_non_string_names_raise_nuclide_error(bad):
    with pytest.raises(NuclideError):
        parse_nuclide(bad)


def test_nuclide_constructor_raises_for_bad_name():
    with pytest.raises(NuclideError) as info:
        Nuclide("Zz-12")
    assert info.value.field == "name"
    assert "Zz-12" in str(info.value)


def test_nuclide_identity_and_immutability():
    lu = Nuclide("177Lu")
    assert lu == Nuclide("Lu-177")
    assert hash(lu) == hash(Nuclide("LU177"))
    assert str(lu) == "Lu-177"
    assert (lu.symbol, lu.mass_number, lu.atomic_number, lu.state) == ("Lu", 177, 71, "")
    assert Nuclide("99mTc").state == "m"
    assert pickle.loads(pickle.dumps(lu)) == lu
    with pytest.raises(AttributeError):
        lu.name = "Y-90"


@pytest.mark.parametrize("name", REQUIRED)
def test_required_nuclides_have_decay_and_emission_data(name):
    nuc = Nuclide(name)
    assert nuc.name == name
    assert 0.0 < nuc.half_life_h < math.inf
    assert nuc.has_emission_data
    assert nuc.electron_energy_mev > 0.0
    assert nuc.photon_energy_mev > 0.0


# ------------------------------------------------------------------ half-lives

# Source: ICRP Publication 107 (via radioactivedecay's icrp107_ame2020_nubase2020
# data set, as quoted in the project reference). Tolerance 0.1 % (177Lu: 0.2 %).


@pytest.mark.parametrize(
    ("name", "half_life_h", "rel"),
    [
        ("Lu-177", 6.647 * 24.0, 2e-3),
        ("In-111", 2.8047 * 24.0, 1e-3),
        ("I-131", 8.0207 * 24.0, 1e-3),
        ("Ga-68", 67.71 / 60.0, 1e-3),
        ("F-18", 109.77 / 60.0, 1e-3),
        ("Y-90", 64.10, 1e-3),
    ],
)
def test_half_lives(name, half_life_h, rel):
    nuc = Nuclide(name)
    assert nuc.half_life_h == pytest.approx(half_life_h, rel=rel)
    assert nuc.decay_constant_per_h == pytest.approx(math.log(2) / half_life_h, rel=rel)


# ------------------------------------------------------------------ decay factors


def test_decay_factor_after_one_half_life_is_one_half():
    # Definition of the half-life; tolerance 1e-12 (float rounding only).
    lu = Nuclide("Lu-177")
    t1 = T0 + timedelta(hours=lu.half_life_h)
    assert lu.decay_factor(T0, t1) == pytest.approx(0.5, abs=1e-12)
    assert lu.decay_factor_h(lu.half_life_h) == pytest.approx(0.5, abs=1e-12)
    assert lu.activity_at(7400.0, T0, t1) == pytest.approx(3700.0, rel=1e-12)


def test_decay_factor_backward_in_time_exceeds_one():
    # Two half-lives back: exactly 4 (definition; tolerance 1e-12).
    ga = Nuclide("Ga-68")
    earlier = T0 - timedelta(hours=2 * ga.half_life_h)
    assert ga.decay_factor(T0, earlier) > 1.0
    assert ga.decay_factor(T0, earlier) == pytest.approx(4.0, rel=1e-12)
    assert ga.decay_factor_h(-ga.half_life_h) == pytest.approx(2.0, rel=1e-12)


def test_decay_factor_same_instant_in_different_timezones():
    lu = Nuclide("Lu-177")
    same_instant = T0.astimezone(timezone(timedelta(hours=2)))
    assert lu.decay_factor(T0, same_instant) == 1.0


def test_decay_factor_naive_datetimes_are_accepted():
    lu = Nuclide("Lu-177")
    t0 = datetime(2024, 3, 1, 9, 30)
    assert lu.decay_factor(t0, t0 + timedelta(hours=24)) == pytest.approx(
        lu.decay_factor_h(24.0), rel=1e-15
    )


def test_decay_factor_refuses_naive_aware_mix():
    lu = Nuclide("Lu-177")
    naive = datetime(2024, 3, 1, 12, 0)
    with pytest.raises(TimingError) as info:
        lu.decay_factor(T0, naive)
    assert "naive" in str(info.value)
    with pytest.raises(TimingError):
        lu.activity_at(100.0, naive, T0)


def test_decay_factor_refuses_non_datetimes():
    lu = Nuclide("Lu-177")
    with pytest.raises(TimingError) as info:
        lu.decay_factor(T0.date(), T0)
    assert info.value.field == "from_datetime"


def test_decay_factor_h_arrays_and_non_finite():
    y = Nuclide("Y-90")
    t = np.array([0.0, 64.1, 128.2])
    np.testing.assert_allclose(y.decay_factor_h(t), [1.0, 0.5, 0.25], rtol=1e-12)
    assert isinstance(y.decay_factor_h(1.0), float)
    with pytest.raises(TimingError):
        y.decay_factor_h(np.nan)


def test_stable_nuclide_does_not_decay_and_has_no_emissions():
    stable = Nuclide("Lu-175")  # in the radioactivedecay data as a decay product
    assert stable.is_stable
    assert stable.decay_constant_per_h == 0.0
    assert stable.decay_factor_h(1e6) == 1.0
    assert not stable.has_emission_data
    with pytest.raises(NuclideError) as info:
        stable.emissions("gamma")
    assert "Lu-175" in str(info.value)


_offsets_h = st.floats(min_value=-720.0, max_value=720.0, allow_nan=False)


@given(
    name=st.sampled_from(["Lu-177", "F-18", "Tc-99m"]),
    h1=_offsets_h,
    h2=_offsets_h,
    aware=st.booleans(),
)
def test_decay_factor_composes(name, h1, h2, aware):
    # Exponential decay is a semigroup: f(t0, t2) = f(t0, t1) f(t1, t2); rtol 1e-12.
    nuc = Nuclide(name)
    t0 = T0 if aware else T0.replace(tzinfo=None)
    t1 = t0 + timedelta(hours=h1)
    t2 = t0 + timedelta(hours=h2)
    direct = nuc.decay_factor(t0, t2)
    chained = nuc.decay_factor(t0, t1) * nuc.decay_factor(t1, t2)
    assert math.isclose(direct, chained, rel_tol=1e-12)


# ----------------------------------------------------------------- emissions

# Source: ICRP Publication 107, as quoted in the project reference; tolerance 0.2 %.


def test_lu177_energies_per_decay():
    lu = Nuclide("Lu-177")
    assert lu.beta_mean_energy_mev == pytest.approx(0.13327, rel=2e-3)
    # Electrons: beta + conversion + Auger.
    assert lu.electron_energy_mev == pytest.approx(0.14792, rel=2e-3)
    # Photons: gamma + X-ray (no annihilation for a beta- emitter).
    assert lu.photon_energy_mev == pytest.approx(0.03510, rel=2e-3)
    assert lu.mean_energy_mev("annihilation") == 0.0
    assert lu.mean_energy_mev("beta+") == 0.0


@pytest.mark.parametrize(("name", "beta_mev"), [("Y-90", 0.9329), ("I-131", 0.18187)])
def test_beta_mean_energies(name, beta_mev):
    assert Nuclide(name).beta_mean_energy_mev == pytest.approx(beta_mev, rel=2e-3)


def test_groups_are_sums_of_classes():
    # Definition of the groups; tolerance 1e-12 (float summation order).
    nuc = Nuclide("Cu-64")  # beta-, beta+, ce, Auger, gamma, X and annihilation
    for group, classes in EMISSION_GROUPS.items():
        total = sum(nuc.mean_energy_mev(c) for c in classes)
        assert nuc.mean_energy_mev(group) == pytest.approx(total, rel=1e-12)
        assert len(nuc.emissions(group)) == sum(len(nuc.emissions(c)) for c in classes)
    assert set(EMISSION_CLASSES) == {
        "alpha",
        "beta-",
        "beta+",
        "ce",
        "auger",
        "gamma",
        "xray",
        "annihilation",
    }


def test_emissions_are_sorted_read_only_arrays():
    em = Nuclide("I-131").emissions("photons")
    assert isinstance(em, Emissions)
    assert em.energy_mev.shape == em.yield_per_decay.shape
    assert np.all(np.diff(em.energy_mev) >= 0)
    with pytest.raises(ValueError, match="read-only"):
        em.energy_mev[0] = 1.0


def test_unknown_emission_class_raises():
    with pytest.raises(NuclideError) as info:
        Nuclide("Lu-177").emissions("positrons")
    assert info.value.field == "cls"
    assert "positrons" in str(info.value)


def test_absent_class_is_empty():
    em = Nuclide("In-111").emissions("beta-")
    assert len(em) == 0
    assert em.energy_per_decay_mev == 0.0


def test_f18_positrons_and_annihilation_photons():
    f18 = Nuclide("F-18")
    beta_plus = f18.emissions("beta+").total_yield
    # DDEP quotes 0.9686 per decay; ICRP-107 lists 0.9673 (0.13 % lower). Tolerance 0.5 %.
    assert beta_plus == pytest.approx(0.9686, rel=5e-3)
    # Two 511 keV photons per positron (ICRP-107 lists them so); tolerance 0.5 %.
    annihilation = f18.emissions("annihilation")
    assert annihilation.total_yield == pytest.approx(2.0 * beta_plus, rel=5e-3)
    np.testing.assert_allclose(annihilation.energy_mev, 0.511, rtol=1e-3)
    assert f18.mean_energy_mev("beta-") == 0.0


def test_ga68_positron_yield():
    # ICRP-107: 0.8891 positrons per decay; tolerance 0.5 %.
    assert Nuclide("Ga-68").emissions("beta+").total_yield == pytest.approx(0.889, rel=5e-3)


@pytest.mark.parametrize(("energy_mev", "yield_per_decay"), [(0.208366, 0.110), (0.11295, 0.0640)])
def test_lu177_prominent_gamma_lines(energy_mev, yield_per_decay):
    # Source: ICRP Publication 107 (Lu-177: 208.366 keV 11.0 %, 112.95 keV 6.40 %); 2 %.
    # The DDEP/ENSDF-2019 yields 0.104 and 0.0623 are newer evaluations, not ICRP-107;
    # the ICRP-107 photon energy 0.03510 MeV/decay tested above needs these yields.
    gammas = Nuclide("Lu-177").emissions("gamma")
    i = int(np.argmin(np.abs(gammas.energy_mev - energy_mev)))
    assert gammas.energy_mev[i] == pytest.approx(energy_mev, abs=1e-5)
    assert gammas.yield_per_decay[i] == pytest.approx(yield_per_decay, rel=0.02)


def test_photon_lines_threshold():
    lines = Nuclide("Lu-177").photon_lines(min_yield=0.05)
    assert np.all(lines.yield_per_decay >= 0.05)
    assert np.any(np.isclose(lines.energy_mev, 0.208366))
    assert np.any(np.isclose(lines.energy_mev, 0.11295))
    assert len(lines) < len(Nuclide("Lu-177").photon_lines())


# ------------------------------------------------------------- beta spectra


@pytest.mark.parametrize("name", ["Lu-177", "Y-90", "I-131"])
def test_beta_spectrum_integrals(name):
    nuc = Nuclide(name)
    spectrum = nuc.beta_spectrum()
    assert isinstance(spectrum, BetaSpectrum)
    e, n = spectrum.energy_mev, spectrum.n_per_mev_per_decay
    assert e.shape == n.shape
    assert np.all(np.diff(e) > 0)
    # ICRP-107 spectrum vs ICRP-107 mean beta energy: trapezoid E N(E) dE, 0.5 %.
    assert np.trapezoid(e * n, e) == pytest.approx(nuc.beta_mean_energy_mev, rel=5e-3)
    assert spectrum.mean_energy_mev == pytest.approx(nuc.beta_mean_energy_mev, rel=5e-3)
    # Trapezoid N(E) dE vs the total beta yield per decay, 1 %.
    beta_yield = nuc.emissions("beta").total_yield
    assert np.trapezoid(n, e) == pytest.approx(beta_yield, rel=1e-2)
    assert spectrum.total_yield == pytest.approx(beta_yield, rel=1e-2)


def test_beta_plus_spectrum():
    # b-spectra covers beta+ too: F-18 integral vs ICRP-107 beta+ mean energy, 0.5 %.
    f18 = Nuclide("F-18")
    assert f18.beta_spectrum().mean_energy_mev == pytest.approx(
        f18.mean_energy_mev("beta+"), rel=5e-3
    )


@pytest.mark.parametrize("name", ["In-111", "I-123"])
def test_beta_spectrum_refused_without_beta(name):
    with pytest.raises(NuclideError) as info:
        Nuclide(name).beta_spectrum()
    assert name in str(info.value)
