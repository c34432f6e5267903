"""Lesion detection and measurement on diagnostic SSTR PET and 111In/MIBG SPECT.

:func:`detect_lesions` finds the lesions of an uptake image (activity
concentration in MBq/mL, or SUV) with a threshold relative to a reference region,
outside the organs with physiological uptake, and measures each one
(:class:`LesionTable`). Units: MBq/mL, g/mL (SUV), mL, mm (LPS).

Steps
-----
1. **Labels on the image grid.** Organ labels on another grid (the CT's) are
   resampled nearest-neighbour onto the image grid (:meth:`Labels.resample_to`).
2. **Reference region** (:class:`ReferenceRegion`). ``"liver"`` (default) or
   ``"blood_pool"`` (a ``heart_blood`` or ``aorta`` label). The label is eroded
   by ``reference_margin_mm`` (default the FWHM: one FWHM from a flat edge the
   spill of a Gaussian PSF is ``0.5 erfc(2 sqrt(ln 2)) = 0.93 %`` of the
   contrast). Lesion-like voxels are removed: connected clusters (at least
   ``min_volume_ml``) of voxels more than ``outlier_sd`` robust SDs (1.4826 x
   median absolute deviation) from the median, hot or cold, dilated by the FWHM
   to remove their spill. The reference mean and SD (ddof 1) are those of the
   remaining voxels (method ``"eroded"``), or of the voxels whose centres lie in
   a sphere of ``sphere_diameter_mm`` (default 30 mm, PERCIST's liver VOI,
   clinical.md §7.3 [PERCIST]; §3.1 asks for >= 3 cm) placed entirely in that
   normal liver (method ``"sphere"``): of the possible centres, the one whose
   sphere mean is the median of all sphere means (a typical normal position; a
   reader's "normal right lobe" is not known to the program).
3. **Threshold.** ``level = factor x reference mean + k_sd x reference SD``
   (:class:`ThresholdRule`); a voxel must be above it. The default
   :data:`LIVER_KRENNING3` (factor 1, k = 2) asks for uptake above normal liver,
   the Krenning grade >= 3 criterion of clinical.md §3.1 [Krenning], with a
   two-SD noise margin; :data:`PERCIST_LIVER` is PERCIST's measurability level
   (1.5 x liver mean + 2 SD, clinical.md §7.3 [PERCIST]) and
   :data:`PERCIST_BLOOD_POOL` its blood-pool fallback (2.0 x mean + 2 SD,
   [UNCERTAIN]: the PERCIST text and table disagree on the SD term).
   *Organ background*: inside a searched organ label (not the reference, not
   excluded) whose own normal uptake takes the rule above that level
   (``factor x median + k_sd x robust SD`` of its voxels), that higher level is
   used (:attr:`LesionTable.region_levels`): marrow or blood pool above liver,
   as in some patients, is not a lesion, a focus within it is.
4. **Search region.** The whole image (or ``within``) minus the excluded organs
   (:data:`DEFAULT_EXCLUDED_ORGANS`). Those whose mean uptake reaches the
   threshold (kidneys, spleen, bladder...) are dilated by ``exclusion_margin_mm``
   (default the FWHM), so their spill-out is not reported; the others are not:
   blurring cannot lift the spill of an organ whose uptake is below the
   threshold above it, and dilating the bowel would remove the mesenteric nodes
   that lie against it. The liver is searched: liver metastases are found with
   the liver-relative threshold.
5. **Components.** :func:`theranet.imaging.segment.threshold_lesions` keeps the
   connected components (``connectivity``) of at least ``min_volume_ml`` (default
   1 mL, the volume of the 1 cm^3 peak sphere of clinical.md §4.1). Components
   with several peaks (lesions joined by their blurred halos) are split where
   the valley between two peaks goes ``split_depth`` (default half) of the way
   down to the threshold (:func:`split_components`).
6. **Measurable lesions.** A component is kept when (a) its peak (below)
   reaches the threshold (PERCIST judges measurability on the peak, clinical.md
   §7.3), which averages the voxel noise of small clusters away; (b) its peak
   exceeds the median of its surroundings (one FWHM around it) by ``local_k_sd``
   reference SDs; (c) it is no spill tail: its uptake does not rise towards a
   dilated excluded organ (very hot organs spill beyond one FWHM). Lesions are
   named ``lesion_1``... by decreasing volume.
7. **Measures** per lesion: volume, centroid (LPS, mm, unweighted mean of the
   voxel centres), max/mean/peak concentration, SUVbw max/mean/peak (and SUL
   when asked), tumour-to-liver and tumour-to-spleen ratios, site.

Peak
    The largest mean in a 1 cm^3 sphere (radius 6.2035 mm) centred on a voxel of
    the lesion, each voxel weighted by its fraction inside the sphere (clinical.md
    §4.1, PERCIST/QIBA): :func:`theranet.response.measure.sul_peak`, whose
    average is linear in the voxel values and so applies to any concentration.
    Lesions under 1 mL are flagged (``small_for_peak``), as §4.1 asks.
SUV
    ``Image.to_suv`` (SUVbw = C W / A_inj with C decay-corrected to the
    injection, QIBA, clinical.md §4.1); SUL (``sul_formula``: Janmahasatian 2005
    or James-128) only when asked, the formula stated in :attr:`LesionTable.sul_formula`.
    When the image lacks weight, activity or injection time the SUV columns are
    None and :attr:`LesionTable.notes` says why. The MBq/mL columns are the
    image's own values (its decay-correction state, e.g. START for PET, none for
    SPECT).
Ratios
    ``tlr`` = lesion max / liver reference mean and ``tsr`` = lesion max / spleen
    mean (clinical.md §3.2 [Kratochwil-2015]; with §3.1 they give a
    semi-automatic Krenning-equivalent: max vs liver and spleen means). The
    spleen mean is over the spleen eroded by ``reference_margin_mm``. None when
    the label is absent.
Site (:func:`lesion_site`)
    Each lesion voxel votes for the site of its organ label: ``liver``,
    ``pancreas``, ``bone`` (cortical/trabecular bone, marrow, vertebrae, ribs,
    pelvis...: :data:`BONE_REGIONS`), ``node`` (no organ label, or generic soft
    tissue: remainder, muscle, fat, lymph nodes: :data:`SOFT_TISSUE_REGIONS`;
    a lesion in soft tissue outside the organs is taken as a lymph node, as the
    digital patient's nodes are) and ``other`` (any other organ). The site with
    most voxels wins (ties in that order); ``region`` names the single label
    with most voxels.

Limits
------
* A lesion whose uptake is not above the threshold is not found: with the
  default rule, lesions at or below normal liver uptake (Krenning 0-2), which
  inside the liver are iso- or hypo-intense and cannot be told from it on the
  uptake image. They need the CT/MR.
* Lesions within ``exclusion_margin_mm`` of a hot excluded organ are cut or
  lost (e.g. a pancreatic tail lesion touching the spleen), as are lesions whose
  uptake rises towards such an organ; a phaeochromocytoma is lost when the
  adrenals are excluded: use :data:`MIBG_EXCLUDED_ORGANS` or your own set.
* A lesion filling most of its organ label raises that organ's own level
  (organ background) and may be lost: pass ``organ_background=False``.
* The volume is that of the voxels above the threshold: for hot lesions it
  includes part of the blurred halo (larger than the true lesion); it is not a
  segmentation of the tumour's boundary.
* Lesions closer than about one FWHM merge into one component.
"""

from __future__ import annotations

import fnmatch
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from theranet._checks import lookup_key, non_negative, positive
from theranet.errors import (
    GeometryError,
    ImageDataError,
    MissingFieldError,
    NuclideError,
    QuantityError,
    TimingError,
)
from theranet.image import Image, Labels, Quantity
from theranet.imaging.segment import SegmentationError, threshold_lesions

