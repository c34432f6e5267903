"""Lesion measurements for response assessment: RECIST, mRECIST, Choi and PERCIST.

Conventions
-----------
Masks
    A lesion mask is a boolean array (or 0/1 integers) on the grid of the image
    it was drawn on, indexed like ``Image.data``; ``affine`` maps its array index
    to patient LPS coordinates, mm (see :mod:`theranet.image`).
Axial slices
    RECIST diameters are measured in axial slices. The slice axis is the array
    axis whose step is most nearly along the patient's S-I axis (LPS z); the
    plane of a slice is spanned by the other two array axes, so oblique and
    sheared affines are handled. A grid with no array axis within 45 degrees of
    S-I has no axial slices and is refused (:class:`~theranet.errors.GeometryError`).
Diameters (the edge correction)
    A diameter is the distance between the two farthest voxel centres of the
    lesion in the slice (any in-plane direction: the Feret diameter of the centres,
    found on their convex hull), plus half an in-plane voxel,
    ``h / 2`` with ``h = sqrt(in-plane pixel area)`` (the pixel size for square
    pixels). The farthest centres of a digitised lesion lie inside its edge: over
    4000 random discretised ellipses (semi-axes 5-30 mm, axis ratio 0.4-1, random
    orientation, sub-voxel position, pixel sides 0.7-1.0 mm) the centre-to-centre
    distance fell short of the analytic long axis by 0.42 pixel on average (about
    0.2 pixel at each end, more at the pointed ends of small elongated ellipses)
    and the perpendicular extent fell short of the minor axis by 0.27 pixel. With
    half a pixel added the mean errors are +0.08 pixel (long axis) and +0.23 pixel
    (short axis), 99 % of the cases lie within +-0.7 pixel and 99.9 % within one
    pixel (worst: -1.1 pixel, long axis of a small elongated ellipse). A whole
    pixel (centres +- half a pixel) or the convex hull of the voxel corners would
    over-measure the long axis by about 0.5 and 0.8 pixel on average. The endpoints
    returned lie a quarter pixel beyond the two centres, so their distance is the diameter.
Short axis
    In the slice of the longest diameter: the extent of the lesion perpendicular to
    the long axis (its caliper width in that direction), with the same half-pixel
    edge correction. For convex lesions such as lymph nodes this is the longest
    diameter perpendicular to the long axis (RECIST 1.1 node short axis).
SULpeak (PERCIST 1.0, Wahl et al. 2009, J Nucl Med 50:122S)
    The largest mean SUL in a sphere of 1 cm^3 (radius :data:`SUL_PEAK_RADIUS_MM`)
    whose centre is a voxel centre inside the lesion; the sphere may reach outside
    the lesion. Each voxel enters the mean with the fraction of its volume inside
    the sphere (partial-voxel weights, sampled on a regular sub-grid of
    ``8 x 8 x 8`` points per voxel). Where the sphere reaches outside the image,
    the mean is taken over the part inside.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from theranet.errors import GeometryError, ImageDataError, MeasurementError, QuantityError
from theranet.image import Image, Labels, Quantity

__all__ = [
    "SUL_PEAK_RADIUS_MM",
    "SUL_PEAK_VOLUME_ML",
    "Diameter",
    "LesionMeasurement",
    "MeasurementError",
    "enhancing_fraction",
    "enhancing_longest_diameter_mm",
    "longest_axial_diameter_mm",
    "mean_value",
    "measure_lesions",
    "short_axis_mm",
    "slice_axis",
    "sul_peak",
    "volume_ml",
]

logger = logging.getLogger(__name__)

#: Volume of the PERCIST SULpeak sphere, mL (Wahl et al. 2009).
SUL_PEAK_VOLUME_ML = 1.0
#: Radius of a 1 cm^3 sphere, mm: (3 * 1000 mm^3 / (4 pi))^(1/3) = 6.2035 mm.
SUL_PEAK_RADIUS_MM = (3.0 * 1000.0 * SUL_PEAK_VOLUME_ML / (4.0 * math.pi)) ** (1.0 / 3.0)

#: Edge correction added to centre-to-centre distances, in in-plane pixels.
_EDGE_CORRECTION_PIXELS = 0.5
#: Sub-samples per voxel axis for the partial-voxel weights of the SULpeak sphere.
_SPHERE_SUBSAMPLES = 8
#: Smallest |cos| between the slice axis and S-I accepted (45 degrees).
_MIN_AXIAL_COSINE = math.cos(math.radians(45.0))
_NODE_WORDS = ("node", "nodal", "lymph")
_NODE_TOKENS = frozenset({"ln", "ln.", "lnn"})


class Diameter(NamedTuple):
    """A diameter measured in one axial slice.

    Attributes
    ----------
    diameter_mm : float
        The diameter, mm (with the half-pixel edge correction, see the module notes).
    slice_index : int or None
        Index of the slice along the slice axis (:func:`slice_axis`); None when
        nothing was measured (``diameter_mm == 0``).
    endpoints_mm : ndarray of shape (2, 3) or None
        LPS positions of the two ends of the diameter, mm; their distance is
        ``diameter_mm``.
    """

    diameter_mm: float
    slice_index: int | None
    endpoints_mm: NDArray[np.float64] | None


@dataclass(frozen=True)
class LesionMeasurement:
    """The measurements of one lesion at one time point.

    Attributes
    ----------
    label : int
        Label value of the lesion in the label map.
    name : str
        Its name in the label map.
    site : str or None
        Organ or site, when known (``sites`` or ``organs`` of :func:`measure_lesions`).
    is_node : bool
        True for a lymph node (measured by its short axis in RECIST 1.1).
    longest_diameter_mm : float
        Longest axial diameter, mm.
    short_axis_mm : float
        Short axis in the slice of the longest diameter, mm.
    slice_index : int
        Slice of the longest diameter (along :func:`slice_axis` of the CT).
    volume_ml : float
        Lesion volume, mL.
    mean_hu : float
        Mean CT number over the lesion, HU (Choi).
    sul_peak : float or None
        PERCIST SULpeak, g/mL; None without a PET in SUL.
    """

    label: int
    name: str
    site: str | None
    is_node: bool
    longest_diameter_mm: float
    short_axis_mm: float
    slice_index: int
    volume_ml: float
    mean_hu: float
    sul_peak: float | None = None

    @property
    def recist_diameter_mm(self) -> float:
        """The diameter RECIST 1.1 adds up: the short axis of a node, else the longest
        diameter, mm."""
        return self.short_axis_mm if self.is_node else self.longest_diameter_mm


# -- geometry -----------------------------------------------------------------
def slice_axis(affine: NDArray[np.float64]) -> int:
    """The array axis across axial slices: the one most nearly along S-I (LPS z).

    Parameters
    ----------
    affine : ndarray of shape (4, 4)
        Array index -> LPS, mm.

    Returns
    -------
    int
        0, 1 or 2 (0 for the usual ``(Z, Y, X)`` order).

    Raises
    ------
    GeometryError
        When no array axis lies within 45 degrees of S-I (a sagittal or coronal
        stack without axial slices).
    """
    m = _matrix(affine)
    cosines = np.abs(m[2, :]) / np.linalg.norm(m, axis=0)
    axis = int(np.argmax(cosines))
    if cosines[axis] < _MIN_AXIAL_COSINE:
        raise GeometryError(
            "affine",
            "no array axis lies within 45 degrees of the S-I axis, so the grid has no axial slices",
            np.round(m, 4).tolist(),
            "resample the image and mask onto an axial grid (Image.resample_to)",
        )
    return axis


class _Plane(NamedTuple):
    axis: int  # slice axis
    inplane: tuple[int, int]  # the two in-plane array axes
    to_2d: NDArray[np.float64]  # (2, 2): in-plane index (p, q) -> 2-D mm coordinates
    basis: NDArray[np.float64]  # (2, 3): orthonormal LPS directions of the 2-D axes
    pixel_mm: float  # sqrt of the in-plane pixel area


def _plane(affine: NDArray[np.float64]) -> _Plane:
    m = _matrix(affine)
    axis = slice_axis(affine)
    p, q = (i for i in range(3) if i != axis)
    cp, cq = m[:, p], m[:, q]
    e1 = cp / np.linalg.norm(cp)
    e2 = cq - (cq @ e1) * e1
    e2 = e2 / np.linalg.norm(e2)
    basis = np.stack([e1, e2])
    to_2d = np.stack([basis @ cp, basis @ cq])  # rows: step of p, step of q in 2-D
    pixel_mm = math.sqrt(float(np.linalg.norm(np.cross(cp, cq))))
    return _Plane(axis, (p, q), to_2d, basis, pixel_mm)


def _matrix(affine: NDArray[np.float64]) -> NDArray[np.float64]:
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)):
        raise GeometryError(
            "affine", "must be a finite 4x4 matrix", a.shape, "pass Image.affine of the image"
        )
    m = a[:3, :3]
    if abs(np.linalg.det(m)) < 1e-9:
        raise GeometryError("affine", "is singular (zero voxel size or degenerate axes)", None)
    return m


def _check_mask(
    mask: NDArray, shape: tuple[int, ...] | None = None, name: str = "mask"
) -> NDArray[np.bool_]:
    m = np.asarray(mask)
    if m.ndim != 3:
        raise GeometryError(name, "must be a 3-D array", m.shape, "index it like Image.data")
    if m.dtype.kind not in "biu":
        raise MeasurementError(
            name,
            "must be boolean (or 0/1 integers)",
            str(m.dtype),
            "threshold a probability map first, e.g. mask > 0.5",
        )
    if shape is not None and m.shape != tuple(shape):
        raise GeometryError(
            name,
            f"has shape {m.shape}, not the image's {tuple(shape)}",
            m.shape,
            "resample the labels onto the image grid (Labels.resample_to(image))",
        )
    m = m.astype(bool, copy=False)
    if not m.any():
        raise MeasurementError(
            name,
            "is empty (no voxel in the lesion)",
            None,
            "measure only lesions present in the label map; a disappeared lesion is 0 mm",
        )
    return m


# -- diameters ------------------------------------------------------------------
def _inplane_boundary(mask: NDArray[np.bool_], axis: int) -> NDArray[np.bool_]:
    """Voxels with an in-plane 4-neighbour outside the mask (the hull is theirs)."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    centre = [1, 1, 1]
    structure[tuple(centre)] = True
    for ax in range(3):
        if ax == axis:
            continue
        for d in (0, 2):
            idx = list(centre)
            idx[ax] = d
            structure[tuple(idx)] = True
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def _farthest_pair(points: NDArray[np.float64]) -> tuple[float, int, int]:
    """Largest distance between 2-D points and the indices of the pair."""
    n = len(points)
    if n == 1:
        return 0.0, 0, 0
    candidates = np.arange(n)
    if n > 3:
        from scipy.spatial import ConvexHull, QhullError

        try:
            candidates = ConvexHull(points).vertices
        except QhullError:  # collinear points: the extremes along their line
            centred = points - points.mean(axis=0)
            direction = np.linalg.svd(centred, full_matrices=False)[2][0]
            s = centred @ direction
            candidates = np.array([int(np.argmin(s)), int(np.argmax(s))])
    hull = points[candidates]
    d2 = ((hull[:, None, :] - hull[None, :, :]) ** 2).sum(axis=-1)
    i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
    return math.sqrt(float(d2[i, j])), int(candidates[i]), int(candidates[j])


