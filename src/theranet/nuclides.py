"""Radionuclide names, physical decay and emission data.

Nuclear data are never written into this module: half-lives come from
`radioactivedecay <https://radioactivedecay.github.io>`_ (its default data set,
``icrp107_ame2020_nubase2020``, i.e. ICRP Publication 107 half-lives) and the
emissions per decay from the `icrp107-database` package (ICRP Publication 107).

Units: time in h, energy in MeV, activity in MBq. Yields are per nuclear
transformation (per decay), so ``sum(yield * energy)`` is an energy per decay in
MeV.

Names
-----
:func:`parse_nuclide` accepts the usual spellings (``"Lu-177"``, ``"177Lu"``,
``"Lu177"``, ``"lu177"``, ``"LU-177"``, ``"177-Lu"``, ``"Tc-99m"``, ``"99mTc"``,
``"Tc99m"``) and returns the canonical form ``"Lu-177"``/``"Tc-99m"`` used by both
data packages.

Emission classes
----------------
========================  ====================================  ==================
theranet name             meaning                               ICRP-107 key
========================  ====================================  ==================
``"alpha"``               alpha particles                       ``alpha``
``"beta-"``               beta-minus, mean energy per branch    ``beta-``
``"beta+"``               beta-plus, mean energy per branch     ``beta+``
``"ce"``                  internal-conversion electrons         ``IE``
``"auger"``               Auger (and Coster-Kronig) electrons   ``auger``
``"gamma"``               gamma rays                            ``gamma``
``"xray"``                X-rays                                ``X``
``"annihilation"``        511 keV annihilation photons          ``annihilation``
========================  ====================================  ==================

Groups: ``"beta"`` = beta- + beta+; ``"electrons"`` = beta- + beta+ + ce + auger;
``"photons"`` = gamma + xray + annihilation.

Data quirks (icrp107-database 0.0.3)
------------------------------------
* The JSON files are double-encoded (a JSON string holding JSON); the package's
  :func:`icrp107_database.get_icrp107_spectrum` decodes them, and this module only
  uses that function.
* Every file lists every emission key; absent emissions are empty lists (for
  example I-123 and In-111 have no ``beta-``/``beta+`` and an empty ``b-spectra``).
* ``b-spectra`` is one spectrum for beta- and beta+ together (Cu-64 holds both
  branches), and fissioning actinides carry a ``b-spectra`` without any beta
  branch; :meth:`Nuclide.beta_spectrum` refuses those.
* Tc-99m's ``b-spectra`` is not a placeholder: it is the spectrum of its tiny
  beta- branch to Ru-99 (3.7e-5 per decay), so :meth:`Nuclide.beta_spectrum`
  returns it; an all-zero spectrum would be refused.
* Stable nuclides are in the radioactivedecay data (as decay products) but have
  no ICRP-107 emission file; their emissions raise :class:`NuclideError`.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import icrp107_database
import numpy as np
import radioactivedecay as rd
from numpy.typing import ArrayLike, NDArray
from radioactivedecay import utils as rd_utils

from theranet.errors import NuclideError, TimingError

__all__ = [
    "EMISSION_CLASSES",
    "EMISSION_GROUPS",
    "BetaSpectrum",
    "Emissions",
    "Nuclide",
    "parse_nuclide",
]

logger = logging.getLogger(__name__)

#: theranet emission class -> ICRP-107 emission key.
_ICRP107_KEY: dict[str, str] = {
    "alpha": "alpha",
    "beta-": "beta-",
    "beta+": "beta+",
    "ce": "IE",
    "auger": "auger",
    "gamma": "gamma",
    "xray": "X",
    "annihilation": "annihilation",
}

#: The emission classes, in the order groups concatenate them.
EMISSION_CLASSES: tuple[str, ...] = tuple(_ICRP107_KEY)

#: Named groups of emission classes.
EMISSION_GROUPS: dict[str, tuple[str, ...]] = {
    "beta": ("beta-", "beta+"),
    "electrons": ("beta-", "beta+", "ce", "auger"),
    "photons": ("gamma", "xray", "annihilation"),
}

_ACCEPTED_SPELLINGS = (
    "'Lu-177', 'Lu177', '177Lu', '177-Lu' (any letter case); metastable states as "
    "'Tc-99m', 'Tc99m', '99mTc'"
)

_SEP = r"[-_ ]?"
_SYMBOL_FIRST = re.compile(
    rf"^(?P<symbol>[A-Za-z]{{1,2}}){_SEP}(?P<mass>\d{{1,3}})(?P<state>[A-Za-z]?)$"
)
_MASS_FIRST = re.compile(rf"^(?P<mass>\d{{1,3}}){_SEP}(?P<letters>[A-Za-z]{_SEP}[A-Za-z]{{0,2}})$")


# --------------------------------------------------------------------------- names


@cache
def _known_nuclides() -> frozenset[str]:
    """Canonical names of all nuclides in the radioactivedecay default data set."""
    names = frozenset(str(n) for n in rd.DEFAULTDATA.nuclides)
    logger.debug("loaded %d nuclide names from %s", len(names), rd.DEFAULTDATA.dataset_name)
    return names


def _element_symbol(letters: str) -> str | None:
    """Return the element symbol spelt by ``letters`` (any case), or ``None``."""
    symbol = letters[:1].upper() + letters[1:].lower()
    return symbol if symbol in rd_utils.SYM_DICT else None


def _candidates(text: str) -> list[tuple[str, str, str]]:
    """All (symbol, mass, state) readings of ``text``, most plausible first."""
    found: list[tuple[str, str, str]] = []
    metastable = rd_utils.get_metastable_chars()
    m = _SYMBOL_FIRST.match(text)
    if m:
        symbol = _element_symbol(m["symbol"])
        state = m["state"].lower()
        if symbol and (not state or state in metastable):
            found.append((symbol, m["mass"], state))
    m = _MASS_FIRST.match(text)
    if m:
        letters = re.sub(r"[-_ ]", "", m["letters"])
        sep_inside = len(letters) != len(m["letters"])
        # "177Lu": no state; "99mTc", "99m-Tc": the first letter is the state.
        if not sep_inside:
            symbol = _element_symbol(letters) if len(letters) <= 2 else None
            if symbol:
                found.append((symbol, m["mass"], ""))
        state, rest = letters[:1].lower(), letters[1:]
        symbol = _element_symbol(rest) if 1 <= len(rest) <= 2 else None
        if symbol and state in metastable:
            found.append((symbol, m["mass"], state))
    return found


def parse_nuclide(name: str | Nuclide, *, field: str = "nuclide") -> str:
    """Return the canonical name of a radionuclide.

    Parameters
    ----------
    name : str or Nuclide
        A nuclide name in any accepted spelling: ``"Lu-177"``, ``"177Lu"``,
        ``"Lu177"``, ``"lu177"``, ``"LU-177"``, ``"177-Lu"``; metastable states as
        ``"Tc-99m"``, ``"99mTc"`` or ``"Tc99m"``. Surrounding white space is ignored.
    field : str, optional
        The argument or key that supplied ``name``, used in error messages.

    Returns
    -------
    str
        The canonical name, element symbol, hyphen, mass number and state letter
        (``"Lu-177"``, ``"Tc-99m"``), as used by radioactivedecay and
        icrp107-database.

    Raises
    ------
    NuclideError
        If ``name`` is not a string, cannot be parsed, or names a nuclide that is
        not in the radioactivedecay data set.

    Examples
    --------
    >>> parse_nuclide("177Lu")
    'Lu-177'
    >>> parse_nuclide("99mTc")
    'Tc-99m'
    """
    if isinstance(name, Nuclide):
        return name.name
    fix = f"spell it as {_ACCEPTED_SPELLINGS}"
    if not isinstance(name, str):
        raise NuclideError(field, "nuclide name is not a string", name, fix)
    text = name.strip()
    candidates = _candidates(text)
    if not candidates:
        raise NuclideError(field, "cannot parse the nuclide name", name, fix)
    known = _known_nuclides()
    for symbol, mass, state in candidates:
        canonical = f"{symbol}-{int(mass)}{state}"
        if canonical in known:
            return canonical
    tried = ", ".join(repr(f"{s}-{int(a)}{st}") for s, a, st in candidates)
    raise NuclideError(
        field,
        f"unknown nuclide (read as {tried}; not in the {rd.DEFAULTDATA.dataset_name} decay data)",
        name,
        f"check the element symbol and mass number; {fix}",
    )


# ---------------------------------------------------------------- data loaders


@cache
def _decay_record(name: str) -> tuple[float, int, int]:
    """(half-life in h, Z, A) of a canonical nuclide name from radioactivedecay."""
    nuc = rd.Nuclide(name)
    half_life_h = float(nuc.half_life("h"))
    logger.debug("%s: half-life %.6g h from %s", name, half_life_h, rd.DEFAULTDATA.dataset_name)
    return half_life_h, int(nuc.Z), int(nuc.A)


@cache
def _icrp107_table(name: str, key: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(energies in MeV, weights per decay) of one ICRP-107 emission key, read-only."""
    try:
        data = icrp107_database.get_icrp107_spectrum(name, key)
    except Exception as err:  # the package raises a bare Exception for unknown names
        raise NuclideError(
            "nuclide",
            "no ICRP-107 emission data (stable, or missing from icrp107-database)",
            name,
            "use a radioactive nuclide listed in ICRP Publication 107",
        ) from err
    energy = np.asarray(data["energies"], dtype=np.float64).reshape(-1)
    weight = np.asarray(data["weights"], dtype=np.float64).reshape(-1)
    if energy.shape != weight.shape:  # pragma: no cover - guards a malformed package
        raise NuclideError("nuclide", f"malformed ICRP-107 {key!r} table", name)
    energy.setflags(write=False)
    weight.setflags(write=False)
    logger.debug("%s: %d ICRP-107 %r entries", name, energy.size, key)
    return energy, weight


