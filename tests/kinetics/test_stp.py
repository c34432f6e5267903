"""Tests of theranet.kinetics.stp and .population: Hänscheid, Madsen, prior-informed STP."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from theranet.errors import NuclideError, TimingError
from theranet.kinetics.models import KineticsError
from theranet.kinetics.population import (
    load_population_table,
    population_half_life,
)
from theranet.kinetics.stp import hanscheid_ratio, hanscheid_tia, madsen_tia, prior_tia
from theranet.nuclides import Nuclide

LN2 = math.log(2.0)
LAM_LU = Nuclide("Lu-177").decay_constant_per_h


# ---------------------------------------------------------------- Hänscheid


def test_hanscheid_closed_form():
    # Hänscheid 2018: TIA = A(ts) 2 ts/ln2; 12.5 MBq at 96 h -> 2400/ln2 MBq h (1e-6 rel.)
    res = hanscheid_tia(12.5, 96.0)
    assert res.tia_mbq_h == pytest.approx(12.5 * 2 * 96.0 / LN2, rel=1e-6)
    assert res.method == "hanscheid" and math.isnan(res.sd_mbq_h)


@pytest.mark.parametrize(
    ("x", "published", "tol"),
    [
        # clinical.md §6.4 accuracy windows (values printed to 2-3 decimals -> tolerance)
        (1.0, 1.00, 5e-3),
        (2.0, 1.00, 5e-3),
        (1 / LN2, 1.061, 5e-4),
        (0.75, 0.89, 5e-3),
        (2.5, 0.88, 5e-3),
        (3.0, 0.75, 5e-3),
    ],
)
def test_hanscheid_accuracy_against_mono_exponential_truth(x, published, tol):
    # truth for mono kinetics: A(ts) e^{lambda ts}/lambda; x = ts/T_eff
    t_eff = 56.0
    ts = x * t_eff
    lam = LN2 / t_eff
    a_ts = 100.0 * math.exp(-lam * ts)
    truth = a_ts * math.exp(lam * ts) / lam
    ratio = hanscheid_tia(a_ts, ts).tia_mbq_h / truth
    assert ratio == pytest.approx(published, abs=tol)
    assert hanscheid_ratio(x) == pytest.approx(ratio, rel=1e-12)


def test_hanscheid_ratio_maximum_is_at_one_over_ln2():
    # d/dx (2x 2^-x) = 0 at x = 1/ln2, value 2/(e ln2) = 1.0615 (analytic)
    x = np.linspace(0.1, 5.0, 49001)
    r = hanscheid_ratio(x)
    assert x[np.argmax(r)] == pytest.approx(1 / LN2, abs=2e-4)
    assert r.max() == pytest.approx(2 / (math.e * LN2), rel=1e-9)


# ---------------------------------------------------------------- Madsen


def test_madsen_closed_form():
    # Madsen 2018: A(ts) e^{lambda ts}/lambda, lambda = ln2/T_pop (1e-6 rel.)
    res = madsen_tia(12.5, 96.0, t_pop_h=60.0)
    lam = LN2 / 60.0
    assert res.tia_mbq_h == pytest.approx(12.5 * math.exp(lam * 96.0) / lam, rel=1e-6)
    assert res.details["optimal_time_h"] == pytest.approx(60.0 / LN2, rel=1e-12)


@pytest.mark.parametrize("ts", [4.0, 24.0, 72.0, 96.0, 168.0])
def test_madsen_is_exact_when_population_rate_equals_true_rate(ts):
    # mono truth A0 e^{-lambda t}: TIA = A0/lambda whatever the scan time (1e-12 rel.)
    a0, t_eff = 163.0, 56.0
    lam = LN2 / t_eff
    res = madsen_tia(a0 * math.exp(-lam * ts), ts, t_pop_h=t_eff)
    assert res.tia_mbq_h == pytest.approx(a0 / lam, rel=1e-12)


def test_madsen_population_lookup_uses_the_mean():
    # kidneys 177Lu-DOTATATE: 56 +/- 13 h (Spink et al. 2024, biokinetics.md §3.1)
    res = madsen_tia(10.0, 96.0, tracer="Lutathera", organ="kidney", nuclide="Lu-177")
    lam = LN2 / 56.0
    assert res.tia_mbq_h == pytest.approx(10.0 * math.exp(lam * 96.0) / lam, rel=1e-12)
    assert any("Spink" in r for r in res.rules)
    assert res.nuclide == "Lu-177"


def test_madsen_bad_input():
    with pytest.raises(NuclideError) as exc:
        madsen_tia(10.0, 96.0, tracer="177Lu-DOTATATE", organ="kidneys", nuclide="Y-90")
    assert exc.value.field == "nuclide" and exc.value.value == "Y-90"
    with pytest.raises(KineticsError, match="no population"):
        madsen_tia(10.0, 96.0, tracer="177Lu-DOTATATE", organ="pancreas")
    with pytest.raises(KineticsError, match="tracer and organ"):
        madsen_tia(10.0, 96.0)
    with pytest.raises(KineticsError):
        madsen_tia(10.0, 96.0, t_pop_h=-5.0)
    with pytest.raises(TimingError):
        madsen_tia(10.0, 0.0, t_pop_h=56.0)
    with pytest.raises(KineticsError):
        hanscheid_tia(float("nan"), 96.0)
    with pytest.raises(KineticsError):
        hanscheid_tia(-1.0, 96.0)


def test_madsen_t_pop_longer_than_physical_half_life_refused():
    # non-decay-corrected data: T_eff <= T_phys (clinical.md §6.2); 177Lu T_phys ~ 159.5 h
    with pytest.raises(KineticsError, match="physical half-life") as exc:
        madsen_tia(10, 96, t_pop_h=400, nuclide="Lu-177")
    assert exc.value.field == "t_pop_h" and exc.value.value == 400
    assert "T_phys" in exc.value.fix
    t_phys = Nuclide("Lu-177").half_life_h
    res = madsen_tia(10.0, 96.0, t_pop_h=t_phys, nuclide="Lu-177")  # equality allowed
    assert res.details["t_pop_h"] == t_phys
    # without a nuclide T_phys is unknown: not checked
    assert madsen_tia(10.0, 96.0, t_pop_h=400.0).nuclide is None


# ---------------------------------------------------------------- prior-informed STP


def _lognormal_theta(mean_h: float, sd_h: float) -> tuple[float, float]:
    """Prior of theta = ln lambda from the T_eff mean/SD (moment-matched log-normal)."""
    s = math.sqrt(math.log(1 + (sd_h / mean_h) ** 2))
    median = mean_h / math.sqrt(1 + (sd_h / mean_h) ** 2)
    return math.log(LN2 / median), s


def test_prior_single_point_map_is_madsen_at_the_median_rate():
    # one point carries no information on lambda: MAP theta = prior mean, i.e. lambda =
    # ln2/median(T_eff), median = mean/sqrt(1+(SD/mean)^2) (log-normal); 1e-6 relative
    mean, sd, a, ts = 56.0, 13.0, 10.0, 96.0
    res = prior_tia(ts, a, nuclide="Lu-177", t_eff_mean_h=mean, t_eff_sd_h=sd)
    lam = LN2 * math.sqrt(1 + (sd / mean) ** 2) / mean
    assert res.tia_mbq_h == pytest.approx(a * math.exp(lam * ts) / lam, rel=1e-6)
    assert res.details["lambda_map_per_h"] == pytest.approx(lam, rel=1e-6)
    assert res.method == "prior_mono"


def test_prior_single_point_sd_is_the_prior_spread():
    # SD of TIA(theta) = A e^{e^theta ts}/e^theta for theta ~ N(mu, s^2), by independent
    # quadrature; the grid integral agrees to 1e-4 relative
    mean, sd, a, ts = 56.0, 13.0, 10.0, 96.0
    mu, s = _lognormal_theta(mean, sd)

    def tia(th: float) -> float:
        return a * math.exp(math.exp(th) * ts) / math.exp(th)

    def moment(k: int) -> float:
        f = lambda th: tia(th) ** k * stats.norm.pdf(th, mu, s)  # noqa: E731
        return integrate.quad(f, mu - 10 * s, mu + 10 * s, epsabs=0, epsrel=1e-12)[0]

    expected = math.sqrt(moment(2) - moment(1) ** 2)
    res = prior_tia(ts, a, nuclide="Lu-177", t_eff_mean_h=mean, t_eff_sd_h=sd)
    assert res.sd_mbq_h == pytest.approx(expected, rel=1e-4)
    assert res.details["posterior_mean_tia_mbq_h"] == pytest.approx(moment(1), rel=1e-4)


def test_prior_sd_from_activity_alone_with_a_sharp_prior():
    # prior SD -> 0: lambda fixed, TIA = A e^{lambda ts}/lambda, SD = sigma e^{lambda ts}/lambda
    mean, ts, a, sigma = 56.0, 96.0, 10.0, 0.5
    res = prior_tia(ts, a, nuclide="Lu-177", sigma_mbq=sigma, t_eff_mean_h=mean, t_eff_sd_h=1e-6)
    lam = LN2 / mean
    assert res.sd_mbq_h == pytest.approx(sigma * math.exp(lam * ts) / lam, rel=1e-6)


def test_prior_with_many_precise_points_recovers_the_true_curve():
    # data dominate a weak prior: noise-free mono truth T_eff 70 h, prior 56 +/- 30 h
    t = np.array([4.0, 24.0, 48.0, 96.0, 168.0])
    a0, lam = 120.0, LN2 / 70.0
    a = a0 * np.exp(-lam * t)
    res = prior_tia(t, a, nuclide="Lu-177", sigma_mbq=0.001 * a, t_eff_mean_h=56.0, t_eff_sd_h=30.0)
    assert res.tia_mbq_h == pytest.approx(a0 / lam, rel=5e-3)  # acceptance-level 0.5 %
    assert res.sd_mbq_h < 0.01 * res.tia_mbq_h


def test_prior_population_lookup_and_bad_input():
    res = prior_tia(96.0, 10.0, nuclide="Lu-177", tracer="177Lu-DOTATATE", organ="kidneys")
    explicit = prior_tia(96.0, 10.0, nuclide="Lu-177", t_eff_mean_h=56.0, t_eff_sd_h=13.0)
    assert res.tia_mbq_h == pytest.approx(explicit.tia_mbq_h, rel=1e-12)
    assert res.sd_mbq_h == pytest.approx(explicit.sd_mbq_h, rel=1e-12)
    with pytest.raises(KineticsError, match="SDs"):
        prior_tia([24.0, 96.0], [20.0, 10.0], nuclide="Lu-177", t_eff_mean_h=56.0, t_eff_sd_h=13.0)
    with pytest.raises(KineticsError, match="both"):
        prior_tia(96.0, 10.0, nuclide="Lu-177", t_eff_mean_h=56.0)
    with pytest.raises(KineticsError, match="physical half-life"):
        prior_tia(96.0, 10.0, nuclide="Lu-177", t_eff_mean_h=5000.0, t_eff_sd_h=1.0)
    with pytest.raises(NuclideError):
        prior_tia(96.0, 10.0, nuclide="I-131", tracer="177Lu-DOTATATE", organ="kidneys")
    with pytest.raises(TimingError):
        prior_tia(0.0, 10.0, nuclide="Lu-177", t_eff_mean_h=56.0, t_eff_sd_h=13.0)


# ---------------------------------------------------------------- population table


def test_kidney_population_half_life_is_the_published_value():
    k = population_half_life("177Lu-DOTATATE", "kidneys")
    # Spink et al., EJNMMI Phys 2024: 56 +/- 13 h (biokinetics.md §3.1, status read)
    assert (k.mean_h, k.sd_h) == (56.0, 13.0)
    assert k.status == "verified" and "Spink" in k.source
    # moment matching: a log-normal with (s, median) has that mean and SD (scipy, 1e-12)
    dist = stats.lognorm(k.log_sigma, scale=k.median_h)
    assert dist.mean() == pytest.approx(56.0, rel=1e-12)
    assert dist.std() == pytest.approx(13.0, rel=1e-12)


def test_percentile_entries_reproduce_their_percentiles():
    tum = population_half_life("Lutathera", "tumor")
    assert tum.statistic == "p5_p95" and tum.status == "uncertain"
    dist = stats.lognorm(tum.log_sigma, scale=tum.median_h)
    # biokinetics.md §3.3: 60-130 h as 5th-95th percentiles (scipy ppf, 1e-9)
    assert dist.ppf(0.05) == pytest.approx(60.0, rel=1e-9)
    assert dist.ppf(0.95) == pytest.approx(130.0, rel=1e-9)
    assert dist.mean() == pytest.approx(tum.mean_h, rel=1e-12)
    assert dist.std() == pytest.approx(tum.sd_h, rel=1e-12)


def test_every_shipped_entry_is_sourced():
    table = load_population_table()
    assert len(table) >= 5
    for e in table:
        assert e.status in ("verified", "unconfirmed", "uncertain")
        assert e.source and e.section and e.nuclide == "Lu-177"
        assert e.median_h < e.mean_h < Nuclide(e.nuclide).half_life_h


def test_bad_population_table(tmp_path):
    bad = tmp_path / "site.toml"
    bad.write_text(
        "[[half_life]]\ntracer = 'X'\nnuclide = 'Lu-177'\norgan = 'kidneys'\n"
        "statistic = 'mean_sd'\n"
        "t_eff = { value = [56.0, 13.0], unit = 'h', source = 's', section = 'x', "
        "status = 'guessed' }\n",
        encoding="utf-8",
    )
    with pytest.raises(KineticsError, match="status"):
        load_population_table(bad)
    bad.write_text(
        "[[half_life]]\ntracer = 'X'\nnuclide = 'Lu-177'\norgan = 'kidneys'\n"
        "statistic = 'mean_sd'\nt_eff = { value = [56.0, 13.0], unit = 'weeks', source = 's', "
        "section = 'x', status = 'verified' }\n",
        encoding="utf-8",
    )
    with pytest.raises(KineticsError, match="unit"):
        load_population_table(bad)
    bad.write_text(
        "[[half_life]]\ntracer = 'X'\nnuclide = 'Lu-177'\norgan = 'kidneys'\n"
        "statistic = 'mean_sd'\nt_eff = { value = [2.0, 1.0], unit = 'd', source = 's', "
        "section = 'x', status = 'verified' }\n",
        encoding="utf-8",
    )
    (entry,) = load_population_table(bad)
    assert entry.values_h == (48.0, 24.0)  # days converted to h