def _slice_points(
    boundary: NDArray[np.bool_], plane: _Plane
) -> dict[int, tuple[NDArray[np.float64], NDArray[np.intp]]]:
    """Per slice index: 2-D mm coordinates of its boundary voxel centres and their
    in-plane indices (relative to the slice's index origin)."""
    idx = np.argwhere(boundary)
    out: dict[int, tuple[NDArray[np.float64], NDArray[np.intp]]] = {}
    if idx.size == 0:
        return out
    order = np.argsort(idx[:, plane.axis], kind="stable")
    idx = idx[order]
    slices, starts = np.unique(idx[:, plane.axis], return_index=True)
    bounds = [*starts[1:], len(idx)]
    p, q = plane.inplane
    for k, a, b in zip(slices, starts, bounds, strict=True):
        pq = idx[a:b][:, [p, q]]
        out[int(k)] = (pq.astype(np.float64) @ plane.to_2d, pq)
    return out


def _to_lps(
    affine: NDArray[np.float64], plane: _Plane, k: int, xy_mm: NDArray[np.float64]
) -> NDArray[np.float64]:
    """2-D in-plane mm coordinates of slice ``k`` -> LPS, mm."""
    index = np.zeros(3)
    index[plane.axis] = k
    origin = affine[:3, :3] @ index + affine[:3, 3]
    return origin + np.atleast_2d(xy_mm) @ plane.basis