def _readonly(a: ArrayLike) -> NDArray[np.float64]:
    arr = np.array(a, dtype=np.float64).reshape(-1)
    arr.setflags(write=False)
    return arr


# ---------------------------------------------------------------- data classes


@dataclass(frozen=True, eq=False)
class Emissions:
    """Discrete emissions of one class or group, per decay.

    Attributes
    ----------
    energy_mev : ndarray of float, shape (N,)
        Energy of each line or branch in MeV; for beta classes, the mean energy of
        each branch. Sorted ascending.
    yield_per_decay : ndarray of float, shape (N,)
        Number emitted per nuclear transformation (may exceed 1 for X-rays,
        Auger electrons and annihilation photons).
    """

    energy_mev: NDArray[np.float64]
    yield_per_decay: NDArray[np.float64]

    def __post_init__(self) -> None:
        energy = _readonly(self.energy_mev)
        yields = _readonly(self.yield_per_decay)
        if energy.shape != yields.shape:
            raise ValueError(
                f"energy_mev {energy.shape} and yield_per_decay {yields.shape} differ in shape"
            )
        object.__setattr__(self, "energy_mev", energy)
        object.__setattr__(self, "yield_per_decay", yields)

    def __len__(self) -> int:
        return int(self.energy_mev.size)

    @property
    def total_yield(self) -> float:
        """Number of particles or photons per decay, ``sum(yield)``."""
        return float(self.yield_per_decay.sum())

    @property
    def energy_per_decay_mev(self) -> float:
        """Energy emitted per decay in MeV, ``sum(yield * energy)``."""
        return float(np.dot(self.yield_per_decay, self.energy_mev))

    def above(self, min_yield: float) -> Emissions:
        """The lines with ``yield_per_decay >= min_yield``."""
        keep = self.yield_per_decay >= min_yield
        return Emissions(self.energy_mev[keep], self.yield_per_decay[keep])