__all__ = [
    "BLOOD_POOL_REGIONS",
    "BONE_REGIONS",
    "COLUMNS",
    "DEFAULT_EXCLUDED_ORGANS",
    "DEFAULT_RULE",
    "LIVER_KRENNING3",
    "LIVER_REGIONS",
    "MIBG_EXCLUDED_ORGANS",
    "PERCIST_BLOOD_POOL",
    "PERCIST_LIVER",
    "SITES",
    "SOFT_TISSUE_REGIONS",
    "SPLEEN_REGIONS",
    "DetectionSettings",
    "Lesion",
    "LesionDetectionError",
    "LesionTable",
    "ReferenceRegion",
    "ReferenceRegionError",
    "ThresholdRule",
    "detect_lesions",
    "lesion_site",
    "matches_any",
    "peak_concentration",
    "reference_region",
    "split_components",
]

logger = logging.getLogger(__name__)


class LesionDetectionError(SegmentationError):
    """A lesion-detection parameter or input is unusable."""


class ReferenceRegionError(LesionDetectionError):
    """The reference region (liver, blood pool) is missing or has no usable voxel."""


# ------------------------------------------------------------------ region names

#: Organs with physiological uptake or excretion of SSTR tracers, never searched
#: (glob patterns on label names in lower case with ``_`` for spaces and hyphens):
#: kidneys, spleen, urinary bladder, pituitary, adrenals, bowel and salivary glands.
#: clinical.md names the spleen and kidneys as the organs of highest 68Ga-DOTATATE
#: uptake (§1.4 [Sandstrom-2013]) and bowel activity as a confounder of
#: 111In-pentetreotide (§1.2 [EANM-SRS-2010]); thyroid, stomach and gallbladder are
#: added as organs of known physiological SSTR-tracer uptake [UNCERTAIN: the set is
#: an implementation choice, not a sourced table; pass your own]. The liver is not
#: excluded: liver metastases are searched with the liver-relative threshold.
DEFAULT_EXCLUDED_ORGANS: tuple[str, ...] = (
    "kidney*",
    "*_kidney*",
    "spleen*",
    "urinary_bladder",
    "bladder",
    "pituitary*",
    "hypophysis",
    "adrenal*",
    "*bowel*",
    "intestine*",
    "*_intestine*",
    "colon*",
    "duodenum*",
    "jejunum*",
    "ileum*",
    "rectum*",
    "salivary*",
    "parotid*",
    "submandibular*",
    "sublingual*",
    "thyroid*",
    "stomach*",
    "gallbladder*",
)

#: Exclusions for MIBG: the default set without the adrenals (phaeochromocytoma is
#: searched there) and with the myocardium, whose sympathetic innervation takes up
#: MIBG (the basis of cardiac MIBG imaging) [UNCERTAIN: implementation choice, not
#: in clinical.md].
MIBG_EXCLUDED_ORGANS: tuple[str, ...] = (
    *(p for p in DEFAULT_EXCLUDED_ORGANS if not p.startswith("adrenal")),
    "heart_wall",
    "myocardium*",
    "heart_myocardium*",
)

#: Label names (glob patterns) of the liver reference region.
LIVER_REGIONS: tuple[str, ...] = ("liver",)
#: Label names of the blood-pool reference region (heart chambers, aorta).
BLOOD_POOL_REGIONS: tuple[str, ...] = ("heart_blood", "blood_pool", "aorta*")
#: Label names of the spleen (tumour-to-spleen ratio).
SPLEEN_REGIONS: tuple[str, ...] = ("spleen",)
#: Label names counted as bone for the lesion site.
BONE_REGIONS: tuple[str, ...] = (
    "*bone*",
    "*marrow*",
    "*trabecular*",
    "*spongiosa*",
    "vertebra*",
    "spine*",
    "rib_*",
    "ribs",
    "sacrum",
    "hip*",
    "pelvis*",
    "femur*",
    "humerus*",
    "scapula*",
    "clavic*",
    "sternum*",
    "skull*",
)
#: Label names counted as soft tissue outside the organs (site ``node``); voxels
#: with no label count the same.
SOFT_TISSUE_REGIONS: tuple[str, ...] = (
    "remainder",
    "soft_tissue*",
    "muscle*",
    "*fat*",
    "lymph*",
    "*node*",
    "autochthon*",
    "iliopsoas*",
    "gluteus*",
    "body",
    "unlabelled*",
)
#: Lesion sites, in the order that breaks ties.
SITES: tuple[str, ...] = ("liver", "pancreas", "bone", "node", "other")

#: Column -> unit of :meth:`LesionTable.rows` (None: text, count or flag).
COLUMNS: Mapping[str, str | None] = {
    "lesion_id": None,
    "site": None,
    "region": None,
    "volume_ml": "mL",
    "centroid_x_mm": "mm",
    "centroid_y_mm": "mm",
    "centroid_z_mm": "mm",
    "max_mbq_per_ml": "MBq/mL",
    "mean_mbq_per_ml": "MBq/mL",
    "peak_mbq_per_ml": "MBq/mL",
    "suv_max": "g/mL",
    "suv_mean": "g/mL",
    "suv_peak": "g/mL",
    "sul_max": "g/mL",
    "sul_mean": "g/mL",
    "sul_peak": "g/mL",
    "tlr": "1",
    "tsr": "1",
    "liver_mean_mbq_per_ml": "MBq/mL",
    "spleen_mean_mbq_per_ml": "MBq/mL",
    "liver_mean_suv": "g/mL",
    "spleen_mean_suv": "g/mL",
    "small_for_peak": None,
}

_CONCENTRATIONS = (Quantity.ACTIVITY_CONCENTRATION, Quantity.SUVBW, Quantity.SUL)
_REFERENCES = ("liver", "blood_pool")
_METHODS = ("eroded", "sphere")
_SUL_FORMULAS = ("janmahasatian", "james128")
#: Volume of the peak sphere, mL (clinical.md §4.1).
_PEAK_VOLUME_ML = 1.0
#: 1.4826 x MAD estimates the SD of a normal distribution.
_MAD_TO_SD = 1.482602218505602


def matches_any(name: str, patterns: Sequence[str]) -> bool:
    """Whether a label name matches one of the glob ``patterns`` (such as
    :data:`DEFAULT_EXCLUDED_ORGANS`), the name taken in lower case with spaces and
    hyphens as underscores (``"Kidney-Left"`` matches ``"kidney*"``)."""
    key = lookup_key(name)
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


# ------------------------------------------------------------------ settings


@dataclass(frozen=True)
class ThresholdRule:
    """``level = factor x reference mean + k_sd x reference SD``.

    Parameters
    ----------
    reference : {"liver", "blood_pool"}
    factor : float
        Multiple of the reference mean, > 0.
    k_sd : float
        Multiple of the reference SD (voxel values), >= 0.
    source : str
        Where the numbers come from.
    """

    reference: str
    factor: float
    k_sd: float
    source: str

    def __post_init__(self) -> None:
        if self.reference not in _REFERENCES:
            raise LesionDetectionError(
                "ThresholdRule.reference",
                "unknown reference",
                self.reference,
                f"use one of {_REFERENCES}",
            )
        object.__setattr__(
            self, "factor", positive(LesionDetectionError, "ThresholdRule.factor", self.factor, "1")
        )
        object.__setattr__(
            self,
            "k_sd",
            non_negative(LesionDetectionError, "ThresholdRule.k_sd", self.k_sd, "SDs"),
        )

    def describe(self) -> str:
        """E.g. ``"1 x liver mean + 2 SD"``."""
        return f"{self.factor:g} x {self.reference} mean + {self.k_sd:g} SD"


