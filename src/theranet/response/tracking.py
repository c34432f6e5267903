"""Lesion identity over studies: which follow-up lesion is which baseline lesion.

Rules
-----
Lesions
    Every non-zero value present in a label map is one lesion, identified by that
    value (its name is ``labels.names[value]``).
Common space
    The follow-up label map is sampled on the baseline grid (nearest neighbour).
    ``transform`` maps *baseline* physical points (LPS, mm) to *follow-up*
    physical points, as :attr:`theranet.imaging.register.Registration.transform`
    does when the baseline CT is the fixed image and the follow-up CT the moving
    one; without it the two label maps are taken to share a frame of reference.
Overlap
    For each baseline lesion ``B`` and follow-up lesion ``F`` (sampled on the
    baseline grid), ``Dice = 2 |B n F| / (|B| + |F|)``. Pairs with
    ``Dice >= min_overlap`` are linked.
Splits and merges
    A baseline lesion linked to several follow-up lesions has split; several
    baseline lesions linked to one follow-up lesion have merged. Where links form
    a more tangled group, the weakest link (lowest Dice) whose removal leaves both
    its lesions linked to something is dropped, repeatedly, until every follow-up
    lesion belongs to one baseline lesion or every baseline lesion of the group to
    one follow-up lesion.
Distance fallback
    Baseline and follow-up lesions left without a link are paired one to one by
    centroid distance, closest pair first, up to ``max_distance_mm``: the baseline
    centroid is mapped into the follow-up frame through ``transform`` and compared
    with the follow-up centroid (a rigid transform keeps distances). The fallback
    never creates a split or merge, so a lesion that appears next to a known one
    stays new.
RECIST 1.1 bookkeeping (Eisenhauer et al. 2009 and the RECIST 1.1 FAQ)
    Follow-up diameters are booked against baseline ids by
    :meth:`Matching.baseline_diameters_mm`: a matched lesion keeps its diameter; a
    fragmented lesion gets the sum of its fragments' diameters; coalesced lesions
    book the merged lesion's diameter against the first (lowest) baseline id and
    0 mm against the others; a disappeared lesion is 0 mm. New lesions are not
    target lesions: they are listed in :attr:`Matching.new` and get ids above the
    baseline's (:meth:`Matching.lesion_ids`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from theranet.errors import GeometryError
from theranet.image import Labels
from theranet.response.measure import MeasurementError

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

__all__ = ["Match", "Matching", "Merge", "Split", "match_lesions"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Match:
    """One baseline lesion that is one follow-up lesion.

    Attributes
    ----------
    baseline, follow_up : int
        Label values in the baseline and follow-up maps.
    dice : float
        Dice overlap on the baseline grid (0 when matched by distance).
    distance_mm : float
        Centroid distance in the follow-up frame, mm.
    by : {"overlap", "distance"}
        Which rule matched them.
    """

    baseline: int
    follow_up: int
    dice: float
    distance_mm: float
    by: str


@dataclass(frozen=True)
class Split:
    """A baseline lesion that fragmented into several follow-up lesions.

    Attributes
    ----------
    baseline : int
    follow_ups : tuple of int
        The fragments, ascending.
    dice : tuple of float
        Dice overlap of each fragment with the baseline lesion.
    """

    baseline: int
    follow_ups: tuple[int, ...]
    dice: tuple[float, ...]


@dataclass(frozen=True)
class Merge:
    """Several baseline lesions that coalesced into one follow-up lesion.

    Attributes
    ----------
    baselines : tuple of int
        Ascending; ``baselines[0]`` (:attr:`first`) carries the merged diameter.
    follow_up : int
    dice : tuple of float
        Dice overlap of each baseline lesion with the merged lesion.
    """

    baselines: tuple[int, ...]
    follow_up: int
    dice: tuple[float, ...]

    @property
    def first(self) -> int:
        """The baseline id the merged lesion's diameter is booked against."""
        return self.baselines[0]


