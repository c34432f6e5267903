"""Tumour response assessment: RECIST 1.1, Choi / modified Choi and PERCIST 1.0.

From a lesion measurement table (CSV, :mod:`theranet.response.table`) to per-study
RECIST categories and a per-lesion table::

    >>> from theranet.response import assess_csv          # doctest: +SKIP
    >>> results = assess_csv("lesions.csv", confirmation=True)  # doctest: +SKIP
    >>> results["P01"].study_rows(), results["P01"].lesion_rows()  # doctest: +SKIP

Rules and sources: clinical.md §7.1 (RECIST 1.1, :mod:`~theranet.response.recist`),
§7.2 (Choi, :mod:`~theranet.response.choi`), §7.3 (PERCIST 1.0,
:mod:`~theranet.response.percist`).
"""

from __future__ import annotations

from theranet.response.choi import ChoiResult, ChoiStudy, choi_response
from theranet.response.percist import (
    PercistResponse,
    PercistResult,
    PercistScan,
    PercistSettings,
    percist_response,
)
from theranet.response.recist import (
    PatientResponse,
    Response,
    StudyResponse,
    assess_csv,
    assess_measurements,
    assess_patient,
    best_overall_response,
    overall_response,
)
from theranet.response.table import (
    Measurement,
    ResponseError,
    group_studies,
    read_measurements,
)

__all__ = [
    "ChoiResult",
    "ChoiStudy",
    "Measurement",
    "PatientResponse",
    "PercistResponse",
    "PercistResult",
    "PercistScan",
    "PercistSettings",
    "Response",
    "ResponseError",
    "StudyResponse",
    "assess_csv",
    "assess_measurements",
    "assess_patient",
    "best_overall_response",
    "choi_response",
    "group_studies",
    "overall_response",
    "percist_response",
    "read_measurements",
]
