"""Radiation physics reference data: materials, electron stopping powers, photon
attenuation and interaction coefficients (NIST ESTAR, Hubbell & Seltzer, XCOM).

See :mod:`theranet.physics.materials`.
"""

from __future__ import annotations

from theranet.physics.materials import (
    MATERIALS,
    PHOTON_PROCESSES,
    ElectronStoppingTable,
    EnergyRangeError,
    Material,
    MaterialError,
    PhotonAttenuationTable,
    PhotonCrossSectionTable,
    data_files,
    estar,
    get_material,
    photon_attenuation,
    photon_cross_sections,
)

__all__ = [
    "MATERIALS",
    "PHOTON_PROCESSES",
    "ElectronStoppingTable",
    "EnergyRangeError",
    "Material",
    "MaterialError",
    "PhotonAttenuationTable",
    "PhotonCrossSectionTable",
    "data_files",
    "estar",
    "get_material",
    "photon_attenuation",
    "photon_cross_sections",
]
