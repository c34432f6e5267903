"""True time-activity curves of the digital NET patient.

Every region of the patient (organs of :mod:`theranet.phantom.regions` and lesions
``lesion_<site>_<i>``) gets a decay-corrected retention (biokinetics.md §0.2)

    R(t) = sum_j f_j [1 - exp(-ln2 t / T_up,j)] exp(-ln2 t / T_bio,j)

and the activity ``A(t) = IA R(t) exp(-ln2 t / T_phys)``. Parameters come from
``theranet/data/phantom_kinetics.toml`` (the "Recommended default model" tables of
biokinetics.md, each with source, section and status); ``T_phys`` from
:class:`theranet.nuclides.Nuclide` (ICRP-107). Units: MBq, h, g, mL.

Rules (documented in docs/phantom.md, "Kinetics")
------------------------------------------------
* Specific organs: entries are a fraction of IA per organ, or per gram (times the
  patient's region mass). An entry naming several regions (``gut_wall`` ->
  ``stomach``, ``bowel``) splits a whole-organ fraction by mass.
* Kidneys: the table's kidney entry (both kidneys) is split between
  ``kidney_cortex`` and ``kidney_medulla`` by mass weighted with the tracer's
  cortex-to-medulla concentration ratio (3 for peptides, 1 otherwise; an assumption
  marked uncertain).
* Blood: ``heart_blood`` = blood concentration x its volume; ``red_marrow`` =
  RMBLR x blood concentration (per gram) x marrow mass plus any specific component.
  Blood mass and volume (5 600 g, 5 300 mL) scale with body mass / 73 kg.
* Remainder: WB - sum of all other regions, shared over every region without a
  specific entry (``remainder``, ``muscle``, ``subcutaneous_fat``, ``lungs``,
  ``heart_wall``, ``salivary_glands``, ``brain``, ``cortical_bone``, ... when not
  specific) in proportion to mass. It is clipped at zero; where the modelled
  regions exceed the whole-body curve the whole body is raised to their sum
  (biokinetics.md §0.2), and excretion is 1 - the raised whole-body retention.
* Bladder: all excretion (urinary; the small faecal route is not separated) flows
  into the bladder, voided at 1.5 h and then every 4 h; after a void the residual
  volume (20 mL) keeps the fraction residual / (residual + urine produced at
  60 mL/h since the previous void) of the content.
* Lesions: per-gram uptake. For SSTR tracers a Krenning grade is designed per
  lesion and the lesion concentration at the tracer's reference time is set
  relative to the liver and spleen concentrations (grade 1 < 0.5 x liver,
  2 = 0.5-1 x liver, 3 between liver and spleen, 4 > spleen; clinical.md §3.1).
* Variability: parameters with a 5th-95th percentile range are drawn log-normally
  (median = the default, 5th-95th percentiles at the range ends), truncated to the
  range. ``variability=False`` gives the default model exactly.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from theranet.nuclides import Nuclide
from theranet.phantom.regions import LESION_SITES

__all__ = [
    "PatientKinetics",
    "RegionKinetics",
    "Term",
    "krenning_grade",
    "patient_kinetics",
    "tracers",
]

_LN2 = math.log(2.0)
_DATA_FILE = "data/phantom_kinetics.toml"
_Z95 = 1.6448536269514722
#: Regions whose curves are built from the blood curve or the excretion.
_BLOOD_REGIONS = ("heart_blood", "red_marrow")
#: Gauss-Legendre nodes per one-hour piece for the numerical TIAs.
_GL_NODES = 24


class RegionLike(Protocol):
    """What :func:`patient_kinetics` needs of a region (``RegionInfo`` of the anatomy)."""

    kind: str
    site: str | None
    mass_g: float
    volume_ml: float


@dataclass(frozen=True)
class Term:
    """One exponential term of a decay-corrected retention curve.

    Parameters
    ----------
    f : float
        Fraction of IA (may be negative inside the remainder's raw curve).
    t_bio_h : float
        Biological half-life in h (``inf``: no biological clearance).
    t_up_h : float
        Uptake half-time in h (0: instantaneous uptake).
    """

    f: float
    t_bio_h: float
    t_up_h: float = 0.0

    def retention(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        """Decay-corrected retention (fraction of IA) at times ``t`` (h)."""
        out = self.f * np.ones_like(t)
        if math.isfinite(self.t_bio_h):
            out = out * np.exp2(-t / self.t_bio_h)
        if self.t_up_h > 0:
            out = out * -np.expm1(-_LN2 * t / self.t_up_h)
        return out

    def tia_h(self, t_phys_h: float) -> float:
        """Time-integrated activity coefficient ``f [1/lam - 1/(lam + ln2/T_up)]`` in h."""
        lam = _LN2 / t_phys_h + (_LN2 / self.t_bio_h if math.isfinite(self.t_bio_h) else 0.0)
        value = 1.0 / lam
        if self.t_up_h > 0:
            value -= 1.0 / (lam + _LN2 / self.t_up_h)
        return self.f * value


def _retention(terms: tuple[Term, ...], t: NDArray[np.float64]) -> NDArray[np.float64]:
    out = np.zeros_like(t)
    for term in terms:
        out = out + term.retention(t)
    return out


@dataclass(frozen=True)
class RegionKinetics:
    """Resolved kinetic parameters of one region.

    Parameters
    ----------
    name : str
        Region name.
    kind : str
        ``"organ"`` (specific uptake), ``"blood"`` (heart blood, red marrow),
        ``"remainder"`` (a share of the remainder), ``"bladder"`` or ``"lesion"``.
    terms : tuple of Term
        Terms of the decay-corrected retention (fraction of IA); for a remainder
        share, empty (see ``remainder_share``).
    mass_g, volume_ml : float
        Region mass and volume.
    remainder_share : float
        Fraction of the remainder held by this region (0 unless kind is remainder).
    source, section, status : str
        Provenance (biokinetics.md sections; status read/recalled/derived/uncertain).
    """

    name: str
    kind: str
    terms: tuple[Term, ...]
    mass_g: float
    volume_ml: float
    remainder_share: float = 0.0
    source: str = ""
    section: str = ""
    status: str = ""


# ---------------------------------------------------------------------------------------------
# Parameter table


@cache
def _table() -> dict[str, Any]:
    text = resources.files("theranet").joinpath(_DATA_FILE).read_text(encoding="utf-8")
    return tomllib.loads(text)


def tracers() -> tuple[str, ...]:
    """Names of the tracers with a kinetic model in ``phantom_kinetics.toml``."""
    return tuple(t["name"] for t in _table()["tracer"])


def _tracer_entry(tracer: str) -> dict[str, Any]:
    from theranet.radiopharmaceuticals import UnknownTracerError, get

    wanted = tracer
    try:
        wanted = get(tracer).name
    except UnknownTracerError:
        pass
    for entry in _table()["tracer"]:
        if entry["name"].lower() == wanted.lower():
            return entry
    raise ValueError(f"tracer: no kinetic model for {tracer!r}; available: {', '.join(tracers())}")


def _value(item: Mapping[str, Any]) -> Any:
    return item["value"]


def krenning_grade(lesion: float, liver: float, spleen: float, *, k1: float = 0.5) -> int:
    """Krenning grade from concentrations (clinical.md §3.1, semi-automatic form).

    Parameters
    ----------
    lesion, liver, spleen : float
        Activity concentrations at the reference time (spleen: kidney if splenectomy).
    k1 : float
        "Much lower than liver" factor (0.5; an implementation choice).

    Returns
    -------
    int
        0 no uptake, 1 < k1 x liver, 2 up to liver, 3 up to spleen, 4 > spleen.
    """
    if lesion <= 0:
        return 0
    if lesion < k1 * liver:
        return 1
    if lesion <= liver:
        return 2
    if lesion <= spleen:
        return 3
    return 4


# ---------------------------------------------------------------------------------------------
# Patient


@dataclass(frozen=True)
class PatientKinetics:
    """Known-truth kinetics of one digital patient for one tracer.

    Build with :func:`patient_kinetics`. Activities include physical decay; the
    ``*_fraction`` methods are decay-corrected fractions of IA.

    Attributes
    ----------
    tracer, nuclide : str
        Tracer name (catalogue spelling) and canonical nuclide (``"Lu-177"``).
    administered_mbq : float
        Injected activity.
    t_phys_h : float
        Physical half-life (ICRP-107).
    region_kinetics : Mapping[str, RegionKinetics]
        Resolved parameters per region.
    whole_body_terms, blood_terms : tuple of Term
        Whole-body retention (before any raise, see module notes) and blood curve
        (fraction of IA in the whole blood).
    blood_volume_ml, blood_mass_g : float
        Patient blood volume and mass.
    lesion_grade : Mapping[str, int or None]
        Designed Krenning grade per lesion (None for non-SSTR tracers).
    reference_time_h : float
        Reference imaging time of the grade design.
    bladder : Mapping[str, float]
        ``first_void_h``, ``void_interval_h``, ``residual_ml``, ``urine_flow_ml_per_h``.
    parameters : Mapping[str, Mapping[str, Any]]
        Table entries (with source, section, status) used for this patient.
    """

    tracer: str
    nuclide: str
    administered_mbq: float
    t_phys_h: float
    region_kinetics: Mapping[str, RegionKinetics]
    whole_body_terms: tuple[Term, ...]
    blood_terms: tuple[Term, ...]
    blood_volume_ml: float
    blood_mass_g: float
    lesion_grade: Mapping[str, int | None]
    reference_time_h: float
    bladder: Mapping[str, float]
    parameters: Mapping[str, Mapping[str, Any]] = field(repr=False, hash=False)
    krenning_k1: float = 0.5
    _raw_remainder_terms: tuple[Term, ...] = field(default=(), repr=False)
    _remainder_clipped: bool = field(default=False, repr=False)
    _horizon_h: float = field(default=1000.0, repr=False)

    # -- names and provenance -----------------------------------------------------------------
    @property
    def regions(self) -> tuple[str, ...]:
        """Region names (organs, then lesions)."""
        return tuple(self.region_kinetics)

    @property
    def sources(self) -> Mapping[str, str]:
        """Region -> source text (with section and status)."""
        return MappingProxyType(
            {n: f"{r.source} [{r.section}; {r.status}]" for n, r in self.region_kinetics.items()}
        )

    def _get(self, region: str) -> RegionKinetics:
        try:
            return self.region_kinetics[region]
        except KeyError:
            raise KeyError(f"region: {region!r} is not in this patient") from None

    # -- decay-corrected curves ---------------------------------------------------------------
    def _decay(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.exp2(-t / self.t_phys_h)

    def _remainder_fraction(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.maximum(_retention(self._raw_remainder_terms, t), 0.0)

    def _body_fraction(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        """Retention in the body outside the bladder (raised WB), decay-corrected."""
        specific = np.zeros_like(t)
        for r in self.region_kinetics.values():
            if r.kind not in ("remainder", "bladder"):
                specific = specific + _retention(r.terms, t)
        return specific + self._remainder_fraction(t)

    def retention_fraction(self, t_h: ArrayLike) -> NDArray[np.float64]:
        """Decay-corrected whole-body retention outside the bladder (fraction of IA).

        Equals the table's R_WB(t) unless the modelled regions exceed it, where it
        is raised to their sum (biokinetics.md §0.2).
        """
        return self._body_fraction(np.asarray(t_h, dtype=float))

    def excreted_fraction(self, t_h: ArrayLike) -> NDArray[np.float64]:
        """Cumulative excretion (decay-corrected fraction of IA): 1 - retention."""
        return 1.0 - self.retention_fraction(t_h)

    def _void_times(self, t_max: float) -> NDArray[np.float64]:
        first, step = self.bladder["first_void_h"], self.bladder["void_interval_h"]
        if t_max < first:
            return np.zeros(0)
        n = math.floor((t_max - first) / step) + 1
        return first + step * np.arange(n)

    def _bladder_fraction(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        t = np.asarray(t, dtype=float)
        if t.size == 0:
            return np.zeros_like(t)
        voids = self._void_times(float(np.max(t)))
        residual, flow = self.bladder["residual_ml"], self.bladder["urine_flow_ml_per_h"]
        edges = np.concatenate(([0.0], voids))
        u_edges = self.excreted_fraction(edges)
        after = np.zeros(edges.size)  # content just after each edge (index 0: t = 0)
        for j in range(1, edges.size):
            before = after[j - 1] + u_edges[j] - u_edges[j - 1]
            kept = residual / (residual + flow * (edges[j] - edges[j - 1]))
            after[j] = kept * before
        idx = np.searchsorted(edges, t, side="right") - 1
        idx = np.clip(idx, 0, edges.size - 1)
        return after[idx] + self.excreted_fraction(t) - u_edges[idx]

    def fraction(self, region: str, t_h: ArrayLike) -> NDArray[np.float64]:
        """Decay-corrected retention of ``region`` (fraction of IA) at ``t_h``."""
        r = self._get(region)
        t = np.asarray(t_h, dtype=float)
        if r.kind == "remainder":
            return r.remainder_share * self._remainder_fraction(t)
        if r.kind == "bladder":
            return self._bladder_fraction(t)
        return _retention(r.terms, t)

    # -- activities ---------------------------------------------------------------------------
    def activity_mbq(self, region: str, t_h: ArrayLike) -> NDArray[np.float64]:
        """Activity (MBq, physical decay included) in ``region`` at times ``t_h`` (h)."""
        t = np.asarray(t_h, dtype=float)
        return self.administered_mbq * self.fraction(region, t) * self._decay(t)

    def concentration_mbq_per_ml(self, region: str, t_h: ArrayLike) -> NDArray[np.float64]:
        """Mean activity concentration (MBq/mL) of ``region`` at ``t_h``."""
        return self.activity_mbq(region, t_h) / self._get(region).volume_ml

    def whole_body_mbq(self, t_h: ArrayLike) -> NDArray[np.float64]:
        """Activity in the whole patient (all regions, bladder contents included)."""
        t = np.asarray(t_h, dtype=float)
        total = self._body_fraction(t)
        if "bladder" in self.region_kinetics:
            total = total + self._bladder_fraction(t)
        return self.administered_mbq * total * self._decay(t)

    def blood_concentration_mbq_per_ml(self, t_h: ArrayLike) -> NDArray[np.float64]:
        """Whole-blood activity concentration (MBq/mL)."""
        t = np.asarray(t_h, dtype=float)
        frac = _retention(self.blood_terms, t)
        return self.administered_mbq * frac * self._decay(t) / self.blood_volume_ml

    # -- time-integrated activity -------------------------------------------------------------
    def _integrate(self, fn: Callable[[NDArray[np.float64]], NDArray[np.float64]]) -> float:
        """Integral of fn(t) * decay(t) over [0, horizon] (piecewise Gauss-Legendre)."""
        x, w = np.polynomial.legendre.leggauss(_GL_NODES)
        edges = [0.0]
        for v in self._void_times(self._horizon_h):
            edges.append(float(v))
        edges.append(self._horizon_h)
        pieces = []
        for a, b in itertools.pairwise(edges):
            n = max(1, math.ceil((b - a) / 1.0))
            pieces.append(np.linspace(a, b, n + 1))
        grid = np.unique(np.concatenate(pieces))
        a, b = grid[:-1, None], grid[1:, None]
        t = 0.5 * (b - a) * x[None, :] + 0.5 * (a + b)
        vals = fn(t.ravel()).reshape(t.shape) * self._decay(t)
        return float(np.sum(0.5 * (b - a) * w[None, :] * vals))

    def tia_mbq_h(self, region: str) -> float:
        """Time-integrated activity (MBq h) of ``region`` from 0 to infinity.

        Analytic for every region whose curve is a sum of terms (organs, blood-based
        regions, lesions, and the remainder when it is never clipped):
        ``f [1/lam - 1/(lam + ln2/T_up)]`` with ``lam = lam_bio + lam_phys``.
        The bladder, and the remainder when clipped at zero, are integrated
        numerically (24-node Gauss-Legendre on 1-h pieces split at the voids, to a
        horizon of 60 of the longest effective half-lives; relative accuracy better
        than 1e-7).
        """
        r = self._get(region)
        ia = self.administered_mbq
        if r.kind == "bladder":
            return ia * self._integrate(self._bladder_fraction)
        if r.kind == "remainder":
            if self._remainder_clipped:
                whole = self._integrate(self._remainder_fraction)
            else:
                whole = sum(term.tia_h(self.t_phys_h) for term in self._raw_remainder_terms)
            return ia * r.remainder_share * whole
        return ia * sum(term.tia_h(self.t_phys_h) for term in r.terms)

    # -- Krenning ------------------------------------------------------------------------------
    def krenning_score(self, lesion: str, t_h: float | None = None) -> int:
        """Krenning grade of ``lesion`` from the concentrations at ``t_h``.

        Uses mean concentrations of lesion, liver and spleen (kidney cortex when
        the patient has no spleen) at the reference time unless ``t_h`` is given.
        """
        t = self.reference_time_h if t_h is None else float(t_h)
        liver = float(self.concentration_mbq_per_ml("liver", t))
        ref = "spleen" if "spleen" in self.region_kinetics else "kidney_cortex"
        spleen = float(self.concentration_mbq_per_ml(ref, t))
        les = float(self.concentration_mbq_per_ml(lesion, t))
        return krenning_grade(les, liver, spleen, k1=self.krenning_k1)


# ---------------------------------------------------------------------------------------------
# Builder


def _lognormal(rng: np.random.Generator, median: float, lo: float, hi: float) -> float:
    """Log-normal draw, median ``median``, 5th-95th percentile width of ``[lo, hi]``,
    truncated to ``[lo, hi]``."""
    sigma = math.log(hi / lo) / (2.0 * _Z95)
    for _ in range(1000):
        value = median * math.exp(sigma * rng.standard_normal())
        if lo <= value <= hi:
            return value
    return min(max(median, lo), hi)


def _components(entry: Mapping[str, Any]) -> list[list[float]]:
    return [[float(f), float(t)] for f, t in entry["components"]]


def _vary(
    comps: list[list[float]], entry: Mapping[str, Any], rng: np.random.Generator
) -> list[list[float]]:
    comps = [list(c) for c in comps]
    for item in entry.get("vary", ()):
        k = int(item["component"])
        if "f" in item:
            lo, hi = item["f"]
            new = _lognormal(rng, comps[k][0], lo, hi)
            if "compensate" in item:
                c = int(item["compensate"])
                comps[c][0] -= new - comps[k][0]
                if comps[c][0] < 0:
                    raise ValueError(f"variability: negative fraction in {entry['section']}")
            comps[k][0] = new
        if "t_bio_h" in item:
            lo, hi = item["t_bio_h"]
            comps[k][1] = _lognormal(rng, comps[k][1], lo, hi)
    return comps


def _terms(comps: list[list[float]], t_up: float, scale: float = 1.0) -> tuple[Term, ...]:
    return tuple(Term(f * scale, t, t_up) for f, t in comps)


def _scaled(terms: tuple[Term, ...], scale: float) -> tuple[Term, ...]:
    return tuple(Term(t.f * scale, t.t_bio_h, t.t_up_h) for t in terms)


def _lesion_regions(regions: Mapping[str, RegionLike]) -> list[str]:
    out = []
    for name, info in regions.items():
        if getattr(info, "kind", "organ") == "lesion":
            site = getattr(info, "site", None)
            if site not in LESION_SITES:
                raise ValueError(f"regions[{name!r}].site: {site!r}; use one of {LESION_SITES}")
            out.append(name)
    return out


def _design_grades(n: int, probabilities: list[float], rng: np.random.Generator) -> list[int]:
    p = np.asarray(probabilities, dtype=float)
    grades = [int(g) for g in rng.choice([1, 2, 3, 4], size=n, p=p / p.sum())]
    if n >= 2:
        grades[int(rng.integers(n))] = 2
    return grades


def patient_kinetics(
    tracer: str,
    regions: Mapping[str, RegionLike],
    administered_mbq: float,
    *,
    seed: int = 0,
    variability: bool = True,
    design_grades: bool | None = None,
    body_mass_g: float | None = None,
) -> PatientKinetics:
    """Build the known-truth kinetics of a digital patient.

    Parameters
    ----------
    tracer : str
        Tracer name or alias (:func:`theranet.radiopharmaceuticals.get`); one of
        :func:`tracers`.
    regions : Mapping[str, RegionLike]
        Region name -> object with ``kind`` (``"organ"``/``"lesion"``), ``site``,
        ``mass_g`` and ``volume_ml`` (the anatomy's ``RegionInfo``).
    administered_mbq : float
        Injected activity (MBq).
    seed : int
        Seed of the variability and lesion design (deterministic).
    variability : bool
        Draw organ and lesion parameters within the published ranges; False gives
        the recommended default model exactly (lesions at the default per-gram uptake).
    design_grades : bool, optional
        Design a Krenning grade per lesion (SSTR tracers); default: ``variability``.
        When False the grades are those the default uptake gives.
    body_mass_g : float, optional
        Body mass for blood scaling; default: sum of the region masses.

    Returns
    -------
    PatientKinetics
    """
    if not administered_mbq > 0:
        raise ValueError(f"administered_mbq: must be > 0, got {administered_mbq}")
    if not regions:
        raise ValueError("regions: empty")
    table = _table()
    tentry = _tracer_entry(tracer)
    bio = table["biology"][tentry["biology"]]
    entries: dict[str, dict[str, Any]] = bio["regions"]
    const = {k: float(_value(v)) for k, v in table["constants"].items()}
    kdesign = table["krenning_design"]
    nuclide = Nuclide(tentry["nuclide"])
    t_phys = nuclide.half_life_h
    design = variability if design_grades is None else design_grades
    rng_org = np.random.default_rng([seed, 0])
    rng_design = np.random.default_rng([seed, 1])
    rng_lesion = np.random.default_rng([seed, 2])

    def comps_of(key: str) -> list[list[float]]:
        comps = _components(entries[key])
        return _vary(comps, entries[key], rng_org) if variability else comps

    mass = {n: float(r.mass_g) for n, r in regions.items()}
    volume = {n: float(r.volume_ml) for n, r in regions.items()}
    body = float(body_mass_g) if body_mass_g is not None else sum(mass.values())
    body_scale = body / const["reference_body_mass_g"]
    blood_mass = const["blood_mass_g"] * body_scale
    blood_volume = const["blood_volume_ml"] * body_scale

    wb_terms = _terms(comps_of("whole_body"), 0.0)
    blood_terms = _terms(comps_of("blood"), 0.0)
    out: dict[str, RegionKinetics] = {}
    params: dict[str, Mapping[str, Any]] = {}

    def add(name: str, kind: str, terms: tuple[Term, ...], entry: Mapping[str, Any]) -> None:
        prev = out.get(name)
        src, sec, st = entry["source"], entry["section"], entry["status"]
        if prev is not None:
            terms = prev.terms + terms
            src, sec, st = f"{prev.source}; {src}", f"{prev.section}; {sec}", prev.status
        out[name] = RegionKinetics(name, kind, terms, mass[name], volume[name], 0.0, src, sec, st)

    # specific organs
    for key, entry in entries.items():
        if key in ("whole_body", "blood", "lesion", "red_marrow"):
            continue
        comps = comps_of(key)
        t_up = float(entry["t_up_h"])
        params[key] = entry
        if key == "kidneys":
            ratio = float(_value(bio["kidney_cortex_medulla_ratio"]))
            parts = {
                "kidney_cortex": ratio * mass.get("kidney_cortex", 0.0),
                "kidney_medulla": mass.get("kidney_medulla", 0.0),
            }
            total = sum(parts.values())
            for name, weight in parts.items():
                if name in regions and total > 0:
                    add(name, "organ", _terms(comps, t_up, weight / total), entry)
            continue
        targets = [n for n in entry.get("regions", [key]) if n in regions]
        if not targets:
            continue
        organ_mass = sum(mass[n] for n in targets)
        for name in targets:
            scale = mass[name] if entry.get("per_gram", False) else mass[name] / organ_mass
            add(name, "organ", _terms(comps, t_up, scale), entry)

    # blood-based regions
    blood_entry = {**entries["blood"]}
    if "heart_blood" in regions:
        add(
            "heart_blood",
            "blood",
            _scaled(blood_terms, volume["heart_blood"] / blood_volume),
            blood_entry,
        )
    if "red_marrow" in regions:
        rmblr = float(_value(bio["rmblr"]))
        marrow_entry = {
            "source": f"RMBLR {rmblr:g} x blood ({bio['rmblr']['source']})",
            "section": bio["rmblr"]["section"],
            "status": bio["rmblr"]["status"],
        }
        params["rmblr"] = bio["rmblr"]
        add(
            "red_marrow",
            "blood",
            _scaled(blood_terms, rmblr * mass["red_marrow"] / blood_mass),
            marrow_entry,
        )
        if "red_marrow" in entries:
            entry = entries["red_marrow"]
            params["red_marrow"] = entry
            add(
                "red_marrow",
                "blood",
                _terms(comps_of("red_marrow"), float(entry["t_up_h"]), mass["red_marrow"]),
                entry,
            )

    # lesions
    lesions = _lesion_regions(regions)
    les_entry = entries["lesion"]
    params["lesion"] = les_entry
    factor = float(_value(tentry["lesion_factor"])) if "lesion_factor" in tentry else 1.0
    les_comps = [[f * factor, t] for f, t in _components(les_entry)]
    les_t_up = float(les_entry["t_up_h"])
    t_ref = float(_value(tentry["reference_time_h"]))
    krenning = bool(tentry["krenning"])
    grades: dict[str, int | None] = {}
    designed = _design_grades(len(lesions), _value(kdesign["probabilities"]), rng_design)
    positions = rng_design.random(len(lesions))
    if krenning and design and lesions:
        if "liver" not in out:
            raise ValueError("regions: a Krenning design needs 'liver' with specific uptake")
        ref = "spleen" if "spleen" in out else "kidney_cortex"
        c_liver = float(_retention(out["liver"].terms, np.array([t_ref]))[0]) / volume["liver"]
        c_ref = float(_retention(out[ref].terms, np.array([t_ref]))[0]) / volume[ref]
    for i, name in enumerate(lesions):
        comps = [list(c) for c in les_comps]
        if variability:
            comps = _vary(comps, les_entry, rng_lesion)
        if krenning and design:
            grade = designed[i]
            u = float(positions[i])
            if grade == 3 and c_ref <= c_liver * 1.05:
                grade = 4  # no room between liver and spleen: documented rule
            if grade == 1:
                lo, hi = _value(kdesign["grade1_liver_ratio"])
                target = c_liver * lo * (hi / lo) ** u
            elif grade == 2:
                lo, hi = _value(kdesign["grade2_liver_ratio"])
                target = c_liver * lo * (hi / lo) ** u
            elif grade == 3:
                lo, hi = _value(kdesign["grade3_position"])
                target = c_liver * (c_ref / c_liver) ** (lo + (hi - lo) * u)
            else:
                lo, hi = _value(kdesign["grade4_spleen_ratio"])
                target = max(c_ref, c_liver) * lo * (hi / lo) ** u
            shape = _retention(_terms(comps, les_t_up), np.array([t_ref]))[0]
            # shape is the retention of f-weighted comps per gram; rescale to the target
            scale = target * volume[name] / (shape * mass[name])
            comps = [[f * scale, t] for f, t in comps]
            grades[name] = grade
        out[name] = RegionKinetics(
            name,
            "lesion",
            _terms(comps, les_t_up, mass[name]),
            mass[name],
            volume[name],
            0.0,
            les_entry["source"],
            les_entry["section"],
            "derived" if (krenning and design) else les_entry["status"],
        )

    # bladder
    bladder_cfg = {
        k: const[k]
        for k in ("first_void_h", "void_interval_h", "bladder_residual_ml", "urine_flow_ml_per_h")
    }
    bladder_cfg["residual_ml"] = bladder_cfg.pop("bladder_residual_ml")
    if "bladder" in regions:
        c = table["constants"]["void_interval_h"]
        out["bladder"] = RegionKinetics(
            "bladder",
            "bladder",
            (),
            mass["bladder"],
            volume["bladder"],
            0.0,
            "urinary excretion dU/dt of the whole-body model; voids at 1.5 h then every 4 h, "
            "residual 20 mL, urine 60 mL/h",
            c["section"],
            "derived",
        )

    # remainder
    sharing = [
        n for n, r in regions.items() if n not in out and getattr(r, "kind", "organ") != "lesion"
    ]
    if not sharing:
        raise ValueError("regions: no region left to hold the remainder (e.g. 'remainder')")
    raw: list[Term] = list(wb_terms)
    for r in out.values():
        if r.kind != "bladder":
            raw.extend(_scaled(r.terms, -1.0))
    share_mass = sum(mass[n] for n in sharing)
    wb_entry = entries["whole_body"]
    params["whole_body"] = wb_entry
    params["blood"] = entries["blood"]
    for name in sharing:
        out[name] = RegionKinetics(
            name,
            "remainder",
            (),
            mass[name],
            volume[name],
            mass[name] / share_mass,
            "remainder = whole body - modelled regions, shared by mass "
            f"(whole body: {wb_entry['source']})",
            wb_entry["section"],
            wb_entry["status"],
        )

    # order: regions mapping order
    ordered = {n: out[n] for n in regions if n in out}

    # horizon and clipping check
    all_terms = list(wb_terms) + [t for r in ordered.values() for t in r.terms]
    t_eff_max = max(
        1.0 / (_LN2 / t_phys + (_LN2 / t.t_bio_h if math.isfinite(t.t_bio_h) else 0.0))
        for t in all_terms
    )
    horizon = 60.0 * t_eff_max
    grid = np.concatenate(([0.0], np.geomspace(1e-3, horizon, 4000)))
    raw_terms = tuple(raw)
    raw_vals = _retention(raw_terms, grid)
    clipped = bool(np.min(raw_vals) < -1e-12 * max(1.0, float(np.max(np.abs(raw_vals)))))

    grades_out: dict[str, int | None] = {n: grades.get(n) for n in lesions}
    patient = PatientKinetics(
        tracer=tentry["name"],
        nuclide=nuclide.name,
        administered_mbq=float(administered_mbq),
        t_phys_h=t_phys,
        region_kinetics=MappingProxyType(ordered),
        whole_body_terms=wb_terms,
        blood_terms=blood_terms,
        blood_volume_ml=blood_volume,
        blood_mass_g=blood_mass,
        lesion_grade=MappingProxyType(grades_out),
        reference_time_h=t_ref,
        bladder=MappingProxyType(bladder_cfg),
        parameters=MappingProxyType(params),
        krenning_k1=float(_value(kdesign["k1"])),
        _raw_remainder_terms=raw_terms,
        _remainder_clipped=clipped,
        _horizon_h=horizon,
    )
    if krenning and not design:
        object.__setattr__(
            patient,
            "lesion_grade",
            MappingProxyType({n: patient.krenning_score(n) for n in lesions}),
        )
    return patient
