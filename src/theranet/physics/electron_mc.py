"""Condensed-history Monte Carlo of electrons: scaled dose point kernels.

:func:`electron_point_kernel` transports monoenergetic electrons emitted
isotropically from a point in an infinite homogeneous medium (water by default;
any material of :data:`~theranet.physics.MATERIALS`, through its NIST ESTAR table,
its density and its ICRU-44 composition) and scores the energy deposited in
concentric spherical shells out to 1.2 CSDA ranges. It returns an
:class:`ElectronPointKernel`: energy fraction per shell, the scaled dose point
kernel F(r/r0) of the MIRD convention, the cumulative energy fraction and r90.

Units: energy MeV, length mm, density g/cm^3, dose Gy; mass thicknesses (ranges,
mean free paths) in g/cm^2, as in the NIST tables.

Transport scheme
----------------
Condensed history with class I steps (Berger 1963, Methods Comput. Phys. 1,
135-215) and explicitly sampled hard collisions:

* **Steps.** A step is the path over which the electron loses, on average, a
  fixed fraction ``step_fraction`` (default 3 %, :data:`DEFAULT_STEP_FRACTION`)
  of its current kinetic energy E by continuous processes: its length is
  ``integral dE'/S_c(E')`` from (1 - f) E to E, S_c the continuous (restricted
  collision + radiative) stopping power. All step quantities are tabulated once
  per kernel on a fine logarithmic energy grid.
* **Stopping powers.** NIST ESTAR collision (S_col) and radiative (S_rad)
  stopping powers of the medium (Berger et al., NIST SRD 124; ICRU Report 37).
* **Bremsstrahlung.** The radiative loss (integral of S_rad/S_c over the step)
  is continuous and is taken as **leaving the kernel**: it is not deposited and is
  reported as :attr:`ElectronPointKernel.radiative_fraction` (0.4 % of the energy
  of a 1 MeV electron in water, 4 % at 10 MeV).
* **Energy-loss straggling** (``straggling=True``, the default). Collisions that
  give an atomic electron more than W_c = max(E_cut, 0.01 E0) are sampled one by
  one from the Moller cross section (Moller 1932, Ann. Phys. 406, 531; number per
  step Poisson-distributed) and the knock-on electrons are transported like the
  primary, from a point of the step, with the directions of the binary-collision
  kinematics. Softer collisions give the restricted collision stopping power L =
  S_col - n_e int_{W_c}^{E/2} W dsigma_Moller (closed form), deposited along the
  step, with a Gaussian fluctuation of variance n_e s int_0^{W_c} W^2
  dsigma_Moller (Bohr), truncated symmetrically to [0, twice the mean] so that the
  mean is kept. Radiative losses do not fluctuate (bremsstrahlung straggling is
  neglected; it matters above a few MeV only). With ``straggling=False`` the
  scheme is the pure CSDA: every collision loss is continuous and deposited along
  the primary's track, and no knock-on electron is produced. Straggling is what
  lets the kernel extend past about 0.95 r0 (ETRAN and EGSnrc kernels reach
  1.05-1.1 r0).
* **Multiple elastic scattering.** The first transport mean free path lambda_1
  comes from the screened Rutherford cross section with Moliere's screening
  parameter (Moliere 1947, Z. Naturforsch. 2a, 133: A = (hbar / 2 p a_TF)^2 (1.13 +
  3.76 (alpha Z / beta)^2), a_TF = 0.885 a_0 Z^(-1/3)), scattering on the atomic
  electrons through Z(Z+1), the McKinley-Feshbach (1948, Phys. Rev. 74, 1759)
  first-order Mott (spin) factor 1 - beta^2 sin^2(theta/2) + pi alpha Z beta
  sin(theta/2) (1 - sin(theta/2)), all integrated in closed form, and the mixture
  rule over the elements of the medium (:func:`transport_mean_free_path_g_per_cm2`).
  By the Goudsmit-Saunderson / Lewis theory (Goudsmit & Saunderson 1940, Phys.
  Rev. 57, 24; Lewis 1950, Phys. Rev. 78, 526) the mean cosine of the deflection
  after a path s is exactly exp(-int ds/lambda_1), whatever the shape of the
  cross section. The polar deflection of a step is sampled from a Wentzel
  (screened-Rutherford-shaped) law whose screening parameter is set so that its
  mean cosine is that exact value, the simplest form of the "modified Wentzel"
  model of Fernandez-Varea, Mayol, Baro & Salvat (1993, Nucl. Instrum. Methods B
  73, 447-473), which also matches the second moment; here only the first moment
  is exact, the shape is the Wentzel one. Matching Lewis's first moment for every
  step is what makes the kernel converge with step size. Gaussian small-angle
  widths (Highland 1975 / Lynch & Dahl 1991, with the radiation length X0 = 36.08
  g/cm^2 of water) are not used: they are fitted for 1e-3 < s/X0 < 100, are not
  additive over shorter steps (here s/X0 ~ 1e-5 to 1e-3), and ignore the
  single-scattering tail.
* **Lateral displacement.** Random hinge (Fernandez-Varea et al. 1993; the
  scheme of PENELOPE, Salvat, Fernandez-Varea & Sempau, OECD/NEA): the electron
  moves a uniformly random fraction of the step along its direction, is deflected
  by the step's angle, and moves the rest of the step along the new direction.
  The energy deposited in the step is scored at a uniformly random point of this
  broken path; knock-on electrons start from the same point.
* **Cut-off.** Electrons are followed down to E_cut, the energy whose CSDA range
  is 0.1 % of r0 (at least 1 keV / (1 - f), inside ESTAR's range); the residual
  energy is deposited where the electron stops, within a twentieth of a shell
  width (0.025 r0) of where it would have stopped.

Scoring and normalisation
-------------------------
Shells of equal width 1.2 r0 / ``n_shells`` (default 48: width 0.025 r0, the grid
of the published tables). ``energy_fraction[i]`` is the mean energy deposited in
shell i per emitted electron divided by E0 (MIRD convention: normalised to the
emitted energy, so the kernel integrates to 1 minus the bremsstrahlung fraction).
The scaled kernel is F(x) = d(E/E0)/dx with x = r/r0, the shell fraction divided
by the shell width in units of r0 (Berger 1971, MIRD Pamphlet No. 7, J. Nucl.
Med. 12 Suppl. 5, 5-23), r0 being the ESTAR CSDA range of E0. Uncertainties are
history-by-history standard errors (a history includes its knock-on electrons).

Validation (see ``tests/physics/test_electron_mc.py``)
------------------------------------------------------
The published scaled kernels of water used for comparison are those of ETRAN
(Berger & Seltzer; Seltzer 1991, Appl. Radiat. Isot. 42, 917-941) and EGSnrc
(EDKnrc; Mainegra-Hing, Rogers & Kawrakow 2005, Med. Phys. 32, 685-699), as
tabulated in Geant4's dose-point-kernel benchmark (``examples/extended/
electromagnetic/TestEm12/berger``). Integrating those tables gives x90 = r90/r0
of 0.793 (ETRAN) and 0.805 (EGSnrc) at 0.1 MeV, 0.782 (ETRAN) at 0.5 MeV and
0.780 (ETRAN) and 0.790 (EGSnrc) at 1 MeV, with the kernel maximum at x = 0.60 to
0.61. With the defaults this code gives x90 = 0.805, 0.793 and 0.790 at 0.1, 0.5
and 1 MeV (0.767-0.769 without straggling), the maximum at x = 0.59-0.61, and F
within 0.07 of the EGSnrc values at every radius.

Performance
-----------
The transport is a numba function that releases the GIL. Histories are split
into 32 independently seeded batches run on a thread pool and summed in a fixed
order, so a result depends on its arguments (``seed`` included) and not on the
number of threads. Compilation is cached on disk by numba.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from theranet.physics.materials import EnergyRangeError, estar, get_material

__all__ = [
    "DEFAULT_N_HISTORIES",
    "DEFAULT_N_SHELLS",
    "DEFAULT_STEP_FRACTION",
    "KERNEL_EXTENT",
    "ElectronPointKernel",
    "electron_point_kernel",
    "simulate_electron_point_kernel",
    "transport_mean_free_path_g_per_cm2",
]

DEFAULT_STEP_FRACTION = 0.03
"""Mean fractional energy loss (continuous processes) per condensed-history step."""
DEFAULT_N_HISTORIES = 20_000
"""Histories per kernel (1 MeV water: standard error < 0.5 % on the cumulative curve)."""
DEFAULT_N_SHELLS = 48
"""Shells between 0 and 1.2 r0 (width 0.025 r0)."""
KERNEL_EXTENT = 1.2
"""Outer radius of the scored shells, in units of the CSDA range r0."""
CUTOFF_RANGE_FRACTION = 1e-3
"""Electrons stop when their CSDA range falls below this fraction of r0."""
HARD_COLLISION_FRACTION = 0.01
"""Knock-on electrons above this fraction of E0 (and above E_cut) are produced."""

_MIN_ENERGY_MEV = 1e-3  # lower end of ESTAR
_MAX_ENERGY_MEV = 10.0  # upper end of ESTAR
_N_BATCHES = 32
_GRID_PER_DECADE = 200
_STACK_SIZE = 4096

# CODATA 2018
_ELECTRON_MASS_MEV = 0.51099895
_FINE_STRUCTURE = 7.2973525693e-3
_CLASSICAL_RADIUS_CM = 2.8179403262e-13
_AVOGADRO = 6.02214076e23
_MEV_TO_J = 1.602176634e-13

#: Standard atomic weights (IUPAC, abridged), g/mol.
_ATOMIC_WEIGHT = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999, "Na": 22.990,
                  "Mg": 24.305, "P": 30.974, "S": 32.06, "Cl": 35.45, "Ar": 39.948,
                  "K": 39.098, "Ca": 40.078, "Pb": 207.2}  # fmt: skip


# ------------------------------------------------------------ elastic scattering


def _wentzel_mean_mu(A: NDArray[np.float64]) -> NDArray[np.float64]:
    """Mean of mu = (1 - cos theta)/2 for the Wentzel law p(mu) ~ 1/(mu + A)^2 on [0, 1]."""
    A = np.asarray(A, dtype=float)
    out = np.empty_like(A)
    big = A > 1e4
    a = A[~big]
    out[~big] = a * ((1.0 + a) * np.log1p(1.0 / a) - 1.0)
    b = A[big]
    out[big] = 0.5 - 1.0 / (6.0 * b) + 1.0 / (12.0 * b * b)
    return out


def _wentzel_screening_for_mean(mean_mu: NDArray[np.float64]) -> NDArray[np.float64]:
    """Screening parameter A of the Wentzel law with the given mean mu (0 < mean < 1/2)."""
    target = np.clip(np.asarray(mean_mu, dtype=float), 1e-300, 0.5 - 1e-9)
    lo = np.full_like(target, -80.0)  # ln A; the mean increases with A
    hi = np.full_like(target, 25.0)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        up = _wentzel_mean_mu(np.exp(mid)) < target
        lo = np.where(up, mid, lo)
        hi = np.where(up, hi, mid)
    return np.exp(0.5 * (lo + hi))


def _kinematics(t: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(pc)^2 in MeV^2 and beta^2 of electrons of kinetic energy t (MeV)."""
    mc2 = _ELECTRON_MASS_MEV
    pc2 = t * (t + 2.0 * mc2)
    return pc2, pc2 / (t + mc2) ** 2