LIVER_KRENNING3 = ThresholdRule(
    "liver",
    1.0,
    2.0,
    "uptake above normal liver = Krenning grade >= 3 (clinical.md §3.1 [Krenning], "
    "Kwekkeboom & Krenning 2002); + 2 SD noise margin [UNCERTAIN: implementation choice]",
)
"""Uptake above normal liver (Krenning >= 3) with a 2-SD noise margin (default)."""

PERCIST_LIVER = ThresholdRule(
    "liver",
    1.5,
    2.0,
    "PERCIST 1.0 measurability, 1.5 x liver mean + 2 SD (Wahl et al. 2009, J Nucl Med "
    "50:122S; clinical.md §7.3)",
)
"""PERCIST measurability threshold on the liver."""

PERCIST_BLOOD_POOL = ThresholdRule(
    "blood_pool",
    2.0,
    2.0,
    "PERCIST 1.0 blood-pool fallback, 2.0 x blood-pool mean + 2 SD (Wahl et al. 2009; "
    "clinical.md §7.3) [UNCERTAIN: the PERCIST text and table disagree on the + 2 SD term]",
)
"""PERCIST blood-pool fallback threshold."""

DEFAULT_RULE = LIVER_KRENNING3
"""The rule used when none is given: :data:`LIVER_KRENNING3`."""


@dataclass(frozen=True)
class DetectionSettings:
    """Parameters of :func:`detect_lesions` (all configurable; see the module notes).

    Parameters
    ----------
    rule : ThresholdRule
        Reference region and threshold; default :data:`LIVER_KRENNING3`.
    reference_method : {"eroded", "sphere"}
        Reference statistics over the eroded normal region, or over a sphere in it.
    sphere_diameter_mm : float
        Diameter of the reference sphere, mm (PERCIST: 30 mm); >= 30 mm.
    reference_margin_mm : float, optional
        Erosion of the reference (and spleen) label, mm; default the FWHM.
    outlier_sd : float
        Lesion-like voxels of the reference lie beyond this many robust SDs from
        its median, > 0. Default 3.
    excluded_organs : tuple of str
        Glob patterns of label names never searched; default
        :data:`DEFAULT_EXCLUDED_ORGANS`.
    exclusion_margin_mm : float, optional
        Dilation of the excluded organs whose mean uptake reaches the threshold,
        mm; default the FWHM.
    min_volume_ml : float
        Smallest lesion reported, mL; default 1 mL (the peak sphere volume)
        [UNCERTAIN: implementation choice].
    connectivity : {6, 18, 26}
        Neighbours that join voxels (faces, + edges, + corners); default 26.
    split_depth : float or None
        Components holding several peaks are split where the valley between two
        peaks goes at least this fraction of the way from the lower peak down to
        the threshold (:func:`split_components`); None keeps the components
        whole. Default 0.5 (half the peak height above the threshold, as the
        FWHM measures a peak at half its height) [UNCERTAIN: implementation
        choice].
    peak_above_threshold : bool
        Keep only lesions whose peak (1 cm^3 sphere mean, clinical.md §4.1)
        reaches the threshold, as PERCIST judges measurability on the peak
        (clinical.md §7.3). Default True.
    local_k_sd : float or None
        Keep only lesions whose peak exceeds the median of their surroundings
        (voxels within one FWHM outside the lesion, excluded organs and other
        lesions left out) by ``local_k_sd`` reference SDs; None switches the test
        off. Default 2 (the noise margin of the default rule) [UNCERTAIN:
        implementation choice]. It removes noise in tissue whose normal uptake
        is itself above the threshold (blood pool or marrow above liver).
    organ_background : bool
        Inside a searched organ label (not the reference, not excluded) whose
        own normal uptake takes the rule above the threshold (``factor x
        median + k_sd x robust SD`` of its voxels > threshold), use that level
        there. Default True.
    drop_spill_tails : bool
        Drop components whose uptake rises towards a dilated excluded organ
        (mean of their voxels next to its zone >= mean of the others): the tail
        of the organ's spill-out, not a lesion. Default True.
    """

    rule: ThresholdRule = DEFAULT_RULE
    reference_method: str = "eroded"
    sphere_diameter_mm: float = 30.0
    reference_margin_mm: float | None = None
    outlier_sd: float = 3.0
    excluded_organs: tuple[str, ...] = DEFAULT_EXCLUDED_ORGANS
    exclusion_margin_mm: float | None = None
    min_volume_ml: float = _PEAK_VOLUME_ML
    connectivity: int = 26
    split_depth: float | None = 0.5
    peak_above_threshold: bool = True
    local_k_sd: float | None = 2.0
    organ_background: bool = True
    drop_spill_tails: bool = True

    def __post_init__(self) -> None:
        err = LesionDetectionError
        if not isinstance(self.rule, ThresholdRule):
            raise err(
                "rule",
                "must be a ThresholdRule",
                type(self.rule).__name__,
                "e.g. ThresholdRule('liver', 1.5, 2.0, source='...')",
            )
        if self.reference_method not in _METHODS:
            raise err(
                "reference_method",
                "unknown method",
                self.reference_method,
                f"use one of {_METHODS}",
            )
        d = positive(err, "sphere_diameter_mm", self.sphere_diameter_mm, "mm")
        if d < 30.0:
            raise err(
                "sphere_diameter_mm",
                "must be >= 30 mm (clinical.md §3.1, §7.3)",
                d,
                "give 30 mm or more",
            )
        object.__setattr__(self, "sphere_diameter_mm", d)
        for name in ("reference_margin_mm", "exclusion_margin_mm"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, non_negative(err, name, v, "mm"))
        object.__setattr__(self, "outlier_sd", positive(err, "outlier_sd", self.outlier_sd, "SDs"))
        object.__setattr__(
            self, "min_volume_ml", non_negative(err, "min_volume_ml", self.min_volume_ml, "mL")
        )
        if isinstance(self.excluded_organs, str):
            raise err(
                "excluded_organs",
                "a single string is ambiguous",
                self.excluded_organs,
                "give a tuple of label-name patterns, e.g. ('kidney*', 'spleen')",
            )
        object.__setattr__(
            self, "excluded_organs", tuple(lookup_key(p) for p in self.excluded_organs)
        )
        if self.connectivity not in (6, 18, 26) or isinstance(self.connectivity, bool):
            raise err("connectivity", "must be 6, 18 or 26", self.connectivity)
        if self.local_k_sd is not None:
            object.__setattr__(
                self, "local_k_sd", non_negative(err, "local_k_sd", self.local_k_sd, "SDs")
            )
        for name in ("peak_above_threshold", "organ_background", "drop_spill_tails"):
            if not isinstance(getattr(self, name), bool):
                raise err(name, "must be True or False", getattr(self, name))
        if self.split_depth is not None:
            depth = positive(err, "split_depth", self.split_depth, "fractions of the peak height")
            if depth > 1.0:
                raise err("split_depth", "must lie in (0, 1]", depth, "e.g. 0.5, or None")
            object.__setattr__(self, "split_depth", depth)


# ------------------------------------------------------------------ results


