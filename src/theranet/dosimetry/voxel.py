"""Voxel dosimetry: absorbed dose from a time-integrated activity (TIA) map.

Methods
-------
``convolution``
    Dose = TIA (MBq h per voxel) convolved with the voxel S-value kernel of the
    nuclide in a homogeneous medium (:func:`theranet.physics.kernels.voxel_s_values`),
    times 3600 s/h / 1000 mGy/Gy. Zero-padded FFT convolution: activity outside the
    grid is zero and no dose wraps around.
``density_corrected``
    The convolution dose scaled voxel by voxel by ``rho_kernel / rho_voxel``. The
    kernel's medium (``material``) is assumed to carry the energy to the same place
    in any tissue; the energy deposited in a voxel is then the kernel's energy and
    dose = energy / mass scales with the inverse of the voxel density. Electron
    ranges and photon attenuation are *not* rescaled (the usual first-order voxel
    density correction).
``local``
    Local energy deposition: the non-penetrating (electron) energy emitted per
    decay is absorbed in the voxel where the decay happens; photons are neglected.
    ``D = TIA [MBq h] x 3.6e9 decays/(MBq h) x E_np [MeV] x 1.602e-13 J/MeV / m [kg]``.

Units: TIA MBq h per voxel, S-values mGy/(MBq s), dose Gy, density g/cm^3.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft
from numpy.typing import NDArray

from theranet.errors import GeometryError, ImageDataError, QuantityError
from theranet.image import Image, Quantity

__all__ = ["METHODS", "DoseResult", "convolve_dose", "voxel_dose"]

#: Dose calculation methods of :func:`voxel_dose`.
METHODS = ("convolution", "density_corrected", "local")

#: mGy/(MBq s) x MBq h -> Gy: 3600 s/h / 1000 mGy/Gy.
_S_TO_GY = 3.6
_DECAYS_PER_MBQ_H = 3.6e9
_MEV_TO_J = 1.602176634e-13
#: Quantities that cannot be a TIA map.


def convolve_dose(
    tia_mbq_h: NDArray[np.floating],
    kernel_mgy_per_mbq_s: NDArray[np.floating],
    *,
    precision: str = "single",
    workers: int | None = None,
) -> NDArray[np.floating]:
    """Absorbed dose, Gy: TIA per voxel convolved with a voxel S-value kernel.

    Linear (zero-padded) FFT convolution: each axis is padded to
    ``scipy.fft.next_fast_len(n + k - 1)``, so no dose wraps around the grid.
    The kernel is centred: element ``(k - 1) // 2`` along each axis is the source
    voxel (the centre of an odd-sized kernel such as
    :meth:`~theranet.physics.kernels.VoxelSValues.full`). The result equals
    ``scipy.signal.fftconvolve(tia, kernel, mode="same") * 3.6``.

    Parameters
    ----------
    tia_mbq_h : ndarray
        Time-integrated activity in each voxel, MBq h.
    kernel_mgy_per_mbq_s : ndarray
        Voxel S-values, mGy/(MBq s), same number of dimensions as ``tia_mbq_h``.
    precision : {"single", "double"}
        ``"single"`` computes in float32/complex64 (error below ~1e-6 of the
        maximum dose, twice as fast); ``"double"`` in float64.
    workers : int, optional
        Threads of :mod:`scipy.fft` (default: scipy's default, one).

    Returns
    -------
    ndarray
        Dose, Gy, shape of ``tia_mbq_h``; float32 for single precision, else float64.

    Examples
    --------
    >>> import numpy as np
    >>> tia = np.zeros((5, 5, 5)); tia[2, 2, 2] = 1.0
    >>> k = np.ones((3, 3, 3))
    >>> float(convolve_dose(tia, k, precision="double")[1, 2, 3])
    3.6
    """
    dtype = {"single": np.float32, "double": np.float64}.get(precision)
    if dtype is None:
        raise ValueError(f"precision: {precision!r}; use 'single' or 'double'")
    a = np.asarray(tia_mbq_h)
    k = np.asarray(kernel_mgy_per_mbq_s)
    if a.ndim != k.ndim or a.ndim == 0:
        raise ImageDataError(
            "kernel_mgy_per_mbq_s",
            f"must have as many dimensions as the TIA ({a.ndim})",
            k.shape,
        )
    if a.size == 0 or k.size == 0:
        raise ImageDataError("tia_mbq_h", "empty array", a.shape)
    for name, arr in (("tia_mbq_h", a), ("kernel_mgy_per_mbq_s", k)):
        if arr.dtype.kind not in "biuf" or not np.all(np.isfinite(arr)):
            raise ImageDataError(name, "must be finite real numbers", str(arr.dtype))
    axes = tuple(range(a.ndim))
    shape = [
        scipy.fft.next_fast_len(n + m - 1, True) for n, m in zip(a.shape, k.shape, strict=True)
    ]
    spec = scipy.fft.rfftn(a.astype(dtype, copy=False), shape, axes=axes, workers=workers)
    spec *= scipy.fft.rfftn(k.astype(dtype, copy=False), shape, axes=axes, workers=workers)
    full = scipy.fft.irfftn(spec, shape, axes=axes, workers=workers, overwrite_x=True)
    sl = tuple(slice((m - 1) // 2, (m - 1) // 2 + n) for n, m in zip(a.shape, k.shape, strict=True))
    out = full[sl]
    out *= dtype(_S_TO_GY)
    return np.ascontiguousarray(out)


@dataclass(frozen=True, eq=False)
class DoseResult:
    """Result of :func:`voxel_dose`.

    Attributes
    ----------
    dose : Image
        Absorbed dose, Gy (``Quantity.DOSE``), on the grid of the TIA.
    method : str
        One of :data:`METHODS`.
    kernel : str
        Description of the kernel (nuclide, medium, voxel size, emissions), or of
        the local deposition energy.
    s_values : VoxelSValues, optional
        The kernel used (None for ``local``).
    notes : tuple of str
        What the method assumed.
    """

    dose: Image
    method: str
    kernel: str
    s_values: object | None = None
    notes: tuple[str, ...] = ()


def _spacing(affine: NDArray[np.float64]) -> tuple[float, float, float]:
    """Voxel size along the array axes, mm; refuses oblique grids."""
    m = np.asarray(affine, dtype=np.float64)[:3, :3]
    spacing = np.linalg.norm(m, axis=0)
    off = np.abs(m) > 1e-6 * spacing[None, :]
    if not (np.all(off.sum(axis=0) == 1) and np.all(off.sum(axis=1) == 1)):
        raise GeometryError(
            "affine",
            "voxel dosimetry needs an axis-aligned grid (kernel axes along the array "
            "axes); this affine is oblique",
            np.round(m, 4).tolist(),
            "resample the TIA onto an axis-aligned grid (Image.resample_to) first",
        )
    return tuple(float(s) for s in spacing)  # type: ignore[return-value]


def _density(
    density: float | NDArray[np.floating] | Image, tia: Image
) -> float | NDArray[np.float64]:
    if isinstance(density, Image):
        if not density.same_grid(tia):
            raise GeometryError(
                "density_g_per_cm3",
                "density image is not on the TIA grid",
                density.shape,
                "resample it with density.resample_to(tia)",
            )
        density = density.data
    rho = np.asarray(density, dtype=np.float64)
    if rho.ndim and rho.shape != tia.shape:
        raise ImageDataError(
            "density_g_per_cm3", f"shape must be {tia.shape} or a scalar", rho.shape
        )
    if not np.all(np.isfinite(rho)) or np.any(rho <= 0):
        raise ImageDataError(
            "density_g_per_cm3",
            "densities must be positive and finite",
            float(np.min(rho)) if rho.size else None,
            "clip the density map (e.g. to >= 0.001 g/cm3 for air)",
        )
    return float(rho) if rho.ndim == 0 else rho


def _electron_energy_mev(nuclide: str, emissions: Iterable[str] | str | None) -> float:
    """Non-penetrating energy per decay, MeV, of the chosen electron classes."""
    from theranet.nuclides import Nuclide
    from theranet.physics.kernels import _parse_emissions

    nuc = Nuclide(nuclide)
    if emissions is None:
        return float(nuc.electron_energy_mev)
    em = _parse_emissions(emissions)
    return float(sum(nuc.mean_energy_mev(c) for c in em if c in ("beta", "ce", "auger")))


def voxel_dose(
    tia: Image | NDArray[np.floating],
    nuclide: str,
    *,
    voxel_mm: float | Sequence[float] | None = None,
    material: str = "soft_tissue",
    emissions: Iterable[str] | str | None = None,
    n_voxels: int | Sequence[int] | None = None,
    density_g_per_cm3: float | NDArray[np.floating] | Image | None = None,
    method: str = "convolution",
    precision: str = "single",
) -> DoseResult:
    """Absorbed dose from a TIA map (see the module docstring for the methods).

    Parameters
    ----------
    tia : Image or ndarray, shape (Z, Y, X)
        Time-integrated activity in each voxel, MBq h (not per mL: multiply a
        :class:`~theranet.kinetics.voxelwise.TIAMapResult` density by the voxel
        volume in mL).
    nuclide : str
        ``"Lu-177"``, ``"Y-90"``...
    voxel_mm : float or sequence of 3 floats, optional
        Voxel size for a plain array, mm (an Image's comes from its affine, which
        must be axis-aligned).
    material : str
        Medium of the kernel (and the default density of ``local``).
    emissions : iterable of str or str, optional
        Emission classes of the kernel (default all). For ``local`` the electron
        classes among them (``beta``, ``ce``, ``auger``) give E_np.
    n_voxels : int or sequence of 3 int, optional
        Kernel octant extent, voxels (default that of ``voxel_s_values``).
    density_g_per_cm3 : float, ndarray or Image, optional
        Voxel mass density. Required for ``density_corrected``; for ``local`` the
        default is the density of ``material``; unused by ``convolution``.
    method : {"convolution", "density_corrected", "local"}
    precision : {"single", "double"}
        Floating-point precision of the convolution (:func:`convolve_dose`).

    Returns
    -------
    DoseResult
    """
    from theranet.physics.kernels import voxel_s_values
    from theranet.physics.materials import get_material

    if method not in METHODS:
        raise ValueError(f"method: {method!r}; use one of {', '.join(METHODS)}")
    if isinstance(tia, Image):
        if tia.quantity is not Quantity.ACTIVITY:
            raise QuantityError(
                "tia.quantity",
                "is not a time-integrated activity per voxel (MBq h, stored as ACTIVITY)",
                tia.quantity.name,
                "integrate the activity over time per voxel first; a concentration map "
                "must be multiplied by the voxel volume in mL",
            )
        if voxel_mm is not None:
            raise ValueError("voxel_mm: give it for a plain array only (an Image has an affine)")
        spacing = _spacing(tia.affine)
        image = tia
    else:
        if voxel_mm is None:
            raise GeometryError("voxel_mm", "required for a plain array", None)
        vox = np.broadcast_to(np.asarray(voxel_mm, dtype=np.float64), (3,))
        if not np.all(np.isfinite(vox)) or np.any(vox <= 0):
            raise GeometryError("voxel_mm", "must be positive", voxel_mm)
        spacing = tuple(float(v) for v in vox)
        image = Image(np.asarray(tia), np.diag([*spacing, 1.0]), Quantity.ACTIVITY)
    data = np.asarray(image.data)
    if data.dtype.kind not in "biuf" or not np.all(np.isfinite(data)):
        raise ImageDataError("tia", "TIA values must be finite", str(data.dtype))
    size = " x ".join(f"{s:g}" for s in spacing)

    s_values = None
    if method == "local":
        e_np = _electron_energy_mev(nuclide, emissions)
        rho = (
            get_material(material).density_g_per_cm3
            if density_g_per_cm3 is None
            else _density(density_g_per_cm3, image)
        )
        mass_kg = np.asarray(rho) * (math.prod(spacing) / 1000.0) * 1e-3  # g/cm3 x mL -> kg
        dose = data * (_DECAYS_PER_MBQ_H * e_np * _MEV_TO_J) / mass_kg
        kernel = (
            f"local deposition of {e_np:.6g} MeV per decay (electrons of {nuclide}; "
            "photons neglected)"
        )
        text = "local deposition: electron energy absorbed in the decay voxel; photons neglected"
    else:
        kw = {} if n_voxels is None else {"n_voxels": n_voxels}
        s_values = voxel_s_values(nuclide, spacing, material=material, emissions=emissions, **kw)
        full = s_values.full()
        dose = convolve_dose(data, full, precision=precision)
        kernel = (
            f"{s_values.nuclide} voxel S-values in {s_values.material} "
            f"({s_values.density_g_per_cm3:g} g/cm3), voxel {size} mm, "
            f"kernel {'x'.join(str(n) for n in full.shape)} voxels, emissions "
            f"{','.join(s_values.emissions)}"
        )
        text = "homogeneous-medium kernel, zero-padded FFT convolution"
        if method == "density_corrected":
            if density_g_per_cm3 is None:
                raise ValueError("density_g_per_cm3: required for method='density_corrected'")
            rho = _density(density_g_per_cm3, image)
            dose = dose * (s_values.density_g_per_cm3 / np.asarray(rho, dtype=dose.dtype))
            text += (
                "; scaled by rho_kernel/rho_voxel (kernel energy deposited, "
                "dose = energy/mass; ranges not rescaled)"
            )
    dose = np.ascontiguousarray(np.broadcast_to(dose, image.shape))
    out = dataclasses.replace(
        image,
        data=dose,
        quantity=Quantity.DOSE,
        nuclide=image.nuclide or nuclide,
        provenance=image.provenance.with_step(f"voxel dose ({method}): {kernel}"),
    )
    return DoseResult(dose=out, method=method, kernel=kernel, s_values=s_values, notes=(text,))
