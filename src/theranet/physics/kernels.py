"""Nuclide dose point kernels and voxel S-values, computed from first principles.

Pipeline
--------
1. **Monoenergetic libraries.** Electron kernels
   (:func:`theranet.physics.electron_mc.electron_point_kernel`, condensed-history
   Monte Carlo with NIST ESTAR stopping powers) and photon kernels
   (:func:`theranet.physics.photon_kernels.photon_point_kernel`, Monte Carlo with
   XCOM cross sections) are computed on fixed logarithmic energy grids and kept
   as cumulative absorbed-energy curves. Between grid energies an electron curve is
   interpolated in scaled radius ``x = r / r0(E)`` (r0 the CSDA range), a photon
   curve in radius; both linearly in ``log E``. Electrons below
   :data:`LOCAL_ELECTRON_MEV` and photons below :data:`LOCAL_PHOTON_MEV` deposit
   their energy at the decay site.
2. **Nuclide kernel.** ICRP-107 emissions of the chosen classes are summed: the
   beta spectrum (beta- and beta+), conversion and Auger electron lines, gamma
   and X-ray lines; annihilation photons of positron emitters belong to the
   ``gamma`` class. The result is the mean energy deposited per decay in
   spherical shells (:class:`RadialKernel`); energy absorbed beyond the extent
   and bremsstrahlung are recorded as escaping.
3. **Voxel S-values.** The kernel is integrated over a uniformly active source
   voxel and each target voxel. The energy deposited within ``r_mc`` (just
   beyond the reach of the ``near_voxels`` cube) is sampled by Monte Carlo
   (decay point uniform in the source voxel, radius drawn from the kernel's
   energy distribution, isotropic direction), electrons and photons each with
   their own samples (so the photon tail is not starved by the electrons'
   larger energy), seeded and therefore reproducible; the energy beyond
   ``r_mc`` is integrated deterministically, averaging the kernel density,
   zero below ``r_mc``, over source and target points on sub-voxel grids. The
   two parts partition space exactly, so the voxels that straddle ``r_mc`` are
   neither counted twice nor lost.
4. **Sphere model.** Mean self-dose of a uniformly active sphere:
   absorbed fraction ``sum_j E_j p_in(r_j / R)`` with the geometric factor
   ``p_in(x) = 1 - 3x/4 + x^3/16`` (x <= 2) for a point uniform in the sphere and
   a random direction (the chord-length result used by Berger, MIRD Pamphlet 7).

Media other than water: electron kernels are scaled from water by the ratio of
CSDA ranges (density and stopping-power ratio, stated as such in the result);
photon kernels are computed in the medium itself.

Units: energy MeV, length mm, S-values mGy/(MBq s).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from theranet._version import __version__
from theranet.errors import NuclideError
from theranet.physics.materials import estar, get_material

logger = logging.getLogger(__name__)

__all__ = [
    "EMISSION_CLASSES",
    "LOCAL_ELECTRON_MEV",
    "LOCAL_PHOTON_MEV",
    "RadialKernel",
    "VoxelSValues",
    "cache_dir",
    "nuclide_kernel",
    "sphere_s_value",
    "voxel_s_values",
]

#: Emission classes a user can choose (``beta`` = beta- and beta+ spectra).
EMISSION_CLASSES = ("beta", "ce", "auger", "gamma", "xray")
#: Electrons below this energy deposit locally (CSDA range in water < 3 um).
LOCAL_ELECTRON_MEV = 0.01
#: Photons below this energy deposit locally (mean free path in water < 2 mm).
LOCAL_PHOTON_MEV = 0.01

_ELECTRON_GRID_MEV = np.geomspace(LOCAL_ELECTRON_MEV, 10.0, 31)
_PHOTON_GRID_MEV = np.geomspace(LOCAL_PHOTON_MEV, 10.0, 34)
_ELECTRON_HISTORIES = 40_000
_PHOTON_HISTORIES = 200_000
_PHOTON_EXTENT_MM = 400.0
_PHOTON_SHELLS = 800
_MEV_TO_J = 1.602176634e-13
_DATA_VERSION = "1"  # bump when the physics or the libraries change
# Version of the voxel integration, part of the S-value cache key (``_DATA_VERSION``
# also names the shipped libraries, which this does not change). 2: the far region
# is averaged over source and target voxels instead of taken at the voxel centre;
# 3: the Monte Carlo part samples electrons and photons separately.
_SVALUE_VERSION = "3"
#: Sub-points per axis of the source and the target voxel in the far region, for
#: voxels clear of ``r_mc`` (kernel smooth over the voxel) and for those that
#: straddle it (a density step inside the voxel).
_FAR_SUB = 4
_EDGE_SUB = 16


def cache_dir() -> Path:
    """Folder for cached kernels: ``$THERANET_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/theranet``, else ``~/.cache/theranet``."""
    env = os.environ.get("THERANET_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "theranet"


# --------------------------------------------------------------- libraries


@dataclass(frozen=True)
class _Library:
    """Cumulative absorbed-energy fraction curves at grid energies.

    ``coord`` is x = r/r0 (electrons) or r in mm (photons), shape (m,), starting
    at 0; ``cum`` has shape (n_energies, m): fraction of the particle energy
    absorbed within ``coord``; ``total`` (n_energies,): fraction absorbed
    anywhere (the rest escapes: bremsstrahlung, or beyond the photon extent).
    """

    energies_mev: NDArray[np.float64]
    coord: NDArray[np.float64]
    cum: NDArray[np.float64]
    total: NDArray[np.float64]


def build_library(kind: str, material: str = "water") -> _Library:
    """Compute a monoenergetic library afresh (used by scripts/build_kernel_library.py)."""
    if kind == "electron":
        if material != "water":
            raise ValueError("electron libraries are computed in water and scaled")
        return _electron_library(_ELECTRON_HISTORIES, fresh=True)
    if kind == "photon":
        return _photon_library(material, _PHOTON_HISTORIES, fresh=True)
    raise ValueError(f"kind: {kind!r}; use 'electron' or 'photon'")


def _library_path(kind: str, material: str, n: int) -> Path:
    return cache_dir() / f"{kind}_{material}_n{n}_v{_DATA_VERSION}_{__version__}.npz"


def _shipped_path(kind: str, material: str, n: int) -> Path | None:
    """Library shipped with the package (built by scripts/build_kernel_library.py)."""
    from importlib.resources import files

    p = files("theranet") / "data" / "kernels" / f"{kind}_{material}_n{n}_v{_DATA_VERSION}.npz"
    return Path(str(p)) if p.is_file() else None


def _load_or_build(path: Path, build, shipped: Path | None, fresh: bool) -> _Library:
    if fresh:
        return build()
    if shipped is not None:
        with np.load(shipped) as z:
            return _Library(z["energies_mev"], z["coord"], z["cum"], z["total"])
    if path.is_file():
        with np.load(path) as z:
            return _Library(z["energies_mev"], z["coord"], z["cum"], z["total"])
    lib = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, energies_mev=lib.energies_mev, coord=lib.coord, cum=lib.cum,
                 total=lib.total)  # fmt: skip
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache is not an error
        logger.warning("kernel cache not written (%s): %s", path.parent, exc)
    return lib


@cache
def _electron_library(n_histories: int = _ELECTRON_HISTORIES, fresh: bool = False) -> _Library:
    """Water electron kernels, cumulative in x = r/r0 on a common grid 0..1.2."""
    from theranet.physics.electron_mc import electron_point_kernel

    def build() -> _Library:
        logger.info("building the electron kernel library (%d energies)", _ELECTRON_GRID_MEV.size)
        x = np.linspace(0.0, 1.2, 241)
        cum, total = [], []
        for e in _ELECTRON_GRID_MEV:
            k = electron_point_kernel(float(e), "water", n_histories=n_histories, seed=1)
            xe = k.edges_mm / k.csda_range_mm
            c = np.concatenate([[0.0], np.cumsum(k.energy_fraction)])
            cum.append(np.interp(x, xe, c))
            total.append(k.deposited_fraction)
        return _Library(_ELECTRON_GRID_MEV.copy(), x, np.array(cum), np.array(total))

    return _load_or_build(
        _library_path("electron", "water", n_histories), build,
        _shipped_path("electron", "water", n_histories), fresh,
    )  # fmt: skip


@cache
def _photon_library(
    material: str, n_photons: int = _PHOTON_HISTORIES, fresh: bool = False
) -> _Library:
    """Photon kernels in ``material``, cumulative in r (mm) out to the extent."""
    from theranet.physics.photon_kernels import photon_point_kernel

    def build() -> _Library:
        logger.info("building the photon kernel library for %s", material)
        r = np.linspace(0.0, _PHOTON_EXTENT_MM, _PHOTON_SHELLS + 1)
        cum, total = [], []
        for e in _PHOTON_GRID_MEV:
            k = photon_point_kernel(
                float(e), material, max_radius_mm=_PHOTON_EXTENT_MM, n_shells=_PHOTON_SHELLS,
                n_photons=n_photons, seed=1,
            )  # fmt: skip
            c = np.concatenate([[0.0], np.cumsum(k.absorbed_fraction)])
            cum.append(np.interp(r, k.shell_edges_mm, c))
            total.append(float(c[-1]))
        return _Library(_PHOTON_GRID_MEV.copy(), r, np.array(cum), np.array(total))

    return _load_or_build(
        _library_path("photon", material, n_photons), build,
        _shipped_path("photon", material, n_photons), fresh,
    )  # fmt: skip


def _interp_curve(lib: _Library, energy_mev: float) -> tuple[NDArray[np.float64], float]:
    """(cumulative curve on lib.coord, total) at ``energy_mev``, linear in log E."""
    le = np.log(lib.energies_mev)
    x = math.log(energy_mev)
    if x <= le[0]:
        return lib.cum[0], float(lib.total[0])
    if x >= le[-1]:
        return lib.cum[-1], float(lib.total[-1])
    i = int(np.searchsorted(le, x)) - 1
    w = (x - le[i]) / (le[i + 1] - le[i])
    return (1 - w) * lib.cum[i] + w * lib.cum[i + 1], float(
        (1 - w) * lib.total[i] + w * lib.total[i + 1]
    )


# ------------------------------------------------------------ nuclide kernel


@dataclass(frozen=True)
class RadialKernel:
    """Mean energy deposited per decay in spherical shells around a point source.

    Attributes
    ----------
    nuclide, material : str
    emissions : tuple of str
        Emission classes included.
    edges_mm : ndarray of shape (n + 1,)
        Shell boundaries from 0 to the extent, mm.
    energy_mev : ndarray of shape (n,)
        Energy deposited per decay in each shell, MeV.
    nonpenetrating_energy_mev : float
        Electron (and locally deposited) energy emitted per decay, MeV.
    photon_energy_mev : float
        Photon energy emitted per decay, MeV.
    escaped_mev : float
        Energy per decay not deposited within the extent (photons beyond it,
        bremsstrahlung), MeV.
    electron_mev, photon_mev : ndarray of shape (n,)
        The electron and photon parts of ``energy_mev``.
    density_g_per_cm3 : float
    notes : tuple of str
    """

    nuclide: str
    material: str
    emissions: tuple[str, ...]
    edges_mm: NDArray[np.float64]
    energy_mev: NDArray[np.float64]
    electron_mev: NDArray[np.float64]
    photon_mev: NDArray[np.float64]
    nonpenetrating_energy_mev: float
    photon_energy_mev: float
    escaped_mev: float
    density_g_per_cm3: float
    notes: tuple[str, ...] = field(default=())

    @property
    def emitted_energy_mev(self) -> float:
        return self.nonpenetrating_energy_mev + self.photon_energy_mev

    def density_mev_per_mm3(self) -> NDArray[np.float64]:
        """Mean energy density in each shell per decay, MeV/mm^3."""
        return self.energy_mev / (4.0 / 3.0 * math.pi * np.diff(self.edges_mm**3))


def _parse_emissions(emissions: Iterable[str] | str | None) -> tuple[str, ...]:
    if emissions is None:
        return EMISSION_CLASSES
    if isinstance(emissions, str):
        emissions = [e.strip() for e in emissions.split(",") if e.strip()]
    out = []
    for e in emissions:
        e = e.lower()
        if e not in EMISSION_CLASSES:
            raise ValueError(
                f"emissions: unknown class {e!r}; use any of {', '.join(EMISSION_CLASSES)}"
            )
        if e not in out:
            out.append(e)
    if not out:
        raise ValueError("emissions: choose at least one class")
    return tuple(sorted(out, key=EMISSION_CLASSES.index))


def _electron_sources(nuc, emissions: tuple[str, ...]) -> list[tuple[float, float]]:
    """(energy MeV, number per decay) of every electron source."""
    src: list[tuple[float, float]] = []
    if "beta" in emissions and nuc.mean_energy_mev("beta") > 0:
        spec = nuc.beta_spectrum()
        e, n = spec.energy_mev, spec.n_per_mev_per_decay
        for i in range(e.size - 1):
            de = e[i + 1] - e[i]
            num = 0.5 * (n[i] + n[i + 1]) * de
            if num <= 0:
                continue
            en = 0.5 * (n[i] * e[i] + n[i + 1] * e[i + 1]) * de
            src.append((en / num, num))
        # renormalise to the tabulated beta energy (the spectrum reproduces it to ~0.2 %)
        total = sum(a * b for a, b in src)
        want = nuc.mean_energy_mev("beta")
        if total > 0:
            src = [(a, b * want / total) for a, b in src]
    for cls in ("ce", "auger"):
        if cls in emissions:
            em = nuc.emissions(cls)
            src += list(zip(em.energy_mev.tolist(), em.yield_per_decay.tolist(), strict=True))
    return src


def _photon_sources(nuc, emissions: tuple[str, ...]) -> list[tuple[float, float]]:
    src: list[tuple[float, float]] = []
    classes = []
    if "gamma" in emissions:
        classes += ["gamma", "annihilation"]
    if "xray" in emissions:
        classes.append("xray")
    for cls in classes:
        em = nuc.emissions(cls)
        src += list(zip(em.energy_mev.tolist(), em.yield_per_decay.tolist(), strict=True))
    return src


def nuclide_kernel(
    nuclide: str,
    *,
    material: str = "water",
    emissions: Iterable[str] | str | None = None,
    extent_mm: float = 150.0,
    shell_mm: float = 0.05,
) -> RadialKernel:
    """Radial dose point kernel of a nuclide in a homogeneous medium.

    Parameters
    ----------
    nuclide : str
        Any ICRP-107 nuclide (``"Lu-177"``, ``"90Y"``...).
    material : {"water", "soft_tissue", "bone", ...}
    emissions : iterable of str or comma-separated str, optional
        Classes from :data:`EMISSION_CLASSES` (default all).
    extent_mm : float
        Outer radius of the kernel, mm (at most 400 mm).
    shell_mm : float
        Shell width, mm.
    """
    from theranet.nuclides import Nuclide

    nuc = Nuclide(nuclide)
    if not nuc.has_emission_data:
        raise NuclideError("nuclide", "has no ICRP-107 emission data", nuclide)
    em = _parse_emissions(emissions)
    mat = get_material(material)
    if not (0 < extent_mm <= _PHOTON_EXTENT_MM and 0 < shell_mm <= extent_mm):
        raise ValueError(
            f"extent_mm/shell_mm: need 0 < shell_mm <= extent_mm <= {_PHOTON_EXTENT_MM} "
            f"(got {extent_mm!r}, {shell_mm!r})"
        )
    n_shells = math.ceil(extent_mm / shell_mm)
    edges = np.linspace(0.0, n_shells * shell_mm, n_shells + 1)
    notes: list[str] = []

    # electrons
    e_cum = np.zeros_like(edges)
    e_emitted = 0.0
    escaped = 0.0
    elib = _electron_library()
    table = estar(mat.name)
    for energy, number in _electron_sources(nuc, em):
        if number <= 0 or energy <= 0:
            continue
        e_emitted += energy * number
        if energy < LOCAL_ELECTRON_MEV:
            e_cum[1:] += energy * number  # deposited in the first shell
            continue
        curve, tot = _interp_curve(elib, min(energy, 10.0))
        r0_mm = float(table.csda_range_mm(energy, density_g_per_cm3=mat.density_g_per_cm3))
        x = edges / r0_mm
        c = np.interp(x, elib.coord, curve, right=tot)
        e_cum += energy * number * c
        escaped += energy * number * (1.0 - c[-1])  # beyond the extent, or bremsstrahlung
    if mat.name != "water":
        notes.append(
            f"electron kernels scaled from water by the CSDA-range ratio {mat.name}/water "
            "(density and stopping-power ratio)"
        )

    # photons
    p_cum = np.zeros_like(edges)
    p_emitted = 0.0
    plib = _photon_library(mat.name) if any(c in em for c in ("gamma", "xray")) else None
    for energy, number in _photon_sources(nuc, em):
        if number <= 0 or energy <= 0:
            continue
        p_emitted += energy * number
        if energy < LOCAL_PHOTON_MEV:
            p_cum[1:] += energy * number
            continue
        curve, _ = _interp_curve(plib, min(energy, 10.0))
        c = np.interp(edges, plib.coord, curve)
        p_cum += energy * number * c
        escaped += energy * number * (1.0 - c[-1])
    e_shell = np.diff(e_cum)
    p_shell = np.diff(p_cum)
    notes.append(
        "electron kernels: condensed-history Monte Carlo (ESTAR); photons: Monte Carlo "
        "(XCOM, Klein-Nishina), kerma approximation"
    )
    return RadialKernel(
        nuclide=nuc.name, material=mat.name, emissions=em, edges_mm=edges,
        energy_mev=e_shell + p_shell, electron_mev=e_shell, photon_mev=p_shell,
        nonpenetrating_energy_mev=e_emitted, photon_energy_mev=p_emitted, escaped_mev=escaped,
        density_g_per_cm3=mat.density_g_per_cm3, notes=tuple(notes),
    )  # fmt: skip


# ------------------------------------------------------------ voxel S-values


@dataclass(frozen=True)
class VoxelSValues:
    """Voxel S-values for one octant.

    Attributes
    ----------
    s_mgy_per_mbq_s : ndarray of shape (n0 + 1, n1 + 1, n2 + 1)
        Mean absorbed dose rate in target voxel (i, j, k) per MBq uniformly
        distributed in the source voxel (0, 0, 0), mGy/(MBq s).
    voxel_mm : tuple of float
        Voxel size (3 values), mm.
    nuclide, material : str
    emissions : tuple of str
    density_g_per_cm3 : float
    kernel_energy_mev : float
        Energy per decay deposited in the whole (mirrored) kernel, MeV.
    emitted_energy_mev : float
    notes : tuple of str
    """

    s_mgy_per_mbq_s: NDArray[np.float64]
    voxel_mm: tuple[float, float, float]
    nuclide: str
    material: str
    emissions: tuple[str, ...]
    density_g_per_cm3: float
    kernel_energy_mev: float
    emitted_energy_mev: float
    notes: tuple[str, ...] = ()

    @property
    def self_s(self) -> float:
        return float(self.s_mgy_per_mbq_s[0, 0, 0])

    def full(self) -> NDArray[np.float64]:
        """The kernel mirrored into all octants, shape (2n0+1, 2n1+1, 2n2+1)."""
        s = self.s_mgy_per_mbq_s
        s = np.concatenate([s[:0:-1], s], axis=0)
        s = np.concatenate([s[:, :0:-1], s], axis=1)
        return np.concatenate([s[:, :, :0:-1], s], axis=2)

    def to_csv(self, path: str | Path) -> Path:
        """Write ``i,j,k,s_mGy_per_MBq_s`` (one octant), atomically, with a header."""
        from theranet.io._atomic import atomic_paths

        path = Path(path)
        s = self.s_mgy_per_mbq_s
        idx = np.indices(s.shape).reshape(3, -1).T
        lines = [
            f"# theranet {__version__} voxel S-values: {self.nuclide} in {self.material}"
            f" ({self.density_g_per_cm3:g} g/cm3), voxel {self.voxel_mm[0]:g} x"
            f" {self.voxel_mm[1]:g} x {self.voxel_mm[2]:g} mm, emissions "
            f"{','.join(self.emissions)}",
            "# S: mean dose rate to target voxel (i,j,k) per MBq in source voxel (0,0,0); "
            "one octant, the kernel is symmetric",
            *(f"# {n}" for n in self.notes),
            "i,j,k,s_mGy_per_MBq_s",
        ]
        lines += [f"{i},{j},{k},{v:.6e}" for (i, j, k), v in zip(idx, s.ravel(), strict=True)]
        with atomic_paths([path]) as (tmp,):
            tmp.write_text("\n".join(lines) + "\n")
        return path


def _cache_key(**kw) -> str:
    return hashlib.sha256(json.dumps(kw, sort_keys=True).encode()).hexdigest()[:16]


def voxel_s_values(
    nuclide: str,
    voxel_mm: float | Sequence[float],
    *,
    material: str = "water",
    emissions: Iterable[str] | str | None = None,
    n_voxels: int | Sequence[int] = 10,
    near_voxels: int = 3,
    n_samples: int = 4_000_000,
    seed: int = 12345,
    use_cache: bool = True,
) -> VoxelSValues:
    """Voxel S-values of ``nuclide`` in ``material`` for one octant.

    Parameters
    ----------
    nuclide : str
    voxel_mm : float or sequence of 3 floats
        Voxel size along the array axes, mm (non-cubic allowed).
    material : str
    emissions : iterable of str, optional
        Classes of :data:`EMISSION_CLASSES` (default all).
    n_voxels : int or sequence of 3 int
        Octant extent: indices 0..n along each axis (n >= 5 for the CLI
        contract). Photon energy deposited beyond it is not in the kernel.
    near_voxels : int
        The energy deposited within ``r_mc = |(near + 1) voxel|`` (``near`` at
        least ``near_voxels`` and the electron reach) is integrated by Monte Carlo;
        the energy beyond it deterministically (see :func:`_deposit`).
    n_samples : int
        Monte Carlo deposition samples per emission group (electrons, photons)
        that has energy in the Monte Carlo part.
    seed : int
    use_cache : bool
        Read and write the result in :func:`cache_dir`.
    """
    vox = np.broadcast_to(np.asarray(voxel_mm, dtype=np.float64), (3,)).copy()
    if not np.all(np.isfinite(vox)) or np.any(vox <= 0):
        raise ValueError(f"voxel_mm: must be positive, got {voxel_mm!r}")
    nv = np.broadcast_to(np.asarray(n_voxels, dtype=np.int64), (3,)).copy()
    if np.any(nv < 1):
        raise ValueError(f"n_voxels: must be >= 1, got {n_voxels!r}")
    em = _parse_emissions(emissions)
    from theranet.nuclides import parse_nuclide

    name = parse_nuclide(nuclide)
    mat = get_material(material).name
    key = _cache_key(
        nuclide=name, voxel=vox.round(6).tolist(), material=mat, emissions=em,
        n=nv.tolist(), near=near_voxels, samples=n_samples, seed=seed,
        data=_DATA_VERSION, svalues=_SVALUE_VERSION, version=__version__,
    )  # fmt: skip
    path = cache_dir() / f"svalues_{name}_{key}.npz"
    if use_cache and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return VoxelSValues(z["s"], tuple(vox.tolist()), name, mat, em, meta["rho"],
                                meta["kernel"], meta["emitted"], tuple(meta["notes"]))  # fmt: skip
    extent_mm = float(np.linalg.norm((nv + 1) * vox)) + float(vox.max())
    kernel = nuclide_kernel(
        name, material=mat, emissions=em, extent_mm=min(extent_mm, _PHOTON_EXTENT_MM),
        shell_mm=min(0.02, float(vox.min()) / 50),
    )  # fmt: skip
    # sample every voxel the electrons reach (their kernel is steep)
    reach = kernel.edges_mm[1:][kernel.electron_mev > 0]
    e_reach = float(reach.max()) if reach.size else 0.0
    near = int(min(nv.max(), max(near_voxels, math.ceil(e_reach / float(vox.min())))))
    dep = _deposit(kernel, vox, nv, near, n_samples, seed)  # MeV per decay per voxel
    mass_kg = kernel.density_g_per_cm3 * float(np.prod(vox)) * 1e-6
    # Gy per decay -> mGy per (MBq s): x 1e6 decays/(MBq s) x 1e3 mGy/Gy
    s = dep * _MEV_TO_J / mass_kg * 1e9
    mirrored = _mirror_weights(nv)
    result = VoxelSValues(
        s_mgy_per_mbq_s=s, voxel_mm=tuple(vox.tolist()), nuclide=name, material=mat,
        emissions=em, density_g_per_cm3=kernel.density_g_per_cm3,
        kernel_energy_mev=float((dep * mirrored).sum()),
        emitted_energy_mev=kernel.emitted_energy_mev,
        notes=(*kernel.notes,
               f"voxel integration: Monte Carlo ({n_samples} samples per emission group, "
               f"seed {seed}) within "
               f"{near} voxels, deterministic source-target voxel average beyond"),
    )  # fmt: skip
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            meta = {"rho": result.density_g_per_cm3, "kernel": result.kernel_energy_mev,
                    "emitted": result.emitted_energy_mev, "notes": list(result.notes)}  # fmt: skip
            np.savez(tmp, s=s, meta=np.array(json.dumps(meta)))
            os.replace(tmp, path)
        except OSError as exc:
            logger.warning("S-value cache not written: %s", exc)
    return result


def _mirror_weights(nv: NDArray[np.int64]) -> NDArray[np.float64]:
    """How many voxels of the full kernel each octant entry stands for."""
    w = [np.where(np.arange(n + 1) == 0, 1.0, 2.0) for n in nv]
    return w[0][:, None, None] * w[1][None, :, None] * w[2][None, None, :]


def _deposit(
    kernel: RadialKernel,
    vox: NDArray[np.float64],
    nv: NDArray[np.int64],
    near: int,
    n_samples: int,
    seed: int,
) -> NDArray[np.float64]:
    """Mean energy (MeV per decay) deposited in each octant voxel.

    The source is uniform in voxel (0, 0, 0) in both parts. The kernel's energy
    in the shells up to the one holding ``r_mc = |(near + 1) vox|``, i.e. at
    distances ``r < r_b`` (``r_b`` that shell's outer edge), is sampled by Monte
    Carlo; its hits land in any voxel, near or far. The electron and the photon
    parts are sampled separately, ``n_samples`` each, and their hits weighted by
    each part's energy: the expected value is that of sampling their sum, but the
    photon tail gets as many samples as the electrons (sampled together, the
    electrons took almost all of them for 177Lu at 1 mm voxels). The energy at
    ``r >= r_b`` is added by :func:`_far_deposit`; it can only reach voxels
    beyond ``near`` (a displacement into the ``near`` cube is at most ``r_mc``
    long).
    """
    rng = np.random.default_rng(seed)
    edges = kernel.edges_mm
    e = np.clip(kernel.energy_mev, 0.0, None)
    out = np.zeros(tuple(int(n) + 1 for n in nv))
    # near region: Monte Carlo over the energy within r_b, each emission group
    # (electrons, photons) sampled on its own with n_samples draws and weighted by
    # its energy, so the photon tail is not starved by the electrons' share
    r_mc_mm = float(np.linalg.norm((near + 1) * vox))
    j_mc = int(np.searchsorted(edges, r_mc_mm, side="right"))
    j_mc = min(j_mc, e.size)
    mirror = _mirror_weights(nv)
    for part in (kernel.electron_mev, kernel.photon_mev):
        e_mc = np.clip(part[:j_mc], 0.0, None)
        total_mc = float(e_mc.sum())
        if total_mc > 0:
            hits = _mc_hits(edges, e_mc, vox, out.shape, n_samples, rng)
            # each mirrored entry collects the hits of all its images: divide them out
            out += total_mc * hits / n_samples / mirror
    # far region: the energy beyond r_b, averaged over source and target voxels
    if j_mc < e.size:
        dens = e / (4.0 / 3.0 * math.pi * np.diff(edges**3))
        out += _far_deposit(edges, dens, float(edges[j_mc]), vox, out.shape)
    return out


def _mc_hits(
    edges: NDArray[np.float64],
    e_mc: NDArray[np.float64],
    vox: NDArray[np.float64],
    shape: tuple[int, ...],
    n_samples: int,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """Hits per octant voxel of ``n_samples`` deposition points: decay point uniform
    in voxel (0, 0, 0), radius drawn from the shell energies ``e_mc`` (uniform in
    volume within a shell), isotropic direction. Each hit stands for
    ``e_mc.sum() / n_samples`` MeV."""
    cdf = np.cumsum(e_mc / e_mc.sum())
    cdf /= cdf[-1]
    chunk = 1_000_000
    hits = np.zeros(shape)
    size = int(np.prod(shape))
    dims = np.array(shape)
    done = 0
    while done < n_samples:
        m = min(chunk, n_samples - done)
        shell = np.searchsorted(cdf, rng.random(m), side="right")
        shell = np.minimum(shell, e_mc.size - 1)
        r_lo, r_hi = edges[shell], edges[shell + 1]
        r = np.cbrt(r_lo**3 + rng.random(m) * (r_hi**3 - r_lo**3))
        cos_t = 2.0 * rng.random(m) - 1.0
        phi = 2.0 * math.pi * rng.random(m)
        sin_t = np.sqrt(1.0 - cos_t**2)
        d = np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t])
        pos = (rng.random((3, m)) - 0.5) * vox[:, None] + r * d
        idx = np.abs(np.rint(pos / vox[:, None])).astype(np.int64)
        ok = np.all(idx < dims[:, None], axis=0)
        flat = np.ravel_multi_index(idx[:, ok], shape)
        hits += np.bincount(flat, minlength=size).reshape(shape)
        done += m
    return hits


def _tent_axis(n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Offsets (in voxels) and weights of the displacement along one axis from a
    source to a target point, each on ``n`` midpoint sub-points of its voxel:
    ``k / n`` for ``|k| < n``, weight ``(n - |k|) / n**2`` (a discrete triangle)."""
    k = np.arange(-(n - 1), n)
    return k / n, (n - np.abs(k)) / float(n * n)


def _far_deposit(
    edges: NDArray[np.float64],
    dens: NDArray[np.float64],
    r_b: float,
    vox: NDArray[np.float64],
    shape: tuple[int, ...],
) -> NDArray[np.float64]:
    """Energy (MeV per decay) in each octant voxel from kernel energy at ``r >= r_b``.

    ``dens`` is the kernel's mean energy density per decay in each shell of
    ``edges`` (MeV/mm^3), read linearly between shell centres. For a source
    uniform in voxel 0 and target voxel ``i`` the energy is
    ``V <dens_outer(|y - x|)>``, averaged over source points x and target points
    y, with ``dens_outer(r) = dens(r)`` for ``r >= r_b`` and 0 below (the Monte
    Carlo part holds that energy). The average uses ``n`` midpoint sub-points per
    axis in each voxel (:func:`_tent_axis`): ``_FAR_SUB`` where every displacement
    is beyond ``r_b`` (the kernel is smooth there), ``_EDGE_SUB`` where the voxel
    pair straddles ``r_b``. Summed over all voxels with one ``n`` this is the
    midpoint rule of ``dens_outer`` on a lattice of step ``vox / n``, so energy is
    kept to that accuracy.
    """
    out = np.zeros(shape)
    # dens on a uniform radial grid (nuclide_kernel's shells are uniform already)
    centres = 0.5 * (edges[1:] + edges[:-1])
    step = float(np.diff(centres).min()) if centres.size > 1 else float(edges[-1])
    if not np.allclose(np.diff(centres), step, rtol=1e-9, atol=0.0):
        grid_r = np.arange(centres[0], centres[-1] + 0.5 * step, step)
        dens, centres = np.interp(grid_r, centres, dens), grid_r
    # one zero beyond the last centre: nothing deposited beyond the extent
    table = np.concatenate([dens, [0.0, 0.0]])
    idx = np.indices(shape).reshape(3, -1).T
    c_mm = idx * vox  # voxel centres
    # every displacement to voxel i lies in the box centre +- vox
    r_max = np.linalg.norm(c_mm + vox, axis=1)
    r_min = np.linalg.norm(np.maximum(c_mm - vox, 0.0), axis=1)
    volume = float(np.prod(vox))
    flat = out.reshape(-1)
    classes = ((_FAR_SUB, r_min >= r_b), (_EDGE_SUB, (r_min < r_b) & (r_max > r_b)))
    for n, sel in classes:
        ids = np.flatnonzero(sel)
        if ids.size == 0:
            continue
        k, w1 = _tent_axis(n)
        w = (w1[:, None, None] * w1[None, :, None] * w1[None, None, :]).ravel()
        batch = max(1, 262_144 // w.size)  # keep the work arrays in cache
        for a in range(0, ids.size, batch):
            sel_ids = ids[a : a + batch]
            sq = [((idx[sel_ids, ax, None] + k[None, :]) * vox[ax]) ** 2 for ax in range(3)]
            r = np.sqrt(
                sq[0][:, :, None, None] + sq[1][:, None, :, None] + sq[2][:, None, None, :]
            ).reshape(sel_ids.size, -1)
            u = (r - centres[0]) / step
            j = np.clip(u.astype(np.int64), 0, dens.size)
            u = np.clip(u - j, 0.0, 1.0)
            d = table[j] * (1.0 - u) + table[j + 1] * u
            d[r < r_b] = 0.0
            flat[sel_ids] = (d @ w) * volume
    return out


# ------------------------------------------------------------- sphere model


def sphere_s_value(
    nuclide: str,
    mass_g: float,
    *,
    material: str = "soft_tissue",
    emissions: Iterable[str] | str | None = None,
) -> float:
    """Mean self-dose S-value of a uniformly active sphere, mGy/(MBq s).

    The absorbed fraction is ``sum_j E_j p_in(r_j/R) / E_emitted`` with
    ``p_in(x) = 1 - 3x/4 + x^3/16`` for ``x <= 2`` (0 beyond), the probability
    that a point uniform in the sphere displaced by ``r`` in a random direction
    stays inside; ``E_j`` the kernel energy per decay in shell ``j`` (midpoint).
    """
    if not (math.isfinite(mass_g) and mass_g > 0):
        raise ValueError(f"mass_g: must be a positive mass in g, got {mass_g!r}")
    mat = get_material(material)
    radius_mm = (3.0 * mass_g / mat.density_g_per_cm3 / (4.0 * math.pi)) ** (1 / 3) * 10.0
    extent_mm = min(2.0 * radius_mm, _PHOTON_EXTENT_MM)
    kernel = nuclide_kernel(
        nuclide, material=mat.name, emissions=emissions, extent_mm=extent_mm,
        shell_mm=max(extent_mm / 4000.0, 1e-4),
    )  # fmt: skip
    return _sphere_s(kernel, radius_mm, mass_g)


def _sphere_s(kernel: RadialKernel, radius_mm: float, mass_g: float) -> float:
    r = 0.5 * (kernel.edges_mm[1:] + kernel.edges_mm[:-1])
    x = r / radius_mm
    p_in = np.where(x <= 2.0, 1.0 - 0.75 * x + x**3 / 16.0, 0.0)
    absorbed_mev = float((kernel.energy_mev * p_in).sum())
    return absorbed_mev * _MEV_TO_J / (mass_g * 1e-3) * 1e9