@dataclass(frozen=True)
class ReferenceRegion:
    """Statistics of a reference region on the image grid.

    Attributes
    ----------
    name : str
        ``"liver"``, ``"blood_pool"`` or ``"spleen"``.
    labels : tuple of str
        The label names it was taken from.
    method : str
        ``"eroded"`` or ``"sphere"``.
    mean, sd : float
        Mean and SD (ddof=1) of the voxel values, in ``unit``.
    n_voxels : int
    volume_ml : float
    unit : str
    excluded_ml : float
        Volume of the eroded region removed as lesion-like (with its spill margin), mL.
    sphere_centre_mm : tuple of float or None
        LPS centre of the sphere (method ``"sphere"``), mm.
    mask : ndarray of bool
        The voxels used, shape of the image.
    """

    name: str
    labels: tuple[str, ...]
    method: str
    mean: float
    sd: float
    n_voxels: int
    volume_ml: float
    unit: str
    excluded_ml: float = 0.0
    sphere_centre_mm: tuple[float, float, float] | None = None
    mask: NDArray[np.bool_] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Lesion:
    """One detected lesion (see :data:`COLUMNS` for units).

    ``max/mean/peak_mbq_per_ml`` are None for an image in SUV; ``suv_*`` None when
    the image cannot be converted; ``sul_*`` None unless SUL was asked for.
    """

    lesion_id: int
    name: str
    site: str
    region: str
    volume_ml: float
    centroid_mm: tuple[float, float, float]
    n_voxels: int
    max_mbq_per_ml: float | None
    mean_mbq_per_ml: float | None
    peak_mbq_per_ml: float | None
    suv_max: float | None
    suv_mean: float | None
    suv_peak: float | None
    sul_max: float | None
    sul_mean: float | None
    sul_peak: float | None
    tlr: float | None
    tsr: float | None

    @property
    def small_for_peak(self) -> bool:
        """True below the 1 mL peak sphere (clinical.md §4.1 asks for the flag)."""
        return self.volume_ml < _PEAK_VOLUME_ML


@dataclass(frozen=True)
class LesionTable:
    """The lesions found by :func:`detect_lesions` and how they were found.

    Attributes
    ----------
    lesions : tuple of Lesion
        By decreasing volume; ``lesion_id`` is the value in ``labels``.
    labels : Labels
        Lesion label map on the image grid (``{1: "lesion_1", ...}``).
    reference : ReferenceRegion
        The region the threshold is relative to.
    threshold : float
        The level applied, in ``unit``.
    unit : str
        Unit of the image searched (``MBq/mL`` or ``g/mL``).
    liver, spleen : ReferenceRegion or None
        The means behind ``tlr`` and ``tsr`` (in ``unit``).
    liver_mean_suv, spleen_mean_suv : float or None
        The same means in SUVbw, g/mL.
    sul_formula : str or None
        LBM formula of the ``sul_*`` columns.
    excluded_regions : tuple of str
        Labels present that were excluded from the search.
    dilated_regions : tuple of str
        Those of them dilated by the exclusion margin (mean uptake >= threshold).
    region_levels : mapping of str to float
        Regions whose own normal uptake raised the threshold inside them, with
        the level used there, in ``unit``.
    settings : DetectionSettings
    fwhm_mm : float
    notes : tuple of str
        What could not be computed, and why.
    """

    lesions: tuple[Lesion, ...]
    labels: Labels
    reference: ReferenceRegion
    threshold: float
    unit: str
    liver: ReferenceRegion | None
    spleen: ReferenceRegion | None
    liver_mean_suv: float | None
    spleen_mean_suv: float | None
    sul_formula: str | None
    excluded_regions: tuple[str, ...]
    dilated_regions: tuple[str, ...]
    region_levels: Mapping[str, float]
    settings: DetectionSettings
    fwhm_mm: float
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.lesions)

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names of :meth:`rows` (``sul_*`` only when SUL was asked for)."""
        skip = () if self.sul_formula else ("sul_max", "sul_mean", "sul_peak")
        return tuple(c for c in COLUMNS if c not in skip)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per lesion, keys :attr:`columns` (units in :data:`COLUMNS`)."""
        in_mbq = self.unit == Quantity.ACTIVITY_CONCENTRATION.unit
        liver_mbq = self.liver.mean if (self.liver and in_mbq) else None
        spleen_mbq = self.spleen.mean if (self.spleen and in_mbq) else None
        out = []
        for les in self.lesions:
            x, y, z = les.centroid_mm
            row = {
                "lesion_id": les.lesion_id,
                "site": les.site,
                "region": les.region,
                "volume_ml": les.volume_ml,
                "centroid_x_mm": x,
                "centroid_y_mm": y,
                "centroid_z_mm": z,
                "max_mbq_per_ml": les.max_mbq_per_ml,
                "mean_mbq_per_ml": les.mean_mbq_per_ml,
                "peak_mbq_per_ml": les.peak_mbq_per_ml,
                "suv_max": les.suv_max,
                "suv_mean": les.suv_mean,
                "suv_peak": les.suv_peak,
                "sul_max": les.sul_max,
                "sul_mean": les.sul_mean,
                "sul_peak": les.sul_peak,
                "tlr": les.tlr,
                "tsr": les.tsr,
                "liver_mean_mbq_per_ml": liver_mbq,
                "spleen_mean_mbq_per_ml": spleen_mbq,
                "liver_mean_suv": self.liver_mean_suv,
                "spleen_mean_suv": self.spleen_mean_suv,
                "small_for_peak": les.small_for_peak,
            }
            out.append({c: row[c] for c in self.columns})
        return out


# ------------------------------------------------------------------ helpers


def _check_image(image: Image) -> None:
    if not isinstance(image, Image):
        raise QuantityError("image", "must be an Image", type(image).__name__)
    if image.quantity not in _CONCENTRATIONS:
        raise QuantityError(
            "image.quantity",
            "lesion detection needs an uptake concentration (MBq/mL, SUVbw or SUL)",
            image.quantity.value,
            "calibrate counts first (Image.to_activity_concentration)",
        )


def _on_grid(labels: Labels, image: Image) -> Labels:
    if not isinstance(labels, Labels):
        raise LesionDetectionError(
            "labels",
            "must be Labels",
            type(labels).__name__,
            "read the organ label map with theranet.io.read_labels",
        )
    return labels if labels.image.same_grid(image) else labels.resample_to(image)


def _names_mask(labels: Labels, patterns: Sequence[str]) -> tuple[NDArray[np.bool_], list[str]]:
    """Union of the labels whose names match ``patterns``, and those names."""
    present = labels.present()
    values = [v for v, n in labels.names.items() if n in present and matches_any(n, patterns)]
    names = [labels.names[v] for v in values]
    data = np.asarray(labels.image.data)
    return np.isin(data, values), names


def _depth_mm(mask: NDArray[np.bool_], spacing_mm: NDArray[np.float64]) -> NDArray[np.float64]:
    """Distance of each voxel centre of ``mask`` from the region's boundary, mm.

    The distance to the nearest voxel centre outside, less half the smallest voxel
    side (the boundary lies half a voxel beyond the last centre). 0 outside.
    """
    out = np.zeros(mask.shape, dtype=np.float64)
    if not mask.any():
        return out
    box = ndimage.find_objects(mask.astype(np.int8))[0]
    padded = np.pad(mask[box], 1, constant_values=False)
    d = ndimage.distance_transform_edt(padded, sampling=spacing_mm)[1:-1, 1:-1, 1:-1]
    out[box] = np.where(mask[box], d - float(np.min(spacing_mm)) / 2.0, 0.0)
    return out


def _near_mm(
    mask: NDArray[np.bool_], spacing_mm: NDArray[np.float64], margin_mm: float
) -> NDArray[np.bool_]:
    """Voxels of ``mask`` or whose centre lies within ``margin_mm`` of its voxels' centres."""
    if margin_mm <= 0 or not mask.any():
        return mask.copy()
    d = ndimage.distance_transform_edt(~mask, sampling=spacing_mm)
    return d <= margin_mm


def _robust(values: NDArray[np.float64]) -> tuple[float, float]:
    """Median and 1.4826 x median absolute deviation (0 when most values are equal)."""
    med = float(np.median(values))
    return med, _MAD_TO_SD * float(np.median(np.abs(values - med)))


def _structure(connectivity: int) -> NDArray[np.bool_]:
    return ndimage.generate_binary_structure(3, {6: 1, 18: 2, 26: 3}[connectivity])