def _longest(mask: NDArray[np.bool_], affine: NDArray[np.float64]):
    """Slice, 2-D points and farthest pair of the longest in-plane diameter."""
    plane = _plane(affine)
    per_slice = _slice_points(_inplane_boundary(mask, plane.axis), plane)
    best = None
    for k, (pts, _) in per_slice.items():  # ascending slice index: ties keep the first
        d, i, j = _farthest_pair(pts)
        if best is None or d > best[0] + 1e-9:
            best = (d, k, pts, i, j)
    assert best is not None  # the mask is not empty
    return plane, best


def _diameter(
    affine: NDArray[np.float64],
    plane: _Plane,
    k: int,
    start_2d: NDArray[np.float64],
    stop_2d: NDArray[np.float64],
    direction: NDArray[np.float64],
    centre_distance_mm: float,
) -> Diameter:
    """A diameter from two voxel centres (2-D in-plane mm) with the edge correction."""
    extra = 0.5 * _EDGE_CORRECTION_PIXELS * plane.pixel_mm
    ends = np.stack([start_2d - extra * direction, stop_2d + extra * direction])
    return Diameter(
        centre_distance_mm + 2.0 * extra, int(k), _to_lps(np.asarray(affine), plane, k, ends)
    )


def longest_axial_diameter_mm(mask: NDArray, affine: NDArray[np.float64]) -> Diameter:
    """RECIST 1.1 longest diameter: the longest in-plane diameter over axial slices.

    Parameters
    ----------
    mask : ndarray of bool, shape (A0, A1, A2)
        The lesion.
    affine : ndarray of shape (4, 4)
        Array index -> LPS, mm, of the mask's grid.

    Returns
    -------
    Diameter
        ``(diameter_mm, slice_index, endpoints_mm)``: the longest diameter, mm
        (farthest voxel centres of a slice, in any in-plane direction, plus half
        a pixel; see the module notes), the slice along :func:`slice_axis` and the
        LPS ends, mm. Ties between slices go to the lowest slice index.

    Raises
    ------
    MeasurementError
        For an empty mask.
    GeometryError
        For a mask that is not 3-D or a grid without axial slices.

    Examples
    --------
    >>> import numpy as np
    >>> zyx = np.eye(4)[[2, 1, 0, 3]]  # 1 mm voxels in (Z, Y, X) order
    >>> mask = np.zeros((1, 5, 5), bool); mask[0, 1:4, 1:4] = True
    >>> round(longest_axial_diameter_mm(mask, zyx).diameter_mm, 3)  # 2 sqrt(2) + 0.5
    3.328
    """
    m = _check_mask(mask)
    plane, (d, k, pts, i, j) = _longest(m, affine)
    direction = _unit(pts[j] - pts[i], plane)
    return _diameter(affine, plane, k, pts[i], pts[j], direction, d)


