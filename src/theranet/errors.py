"""Typed errors and the strictness policy.

Every error names the field (a DICOM keyword and tag, a sidecar key or a function
argument), the offending value, and how to fix it: the option that supplies a
missing value, or the lenient mode where an assumption is safe.

All errors subclass :class:`TheranetError` and a builtin (``ValueError`` for bad
input, ``RuntimeError`` for failures of a computation), so callers can catch either.

Strictness
----------
Anything that changes a dose (timing, units, calibration, geometry) is refused by
default (:attr:`Strictness.STRICT`). In :attr:`Strictness.LENIENT` mode, a reader
proceeds where a safe assumption exists and records that assumption, with the
error it replaced, in the image's provenance; see :class:`Assumptions`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable

__all__ = [
    "Assumptions",
    "CalibrationError",
    "DicomReadError",
    "GeometryError",
    "ImageDataError",
    "InconsistentSeriesError",
    "MeasurementError",
    "MissingFieldError",
    "NuclideError",
    "QuantityError",
    "ResponseError",
    "Strictness",
    "TheranetError",
    "TimingError",
    "UnitError",
]

logger = logging.getLogger(__name__)


class TheranetError(Exception):
    """Base class of all theranet errors.

    Parameters
    ----------
    field : str
        What is wrong: a DICOM keyword with its tag (``"Units (0054,1001)"``), a
        sidecar key or an argument name.
    problem : str
        What is wrong with it, in a few words.
    value : object, optional
        The offending value; omitted from the message when ``None``.
    fix : str, optional
        How to fix it: the option that supplies the value, or the lenient mode.
    source : str, optional
        Where the value came from (a file name or series description, never a
        patient identifier).
    """

    def __init__(
        self,
        field: str,
        problem: str,
        value: object = None,
        fix: str | None = None,
        source: str | None = None,
    ) -> None:
        self.field = field
        self.problem = problem
        self.value = value
        self.fix = fix
        self.source = source
        super().__init__(self._message())

    def _message(self) -> str:
        msg = f"{self.field}: {self.problem}"
        if self.value is not None:
            msg += f" (got {self.value!r})"
        if self.source:
            msg += f" in {self.source}"
        if self.fix:
            msg += f". Fix: {self.fix}"
        return msg

    def __reduce__(self):  # keep errors picklable (dask workers, multiprocessing)
        return (
            type(self),
            (self.field, self.problem, self.value, self.fix, self.source),
        )


class DicomReadError(TheranetError, ValueError):
    """A file is not DICOM, is truncated, or cannot be decoded."""


class MissingFieldError(TheranetError, ValueError):
    """A required attribute is absent or empty."""


class InconsistentSeriesError(TheranetError, ValueError):
    """Files of one series disagree (frame of reference, orientation, units, timing)."""


class GeometryError(TheranetError, ValueError):
    """Voxel geometry is missing, degenerate, irregular (slice gaps) or ambiguous."""


class UnitError(TheranetError, ValueError):
    """A unit is absent, unknown, or does not fit the quantity."""


class TimingError(TheranetError, ValueError):
    """Injection, acquisition or reference times are missing or inconsistent."""


class CalibrationError(TheranetError, ValueError):
    """A calibration factor is missing, non-finite or not positive."""


class ImageDataError(TheranetError, ValueError):
    """Voxel values are unusable (NaN, infinite, wrong shape)."""


class NuclideError(TheranetError, ValueError):
    """A nuclide name cannot be parsed or is not in the decay data."""


class QuantityError(TheranetError, ValueError):
    """An operation does not apply to the image's physical quantity."""


class ResponseError(TheranetError, ValueError):
    """A response-assessment input is unusable (the message names the field and row)."""


class MeasurementError(TheranetError, ValueError):
    """A lesion mask or a measurement parameter is unusable (empty mask, bad threshold)."""


class Strictness(enum.Enum):
    """How readers treat dose-relevant problems.

    ``STRICT`` raises; ``LENIENT`` proceeds where a safe assumption exists and
    records it (see :class:`Assumptions`). Problems without a safe assumption
    (for example NaN voxels or a negative calibration factor) raise in both modes.
    """

    STRICT = "strict"
    LENIENT = "lenient"

    @classmethod
    def parse(cls, value: Strictness | str) -> Strictness:
        """Accept a member or its name (``"strict"``/``"lenient"``)."""
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            raise ValueError(
                f"strictness: unknown mode {value!r}; use 'strict' or 'lenient'"
            ) from None


class Assumptions:
    """Collects the assumptions a lenient reader makes.

    Parameters
    ----------
    strictness : Strictness or str
        ``STRICT`` makes :meth:`allow` raise the error it is given.

    Examples
    --------
    >>> a = Assumptions("lenient")
    >>> a.allow(UnitError("Units (0054,1001)", "absent"), "assumed BQML")
    >>> a.records
    ('Units (0054,1001): absent; assumed BQML',)
    """

    def __init__(self, strictness: Strictness | str = Strictness.STRICT) -> None:
        self.strictness = Strictness.parse(strictness)
        self._records: list[str] = []

    def allow(self, error: TheranetError, assumption: str) -> None:
        """Raise ``error`` when strict; otherwise record ``assumption`` and go on."""
        if self.strictness is Strictness.STRICT:
            raise error
        record = f"{error.field}: {error.problem}; {assumption}"
        logger.warning("assumption: %s", record)
        self._records.append(record)

    def note(self, record: str) -> None:
        """Record an assumption that needs no permission (informational)."""
        self._records.append(record)

    def extend(self, records: Iterable[str]) -> None:
        self._records.extend(records)

    @property
    def records(self) -> tuple[str, ...]:
        return tuple(self._records)