@dataclass(frozen=True)
class Matching:
    """Correspondence of the lesions of a follow-up study to the baseline's.

    Attributes
    ----------
    matched : tuple of Match
        One-to-one pairs, by baseline id.
    splits : tuple of Split
    merges : tuple of Merge
    new : tuple of int
        Follow-up lesions with no baseline counterpart (RECIST: new lesions).
    disappeared : tuple of int
        Baseline lesions with no follow-up counterpart.
    next_id : int
        First id free for new lesions (above every baseline label value and name).
    """

    matched: tuple[Match, ...]
    splits: tuple[Split, ...]
    merges: tuple[Merge, ...]
    new: tuple[int, ...]
    disappeared: tuple[int, ...]
    next_id: int

    def lesion_ids(self) -> dict[int, int]:
        """Stable id of each follow-up lesion: follow-up label -> lesion id.

        The baseline id for a matched lesion and for each fragment of a split; the
        first baseline id for a merged lesion; ``next_id``, ``next_id + 1``... for
        new lesions in ascending follow-up label order.
        """
        ids = {m.follow_up: m.baseline for m in self.matched}
        for s in self.splits:
            ids.update({f: s.baseline for f in s.follow_ups})
        ids.update({m.follow_up: m.first for m in self.merges})
        ids.update({f: self.next_id + k for k, f in enumerate(self.new)})
        return dict(sorted(ids.items()))

    def baseline_diameters_mm(
        self, follow_up_diameters_mm: Mapping[int, float]
    ) -> dict[int, float]:
        """Follow-up diameters booked against baseline ids (RECIST 1.1).

        Parameters
        ----------
        follow_up_diameters_mm : mapping of int to float
            Follow-up label -> its RECIST diameter, mm (long axis, or short axis for
            nodes; e.g. ``LesionMeasurement.recist_diameter_mm``).

        Returns
        -------
        dict of int to float
            Baseline id -> diameter, mm: matched lesions their diameter, a split
            lesion the sum of its fragments', merged lesions the merged diameter
            on the first id and 0 on the others, disappeared lesions 0. New
            lesions are left out (see :attr:`new`).

        Raises
        ------
        KeyError
            When the diameter of a needed follow-up lesion is missing.
        """

        def get(label: int) -> float:
            try:
                return float(follow_up_diameters_mm[label])
            except KeyError:
                raise KeyError(
                    f"follow_up_diameters_mm: no diameter for follow-up lesion {label}; "
                    "measure every follow-up lesion (measure_lesions)"
                ) from None

        out = {m.baseline: get(m.follow_up) for m in self.matched}
        for s in self.splits:
            out[s.baseline] = float(sum(get(f) for f in s.follow_ups))
        for m in self.merges:
            out[m.first] = get(m.follow_up)
            out.update({b: 0.0 for b in m.baselines[1:]})
        out.update({b: 0.0 for b in self.disappeared})
        return dict(sorted(out.items()))


