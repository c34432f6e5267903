"""CT tissue classes and mass densities, and threshold segmentation of lesions.

CT: Hounsfield units to mass density
------------------------------------
:func:`hu_to_density` maps CT numbers to mass density (g/cm^3) by linear
interpolation in a :class:`HUDensityCurve`, clamped at both ends. The default,
:data:`SCHNEIDER_2000_CURVE`, is the four-section stoichiometric calibration of
Schneider, Bortfeld & Schlegel 2000 (Phys Med Biol 45:459-478): air to lung
(-1000 to -98 HU), adipose tissue (-97 to 14 HU), soft tissue (23 to 100 HU) and
skeletal tissue (101 to 1600 HU), each section a separate fit, bridged between
14 and 23 HU. Its nine points are the table distributed with OpenGATE
(``opengate/data/Schneider2000DensitiesTable.txt``, commit d37427e) and, with
the same numbers, Geant4's DICOM example (``CT2Density.dat``).

* [UNCERTAIN] The numbers are transcribed from those two distributions; they
  were not checked against the paper's own table.
* The curve is not monotonic: at 100/101 HU it steps down from the soft-tissue
  section (1.1199 g/cm^3) to the skeletal section (1.0762 g/cm^3), as published.
* [UNCERTAIN] The point at 3000 HU (2.8 g/cm^3) extends the skeletal section
  beyond the tissues Schneider et al. fitted (up to cortical bone, 1600 HU).
* Schneider et al. give the accuracy of the density as better than 0.04 g/cm^3
  (abstract), for CT numbers that match the scanner the curve was derived for.
  0 HU gives 1.017 g/cm^3, not the 1.000 of water.

A stoichiometric calibration is specific to the scanner and tube voltage. The
physicist's own curve (CSV with columns ``hu,density_g_per_cm3``) is read by
:func:`load_hu_density_curve` and passed as ``curve=``.

CT: tissue classes
------------------
:func:`tissue_classes` assigns each voxel one of the classes of a
:class:`TissueClasses` by its CT number; :func:`material_for_class` names the
:data:`theranet.physics.materials.MATERIALS` entry that represents the class in
the NIST tables. The default, :data:`SCHNEIDER_2000_CLASSES`, groups the tissue
bins of Schneider et al. 2000 (their elemental-composition bins as distributed
with OpenGATE, ``opengate/data/Schneider2000MaterialsTable.txt``, commit
d37427e):

===============  ====================  ==========================================
class            HU                    Schneider bins
===============  ====================  ==========================================
``air``          HU < -950             Air (from -1050)
``lung``         -950 <= HU < -120     Lung
``adipose``      -120 <= HU < 19       AT_AG_SI1-5 (adipose tissue, adrenal
                                       gland, small intestine mixtures)
``soft_tissue``  19 <= HU < 120        SoftTissue (19), ConnectiveTissue (80)
``bone``         HU >= 120             Marrow_Bone01-15 (120-1500); also
                                       AmalgamTooth (1640), MetallImplants (2300)
===============  ====================  ==========================================

* [UNCERTAIN] adipose/soft-tissue boundary: the bins AT_AG_SI4 and AT_AG_SI5
  (-22 to 18 HU) are mixtures whose carbon weight (35.6 %, 28.4 %) lies between
  ICRU-44 soft tissue (14.3 %) and adipose tissue (59.8 %); they are put with
  adipose because Schneider's soft-tissue bin starts at 19 HU.
* [UNCERTAIN] theranet ships no metal: amalgam and implants (>= 1640 HU) are
  classed as bone. Their density from the curve is still that of the skeletal
  section.
* The ``lung`` material is ICRU-44 uninflated lung tissue (1.05 g/cm^3); its
  composition represents the class, the density of a voxel comes from the CT.

Threshold lesions
-----------------
:func:`threshold_lesions` labels the connected components of voxels at or
above a threshold in an uptake image (absolute, a fraction of the maximum in
the search region, or a multiple of the mean in a background region such as
the liver), inside an optional search mask and outside excluded organs, and
drops components smaller than ``min_volume_ml``. Lesions are named
``lesion_1``, ``lesion_2``... by decreasing volume.

Units: HU, g/cm^3 (= g/mL), mL, g; the image's own unit for activity thresholds.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from theranet.errors import (
    CalibrationError,
    GeometryError,
    ImageDataError,
    QuantityError,
    TheranetError,
)
from theranet.image import Image, Labels, Quantity
from theranet.physics.materials import MATERIALS

__all__ = [
    "DEFAULT_HU_DENSITY_CURVE",
    "DEFAULT_TISSUE_CLASSES",
    "SCHNEIDER_2000_CLASSES",
    "SCHNEIDER_2000_CURVE",
    "HUDensityCurve",
    "SegmentationError",
    "TissueClasses",
    "density_image",
    "hu_to_density",
    "load_hu_density_curve",
    "material_for_class",
    "region_masses_g",
    "threshold_lesions",
    "tissue_classes",
]

logger = logging.getLogger(__name__)


class SegmentationError(TheranetError, ValueError):
    """A segmentation parameter (threshold, mask, connectivity...) is unusable."""


# ------------------------------------------------------------------ HU -> density


@dataclass(frozen=True)
class HUDensityCurve:
    """A piecewise-linear CT number -> mass density calibration.

    Parameters
    ----------
    hu : tuple of float
        CT numbers of the calibration points, HU, strictly increasing; at least 2.
    density_g_per_cm3 : tuple of float
        Mass density at each point, g/cm^3, positive and finite. Need not be
        monotonic (the Schneider 2000 curve is not).
    source : str
        Where the points come from (paper, scanner and protocol, file).

    Raises
    ------
    CalibrationError
        For fewer than 2 points, unequal lengths, non-finite values, HU not
        strictly increasing or a density that is not positive.
    """

    hu: tuple[float, ...]
    density_g_per_cm3: tuple[float, ...]
    source: str

    def __post_init__(self) -> None:
        where = self.source or None
        try:
            hu = tuple(float(v) for v in self.hu)
            rho = tuple(float(v) for v in self.density_g_per_cm3)
        except (TypeError, ValueError):
            raise CalibrationError(
                "hu_density_curve",
                "HU and density must be sequences of numbers",
                (self.hu, self.density_g_per_cm3),
                "give two equal-length sequences of numbers",
                where,
            ) from None
        if len(hu) != len(rho):
            raise CalibrationError(
                "hu_density_curve",
                "hu and density_g_per_cm3 differ in length",
                (len(hu), len(rho)),
                "give one density per HU point",
                where,
            )
        if len(hu) < 2:
            raise CalibrationError(
                "hu_density_curve",
                "needs at least 2 points",
                len(hu),
                "give the calibration at two or more CT numbers (e.g. air and water)",
                where,
            )
        if not all(math.isfinite(v) for v in hu):
            raise CalibrationError("hu_density_curve.hu", "must be finite", hu, None, where)
        steps = np.diff(hu)
        if np.any(steps <= 0):
            k = int(np.argmax(steps <= 0))
            raise CalibrationError(
                "hu_density_curve.hu",
                "must be strictly increasing",
                (hu[k], hu[k + 1]),
                "sort the points by HU and remove duplicate CT numbers",
                where,
            )
        bad = [v for v in rho if not (math.isfinite(v) and v > 0)]
        if bad:
            raise CalibrationError(
                "hu_density_curve.density_g_per_cm3",
                "densities must be positive and finite",
                bad[0],
                "give mass densities in g/cm^3 (air is about 0.0012)",
                where,
            )
        object.__setattr__(self, "hu", hu)
        object.__setattr__(self, "density_g_per_cm3", rho)


SCHNEIDER_2000_CURVE = HUDensityCurve(
    hu=(-1000.0, -98.0, -97.0, 14.0, 23.0, 100.0, 101.0, 1600.0, 3000.0),
    density_g_per_cm3=(0.00121, 0.93, 0.930486, 1.03, 1.031, 1.1199, 1.0762, 1.9642, 2.8),
    source=(
        "Schneider, Bortfeld & Schlegel 2000, Phys Med Biol 45:459-478, HU-density "
        "calibration (four sections), as tabulated in OpenGATE "
        "opengate/data/Schneider2000DensitiesTable.txt (commit d37427e) and Geant4 DICOM "
        "example CT2Density.dat [UNCERTAIN: not checked against the paper; the 3000 HU "
        "point extrapolates beyond cortical bone]"
    ),
)
"""Schneider et al. 2000 HU -> density curve (see the module notes)."""

DEFAULT_HU_DENSITY_CURVE = SCHNEIDER_2000_CURVE
"""The curve used when none is given: :data:`SCHNEIDER_2000_CURVE`."""


def load_hu_density_curve(path: str | Path, *, source: str | None = None) -> HUDensityCurve:
    """Read a scanner's HU -> density calibration from a CSV file.

    Parameters
    ----------
    path : str or Path
        CSV with a header row naming the columns ``hu`` and
        ``density_g_per_cm3`` (other columns are ignored); lines starting with
        ``#`` are comments. One calibration point per row, HU strictly
        increasing, densities in g/cm^3.
    source : str, optional
        Provenance recorded in the curve; default the file name.

    Returns
    -------
    HUDensityCurve

    Raises
    ------
    CalibrationError
        Missing columns, non-numeric values, or an invalid curve (see
        :class:`HUDensityCurve`).
    """
    path = Path(path)
    where = source or f"HU-density CSV {path.name}"
    with path.open(newline="", encoding="utf-8") as fh:
        lines = [line for line in fh if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.DictReader(lines)
    columns = [c.strip() for c in (reader.fieldnames or [])]
    reader.fieldnames = columns
    missing = [c for c in ("hu", "density_g_per_cm3") if c not in columns]
    if missing:
        raise CalibrationError(
            f"column {missing[0]!r}",
            "missing from the header",
            columns,
            "give a header row 'hu,density_g_per_cm3' and one point per row",
            where,
        )
    hu, rho = [], []
    for row_number, row in enumerate(reader, start=2):
        try:
            hu.append(float(row["hu"]))
            rho.append(float(row["density_g_per_cm3"]))
        except (TypeError, ValueError):
            raise CalibrationError(
                f"row {row_number}",
                "hu and density_g_per_cm3 must be numbers",
                (row.get("hu"), row.get("density_g_per_cm3")),
                "fix or remove the row",
                where,
            ) from None
    return HUDensityCurve(tuple(hu), tuple(rho), where)


def hu_to_density(
    hu: ArrayLike, curve: HUDensityCurve = DEFAULT_HU_DENSITY_CURVE
) -> NDArray[np.floating]:
    """Mass density of CT numbers.

    Parameters
    ----------
    hu : array_like of any shape
        CT numbers, HU.
    curve : HUDensityCurve
        Calibration; default :data:`SCHNEIDER_2000_CURVE`.

    Returns
    -------
    ndarray of the shape of ``hu``, g/cm^3
        Linear interpolation between the curve's points; below the first point
        its density, above the last point the last density (no extrapolation).
        Always positive. float32 for float32 input, else float64.

    Raises
    ------
    ImageDataError
        For non-finite CT numbers.

    Examples
    --------
    >>> float(hu_to_density(-1000.0))
    0.00121
    >>> hu_to_density(np.array([-2000.0, 1600.0, 5000.0])).tolist()
    [0.00121, 1.9642, 2.8]
    """
    values = np.asarray(hu)
    if values.dtype.kind not in "biuf":
        raise ImageDataError("hu", "CT numbers must be numeric", str(values.dtype))
    if not np.all(np.isfinite(values)):
        raise ImageDataError(
            "hu",
            "CT numbers must be finite",
            int(np.count_nonzero(~np.isfinite(values))),
            "replace NaN/inf voxels (e.g. outside the field of view) by -1000 HU",
        )
    out_dtype = values.dtype if values.dtype in (np.float32, np.float64) else np.float64
    rho = np.interp(
        values.astype(np.float64, copy=False),
        np.asarray(curve.hu),
        np.asarray(curve.density_g_per_cm3),
    )
    return np.asarray(rho, dtype=out_dtype)


def _require_hu(ct: Image, argument: str) -> None:
    if not isinstance(ct, Image):
        raise QuantityError(argument, "must be an Image in HU", type(ct).__name__)
    if ct.quantity is not Quantity.HU:
        raise QuantityError(
            f"{argument}.quantity",
            "needs a CT in Hounsfield units",
            ct.quantity.value,
            "pass the CT image (Quantity.HU), e.g. as read from the CT series",
        )


def density_image(ct: Image, curve: HUDensityCurve = DEFAULT_HU_DENSITY_CURVE) -> Image:
    """Mass density image on the CT grid.

    Parameters
    ----------
    ct : Image
        CT in HU (``Quantity.HU``).
    curve : HUDensityCurve
        Calibration; default :data:`SCHNEIDER_2000_CURVE`.

    Returns
    -------
    Image
        float32 densities, g/cm^3 (= g/mL), with the CT's affine. Its quantity
        is ``Quantity.DENSITY`` where :class:`~theranet.image.Quantity` has
        one; otherwise ``Quantity.INTENSITY`` (unit "1"), and the provenance
        step states that the values are g/cm^3.

    Raises
    ------
    QuantityError
        If ``ct`` is not in HU.
    """
    _require_hu(ct, "ct")
    rho = hu_to_density(np.asarray(ct.data), curve).astype(np.float32)
    quantity = getattr(Quantity, "DENSITY", Quantity.INTENSITY)
    step = f"mass density, g/cm^3, from HU: {curve.source}"
    if quantity is Quantity.INTENSITY:
        step += " (stored as INTENSITY: no density quantity)"
    return ct._derive(rho, step, quantity=quantity)


def region_masses_g(
    density_g_per_cm3: NDArray[np.floating] | Image,
    labels: Labels,
    voxel_volume_ml: float | None = None,
) -> dict[str, float]:
    """Mass of each named region: the sum of density x voxel volume.

    Parameters
    ----------
    density_g_per_cm3 : ndarray or Image, shape of the label map
        Mass density of each voxel, g/cm^3 (e.g. :func:`density_image`). An
        Image must be on the label map's grid.
    labels : Labels
    voxel_volume_ml : float, optional
        Voxel volume, mL (= cm^3); default the label map's voxel volume.

    Returns
    -------
    dict
        Region name -> mass, g, for every named region (0.0 for an empty one).

    Raises
    ------
    GeometryError
        Density not on the label grid (shape or affine).
    ImageDataError
        Non-finite or negative densities.
    SegmentationError
        A voxel volume that is not positive.
    """
    if isinstance(density_g_per_cm3, Image):
        if not density_g_per_cm3.same_grid(labels.image):
            raise GeometryError(
                "density_g_per_cm3",
                "density image is not on the label grid",
                density_g_per_cm3.shape,
                "resample it with density.resample_to(labels.image)",
            )
        density_g_per_cm3 = density_g_per_cm3.data
    rho = np.asarray(density_g_per_cm3, dtype=np.float64)
    if rho.shape != labels.image.shape:
        raise GeometryError(
            "density_g_per_cm3",
            f"shape must be that of the label map {labels.image.shape}",
            rho.shape,
        )
    if not np.all(np.isfinite(rho)) or np.any(rho < 0):
        raise ImageDataError(
            "density_g_per_cm3",
            "densities must be finite and not negative",
            float(np.min(rho)) if rho.size else None,
        )
    v_ml = labels.image.voxel_volume_ml if voxel_volume_ml is None else float(voxel_volume_ml)
    if not (math.isfinite(v_ml) and v_ml > 0):
        raise SegmentationError("voxel_volume_ml", "must be positive and finite", v_ml)
    lab = np.asarray(labels.image.data).ravel().astype(np.int64)
    if lab.size and lab.min() < 0:
        raise ImageDataError("labels", "label values must not be negative", int(lab.min()))
    top = max([0, *labels.names]) + 1
    sums = np.bincount(lab, weights=rho.ravel(), minlength=top)
    return {name: float(sums[value]) * v_ml for value, name in labels.names.items()}


# ------------------------------------------------------------------ tissue classes

_SCHNEIDER_BINS = (
    "Schneider, Bortfeld & Schlegel 2000, Phys Med Biol 45:459-478, tissue bins for "
    "elemental composition as distributed with OpenGATE "
    "opengate/data/Schneider2000MaterialsTable.txt (commit d37427e): Air from -1050 HU, "
    "Lung from -950, AT_AG_SI1-5 from -120, SoftTissue from 19, ConnectiveTissue from 80, "
    "Marrow_Bone01-15 from 120 [UNCERTAIN: adipose/soft-tissue boundary (mixture bins "
    "-22..18 HU put with adipose); >= 1640 HU (amalgam, metal) classed as bone]"
)


@dataclass(frozen=True)
class TissueClasses:
    """CT-number classes and the material that represents each.

    Parameters
    ----------
    names : tuple of str
        Class names, from the lowest CT numbers to the highest; label value
        ``k + 1`` is ``names[k]``.
    lower_hu : tuple of float
        Lower bound (inclusive), HU, of each class but the first, strictly
        increasing: class ``k`` holds ``lower_hu[k-1] <= HU < lower_hu[k]``.
    materials : tuple of str
        Name of a :data:`theranet.physics.materials.MATERIALS` entry per class.
    source : str
        Where the boundaries come from.

    Raises
    ------
    SegmentationError
        Inconsistent lengths, duplicate names, boundaries not increasing, an
        unknown material, or more than 255 classes.
    """

    names: tuple[str, ...]
    lower_hu: tuple[float, ...]
    materials: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        lower = tuple(float(v) for v in self.lower_hu)
        materials = tuple(str(m) for m in self.materials)
        if not 1 <= len(names) <= 255 or len(set(names)) != len(names):
            raise SegmentationError("TissueClasses.names", "must be 1-255 unique names", names)
        if len(lower) != len(names) - 1:
            raise SegmentationError(
                "TissueClasses.lower_hu",
                f"needs one lower bound per class but the first ({len(names) - 1})",
                lower,
            )
        if not all(math.isfinite(v) for v in lower) or np.any(np.diff(lower) <= 0):
            raise SegmentationError(
                "TissueClasses.lower_hu", "must be finite and strictly increasing", lower
            )
        if len(materials) != len(names):
            raise SegmentationError(
                "TissueClasses.materials", "needs one material per class", materials
            )
        unknown = [m for m in materials if m not in MATERIALS]
        if unknown:
            raise SegmentationError(
                "TissueClasses.materials",
                "no shipped material of this name",
                unknown[0],
                f"use one of {', '.join(MATERIALS)}",
            )
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "lower_hu", lower)
        object.__setattr__(self, "materials", materials)

    @property
    def label_names(self) -> dict[int, str]:
        """Label value -> class name (``{1: "air", ...}``)."""
        return {k + 1: n for k, n in enumerate(self.names)}


SCHNEIDER_2000_CLASSES = TissueClasses(
    names=("air", "lung", "adipose", "soft_tissue", "bone"),
    lower_hu=(-950.0, -120.0, 19.0, 120.0),
    materials=("air", "lung", "adipose", "soft_tissue", "bone"),
    source=_SCHNEIDER_BINS,
)
"""Air, lung, adipose, soft tissue, bone after Schneider et al. 2000 (module notes)."""

DEFAULT_TISSUE_CLASSES = SCHNEIDER_2000_CLASSES
"""The classes used when none are given: :data:`SCHNEIDER_2000_CLASSES`."""


def tissue_classes(ct: Image, classes: TissueClasses = DEFAULT_TISSUE_CLASSES) -> Labels:
    """Label every CT voxel with its tissue class.

    Parameters
    ----------
    ct : Image
        CT in HU (``Quantity.HU``).
    classes : TissueClasses
        Class boundaries; default :data:`SCHNEIDER_2000_CLASSES` (labels
        ``{1: "air", 2: "lung", 3: "adipose", 4: "soft_tissue", 5: "bone"}``).

    Returns
    -------
    Labels
        uint8 label map on the CT grid; every voxel has a class (no 0).

    Raises
    ------
    QuantityError
        If ``ct`` is not in HU.
    ImageDataError
        For non-finite CT numbers.
    """
    _require_hu(ct, "ct")
    hu = np.asarray(ct.data, dtype=np.float64)
    if not np.all(np.isfinite(hu)):
        raise ImageDataError(
            "ct.data",
            "CT numbers must be finite",
            int(np.count_nonzero(~np.isfinite(hu))),
            "replace NaN/inf voxels (e.g. outside the field of view) by -1000 HU",
        )
    values = (np.digitize(hu, np.asarray(classes.lower_hu), right=False) + 1).astype(np.uint8)
    step = f"tissue classes {', '.join(classes.names)} from HU: {classes.source}"
    return Labels(_label_image(values, ct, step), classes.label_names)


def material_for_class(name: str, classes: TissueClasses = DEFAULT_TISSUE_CLASSES) -> str:
    """Name of the material (in :data:`~theranet.physics.materials.MATERIALS`) of a class.

    Parameters
    ----------
    name : str
        Class name, e.g. ``"soft_tissue"``.
    classes : TissueClasses

    Returns
    -------
    str
        E.g. ``"soft_tissue"``; ``MATERIALS[...]`` gives its composition and
        NIST tables. Voxel densities come from the CT, not from the material.

    Raises
    ------
    KeyError
        If ``name`` is not a class.
    """
    try:
        return classes.materials[classes.names.index(name)]
    except ValueError:
        raise KeyError(f"name: no tissue class {name!r}; known: {list(classes.names)}") from None


# ------------------------------------------------------------------ threshold lesions

#: Quantities whose voxels are an uptake per volume (ratios of voxels are ratios of
#: concentration): relative thresholds apply to these only.
_CONCENTRATIONS = frozenset({Quantity.ACTIVITY_CONCENTRATION, Quantity.SUVBW, Quantity.SUL})
#: Quantities an absolute threshold may be applied to (in the image's unit).
_UPTAKE = frozenset(
    {
        *_CONCENTRATIONS,
        Quantity.ACTIVITY,
        Quantity.COUNTS,
        Quantity.COUNT_RATE,
        Quantity.INTENSITY,
    }
)
_STRUCTURES = {6: 1, 18: 2, 26: 3}
_RELATIVE_TO = ("absolute", "max", "background")


def _mask(mask: ArrayLike | None, shape: tuple[int, ...], argument: str) -> NDArray[np.bool_]:
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(mask)
    if m.dtype.kind not in "biu":
        raise ImageDataError(
            argument,
            "must be a boolean (or integer, nonzero = inside) mask",
            str(m.dtype),
            "pass labels.mask(name) or a combination of such masks",
        )
    if m.shape != shape:
        raise GeometryError(
            argument,
            f"shape must be that of the image {shape}",
            m.shape,
            "resample the labels to the activity grid (Labels.resample_to)",
        )
    return m.astype(bool)


def threshold_lesions(
    activity: Image,
    threshold: float,
    *,
    relative_to: str = "absolute",
    within: ArrayLike | None = None,
    exclude: ArrayLike | None = None,
    background_mask: ArrayLike | None = None,
    min_volume_ml: float = 0.0,
    connectivity: int = 26,
) -> Labels:
    """Lesions as connected components of voxels at or above a threshold.

    Parameters
    ----------
    activity : Image
        Uptake image. Relative thresholds need a concentration
        (``ACTIVITY_CONCENTRATION``, ``SUVBW`` or ``SUL``); an absolute one is
        also accepted on ``ACTIVITY``, ``COUNTS``, ``COUNT_RATE`` or
        ``INTENSITY``.
    threshold : float
        ``relative_to="absolute"``: the level in the image's unit (e.g. MBq/mL).
        ``"max"``: a fraction in (0, 1] of the maximum in the search region.
        ``"background"``: a positive multiple of the mean over ``background_mask``.
    relative_to : {"absolute", "max", "background"}
    within : ndarray of bool, optional
        Search region (e.g. the body, or a VOI drawn around one lesion);
        default the whole image.
    exclude : ndarray of bool, optional
        Voxels never part of a lesion (e.g. kidneys | spleen | bladder).
    background_mask : ndarray of bool, optional
        Reference region for ``relative_to="background"`` (e.g. normal liver).
    min_volume_ml : float
        Components smaller than this are dropped, mL. Default 0 (none dropped).
    connectivity : {6, 18, 26}
        Neighbours that join voxels: faces, + edges, + corners.

    Returns
    -------
    Labels
        int32 label map on the activity grid, ``{1: "lesion_1", ...}``, ordered
        by decreasing volume (ties: higher maximum first, then the first voxel
        in array order). No lesions gives an empty ``names``.

    Raises
    ------
    QuantityError
        A quantity the threshold does not apply to (HU, LABEL, dose; counts or
        activity with a relative threshold).
    SegmentationError
        A threshold, mode, connectivity or minimum volume out of range, an empty
        search or background region, or a background mean that is not positive.
    GeometryError, ImageDataError
        A mask of the wrong shape or type; non-finite values in the search or
        background region.

    Notes
    -----
    The search region is ``within & ~exclude``. With ``relative_to="max"`` the
    fraction applies to the single maximum of that region (not to each
    component's own maximum): to contour several lesions of different uptake
    at, e.g., 40 % of their own maximum, call once per lesion with ``within`` a
    VOI around it. No iterative background-corrected threshold is implemented.
    """
    if not isinstance(activity, Image):
        raise QuantityError("activity", "must be an Image", type(activity).__name__)
    if relative_to not in _RELATIVE_TO:
        raise SegmentationError(
            "relative_to", "unknown threshold mode", relative_to, f"use one of {_RELATIVE_TO}"
        )
    allowed = _UPTAKE if relative_to == "absolute" else _CONCENTRATIONS
    if activity.quantity not in allowed:
        fix = (
            "convert the image to activity concentration first (to_activity_concentration)"
            if activity.quantity in _UPTAKE
            else "pass the SPECT/PET uptake image"
        )
        raise QuantityError(
            "activity.quantity",
            f"a threshold relative to {relative_to!r} does not apply to this quantity",
            activity.quantity.value,
            fix,
        )
    threshold = float(threshold)
    if not math.isfinite(threshold):
        raise SegmentationError("threshold", "must be finite", threshold)
    if relative_to == "max" and not 0 < threshold <= 1:
        raise SegmentationError(
            "threshold", "a fraction of the maximum must lie in (0, 1]", threshold, "e.g. 0.4"
        )
    if relative_to == "background" and not threshold > 0:
        raise SegmentationError("threshold", "a multiple of the background must be > 0", threshold)
    if connectivity not in _STRUCTURES:
        raise SegmentationError("connectivity", "must be 6, 18 or 26", connectivity)
    min_volume_ml = float(min_volume_ml)
    if not (math.isfinite(min_volume_ml) and min_volume_ml >= 0):
        raise SegmentationError("min_volume_ml", "must be finite and >= 0", min_volume_ml)

    data = np.asarray(activity.data, dtype=np.float64)
    shape = data.shape
    region = _mask(within, shape, "within")
    if exclude is not None:
        region &= ~_mask(exclude, shape, "exclude")
    if not np.all(np.isfinite(data[region])):
        raise ImageDataError("activity.data", "non-finite values in the search region")

    if relative_to == "absolute":
        level, how = threshold, f">= {threshold:g} {activity.unit}"
    elif relative_to == "max":
        if not region.any():
            raise SegmentationError("within", "the search region is empty")
        peak = float(data[region].max())
        if not peak > 0:
            raise SegmentationError("activity", "maximum in the search region is not > 0", peak)
        level = threshold * peak
        how = f">= {threshold:g} x max {peak:.6g} {activity.unit}"
    else:
        if background_mask is None:
            raise SegmentationError(
                "background_mask",
                "needed for relative_to='background'",
                None,
                "pass e.g. labels.mask('liver')",
            )
        bg = _mask(background_mask, shape, "background_mask")
        if not bg.any():
            raise SegmentationError("background_mask", "is empty")
        bg_values = data[bg]
        if not np.all(np.isfinite(bg_values)):
            raise ImageDataError("activity.data", "non-finite values in the background region")
        mean = float(bg_values.mean())
        if not mean > 0:
            raise SegmentationError(
                "background_mask", "mean uptake in the background is not > 0", mean
            )
        level = threshold * mean
        how = f">= {threshold:g} x background mean {mean:.6g} {activity.unit}"

    hot = region & (data >= level)
    structure = ndimage.generate_binary_structure(3, _STRUCTURES[connectivity])
    components, n = ndimage.label(hot, structure=structure)
    v_ml = activity.voxel_volume_ml
    out = np.zeros(shape, dtype=np.int32)
    if n:
        index = np.arange(1, n + 1)
        counts = np.bincount(components.ravel(), minlength=n + 1)[1:]
        peaks = np.asarray(ndimage.maximum(data, components, index), dtype=np.float64)
        flat = components.ravel()
        first = np.full(n + 1, flat.size, dtype=np.int64)
        nz = np.flatnonzero(flat)
        ids, at = np.unique(flat[nz], return_index=True)  # nz ascending: first voxels
        first[ids] = nz[at]
        # relative tolerance: a component of exactly min_volume_ml is kept
        keep = counts * v_ml >= min_volume_ml * (1.0 - 1e-9)
        kept = index[keep]
        order = np.lexsort((first[kept], -peaks[keep], -counts[keep]))
        new_value = np.zeros(n + 1, dtype=np.int32)
        new_value[kept[order]] = np.arange(1, kept.size + 1, dtype=np.int32)
        out = new_value[components]
        dropped = n - kept.size
    else:
        dropped = 0
    names = {k: f"lesion_{k}" for k in range(1, int(out.max(initial=0)) + 1)}
    step = (
        f"threshold lesions: {how}, {connectivity}-connected, >= {min_volume_ml:g} mL "
        f"({len(names)} kept, {dropped} smaller dropped), ordered by decreasing volume"
    )
    logger.debug(step)
    return Labels(_label_image(out, activity, step), names)


def _label_image(values: np.ndarray, like: Image, step: str) -> Image:
    """A LABEL image on the grid of ``like``, with its patient and provenance."""
    return Image(
        values,
        like.affine,
        Quantity.LABEL,
        patient=like.patient,
        provenance=like.provenance.with_step(step),
    )
