"""Time–activity kinetics: models, fits, integration, STP methods and uncertainty.

Units: activity MBq (not decay-corrected), time h, rate constants 1/h, TIA MBq·h.
Rules: clinical.md §6.2–§6.5 (MIRD/EANM).

>>> import numpy as np
>>> from theranet.kinetics import fit_tac
>>> t = np.array([4.0, 24.0, 96.0, 168.0])
>>> a = 100.0 * np.exp(-np.log(2) / 56.0 * t)
>>> fit = fit_tac(t, a, "mono", nuclide="Lu-177")
>>> print(round(fit.tia_mbq_h / (100.0 * 56.0 / np.log(2)), 6))
1.0
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# models (numpy only) are imported eagerly; the rest (scipy) lazily, so that
# ``import theranet.kinetics.models`` stays light for voxel-wise code.
from theranet.kinetics.models import (
    BIEXP,
    BIEXP_UPTAKE,
    MODEL_NAMES,
    MONO,
    TRIEXP,
    KineticsError,
    Model,
    get_model,
    physical_model,
)

_LAZY: dict[str, str] = {
    "BootstrapResult": "fit",
    "FitResult": "fit",
    "ModelSelection": "fit",
    "bootstrap_tia": "fit",
    "fit_tac": "fit",
    "select_model": "fit",
    "validate_tac": "fit",
    "HEAD_RULES": "integrate",
    "TAIL_RULES": "integrate",
    "TIAResult": "integrate",
    "tia_from_fit": "integrate",
    "trapezoid_tia": "integrate",
    "PopulationHalfLife": "population",
    "load_population_table": "population",
    "population_half_life": "population",
    "hanscheid_ratio": "stp",
    "hanscheid_tia": "stp",
    "madsen_tia": "stp",
    "prior_tia": "stp",
    "ActivityUncertainty": "uncertainty",
    "TIAUncertainty": "uncertainty",
    "activity_uncertainty": "uncertainty",
    "recovery_uncertainty": "uncertainty",
    "tia_uncertainty": "uncertainty",
    "TAC": "tac",
    "tacs_from_images": "tac",
    "TIAMapResult": "voxelwise",
    "VoxelModel": "voxelwise",
    "tia_map": "voxelwise",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from theranet.kinetics.fit import (
        BootstrapResult,
        FitResult,
        ModelSelection,
        bootstrap_tia,
        fit_tac,
        select_model,
        validate_tac,
    )
    from theranet.kinetics.integrate import (
        HEAD_RULES,
        TAIL_RULES,
        TIAResult,
        tia_from_fit,
        trapezoid_tia,
    )
    from theranet.kinetics.population import (
        PopulationHalfLife,
        load_population_table,
        population_half_life,
    )
    from theranet.kinetics.stp import hanscheid_ratio, hanscheid_tia, madsen_tia, prior_tia
    from theranet.kinetics.uncertainty import (
        ActivityUncertainty,
        TIAUncertainty,
        activity_uncertainty,
        recovery_uncertainty,
        tia_uncertainty,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'theranet.kinetics' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"theranet.kinetics.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BIEXP",
    "BIEXP_UPTAKE",
    "HEAD_RULES",
    "MODEL_NAMES",
    "MONO",
    "TAC",
    "TAIL_RULES",
    "TRIEXP",
    "ActivityUncertainty",
    "BootstrapResult",
    "FitResult",
    "KineticsError",
    "Model",
    "ModelSelection",
    "PopulationHalfLife",
    "TIAMapResult",
    "TIAResult",
    "TIAUncertainty",
    "VoxelModel",
    "activity_uncertainty",
    "bootstrap_tia",
    "fit_tac",
    "get_model",
    "hanscheid_ratio",
    "hanscheid_tia",
    "load_population_table",
    "madsen_tia",
    "physical_model",
    "population_half_life",
    "prior_tia",
    "recovery_uncertainty",
    "select_model",
    "tacs_from_images",
    "tia_from_fit",
    "tia_map",
    "tia_uncertainty",
    "trapezoid_tia",
    "validate_tac",
]
