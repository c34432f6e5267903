"""A digital patient imaged over time whose lesions shrink or grow by designed amounts.

The response series is the test bench of :mod:`theranet.response`: a baseline CT and
follow-up CTs of one digital patient (:func:`~theranet.phantom.anatomy.build_anatomy`),
each with the lesion segmentation a reader would draw, and the design that says how
every lesion changed.

Design rules
------------
Lesions
    Every lesion of the anatomy is redrawn as an axis-aligned ellipsoid centred on its
    centroid, with semi-axes ``(r e, r / e, r)`` along LPS x, y and z, where ``r`` is
    the radius of the sphere of the lesion's drawn volume and ``e`` =
    :data:`IN_PLANE_ELONGATION`. Its analytic RECIST diameters are therefore
    ``2 r e s`` (longest axial diameter, along x) and ``2 r s / e`` (short axis,
    along y), ``s`` being the lesion's linear scale at that study (1 at baseline, 0:
    gone). Voxels of the original lesion outside the ellipsoid return to the organ
    the lesion sits in (its CT number too).
Density
    A follow-up may change the lesions' CT number by a percentage (necrosis after
    therapy lowers it: the Choi density criterion).
New lesions
    Drawn in the liver at a point at least ``2 r + 20 mm`` from every other lesion and
    ``r + 5 mm`` inside the liver, chosen from the seed.
Positioning
    The patient lies differently at each study: the follow-up anatomy is shifted
    by ``shift_mm`` in scanner coordinates (LPS). Each study has its own Frame of
    Reference UID, so lesions must be matched through registration.
Field of view
    The CTs cover the lesions' cranio-caudal extent plus a margin (not the whole
    body), to keep the series small.

Outputs (:func:`generate_response_series`)
------------------------------------------
``OUT/study<k>_<YYYY-MM-DD>/ct/`` (CT Image Storage, one file per slice),
``OUT/study<k>_<YYYY-MM-DD>/lesions.nii.gz`` (lesion label map on that CT's grid,
names in the JSON sidecar: ``lesion_<site>_<i>``; at follow-ups the label values
and numbers are a random permutation, as a reader numbering each study anew would
give), and ``OUT/response_truth.json``
(the design: every lesion's scale and analytic diameters per study).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import numpy as np

from theranet.image import Image, Labels, Quantity
from theranet.io._atomic import atomic_paths
from theranet.io.nifti import write_nifti
from theranet.phantom import imaging
from theranet.phantom.anatomy import Anatomy, build_anatomy
from theranet.phantom.dicom_export import DicomContext, write_ct_series

__all__ = [
    "IN_PLANE_ELONGATION",
    "SCENARIOS",
    "FollowUp",
    "ResponseSeries",
    "generate_response_series",
]

#: In-plane elongation ``e`` of the redrawn lesions (semi-axes ``r e`` and ``r / e``).
IN_PLANE_ELONGATION = 1.1
#: Date of the baseline CT.
BASELINE_DATETIME = datetime(2026, 1, 12, 9, 0, 0)
#: Cranio-caudal margin of the field of view beyond the lesions, mm.
_FOV_MARGIN_MM = 40.0


@dataclass(frozen=True)
class FollowUp:
    """One follow-up study of the design.

    Parameters
    ----------
    weeks : float
        Time after the baseline CT, weeks.
    scale : float
        Linear scale of every lesion relative to its baseline size (1: unchanged,
        0: disappeared).
    scales : mapping of str to float
        Per-lesion scales (lesion name -> scale) that override ``scale``.
    hu_change_pct : float
        Change of the lesions' CT number relative to baseline, %.
    new_lesions_mm : sequence of float
        Diameters of new liver lesions appearing at this study, mm.
    shift_mm : tuple of float
        Patient position relative to the baseline, LPS mm.
    """

    weeks: float
    scale: float = 1.0
    scales: Mapping[str, float] = field(default_factory=dict)
    hu_change_pct: float = 0.0
    new_lesions_mm: Sequence[float] = ()
    shift_mm: tuple[float, float, float] = (6.0, -4.0, 9.6)

    def scale_of(self, name: str) -> float:
        return float(self.scales.get(name, self.scale))


def _scenarios() -> Mapping[str, tuple[FollowUp, ...]]:
    nodes = {"lesion_node_1": 0.3, "lesion_node_2": 0.3}
    return MappingProxyType(
        {
            # every lesion to 60 % then 55 % of its size; CT number down 20 %
            "partial_response": (
                FollowUp(12, scale=0.6, hu_change_pct=-20.0),
                FollowUp(18, scale=0.55, hu_change_pct=-20.0, shift_mm=(-5.0, 3.0, -7.2)),
            ),
            # unchanged, then every lesion 30 % larger
            "progression": (
                FollowUp(12, scale=1.0),
                FollowUp(24, scale=1.3, shift_mm=(-5.0, 3.0, -7.2)),
            ),
            # halved, then regrowing to 70 %: smaller than baseline, 40 % above the nadir
            "nadir_progression": (
                FollowUp(12, scale=0.5),
                FollowUp(24, scale=0.7, shift_mm=(-5.0, 3.0, -7.2)),
            ),
            # unchanged sizes but a new 15 mm liver lesion
            "new_lesion": (FollowUp(12, scale=1.0, new_lesions_mm=(15.0,)),),
            # every non-nodal lesion gone, nodes down to 30 % (short axis < 10 mm)
            "complete_response": (
                FollowUp(12, scale=0.0, scales=nodes),
                FollowUp(18, scale=0.0, scales=nodes, shift_mm=(-5.0, 3.0, -7.2)),
            ),
            # every lesion to 95 %
            "stable": (FollowUp(12, scale=0.95),),
        }
    )


#: Named designs: scenario -> its follow-up studies.
SCENARIOS: Mapping[str, tuple[FollowUp, ...]] = _scenarios()


@dataclass(frozen=True)
class ResponseSeries:
    """What :func:`generate_response_series` wrote.

    Attributes
    ----------
    root : Path
    study_dirs : tuple of Path
        Baseline first.
    truth_path : Path
    truth : dict
    """

    root: Path
    study_dirs: tuple[Path, ...]
    truth_path: Path
    truth: dict


@dataclass(frozen=True)
class _Lesion:
    name: str
    site: str
    parent: str
    centre_mm: np.ndarray
    radius_mm: float
    hu: float


def _lesions(anatomy: Anatomy) -> list[_Lesion]:
    out = []
    for r in anatomy.lesions():
        radius = (3.0 * r.volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
        out.append(_Lesion(r.name, str(r.site), str(r.parent), np.array(r.centre_mm), radius, r.hu))
    return out


def _semi_axes_mm(radius_mm: float, scale: float) -> np.ndarray:
    e = IN_PLANE_ELONGATION
    return np.array([radius_mm * e, radius_mm / e, radius_mm]) * scale


def _voxel_centres_mm(affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    idx = np.indices(shape, dtype=np.float64).reshape(3, -1)
    return (affine[:3, :3] @ idx + affine[:3, 3:4]).T.reshape(*shape, 3)


def _new_lesion_centres(
    anatomy: Anatomy, lesions: list[_Lesion], diameters_mm: Sequence[float], rng
) -> list[np.ndarray]:
    from scipy import ndimage

    liver = anatomy.mask("liver") | np.isin(
        anatomy.labels.image.data,
        [anatomy.regions[les.name].label for les in lesions if les.parent == "liver"],
    )
    depth_mm = ndimage.distance_transform_edt(liver) * anatomy.voxel_mm
    centres: list[np.ndarray] = []
    taken = [(les.centre_mm, les.radius_mm * IN_PLANE_ELONGATION) for les in lesions]
    affine = anatomy.affine
    for d in diameters_mm:
        r = d / 2.0
        candidates = np.argwhere(depth_mm >= r + 5.0)
        pts = (affine[:3, :3] @ candidates.T + affine[:3, 3:4]).T
        ok = np.ones(len(pts), dtype=bool)
        for c, rr in taken:
            ok &= np.linalg.norm(pts - c, axis=1) >= r + rr + 20.0
        if not ok.any():
            raise ValueError(f"new_lesions_mm: no room in the liver for a {d} mm lesion")
        choice = pts[ok][int(rng.integers(int(ok.sum())))]
        centres.append(choice)
        taken.append((choice, r))
    return centres


def _crop(anatomy: Anatomy, lesions: list[_Lesion], extra: Sequence[np.ndarray]):
    """Slices covering the lesions (cranio-caudal, array axis 0) plus the margin."""
    affine = anatomy.affine
    z_axis = int(np.argmax(np.abs(affine[2, :3])))
    step = float(affine[2, z_axis])
    zs = [c[2] for c in [les.centre_mm for les in lesions] + list(extra)]
    reach = max(les.radius_mm for les in lesions) * 1.3 + _FOV_MARGIN_MM
    lo = (min(zs) - reach - affine[2, 3]) / step
    hi = (max(zs) + reach - affine[2, 3]) / step
    a, b = sorted((lo, hi))
    n = anatomy.shape[z_axis]
    start, stop = max(0, math.floor(a)), min(n, math.ceil(b) + 1)
    box = [slice(None)] * 3
    box[z_axis] = slice(start, stop)
    return tuple(box), z_axis, start


def generate_response_series(
    out_dir: str | Path,
    scenario: str | Sequence[FollowUp] = "partial_response",
    *,
    seed: int = 0,
    noise_sd_hu: float = 10.0,
) -> ResponseSeries:
    """Write a baseline CT and follow-up CTs with designed lesion changes.

    Parameters
    ----------
    out_dir : path
        Created if needed.
    scenario : str or sequence of FollowUp
        A name of :data:`SCENARIOS` or the follow-up studies themselves.
    seed : int
        Digital patient (anatomy, lesion positions) and CT noise.
    noise_sd_hu : float
        CT noise, HU.

    Returns
    -------
    ResponseSeries
    """
    if isinstance(scenario, str):
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario: unknown {scenario!r}; use one of {', '.join(SCENARIOS)}")
        name, follow_ups = scenario, tuple(SCENARIOS[scenario])
    else:
        name, follow_ups = "custom", tuple(scenario)
    if not follow_ups:
        raise ValueError("scenario: at least one follow-up study is needed")
    weeks = [f.weeks for f in follow_ups]
    if any(not (math.isfinite(w) and w > 0) for w in weeks) or weeks != sorted(set(weeks)):
        raise ValueError(f"scenario: follow-up weeks must be increasing and > 0, got {weeks}")
    for f in follow_ups:
        for s in [f.scale, *f.scales.values()]:
            if not (math.isfinite(s) and s >= 0):
                raise ValueError(f"scenario: a lesion scale must be >= 0, got {s!r}")

    anatomy = build_anatomy(seed=seed)
    lesions = _lesions(anatomy)
    rng = np.random.default_rng(seed + 104_729)
    new_centres = [_new_lesion_centres(anatomy, lesions, f.new_lesions_mm, rng) for f in follow_ups]
    box, z_axis, z_start = _crop(anatomy, lesions, [c for cs in new_centres for c in cs])
    base_labels = np.asarray(anatomy.labels.image.data)[box].astype(np.int16)
    base_hu = np.asarray(anatomy.hu)[box].astype(np.float32)
    affine = np.array(anatomy.affine, dtype=np.float64)
    affine[:3, 3] = affine[:3, :3] @ np.eye(3)[z_axis] * z_start + affine[:3, 3]
    shape = base_labels.shape
    centres = _voxel_centres_mm(affine, shape)

    # erase every lesion: its voxels return to the organ it sits in
    for les in lesions:
        region = anatomy.regions[les.name]
        parent = anatomy.regions[les.parent]
        m = base_labels == region.label
        base_labels[m] = parent.label
        base_hu[m] = parent.hu

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    studies = [(0.0, None), *[(f.weeks, f) for f in follow_ups]]
    study_dirs: list[Path] = []
    truth_studies = []
    for k, (wk, fu) in enumerate(studies):
        when = BASELINE_DATETIME + timedelta(weeks=wk)
        shift = np.zeros(3) if fu is None else np.asarray(fu.shift_mm, dtype=np.float64)
        hu = base_hu.copy()
        lesion_map = np.zeros(shape, dtype=np.int16)
        names: dict[int, str] = {}
        rows = []
        drawn = [(les, 1.0 if fu is None else fu.scale_of(les.name)) for les in lesions]
        n_liver = sum(1 for les in lesions if les.site == "liver")
        for j, c in enumerate(new_centres[k - 1] if fu is not None else []):
            r = fu.new_lesions_mm[j] / 2.0 / IN_PLANE_ELONGATION
            drawn.append(
                (_Lesion(f"lesion_liver_{n_liver + j + 1}", "liver", "liver", c, r,
                         lesions[0].hu), 1.0)
            )  # fmt: skip
        hu_factor = 1.0 + (0.0 if fu is None else fu.hu_change_pct / 100.0)
        # a reader numbers the lesions of every study anew: follow-up label values and
        # names are a permutation, so lesion identity comes only from tracking
        values = list(range(1, len(drawn) + 1))
        if fu is not None:
            values = [int(v) for v in rng.permutation(values)]
        for value, (les, s) in zip(values, drawn, strict=True):
            axes = _semi_axes_mm(les.radius_mm, s)
            label_name = les.name if fu is None else f"lesion_{les.site}_{value}"
            row = {
                "lesion": les.name,
                "label": value,
                "label_name": label_name,
                "site": les.site,
                "scale": s,
                "new": fu is not None and les not in lesions,
                "longest_diameter_mm": round(2 * axes[0], 3),
                "short_axis_mm": round(2 * axes[1], 3),
                "hu": round(les.hu * hu_factor, 2),
            }
            rows.append(row)
            if s == 0:
                continue
            inside = np.sum(((centres - les.centre_mm) / axes) ** 2, axis=-1) <= 1.0
            if les.site == "bone":  # a bone lesion stays inside the marrow it replaces
                inside &= base_labels == anatomy.regions[les.parent].label
            lesion_map[inside] = value
            names[value] = label_name
            hu[inside] = les.hu * hu_factor
        study_affine = affine.copy()
        study_affine[:3, 3] += shift
        ctx = DicomContext(
            seed=seed, study_datetime=when, study_id=str(k + 1), patient_sex=anatomy.sex,
            patient_weight_kg=anatomy.weight_kg, patient_size_m=anatomy.height_cm / 100.0,
        )  # fmt: skip
        ct = imaging.simulate_ct(
            Image(hu, study_affine, Quantity.HU, modality="CT"),
            noise_sd_hu=noise_sd_hu,
            seed=seed * 1000 + 700 + k,
        )
        folder = out / f"study{k + 1}_{when.date().isoformat()}"
        folder.mkdir(exist_ok=True)
        write_ct_series(folder / "ct", ct, ctx, series_number=1, acquisition_datetime=when)
        lab_img = Image(lesion_map, study_affine, Quantity.LABEL)
        write_nifti(Labels(lab_img, names), folder / "lesions.nii.gz")
        study_dirs.append(folder)
        truth_studies.append(
            {
                "folder": folder.name,
                "date": when.date().isoformat(),
                "weeks": wk,
                "shift_mm": [float(v) for v in shift],
                "hu_change_pct": 0.0 if fu is None else fu.hu_change_pct,
                "lesions": rows,
            }
        )
    truth = {
        "scenario": name,
        "seed": seed,
        "in_plane_elongation": IN_PLANE_ELONGATION,
        "voxel_mm": [float(v) for v in np.linalg.norm(affine[:3, :3], axis=0)],
        "rules": __doc__.split("Design rules")[1].split("Outputs")[0].strip(),
        "studies": truth_studies,
    }
    truth_path = out / "response_truth.json"
    with atomic_paths([truth_path]) as (tmp,):
        tmp.write_text(json.dumps(truth, indent=2) + "\n")
    return ResponseSeries(out, tuple(study_dirs), truth_path, truth)