def short_axis_mm(mask: NDArray, affine: NDArray[np.float64]) -> Diameter:
    """RECIST 1.1 short axis: the extent perpendicular to the longest diameter.

    Measured in the slice of :func:`longest_axial_diameter_mm`, as the lesion's
    caliper width perpendicular to the long axis in the plane of the slice (the
    longest perpendicular diameter of a convex lesion such as a lymph node), with
    the same half-pixel edge correction.

    Parameters
    ----------
    mask : ndarray of bool, shape (A0, A1, A2)
    affine : ndarray of shape (4, 4)
        Array index -> LPS, mm.

    Returns
    -------
    Diameter
        ``(diameter_mm, slice_index, endpoints_mm)``; the ends lie on a line
        perpendicular to the long axis, midway between the two extreme voxels.

    Raises
    ------
    MeasurementError
        For an empty mask.
    """
    m = _check_mask(mask)
    plane, (_, k, pts, i, j) = _longest(m, affine)
    u = _unit(pts[j] - pts[i], plane)
    v = np.array([-u[1], u[0]])
    t = pts @ v
    lo, hi = int(np.argmin(t)), int(np.argmax(t))
    s0 = 0.5 * (pts[lo] @ u + pts[hi] @ u)
    start, stop = s0 * u + t[lo] * v, s0 * u + t[hi] * v
    return _diameter(affine, plane, k, start, stop, v, float(t[hi] - t[lo]))