def _lesion_like(
    data: NDArray[np.float64],
    core: NDArray[np.bool_],
    settings: DetectionSettings,
    voxel_ml: float,
) -> NDArray[np.bool_]:
    """Clusters of outlier voxels in ``core`` of at least ``min_volume_ml``."""
    med, rsd = _robust(data[core])
    # more than half the voxels equal (noise-free data): any other value is an outlier
    margin = settings.outlier_sd * rsd if rsd > 0 else 1e-6 * abs(med)
    outliers = core & (np.abs(data - med) > margin)
    # hot and cold clusters apart: a hot lesion and a cold one never merge
    keep = np.zeros_like(core)
    min_voxels = _min_voxels(settings.min_volume_ml, voxel_ml)
    structure = _structure(settings.connectivity)
    for side in (outliers & (data > med), outliers & (data < med)):
        comp, n = ndimage.label(side, structure=structure)
        if n:
            sizes = np.bincount(comp.ravel(), minlength=n + 1)
            big = np.flatnonzero(sizes >= min_voxels)
            big = big[big > 0]
            keep |= np.isin(comp, big)
    return keep


def _ball(spacing_mm: NDArray[np.float64], radius_mm: float) -> NDArray[np.bool_]:
    half = np.floor(radius_mm / spacing_mm + 1e-9).astype(int)
    axes = [np.arange(-h, h + 1) * s for h, s in zip(half, spacing_mm, strict=True)]
    g = np.meshgrid(*axes, indexing="ij")
    return (g[0] ** 2 + g[1] ** 2 + g[2] ** 2) <= radius_mm**2 * (1.0 + 1e-9)


def _sphere_in(
    data: NDArray[np.float64],
    clean: NDArray[np.bool_],
    image: Image,
    diameter_mm: float,
) -> tuple[NDArray[np.bool_], tuple[float, float, float]] | None:
    """The sphere (voxel centres within the radius) inside ``clean`` whose mean is
    the median of all such spheres' means; None when none fits."""
    from scipy.signal import fftconvolve

    radius = diameter_mm / 2.0
    spacing = image.spacing_mm
    ball = _ball(spacing, radius)
    # centres: every ball voxel inside clean (erosion by the ball itself)
    box = ndimage.find_objects(clean.astype(np.int8))[0]
    half = np.array(ball.shape) // 2
    lo = np.maximum([s.start for s in box] - half, 0)
    hi = np.minimum([s.stop for s in box] + half, clean.shape)
    sub = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    cl = clean[sub]
    centres = ndimage.binary_erosion(cl, structure=ball, border_value=0)
    if not centres.any():
        return None
    k = ball.astype(np.float64)[::-1, ::-1, ::-1]
    sums = fftconvolve(np.where(cl, data[sub], 0.0), k, mode="same")
    means = sums[centres] / float(ball.sum())
    target = float(np.median(means))
    pick = int(np.argmin(np.abs(means - target)))  # first in array order on ties
    idx = np.argwhere(centres)[pick]
    mask_sub = np.zeros(cl.shape, dtype=bool)
    sl = tuple(slice(int(i - h), int(i + h + 1)) for i, h in zip(idx, half, strict=True))
    mask_sub[sl] = ball
    mask = np.zeros(clean.shape, dtype=bool)
    mask[sub] = mask_sub
    centre = image.index_to_lps(idx + lo)
    return mask, (float(centre[0]), float(centre[1]), float(centre[2]))


def reference_region(
    image: Image,
    labels: Labels,
    *,
    fwhm_mm: float,
    reference: str = "liver",
    settings: DetectionSettings | None = None,
) -> ReferenceRegion:
    """Mean and SD of a reference region: eroded label, lesion-like voxels removed.

    Parameters
    ----------
    image : Image
        Uptake concentration (MBq/mL, SUVbw or SUL).
    labels : Labels
        Organ labels; resampled nearest-neighbour to the image grid if needed.
    fwhm_mm : float
        System resolution (reconstructed FWHM), mm: the default erosion, and the
        spill margin removed around lesion-like voxels.
    reference : {"liver", "blood_pool", "spleen"}
        Which region: labels :data:`LIVER_REGIONS`, :data:`BLOOD_POOL_REGIONS` or
        :data:`SPLEEN_REGIONS`.
    settings : DetectionSettings, optional
        ``reference_method``, ``sphere_diameter_mm``, ``reference_margin_mm``,
        ``outlier_sd``, ``min_volume_ml`` and ``connectivity`` are used. The
        spleen is always ``"eroded"`` without outlier removal (it is no lesion
        search region).

    Returns
    -------
    ReferenceRegion

    Raises
    ------
    ReferenceRegionError
        The label is absent (the message names the label to supply), or no voxel
        is left after erosion and lesion removal.
    QuantityError
        The image is not an uptake concentration.
    """
    _check_image(image)
    settings = settings or DetectionSettings()
    fwhm = positive(LesionDetectionError, "fwhm_mm", fwhm_mm, "mm")
    return _reference(image, _on_grid(labels, image), fwhm, reference, settings)


def _reference(
    image: Image, labels: Labels, fwhm_mm: float, which: str, settings: DetectionSettings
) -> ReferenceRegion:
    patterns = {
        "liver": LIVER_REGIONS,
        "blood_pool": BLOOD_POOL_REGIONS,
        "spleen": SPLEEN_REGIONS,
    }.get(which)
    if patterns is None:
        raise LesionDetectionError(
            "reference", "unknown reference region", which, "use 'liver', 'blood_pool' or 'spleen'"
        )
    region, names = _names_mask(labels, patterns)
    if not names:
        want = {
            "liver": "a region named 'liver'",
            "blood_pool": "a region named 'heart_blood' or 'aorta'",
            "spleen": "a region named 'spleen'",
        }[which]
        alt = (
            "; or use the blood-pool reference (ThresholdRule('blood_pool', ...), e.g. "
            "PERCIST_BLOOD_POOL) with a 'heart_blood' or 'aorta' label"
            if which == "liver"
            else ""
        )
        raise ReferenceRegionError(
            "labels",
            f"no {which.replace('_', ' ')} reference region",
            sorted(labels.present()),
            f"supply an organ label map with {want} (e.g. from TotalSegmentator){alt}",
        )
    data = np.asarray(image.data, dtype=np.float64)
    if not np.all(np.isfinite(data[region])):
        raise ImageDataError(
            "image.data",
            f"non-finite values in the {which} region",
            None,
            "repair or mask the voxels",
        )
    margin = fwhm_mm if settings.reference_margin_mm is None else settings.reference_margin_mm
    spacing = image.spacing_mm
    core = region & (_depth_mm(region, spacing) >= margin - 1e-9)
    if not core.any():
        raise ReferenceRegionError(
            "reference_margin_mm",
            f"no {which} voxel lies {margin:g} mm inside its label",
            margin,
            "give a smaller reference_margin_mm, or check the label map",
        )
    voxel_ml = image.voxel_volume_ml
    clean = core
    if which != "spleen":
        lesion_like = _lesion_like(data, core, settings, voxel_ml)
        if lesion_like.any():
            clean = core & ~_near_mm(lesion_like, spacing, fwhm_mm)
    if not clean.any():
        raise ReferenceRegionError(
            which,
            "every voxel is lesion-like or near a lesion",
            None,
            "check the label map, or give a smaller outlier margin (outlier_sd)",
        )
    excluded_ml = float(np.count_nonzero(core & ~clean)) * voxel_ml
    method, centre, used = "eroded", None, clean
    if which != "spleen" and settings.reference_method == "sphere":
        found = _sphere_in(data, clean, image, settings.sphere_diameter_mm)
        if found is None:
            raise ReferenceRegionError(
                "sphere_diameter_mm",
                f"no {settings.sphere_diameter_mm:g} mm sphere fits in the normal {which}",
                settings.sphere_diameter_mm,
                "use reference_method='eroded', or a smaller reference_margin_mm",
            )
        used, centre = found
        method = "sphere"
    values = data[used]
    sd = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return ReferenceRegion(
        name=which,
        labels=tuple(names),
        method=method,
        mean=float(values.mean()),
        sd=sd,
        n_voxels=int(values.size),
        volume_ml=float(values.size) * voxel_ml,
        unit=image.unit,
        excluded_ml=excluded_ml,
        sphere_centre_mm=centre,
        mask=used,
    )


