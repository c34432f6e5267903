"""Registration of time points: rigid (and, on request, B-spline) CT-to-CT with SimpleITK.

Intended use: the CT of each time point (``moving``) is registered to the
reference CT (``fixed``) with :func:`register_rigid` (and
:func:`register_deformable` when asked for); :func:`apply` then brings the SPECT
of the same time point, which shares its CT's frame of reference, onto the
reference grid through the same transform. The reference time point itself gets
:func:`identity`.

Conventions
-----------
Transform direction
    As in SimpleITK, :attr:`Registration.transform` maps a *fixed* physical point
    (LPS, mm) to the corresponding *moving* physical point; resampling the moving
    image onto a grid of the fixed frame reads it at ``T(x)``. If the anatomy in
    the moving image lies ``d`` mm from where it lies in the fixed image, the
    rigid translation found is ``+d``.
Rigid parameters
    An ITK ``Euler3DTransform`` about the centre ``c`` of the fixed image,
    ``T(x) = R (x - c) + c + t``: ``translation_mm`` is ``t`` (the displacement
    of ``c``), ``rotation_deg`` the angles about the LPS x, y and z axes,
    composed as ``R = Rz Rx Ry`` (ITK's default order).
Quality
    :attr:`Registration.metric_before` and :attr:`Registration.metric_after` are
    the normalised cross-correlation (NCC, 1 = identical) of the fixed image and
    the moving image resampled (linearly) onto the fixed grid, over the body
    where the two overlap: without a transform (the images as the scanner placed
    them) and with the one found. The body of a CT is the voxels above
    :data:`BODY_THRESHOLD_HU` with in-plane holes (lungs, gas) filled; of any
    other image, its finite voxels. The optimiser's own metric (Mattes mutual
    information or correlation, both minimised) is reported as well.
Reproducibility
    Metric samples are drawn with a fixed seed. ITK's Mattes metric adds up the
    joint histogram from its threads in whatever order they finish, so
    multi-threaded runs differ in the last digits, which can change the number
    of iterations and the result by a few hundredths of a mm or degree. With
    ``deterministic=True`` (the default) the optimisation therefore runs on one
    thread: ITK's global default thread count
    (``sitk.ProcessObject.SetGlobalDefaultNumberOfThreads``) is set to 1 for the
    call and restored afterwards, as the metric ignores the method's own thread
    count. Do not run other SimpleITK work in parallel threads meanwhile.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from theranet.errors import GeometryError, QuantityError
from theranet.image import Image, Quantity

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

__all__ = [
    "BODY_THRESHOLD_HU",
    "Registration",
    "apply",
    "identity",
    "register_deformable",
    "register_rigid",
    "working_copy",
]

logger = logging.getLogger(__name__)

#: CT voxels above this value (HU) count as body for the quality metrics.
BODY_THRESHOLD_HU = -500.0

_METRICS = ("mattes", "correlation")
_INITIALIZERS = ("geometry", "none")
_MAX_DISPLACEMENT_POINTS = 64**3


@dataclass(frozen=True, eq=False)
class Registration:
    """A transform between two time points and how well it aligns them.

    Attributes
    ----------
    transform : SimpleITK.Transform
        Maps fixed physical points (LPS, mm) to moving physical points. Treat as
        read-only.
    kind : {"identity", "rigid", "rigid+bspline", "bspline"}
        What the transform is made of.
    translation_mm : tuple of 3 float
        Translation (x, y, z) of the rigid part, LPS, mm: the displacement of the
        centre of rotation (the fixed image's centre).
    rotation_deg : tuple of 3 float
        Euler angles of the rigid part about the LPS x, y and z axes, degrees
        (ITK ``Euler3DTransform``, ``R = Rz Rx Ry``).
    metric_name : str
        The metric the optimiser minimised (``"mattes"``, ``"correlation"``;
        ``"none"`` for :func:`identity`).
    metric_value : float
        The optimiser's final metric value at the finest level (NaN for identity).
    metric_before, metric_after : float
        Quality: NCC (1 = identical) of the fixed image and the resampled moving
        image over the body, without and with the transform.
    stop_condition : str
        The optimiser's stop condition at the finest level.
    iterations : int
        Optimiser iterations at the finest level (of the last stage).
    mean_displacement_mm, max_displacement_mm : float
        Mean and maximum of ``|T(x) - x|`` over body voxels of the fixed grid
        (evaluated on a sub-sampled grid), mm.
    """

    transform: sitk.Transform
    kind: str
    translation_mm: tuple[float, float, float]
    rotation_deg: tuple[float, float, float]
    metric_name: str
    metric_value: float
    metric_before: float
    metric_after: float
    stop_condition: str
    iterations: int
    mean_displacement_mm: float
    max_displacement_mm: float

    def describe(self) -> str:
        """One line for provenance and logs."""
        if self.kind == "identity":
            return "identity"
        t = ", ".join(f"{v:.2f}" for v in self.translation_mm)
        r = ", ".join(f"{v:.2f}" for v in self.rotation_deg)
        text = f"{self.kind}, t=({t}) mm, rot=({r}) deg"
        if "bspline" in self.kind:
            text += f", mean displacement {self.mean_displacement_mm:.2f} mm"
        return text


# -- public functions --------------------------------------------------------


def working_copy(ct: Image, voxel_mm: float = 4.0) -> Image:
    """The CT averaged over blocks of ``f^3`` voxels, ``f = round(voxel_mm / voxel)``.

    Registration of SPECT/PET time points works at the emission scale: averaging the
    CT to about ``voxel_mm`` keeps its structure, removes its noise and makes the
    metric cheap. The block average conserves the mean HU of each block; the grid
    keeps the CT's orientation, its first block centred on the mean of its voxels.

    Parameters
    ----------
    ct : Image
    voxel_mm : float
        Target voxel size, mm.

    Returns
    -------
    Image
        ``ct`` itself when the factor is 1.
    """
    f = max(1, round(voxel_mm / float(np.max(ct.spacing_mm))))
    if f == 1:
        return ct
    shape = tuple(max(1, int(n) // f) for n in ct.shape)
    affine = np.array(ct.affine, dtype=np.float64)
    affine[:3, :3] *= f
    affine[:3, 3] = ct.index_to_lps(np.full(3, (f - 1) / 2.0))
    grid = Image(np.zeros(shape, np.float32), affine, ct.quantity)
    return ct.resample_to(grid, method="conserve")


def identity(fixed: Image) -> Registration:
    """The registration of the reference time point to itself.

    Parameters
    ----------
    fixed : Image
        The reference image; its centre is the (unused) centre of rotation.

    Returns
    -------
    Registration
        Kind ``"identity"``, NCC 1, zero displacement.
    """
    import SimpleITK as sitk

    _check_image("fixed", fixed)
    tx = sitk.Euler3DTransform()
    tx.SetCenter(_centre_mm(fixed))
    return Registration(
        transform=tx,
        kind="identity",
        translation_mm=(0.0, 0.0, 0.0),
        rotation_deg=(0.0, 0.0, 0.0),
        metric_name="none",
        metric_value=math.nan,
        metric_before=1.0,
        metric_after=1.0,
        stop_condition="identity (reference time point)",
        iterations=0,
        mean_displacement_mm=0.0,
        max_displacement_mm=0.0,
    )


def register_rigid(
    fixed: Image,
    moving: Image,
    *,
    metric: str = "mattes",
    max_iterations: int = 200,
    shrink_factors: Sequence[int] = (4, 2, 1),
    smoothing_sigmas_mm: Sequence[float] | None = None,
    sampling_fraction: float = 0.25,
    max_samples: int = 50_000,
    initializer: str = "geometry",
    seed: int = 0,
    deterministic: bool = True,
) -> Registration:
    """Rigid (rotation + translation) registration of ``moving`` to ``fixed``.

    SimpleITK ``ImageRegistrationMethod``: an ``Euler3DTransform`` started by
    ``CenteredTransformInitializer``, a multi-resolution pyramid
    (``shrink_factors`` with Gaussian smoothing in mm), regular-step gradient
    descent (2 mm first step, halved at each reversal down to 1e-4) with
    optimiser scales from the physical shift of body voxels, linear
    interpolation and random metric sampling with a fixed seed.

    Parameters
    ----------
    fixed : Image
        Reference image (the reference CT, HU).
    moving : Image
        Image to align to it (the CT of another time point).
    metric : {"mattes", "correlation"}
        ``"mattes"``: Mattes mutual information (32 bins), robust to contrast
        and calibration differences between days; ``"correlation"``: normalised
        correlation, for images of the same modality and calibration.
    max_iterations : int
        Maximum optimiser iterations per resolution level.
    shrink_factors : sequence of int
        Down-sampling factor of each level, coarse to fine.
    smoothing_sigmas_mm : sequence of float, optional
        Gaussian smoothing of each level, mm. Default: half the shrunk voxel,
        ``0.5 * f * max(fixed.spacing_mm)`` for ``f > 1``, and 0 for ``f == 1``.
    sampling_fraction : float
        Fraction of the (shrunk) fixed voxels sampled for the metric, in (0, 1].
    max_samples : int
        Upper limit of metric samples per level (the cost of an iteration is
        proportional to it).
    initializer : {"geometry", "none"}
        ``"geometry"``: start with the centres of the two image volumes aligned
        (GEOMETRY); ``"none"``: start from the positions as given (the same
        scanner frame), preferable when the two scans cover different lengths.
        Either way the rotation is about the fixed image's centre.
    seed : int
        Seed (>= 0) of the metric sampling. SimpleITK reserves 0 for "seed from
        the wall clock", so ``seed + 1`` is passed to it.
    deterministic : bool
        Optimise on one thread so that the same inputs give the same transform
        to the last digit (see the module notes); False uses all threads.

    Returns
    -------
    Registration
        Kind ``"rigid"``.

    Raises
    ------
    GeometryError
        When the optimisation fails, typically because the images do not
        overlap (too few samples map inside the moving image).
    ImageDataError
        When either image has non-finite voxels.
    ValueError
        For an unknown ``metric`` or ``initializer`` or bad level settings.
    """
    import SimpleITK as sitk

    _check_image("fixed", fixed)
    _check_image("moving", moving)
    if initializer not in _INITIALIZERS:
        raise ValueError(f"initializer: unknown {initializer!r}; use one of {_INITIALIZERS}")
    _check_iterations(max_iterations)
    reg = _method(
        fixed,
        metric=metric,
        shrink_factors=shrink_factors,
        smoothing_sigmas_mm=smoothing_sigmas_mm,
        sampling_fraction=sampling_fraction,
        max_samples=max_samples,
        seed=seed,
    )
    f_img, m_img = _as_float(fixed), _as_float(moving)
    if initializer == "geometry":
        rigid = sitk.Euler3DTransform(
            sitk.CenteredTransformInitializer(
                f_img,
                m_img,
                sitk.Euler3DTransform(),
                sitk.CenteredTransformInitializerFilter.GEOMETRY,
            )
        )
    else:
        rigid = sitk.Euler3DTransform()
        rigid.SetCenter(_centre_mm(fixed))
    body = _body(fixed)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0,
        minStep=1e-4,
        numberOfIterations=max_iterations,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-8,
    )
    reg.SetOptimizerScales(_rigid_scales(fixed, body, rigid.GetCenter()))
    reg.SetInitialTransform(rigid, inPlace=True)
    _execute(reg, f_img, m_img, deterministic)  # optimises ``rigid`` in place
    return _summarise(fixed, moving, body, rigid, rigid, "rigid", metric, reg)


def register_deformable(
    fixed: Image,
    moving: Image,
    *,
    initial: Registration | None = None,
    grid_spacing_mm: float = 50.0,
    metric: str = "correlation",
    max_iterations: int = 100,
    shrink_factors: Sequence[int] = (2, 1),
    smoothing_sigmas_mm: Sequence[float] | None = None,
    sampling_fraction: float = 0.25,
    max_samples: int = 10_000,
    seed: int = 0,
    deterministic: bool = True,
) -> Registration:
    """B-spline registration of ``moving`` to ``fixed`` on top of a rigid one.

    A cubic B-spline transform with control points about every
    ``grid_spacing_mm`` over the fixed image (``BSplineTransformInitializer``)
    is optimised with L-BFGS-B while the rigid transform is held fixed; the
    result is their composite, ``T(x) = T_rigid(T_bspline(x))``. Runs only
    when asked for: it is much slower than the rigid registration (the cost of
    an iteration grows with ``max_samples`` times the number of control
    points), and, without a regulariser, may fold tissue where the images
    disagree (check the displacement statistics).

    Parameters
    ----------
    fixed, moving : Image
        As for :func:`register_rigid`.
    initial : Registration, optional
        Rigid (or identity) registration to build on; when omitted,
        :func:`register_rigid` is run first with its defaults and this ``seed``.
    grid_spacing_mm : float
        Approximate spacing of the B-spline control points, mm (larger is
        smoother and faster).
    metric : {"correlation", "mattes"}
        Correlation by default: for CT to CT (calibrated HU) it converges in far
        fewer L-BFGS-B iterations than Mattes mutual information, whose
        sample noise the many B-spline parameters pick up. Use ``"mattes"`` when
        contrast differs between the scans.
    max_iterations : int
        Maximum L-BFGS-B iterations per level.
    shrink_factors, smoothing_sigmas_mm, sampling_fraction, max_samples, seed, deterministic
        As for :func:`register_rigid`.

    Returns
    -------
    Registration
        Kind ``"rigid+bspline"`` (``"bspline"`` on top of an identity); the
        translation and rotation are those of the rigid part, the displacement
        statistics those of the composite.

    Raises
    ------
    GeometryError
        When the optimisation fails.
    ValueError
        For bad settings, or an ``initial`` that is already deformable.
    """
    import SimpleITK as sitk

    _check_image("fixed", fixed)
    _check_image("moving", moving)
    if not (isinstance(grid_spacing_mm, int | float) and grid_spacing_mm > 0):
        raise ValueError(f"grid_spacing_mm: must be a positive length, got {grid_spacing_mm!r}")
    _check_iterations(max_iterations)
    if initial is not None and not isinstance(initial, Registration):
        raise TypeError(f"initial: expected a Registration, got {type(initial).__name__}")
    if initial is not None and initial.kind not in ("identity", "rigid"):
        raise ValueError(
            f"initial: must be an identity or rigid registration, got {initial.kind!r}"
        )
    reg = _method(
        fixed,
        metric=metric,
        shrink_factors=shrink_factors,
        smoothing_sigmas_mm=smoothing_sigmas_mm,
        sampling_fraction=sampling_fraction,
        max_samples=max_samples,
        seed=seed,
    )
    if initial is None:
        initial = register_rigid(fixed, moving, seed=seed, deterministic=deterministic)
    rigid = sitk.Euler3DTransform(initial.transform)
    f_img, m_img = _as_float(fixed), _as_float(moving)
    # control-point mesh in SimpleITK (x, y, z) index order = reversed array axes
    extent_mm = (np.asarray(fixed.shape) * fixed.spacing_mm)[::-1]
    mesh = [max(1, round(float(e) / grid_spacing_mm)) for e in extent_mm]
    bspline = sitk.BSplineTransformInitializer(f_img, mesh, order=3)
    reg.SetOptimizerAsLBFGSB(
        gradientConvergenceTolerance=1e-5,
        numberOfIterations=max_iterations,
        maximumNumberOfCorrections=5,
        maximumNumberOfFunctionEvaluations=4 * max_iterations,
        costFunctionConvergenceFactor=1e7,
    )
    reg.SetMovingInitialTransform(rigid)
    reg.SetInitialTransform(bspline, inPlace=True)
    _execute(reg, f_img, m_img, deterministic)  # optimises ``bspline`` in place
    # a composite applies its transforms last to first: bspline, then rigid
    composite = sitk.CompositeTransform([rigid, bspline])
    kind = "bspline" if initial.kind == "identity" else "rigid+bspline"
    return _summarise(fixed, moving, _body(fixed), composite, rigid, kind, metric, reg)


def apply(
    registration: Registration,
    moving: Image,
    reference: Image,
    *,
    method: str = "linear",
    default_value: float = 0.0,
) -> Image:
    """Resample ``moving`` onto the grid of ``reference`` through a registration.

    The value at a reference voxel centre ``x`` is the moving image interpolated
    at ``registration.transform(x)``. Only the grid and the data change: the
    quantity, unit, timing, nuclide and the rest are the moving image's.

    Parameters
    ----------
    registration : Registration
        From :func:`register_rigid`, :func:`register_deformable` or
        :func:`identity`, found on the CT of the moving image's time point.
    moving : Image
        An intensive image in the frame of the registered moving CT (activity
        concentration in MBq/mL, SUV, HU, dose...), or a label map with
        ``method="nearest"``.
    reference : Image
        Supplies the output grid (in the frame of the fixed CT).
    method : {"linear", "nearest"}
        Interpolation. Linear interpolation of a concentration is the accepted
        approximation (it does not conserve the total activity exactly).
    default_value : float
        Value of output voxels that fall outside the moving image, in the moving
        image's unit (-1000 for a CT in HU).

    Returns
    -------
    Image
        On ``reference``'s grid; float32 (float64 for float64 input) for
        ``"linear"``, the input dtype for ``"nearest"``.

    Raises
    ------
    QuantityError
        For extensive quantities (activity per voxel, counts) whose values depend
        on the voxel size, or a label map with ``method="linear"``.
    GeometryError
        When no reference voxel maps inside the moving image.
    """
    import SimpleITK as sitk

    if method not in ("linear", "nearest"):
        raise ValueError(f"method: unknown {method!r}; use 'linear' or 'nearest'")
    if not isinstance(registration, Registration):
        raise TypeError(f"registration: expected a Registration, got {type(registration).__name__}")
    _check_image("moving", moving)
    _check_image("reference", reference)
    if moving.quantity.is_extensive:
        raise QuantityError(
            "moving.quantity",
            "values per voxel (extensive) cannot be interpolated onto another grid",
            moving.quantity.value,
            "register the activity concentration (MBq/mL) instead: for ACTIVITY, "
            "moving.replace(data=moving.data / moving.voxel_volume_ml, "
            "quantity=Quantity.ACTIVITY_CONCENTRATION); for counts, "
            "moving.to_activity_concentration(cf)",
        )
    if moving.quantity is Quantity.LABEL and method != "nearest":
        raise QuantityError(
            "method",
            "labels can only be resampled with 'nearest'",
            method,
            "pass method='nearest'",
        )
    tx = registration.transform
    ref = reference.to_sitk()
    if not _any_inside(moving, ref, tx):
        raise GeometryError(
            "reference",
            "no voxel of the reference grid maps inside the moving image (no overlap)",
            None,
            "check that both images are in the same frame of reference and that the "
            "registration belongs to this moving image",
        )
    src = moving.to_sitk()
    if method == "linear":
        ptype = sitk.sitkFloat64 if moving.data.dtype == np.float64 else sitk.sitkFloat32
        src = sitk.Cast(src, ptype)
        interp = sitk.sitkLinear
    else:
        interp, ptype = sitk.sitkNearestNeighbor, src.GetPixelID()
    out = sitk.Resample(src, ref, tx, interp, float(default_value), ptype)
    data = sitk.GetArrayFromImage(out)
    how = "linearly" if method == "linear" else "by nearest neighbour"
    return moving._derive(
        data,
        f"registered ({registration.describe()}) and resampled {how} onto the reference "
        f"grid {reference.shape}",
        affine=reference.affine.copy(),
    )


# -- internals -----------------------------------------------------------------
def _check_iterations(max_iterations: int) -> None:
    if not (isinstance(max_iterations, int) and max_iterations >= 1):
        raise ValueError(f"max_iterations: must be a positive integer, got {max_iterations!r}")


def _check_image(name: str, img: Image) -> None:
    if not isinstance(img, Image):
        raise TypeError(f"{name}: expected a theranet Image, got {type(img).__name__}")


def _as_float(img: Image):
    import SimpleITK as sitk

    img.check_finite()
    return sitk.Cast(img.to_sitk(), sitk.sitkFloat32)


def _centre_mm(img: Image) -> tuple[float, float, float]:
    centre_index = (np.asarray(img.shape, dtype=np.float64) - 1.0) / 2.0
    return tuple(float(v) for v in img.index_to_lps(centre_index))


def _method(
    fixed: Image,
    *,
    metric: str,
    shrink_factors: Sequence[int],
    smoothing_sigmas_mm: Sequence[float] | None,
    sampling_fraction: float,
    max_samples: int,
    seed: int,
):
    """The registration method with everything but optimiser and transform."""
    import SimpleITK as sitk

    if metric not in _METRICS:
        raise ValueError(f"metric: unknown {metric!r}; use one of {_METRICS}")
    shrink = [int(f) for f in shrink_factors]
    if not shrink or any(f < 1 for f in shrink) or list(shrink_factors) != shrink:
        raise ValueError(
            f"shrink_factors: must be positive integers, coarse to fine, got {shrink_factors!r}"
        )
    if smoothing_sigmas_mm is None:
        step = float(np.max(fixed.spacing_mm))
        sigmas = [0.5 * f * step if f > 1 else 0.0 for f in shrink]
    else:
        sigmas = [float(s) for s in smoothing_sigmas_mm]
        if len(sigmas) != len(shrink) or any(not (s >= 0) for s in sigmas):
            raise ValueError(
                "smoothing_sigmas_mm: one non-negative sigma per shrink factor, got "
                f"{smoothing_sigmas_mm!r} for {len(shrink)} levels"
            )
    if not (0.0 < sampling_fraction <= 1.0):
        raise ValueError(f"sampling_fraction: must be in (0, 1], got {sampling_fraction!r}")
    if not (isinstance(seed, int) and seed >= 0):
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")

    reg = sitk.ImageRegistrationMethod()
    if metric == "mattes":
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    else:
        reg.SetMetricAsCorrelation()
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    if not (isinstance(max_samples, int) and max_samples >= 1000):
        raise ValueError(f"max_samples: must be an integer >= 1000, got {max_samples!r}")
    n_voxels = [float(np.prod([max(1, n // f) for n in fixed.shape])) for f in shrink]
    fractions = [min(float(sampling_fraction), max_samples / n) for n in n_voxels]
    reg.SetMetricSamplingPercentagePerLevel(fractions, int(seed) + 1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetShrinkFactorsPerLevel(shrink)
    reg.SetSmoothingSigmasPerLevel(sigmas)
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return reg


def _rigid_scales(fixed: Image, body: np.ndarray, centre_mm: Sequence[float]) -> list[float]:
    """Optimiser scales of the Euler angles and translations from the physical shift.

    A change ``d`` (rad) of the angle about axis ``k`` moves a body voxel by
    ``d * r_k``, ``r_k`` its distance from the axis; the scale is the mean
    ``r_k**2`` over the body (translations: 1 per mm). ITK's own estimator
    (``SetOptimizerScalesFromPhysicalShift``) takes the corners of the field of
    view, which over-damps the rotations when the body fills a part of it.
    """
    step = max(1, math.ceil((np.prod(fixed.shape) / 32**3) ** (1 / 3)))
    index = np.argwhere(body[::step, ::step, ::step]) * step
    if len(index) < 10:
        index = np.argwhere(np.ones(body.shape, bool)[::step, ::step, ::step]) * step
    p = fixed.index_to_lps(index) - np.asarray(centre_mm, dtype=np.float64)
    sq = p**2
    r2 = [float(np.mean(sq[:, 1] + sq[:, 2])), float(np.mean(sq[:, 0] + sq[:, 2]))]
    r2.append(float(np.mean(sq[:, 0] + sq[:, 1])))
    return [max(v, 1.0) for v in r2] + [1.0, 1.0, 1.0]


def _execute(reg, f_img, m_img, deterministic: bool) -> None:
    """Run the method; typed error on failure; single-threaded when deterministic."""
    import SimpleITK as sitk

    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    try:
        if deterministic:
            # the metric takes ITK's global default thread count, not the method's
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
            reg.SetNumberOfThreads(1)
        reg.Execute(f_img, m_img)
    except RuntimeError as exc:
        raise GeometryError(
            "moving",
            f"registration failed ({_first_line(exc)})",
            None,
            "check that the images overlap and show the same anatomy; try "
            "initializer='geometry' or a coarser first level",
        ) from exc
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)


def _first_line(exc: Exception) -> str:
    lines = [s.strip() for s in str(exc).splitlines() if s.strip()]
    for s in lines:
        if "Description:" in s:
            return s.split("Description:", 1)[1].strip()
    return lines[-1] if lines else type(exc).__name__


def _summarise(fixed, moving, body, transform, rigid, kind, metric, reg) -> Registration:
    """The :class:`Registration` of an optimised ``transform`` with its quality."""
    import SimpleITK as sitk

    ncc_before = _ncc(fixed, moving, body, sitk.Euler3DTransform())
    ncc_after = _ncc(fixed, moving, body, transform)
    mean_d, max_d = _displacement(fixed, body, transform)
    params = rigid.GetParameters()
    out = Registration(
        transform=transform,
        kind=kind,
        translation_mm=tuple(float(v) for v in params[3:6]),
        rotation_deg=tuple(math.degrees(v) for v in params[0:3]),
        metric_name=metric,
        metric_value=float(reg.GetMetricValue()),
        metric_before=ncc_before,
        metric_after=ncc_after,
        stop_condition=reg.GetOptimizerStopConditionDescription(),
        iterations=int(reg.GetOptimizerIteration()),
        mean_displacement_mm=mean_d,
        max_displacement_mm=max_d,
    )
    logger.info(
        "registration %s: NCC %.4f -> %.4f, %s", kind, ncc_before, ncc_after, out.describe()
    )
    return out


def _body(img: Image) -> np.ndarray:
    """Body mask: above -500 HU with in-plane holes (lungs, bowel gas) filled for a CT."""
    data = np.asarray(img.data)
    if img.quantity is Quantity.HU or img.modality.upper() == "CT":
        from scipy import ndimage

        in_plane = np.zeros((3, 3, 3), bool)
        in_plane[1] = ndimage.generate_binary_structure(2, 1)
        return ndimage.binary_fill_holes(data > BODY_THRESHOLD_HU, structure=in_plane)
    return np.isfinite(data) if data.dtype.kind == "f" else np.ones(data.shape, bool)


def _ncc(fixed: Image, moving: Image, body: np.ndarray, transform) -> float:
    """NCC of fixed and moving resampled through ``transform``, over body and overlap."""
    import SimpleITK as sitk

    resampled = sitk.Resample(
        sitk.Cast(moving.to_sitk(), sitk.sitkFloat32),
        fixed.to_sitk(),
        transform,
        sitk.sitkLinear,
        math.nan,
        sitk.sitkFloat32,
    )
    m = sitk.GetArrayFromImage(resampled).astype(np.float64)
    f = np.asarray(fixed.data, dtype=np.float64)
    valid = body & np.isfinite(m) & np.isfinite(f)
    if valid.sum() < 2:
        return math.nan
    fv = f[valid] - f[valid].mean()
    mv = m[valid] - m[valid].mean()
    denom = math.sqrt(float(np.dot(fv, fv)) * float(np.dot(mv, mv)))
    return float(np.dot(fv, mv) / denom) if denom > 0 else math.nan


def _displacement(fixed: Image, body: np.ndarray, transform) -> tuple[float, float]:
    """Mean and max |T(x) - x| over body voxels of a sub-sampled fixed grid, mm."""
    import SimpleITK as sitk

    step = max(1, math.ceil((np.prod(fixed.shape) / _MAX_DISPLACEMENT_POINTS) ** (1 / 3)))
    body = body[::step, ::step, ::step]
    if not body.any():
        body = np.ones_like(body)
    coarse = fixed.replace(  # voxel i of the coarse grid is voxel i * step of the fixed
        data=np.zeros(body.shape, np.uint8),
        affine=fixed.affine @ np.diag([step, step, step, 1.0]),
    )
    grid = coarse.to_sitk()
    field = sitk.TransformToDisplacementField(
        transform,
        sitk.sitkVectorFloat64,
        grid.GetSize(),
        grid.GetOrigin(),
        grid.GetSpacing(),
        grid.GetDirection(),
    )
    d = np.linalg.norm(sitk.GetArrayFromImage(field), axis=-1)[body]
    return float(d.mean()), float(d.max())


def _any_inside(moving: Image, ref_sitk, transform) -> bool:
    """True when some reference voxel centre maps inside the moving image."""
    import SimpleITK as sitk

    ones = moving.replace(data=np.ones(moving.shape, np.uint8)).to_sitk()
    hit = sitk.Resample(ones, ref_sitk, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return bool(sitk.GetArrayViewFromImage(hit).any())