def _transport_xs_per_gram(material: str, energy_mev: NDArray[np.float64]) -> NDArray[np.float64]:
    """1/lambda_1, cm^2/g: screened Rutherford (Moliere) x McKinley-Feshbach, mixture rule."""
    mat = get_material(material)
    t = np.asarray(energy_mev, dtype=float)
    pc2, beta2 = _kinematics(t)
    beta = np.sqrt(beta2)
    pref = 2.0 * math.pi * _CLASSICAL_RADIUS_CM**2 * _ELECTRON_MASS_MEV**2 / (pc2 * beta2)
    total = np.zeros_like(t)
    for symbol, w in mat.composition.items():
        z = mat.atomic_numbers[symbol]
        az = _FINE_STRUCTURE * z
        chi0_sq = (_FINE_STRUCTURE * _ELECTRON_MASS_MEV * z ** (1.0 / 3.0) / 0.885) ** 2 / pc2
        A = 0.25 * chi0_sq * (1.13 + 3.76 * az**2 / beta2)
        lg = np.log1p(1.0 / A)
        j1 = lg - 1.0 / (1.0 + A)  # int_0^1 mu dmu/(mu+A)^2
        j2 = 1.0 - 2.0 * A * lg + A / (1.0 + A)  # int_0^1 mu^2 dmu/(mu+A)^2
        sa = np.sqrt(A)  # int_0^1 mu^(3/2) dmu/(mu+A)^2:
        j32 = 2.0 * (1.0 + A / (2.0 * (1.0 + A)) - 1.5 * sa * np.arctan(1.0 / sa))
        integral = j1 - beta2 * j2 + math.pi * az * beta * (j32 - j2)
        atoms_per_gram = w * _AVOGADRO / _ATOMIC_WEIGHT[symbol]
        total += atoms_per_gram * z * (z + 1) * pref * integral
    return total


