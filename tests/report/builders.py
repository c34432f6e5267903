"""Small synthetic cycle reports for the report tests.

A 40^3 grid of 4 mm voxels in (Z, Y, X) array order, spherical regions on a
lattice, an activity image, a dose image proportional to the smoothed activity,
mono-exponential time-activity curves and DVHs computed from the dose image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from theranet.image import Image, Labels, Quantity
from theranet.report.model import CurveData, CycleReport, DoseRow, RegistrationRow

DEFAULT_NAMES = ("liver", "left kidney", "spleen", "lesion 1")
TIMES_H = (4.0, 24.0, 96.0, 168.0)
LU177_HALF_LIFE_H = 6.647 * 24  # ICRP-107
ADMINISTERED_MBQ = 7400.0
GY_PER_MBQ_PER_ML = 40.0  # dose image = 40 x smoothed concentration (synthetic)


def zyx_affine(spacing_mm: float = 4.0, shape: tuple[int, int, int] = (40, 40, 40)) -> np.ndarray:
    """Array (Z, Y, X) index -> LPS mm, centred on the origin."""
    affine = np.zeros((4, 4))
    affine[2, 0] = affine[1, 1] = affine[0, 2] = spacing_mm
    affine[:3, 3] = [-(shape[2] - 1) * spacing_mm / 2, -(shape[1] - 1) * spacing_mm / 2, 0.0]
    affine[3, 3] = 1.0
    return affine


def _kind(name: str) -> str:
    if "lesion" in name:
        return "lesion"
    if "marrow" in name:
        return "marrow"
    return "organ"


def make_report(
    names: Sequence[str] = DEFAULT_NAMES,
    *,
    shape: tuple[int, int, int] = (40, 40, 40),
    spacing_mm: float = 4.0,
    nan_sd: bool = False,
    zero_dose: Sequence[str] = (),
    warnings: Sequence[str] = (
        "Marrow dose is blood-based (EANM 2010); check the haematocrit.",
        "Time point 3 registration metric < 0.9: review the overlay.",
    ),
    seed: int = 0,
) -> CycleReport:
    """A complete synthetic :class:`CycleReport` with one region per name."""
    rng = np.random.default_rng(seed)
    affine = zyx_affine(spacing_mm, shape)
    n = len(names)
    m = max(1, math.ceil(n ** (1 / 3) - 1e-9))
    block = np.array(shape) // m
    radius = 0.35 * block.min()
    zz, yy, xx = np.indices(shape)
    lab = np.zeros(shape, dtype=np.int16)
    conc = np.full(shape, 0.01)
    for i in range(n):
        bz, rest = divmod(i, m * m)
        by, bx = divmod(rest, m)
        centre = (np.array([bz, by, bx]) + 0.5) * block
        inside = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius**2
        lab[inside] = i + 1
        conc[inside] = 0.2 * (i + 1)
    conc = ndimage.gaussian_filter(conc, 1.0)
    dose = GY_PER_MBQ_PER_ML * conc
    label_names = {i + 1: name for i, name in enumerate(names)}
    for name in zero_dose:
        dose[lab == names.index(name) + 1] = 0.0
    activity_img = Image(conc.astype(np.float32), affine, Quantity.ACTIVITY_CONCENTRATION)
    dose_img = Image(dose.astype(np.float32), affine, Quantity.DOSE)
    labels = Labels.from_array(lab, affine, label_names)

    voxel_ml = activity_img.voxel_volume_ml
    lam = math.log(2) / LU177_HALF_LIFE_H + math.log(2) / 60.0  # effective, 1/h
    t = np.asarray(TIMES_H)
    fit_t = np.linspace(0.0, 200.0, 101)
    rows, curves, dvh = [], [], {}
    for i, name in enumerate(names):
        mask = lab == i + 1
        volume_ml = float(mask.sum()) * voxel_ml
        a0 = float(conc[mask].sum()) * voxel_ml
        measured = a0 * np.exp(-lam * t) * (1.0 + 0.05 * rng.standard_normal(t.size))
        sd = np.full(t.size, np.nan) if nan_sd else 0.05 * measured
        curves.append(
            CurveData(
                region=name,
                times_h=t,
                activity_mbq=measured,
                activity_sd_mbq=sd,
                fit_times_h=fit_t,
                fit_activity_mbq=a0 * np.exp(-lam * fit_t),
                fitted_at_points_mbq=a0 * np.exp(-lam * t),
                model="mono-exponential",
            )
        )
        values = dose[mask]
        mean = float(values.mean())
        grid = np.linspace(0.0, max(float(values.max()), 1e-9), 80)
        dvh[name] = (grid, (values[None, :] >= grid[:, None]).mean(axis=1))
        tia = a0 / lam
        rows.append(
            DoseRow(
                region=name,
                kind=_kind(name),
                volume_ml=volume_ml,
                mass_g=1.05 * volume_ml,
                tia_mbq_h=tia,
                tia_sd_mbq_h=float("nan") if nan_sd else 0.08 * tia,
                mean_dose_gy=mean,
                dose_sd_gy=float("nan") if nan_sd else 0.1 * mean,
                dose_per_gbq_gy=mean / (ADMINISTERED_MBQ / 1000.0),
                model="mono-exponential",
                method="voxel S-value convolution",
            )
        )
    registration = [
        RegistrationRow("TP1", 4.0, "reference"),
        RegistrationRow("TP2", 24.0, "rigid", (1.2, -0.4, 3.1), (0.5, 0.0, -1.2), 0.81, 0.95),
        RegistrationRow(
            "TP3", 96.0, "rigid + bspline", (0.3, 2.2, -5.0), (1.0, 0.2, 0.1), 0.7, 0.88
        ),
        RegistrationRow("TP4", 168.0, "none"),
    ]
    return CycleReport(
        title="Cycle 1 dosimetry",
        patient="PSEUDO-0042",
        tracer="[177Lu]Lu-DOTA-TATE",
        nuclide="Lu-177",
        administered_activity_mbq=ADMINISTERED_MBQ,
        injection="2026-03-02T10:00:00",
        times_h=TIMES_H,
        doses=rows,
        curves=curves,
        dose=dose_img,
        activity=activity_img,
        labels=labels,
        dvh=dvh,
        methods=[
            ("registration", "rigid (CT mutual information), then B-spline on organs"),
            ("partial-volume correction", "geometric transfer matrix, FWHM 12 mm"),
            ("kinetics", "mono-exponential least squares, model chosen by AICc"),
            ("dose", "voxel S-value convolution, soft tissue 1.04 g/mL"),
        ],
        versions={"theranet": "0.1.0", "numpy": np.__version__, "decay data": "ICRP-107"},
        registration=registration,
        warnings=tuple(warnings),
    )


def lattice_names(n: int) -> list[str]:
    """``n`` region names: organs, then lesions (phantom-sized studies have ~30)."""
    organs = [
        "liver",
        "spleen",
        "left kidney",
        "right kidney",
        "red marrow",
        "pancreas",
        "stomach wall",
        "small intestine",
        "urinary bladder wall",
        "salivary glands",
    ]
    out = organs[: min(n, len(organs))]
    out += [f"lesion {i + 1}" for i in range(n - len(out))]
    return out