def match_lesions(
    baseline: Labels,
    follow_up: Labels,
    *,
    transform: Any = None,
    max_distance_mm: float = 15.0,
    min_overlap: float = 0.1,
) -> Matching:
    """Map follow-up lesions to baseline lesions (module notes give the rules).

    Parameters
    ----------
    baseline, follow_up : Labels
        One label value per lesion; the grids may differ.
    transform : Registration, SimpleITK.Transform or ndarray of shape (4, 4), optional
        Baseline LPS point (mm) -> follow-up LPS point (mm): a
        :class:`~theranet.imaging.register.Registration` of the follow-up CT
        (moving) to the baseline CT (fixed), its ``.transform``, or a homogeneous
        matrix. None: the studies share one frame of reference.
    max_distance_mm : float
        Largest centroid distance for the distance fallback, mm.
    min_overlap : float
        Smallest Dice, in (0, 1], that links two lesions by overlap.

    Returns
    -------
    Matching

    Raises
    ------
    MeasurementError
        For ``max_distance_mm`` < 0 or ``min_overlap`` outside (0, 1].
    GeometryError
        For a transform matrix that is not an invertible 4x4 affine.
    TypeError
        For a ``transform`` of another type.
    """
    max_distance_mm = _number("max_distance_mm", max_distance_mm, "give a distance >= 0 in mm")
    if max_distance_mm < 0:
        raise MeasurementError(
            "max_distance_mm", "must be >= 0", max_distance_mm, "give a distance in mm"
        )
    min_overlap = _number("min_overlap", min_overlap, "give a Dice in (0, 1]")
    if not 0.0 < min_overlap <= 1.0:
        raise MeasurementError("min_overlap", "must be in (0, 1]", min_overlap, "e.g. 0.1")
    for name, lab in (("baseline", baseline), ("follow_up", follow_up)):
        if not isinstance(lab, Labels):
            raise TypeError(f"{name}: expected Labels, got {type(lab).__name__}")
    tx = _as_sitk_transform(transform)

    bl = np.asarray(baseline.image.data).astype(np.int64, copy=False)
    fu_native = np.asarray(follow_up.image.data).astype(np.int64, copy=False)
    fu = _follow_up_on_baseline(baseline, follow_up, tx)
    bl_ids = _present(bl)
    fu_ids = _present(fu_native)

    edges = _dice_links(bl, fu, min_overlap)
    _prune_to_stars(edges)

    by_bl: dict[int, list[int]] = {}
    by_fu: dict[int, list[int]] = {}
    for b, f in sorted(edges):
        by_bl.setdefault(b, []).append(f)
        by_fu.setdefault(f, []).append(b)

    bl_centre = _centroids(baseline, bl_ids)
    bl_centre_fu = {b: _apply(tx, c) for b, c in bl_centre.items()}
    fu_centre = _centroids(follow_up, fu_ids)

    def dist(b: int, f: int) -> float:
        return float(np.linalg.norm(bl_centre_fu[b] - fu_centre[f]))

    matched: list[Match] = []
    splits: list[Split] = []
    merges: list[Merge] = []
    for b, fs in by_bl.items():
        if len(fs) > 1:
            splits.append(Split(b, tuple(fs), tuple(edges[(b, f)] for f in fs)))
        elif len(by_fu[fs[0]]) == 1:
            matched.append(Match(b, fs[0], edges[(b, fs[0])], dist(b, fs[0]), "overlap"))
    for f, bs in by_fu.items():
        if len(bs) > 1:
            merges.append(Merge(tuple(bs), f, tuple(edges[(b, f)] for b in bs)))

    # distance fallback, one to one, closest first
    free_bl = [b for b in bl_ids if b not in by_bl]
    free_fu = [f for f in fu_ids if f not in by_fu]
    candidates = sorted(
        (d, b, f) for b in free_bl for f in free_fu if (d := dist(b, f)) <= max_distance_mm
    )
    used_bl: set[int] = set()
    used_fu: set[int] = set()
    for d, b, f in candidates:
        if b in used_bl or f in used_fu:
            continue
        used_bl.add(b)
        used_fu.add(f)
        matched.append(Match(b, f, 0.0, d, "distance"))
        logger.info("lesion %d matched to follow-up lesion %d by distance (%.1f mm)", b, f, d)

    named = [int(v) for v in baseline.names]
    next_id = max([0, *bl_ids, *named]) + 1
    return Matching(
        matched=tuple(sorted(matched, key=lambda m: m.baseline)),
        splits=tuple(sorted(splits, key=lambda s: s.baseline)),
        merges=tuple(sorted(merges, key=lambda m: m.first)),
        new=tuple(f for f in free_fu if f not in used_fu),
        disappeared=tuple(b for b in free_bl if b not in used_bl),
        next_id=next_id,
    )


# -- internals -----------------------------------------------------------------
def _number(name: str, value: Any, fix: str) -> float:
    if isinstance(value, bool):
        raise MeasurementError(name, "must be a number", value, fix)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MeasurementError(name, "must be a number", value, fix) from None
    if not math.isfinite(number):
        raise MeasurementError(name, "must be finite", value, fix)
    return number


def _present(data: NDArray[np.int64]) -> list[int]:
    values = np.unique(data)
    return [int(v) for v in values if v != 0]


