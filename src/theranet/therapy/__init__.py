"""Therapy decisions for radionuclide therapy given in cycles.

Submodules: :mod:`theranet.therapy.eligibility` (PRRT and 131I-MIBG eligibility
with every reason and its source, clinical.md §1.10, §1.11, §3, §5.1, §5.4),
:mod:`theranet.therapy.planning` (dose-based activity for the next cycle of
177Lu-DOTATATE under organ-at-risk BED and absorbed-dose limits, clinical.md
§5.5–5.7) and :mod:`theranet.therapy.from_registry` (planning from the recorded
cycles).
"""