@dataclass(frozen=True, eq=False)
class BetaSpectrum:
    """ICRP-107 beta spectrum (beta- and beta+ together), per decay.

    Attributes
    ----------
    energy_mev : ndarray of float, shape (N,)
        Kinetic energy grid in MeV, ascending.
    n_per_mev_per_decay : ndarray of float, shape (N,)
        Number of beta particles per MeV per decay at each energy; its integral
        over energy is the total beta yield per decay.
    """

    energy_mev: NDArray[np.float64]
    n_per_mev_per_decay: NDArray[np.float64]

    def __post_init__(self) -> None:
        energy = _readonly(self.energy_mev)
        density = _readonly(self.n_per_mev_per_decay)
        if energy.shape != density.shape:
            raise ValueError(
                f"energy_mev {energy.shape} and n_per_mev_per_decay {density.shape} differ in shape"
            )
        object.__setattr__(self, "energy_mev", energy)
        object.__setattr__(self, "n_per_mev_per_decay", density)

    @property
    def total_yield(self) -> float:
        """Beta particles per decay, trapezoid integral of N(E) dE."""
        return float(np.trapezoid(self.n_per_mev_per_decay, self.energy_mev))

    @property
    def mean_energy_mev(self) -> float:
        """Beta energy per decay in MeV, trapezoid integral of E N(E) dE."""
        return float(np.trapezoid(self.energy_mev * self.n_per_mev_per_decay, self.energy_mev))


# ---------------------------------------------------------------------- Nuclide