def peak_concentration(image: Image, mask: ArrayLike) -> float:
    """Peak: the largest mean in a 1 cm^3 sphere centred on a voxel of ``mask``.

    Parameters
    ----------
    image : Image
        Uptake concentration (MBq/mL, SUVbw or SUL).
    mask : ndarray of bool, shape of the image
        The lesion.

    Returns
    -------
    float
        In the image's unit. Each voxel is weighted by its fraction inside the
        sphere (clinical.md §4.1); this is
        :func:`theranet.response.measure.sul_peak`, whose mean is linear in the
        voxel values and so holds for any concentration.

    Raises
    ------
    QuantityError
        For an image that is not an uptake concentration.
    """
    from theranet.response.measure import sul_peak

    _check_image(image)
    as_sul = image if image.quantity is Quantity.SUL else image.replace(quantity=Quantity.SUL)
    return sul_peak(as_sul, np.asarray(mask))


def lesion_site(region_voxels: Mapping[str | None, int]) -> tuple[str, str]:
    """Site of a lesion from the voxel count of each organ label it covers.

    Parameters
    ----------
    region_voxels : mapping
        Label name (None for voxels without a label) -> number of lesion voxels.

    Returns
    -------
    (site, region) : tuple of str
        ``site`` in :data:`SITES` (module notes: the site with most voxels; ties in
        the order of :data:`SITES`); ``region`` the label with most voxels
        (``"none"`` for unlabelled voxels).

    Examples
    --------
    >>> lesion_site({"liver": 30, None: 10})
    ('liver', 'liver')
    >>> lesion_site({"red_marrow": 5, "cortical_bone": 4, "remainder": 7})
    ('bone', 'remainder')
    """
    votes = dict.fromkeys(SITES, 0)
    for name, n in region_voxels.items():
        votes[_site_of(name)] += int(n)
    site = max(SITES, key=lambda s: (votes[s], -SITES.index(s)))
    top = max(region_voxels.items(), key=lambda kv: kv[1], default=(None, 0))[0]
    return site, "none" if top is None else str(top)


def _site_of(name: str | None) -> str:
    if name is None or matches_any(name, SOFT_TISSUE_REGIONS):
        return "node"
    if matches_any(name, (*LIVER_REGIONS, "liver_*")):
        return "liver"
    if matches_any(name, ("pancrea*",)):
        return "pancreas"
    if matches_any(name, BONE_REGIONS):
        return "bone"
    return "other"


def _as_suv(image: Image, kind: str, formula: str) -> Image:
    want = Quantity.SUVBW if kind == "bw" else Quantity.SUL
    if image.quantity is want:
        return image
    if image.quantity is not Quantity.ACTIVITY_CONCENTRATION:
        raise QuantityError(
            "image.quantity",
            f"cannot convert {image.quantity.value} to {want.value}",
            image.quantity.value,
            "pass the image in MBq/mL",
        )
    return image.to_suv(kind, lbm_formula=formula)


def _stats(
    data: NDArray[np.float64], image: Image, mask: NDArray[np.bool_]
) -> tuple[float, float, float]:
    values = data[mask]
    return float(values.max()), float(values.mean()), peak_concentration(image, mask)


def _min_voxels(min_volume_ml: float, voxel_ml: float) -> int:
    # relative tolerance: a component of exactly min_volume_ml counts (as threshold_lesions)
    return max(1, math.ceil(min_volume_ml / voxel_ml * (1.0 - 1e-9)))


def _peaks(
    data: NDArray[np.float64],
    region: NDArray[np.bool_],
    base_level: float,
    depth: float,
    min_voxels: int,
    structure: NDArray[np.bool_],
    levels: int,
) -> list[NDArray[np.bool_]]:
    """Masks of the separate peaks of ``region`` (the region itself when one)."""
    top = float(data[region].max())
    for level in np.linspace(base_level, top, levels + 2)[1:-1]:
        parts, n = ndimage.label(region & (data >= level), structure=structure)
        if n < 2:
            if n == 0 or np.count_nonzero(parts) < min_voxels:
                break
            continue
        index = np.arange(1, n + 1)
        sizes = np.bincount(parts.ravel(), minlength=n + 1)[1:]
        maxima = np.asarray(ndimage.maximum(data, parts, index), dtype=np.float64)
        deep = (sizes >= min_voxels) & (maxima - level >= depth * (maxima - base_level))
        if np.count_nonzero(deep) >= 2:
            out = []
            for value in index[deep]:
                out += _peaks(
                    data, parts == value, base_level, depth, min_voxels, structure, levels
                )
            return out
        if not np.any(sizes >= min_voxels):
            break
    return [region]


def split_components(
    data: ArrayLike,
    components: ArrayLike,
    *,
    base_level: float,
    depth: float = 0.5,
    min_voxels: int = 1,
    connectivity: int = 26,
    levels: int = 32,
) -> NDArray[np.int32]:
    """Split connected components that hold several separate peaks.

    Parameters
    ----------
    data : ndarray of shape (A0, A1, A2)
        Uptake values (any unit).
    components : ndarray of int, same shape
        Component labels (0 = background), e.g. from
        :func:`~theranet.imaging.segment.threshold_lesions`.
    base_level : float
        The threshold the components were cut at, unit of ``data``.
    depth : float
        In (0, 1]: two peaks are separate when, at some level ``L`` above
        ``base_level``, they fall into different parts of at least
        ``min_voxels`` voxels and each part's maximum ``M`` satisfies
        ``M - L >= depth x (M - base_level)`` (the valley between them goes at
        least ``depth`` of the way down to the threshold).
    min_voxels : int
        Smallest part that counts as a peak.
    connectivity : {6, 18, 26}
    levels : int
        Levels tried between ``base_level`` and each component's maximum.

    Returns
    -------
    ndarray of int32, shape of ``data``
        Components renumbered 1..n (array order of first voxels is not kept);
        a split component's voxels go to its peaks by a watershed from the peaks
        over decreasing uptake (:func:`scipy.ndimage.watershed_ift`).

    Examples
    --------
    Two hot spots joined by a valley at 2 (threshold 1, peaks 10): split; the
    bottom of the valley goes to one of them.

    >>> d = np.array([[[10, 10, 2, 10, 10]]], float)
    >>> split_components(d, (d >= 1).astype(int), base_level=1.0).tolist()
    [[[1, 1, 2, 2, 2]]]
    """
    values = np.asarray(data, dtype=np.float64)
    comp = np.asarray(components)
    structure = _structure(connectivity)
    out = np.zeros(comp.shape, dtype=np.int32)
    next_value = 1
    for value0, box in enumerate(ndimage.find_objects(comp.astype(np.int64, copy=False))):
        if box is None:
            continue
        region = comp[box] == value0 + 1
        sub = values[box]
        peaks = _peaks(sub, region, base_level, depth, min_voxels, structure, levels)
        if len(peaks) == 1:
            out[box][region] = next_value
            next_value += 1
            continue
        markers = np.zeros(region.shape, dtype=np.int16)
        for k, peak in enumerate(peaks):
            markers[peak] = k + 1
        markers[~region] = -1  # outside the component: a basin of its own, dropped
        top, low = float(sub[region].max()), float(sub[region].min())
        cost = np.zeros(region.shape, dtype=np.uint16)
        scale = 65534.0 / (top - low) if top > low else 0.0
        cost[region] = np.rint((top - sub[region]) * scale).astype(np.uint16)
        cost[~region] = 65535
        basins = ndimage.watershed_ift(cost, markers, structure=structure)
        for k in range(1, len(peaks) + 1):
            out[box][region & (basins == k)] = next_value
            next_value += 1
    return out