def transport_mean_free_path_g_per_cm2(
    energy_mev: ArrayLike, material: str = "water"
) -> float | NDArray[np.float64]:
    """First transport mean free path lambda_1 of electrons, g/cm^2.

    Screened Rutherford cross section with Moliere's screening, Z(Z+1) for the
    atomic electrons, the McKinley-Feshbach spin factor and the mixture rule over
    the composition of the material (see the module notes). After a path s the
    mean cosine of the deflection is ``exp(-s / lambda_1)`` (Lewis 1950).

    Parameters
    ----------
    energy_mev : float or array_like
        Kinetic energy, MeV (finite, positive).
    material : str
        A material of :data:`~theranet.physics.MATERIALS`.

    Returns
    -------
    float or ndarray
    """
    e = np.asarray(energy_mev, dtype=float)
    if not np.all(np.isfinite(e) & (e > 0)):
        raise EnergyRangeError("energy_mev", "must be finite and positive", energy_mev)
    lam = 1.0 / _transport_xs_per_gram(get_material(material).name, np.atleast_1d(e).ravel())
    return float(lam[0]) if e.ndim == 0 else lam.reshape(e.shape)


# ------------------------------------------------------------- Moller (knock-ons)


def _moller_integrals(
    t: NDArray[np.float64], eps_c: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Moller integrals per target electron, for kinetic energy t and cut eps_c = W_c/t.

    Returns (sigma_hard [cm^2], int W dsigma above W_c [MeV cm^2], int W^2 dsigma
    below W_c [MeV^2 cm^2]); the secondary takes the lower energy (eps <= 1/2).
    """
    _, beta2 = _kinematics(t)
    gamma = 1.0 + t / _ELECTRON_MASS_MEV
    c = ((gamma - 1.0) / gamma) ** 2
    k = (2.0 * gamma - 1.0) / gamma**2
    e = np.minimum(eps_c, 0.5)
    pref = 2.0 * math.pi * _CLASSICAL_RADIUS_CM**2 * _ELECTRON_MASS_MEV / beta2
    l1 = np.log1p(-e)  # ln(1 - e)
    # int_e^{1/2} f(eps) deps, f = 1/eps^2 + 1/(1-eps)^2 + c - k/(eps (1-eps))
    sigma = pref / t * (1.0 / e - 1.0 / (1.0 - e) + c * (0.5 - e) - k * np.log((1.0 - e) / e))
    # int_e^{1/2} eps f(eps) deps
    first = (
        np.log(0.5 / e) + 2.0 - math.log(2.0) - 1.0 / (1.0 - e) - l1
        + c * (0.125 - 0.5 * e * e) - k * (math.log(2.0) + l1)
    )  # fmt: skip
    # int_0^e eps^2 f(eps) deps
    second = e + (1.0 / (1.0 - e) + 2.0 * l1 - 1.0 + e) + c * e**3 / 3.0 + k * (l1 + e)
    sigma = np.where(eps_c < 0.5, sigma, 0.0)
    first = np.where(eps_c < 0.5, first, 0.0)
    return sigma, pref * first, pref * t * second


def _electrons_per_gram(material: str) -> float:
    mat = get_material(material)
    return sum(w * mat.atomic_numbers[s] * _AVOGADRO / _ATOMIC_WEIGHT[s]
               for s, w in mat.composition.items())  # fmt: skip


# ------------------------------------------------------------------- step tables


@dataclass(frozen=True)
class _Tables:
    ln_e_min: float
    inv_d_ln_e: float
    step_mm: NDArray[np.float64]  # path length of a step starting at E
    screening: NDArray[np.float64]  # Wentzel A of the step's deflection
    soft_mean: NDArray[np.float64]  # mean continuous collision loss, MeV
    soft_sd: NDArray[np.float64]  # its standard deviation, MeV
    radiative: NDArray[np.float64]  # radiative loss, MeV
    n_hard: NDArray[np.float64]  # mean number of hard collisions
    cutoff_mev: float
    hard_cut_mev: float


def _cutoff_mev(energy_mev: float, material: str, step_fraction: float) -> float:
    table = estar(material)
    r_cut = CUTOFF_RANGE_FRACTION * float(table.csda_range_g_per_cm2(energy_mev))
    floor = _MIN_ENERGY_MEV / (1.0 - step_fraction)
    grid = np.geomspace(_MIN_ENERGY_MEV, _MAX_ENERGY_MEV, 801)
    ln_r = np.log(table.csda_range_g_per_cm2(grid))
    cut = float(np.exp(np.interp(math.log(r_cut), ln_r, np.log(grid))))
    return max(cut, floor)


def _step_tables(energy_mev: float, material: str, step_fraction: float,
                 straggling: bool) -> _Tables:  # fmt: skip
    mat = get_material(material)
    table = estar(mat.name)
    rho = mat.density_g_per_cm3
    cutoff = _cutoff_mev(energy_mev, mat.name, step_fraction)
    hard_cut = max(cutoff, HARD_COLLISION_FRACTION * energy_mev) if straggling else math.inf
    e_top = max(energy_mev, cutoff) * 1.0001
    n = max(2, math.ceil(math.log10(e_top / cutoff) * _GRID_PER_DECADE) + 1)
    grid = np.geomspace(cutoff, e_top, n)
    # quadrature over each step [(1-f)E, E], Gauss-Legendre in ln E
    nodes, weights = np.polynomial.legendre.leggauss(8)
    ln_hi = np.log(grid)
    ln_lo = np.log(grid * (1.0 - step_fraction))
    half = 0.5 * (ln_hi - ln_lo)
    e_q = np.exp(0.5 * (ln_hi + ln_lo)[:, None] + half[:, None] * nodes[None, :])
    jac = e_q * half[:, None] * weights[None, :]  # dE = E dlnE
    s_col = table.s_col(e_q)
    s_rad = table.s_rad(e_q)
    n_e = _electrons_per_gram(mat.name)
    if straggling:
        sig, w1, w2 = _moller_integrals(e_q, hard_cut / e_q)
        s_soft = s_col - n_e * w1  # restricted collision stopping power
        sigma_hard, var_rate = n_e * sig, n_e * w2  # per g/cm^2
    else:
        s_soft, sigma_hard, var_rate = s_col, np.zeros_like(e_q), np.zeros_like(e_q)
    s_cont = s_soft + s_rad
    path_g = np.sum(jac / s_cont, axis=1)
    radiative = np.sum(s_rad / s_cont * jac, axis=1)
    soft_mean = step_fraction * grid - radiative
    soft_var = np.sum(var_rate / s_cont * jac, axis=1)
    n_hard = np.sum(sigma_hard / s_cont * jac, axis=1)
    inv_lambda = _transport_xs_per_gram(mat.name, e_q.ravel()).reshape(e_q.shape)
    tau = np.sum(inv_lambda / s_cont * jac, axis=1)  # integral ds / lambda_1
    screening = _wentzel_screening_for_mean(-0.5 * np.expm1(-tau))

    def arr(a: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.ascontiguousarray(a, dtype=np.float64)

    return _Tables(
        ln_e_min=math.log(cutoff),
        inv_d_ln_e=(n - 1) / math.log(e_top / cutoff),
        step_mm=arr(path_g / rho * 10.0),
        screening=arr(screening),
        soft_mean=arr(soft_mean),
        soft_sd=arr(np.sqrt(soft_var)),
        radiative=arr(radiative),
        n_hard=arr(n_hard),
        cutoff_mev=cutoff,
        hard_cut_mev=hard_cut,
    )


# ---------------------------------------------------------------------- transport


@numba.njit(inline="always")
def _rotate(u, v, w, cth, sth, cph, sph):
    """Direction (u, v, w) turned by polar angle theta and azimuth phi."""
    if abs(w) < 0.99999:
        r = math.sqrt(1.0 - w * w)
        un = u * cth + sth * (u * w * cph - v * sph) / r
        vn = v * cth + sth * (v * w * cph + u * sph) / r
        wn = w * cth - r * sth * cph
    else:
        un = sth * cph
        vn = sth * sph
        wn = cth if w > 0.0 else -cth
    norm = 1.0 / math.sqrt(un * un + vn * vn + wn * wn)
    return un * norm, vn * norm, wn * norm


@numba.njit(inline="always")
def _score(hist, x, y, z, energy, shell_width, n_shells):
    ib = int(math.sqrt(x * x + y * y + z * z) / shell_width)
    if ib > n_shells:
        ib = n_shells
    hist[ib] += energy


@numba.njit(nogil=True, cache=True)
def _transport_batch(n_hist, rng, energy0, cutoff, hard_cut, ln_e_min, inv_d, step_mm,
                     screening, soft_mean, soft_sd, radiative, n_hard, shell_width,
                     out_sum, out_sumsq, out_rad):  # fmt: skip
    """Transport ``n_hist`` primaries; add energy per shell, its square, and radiative loss.

    ``out_sum``/``out_sumsq`` have ``n_shells + 1`` entries, the last one for energy
    deposited beyond the scored shells; ``out_rad`` has one entry.
    """
    n_bins = out_sum.size
    n_shells = n_bins - 1
    last = step_mm.size - 1
    two_pi = 2.0 * math.pi
    mc2 = 0.51099895
    hist = np.zeros(n_bins)
    stack = np.empty((_STACK_SIZE, 7))
    rad_total = 0.0
    for _ in range(n_hist):
        n_stack = 1
        stack[0, 0] = 0.0
        stack[0, 1] = 0.0
        stack[0, 2] = 0.0
        w0 = 2.0 * rng.random() - 1.0
        ph0 = two_pi * rng.random()
        st0 = math.sqrt(max(0.0, 1.0 - w0 * w0))
        stack[0, 3] = st0 * math.cos(ph0)
        stack[0, 4] = st0 * math.sin(ph0)
        stack[0, 5] = w0
        stack[0, 6] = energy0
        while n_stack > 0:
            n_stack -= 1
            x = stack[n_stack, 0]
            y = stack[n_stack, 1]
            z = stack[n_stack, 2]
            u = stack[n_stack, 3]
            v = stack[n_stack, 4]
            w = stack[n_stack, 5]
            e = stack[n_stack, 6]
            while e >= cutoff:
                # table lookup, linear in ln E
                t = (math.log(e) - ln_e_min) * inv_d
                i = int(t)
                if i >= last:
                    i = last - 1
                g = t - i
                h = 1.0 - g
                s = h * step_mm[i] + g * step_mm[i + 1]
                a = h * screening[i] + g * screening[i + 1]
                # deflection from the moment-matched Wentzel law
                xi = rng.random()
                mu = a * xi / (1.0 + a - xi)
                cth = 1.0 - 2.0 * mu
                sth = 2.0 * math.sqrt(max(0.0, mu * (1.0 - mu)))
                phi = two_pi * rng.random()
                un, vn, wn = _rotate(u, v, w, cth, sth, math.cos(phi), math.sin(phi))
                # random hinge; deposition point uniform on the broken path
                t1 = rng.random() * s
                hx = x + t1 * u
                hy = y + t1 * v
                hz = z + t1 * w
                td = rng.random() * s
                if td < t1:
                    px = x + td * u
                    py = y + td * v
                    pz = z + td * w
                else:
                    px = hx + (td - t1) * un
                    py = hy + (td - t1) * vn
                    pz = hz + (td - t1) * wn
                rest = s - t1
                x = hx + rest * un
                y = hy + rest * vn
                z = hz + rest * wn
                u = un
                v = vn
                w = wn
                # continuous losses
                mean = h * soft_mean[i] + g * soft_mean[i + 1]
                sd = h * soft_sd[i] + g * soft_sd[i + 1]
                loss = mean
                if sd > 0.0:
                    loss = mean + sd * rng.standard_normal()
                    if loss < 0.0:
                        loss = 0.0
                    elif loss > 2.0 * mean:
                        loss = 2.0 * mean
                rad = h * radiative[i] + g * radiative[i + 1]
                if loss + rad > e:
                    loss = max(0.0, e - rad)
                    rad = e - loss
                _score(hist, px, py, pz, loss, shell_width, n_shells)
                rad_total += rad
                e -= loss + rad
                # hard (Moller) collisions: Poisson number, energy by rejection
                m = h * n_hard[i] + g * n_hard[i + 1]
                if m > 0.0:
                    lim = math.exp(-m)
                    p = rng.random()
                    while p > lim and e > 2.0 * hard_cut:
                        p *= rng.random()
                        eps_c = hard_cut / e
                        gam = 1.0 + e / mc2
                        cc = ((gam - 1.0) / gam) ** 2
                        kk = (2.0 * gam - 1.0) / (gam * gam)
                        bound = 2.0 + 0.25 * cc
                        while True:  # eps ~ 1/eps^2 on [eps_c, 1/2], then reject
                            eps = eps_c / (1.0 - rng.random() * (1.0 - 2.0 * eps_c))
                            r = eps / (1.0 - eps)
                            f = 1.0 + r * r + cc * eps * eps - kk * r
                            if rng.random() * bound <= f:
                                break
                        wk = eps * e
                        e_new = e - wk
                        # binary-collision directions, azimuths opposite
                        c_p = math.sqrt(e_new * (e + 2.0 * mc2) / (e * (e_new + 2.0 * mc2)))
                        c_s = math.sqrt(wk * (e + 2.0 * mc2) / (e * (wk + 2.0 * mc2)))
                        c_p = min(c_p, 1.0)
                        c_s = min(c_s, 1.0)
                        phi = two_pi * rng.random()
                        cph = math.cos(phi)
                        sph = math.sin(phi)
                        su, sv, sw = _rotate(u, v, w, c_s, math.sqrt(1.0 - c_s * c_s), -cph, -sph)
                        u, v, w = _rotate(u, v, w, c_p, math.sqrt(1.0 - c_p * c_p), cph, sph)
                        e = e_new
                        if wk < cutoff or n_stack >= _STACK_SIZE:
                            _score(hist, px, py, pz, wk, shell_width, n_shells)
                        else:
                            stack[n_stack, 0] = px
                            stack[n_stack, 1] = py
                            stack[n_stack, 2] = pz
                            stack[n_stack, 3] = su
                            stack[n_stack, 4] = sv
                            stack[n_stack, 5] = sw
                            stack[n_stack, 6] = wk
                            n_stack += 1
            if e > 0.0:
                _score(hist, x, y, z, e, shell_width, n_shells)
        for j in range(n_bins):
            q = hist[j]
            if q != 0.0:
                out_sum[j] += q
                out_sumsq[j] += q * q
                hist[j] = 0.0
    out_rad[0] += rad_total


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


# ------------------------------------------------------------------------- result


def _readonly(a: ArrayLike) -> NDArray[np.float64]:
    out = np.array(a, dtype=float)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class ElectronPointKernel:
    """Scaled dose point kernel of monoenergetic electrons (see the module notes).

    Attributes
    ----------
    energy_mev : float
        Emission energy E0, MeV.
    material : str
        Medium (a :data:`~theranet.physics.MATERIALS` name).
    density_g_per_cm3 : float
        Density of the medium.
    csda_range_mm : float
        r0: ESTAR CSDA range of E0 in the medium, mm.
    edges_mm : ndarray
        Shell boundaries, ``n_shells + 1`` values from 0 to 1.2 r0, mm.
    energy_fraction : ndarray
        Mean energy deposited in each shell per emitted electron, as a fraction of E0.
    energy_fraction_std : ndarray
        Standard error of :attr:`energy_fraction` (history by history).
    cumulative_fraction_std : ndarray
        Standard error of :attr:`cumulative_fraction`, from the spread of the 32
        independently seeded batches (NaN with fewer than 2 batches).
    beyond_fraction : float
        Fraction of E0 deposited beyond 1.2 r0.
    radiative_fraction : float
        Fraction of E0 lost to bremsstrahlung, which leaves the kernel.
    n_histories, seed : int
        Number of primary electrons and random seed.
    step_fraction : float
        Mean fractional energy loss per step.
    straggling : bool
        Whether energy-loss straggling (and knock-on transport) was simulated.
    cutoff_mev : float
        Energy below which electrons are stopped and their energy deposited.
    """

    energy_mev: float
    material: str
    density_g_per_cm3: float
    csda_range_mm: float
    edges_mm: NDArray[np.float64] = field(repr=False)
    energy_fraction: NDArray[np.float64] = field(repr=False)
    energy_fraction_std: NDArray[np.float64] = field(repr=False)
    cumulative_fraction_std: NDArray[np.float64] = field(repr=False)
    beyond_fraction: float
    radiative_fraction: float
    n_histories: int
    seed: int
    step_fraction: float
    straggling: bool
    cutoff_mev: float

    @property
    def n_shells(self) -> int:
        """Number of scored shells."""
        return int(self.energy_fraction.size)

    @property
    def radii_mm(self) -> NDArray[np.float64]:
        """Mid-radius of each shell, mm."""
        return _readonly(0.5 * (self.edges_mm[1:] + self.edges_mm[:-1]))

    @property
    def scaled_radius(self) -> NDArray[np.float64]:
        """x = r/r0 at the mid-radius of each shell."""
        return _readonly(self.radii_mm / self.csda_range_mm)

    @property
    def scaled_kernel(self) -> NDArray[np.float64]:
        """F(x) = d(E/E0)/d(r/r0) in each shell: the MIRD scaled point kernel."""
        dx = np.diff(self.edges_mm) / self.csda_range_mm
        return _readonly(self.energy_fraction / dx)

    @property
    def scaled_kernel_std(self) -> NDArray[np.float64]:
        """Standard error of :attr:`scaled_kernel`."""
        dx = np.diff(self.edges_mm) / self.csda_range_mm
        return _readonly(self.energy_fraction_std / dx)

    @property
    def cumulative_fraction(self) -> NDArray[np.float64]:
        """Fraction of E0 deposited within the outer radius of each shell."""
        return _readonly(np.cumsum(self.energy_fraction))

    @property
    def deposited_fraction(self) -> float:
        """Fraction of E0 deposited anywhere (in the shells and beyond)."""
        return float(self.energy_fraction.sum() + self.beyond_fraction)

    @property
    def r90_mm(self) -> float:
        """Radius of the sphere holding 90 % of the deposited energy, mm."""
        return self.radius_containing(0.9)

    @property
    def x90(self) -> float:
        """r90 in units of the CSDA range r0."""
        return self.r90_mm / self.csda_range_mm

    def radius_containing(self, fraction: float) -> float:
        """Radius (mm) of the sphere holding ``fraction`` of the deposited energy.

        Linear interpolation of the cumulative energy within a shell; ``inf`` when
        the sphere reaches beyond 1.2 r0.
        """
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction: must lie in (0, 1), got {fraction!r}")
        cum = np.concatenate([[0.0], np.cumsum(self.energy_fraction)])
        target = fraction * self.deposited_fraction
        if target > cum[-1]:
            return math.inf
        return float(np.interp(target, cum, self.edges_mm))

    def shell_dose_gy(self) -> NDArray[np.float64]:
        """Mean absorbed dose in each shell per emitted electron, Gy."""
        volume_cm3 = 4.0 / 3.0 * math.pi * np.diff(self.edges_mm**3) * 1e-3
        mass_kg = volume_cm3 * self.density_g_per_cm3 * 1e-3
        return _readonly(self.energy_fraction * self.energy_mev * _MEV_TO_J / mass_kg)


def _check(energy_mev: float, material: str, n_histories: int, seed: int,
           step_fraction: float, n_shells: int) -> tuple[float, str]:  # fmt: skip
    energy = float(energy_mev)
    if not (math.isfinite(energy) and _MIN_ENERGY_MEV < energy <= _MAX_ENERGY_MEV):
        raise EnergyRangeError(
            "energy_mev", "outside the ESTAR range (0.001, 10] MeV", energy_mev,
            fix="give an energy above 1 keV and at most 10 MeV",
        )  # fmt: skip
    name = get_material(material).name
    for label, value in (("n_histories", n_histories), ("n_shells", n_shells)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{label}: must be a positive integer, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    if not (0.005 <= float(step_fraction) <= 0.2):
        raise ValueError(f"step_fraction: must lie in [0.005, 0.2], got {step_fraction!r}")
    return energy, name


def simulate_electron_point_kernel(
    energy_mev: float,
    material: str = "water",
    *,
    n_histories: int = DEFAULT_N_HISTORIES,
    seed: int = 0,
    step_fraction: float = DEFAULT_STEP_FRACTION,
    n_shells: int = DEFAULT_N_SHELLS,
    straggling: bool = True,
    n_threads: int | None = None,
) -> ElectronPointKernel:
    """Run the Monte Carlo for one kernel (uncached; see :func:`electron_point_kernel`).

    Parameters are those of :func:`electron_point_kernel`, plus ``n_threads``:
    worker threads (default: the CPUs available to the process); the result does
    not depend on it.
    """
    energy, name = _check(energy_mev, material, n_histories, seed, step_fraction, n_shells)
    if n_threads is None:
        n_threads = _default_threads()
    elif isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise ValueError(f"n_threads: must be a positive integer, got {n_threads!r}")
    mat = get_material(name)
    rho = mat.density_g_per_cm3
    r0_mm = float(estar(name).csda_range_mm(energy, density_g_per_cm3=rho))
    tab = _step_tables(energy, name, float(step_fraction), bool(straggling))
    width = KERNEL_EXTENT * r0_mm / n_shells

    n_batches = min(_N_BATCHES, int(n_histories))
    counts = np.full(n_batches, n_histories // n_batches, dtype=np.int64)
    counts[: n_histories % n_batches] += 1
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(n_batches)]
    sums = np.zeros((n_batches, n_shells + 1))
    sumsqs = np.zeros((n_batches, n_shells + 1))
    rads = np.zeros((n_batches, 1))

    def one(b: int) -> None:
        _transport_batch(
            int(counts[b]), rngs[b], energy, tab.cutoff_mev, tab.hard_cut_mev,
            tab.ln_e_min, tab.inv_d_ln_e, tab.step_mm, tab.screening, tab.soft_mean,
            tab.soft_sd, tab.radiative, tab.n_hard, width, sums[b], sumsqs[b], rads[b],
        )  # fmt: skip

    if n_threads == 1:
        for b in range(n_batches):
            one(b)
    else:
        with ThreadPoolExecutor(max_workers=min(n_threads, n_batches)) as pool:
            list(pool.map(one, range(n_batches)))
    total = sums.sum(axis=0)
    mean = total / n_histories
    var = np.maximum(sumsqs.sum(axis=0) / n_histories - mean**2, 0.0) / max(n_histories - 1, 1)
    if n_batches > 1:
        batch_cum = np.cumsum(sums[:, :-1], axis=1) / counts[:, None] / energy
        cum_std = batch_cum.std(axis=0, ddof=1) / math.sqrt(n_batches)
    else:
        cum_std = np.full(n_shells, np.nan)
    return ElectronPointKernel(
        energy_mev=energy,
        material=name,
        density_g_per_cm3=rho,
        csda_range_mm=r0_mm,
        edges_mm=_readonly(np.linspace(0.0, KERNEL_EXTENT * r0_mm, n_shells + 1)),
        energy_fraction=_readonly(mean[:-1] / energy),
        energy_fraction_std=_readonly(np.sqrt(var[:-1]) / energy),
        cumulative_fraction_std=_readonly(cum_std),
        beyond_fraction=float(mean[-1] / energy),
        radiative_fraction=float(rads.sum() / n_histories / energy),
        n_histories=int(n_histories),
        seed=int(seed),
        step_fraction=float(step_fraction),
        straggling=bool(straggling),
        cutoff_mev=tab.cutoff_mev,
    )


def electron_point_kernel(
    energy_mev: float,
    material: str = "water",
    *,
    n_histories: int = DEFAULT_N_HISTORIES,
    seed: int = 0,
    step_fraction: float = DEFAULT_STEP_FRACTION,
    n_shells: int = DEFAULT_N_SHELLS,
    straggling: bool = True,
) -> ElectronPointKernel:
    """Dose point kernel of monoenergetic electrons by condensed-history Monte Carlo.

    Parameters
    ----------
    energy_mev : float
        Emission energy, MeV, in (0.001, 10] (the range of the ESTAR tables).
    material : str
        Medium: a :data:`~theranet.physics.MATERIALS` name (default water).
    n_histories : int
        Number of primary electrons.
    seed : int
        Random seed (non-negative). The result depends on the arguments only, not
        on the number of threads.
    step_fraction : float
        Mean fractional energy loss per step, in [0.005, 0.2].
    n_shells : int
        Number of equal-width shells between 0 and 1.2 r0.
    straggling : bool
        Simulate energy-loss straggling: knock-on electrons above 1 % of E0 sampled
        and transported, Gaussian fluctuation of softer losses (default). False:
        continuous slowing down only.

    Returns
    -------
    ElectronPointKernel
        Cached: repeated calls with the same arguments return the same object.

    Examples
    --------
    >>> k = electron_point_kernel(1.0)  # doctest: +SKIP
    >>> round(k.x90, 2)  # doctest: +SKIP
    0.79
    """
    energy, name = _check(energy_mev, material, n_histories, seed, step_fraction, n_shells)
    return _cached_kernel(energy, name, int(n_histories), int(seed), float(step_fraction),
                          int(n_shells), bool(straggling))  # fmt: skip


@lru_cache(maxsize=128)
def _cached_kernel(
    energy: float,
    material: str,
    n_histories: int,
    seed: int,
    step_fraction: float,
    n_shells: int,
    straggling: bool,
) -> ElectronPointKernel:
    return simulate_electron_point_kernel(
        energy, material, n_histories=n_histories, seed=seed, step_fraction=step_fraction,
        n_shells=n_shells, straggling=straggling,
    )  # fmt: skip