def _unit(vector: NDArray[np.float64], plane: _Plane) -> NDArray[np.float64]:
    n = float(np.linalg.norm(vector))
    if n == 0.0:  # one voxel: any direction; take the first in-plane axis
        return plane.to_2d[0] / np.linalg.norm(plane.to_2d[0])
    return vector / n


# -- volume and means -------------------------------------------------------------
def volume_ml(mask: NDArray, affine: NDArray[np.float64]) -> float:
    """Lesion volume, mL: voxel count x voxel volume (1 mL = 1000 mm^3).

    Raises
    ------
    MeasurementError
        For an empty mask.
    """
    m = _check_mask(mask)
    return float(np.count_nonzero(m)) * abs(float(np.linalg.det(_matrix(affine)))) / 1000.0


def mean_value(image: Image, mask: NDArray) -> float:
    """Mean voxel value over the lesion, in the image's unit (HU for Choi).

    Parameters
    ----------
    image : Image
        Any intensive image (CT in HU for the Choi criteria, portal-venous phase).
    mask : ndarray of bool
        On the image's grid.

    Returns
    -------
    float
        Mean of the voxel values inside the mask, ``image.unit``.

    Raises
    ------
    MeasurementError
        For an empty mask.
    GeometryError
        When the mask's shape is not the image's.
    ImageDataError
        For non-finite values inside the lesion.
    """
    m = _check_mask(mask, image.shape)
    values = np.asarray(image.data)[m].astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ImageDataError(
            "image.data",
            "has non-finite values inside the lesion",
            int(np.count_nonzero(~np.isfinite(values))),
            "fill or exclude NaN/inf voxels before measuring",
        )
    return float(values.mean())


def _viable(mask: NDArray, arterial_ct: Image, threshold_hu: float) -> tuple[NDArray, NDArray]:
    if arterial_ct.quantity is not Quantity.HU:
        raise QuantityError(
            "arterial_ct.quantity",
            "mRECIST needs an arterial-phase CT in HU",
            arterial_ct.quantity.value,
            "pass the arterial-phase CT",
        )
    threshold = _finite("threshold_hu", threshold_hu, "give the enhancement threshold in HU")
    m = _check_mask(mask, arterial_ct.shape)
    return m, m & (np.asarray(arterial_ct.data) >= threshold)


