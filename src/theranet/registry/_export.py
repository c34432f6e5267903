"""CSV and JSON exports of registry records, written atomically."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from theranet._version import __version__
from theranet.registry.records import CycleRecord

__all__ = ["CSV_COLUMNS", "JSON_FORMAT", "atomic_write_text", "to_csv", "to_json"]

#: Columns of the CSV export, one row per region per cycle. Numbers are written
#: with the shortest representation that reads back to the same float; an
#: unknown value is empty. ``times_h`` joins the time points with ``;``. The
#: methods are in the JSON export only.
CSV_COLUMNS = (
    "patient_id",
    "treatment",
    "cycle",
    "administration",
    "tracer",
    "nuclide",
    "administered_activity_mbq",
    "times_h",
    "software_version",
    "region",
    "kind",
    "volume_ml",
    "mass_g",
    "tia_mbq_h",
    "tia_sd_mbq_h",
    "mean_dose_gy",
    "dose_sd_gy",
    "bed_gy",
    "eqd2_gy",
    "model",
    "method",
)

#: ``"format"`` value of the JSON export.
JSON_FORMAT = "theranet.registry/1"

_REGION_COLUMNS = CSV_COLUMNS[CSV_COLUMNS.index("region") :]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def to_csv(records: Sequence[CycleRecord]) -> str:
    """The CSV text of ``records`` (a cycle without regions gives one row)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for rec in records:
        head = [
            rec.patient_id,
            rec.treatment,
            rec.number,
            rec.administration.isoformat(),
            rec.tracer,
            rec.nuclide,
            rec.administered_activity_mbq,
            ";".join(repr(t) for t in rec.times_h),
            rec.software_version,
        ]
        rows = [[getattr(r, c) for c in _REGION_COLUMNS] for r in rec.regions.values()]
        for row in rows or [[None] * len(_REGION_COLUMNS)]:
            writer.writerow([_cell(v) for v in head + row])
    return buf.getvalue()


def to_json(records: Sequence[CycleRecord]) -> str:
    """The JSON text of ``records``: every field, methods included."""
    doc = {
        "format": JSON_FORMAT,
        "software_version": __version__,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(),
        "cycles": [rec.as_dict() for rec in records],
    }
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``.

    A reader sees the old file or the whole new one, never a part. A new file is
    readable by its owner only (exports hold health data); a replaced file keeps
    its permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
