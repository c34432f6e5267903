"""Time-activity curves: regional activity over the time points of one administration.

Every image is first brought to a common meaning — the activity present at
the instant it was acquired — whatever its decay-correction state:

* not decay-corrected (``NONE``): the values already are that activity, at the
  time of average activity within the frame (DICOM PS3.3 C.8.9.4.1.5);
* decay-corrected (``START``/``ADMIN``/``REFERENCE``): the values are decayed to
  the acquisition start.

All images are then resampled (activity-conserving) onto one reference grid, the
grid of the label map unless another is given, and each region is summed.

Counting uncertainty
    The relative standard deviation of a region's activity from counting
    statistics is ``1/sqrt(N)`` with ``N = A * CF * T`` the counts the region
    contributed (``A`` in MBq, ``CF`` the calibration in cps/MBq, ``T`` the frame
    duration in s). It is the Poisson floor of the reconstructed-image noise
    (reconstruction amplifies it); when the calibration or the frame duration is
    unknown it is NaN and the TAC says so.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from theranet.errors import GeometryError, QuantityError, TimingError
from theranet.image import DecayCorrection, Image, Labels, Quantity

logger = logging.getLogger(__name__)

__all__ = ["TAC", "tacs_from_images", "time_point_image"]


@dataclass(frozen=True)
class TAC:
    """The time-activity curve of one region.

    Attributes
    ----------
    region : str
    times_h : ndarray of shape (N,)
        Hours after injection of each point, ascending.
    activity_mbq : ndarray of shape (N,)
        Activity in the region at each time (not decay-corrected), MBq.
    activity_sd_mbq : ndarray of shape (N,)
        Counting-statistics standard deviation, MBq (NaN where unknown).
    mean_concentration_mbq_per_ml : ndarray of shape (N,)
    volume_ml : float
        Region volume on the reference grid, mL.
    n_voxels : int
    nuclide : str or None
    injection : datetime or None
    notes : tuple of str
        What was assumed or could not be computed.
    """

    region: str
    times_h: np.ndarray
    activity_mbq: np.ndarray
    activity_sd_mbq: np.ndarray
    mean_concentration_mbq_per_ml: np.ndarray
    volume_ml: float
    n_voxels: int
    nuclide: str | None
    injection: datetime | None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("times_h", "activity_mbq", "activity_sd_mbq", "mean_concentration_mbq_per_ml"):
            a = np.array(getattr(self, name), dtype=np.float64)
            a.setflags(write=False)
            object.__setattr__(self, name, a)

    @property
    def relative_sd(self) -> np.ndarray:
        """Counting relative standard deviation per point (NaN where unknown)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.activity_sd_mbq / self.activity_mbq


def _instant(img: Image) -> datetime:
    """The instant whose activity the (possibly re-decayed) values represent."""
    t = img.timing
    if t.decay_correction is DecayCorrection.NONE:
        return img.values_reference_datetime()
    if t.acquisition_start is None:
        raise TimingError(
            "timing.acquisition_start",
            "unknown, needed to place a decay-corrected image in time",
            None,
            "supply the acquisition start",
            img.provenance.source or None,
        )
    return t.acquisition_start


def time_point_image(img: Image) -> tuple[float, Image]:
    """(hours after injection, image of the activity present at that time).

    Raises
    ------
    QuantityError
        The image is not an activity concentration (calibrate counts first).
    TimingError
        Injection or acquisition times are unknown, or the acquisition precedes
        the injection.
    """
    if img.quantity is not Quantity.ACTIVITY_CONCENTRATION:
        raise QuantityError(
            "quantity",
            "time-activity curves need activity concentration (MBq/mL)",
            img.quantity.value,
            "calibrate count images first (Image.to_activity_concentration, CLI "
            "--calibration-cps-per-mbq)",
        )
    img.check_finite()
    when = _instant(img)
    if img.timing.decay_correction is not DecayCorrection.NONE:
        img = img.decay_correct_to(when)
    hours = img.timing.hours_after_injection(when)
    if hours < 0:
        raise TimingError(
            "timing.injection",
            f"is after the acquisition ({hours:.3f} h)",
            img.timing.injection.isoformat() if img.timing.injection else None,
            "check the injection and acquisition datetimes",
            img.provenance.source or None,
        )
    return hours, img


