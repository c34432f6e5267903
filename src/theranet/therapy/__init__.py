"""Therapy planning for radionuclide therapy given in cycles.

Submodules: :mod:`theranet.therapy.planning` (dose-based activity for the next
cycle of 177Lu-DOTATATE under organ-at-risk BED and absorbed-dose limits,
clinical.md §5.5–5.7).
"""