def enhancing_fraction(mask: NDArray, arterial_ct: Image, threshold_hu: float) -> float:
    """Fraction of the lesion volume that enhances in the arterial phase (mRECIST).

    Parameters
    ----------
    mask : ndarray of bool
        The whole lesion, on the CT's grid.
    arterial_ct : Image
        Arterial-phase CT, HU.
    threshold_hu : float
        Viable tumour is the part of the lesion at or above this CT number, HU.
        mRECIST (Lencioni & Llovet 2010) defines viable tumour as arterially
        enhancing tissue but gives no number: choose it for the contrast protocol
        (for example from the enhancement of normal liver) and report it.

    Returns
    -------
    float
        Enhancing voxels / lesion voxels, in [0, 1].
    """
    m, viable = _viable(mask, arterial_ct, threshold_hu)
    return float(np.count_nonzero(viable)) / float(np.count_nonzero(m))


def enhancing_longest_diameter_mm(
    mask: NDArray, arterial_ct: Image, threshold_hu: float
) -> Diameter:
    """mRECIST longest diameter of the viable (arterially enhancing) part of a lesion.

    The longest axial diameter (:func:`longest_axial_diameter_mm`) of the voxels of
    the lesion at or above ``threshold_hu``. Where enhancing tissue lies on both
    sides of a necrotic area of the same slice, the diameter spans it; Lencioni &
    Llovet (2010) ask readers to leave out major intervening necrosis, so check
    the returned endpoints for rim-enhancing lesions.

    Parameters
    ----------
    mask : ndarray of bool
        The whole lesion, on the CT's grid.
    arterial_ct : Image
        Arterial-phase CT, HU.
    threshold_hu : float
        Enhancement threshold, HU (see :func:`enhancing_fraction`).

    Returns
    -------
    Diameter
        ``Diameter(0.0, None, None)`` when no voxel enhances (mRECIST: no viable
        tumour).
    """
    _, viable = _viable(mask, arterial_ct, threshold_hu)
    if not viable.any():
        return Diameter(0.0, None, None)
    return longest_axial_diameter_mm(viable, arterial_ct.affine)


# -- SULpeak ------------------------------------------------------------------------
def _sphere_weights(affine: NDArray[np.float64], radius_mm: float) -> NDArray[np.float64]:
    """Fraction of each voxel (offset from the centre voxel) inside a sphere."""
    m = _matrix(affine)
    reach = radius_mm * np.linalg.norm(np.linalg.inv(m), axis=1)  # index half-extent
    half = np.ceil(reach + 0.5).astype(int)
    axes = [np.arange(-h, h + 1) for h in half]
    offsets = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    s = (np.arange(_SPHERE_SUBSAMPLES) + 0.5) / _SPHERE_SUBSAMPLES - 0.5
    sub = np.stack(np.meshgrid(s, s, s, indexing="ij"), axis=-1).reshape(-1, 3)
    weights = np.empty(len(offsets))
    r2 = radius_mm**2
    for a in range(0, len(offsets), 512):
        pts = (offsets[a : a + 512, None, :] + sub[None, :, :]) @ m.T
        weights[a : a + 512] = ((pts**2).sum(axis=-1) <= r2).mean(axis=1)
    return weights.reshape(tuple(2 * h + 1 for h in half))