def tacs_from_images(
    images: Sequence[Image],
    labels: Labels | None = None,
    *,
    masks: Mapping[str, np.ndarray] | None = None,
    reference: Image | None = None,
    regions: Sequence[str] | None = None,
) -> dict[str, TAC]:
    """Time-activity curves of labelled regions and/or masks.

    Parameters
    ----------
    images : sequence of Image
        Quantitative activity-concentration images of one administration, one per
        time point, in any order.
    labels : Labels, optional
        Region label map; its grid is the reference grid unless ``reference`` is
        given.
    masks : mapping of str to ndarray of bool, optional
        Extra regions (lesions) as boolean masks on the reference grid.
    reference : Image, optional
        Reference grid; required when only ``masks`` are given.
    regions : sequence of str, optional
        Restrict to these label names (default: every named label present).

    Returns
    -------
    dict of str to TAC
        One curve per region, points sorted by time.
    """
    if not images:
        raise ValueError("images: at least one time point is needed")
    if labels is None and not masks:
        raise ValueError("labels/masks: give a label map or at least one mask")
    if reference is None:
        if labels is None:
            raise GeometryError(
                "reference",
                "needed to place masks when no label map is given",
                None,
                "pass reference= (the image the masks were drawn on)",
            )
        reference = labels.image
    if labels is not None and not labels.image.same_grid(reference):
        labels = labels.resample_to(reference)

    points = sorted((time_point_image(img) for img in images), key=lambda p: p[0])
    times = np.array([p[0] for p in points])
    if np.any(np.diff(times) <= 0):
        raise TimingError(
            "images",
            "two images have the same time after injection",
            times.round(4).tolist(),
            "give one image per time point",
        )
    injections = {p[1].timing.injection for p in points}
    if len(injections) > 1:
        raise TimingError(
            "timing.injection",
            "images come from different administrations",
            sorted(i.isoformat() for i in injections if i is not None),
            "build one curve per therapy cycle",
        )
    nuclides = {p[1].nuclide for p in points}
    if len(nuclides) > 1:
        raise QuantityError(
            "nuclide",
            "images of different nuclides",
            sorted(map(str, nuclides)),
            "build one curve per radiopharmaceutical",
        )
    on_grid = [img if img.same_grid(reference) else img.resample_to(reference) for _, img in points]

    region_masks: dict[str, np.ndarray] = {}
    if labels is not None:
        present = labels.present()
        wanted = list(regions) if regions is not None else sorted(present)
        for name in wanted:
            if name not in present:
                raise KeyError(
                    f"regions: {name!r} has no voxel in the label map; present: {sorted(present)}"
                )
            region_masks[name] = labels.mask(name)
    for name, m in (masks or {}).items():
        m = np.asarray(m, dtype=bool)
        if m.shape != reference.shape:
            raise GeometryError(
                f"masks[{name!r}]",
                "shape differs from the reference grid",
                m.shape,
                f"draw the mask on the reference grid {reference.shape}",
            )
        if name in region_masks:
            raise ValueError(f"masks: {name!r} is also a label name; rename the mask")
        region_masks[name] = m

    v_ml = reference.voxel_volume_ml
    out: dict[str, TAC] = {}
    for name, m in region_masks.items():
        n_vox = int(m.sum())
        if n_vox == 0:
            raise ValueError(f"masks: region {name!r} is empty")
        act = np.array([float(img.data[m].sum(dtype=np.float64)) * v_ml for img in on_grid])
        sd = np.full_like(act, np.nan)
        notes: list[str] = []
        for i, img in enumerate(on_grid):
            cf = img.calibration_cps_per_mbq
            dur = img.timing.frame_duration_h
            if cf is None or dur is None or dur <= 0:
                continue
            counts = act[i] * cf * dur * 3600.0
            sd[i] = act[i] / math.sqrt(counts) if counts > 0 else np.nan
        if np.isnan(sd).any():
            notes.append(
                "counting uncertainty unknown where calibration (cps/MBq) or frame duration "
                "is missing"
            )
        out[name] = TAC(
            region=name,
            times_h=times,
            activity_mbq=act,
            activity_sd_mbq=sd,
            mean_concentration_mbq_per_ml=act / (n_vox * v_ml),
            volume_ml=n_vox * v_ml,
            n_voxels=n_vox,
            nuclide=next(iter(nuclides)),
            injection=next(iter(injections)),
            notes=tuple(notes),
        )
    logger.info("TACs of %d region(s) over %d time points", len(out), len(times))
    return out