def _measurable(
    components: NDArray,
    image: Image,
    level_map: NDArray[np.float64],
    zone: _Zone,
    noise_sd: float,
    fwhm_mm: float,
    settings: DetectionSettings,
) -> tuple[NDArray[np.int32], int]:
    """Components that pass the peak, local-background and spill-tail tests,
    renumbered 1..n; and the number dropped."""
    comp = np.asarray(components, dtype=np.int64)
    data = np.asarray(image.data, dtype=np.float64)
    spacing = image.spacing_mm
    reach = np.ceil(fwhm_mm / spacing).astype(int) + 1
    out = np.zeros(comp.shape, dtype=np.int32)
    kept = dropped = 0
    for value0, box in enumerate(ndimage.find_objects(comp)):
        if box is None:
            continue
        big = tuple(
            slice(max(b.start - r, 0), min(b.stop + r, n))
            for b, r, n in zip(box, reach, comp.shape, strict=True)
        )
        local = comp[big] == value0 + 1
        ok = True
        if settings.peak_above_threshold or settings.local_k_sd is not None:
            mask = np.zeros(comp.shape, dtype=bool)
            mask[big] = local
            peak = peak_concentration(image, mask)
            if settings.peak_above_threshold:
                ok = peak >= float(np.median(level_map[big][local]))
            if ok and settings.local_k_sd is not None:
                shell = _near_mm(local, spacing, fwhm_mm) & (comp[big] == 0) & ~zone.mask[big]
                if shell.any():
                    background = float(np.median(data[big][shell]))
                    ok = peak >= background + settings.local_k_sd * noise_sd
        if ok and settings.drop_spill_tails:
            ok = not _spill_tail(data[big], local, zone.hot[big])
        if ok:
            kept += 1
            out[big][local] = kept
        else:
            dropped += 1
    return out, dropped


def _spill_tail(data: NDArray[np.float64], mask: NDArray[np.bool_], hot: NDArray[np.bool_]) -> bool:
    """True when the component's uptake rises towards a hot excluded organ: its
    voxels next to the organ's zone are on average at least as high as the others."""
    if not hot.any():
        return False
    border = mask & ndimage.binary_dilation(hot, structure=_structure(26))
    if not border.any():
        return False
    inner = mask & ~border
    if not inner.any():
        return True
    return float(data[border].mean()) >= float(data[inner].mean())


def _ordered_labels(components: NDArray, image: Image, found: Labels, step: str) -> Labels:
    """Lesions ``lesion_1``... by decreasing volume (ties: higher maximum, then the
    first voxel in array order), as threshold_lesions orders them."""
    comp = np.asarray(components, dtype=np.int64)
    n = int(comp.max(initial=0))
    out = np.zeros(comp.shape, dtype=np.int32)
    if n:
        index = np.arange(1, n + 1)
        counts = np.bincount(comp.ravel(), minlength=n + 1)[1:]
        peaks = np.asarray(ndimage.maximum(np.asarray(image.data), comp, index), np.float64)
        flat = comp.ravel()
        first = np.full(n + 1, flat.size, dtype=np.int64)
        nz = np.flatnonzero(flat)
        ids, at = np.unique(flat[nz], return_index=True)
        first[ids] = nz[at]
        order = np.lexsort((first[index], -peaks, -counts))
        new_value = np.zeros(n + 1, dtype=np.int32)
        new_value[index[order]] = np.arange(1, n + 1, dtype=np.int32)
        out = new_value[comp]
    names = {k: f"lesion_{k}" for k in range(1, n + 1)}
    img = found.image.replace(data=out, provenance=found.image.provenance.with_step(step))
    return Labels(img, names)


# ------------------------------------------------------------------ detection


def detect_lesions(
    image: Image,
    labels: Labels,
    *,
    fwhm_mm: float,
    settings: DetectionSettings | None = None,
    within: ArrayLike | None = None,
    sul_formula: str | None = None,
) -> LesionTable:
    """Find and measure the lesions of a diagnostic uptake image.

    Parameters
    ----------
    image : Image
        SSTR PET, 111In/MIBG SPECT... as activity concentration (MBq/mL), SUVbw
        or SUL.
    labels : Labels
        Organ labels (no lesions), on any grid: resampled nearest-neighbour to
        the image grid. Must hold the reference region (``liver`` by default).
    fwhm_mm : float
        Reconstructed system resolution, mm: the default erosion of the reference
        region and dilation of the excluded organs.
    settings : DetectionSettings, optional
        Threshold rule, reference method, exclusions, minimum volume and
        connectivity; default ``DetectionSettings()`` (module notes).
    within : ndarray of bool, optional
        Search region on the image grid (e.g. the body); default the whole image.
    sul_formula : {"janmahasatian", "james128"}, optional
        Also give SUL max/mean/peak with this lean-body-mass formula.

    Returns
    -------
    LesionTable

    Raises
    ------
    QuantityError
        The image is not an uptake concentration.
    ReferenceRegionError
        The reference label (``liver``, or ``heart_blood``/``aorta``) is missing
        or has no usable voxel; the message names the label to supply.
    LesionDetectionError
        A parameter out of range.
    MissingFieldError, TimingError
        SUL asked for on an image without weight, height, sex, activity or
        injection time.

    Examples
    --------
    >>> table = detect_lesions(pet, organ_labels, fwhm_mm=6.5)  # doctest: +SKIP
    >>> table.rows()[0]["suv_max"]  # doctest: +SKIP
    """
    _check_image(image)
    settings = settings or DetectionSettings()
    if not isinstance(settings, DetectionSettings):
        raise LesionDetectionError("settings", "must be DetectionSettings", type(settings).__name__)
    fwhm = positive(LesionDetectionError, "fwhm_mm", fwhm_mm, "mm")
    if sul_formula is not None and sul_formula not in _SUL_FORMULAS:
        raise LesionDetectionError(
            "sul_formula",
            "unknown lean-body-mass formula",
            sul_formula,
            f"use one of {_SUL_FORMULAS}",
        )
    labels = _on_grid(labels, image)
    rule = settings.rule
    ref = _reference(image, labels, fwhm, rule.reference, settings)
    level = rule.factor * ref.mean + rule.k_sd * ref.sd
    if not (math.isfinite(level) and level > 0):
        raise ReferenceRegionError(
            rule.reference,
            "the reference mean is not positive",
            ref.mean,
            "check the image and the reference label",
        )

    data = np.asarray(image.data, dtype=np.float64)
    margin = fwhm if settings.exclusion_margin_mm is None else settings.exclusion_margin_mm
    zone = _exclusion(data, labels, settings, level, margin)
    level_map, region_levels = _level_map(data, labels, settings, level, ref, zone.mask)
    search = data > level_map  # above normal uptake: the level itself is not a lesion
    if within is not None:
        within = np.asarray(within)
        if within.shape != image.shape:
            raise GeometryError(
                "within",
                f"shape must be that of the image {image.shape}",
                within.shape,
                "give a mask on the image grid",
            )
        search &= within.astype(bool)
    region = ~zone.mask if within is None else within.astype(bool) & ~zone.mask
    bad = region & ~np.isfinite(data)
    if bad.any():
        raise ImageDataError(
            "image.data",
            "non-finite values in the search region",
            int(np.count_nonzero(bad)),
            "replace NaN/inf voxels (e.g. outside the field of view) by 0",
        )
    found = threshold_lesions(
        image,
        level,
        relative_to="absolute",
        within=search,
        exclude=zone.mask,
        min_volume_ml=settings.min_volume_ml,
        connectivity=settings.connectivity,
    )
    step = (
        f"lesions: > {rule.describe()} = {level:.6g} {image.unit} ({rule.source}); "
        f"{ref.name} {ref.method} mean {ref.mean:.6g} SD {ref.sd:.6g}; raised in "
        f"{', '.join(f'{k} ({v:.6g})' for k, v in region_levels.items()) or 'no region'}; "
        f"excluded {', '.join(zone.names) or 'none'}; dilated by {margin:g} mm: "
        f"{', '.join(zone.dilated) or 'none'}"
    )
    components = np.asarray(found.image.data)
    if settings.split_depth is not None:
        components = split_components(
            data,
            components,
            base_level=level,
            depth=settings.split_depth,
            min_voxels=_min_voxels(settings.min_volume_ml, image.voxel_volume_ml),
            connectivity=settings.connectivity,
        )
        step += f"; split at valleys >= {settings.split_depth:g} of the way down to the threshold"
    components, dropped = _measurable(components, image, level_map, zone, ref.sd, fwhm, settings)
    step += f"; {dropped} dropped (peak test, local background or spill tail)"
    lesion_labels = _ordered_labels(components, image, found, step)

    notes: list[str] = []
    liver = (
        ref
        if ref.name == "liver"
        else _optional_reference(image, labels, fwhm, "liver", settings, notes)
    )
    spleen = _optional_reference(image, labels, fwhm, "spleen", settings, notes)
    suv = None
    try:
        suv = _as_suv(image, "bw", "janmahasatian")
    except (MissingFieldError, TimingError, QuantityError, NuclideError) as exc:
        notes.append(f"SUVbw not computed: {exc}")
    sul = _as_suv(image, "lbm", sul_formula) if sul_formula else None

    lesions = _measure(image, labels, lesion_labels, suv, sul, liver, spleen)
    liver_suv = spleen_suv = None
    if suv is not None:
        sd = np.asarray(suv.data, dtype=np.float64)
        liver_suv = float(sd[liver.mask].mean()) if liver is not None else None
        spleen_suv = float(sd[spleen.mask].mean()) if spleen is not None else None
    logger.debug(step)
    return LesionTable(
        lesions=tuple(lesions),
        labels=lesion_labels,
        reference=ref,
        threshold=float(level),
        unit=image.unit,
        liver=liver,
        spleen=spleen,
        liver_mean_suv=liver_suv,
        spleen_mean_suv=spleen_suv,
        sul_formula=sul_formula,
        excluded_regions=tuple(zone.names),
        dilated_regions=tuple(zone.dilated),
        region_levels=dict(region_levels),
        settings=settings,
        fwhm_mm=fwhm,
        notes=tuple(notes),
    )


