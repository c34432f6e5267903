"""Materials, and their NIST electron and photon reference data.

Each :class:`Material` of :data:`MATERIALS` (``water``, ``soft_tissue``, ``bone``,
``lung``, ``adipose``, ``air``, and ``lead`` for collimators and shielding) carries
its density and elemental composition by mass (ICRU Report 44 for the body
tissues) and names the NIST materials whose tables back it:

* :func:`estar` -- electron collision and radiative stopping powers, CSDA range,
  radiation yield (NIST ESTAR, 1 keV-10 MeV);
* :func:`photon_attenuation` -- photon mass attenuation and mass energy-absorption
  coefficients (Hubbell & Seltzer, NISTIR 5632; 1 keV-20 MeV);
* :func:`photon_cross_sections` -- partial photon interaction coefficients
  (coherent, incoherent, photoelectric, pair) from NIST XCOM element cross
  sections by the mixture rule, for photon transport (1 keV-20 MeV).

The tables are small CSV files shipped in ``theranet/data/nist/``, each starting
with ``#`` lines that give source, licence, extraction script and units; they are
produced by ``scripts/extract_nist_tables.py`` and read once (cached).

Units
-----
Energy MeV, density g/cm^3, mass stopping power MeV cm^2/g, mass attenuation
coefficients cm^2/g, CSDA range g/cm^2 (the conventions of the NIST tables; the
unit is in every name). Lengths elsewhere in theranet are in mm:
:meth:`ElectronStoppingTable.csda_range_mm` and
:meth:`PhotonAttenuationTable.mu_per_mm` convert.

Which NIST material backs which theranet material
-------------------------------------------------
==============  ===============================  ====================================
theranet        photon tables, composition       ESTAR table (NIST name)
==============  ===============================  ====================================
``water``       Water, Liquid                    WATER, LIQUID
``soft_tissue`` Muscle, Skeletal (ICRU-44)       TISSUE, SOFT (ICRU FOUR-COMPONENT)
``bone``        Bone, Cortical (ICRU-44)         BONE, CORTICAL (ICRP)
``lung``        Lung Tissue (ICRU-44)            LUNG (ICRP)
``adipose``     Adipose Tissue (ICRU-44)         ADIPOSE TISSUE (ICRP)
``air``         Air, Dry (Near Sea Level)        AIR, DRY (NEAR SEA LEVEL)
``lead``        Lead                             LEAD
==============  ===============================  ====================================

NIST ESTAR has no ICRU-44 tissues; its nearest materials are used. Run through the
ESTAR algorithm, the ICRU-44 compositions give mass stopping powers within 0.2 %
(soft tissue, lung), 0.7 % (adipose) and 1.7 % (cortical bone, ESTAR's ICRP bone
stopping more) of the tables shipped here, at 10 keV-10 MeV.

Interpolation
-------------
Values between tabulated energies are interpolated in log-log space with a
monotone piecewise-cubic (PCHIP) curve: it passes through every tabulated point,
has a continuous slope and never overshoots, so it is monotone wherever the table
is. Absorption edges appear in the photon tables as two rows with the same energy
(below, then above the edge); the curve is a step there and never interpolates
across an edge; at exactly an edge energy the above-edge value is returned.
Energies outside a table's range raise :class:`EnergyRangeError`.

Examples
--------
>>> from theranet.physics import estar, photon_attenuation, MATERIALS
>>> round(estar("water").s_col(1.0), 6)
1.849
>>> round(photon_attenuation("water").mu_over_rho(0.1), 6)
0.1707
>>> MATERIALS["bone"].density_g_per_cm3
1.92
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.interpolate import PchipInterpolator

from theranet.errors import TheranetError

__all__ = [
    "MATERIALS",
    "PHOTON_PROCESSES",
    "ElectronStoppingTable",
    "EnergyRangeError",
    "Material",
    "MaterialError",
    "PhotonAttenuationTable",
    "PhotonCrossSectionTable",
    "data_files",
    "estar",
    "get_material",
    "photon_attenuation",
    "photon_cross_sections",
]

_DATA_DIR = "data/nist"
_PAIR_THRESHOLDS_MEV = {"pair_nuclear": 1.022007, "pair_electron": 2.044014}
PHOTON_PROCESSES = (
    "coherent",
    "incoherent",
    "photoelectric",
    "pair_nuclear",
    "pair_electron",
    "pair",
    "total",
)
"""Process names accepted by :meth:`PhotonCrossSectionTable.mu_over_rho`."""

#: Atomic numbers of the elements used in the compositions.
_Z = {"H": 1, "C": 6, "N": 7, "O": 8, "Na": 11, "Mg": 12, "P": 15, "S": 16, "Cl": 17,
      "Ar": 18, "K": 19, "Ca": 20, "Pb": 82}  # fmt: skip


class MaterialError(TheranetError, ValueError):
    """A material name is unknown, or a material definition is inconsistent."""


class EnergyRangeError(TheranetError, ValueError):
    """An energy is not finite or lies outside the range of a reference table."""


# ------------------------------------------------------------------------ materials


@dataclass(frozen=True)
class Material:
    """A homogeneous material: density and elemental composition by mass.

    Parameters
    ----------
    name : str
        Registry key (``"water"``, ``"soft_tissue"``...).
    description : str
        What the material is, in words, with the name used by its source.
    density_g_per_cm3 : float
        Mass density, g/cm^3.
    composition : Mapping[str, float]
        Element symbol -> mass fraction; the fractions sum to 1 within 1e-3.
    composition_source : str
        Where density and composition come from.
    estar_material : str
        Name of the NIST ESTAR material whose table :func:`estar` returns.
    photon_material : str
        Name of the NIST (Hubbell & Seltzer) material whose table
        :func:`photon_attenuation` returns; :func:`photon_cross_sections` is
        computed for :attr:`composition`.
    """

    name: str
    description: str
    density_g_per_cm3: float
    composition: Mapping[str, float] = field(hash=False)
    composition_source: str
    estar_material: str
    photon_material: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.density_g_per_cm3) and self.density_g_per_cm3 > 0):
            raise MaterialError(
                f"Material({self.name!r}).density_g_per_cm3",
                "must be finite and positive",
                self.density_g_per_cm3,
            )
        composition = {str(k): float(v) for k, v in dict(self.composition).items()}
        unknown = sorted(set(composition) - set(_Z))
        if unknown:
            raise MaterialError(
                f"Material({self.name!r}).composition", "unknown element symbols", unknown
            )
        if any(not (0 < w <= 1) for w in composition.values()):
            raise MaterialError(
                f"Material({self.name!r}).composition",
                "mass fractions must lie in (0, 1]",
                composition,
            )
        total = math.fsum(composition.values())
        if abs(total - 1.0) > 1e-3:
            raise MaterialError(
                f"Material({self.name!r}).composition",
                "mass fractions do not sum to 1 (within 1e-3)",
                total,
            )
        object.__setattr__(self, "composition", MappingProxyType(composition))

    @property
    def atomic_numbers(self) -> dict[str, int]:
        """Element symbol -> atomic number, for the elements of :attr:`composition`."""
        return {symbol: _Z[symbol] for symbol in self.composition}


_ICRU44 = (
    "ICRU Report 44 (1989), Tissue Substitutes in Radiation Dosimetry and Measurement; "
    "density and mass fractions as tabulated by NIST in Hubbell & Seltzer, NISTIR 5632, "
    "Table 2"
)

MATERIALS: Mapping[str, Material] = MappingProxyType(
    {
        m.name: m
        for m in (
            Material(
                "water",
                "Water, liquid (NIST 'Water, Liquid')",
                1.0,
                {"H": 0.111898, "O": 0.888102},
                "stoichiometric H2O; NISTIR 5632 Table 2",
                "WATER, LIQUID",
                "Water, Liquid",
            ),
            Material(
                "soft_tissue",
                "Soft tissue, represented by ICRU-44 adult skeletal muscle "
                "(NIST 'Muscle, Skeletal (ICRU-44)')",
                1.05,
                {
                    "H": 0.102,
                    "C": 0.143,
                    "N": 0.034,
                    "O": 0.710,
                    "Na": 0.001,
                    "P": 0.002,
                    "S": 0.003,
                    "Cl": 0.001,
                    "K": 0.004,
                },
                _ICRU44,
                "TISSUE, SOFT (ICRU FOUR-COMPONENT)",
                "Muscle, Skeletal (ICRU-44)",
            ),
            Material(
                "bone",
                "Cortical bone, adult (NIST 'Bone, Cortical (ICRU-44)')",
                1.92,
                {
                    "H": 0.034,
                    "C": 0.155,
                    "N": 0.042,
                    "O": 0.435,
                    "Na": 0.001,
                    "Mg": 0.002,
                    "P": 0.103,
                    "S": 0.003,
                    "Ca": 0.225,
                },
                _ICRU44,
                "BONE, CORTICAL (ICRP)",
                "Bone, Cortical (ICRU-44)",
            ),
            Material(
                "lung",
                "Lung tissue, adult, uninflated (NIST 'Lung Tissue (ICRU-44)')",
                1.05,
                {
                    "H": 0.103,
                    "C": 0.105,
                    "N": 0.031,
                    "O": 0.749,
                    "Na": 0.002,
                    "P": 0.002,
                    "S": 0.003,
                    "Cl": 0.003,
                    "K": 0.002,
                },
                _ICRU44,
                "LUNG (ICRP)",
                "Lung Tissue (ICRU-44)",
            ),
            Material(
                "adipose",
                "Adipose tissue, adult (NIST 'Adipose Tissue (ICRU-44)')",
                0.95,
                {
                    "H": 0.114,
                    "C": 0.598,
                    "N": 0.007,
                    "O": 0.278,
                    "Na": 0.001,
                    "S": 0.001,
                    "Cl": 0.001,
                },
                _ICRU44,
                "ADIPOSE TISSUE (ICRP)",
                "Adipose Tissue (ICRU-44)",
            ),
            Material(
                "air",
                "Air, dry, near sea level (NIST 'Air, Dry (Near Sea Level)')",
                1.205e-3,
                {"C": 0.000124, "N": 0.755268, "O": 0.231781, "Ar": 0.012827},
                "NISTIR 5632 Table 2",
                "AIR, DRY (NEAR SEA LEVEL)",
                "Air, Dry (Near Sea Level)",
            ),
            Material(
                "lead",
                "Lead (collimators, shielding)",
                11.35,
                {"Pb": 1.0},
                "element; NISTIR 5632 Table 1",
                "LEAD",
                "Lead",
            ),
        )
    }
)
"""Registry of the materials with shipped NIST data, by name."""


def get_material(material: Material | str) -> Material:
    """Return a registered material.

    Parameters
    ----------
    material : Material or str
        A :class:`Material` (returned as is when registered) or a registry name;
        case, spaces and hyphens are ignored (``"Soft tissue"`` is ``soft_tissue``).

    Returns
    -------
    Material

    Raises
    ------
    MaterialError
        If the name is not in :data:`MATERIALS`.
    """
    if isinstance(material, Material):
        key = material.name
    else:
        key = str(material).strip().lower().replace(" ", "_").replace("-", "_")
    found = MATERIALS.get(key)
    if found is None or (isinstance(material, Material) and found != material):
        raise MaterialError(
            "material",
            "no shipped NIST data for this material",
            material if not isinstance(material, Material) else material.name,
            fix=f"use one of {', '.join(MATERIALS)}",
        )
    return found


# ---------------------------------------------------------------------- data files


@dataclass(frozen=True)
class _CsvTable:
    filename: str
    title: str
    meta: Mapping[str, str]
    columns: tuple[str, ...]
    data: NDArray[np.float64]

    def column(self, name: str) -> NDArray[np.float64]:
        values = self.data[:, self.columns.index(name)].copy()
        values.setflags(write=False)
        return values


def data_files() -> tuple[str, ...]:
    """Names of the shipped NIST CSV tables (``estar_*``, ``photon_*``, ``xcom_*``)."""
    folder = resources.files("theranet").joinpath(_DATA_DIR)
    return tuple(sorted(p.name for p in folder.iterdir() if p.name.endswith(".csv")))


@cache
def _read_csv(filename: str) -> _CsvTable:
    text = resources.files("theranet").joinpath(f"{_DATA_DIR}/{filename}").read_text("ascii")
    title, meta, columns, rows = "", {}, None, []
    for line in text.splitlines():
        if line.startswith("#"):
            body = line[1:].strip()
            key, sep, value = body.partition(": ")
            if sep and key.isidentifier():
                meta[key] = value
            elif not title:
                title = body
        elif columns is None:
            columns = tuple(line.strip().split(","))
        elif line.strip():
            rows.append([float(v) for v in line.split(",")])
    if columns is None or not rows:
        raise RuntimeError(f"theranet/{_DATA_DIR}/{filename}: no data (damaged installation?)")
    data = np.array(rows, dtype=float)
    data.setflags(write=False)
    return _CsvTable(filename, title, MappingProxyType(meta), columns, data)


# ------------------------------------------------------------------ interpolation


def _as_energy(energy_mev: ArrayLike, lo: float, hi: float, what: str) -> NDArray[np.float64]:
    energy = np.asarray(energy_mev, dtype=float)
    if not np.all(np.isfinite(energy)):
        raise EnergyRangeError("energy_mev", "must be finite", energy_mev)
    outside = (energy < lo * (1 - 1e-12)) | (energy > hi * (1 + 1e-12))
    if np.any(outside):
        raise EnergyRangeError(
            "energy_mev",
            f"outside the tabulated range {lo:g}-{hi:g} MeV of {what}",
            float(energy[outside].flat[0]),
            fix=f"give energies between {lo:g} and {hi:g} MeV",
        )
    return np.clip(energy, lo, hi)


def _result(energy_mev: ArrayLike, values: NDArray[np.float64]) -> float | NDArray[np.float64]:
    return float(values) if np.ndim(energy_mev) == 0 else values


class _LogLogCurve:
    """PCHIP in (ln E, ln y), one piece per interval between absorption edges.

    An edge is a repeated energy: the row before holds the below-edge value, the
    row after the above-edge value. At exactly an edge energy the above-edge value
    is returned.
    """

    def __init__(self, energy: NDArray[np.float64], values: NDArray[np.float64]) -> None:
        if np.any(values <= 0):
            raise ValueError("log-log interpolation needs positive values")
        cuts = np.flatnonzero(np.diff(energy) == 0) + 1
        self.edges = energy[cuts]
        self._pieces: list[Callable[[NDArray[np.float64]], NDArray[np.float64]]] = []
        for idx in np.split(np.arange(energy.size), cuts):
            x, y = np.log(energy[idx]), np.log(values[idx])
            if x.size == 1:
                self._pieces.append(lambda _x, y0=float(y[0]): np.full(_x.shape, y0))
            else:
                self._pieces.append(PchipInterpolator(x, y, extrapolate=True))

    def __call__(self, energy: NDArray[np.float64]) -> NDArray[np.float64]:
        piece = np.searchsorted(self.edges, energy, side="right")
        x = np.log(energy)
        out = np.empty_like(x)
        for k, curve in enumerate(self._pieces):
            sel = piece == k
            if np.any(sel):
                out[sel] = curve(x[sel])
        return np.exp(out)


class _ThresholdCurve:
    """Pair production: PCHIP of ln(y / (1 - E_th/E)**3) against ln E; zero below E_th."""

    def __init__(
        self, energy: NDArray[np.float64], values: NDArray[np.float64], threshold: float
    ) -> None:
        ok = (energy > threshold) & (values > 0)
        e = energy[ok]
        self._threshold = threshold
        self._curve = PchipInterpolator(
            np.log(e), np.log(values[ok] / (1 - threshold / e) ** 3), extrapolate=True
        )

    def __call__(self, energy: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.zeros_like(energy)
        above = energy > self._threshold
        e = energy[above]
        out[above] = np.exp(self._curve(np.log(e))) * (1 - self._threshold / e) ** 3
        return out


# ------------------------------------------------------------------------- ESTAR


@dataclass(frozen=True, eq=False)
class ElectronStoppingTable:
    """NIST ESTAR electron stopping powers and ranges for one material.

    Attributes
    ----------
    material : str
        theranet material name.
    nist_material : str
        The NIST ESTAR material of the table.
    density_g_per_cm3, mean_excitation_energy_ev : float
        Density and I-value of the ESTAR material.
    energy_mev : ndarray
        Tabulated kinetic energies, 0.001-10 MeV (ESTAR grid, 65 points).
    s_col_mev_cm2_per_g, s_rad_mev_cm2_per_g : ndarray
        Collision and radiative mass stopping powers, MeV cm^2/g.
    csda_range_table_g_per_cm2 : ndarray
        CSDA range, g/cm^2.
    radiation_yield_table : ndarray
        Fraction of the initial kinetic energy emitted as bremsstrahlung.
    density_effect_delta_table : ndarray
        Density-effect parameter delta.
    source : Mapping[str, str]
        The ``# key: value`` provenance lines of the CSV file.

    Notes
    -----
    Below 10 keV ESTAR (Bethe theory without shell corrections) overestimates the
    collision stopping power, by about 10 % at 1 keV for low-Z media; NIST's
    standard tables start at 10 keV.
    """

    material: str
    nist_material: str
    density_g_per_cm3: float
    mean_excitation_energy_ev: float
    energy_mev: NDArray[np.float64]
    s_col_mev_cm2_per_g: NDArray[np.float64]
    s_rad_mev_cm2_per_g: NDArray[np.float64]
    csda_range_table_g_per_cm2: NDArray[np.float64]
    radiation_yield_table: NDArray[np.float64]
    density_effect_delta_table: NDArray[np.float64]
    source: Mapping[str, str] = field(repr=False)
    _curves: dict[str, _LogLogCurve] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        curves = {
            "s_col": _LogLogCurve(self.energy_mev, self.s_col_mev_cm2_per_g),
            "s_rad": _LogLogCurve(self.energy_mev, self.s_rad_mev_cm2_per_g),
            "range": _LogLogCurve(self.energy_mev, self.csda_range_table_g_per_cm2),
            "yield": _LogLogCurve(self.energy_mev, self.radiation_yield_table),
        }
        object.__setattr__(self, "_curves", curves)

    @property
    def energy_range_mev(self) -> tuple[float, float]:
        """Lowest and highest tabulated energy, MeV."""
        return float(self.energy_mev[0]), float(self.energy_mev[-1])

    def _eval(self, name: str, energy_mev: ArrayLike) -> float | NDArray[np.float64]:
        lo, hi = self.energy_range_mev
        energy = _as_energy(energy_mev, lo, hi, f"NIST ESTAR ({self.nist_material})")
        return _result(energy_mev, self._curves[name](energy))

    def s_col(self, energy_mev: ArrayLike) -> float | NDArray[np.float64]:
        """Collision mass stopping power, MeV cm^2/g.

        Parameters
        ----------
        energy_mev : float or array_like
            Electron kinetic energy, MeV, within :attr:`energy_range_mev`.

        Returns
        -------
        float or ndarray
            A float for a scalar energy, else an array of the energies' shape.

        Raises
        ------
        EnergyRangeError
            For energies outside the table or not finite.
        """
        return self._eval("s_col", energy_mev)

    def s_rad(self, energy_mev: ArrayLike) -> float | NDArray[np.float64]:
        """Radiative mass stopping power, MeV cm^2/g (see :meth:`s_col`)."""
        return self._eval("s_rad", energy_mev)

    def s_total(self, energy_mev: ArrayLike) -> float | NDArray[np.float64]:
        """Total mass stopping power (collision + radiative), MeV cm^2/g."""
        lo, hi = self.energy_range_mev
        energy = _as_energy(energy_mev, lo, hi, f"NIST ESTAR ({self.nist_material})")
        curves = self._curves
        return _result(energy_mev, curves["s_col"](energy) + curves["s_rad"](energy))

    def csda_range_g_per_cm2(self, energy_mev: ArrayLike) -> float | NDArray[np.float64]:
        """CSDA range, g/cm^2 (see :meth:`s_col`)."""
        return self._eval("range", energy_mev)

    def csda_range_mm(
        self, energy_mev: ArrayLike, *, density_g_per_cm3: float
    ) -> float | NDArray[np.float64]:
        """CSDA range in mm in a medium of the given density.

        Parameters
        ----------
        energy_mev : float or array_like
            Electron kinetic energy, MeV.
        density_g_per_cm3 : float
            Density of the medium (for example ``MATERIALS[name].density_g_per_cm3``).

        Returns
        -------
        float or ndarray
            ``csda_range_g_per_cm2 / density * 10`` mm.
        """
        if not (math.isfinite(density_g_per_cm3) and density_g_per_cm3 > 0):
            raise MaterialError(
                "density_g_per_cm3", "must be finite and positive", density_g_per_cm3
            )
        return self._eval("range", energy_mev) / density_g_per_cm3 * 10.0

    def radiation_yield(self, energy_mev: ArrayLike) -> float | NDArray[np.float64]:
        """Radiation yield: fraction of the kinetic energy emitted as bremsstrahlung."""
        return self._eval("yield", energy_mev)


def estar(material: Material | str) -> ElectronStoppingTable:
    """NIST ESTAR electron stopping powers and CSDA ranges of a material.

    Parameters
    ----------
    material : Material or str
        A registered material or its name (see :data:`MATERIALS`).

    Returns
    -------
    ElectronStoppingTable
        Cached: every call for a material returns the same object.

    Examples
    --------
    >>> table = estar("water")
    >>> round(table.csda_range_g_per_cm2(1.0), 6)
    0.4367
    """
    return _estar(get_material(material).name)


@cache
def _estar(name: str) -> ElectronStoppingTable:
    t = _read_csv(f"estar_{name}.csv")
    return ElectronStoppingTable(
        material=name,
        nist_material=t.meta["nist_material"],
        density_g_per_cm3=float(t.meta["density_g_per_cm3"]),
        mean_excitation_energy_ev=float(t.meta["mean_excitation_energy_ev"]),
        energy_mev=t.column("energy_mev"),
        s_col_mev_cm2_per_g=t.column("s_col_mev_cm2_per_g"),
        s_rad_mev_cm2_per_g=t.column("s_rad_mev_cm2_per_g"),
        csda_range_table_g_per_cm2=t.column("csda_range_g_per_cm2"),
        radiation_yield_table=t.column("radiation_yield"),
        density_effect_delta_table=t.column("density_effect_delta"),
        source=t.meta,
    )


# ------------------------------------------------------------------ photon tables


@dataclass(frozen=True, eq=False)
class PhotonAttenuationTable:
    """NIST photon mass attenuation and mass energy-absorption coefficients.

    Attributes
    ----------
    material : str
        theranet material name.
    nist_material : str
        The NIST material (Hubbell & Seltzer, NISTIR 5632).
    density_g_per_cm3 : float
        Density of the NIST material.
    energy_mev : ndarray
        Tabulated photon energies, 0.001-20 MeV; an absorption edge appears twice.
    mu_over_rho_cm2_per_g, mu_en_over_rho_cm2_per_g : ndarray
        Mass attenuation and mass energy-absorption coefficients, cm^2/g.
    edges_mev : tuple of float
        Absorption-edge energies within the table, MeV.
    source : Mapping[str, str]
        The ``# key: value`` provenance lines of the CSV file.
    """

    material: str
    nist_material: str
    density_g_per_cm3: float
    energy_mev: NDArray[np.float64]
    mu_over_rho_cm2_per_g: NDArray[np.float64]
    mu_en_over_rho_cm2_per_g: NDArray[np.float64]
    source: Mapping[str, str] = field(repr=False)
    _curves: dict[str, _LogLogCurve] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        mu = _LogLogCurve(self.energy_mev, self.mu_over_rho_cm2_per_g)
        mu_en = _LogLogCurve(self.energy_mev, self.mu_en_over_rho_cm2_per_g)
        object.__setattr__(self, "_curves", {"mu": mu, "mu_en": mu_en})

    @property
    def edges_mev(self) -> tuple[float, ...]:
        """Absorption-edge energies within the table, MeV."""
        return tuple(float(e) for e in self._curves["mu"].edges)

    @property
    def energy_range_mev(self) -> tuple[float, float]:
        """Lowest and highest tabulated energy, MeV."""
        return float(self.energy_mev[0]), float(self.energy_mev[-1])

    def _eval(self, name: str, energy_mev: ArrayLike) -> float | NDArray[np.float64]:
        lo, hi = self.energy_range_mev
        what = f"the NIST photon table ({self.nist_material})"
        energy = _as_energy(energy_mev, lo, hi, what)
        return _result(energy_mev, self._curves[name](energy))

    def mu_over_rho(self, energy_mev: ArrayLike) -> float | NDArray[np.float64]:
        """Mass attenuation coefficient (coherent scattering included), cm^2/g.

        Parameters
        ----------
        energy_mev : float or array_like
            Photon energy, MeV, within :attr:`energy_range_mev`. At exactly an
            absorption-edge energy the value above the edge is returned.

        Returns
        -------
        float or ndarray
            A float for a scalar energy, else an array of the energies' shape.

        Raises
        ------
        EnergyRangeError
            For energies outside the table or not finite.
        """
        return self._eval("mu", energy_mev)

    def mu_en_over_rho(self, energy_mev: ArrayLike) -> float | NDArray[np.float64]:
        """Mass energy-absorption coefficient, cm^2/g (see :meth:`mu_over_rho`)."""
        return self._eval("mu_en", energy_mev)

    def mu_per_mm(
        self, energy_mev: ArrayLike, *, density_g_per_cm3: float | None = None
    ) -> float | NDArray[np.float64]:
        """Linear attenuation coefficient, 1/mm.

        Parameters
        ----------
        energy_mev : float or array_like
            Photon energy, MeV.
        density_g_per_cm3 : float, optional
            Density of the medium; default :attr:`density_g_per_cm3`.

        Returns
        -------
        float or ndarray
            ``mu_over_rho * density / 10``: mu/rho [cm^2/g] times density [g/cm^3]
            is in 1/cm, and 1/cm = 0.1/mm.
        """
        rho = self.density_g_per_cm3 if density_g_per_cm3 is None else density_g_per_cm3
        if not (math.isfinite(rho) and rho > 0):
            raise MaterialError("density_g_per_cm3", "must be finite and positive", rho)
        return self._eval("mu", energy_mev) * rho / 10.0


def photon_attenuation(material: Material | str) -> PhotonAttenuationTable:
    """NIST photon mu/rho and mu_en/rho of a material (Hubbell & Seltzer, NISTIR 5632).

    Parameters
    ----------
    material : Material or str
        A registered material or its name (see :data:`MATERIALS`).

    Returns
    -------
    PhotonAttenuationTable
        Cached: every call for a material returns the same object.

    Examples
    --------
    >>> water = photon_attenuation("water")
    >>> round(water.mu_over_rho(1.0), 6), round(water.mu_en_over_rho(1.0), 6)
    (0.07072, 0.03103)
    """
    return _photon(get_material(material).name)


@cache
def _photon(name: str) -> PhotonAttenuationTable:
    t = _read_csv(f"photon_{name}.csv")
    return PhotonAttenuationTable(
        material=name,
        nist_material=t.meta["nist_material"],
        density_g_per_cm3=float(t.meta["density_g_per_cm3"]),
        energy_mev=t.column("energy_mev"),
        mu_over_rho_cm2_per_g=t.column("mu_over_rho_cm2_per_g"),
        mu_en_over_rho_cm2_per_g=t.column("mu_en_over_rho_cm2_per_g"),
        source=t.meta,
    )


@dataclass(frozen=True, eq=False)
class PhotonCrossSectionTable:
    """Partial photon interaction coefficients (NIST XCOM, mixture rule).

    Attributes
    ----------
    material : str
        theranet material name; the coefficients are for its composition.
    energy_mev : ndarray
        Tabulated photon energies, 0.001-20 MeV; an absorption edge appears twice.
    coherent_cm2_per_g, incoherent_cm2_per_g, photoelectric_cm2_per_g : ndarray
        Rayleigh, Compton (bound-electron) and photoelectric coefficients, cm^2/g.
    pair_nuclear_cm2_per_g, pair_electron_cm2_per_g : ndarray
        Pair production in the nuclear and in the electron field, cm^2/g (zero
        below 1.022007 and 2.044014 MeV).
    total_cm2_per_g : ndarray
        Sum of the five, cm^2/g (agrees with :func:`photon_attenuation` within
        1 %; see the ``validation`` line of :attr:`source`).
    source : Mapping[str, str]
        The ``# key: value`` provenance lines of the CSV file.
    """

    material: str
    energy_mev: NDArray[np.float64]
    coherent_cm2_per_g: NDArray[np.float64]
    incoherent_cm2_per_g: NDArray[np.float64]
    photoelectric_cm2_per_g: NDArray[np.float64]
    pair_nuclear_cm2_per_g: NDArray[np.float64]
    pair_electron_cm2_per_g: NDArray[np.float64]
    total_cm2_per_g: NDArray[np.float64]
    source: Mapping[str, str] = field(repr=False)
    _curves: dict[str, _LogLogCurve | _ThresholdCurve] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        e = self.energy_mev
        curves = {
            "coherent": _LogLogCurve(e, self.coherent_cm2_per_g),
            "incoherent": _LogLogCurve(e, self.incoherent_cm2_per_g),
            "photoelectric": _LogLogCurve(e, self.photoelectric_cm2_per_g),
            "pair_nuclear": _ThresholdCurve(
                e, self.pair_nuclear_cm2_per_g, _PAIR_THRESHOLDS_MEV["pair_nuclear"]
            ),
            "pair_electron": _ThresholdCurve(
                e, self.pair_electron_cm2_per_g, _PAIR_THRESHOLDS_MEV["pair_electron"]
            ),
        }
        object.__setattr__(self, "_curves", curves)

    @property
    def energy_range_mev(self) -> tuple[float, float]:
        """Lowest and highest tabulated energy, MeV."""
        return float(self.energy_mev[0]), float(self.energy_mev[-1])

    def mu_over_rho(
        self, energy_mev: ArrayLike, process: str = "total"
    ) -> float | NDArray[np.float64]:
        """Mass interaction coefficient of one process (or their sum), cm^2/g.

        Parameters
        ----------
        energy_mev : float or array_like
            Photon energy, MeV, within :attr:`energy_range_mev`; at exactly an edge
            energy the value above the edge is returned.
        process : str
            One of :data:`PHOTON_PROCESSES`: ``"coherent"``, ``"incoherent"``,
            ``"photoelectric"``, ``"pair_nuclear"``, ``"pair_electron"``, ``"pair"``
            (both fields) or ``"total"`` (all five, interpolated separately).

        Returns
        -------
        float or ndarray
        """
        if process not in PHOTON_PROCESSES:
            raise ValueError(f"process: unknown {process!r}; use one of {PHOTON_PROCESSES}")
        lo, hi = self.energy_range_mev
        energy = _as_energy(energy_mev, lo, hi, f"the XCOM table ({self.material})")
        curves = self._curves
        if process == "total":
            names = list(curves)
        elif process == "pair":
            names = ["pair_nuclear", "pair_electron"]
        else:
            names = [process]
        return _result(energy_mev, sum(curves[n](energy) for n in names))


def photon_cross_sections(material: Material | str) -> PhotonCrossSectionTable:
    """Partial photon interaction coefficients of a material (NIST XCOM, mixture rule).

    Parameters
    ----------
    material : Material or str
        A registered material or its name (see :data:`MATERIALS`).

    Returns
    -------
    PhotonCrossSectionTable
        Cached: every call for a material returns the same object.
    """
    return _xcom(get_material(material).name)


@cache
def _xcom(name: str) -> PhotonCrossSectionTable:
    t = _read_csv(f"xcom_{name}.csv")
    return PhotonCrossSectionTable(
        material=name,
        energy_mev=t.column("energy_mev"),
        coherent_cm2_per_g=t.column("coherent_cm2_per_g"),
        incoherent_cm2_per_g=t.column("incoherent_cm2_per_g"),
        photoelectric_cm2_per_g=t.column("photoelectric_cm2_per_g"),
        pair_nuclear_cm2_per_g=t.column("pair_nuclear_cm2_per_g"),
        pair_electron_cm2_per_g=t.column("pair_electron_cm2_per_g"),
        total_cm2_per_g=t.column("total_cm2_per_g"),
        source=t.meta,
    )
