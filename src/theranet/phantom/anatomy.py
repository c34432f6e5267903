"""Voxel anatomy of the digital NET patient: labels, densities and CT numbers.

:func:`build_anatomy` draws an adult patient from analytic shapes (ellipsoids and
elliptic cylinders, nested for shells) on a regular grid, from the top of the head
to the upper thighs, with the organs of :data:`~theranet.phantom.regions.ORGANS`
and a set of neuroendocrine-tumour lesions (liver metastases, a pancreatic
primary, two lymph nodes, one bone metastasis). It returns an :class:`Anatomy`:
the label map, the density and noise-free CT-number maps, and a
:class:`RegionInfo` per region with volume, mass and reference mass.

Coordinates
-----------
Arrays are ``(Z, Y, X)`` = ``(slice, row, column)``; the affine maps an array
index to DICOM LPS mm (x towards the patient's Left, y Posterior, z Superior) with
positive steps, so the liver (patient's right) has negative x, the spleen positive
x, and the head the largest z. x = 0 is the mid-sagittal plane and z is the height
above the soles (the vertex sits at ``z = height``).

Scaling rule
------------
The template is a reference man of 175 cm and 73 kg (ICRP 89 reference male:
73 kg, 176 cm). With ``h = height_cm / 175`` and ``w = weight_kg / 73``:

* lengths along z (positions, body and skeleton heights) scale with ``h``;
* transverse sizes of body and skeleton (x, y) scale with ``sqrt(w / h)``, so body
  and bone volumes scale with ``w``;
* subcutaneous-fat thickness is 15 mm x BMI / 23.8 (23.8 kg/m^2 is the template's
  BMI), clipped to 5-40 mm;
* organ masses are the ICRP 89 reference masses of the patient's sex (male 73 kg,
  female 60 kg reference body mass) times ``weight_kg / reference body mass``,
  times a per-patient factor drawn from the seed (log-normal, mean 1, coefficient
  of variation 15 % for liver, kidneys, pancreas, thyroid, stomach, bowel and
  adrenals, 30 % for spleen and bladder contents, 10 % for brain, heart, lungs and
  salivary glands, as recommended in ``biokinetics.md`` section 1; clipped to
  1 +/- 2 CV). Organ shapes are scaled isotropically to that mass, and the size
  is refined on the grid (three passes) so that the voxelised mass matches it;
  height does not change organ masses.

The liver is drawn with the volume of its normal parenchyma plus its metastases
(hepatomegaly from metastases), so the ``liver`` region (parenchyma only) keeps
its target mass; likewise the pancreas with its primary.

Densities and CT numbers
------------------------
Every region has a material (:data:`TISSUES`): a density and an ICRU-44
composition from :mod:`theranet.physics.materials` (spongiosa and the sclerotic
bone metastasis are volume mixtures of soft tissue and cortical bone). The CT
number is computed, not tabulated: HU = 1000 (mu / mu_water - 1) at an effective
CT energy of 70 keV (:data:`CT_EFFECTIVE_ENERGY_MEV`), with mu = density x mu/rho
from the NIST photon tables (Hubbell & Seltzer, NISTIR 5632).

Limits
------
No arms, ribs, skull, femora, vessels or trachea; cortical bone and spongiosa are
modelled in the spine (C3-L5 vertebral bodies), sacrum and hip bones only, and the
``red_marrow`` region (the spongiosa there) is sized to carry the whole-body ICRP
red-marrow mass. Small organs are limited by the voxel size: at 2.4 mm a voxel is
0.0138 mL, so the pituitary (0.6 g) is about 40 voxels and the adrenals (14 g)
about 1000; the thin cortical shell is one voxel thick (at least 2 mm).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from scipy import ndimage

from theranet.image import Labels
from theranet.phantom.regions import FIRST_LESION_LABEL, ORGANS, lesion_name
from theranet.physics.materials import MATERIALS, photon_attenuation

__all__ = [
    "CT_EFFECTIVE_ENERGY_MEV",
    "REFERENCE_BODY",
    "REFERENCE_MASSES_G",
    "TISSUES",
    "Anatomy",
    "RegionInfo",
    "Tissue",
    "build_anatomy",
]

#: Effective photon energy of the CT numbers, MeV (a 120 kVp spectrum is ~70 keV).
CT_EFFECTIVE_ENERGY_MEV = 0.070

#: Template body: height (cm) and mass (kg) the geometry is drawn for, per sex.
REFERENCE_BODY = MappingProxyType({"M": (175.0, 73.0), "F": (163.0, 60.0)})

#: ICRP 89 reference masses (g) per region, (male, female); biokinetics.md section 1.
REFERENCE_MASSES_G: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "liver": (1800.0, 1400.0),
        # kidneys 310 / 275 g split 70 % cortex, 30 % medulla (modelling choice)
        "kidney_cortex": (217.0, 192.5),
        "kidney_medulla": (93.0, 82.5),
        "spleen": (150.0, 130.0),
        "red_marrow": (1170.0, 900.0),
        "heart_wall": (330.0, 250.0),
        "heart_blood": (510.0, 370.0),
        "lungs": (1200.0, 950.0),  # with blood
        "adrenals": (14.0, 13.0),
        "pancreas": (140.0, 120.0),
        "thyroid": (20.0, 17.0),
        "salivary_glands": (85.0, 70.0),
        "pituitary": (0.6, 0.6),
        "brain": (1450.0, 1300.0),
        "stomach": (400.0, 370.0),  # wall + contents (150 + 250 / 140 + 230)
        # small intestine + right colon + left colon + rectosigmoid, wall + contents
        "bowel": (1670.0, 1590.0),
        # bladder contents: male ICRP phantom value; female scaled by body mass 60/73
        "bladder": (211.0, 173.0),
    }
)

_SOURCES = (
    "Organ masses: ICRP Publication 89 (2002) reference adult male/female, as tabulated "
    "in /work/shared/reference/biokinetics.md section 1 (JNM table of ICRP 89 masses; "
    "Turner, Atoms, Radiation, and Radiation Protection, Table 16.1; qurit/PyTheranostics "
    "human_phantom_masses.csv). Stomach and bowel include contents; kidney cortex/medulla "
    "split 70/30 (modelling choice); female bladder contents scaled from the male by "
    "body mass.",
    "Inter-patient variability: log-normal organ-mass factors, CV 15 % (liver, kidneys) "
    "to 30 % (spleen), as recommended in biokinetics.md section 1 (not a published "
    "statistic).",
    "Tissue densities: ICRU Report 44 (1989) via theranet.physics.materials (soft tissue "
    "= skeletal muscle 1.05, adipose 0.95, cortical bone 1.92, air 0.001205) and ICRU 44 "
    "tissue densities recalled: liver 1.06, spleen 1.06, heart 1.06, blood 1.06, "
    "brain 1.04, kidney 1.05.",
    "Inflated lung 0.26 g/cm^3 (modelling value for lung at mid-inspiration; ICRU 44 gives "
    "1.05 g/cm^3 for the lung tissue itself, and the Cristy-Eckerman ORNL phantoms use "
    "0.296 [recalled]); with ICRP 89 lung mass 1200 g it gives a lung volume of 4.6 L.",
    "Spongiosa (red_marrow region) 1.10 g/cm^3: volume mixture of ICRU-44 soft tissue "
    "(94.3 %) and cortical bone (5.7 %), between red marrow (ICRU 44: 1.03) and "
    "trabecular spongiosa (~1.18) (modelling choice).",
    "Urine 1.02 g/cm^3 with the composition of water (modelling choice).",
    "CT numbers: HU = 1000 (mu/mu_water - 1) at 70 keV, mu = density x mu/rho of the "
    "NIST photon tables (Hubbell & Seltzer, NISTIR 5632) in theranet.physics.materials.",
    "NET lesions: liver metastases 1-60 mL, lymph nodes 15-30 mm, bone 10-20 mm "
    "(biokinetics.md section 2: liver metastases 1-5 cm, nodes 1-3 cm, bone 0.5-3 cm; "
    "RECIST node >= 15 mm). Tumour = ICRU-44 soft tissue 1.05 g/cm^3, about 10 HU "
    "below liver (NET liver metastases are hypo- to iso-attenuating on unenhanced CT; "
    "modelling choice); bone metastasis osteoblastic (sclerotic, typical of NET), 30 % "
    "cortical bone by volume (modelling choice).",
)


# --------------------------------------------------------------------- materials


@dataclass(frozen=True)
class Tissue:
    """A phantom material: density and the NIST materials it is mixed from.

    Parameters
    ----------
    name : str
        Material name used in :class:`RegionInfo`.
    density_g_per_cm3 : float
        Mass density, g/cm^3.
    components : tuple of (str, float)
        (theranet material name, volume fraction); each component keeps its
        composition and takes ``volume fraction x its own density`` of the mass,
        except for a single component, which is taken at ``density_g_per_cm3``.
    source : str
        Where the density comes from.
    """

    name: str
    density_g_per_cm3: float
    components: tuple[tuple[str, float], ...]
    source: str

    def mu_per_cm(self, energy_mev: float) -> float:
        """Linear attenuation coefficient, 1/cm, from the NIST photon tables."""
        if len(self.components) == 1:
            base = self.components[0][0]
            return self.density_g_per_cm3 * float(photon_attenuation(base).mu_over_rho(energy_mev))
        return math.fsum(
            vf
            * MATERIALS[base].density_g_per_cm3
            * float(photon_attenuation(base).mu_over_rho(energy_mev))
            for base, vf in self.components
        )

    @property
    def hu(self) -> float:
        """Noise-free CT number at :data:`CT_EFFECTIVE_ENERGY_MEV`, HU."""
        mu_w = MATERIALS["water"].density_g_per_cm3 * float(
            photon_attenuation("water").mu_over_rho(CT_EFFECTIVE_ENERGY_MEV)
        )
        return 1000.0 * (self.mu_per_cm(CT_EFFECTIVE_ENERGY_MEV) / mu_w - 1.0)


def _mixture(name: str, bone_fraction: float, source: str) -> Tissue:
    rho = (1 - bone_fraction) * MATERIALS["soft_tissue"].density_g_per_cm3 + (
        bone_fraction * MATERIALS["bone"].density_g_per_cm3
    )
    return Tissue(
        name,
        round(rho, 4),
        (("soft_tissue", 1.0 - bone_fraction), ("bone", bone_fraction)),
        source,
    )


def _single(name: str, base: str, density: float | None, source: str) -> Tissue:
    rho = MATERIALS[base].density_g_per_cm3 if density is None else density
    return Tissue(name, rho, ((base, 1.0),), source)


_SPONGIOSA_BONE_FRACTION = (1.10 - 1.05) / (1.92 - 1.05)

#: Phantom materials by name.
TISSUES: Mapping[str, Tissue] = MappingProxyType(
    {
        t.name: t
        for t in (
            _single("air", "air", None, "NIST dry air, 0.001205 g/cm^3"),
            _single("soft_tissue", "soft_tissue", None, "ICRU 44 skeletal muscle, 1.05"),
            _single("adipose", "adipose", None, "ICRU 44 adipose tissue, 0.95"),
            _single("lung_inflated", "lung", 0.26, "ICRU 44 lung composition, inflated 0.26"),
            _single("cortical_bone", "bone", None, "ICRU 44 cortical bone, 1.92"),
            _mixture("spongiosa", _SPONGIOSA_BONE_FRACTION, "soft tissue + bone mix, 1.10"),
            _single("blood", "soft_tissue", 1.06, "ICRU 44 blood density 1.06"),
            _single("heart", "soft_tissue", 1.06, "ICRU 44 heart density 1.06"),
            _single("liver", "soft_tissue", 1.06, "ICRU 44 liver density 1.06"),
            _single("spleen", "soft_tissue", 1.06, "ICRU 44 spleen density 1.06"),
            _single("kidney", "soft_tissue", 1.05, "ICRU 44 kidney density 1.05"),
            _single("brain", "soft_tissue", 1.04, "ICRU 44 brain density 1.04"),
            _single("urine", "water", 1.02, "water composition, 1.02"),
            _single("tumour", "soft_tissue", 1.05, "ICRU 44 soft tissue, 1.05"),
            _mixture("sclerotic_bone_lesion", 0.30, "osteoblastic metastasis, 30 % bone"),
        )
    }
)

_REGION_TISSUE = {
    "remainder": "soft_tissue",
    "subcutaneous_fat": "adipose",
    "muscle": "soft_tissue",
    "lungs": "lung_inflated",
    "heart_wall": "heart",
    "heart_blood": "blood",
    "liver": "liver",
    "spleen": "spleen",
    "kidney_cortex": "kidney",
    "kidney_medulla": "kidney",
    "bladder": "urine",
    "pancreas": "soft_tissue",
    "stomach": "soft_tissue",
    "bowel": "soft_tissue",
    "adrenals": "soft_tissue",
    "salivary_glands": "soft_tissue",
    "thyroid": "soft_tissue",
    "pituitary": "soft_tissue",
    "cortical_bone": "cortical_bone",
    "red_marrow": "spongiosa",
    "brain": "brain",
}
_LESION_TISSUE = {
    "liver": "tumour",
    "pancreas": "tumour",
    "node": "tumour",
    "bone": "sclerotic_bone_lesion",
}
_LESION_PARENT = {
    "liver": "liver",
    "pancreas": "pancreas",
    "node": "remainder",
    "bone": "red_marrow",
}
_LABEL = {name: value for value, name in ORGANS.items()}


# ----------------------------------------------------------------------- results


@dataclass(frozen=True)
class RegionInfo:
    """One region of the anatomy.

    Parameters
    ----------
    name : str
        Region name (:data:`~theranet.phantom.regions.ORGANS` or
        :func:`~theranet.phantom.regions.lesion_name`).
    label : int
        Label value in :attr:`Anatomy.labels`.
    kind : {"organ", "lesion"}
    site : str or None
        Lesion site (one of ``LESION_SITES``); None for organs.
    parent : str or None
        Region a lesion sits in (``liver``, ``pancreas``, ``remainder`` for nodes,
        ``red_marrow`` for bone); None for organs.
    material : str
        Key of :data:`TISSUES` that gives density and CT number.
    density_g_per_cm3 : float
    hu : float
        Noise-free CT number at 70 keV.
    n_voxels : int
    volume_ml : float
        ``n_voxels`` x voxel volume.
    mass_g : float
        ``volume_ml`` x density.
    reference_mass_g : float or None
        ICRP 89 reference mass scaled to this patient's body mass (before the
        per-patient factor); None for lesions and for tissues only partly
        modelled (remainder, subcutaneous fat, muscle, cortical bone).
    diameter_mm : float or None
        Lesions: diameter of the sphere of the drawn (analytic) volume.
    target_mass_g : float or None
        Mass the organ was drawn for (reference x per-patient factor).
    centre_mm : tuple of float
        Centroid of the region's voxels, LPS mm.
    """

    name: str
    label: int
    kind: str
    site: str | None
    parent: str | None
    material: str
    density_g_per_cm3: float
    hu: float
    n_voxels: int
    volume_ml: float
    mass_g: float
    reference_mass_g: float | None
    diameter_mm: float | None = None
    target_mass_g: float | None = None
    centre_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True, eq=False)
class Anatomy:
    """The voxel anatomy of one digital patient.

    Parameters
    ----------
    labels : Labels
        int16 label map on the native grid; names are the regions present.
    regions : Mapping[str, RegionInfo]
        Region name -> :class:`RegionInfo`, organs by label, then lesions.
    density_g_per_cm3 : ndarray of float32
        Mass density per voxel (air outside the body).
    hu : ndarray of float32
        Noise-free CT number per voxel at 70 keV.
    body_mask : ndarray of bool
        Voxels inside the body.
    height_cm, weight_kg : float
    sex : {"M", "F"}
    seed : int
    voxel_mm : float
    sources : tuple of str
        Where masses, densities and CT numbers come from.
    """

    labels: Labels
    regions: Mapping[str, RegionInfo]
    density_g_per_cm3: np.ndarray = field(repr=False)
    hu: np.ndarray = field(repr=False)
    body_mask: np.ndarray = field(repr=False)
    height_cm: float
    weight_kg: float
    sex: str
    seed: int
    voxel_mm: float
    sources: tuple[str, ...] = field(repr=False)

    @property
    def affine(self) -> np.ndarray:
        """Array index -> LPS mm (4x4)."""
        return self.labels.image.affine

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape ``(Z, Y, X)``."""
        return self.labels.image.shape

    @property
    def voxel_volume_ml(self) -> float:
        """Voxel volume, mL."""
        return self.labels.image.voxel_volume_ml

    def mask(self, name: str) -> np.ndarray:
        """Boolean mask of the region ``name``."""
        return self.labels.image.data == self.regions[name].label

    def lesions(self) -> tuple[RegionInfo, ...]:
        """The lesion regions, in label order."""
        return tuple(r for r in self.regions.values() if r.kind == "lesion")

    def mass_table(self) -> str:
        """Plain-text table of voxelised vs reference masses and of the lesions."""
        lines = [f"{'region':<18}{'voxels':>9}{'mL':>10}{'g':>10}{'target g':>10}{'ref g':>9}"]
        for r in self.regions.values():
            ref = "" if r.reference_mass_g is None else f"{r.reference_mass_g:.1f}"
            tgt = "" if r.target_mass_g is None else f"{r.target_mass_g:.1f}"
            extra = "" if r.diameter_mm is None else f"  d={r.diameter_mm:.1f} mm in {r.parent}"
            lines.append(
                f"{r.name:<18}{r.n_voxels:>9}{r.volume_ml:>10.2f}{r.mass_g:>10.1f}"
                f"{tgt:>10}{ref:>9}{extra}"
            )
        return "\n".join(lines)