@dataclass(frozen=True)
class _Zone:
    mask: NDArray[np.bool_]  # never searched
    hot: NDArray[np.bool_]  # the dilated organs whose mean reaches the threshold
    names: list[str]
    dilated: list[str]


def _exclusion(
    data: NDArray[np.float64],
    labels: Labels,
    settings: DetectionSettings,
    level: float,
    margin_mm: float,
) -> _Zone:
    """The excluded organs; those whose mean reaches ``level`` dilated by ``margin_mm``."""
    organs, names = _names_mask(labels, settings.excluded_organs)
    lab = np.asarray(labels.image.data)
    hot = np.zeros(organs.shape, dtype=bool)
    dilated = []
    for name in names:
        m = lab == labels.value_of(name)
        if float(data[m].mean()) >= level:
            hot |= m
            dilated.append(name)
    hot = _near_mm(hot, labels.image.spacing_mm, margin_mm)
    return _Zone(organs | hot, hot, names, dilated)


def _level_map(
    data: NDArray[np.float64],
    labels: Labels,
    settings: DetectionSettings,
    level: float,
    ref: ReferenceRegion,
    excluded: NDArray[np.bool_],
) -> tuple[NDArray[np.float64], dict[str, float]]:
    """The threshold of every voxel: ``level``, raised inside a searched region
    whose own normal uptake (robust median and SD) takes the rule above it."""
    out = np.full(data.shape, level, dtype=np.float64)
    raised: dict[str, float] = {}
    if not settings.organ_background:
        return out, raised
    rule = settings.rule
    lab = np.asarray(labels.image.data)
    min_voxels = 2 * _min_voxels(
        settings.min_volume_ml, float(np.prod(labels.image.spacing_mm)) / 1000.0
    )
    for value, name in labels.names.items():
        if name in ref.labels or matches_any(name, settings.excluded_organs):
            continue
        m = (lab == value) & ~excluded
        if np.count_nonzero(m) < min_voxels:
            continue
        med, rsd = _robust(data[m])
        own = rule.factor * med + rule.k_sd * rsd
        if own > level:
            out[m] = own
            raised[name] = own
    return out, raised


def _optional_reference(
    image: Image,
    labels: Labels,
    fwhm_mm: float,
    which: str,
    settings: DetectionSettings,
    notes: list[str],
) -> ReferenceRegion | None:
    try:
        return _reference(image, labels, fwhm_mm, which, settings)
    except ReferenceRegionError as exc:
        ratio = "tlr" if which == "liver" else "tsr"
        notes.append(f"{ratio} not computed: {exc}")
        return None


def _measure(
    image: Image,
    labels: Labels,
    lesion_labels: Labels,
    suv: Image | None,
    sul: Image | None,
    liver: ReferenceRegion | None,
    spleen: ReferenceRegion | None,
) -> list[Lesion]:
    lab = np.asarray(lesion_labels.image.data)
    organ = np.asarray(labels.image.data).astype(np.int64, copy=False)
    data = np.asarray(image.data, dtype=np.float64)
    in_mbq = image.quantity is Quantity.ACTIVITY_CONCENTRATION
    suv_data = None if suv is None else np.asarray(suv.data, dtype=np.float64)
    sul_data = None if sul is None else np.asarray(sul.data, dtype=np.float64)
    voxel_ml = image.voxel_volume_ml
    out = []
    for value in sorted(lesion_labels.names):
        mask = lab == value
        idx = np.argwhere(mask)
        centroid = image.index_to_lps(idx.mean(axis=0))
        counts = np.bincount(organ[mask])
        region_voxels: dict[str | None, int] = {}
        for v in np.flatnonzero(counts):
            name = labels.names.get(int(v)) if v > 0 else None
            region_voxels[name] = region_voxels.get(name, 0) + int(counts[v])
        site, region = lesion_site(region_voxels)
        mx, mean, peak = _stats(data, image, mask)
        suv_stats = _stats(suv_data, suv, mask) if suv is not None else (None, None, None)
        sul_stats = _stats(sul_data, sul, mask) if sul is not None else (None, None, None)
        out.append(
            Lesion(
                lesion_id=int(value),
                name=lesion_labels.names[value],
                site=site,
                region=region,
                volume_ml=float(idx.shape[0]) * voxel_ml,
                centroid_mm=(float(centroid[0]), float(centroid[1]), float(centroid[2])),
                n_voxels=int(idx.shape[0]),
                max_mbq_per_ml=mx if in_mbq else None,
                mean_mbq_per_ml=mean if in_mbq else None,
                peak_mbq_per_ml=peak if in_mbq else None,
                suv_max=suv_stats[0],
                suv_mean=suv_stats[1],
                suv_peak=suv_stats[2],
                sul_max=sul_stats[0],
                sul_mean=sul_stats[1],
                sul_peak=sul_stats[2],
                tlr=mx / liver.mean if liver is not None and liver.mean > 0 else None,
                tsr=mx / spleen.mean if spleen is not None and spleen.mean > 0 else None,
            )
        )
    return out