def _check_datetime(value: object, field_name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TimingError(
            field_name,
            "not a datetime.datetime",
            value,
            "pass a datetime.datetime (with a timezone, or naive for both times)",
        )
    return value


def _is_aware(value: datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() is not None


def _elapsed_h(from_datetime: datetime, to_datetime: datetime) -> float:
    """Hours from ``from_datetime`` to ``to_datetime`` (negative when backward)."""
    start = _check_datetime(from_datetime, "from_datetime")
    end = _check_datetime(to_datetime, "to_datetime")
    if _is_aware(start) != _is_aware(end):
        raise TimingError(
            "from_datetime/to_datetime",
            "mixes a naive and a timezone-aware datetime",
            f"{start.isoformat()} / {end.isoformat()}",
            "give both times a timezone (or neither, if both are in the same local time)",
        )
    return (end - start).total_seconds() / 3600.0


@dataclass(frozen=True)
class Nuclide:
    """A radionuclide with its decay and ICRP-107 emission data.

    Immutable and hashable; two instances are equal when their canonical names
    are. Data are loaded on first use and cached per nuclide.

    Parameters
    ----------
    name : str or Nuclide
        Any spelling accepted by :func:`parse_nuclide`; stored canonical.

    Raises
    ------
    NuclideError
        If the name cannot be parsed or the nuclide is unknown.

    Examples
    --------
    >>> lu = Nuclide("177Lu")
    >>> lu.name, lu.mass_number
    ('Lu-177', 177)
    >>> round(lu.decay_factor_h(lu.half_life_h), 12)
    0.5
    """

    name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", parse_nuclide(self.name, field="name"))

    def __str__(self) -> str:
        return self.name

    # ---- identity -------------------------------------------------------------

    @property
    def symbol(self) -> str:
        """Element symbol, e.g. ``"Lu"``."""
        return self.name.split("-", 1)[0]

    @property
    def mass_number(self) -> int:
        """Mass number A, e.g. 177."""
        return _decay_record(self.name)[2]

    @property
    def atomic_number(self) -> int:
        """Atomic number Z, e.g. 71."""
        return _decay_record(self.name)[1]

    @property
    def state(self) -> str:
        """Isomeric state letter: ``""`` for the ground state, ``"m"``, ``"n"``, ..."""
        return self.name.split("-", 1)[1].lstrip("0123456789")

    # ---- decay ----------------------------------------------------------------

    @property
    def half_life_h(self) -> float:
        """Physical half-life in h (``inf`` for a stable nuclide), from radioactivedecay."""
        return _decay_record(self.name)[0]

    @property
    def decay_constant_per_h(self) -> float:
        """Physical decay constant ln 2 / T in 1/h (0 for a stable nuclide)."""
        return math.log(2.0) / self.half_life_h

    @property
    def is_stable(self) -> bool:
        """True when the nuclide does not decay."""
        return math.isinf(self.half_life_h)

    def decay_factor_h(self, elapsed_h: ArrayLike) -> float | NDArray[np.float64]:
        """Fraction of activity remaining after ``elapsed_h`` hours, ``2**(-t/T)``.

        Parameters
        ----------
        elapsed_h : float or array_like of float, shape (...)
            Elapsed time in h; negative values go back in time (factor > 1).

        Returns
        -------
        float or ndarray of float, shape (...)
            The decay factor; a float for scalar input.

        Raises
        ------
        TimingError
            If any elapsed time is not finite.
        """
        t = np.asarray(elapsed_h, dtype=np.float64)
        if not np.all(np.isfinite(t)):
            raise TimingError(
                "elapsed_h", "elapsed time is not finite", elapsed_h, "give a finite time in h"
            )
        factor = np.exp2(-t / self.half_life_h)
        return float(factor) if factor.ndim == 0 else factor

    def decay_factor(self, from_datetime: datetime, to_datetime: datetime) -> float:
        """Fraction of activity remaining from one time to another, ``2**(-dt/T)``.

        Parameters
        ----------
        from_datetime, to_datetime : datetime.datetime
            Start and end; both timezone-aware or both naive. ``to_datetime`` may
            precede ``from_datetime`` (decay correction backward, factor > 1).

        Returns
        -------
        float
            ``A(to) / A(from)``.

        Raises
        ------
        TimingError
            If either is not a datetime, or one is naive and the other aware.
        """
        return float(self.decay_factor_h(_elapsed_h(from_datetime, to_datetime)))

    def activity_at(
        self, activity_mbq: ArrayLike, from_datetime: datetime, to_datetime: datetime
    ) -> float | NDArray[np.float64]:
        """Decay-correct an activity from one time to another.

        Parameters
        ----------
        activity_mbq : float or array_like of float, shape (...)
            Activity at ``from_datetime`` in MBq.
        from_datetime, to_datetime : datetime.datetime
            As in :meth:`decay_factor`.

        Returns
        -------
        float or ndarray of float, shape (...)
            Activity at ``to_datetime`` in MBq.
        """
        factor = self.decay_factor(from_datetime, to_datetime)
        activity = np.asarray(activity_mbq, dtype=np.float64) * factor
        return float(activity) if activity.ndim == 0 else activity

    # ---- emissions ------------------------------------------------------------

    @property
    def has_emission_data(self) -> bool:
        """True when icrp107-database holds emission data for this nuclide."""
        try:
            _icrp107_table(self.name, "gamma")
        except NuclideError:
            return False
        return True

    def _classes(self, cls: str) -> tuple[str, ...]:
        if cls in _ICRP107_KEY:
            return (cls,)
        if cls in EMISSION_GROUPS:
            return EMISSION_GROUPS[cls]
        raise NuclideError(
            "cls",
            "unknown emission class or group",
            cls,
            f"use one of {', '.join(EMISSION_CLASSES)} or a group {', '.join(EMISSION_GROUPS)}",
        )

    def emissions(self, cls: str) -> Emissions:
        """Discrete emissions of one class or group, per decay.

        Parameters
        ----------
        cls : str
            An emission class (``"alpha"``, ``"beta-"``, ``"beta+"``, ``"ce"``,
            ``"auger"``, ``"gamma"``, ``"xray"``, ``"annihilation"``) or a group
            (``"beta"``, ``"electrons"``, ``"photons"``).

        Returns
        -------
        Emissions
            Energies (MeV; mean energy per branch for beta) and yields per decay,
            shape (N,) each, sorted by energy; empty when the nuclide has none.

        Raises
        ------
        NuclideError
            If ``cls`` is unknown or the nuclide has no ICRP-107 data.
        """
        tables = [_icrp107_table(self.name, _ICRP107_KEY[c]) for c in self._classes(cls)]
        energy = np.concatenate([e for e, _ in tables])
        yields = np.concatenate([w for _, w in tables])
        order = np.argsort(energy, kind="stable")
        return Emissions(energy[order], yields[order])

    def mean_energy_mev(self, cls: str) -> float:
        """Energy emitted per decay in MeV by a class or group, ``sum(yield * energy)``.

        Parameters
        ----------
        cls : str
            An emission class or group, as in :meth:`emissions`.

        Returns
        -------
        float
            MeV per decay (0 when the nuclide has no such emission).
        """
        return self.emissions(cls).energy_per_decay_mev

    @property
    def beta_mean_energy_mev(self) -> float:
        """Beta (beta- + beta+) energy per decay in MeV."""
        return self.mean_energy_mev("beta")

    @property
    def electron_energy_mev(self) -> float:
        """Electron energy per decay in MeV: beta- + beta+ + ce + Auger."""
        return self.mean_energy_mev("electrons")

    @property
    def photon_energy_mev(self) -> float:
        """Photon energy per decay in MeV: gamma + X-ray + annihilation."""
        return self.mean_energy_mev("photons")

    def photon_lines(self, min_yield: float = 0.0) -> Emissions:
        """Photon lines (gamma, X-ray, annihilation) with at least ``min_yield`` per decay.

        Parameters
        ----------
        min_yield : float, optional
            Smallest yield per decay to keep.

        Returns
        -------
        Emissions
            Energies in MeV and yields per decay, shape (N,), sorted by energy.
        """
        return self.emissions("photons").above(min_yield)

    def beta_spectrum(self) -> BetaSpectrum:
        """ICRP-107 beta energy spectrum, beta- and beta+ together.

        Returns
        -------
        BetaSpectrum
            ``energy_mev`` (N,) in MeV and ``n_per_mev_per_decay`` (N,); the
            integral of N(E) dE is the total beta yield per decay, and that of
            E N(E) dE the beta energy per decay.

        Raises
        ------
        NuclideError
            If the nuclide has no beta branch (e.g. In-111, I-123), or its
            ICRP-107 spectrum is absent or all zero. Check
            ``mean_energy_mev("beta") > 0`` first to avoid it.
        """
        beta_yield = self.emissions("beta").total_yield
        energy, density = _icrp107_table(self.name, "b-spectra")
        if beta_yield <= 0.0 or energy.size == 0 or not np.any(density):
            raise NuclideError(
                "nuclide",
                "no ICRP-107 beta spectrum (no beta branch, or the spectrum is empty or all zero)",
                self.name,
                "use a beta emitter, or check mean_energy_mev('beta') > 0 first",
            )
        return BetaSpectrum(energy, density)
