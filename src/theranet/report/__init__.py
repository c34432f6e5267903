"""Cycle reports: figures (matplotlib), a self-contained HTML page (jinja2) and a PDF.

:func:`write_report` is the entry point; :mod:`theranet.report.model` holds the
data it reads. matplotlib and jinja2 are imported only when a report is drawn.
"""

from theranet.report.model import CurveData, CycleReport, DoseRow, RegistrationRow
from theranet.report.writer import write_report

__all__ = ["CurveData", "CycleReport", "DoseRow", "RegistrationRow", "write_report"]