def sul_peak(image_sul: Image, mask: NDArray) -> float:
    """PERCIST SULpeak: the largest mean SUL in a 1 cm^3 sphere centred in the lesion.

    Parameters
    ----------
    image_sul : Image
        PET in SUL (``Quantity.SUL``, g/mL), e.g. ``pet.to_suv("lbm")``.
    mask : ndarray of bool
        The lesion on the PET grid; the sphere's centre runs over its voxel centres.

    Returns
    -------
    float
        SULpeak, g/mL. The sphere (radius :data:`SUL_PEAK_RADIUS_MM`) weights each
        voxel by the fraction of it inside (module notes) and may extend beyond
        the lesion.

    Raises
    ------
    QuantityError
        When the image is not in SUL (SUVbw or activity concentration included).
    MeasurementError
        For an empty mask.
    ImageDataError
        For non-finite PET values within reach of the lesion.
    """
    if not isinstance(image_sul, Image) or image_sul.quantity is not Quantity.SUL:
        got = image_sul.quantity.value if isinstance(image_sul, Image) else type(image_sul)
        raise QuantityError(
            "image_sul.quantity",
            "PERCIST SULpeak needs a PET normalised to lean body mass (SUL)",
            got,
            "convert the activity concentration with image.to_suv('lbm')",
        )
    m = _check_mask(mask, image_sul.shape)
    from scipy.signal import fftconvolve

    weights = _sphere_weights(image_sul.affine, SUL_PEAK_RADIUS_MM)
    half = np.array(weights.shape) // 2
    idx = np.argwhere(m)
    lo = np.maximum(idx.min(axis=0) - half, 0)
    hi = np.minimum(idx.max(axis=0) + half + 1, image_sul.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    values = np.asarray(image_sul.data)[box].astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ImageDataError(
            "image_sul.data",
            "has non-finite values within reach of the lesion",
            int(np.count_nonzero(~np.isfinite(values))),
            "fill NaN/inf voxels before measuring SULpeak",
        )
    kernel = weights[::-1, ::-1, ::-1]  # fftconvolve flips: this correlates with weights
    total = fftconvolve(values, kernel, mode="same")
    norm = fftconvolve(np.ones_like(values), kernel, mode="same")
    inside = m[box]
    means = total[inside] / norm[inside]
    return float(means.max())


# -- all lesions ------------------------------------------------------------------------
def _default_is_node(name: str) -> bool:
    low = name.lower()
    if any(word in low for word in _NODE_WORDS):
        return True
    return any(tok in _NODE_TOKENS for tok in re.split(r"[^a-z0-9.]+", low))


def _node_rule(
    is_node: Callable[[str], bool] | Collection[str] | bool | None,
) -> Callable[[str], bool]:
    if is_node is None:
        return _default_is_node
    if isinstance(is_node, bool):
        return lambda _name: is_node
    if callable(is_node):
        return lambda name: bool(is_node(name))
    if isinstance(is_node, str):
        raise MeasurementError(
            "is_node",
            "a single string is ambiguous",
            is_node,
            "pass a collection of node names, e.g. {'node 1'}",
        )
    names = frozenset(is_node)
    return lambda name: name in names


def measure_lesions(
    labels: Labels,
    ct: Image,
    *,
    pet_sul: Image | None = None,
    is_node: Callable[[str], bool] | Collection[str] | bool | None = None,
    sites: Mapping[str, str] | None = None,
    organs: Labels | None = None,
) -> list[LesionMeasurement]:
    """Measure every lesion of a label map: LD, SA, volume, mean HU and SULpeak.

    Parameters
    ----------
    labels : Labels
        One label value per lesion, on the CT grid. Values present in the map
        are measured (unnamed values are called ``"label <value>"``); named
        lesions without voxels are left out (see
        :func:`theranet.response.tracking.match_lesions` for disappeared lesions).
    ct : Image
        CT in HU (portal-venous phase for Choi), on the grid of ``labels``.
    pet_sul : Image, optional
        PET in SUL for the PERCIST SULpeak. When its grid differs from the CT's,
        the labels are resampled onto it (nearest neighbour); a lesion with no PET
        voxel centre inside takes the PET voxel nearest to its centroid.
    is_node : callable, collection of str or bool, optional
        Which lesions are lymph nodes: a predicate on the name, the set of node
        names, or True/False for all. Default: names containing "node", "nodal"
        or "lymph", or the word "LN" (case-insensitive).
    sites : mapping of str to str, optional
        Lesion name -> organ/site; takes precedence over ``organs``.
    organs : Labels, optional
        Organ segmentation on the CT grid: a lesion's site is the organ it overlaps
        most (None where it overlaps none).

    Returns
    -------
    list of LesionMeasurement
        In ascending label value.

    Raises
    ------
    QuantityError
        When ``ct`` is not in HU or ``pet_sul`` not in SUL.
    GeometryError
        When ``labels`` or ``organs`` is not on the CT grid.
    """
    if ct.quantity is not Quantity.HU:
        raise QuantityError("ct.quantity", "must be a CT in HU", ct.quantity.value, "pass the CT")
    for name, lab in (("labels", labels), ("organs", organs)):
        if lab is not None and not lab.image.same_grid(ct):
            raise GeometryError(
                name,
                "is not on the CT grid",
                lab.image.shape,
                f"resample it first: {name}.resample_to(ct)",
            )
    if pet_sul is not None and pet_sul.quantity is not Quantity.SUL:
        raise QuantityError(
            "pet_sul.quantity",
            "PERCIST SULpeak needs a PET in SUL",
            pet_sul.quantity.value,
            "convert it with pet.to_suv('lbm')",
        )
    node = _node_rule(is_node)
    data = np.asarray(labels.image.data).astype(np.int64, copy=False)
    pet_labels = None
    if pet_sul is not None:
        pet_labels = (
            data
            if labels.image.same_grid(pet_sul)
            else np.asarray(labels.resample_to(pet_sul).image.data).astype(np.int64)
        )
    boxes = ndimage.find_objects(np.where(data > 0, data, 0))
    out = []
    for value0, box in enumerate(boxes):
        if box is None:
            continue
        value = value0 + 1
        name = labels.names.get(value, f"label {value}")
        mask = data[box] == value
        affine = ct.affine.copy()
        start = np.array([s.start for s in box], dtype=np.float64)
        affine[:3, 3] = ct.index_to_lps(start)
        ld = longest_axial_diameter_mm(mask, affine)
        sa = short_axis_mm(mask, affine)
        site = sites.get(name) if sites is not None else None
        if site is None and organs is not None:
            site = _organ_of(organs, box, mask)
        peak = None
        if pet_sul is not None:
            pet_mask = pet_labels == value
            if not pet_mask.any():
                centre = ct.index_to_lps(np.argwhere(mask).mean(axis=0) + start)
                index = np.rint(pet_sul.lps_to_index(centre)).astype(int)
                index = np.clip(index, 0, np.array(pet_sul.shape) - 1)
                pet_mask = np.zeros(pet_sul.shape, dtype=bool)
                pet_mask[tuple(index)] = True
                logger.info("lesion %s: no PET voxel centre inside, SULpeak at its centroid", name)
            peak = sul_peak(pet_sul, pet_mask)
        ct_values = ct.replace(data=np.asarray(ct.data)[box], affine=affine)
        out.append(
            LesionMeasurement(
                label=value,
                name=name,
                site=site,
                is_node=node(name),
                longest_diameter_mm=ld.diameter_mm,
                short_axis_mm=sa.diameter_mm,
                slice_index=int(ld.slice_index) + int(start[slice_axis(affine)]),
                volume_ml=volume_ml(mask, affine),
                mean_hu=mean_value(ct_values, mask),
                sul_peak=peak,
            )
        )
    return out


def _organ_of(organs: Labels, box: tuple[slice, ...], mask: NDArray[np.bool_]) -> str | None:
    values = np.asarray(organs.image.data)[box][mask].astype(np.int64)
    values = values[values > 0]
    if values.size == 0:
        return None
    best = int(np.argmax(np.bincount(values)))
    return organs.names.get(best, f"label {best}")


def _finite(name: str, value: float, fix: str) -> float:
    if isinstance(value, bool):
        raise MeasurementError(name, "must be a number", value, fix)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MeasurementError(name, "must be a number", value, fix) from None
    if not math.isfinite(number):
        raise MeasurementError(name, "must be finite", value, fix)
    return number