# ------------------------------------------------------------------------ shapes


def _unit(v: Sequence[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def _axes_from_long(u: Sequence[float]) -> np.ndarray:
    """Orthonormal axes (columns) whose third column is ``u`` (local z = long axis)."""
    w = _unit(u)
    ref = np.array([1.0, 0.0, 0.0]) if abs(w[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    a = _unit(np.cross(ref, w))
    b = np.cross(w, a)
    return np.stack([a, b, w], axis=1)


@dataclass(frozen=True)
class _Ellipsoid:
    centre: tuple[float, float, float]  # LPS mm
    semi: tuple[float, float, float]  # mm, along the local axes
    axes: np.ndarray | None = None  # columns: local axes in LPS

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        s = np.asarray(self.semi, dtype=np.float64)
        half = s if self.axes is None else np.sqrt((self.axes**2) @ (s**2))
        c = np.asarray(self.centre)
        return c - half, c + half

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        dx, dy, dz = x - self.centre[0], y - self.centre[1], z - self.centre[2]
        a, b, c = self.semi
        if self.axes is None:
            return (dx / a) ** 2 + (dy / b) ** 2 + (dz / c) ** 2 <= 1.0
        r = self.axes
        q = 0.0
        for j, s in enumerate((a, b, c)):
            u = r[0, j] * dx + r[1, j] * dy + r[2, j] * dz
            q = q + (u / s) ** 2
        return q <= 1.0

    def shrunk(self, t: float) -> _Ellipsoid:
        return _Ellipsoid(self.centre, tuple(max(s - t, 0.1) for s in self.semi), self.axes)


@dataclass(frozen=True)
class _Cylinder:
    """Elliptic cylinder along z."""

    centre: tuple[float, float]
    semi: tuple[float, float]
    z_range: tuple[float, float]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        (cx, cy), (a, b), (z0, z1) = self.centre, self.semi, self.z_range
        return np.array([cx - a, cy - b, z0]), np.array([cx + a, cy + b, z1])

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        (cx, cy), (a, b), (z0, z1) = self.centre, self.semi, self.z_range
        return (((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1.0) & (z >= z0) & (z <= z1)

    def shrunk(self, t: float) -> _Cylinder:
        a, b = self.semi
        z0, z1 = self.z_range
        return _Cylinder(self.centre, (max(a - t, 0.1), max(b - t, 0.1)), (z0 + t, z1 - t))


_Shape = _Ellipsoid | _Cylinder


class _Grid:
    """Regular LPS grid, array order (z, y, x), spacing ``d`` mm."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray, d: float) -> None:
        self.d = d
        self.origin = np.asarray(lo, dtype=np.float64)
        n = np.ceil((np.asarray(hi) - self.origin) / d).astype(int) + 1
        self.shape = (int(n[2]), int(n[1]), int(n[0]))
        self.affine = np.array(
            [
                [0.0, 0.0, d, self.origin[0]],
                [0.0, d, 0.0, self.origin[1]],
                [d, 0.0, 0.0, self.origin[2]],
                [0.0, 0.0, 0.0, 1.0],
            ]
        )

    def box(self, lo: np.ndarray, hi: np.ndarray):
        """Index slices (z, y, x) covering [lo, hi] and the LPS coordinates there."""
        i0 = np.floor((np.asarray(lo) - self.origin) / self.d).astype(int)
        i1 = np.ceil((np.asarray(hi) - self.origin) / self.d).astype(int) + 1
        nx, ny, nz = self.shape[2], self.shape[1], self.shape[0]
        i0 = np.maximum(i0, 0)
        i1 = np.minimum(i1, [nx, ny, nz])
        if np.any(i1 <= i0):
            return None
        sl = (slice(i0[2], i1[2]), slice(i0[1], i1[1]), slice(i0[0], i1[0]))
        x = (self.origin[0] + self.d * np.arange(i0[0], i1[0]))[None, None, :]
        y = (self.origin[1] + self.d * np.arange(i0[1], i1[1]))[None, :, None]
        z = (self.origin[2] + self.d * np.arange(i0[2], i1[2]))[:, None, None]
        return sl, x, y, z

    def centre_of(self, index: Sequence[int]) -> np.ndarray:
        iz, iy, ix = index
        return self.origin + self.d * np.array([ix, iy, iz], dtype=np.float64)

    def index_of(self, p: Sequence[float]) -> tuple[int, int, int]:
        i = np.rint((np.asarray(p) - self.origin) / self.d).astype(int)
        i = np.clip(i, 0, [self.shape[2] - 1, self.shape[1] - 1, self.shape[0] - 1])
        return int(i[2]), int(i[1]), int(i[0])


def _paint(
    labels: np.ndarray, grid: _Grid, shape: _Shape, value: int, allowed: np.ndarray | None = None
) -> None:
    """Set ``value`` inside ``shape``; only where ``allowed[label]`` when given."""
    box = grid.box(*shape.bounds())
    if box is None:
        return
    sl, x, y, z = box
    m = shape.inside(x, y, z)
    sub = labels[sl]
    if allowed is not None:
        m = m & allowed[sub]
    sub[m] = value


# ------------------------------------------------------------------ the template
#
# Reference man, 175 cm / 73 kg. Template coordinates: x, y as in LPS (mm), z = -depth
# below the vertex (mm). World: (x sT, y sT, height + z sL) for body and skeleton.

_FOV_BOTTOM = -1005.0  # upper thighs
_TRUNK_TOP, _TRUNK_BOTTOM = -300.0, -935.0
_TRUNK = ((0.0, 15.0), (165.0, 105.0))
_CAVITY = ((0.0, 10.0), (-305.0, -925.0))  # centre; z range (below the lung apices)
_WALL_MM = (15.0, 22.0)  # muscle wall thickness inside the fat, x and y


@dataclass(frozen=True)
class _Part:
    region: str
    centre: tuple[float, float, float]  # template
    semi: tuple[float, float, float]
    long_axis: tuple[float, float, float] | None = None
    inner: float | None = None  # semi-axis factor for nested inner parts


@dataclass(frozen=True)
class _Organ:
    name: str
    parts: tuple[_Part, ...]  # paint order (inner parts first)
    centre: tuple[float, float, float]
    connected: bool  # True: part offsets scale with the organ (one body)
    cv: float


def _k(inner_fraction: float) -> float:
    return inner_fraction ** (1.0 / 3.0)


_HEART_U = (0.62, -0.45, -0.55)  # base (right, posterior, superior) -> apex
_K_HEART = _k((510 / 1.06) / (510 / 1.06 + 330 / 1.06))
_K_KIDNEY = _k(0.30)

# Paint order = priority: an organ paints only voxels still remainder or muscle.
_ORGANS: tuple[_Organ, ...] = (
    _Organ("pituitary", (_Part("pituitary", (0, 5, -132), (6, 5, 4.5)),), (0, 5, -132), False, 0),
    _Organ("brain", (_Part("brain", (0, 8, -88), (68, 84, 66)),), (0, 8, -88), False, 0.10),
    _Organ(
        "thyroid",
        (
            _Part("thyroid", (-18, -22, -262), (9, 10, 24)),
            _Part("thyroid", (18, -22, -262), (9, 10, 24)),
        ),
        (0, -22, -262),
        False,
        0.15,
    ),
    _Organ(
        "salivary_glands",
        (
            _Part("salivary_glands", (-55, 18, -165), (12, 20, 24)),
            _Part("salivary_glands", (55, 18, -165), (12, 20, 24)),
            _Part("salivary_glands", (-36, -22, -200), (11, 14, 11)),
            _Part("salivary_glands", (36, -22, -200), (11, 14, 11)),
            _Part("salivary_glands", (-16, -42, -195), (6, 12, 5)),
            _Part("salivary_glands", (16, -42, -195), (6, 12, 5)),
        ),
        (0, 0, -180),
        False,
        0.10,
    ),
    _Organ(
        "adrenals",
        (
            _Part("adrenals", (-40, 45, -600), (6, 10, 22)),
            _Part("adrenals", (40, 45, -582), (6, 10, 22)),
        ),
        (0, 45, -590),
        False,
        0.15,
    ),
    _Organ(
        "heart",
        (
            _Part("heart_blood", (22, -8, -468), (50, 50, 64), _HEART_U, _K_HEART),
            _Part("heart_wall", (22, -8, -468), (50, 50, 64), _HEART_U),
        ),
        (22, -8, -468),
        True,
        0.10,
    ),
    _Organ(
        "kidneys",
        (
            _Part("kidney_medulla", (-62, 52, -668), (22, 27, 55), (0.2, 0, 1), _K_KIDNEY),
            _Part("kidney_medulla", (62, 52, -648), (22, 27, 55), (-0.2, 0, 1), _K_KIDNEY),
            _Part("kidney_cortex", (-62, 52, -668), (22, 27, 55), (0.2, 0, 1)),
            _Part("kidney_cortex", (62, 52, -648), (22, 27, 55), (-0.2, 0, 1)),
        ),
        (0, 52, -658),
        False,
        0.15,
    ),
    _Organ("spleen", (_Part("spleen", (96, 52, -560), (22, 48, 36)),), (96, 52, -560), False, 0.30),
    _Organ(
        "pancreas",
        (
            _Part("pancreas", (-28, 8, -650), (22, 17, 26)),
            _Part("pancreas", (35, 12, -628), (12, 15, 58), (1.0, 0.25, 0.25)),
        ),
        (0, 10, -638),
        True,
        0.15,
    ),
    _Organ(
        "liver",
        (
            _Part("liver", (-58, 0, -575), (72, 72, 78)),
            _Part("liver", (5, -38, -545), (50, 24, 34)),
        ),
        (-40, -10, -568),
        True,
        0.15,
    ),
    _Organ(
        "stomach",
        (
            _Part("stomach", (50, 12, -550), (34, 30, 36)),
            _Part("stomach", (25, -30, -620), (45, 20, 30)),
        ),
        (38, -10, -585),
        True,
        0.15,
    ),
    _Organ(
        "lungs",
        (
            _Part("lungs", (-80, 15, -430), (56, 68, 125)),
            _Part("lungs", (80, 15, -430), (54, 68, 125)),
        ),
        (0, 15, -430),
        False,
        0.10,
    ),
    _Organ(
        "bladder", (_Part("bladder", (0, -22, -852), (40, 34, 30)),), (0, -22, -852), False, 0.3
    ),
    _Organ(
        "bowel",
        (
            _Part("bowel", (0, -20, -740), (88, 45, 72)),
            _Part("bowel", (-100, 0, -725), (24, 24, 65)),
            _Part("bowel", (100, 15, -710), (22, 22, 70)),
            _Part("bowel", (0, -48, -665), (95, 18, 18)),
            _Part("bowel", (0, 25, -840), (22, 18, 40)),
        ),
        (0, -15, -740),
        True,
        0.15,
    ),
)

_ORGAN_BY_NAME = {o.name: o for o in _ORGANS}

#: Template centres (x, y, z) of the lymph nodes: mesenteric, left para-aortic.
_NODE_SITES = ((20.0, -30.0, -715.0), (35.0, 5.0, -700.0))

# Spine: vertebral bodies C3-L5 (height mm, disc mm, semi-axes x, y mm).
_SPINE_Y = ((-205, 22), (-300, 35), (-450, 58), (-580, 52), (-700, 40), (-790, 42))


def _vertebrae() -> list[tuple[str, float, float, float, float]]:
    """(name, z_top, z_bottom, semi_x, semi_y) of the template vertebral bodies."""
    levels: list[tuple[str, float, float, float, float]] = []
    for i in range(5):
        levels.append((f"C{i + 3}", 13.0, 5.0, 10.0, 8.0))
    for i in range(12):
        f = i / 11
        levels.append((f"T{i + 1}", 17 + 7 * f, 5.0, 13 + 7 * f, 11 + 4 * f))
    for i in range(5):
        levels.append((f"L{i + 1}", 27.0, 9.0, 24.0, 17.0))
    out = []
    z = -205.0
    for name, h, disc, ax, ay in levels:
        out.append((name, z, z - h, ax, ay))
        z -= h + disc
    return out


def _spine_y(z: float) -> float:
    zs = [p[0] for p in _SPINE_Y][::-1]
    ys = [p[1] for p in _SPINE_Y][::-1]
    return float(np.interp(z, zs, ys))


# ------------------------------------------------------------------------- build


class _Body:
    """Template -> world transform of one patient."""

    def __init__(self, height_cm: float, weight_kg: float) -> None:
        self.h = height_cm / 175.0
        self.w = weight_kg / 73.0
        self.st = math.sqrt(self.w / self.h)
        self.sl = self.h
        self.top = height_cm * 10.0
        bmi = weight_kg / (height_cm / 100.0) ** 2
        self.fat_mm = float(np.clip(15.0 * bmi / (73.0 / 1.75**2), 5.0, 40.0))

    def p(self, x: float, y: float, z: float) -> tuple[float, float, float]:
        return (x * self.st, y * self.st, self.top + z * self.sl)

    def z(self, z: float) -> float:
        return self.top + z * self.sl

    def ell(self, c, s, axes=None) -> _Ellipsoid:
        return _Ellipsoid(self.p(*c), (s[0] * self.st, s[1] * self.st, s[2] * self.sl), axes=axes)

    def cyl(self, c, s, z0: float, z1: float) -> _Cylinder:
        return _Cylinder(
            (c[0] * self.st, c[1] * self.st),
            (s[0] * self.st, s[1] * self.st),
            (self.z(z1), self.z(z0)),
        )


def _body_shapes(b: _Body) -> dict[str, list[_Shape]]:
    (tcx, tcy), (tax, tay) = _TRUNK
    return {
        "head": [b.ell((0, 5, -118), (77, 97, 118))],
        "neck": [b.cyl((0, 15), (55, 58), -180, -300)],
        "trunk": [
            b.ell((tcx, tcy, _TRUNK_TOP), (tax, tay, 60)),
            b.cyl((tcx, tcy), (tax, tay), _TRUNK_TOP, _TRUNK_BOTTOM),
        ],
        "thighs": [
            b.cyl((-88, 20), (80, 82), _TRUNK_BOTTOM, _FOV_BOTTOM),
            b.cyl((88, 20), (80, 82), _TRUNK_BOTTOM, _FOV_BOTTOM),
        ],
    }


def _build_base(grid: _Grid, b: _Body) -> tuple[np.ndarray, dict[str, tuple]]:
    """Body, fat, muscle, cavity and skeleton; returns labels and vertebra boxes."""
    lab = np.zeros(grid.shape, dtype=np.int16)
    rem, fat, mus = _LABEL["remainder"], _LABEL["subcutaneous_fat"], _LABEL["muscle"]
    shapes = _body_shapes(b)
    t = b.fat_mm
    _paint(lab, grid, shapes["head"][0], rem)
    cap, trunk = shapes["trunk"]
    for s in (cap, trunk):
        _paint(lab, grid, s, fat)
    for s in (
        cap.shrunk(t),
        _Cylinder(trunk.centre, tuple(a - t for a in trunk.semi), trunk.z_range),
    ):
        _paint(lab, grid, s, mus)
    for s in shapes["thighs"]:
        _paint(lab, grid, s, fat)
        _paint(lab, grid, _Cylinder(s.centre, tuple(a - t for a in s.semi), s.z_range), mus)
    _paint(lab, grid, shapes["neck"][0], rem)
    (ccx, ccy), (cz0, cz1) = _CAVITY
    cavity = _Cylinder(
        (ccx * b.st, ccy * b.st),
        (trunk.semi[0] - t - _WALL_MM[0], trunk.semi[1] - t - _WALL_MM[1]),
        (b.z(cz1), b.z(cz0)),
    )
    _paint(lab, grid, cavity, rem)

    # skeleton: cortical shell (>= 1 voxel) and spongiosa (red marrow)
    cort, marrow = _LABEL["cortical_bone"], _LABEL["red_marrow"]
    shell = max(2.0, grid.d)
    vert_boxes: dict[str, tuple] = {}
    for name, z_top, z_bot, ax, ay in _vertebrae():
        yc = _spine_y(0.5 * (z_top + z_bot))
        outer = b.cyl((0.0, yc), (ax, ay), z_top, z_bot)
        _paint(lab, grid, outer, cort)
        _paint(lab, grid, outer.shrunk(shell), marrow)
        vert_boxes[name] = outer.bounds()
    pelvis = []
    tilt = math.radians(25.0)
    pelvis.append(
        _Ellipsoid(
            b.p(0, 62, -825),
            (48 * b.st, 20 * b.st, 55 * b.sl),
            np.array(
                [
                    [1.0, 0.0, 0.0],
                    [0.0, math.cos(tilt), -math.sin(tilt)],
                    [0.0, math.sin(tilt), math.cos(tilt)],
                ]
            ),
        )
    )
    for side in (-1.0, 1.0):
        v = _unit((side * 70.0, -90.0, 0.0))  # ilium plane: posteromedial -> anterolateral
        n = np.array([-v[1], v[0], 0.0])
        axes = np.stack([n, v, [0.0, 0.0, 1.0]], axis=1)
        pelvis.append(_Ellipsoid(b.p(side * 85, 15, -785), (14 * b.st, 62 * b.st, 68 * b.sl), axes))
        pelvis.append(b.ell((side * 85, 15, -880), (24, 28, 38)))
        pelvis.append(b.ell((side * 42, -38, -893), (40, 12, 15)))
    for s in pelvis:
        _paint(lab, grid, s, cort)
    for s in pelvis:
        _paint(lab, grid, s.shrunk(shell), marrow)
    return lab, vert_boxes


#: Organ-mass factors are clipped to 1 +/- min(2 CV, this), so that voxelised masses
#: stay within +/- 40 % of the scaled reference (adult reference range).
_MAX_FACTOR_SPREAD = 0.35


def _lognormal_factor(rng: np.random.Generator, cv: float) -> float:
    if cv <= 0:
        return 1.0
    sigma = math.sqrt(math.log1p(cv * cv))
    f = float(np.exp(rng.normal(-0.5 * sigma * sigma, sigma)))
    spread = min(2.0 * cv, _MAX_FACTOR_SPREAD)
    return float(np.clip(f, 1.0 - spread, 1.0 + spread))


def _organ_shapes(
    organ: _Organ, b: _Body, s: float, jitter: np.ndarray
) -> list[tuple[str, _Ellipsoid]]:
    out = []
    oc = np.asarray(b.p(*organ.centre))
    for part in organ.parts:
        pc = np.asarray(part.centre, dtype=np.float64)
        if organ.connected:
            c = oc + jitter + s * (pc - np.asarray(organ.centre))
        else:
            c = np.asarray(b.p(*pc)) + jitter
        k = s * (part.inner or 1.0)
        semi = tuple(k * v for v in part.semi)
        axes = None if part.long_axis is None else _axes_from_long(part.long_axis)
        out.append((part.region, _Ellipsoid(tuple(c), semi, axes)))
    return out


def _edt(allowed: np.ndarray, box: tuple[slice, slice, slice], d: float) -> np.ndarray:
    """Distance (mm) from each voxel of ``box`` to the nearest non-allowed voxel."""
    sub = np.pad(allowed[box], 1, constant_values=False)
    return ndimage.distance_transform_edt(sub, sampling=d)[1:-1, 1:-1, 1:-1]


def _pick(
    grid: _Grid,
    edt: np.ndarray,
    box: tuple[slice, slice, slice],
    clearance_mm: float,
    rng: np.random.Generator,
    prefer: np.ndarray | None = None,
    avoid: Sequence[tuple[np.ndarray, float]] = (),
) -> tuple[int, int, int] | None:
    """A voxel of ``box`` with ``edt > clearance_mm`` and clear of ``avoid``.

    ``avoid`` holds (LPS centre, distance) pairs a candidate must stay farther
    from. With ``prefer`` the candidate nearest to it is taken, else a random one.
    """
    cand = np.argwhere(edt > clearance_mm)
    if cand.size == 0:
        return None
    cand = cand + np.array([box[0].start, box[1].start, box[2].start])
    pos = grid.origin + grid.d * cand[:, ::-1]  # LPS of the candidates
    ok = np.ones(len(cand), dtype=bool)
    for centre, dist in avoid:
        ok &= np.linalg.norm(pos - centre, axis=1) > dist
    cand, pos = cand[ok], pos[ok]
    if len(cand) == 0:
        return None
    if prefer is None:
        pick = cand[rng.integers(len(cand))]
    else:
        dist = np.linalg.norm(pos - np.asarray(prefer), axis=1)
        pick = cand[int(np.argmin(dist + rng.uniform(0.0, grid.d, len(dist))))]
    return int(pick[0]), int(pick[1]), int(pick[2])


@dataclass
class _Lesion:
    site: str
    semi: tuple[float, float, float]
    centre: tuple[float, float, float] | None = None

    @property
    def volume_ml(self) -> float:
        a, b, c = self.semi
        return 4.0 / 3.0 * math.pi * a * b * c / 1000.0

    @property
    def diameter_mm(self) -> float:
        return (6.0 * self.volume_ml * 1000.0 / math.pi) ** (1.0 / 3.0)

    def scaled(self, f: float) -> _Lesion:
        return _Lesion(self.site, tuple(f * s for s in self.semi))


def _sphere(volume_ml: float, rng: np.random.Generator, elong: float = 0.15) -> tuple:
    r = (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
    q = rng.uniform(1.0 - elong, 1.0 + elong, 3)
    q = q / np.prod(q) ** (1.0 / 3.0)
    return tuple(float(r * v) for v in q)


def _counts_and_centres(lab: np.ndarray, n: int, grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """Voxel count and LPS centroid (mm) of every label value below ``n``."""
    per_axis = []
    for axis in range(3):
        moved = np.moveaxis(lab, axis, 0)
        per_axis.append(np.stack([np.bincount(p.ravel(), minlength=n) for p in moved]))
    counts = per_axis[0].sum(axis=0)
    safe = np.maximum(counts, 1)
    index = [
        (h * np.arange(h.shape[0])[:, None]).sum(axis=0) / safe for h in per_axis
    ]  # mean index along z, y, x
    centres = grid.origin[None, :] + grid.d * np.stack(index[::-1], axis=1)
    return counts, centres


def build_anatomy(
    *,
    height_cm: float = 175.0,
    weight_kg: float = 73.0,
    sex: str = "M",
    seed: int = 0,
    voxel_mm: float = 2.4,
) -> Anatomy:
    """Build the voxel anatomy of a digital NET patient.

    Parameters
    ----------
    height_cm, weight_kg : float
        Body height and mass; lengths scale with ``height_cm / 175`` and organ
        masses with ``weight_kg`` / reference body mass (see the module notes).
    sex : {"M", "F"}
        Selects the ICRP 89 reference masses (male 73 kg, female 60 kg); the
        geometry template is the same.
    seed : int
        Seeds the organ-mass factors, organ-position jitter (sd 3 mm, at most
        6 mm) and the lesions (count, sizes, positions).
    voxel_mm : float
        Isotropic voxel size, mm.

    Returns
    -------
    Anatomy

    Raises
    ------
    ValueError
        For a non-positive or implausible height, weight or voxel size, or a sex
        other than "M"/"F".
    """
    if sex not in REFERENCE_BODY:
        raise ValueError(f"sex: {sex!r}; use 'M' or 'F'")
    for name, v, lo, hi in (
        ("height_cm", height_cm, 120.0, 220.0),
        ("weight_kg", weight_kg, 30.0, 200.0),
        ("voxel_mm", voxel_mm, 1.0, 10.0),
    ):
        if not (math.isfinite(v) and lo <= v <= hi):
            raise ValueError(f"{name}: {v!r} outside [{lo}, {hi}]")
    rng = np.random.default_rng(seed)
    b = _Body(height_cm, weight_kg)
    mass_scale = weight_kg / REFERENCE_BODY[sex][1]
    sex_i = 0 if sex == "M" else 1

    # ---- per-patient draws, in a fixed order
    factors = {o.name: _lognormal_factor(rng, o.cv) for o in _ORGANS}
    jitters = {o.name: np.clip(rng.normal(0.0, 3.0, 3), -6.0, 6.0) for o in _ORGANS}
    n_liver = int(rng.integers(4, 8))
    vols = [rng.uniform(42.0, 60.0), math.exp(rng.uniform(0.0, math.log(1.6)))]
    vols += [math.exp(rng.uniform(0.0, math.log(60.0))) for _ in range(n_liver - 2)]
    liver_lesions = [_Lesion("liver", _sphere(v, rng)) for v in sorted(vols, reverse=True)]
    d_panc = rng.uniform(10.0, 20.0)
    pancreas_lesion = _Lesion("pancreas", (d_panc / 2,) * 3)
    nodes = [
        _Lesion("node", _sphere(math.pi / 6 * rng.uniform(15.0, 30.0) ** 3 / 1000, rng, 0.1))
        for _ in _NODE_SITES
    ]
    node_jitter = [np.clip(rng.normal(0.0, 4.0, 3), -8.0, 8.0) for _ in _NODE_SITES]
    bone_level = f"L{int(rng.integers(1, 5))}"
    d_bone = rng.uniform(10.0, 20.0)
    bone_lesion = _Lesion("bone", (d_bone / 2,) * 3)

    # ---- targets
    ref = {r: m[sex_i] * mass_scale for r, m in REFERENCE_MASSES_G.items()}
    target_mass: dict[str, float] = {}
    target_vol: dict[str, float] = {}  # organ (all its regions + drawn lesions), mL
    for o in _ORGANS:
        regions = {p.region for p in o.parts}
        vol = 0.0
        for r in regions:
            target_mass[r] = ref[r] * factors[o.name]
            vol += target_mass[r] / TISSUES[_REGION_TISSUE[r]].density_g_per_cm3
        if o.name == "liver":
            vol += sum(les.volume_ml for les in liver_lesions)
        if o.name == "pancreas":
            vol += pancreas_lesion.volume_ml
        target_vol[o.name] = vol

    # ---- grid: body bounds + 4 voxels of air
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    for shapes in _body_shapes(b).values():
        for s in shapes:
            a, c = s.bounds()
            lo, hi = np.minimum(lo, a), np.maximum(hi, c)
    lo[2] = b.z(_FOV_BOTTOM)
    margin = 4 * voxel_mm
    grid = _Grid(lo - margin, hi + margin, voxel_mm)

    base, vert_boxes = _build_base(grid, b)

    free = np.zeros(256, dtype=bool)
    free[[_LABEL["remainder"], _LABEL["muscle"]]] = True

    # ---- lymph nodes are reserved first (parent: remainder); organs paint around them
    node_labels: list[tuple[_Lesion, int]] = []
    next_label = FIRST_LESION_LABEL
    lesion_regions: list[tuple[_Lesion, int, str]] = []
    for i, (les, site, jit) in enumerate(zip(nodes, _NODE_SITES, node_jitter, strict=True)):
        les.centre = tuple(np.asarray(b.p(*site)) + jit)
        node_labels.append((les, next_label))
        lesion_regions.append((les, next_label, lesion_name("node", i + 1)))
        next_label += 1

    def paint_organs(scales: Mapping[str, float]) -> np.ndarray:
        lab = base.copy()
        only_rem = np.zeros(256, dtype=bool)
        only_rem[_LABEL["remainder"]] = True
        for les, value in node_labels:
            _paint(lab, grid, _Ellipsoid(les.centre, les.semi), value, only_rem)
        for o in _ORGANS:
            for region, shape in _organ_shapes(o, b, scales[o.name], jitters[o.name]):
                _paint(lab, grid, shape, _LABEL[region], free)
        return lab

    def organ_volumes(lab: np.ndarray) -> dict[str, float]:
        counts = np.bincount(lab.ravel().astype(np.int64), minlength=256)
        vv = grid.d**3 / 1000.0
        return {
            o.name: vv * sum(int(counts[_LABEL[r]]) for r in {p.region for p in o.parts})
            for o in _ORGANS
        }

    scales = {}
    for o in _ORGANS:
        v_t = 0.0
        for p in o.parts:
            if p.inner is None:
                v_t += 4.0 / 3.0 * math.pi * math.prod(p.semi) / 1000.0
        scales[o.name] = (target_vol[o.name] / v_t) ** (1.0 / 3.0)
    for _ in range(3):
        lab = paint_organs(scales)
        got = organ_volumes(lab)
        for o in _ORGANS:
            ratio = target_vol[o.name] / max(got[o.name], grid.d**3 / 1000.0)
            scales[o.name] *= float(np.clip(ratio, 0.7, 1.4)) ** (1.0 / 3.0)
    lab = paint_organs(scales)

    # pituitary: at least one voxel
    pit = _LABEL["pituitary"]
    if not np.any(lab == pit):
        ((_, shape),) = _organ_shapes(
            _ORGAN_BY_NAME["pituitary"], b, scales["pituitary"], jitters["pituitary"]
        )
        lab[grid.index_of(shape.centre)] = pit

    # ---- lesions inside their parent organs
    d = grid.d

    def paint_lesion(les: _Lesion, centre_idx: tuple[int, int, int], value: int, parent: int):
        les.centre = tuple(grid.centre_of(centre_idx))
        shape = _Ellipsoid(les.centre, les.semi)
        allowed = np.zeros(256, dtype=bool)
        allowed[parent] = True
        _paint(lab, grid, shape, value, allowed)

    objects = ndimage.find_objects(lab)

    def region_box(value: int) -> tuple[slice, slice, slice]:
        sl = objects[value - 1]
        return tuple(
            slice(max(q.start - 2, 0), min(q.stop + 2, n))
            for q, n in zip(sl, lab.shape, strict=True)
        )

    # liver metastases: a rim of parenchyma (>= 1 voxel) around each, no contact
    liver_l = _LABEL["liver"]
    box = region_box(liver_l)
    edt = _edt(lab == liver_l, box, d)
    placed: list[tuple[np.ndarray, float]] = []
    for i, les in enumerate(liver_lesions):
        cur, idx = les, None
        for _ in range(12):
            r = max(cur.semi)
            avoid = [(c, r + rj + 1.5 * d) for c, rj in placed]
            idx = _pick(grid, edt, box, r + d, rng, None, avoid)
            if idx is not None:
                break
            cur = cur.scaled(0.85)
        if idx is None:
            continue
        paint_lesion(cur, idx, next_label, liver_l)
        placed.append((np.asarray(cur.centre), max(cur.semi)))
        lesion_regions.append((cur, next_label, lesion_name("liver", i + 1)))
        next_label += 1

    # pancreatic primary, in the head where it fits
    panc = _LABEL["pancreas"]
    organ = _ORGAN_BY_NAME["pancreas"]
    panc_head = np.asarray(
        _organ_shapes(organ, b, scales["pancreas"], jitters["pancreas"])[0][1].centre
    )
    box = region_box(panc)
    edt = _edt(lab == panc, box, d)
    cur, idx = pancreas_lesion, None
    for _ in range(12):
        for margin_mm in (d, 0.0):
            idx = _pick(grid, edt, box, max(cur.semi) + margin_mm, rng, panc_head)
            if idx is not None:
                break
        if idx is not None:
            break
        cur = cur.scaled(0.9)
    if idx is not None:
        paint_lesion(cur, idx, next_label, panc)
        lesion_regions.append((cur, next_label, lesion_name("pancreas", 1)))
        next_label += 1

    # bone metastasis in the spongiosa of one lumbar vertebral body
    marrow = _LABEL["red_marrow"]
    vlo, vhi = vert_boxes[bone_level]
    box = grid.box(vlo, vhi)[0]
    allowed_bone = np.zeros(lab.shape, dtype=bool)
    allowed_bone[box] = lab[box] == marrow
    edt = _edt(allowed_bone, box, d)
    cur, idx = bone_lesion, None
    for _ in range(15):
        idx = _pick(grid, edt, box, max(cur.semi), rng, 0.5 * (vlo + vhi))
        if idx is not None:
            break
        cur = cur.scaled(0.9)
    if idx is not None:
        paint_lesion(cur, idx, next_label, marrow)
        lesion_regions.append((cur, next_label, lesion_name("bone", 1)))
        next_label += 1

    # ---- maps and region table
    names = {v: n for v, n in ORGANS.items()}
    tissue_of: dict[int, str] = {v: _REGION_TISSUE[n] for v, n in ORGANS.items()}
    for les, value, name in lesion_regions:
        names[value] = name
        tissue_of[value] = _LESION_TISSUE[les.site]
    n_lut = max(names) + 1
    dens_lut = np.full(n_lut, TISSUES["air"].density_g_per_cm3, dtype=np.float32)
    hu_lut = np.full(n_lut, TISSUES["air"].hu, dtype=np.float32)
    hu_of = {k: t.hu for k, t in TISSUES.items()}
    for v, tname in tissue_of.items():
        dens_lut[v] = TISSUES[tname].density_g_per_cm3
        hu_lut[v] = hu_of[tname]
    density = dens_lut[lab]
    hu = hu_lut[lab]
    body_mask = lab > 0

    counts, centres = _counts_and_centres(lab, n_lut, grid)
    vv = d**3 / 1000.0
    lesion_by_label = {v: (les, name) for les, v, name in lesion_regions}
    present = {v: n for v, n in names.items() if counts[v] > 0}
    regions: dict[str, RegionInfo] = {}
    for v in sorted(present):
        n = present[v]
        centre = centres[v]
        tname = tissue_of[v]
        rho = TISSUES[tname].density_g_per_cm3
        vol = int(counts[v]) * vv
        common = dict(
            name=n,
            label=v,
            material=tname,
            density_g_per_cm3=rho,
            hu=hu_of[tname],
            n_voxels=int(counts[v]),
            volume_ml=vol,
            mass_g=vol * rho,
            centre_mm=tuple(float(q) for q in centre),
        )
        if v in lesion_by_label:
            les, _ = lesion_by_label[v]
            info = RegionInfo(
                kind="lesion",
                site=les.site,
                parent=_LESION_PARENT[les.site],
                reference_mass_g=None,
                diameter_mm=round(les.diameter_mm, 2),
                **common,
            )
        else:
            info = RegionInfo(
                kind="organ",
                site=None,
                parent=None,
                reference_mass_g=ref.get(n),
                target_mass_g=target_mass.get(n),
                **common,
            )
        regions[n] = info

    for arr in (lab, density, hu, body_mask):
        arr.setflags(write=False)
    labels = Labels.from_array(lab, grid.affine, present)
    return Anatomy(
        labels=labels,
        regions=MappingProxyType(regions),
        density_g_per_cm3=density,
        hu=hu,
        body_mask=body_mask,
        height_cm=float(height_cm),
        weight_kg=float(weight_kg),
        sex=sex,
        seed=int(seed),
        voxel_mm=float(voxel_mm),
        sources=_SOURCES,
    )
