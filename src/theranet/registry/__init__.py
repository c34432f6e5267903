"""Treatment registry: every therapy cycle's dosimetry, per pseudonymous patient.

Usage, after :func:`theranet.pipeline.run_dosimetry` gave ``result``::

    from theranet.registry import Registry

    reg = Registry()  # ~/.local/share/theranet/registry.sqlite
    # or Registry("postgresql+psycopg://theranet@db/theranet"), with theranet[postgres]
    reg.record_cycle(
        "NET-0042", tracer=result.tracer, nuclide=result.nuclide,
        administered_activity_mbq=7400.0, administration=injection_datetime,
        times_h=result.times_h, regions=result.regions, methods=result.methods,
    )

Tables are in :mod:`theranet.registry.models`; the schema is created and
upgraded by the Alembic migrations shipped in ``theranet/registry/migrations``.
"""

from __future__ import annotations

from theranet.registry.records import CycleRecord, RegionRecord, RegistryError
from theranet.registry.store import Registry, default_path, open_registry

__all__ = [
    "CycleRecord",
    "RegionRecord",
    "Registry",
    "RegistryError",
    "default_path",
    "open_registry",
]