def _as_sitk_transform(transform: Any) -> sitk.Transform | None:
    if transform is None:
        return None
    import SimpleITK as sitk

    from theranet.imaging.register import Registration

    if isinstance(transform, Registration):
        return transform.transform
    if isinstance(transform, sitk.Transform):
        return transform
    if isinstance(transform, np.ndarray):
        m = np.asarray(transform, dtype=np.float64)
        if (
            m.shape != (4, 4)
            or not np.all(np.isfinite(m))
            or not np.allclose(m[3], [0, 0, 0, 1])
            or abs(np.linalg.det(m[:3, :3])) < 1e-9
        ):
            raise GeometryError(
                "transform",
                "must be an invertible 4x4 affine with last row [0, 0, 0, 1]",
                m.shape,
                "pass the baseline -> follow-up LPS matrix, or a Registration",
            )
        tx = sitk.AffineTransform(3)
        tx.SetMatrix(tuple(float(v) for v in m[:3, :3].ravel()))
        tx.SetTranslation(tuple(float(v) for v in m[:3, 3]))
        return tx
    raise TypeError(
        "transform: expected a Registration, a SimpleITK.Transform or a 4x4 ndarray, "
        f"got {type(transform).__name__}"
    )


def _follow_up_on_baseline(
    baseline: Labels, follow_up: Labels, tx: sitk.Transform | None
) -> NDArray[np.int64]:
    """Follow-up label values at the baseline voxel centres (through ``tx``)."""
    if tx is None and baseline.image.same_grid(follow_up.image):
        return np.asarray(follow_up.image.data).astype(np.int64, copy=False)
    import SimpleITK as sitk

    if tx is None:
        tx = sitk.Transform(3, sitk.sitkIdentity)
    moving = follow_up.image.replace(
        data=np.asarray(follow_up.image.data).astype(np.int64)
    ).to_sitk()
    reference = baseline.image.replace(data=np.zeros(baseline.image.shape, np.uint8)).to_sitk()
    out = sitk.Resample(moving, reference, tx, sitk.sitkNearestNeighbor, 0.0, sitk.sitkInt64)
    return sitk.GetArrayFromImage(out).astype(np.int64, copy=False)


def _dice_links(
    bl: NDArray[np.int64], fu: NDArray[np.int64], min_overlap: float
) -> dict[tuple[int, int], float]:
    """(baseline, follow-up) -> Dice on the baseline grid, for Dice >= min_overlap."""
    if bl.shape != fu.shape:  # pragma: no cover - guaranteed by the resampling
        raise GeometryError("follow_up", "not on the baseline grid", fu.shape)
    size_bl = dict(zip(*np.unique(bl[bl > 0], return_counts=True), strict=True))
    size_fu = dict(zip(*np.unique(fu[fu > 0], return_counts=True), strict=True))
    both = (bl > 0) & (fu > 0)
    pairs, counts = np.unique(np.stack([bl[both], fu[both]]), axis=1, return_counts=True)
    links = {}
    for (b, f), n in zip(pairs.T, counts, strict=True):
        dice = 2.0 * float(n) / float(size_bl[b] + size_fu[f])
        if dice >= min_overlap:
            links[(int(b), int(f))] = dice
    return links


def _prune_to_stars(edges: dict[tuple[int, int], float]) -> None:
    """Drop the weakest links whose two lesions keep another link, until every
    link has a lesion with no other link (each group is one-to-many or many-to-one)."""
    while True:
        deg_b: dict[int, int] = {}
        deg_f: dict[int, int] = {}
        for b, f in edges:
            deg_b[b] = deg_b.get(b, 0) + 1
            deg_f[f] = deg_f.get(f, 0) + 1
        tangled = [(d, b, f) for (b, f), d in edges.items() if deg_b[b] > 1 and deg_f[f] > 1]
        if not tangled:
            return
        _, b, f = min(tangled)
        logger.info("dropped the weak link baseline %d - follow-up %d", b, f)
        del edges[(b, f)]


def _centroids(labels: Labels, ids: list[int]) -> dict[int, NDArray[np.float64]]:
    """Label value -> LPS centroid of its voxel centres, mm."""
    from scipy import ndimage

    if not ids:
        return {}
    data = np.asarray(labels.image.data).astype(np.int64, copy=False)
    centres = ndimage.center_of_mass(data > 0, data, ids)
    return {i: labels.image.index_to_lps(np.array(c)) for i, c in zip(ids, centres, strict=True)}


def _apply(tx: sitk.Transform | None, point: NDArray[np.float64]) -> NDArray[np.float64]:
    if tx is None:
        return point
    return np.array(tx.TransformPoint(tuple(float(v) for v in point)))
