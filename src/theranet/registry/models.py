"""Tables of the treatment registry (SQLAlchemy 2.0 declarative models).

One patient (a pseudonymous identifier, never a name) has treatments; a
treatment (one radiopharmaceutical, given in cycles) has cycles; a cycle has the
time points of its post-therapy imaging and one dose row per region. Regions
belong to the patient, so a lesion or an organ keeps its identity across cycles
and its cumulative dose is a sum over its rows.

Numbers carry their unit in the column name (``administered_activity_mbq``,
``mean_dose_gy``); the units are the library's (MBq, h, mL, g, Gy).

Times
-----
``cycles.administered_at`` is the wall-clock time of the administration, stored
without a timezone; ``administered_utc_offset_min`` holds the UTC offset in
minutes when the caller gave a timezone-aware datetime and is NULL for a naive
one, so both read back exactly. ``created_at_utc`` is UTC.

The schema is created and upgraded by the Alembic migrations shipped in
``theranet/registry/migrations``; a change here needs a new migration there
(``tests/registry`` checks that the two agree).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "REGION_KINDS",
    "Base",
    "Cycle",
    "Patient",
    "Region",
    "RegionDose",
    "TimePoint",
    "Treatment",
]

#: Allowed values of ``regions.kind``.
REGION_KINDS = ("organ", "lesion", "marrow")

# Deterministic constraint names, so later migrations can address them (and
# SQLite batch migrations can recreate them).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """Now, in UTC, without tzinfo (the convention of ``*_utc`` columns)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of the registry tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {  # noqa: RUF012 (SQLAlchemy's class attribute)
        float: Double(),
        dt.datetime: DateTime(timezone=False),
    }


class Patient(Base):
    """A patient, known only by a pseudonymous identifier."""

    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True)
    created_at_utc: Mapped[dt.datetime] = mapped_column(default=utcnow)

    treatments: Mapped[list[Treatment]] = relationship(
        back_populates="patient", order_by="Treatment.number", cascade="all, delete-orphan"
    )
    regions: Mapped[list[Region]] = relationship(
        back_populates="patient", cascade="all, delete-orphan"
    )


class Treatment(Base):
    """A course of radionuclide therapy with one radiopharmaceutical, given in cycles."""

    __tablename__ = "treatments"
    __table_args__ = (
        UniqueConstraint("patient_id", "number"),
        CheckConstraint("number >= 1", name="number_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    radiopharmaceutical: Mapped[str] = mapped_column(String(64))
    started_on: Mapped[dt.date] = mapped_column(Date)

    patient: Mapped[Patient] = relationship(back_populates="treatments")
    cycles: Mapped[list[Cycle]] = relationship(
        back_populates="treatment", order_by="Cycle.number", cascade="all, delete-orphan"
    )


class Cycle(Base):
    """One administration of a treatment and the dosimetry made of it."""

    __tablename__ = "cycles"
    __table_args__ = (
        UniqueConstraint("treatment_id", "number"),
        CheckConstraint("number >= 1", name="number_positive"),
        CheckConstraint("administered_activity_mbq > 0", name="activity_positive"),
        CheckConstraint(
            "administered_utc_offset_min IS NULL"
            " OR (administered_utc_offset_min > -1440 AND administered_utc_offset_min < 1440)",
            name="utc_offset_range",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    treatment_id: Mapped[int] = mapped_column(ForeignKey("treatments.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    administered_at: Mapped[dt.datetime]
    administered_utc_offset_min: Mapped[int | None] = mapped_column(Integer)
    radiopharmaceutical: Mapped[str] = mapped_column(String(64))
    nuclide: Mapped[str] = mapped_column(String(32))
    administered_activity_mbq: Mapped[float]
    software_version: Mapped[str] = mapped_column(String(64))
    methods: Mapped[list[Any]] = mapped_column(JSON)
    created_at_utc: Mapped[dt.datetime] = mapped_column(default=utcnow)

    treatment: Mapped[Treatment] = relationship(back_populates="cycles")
    time_points: Mapped[list[TimePoint]] = relationship(
        back_populates="cycle", order_by="TimePoint.position", cascade="all, delete-orphan"
    )
    doses: Mapped[list[RegionDose]] = relationship(
        back_populates="cycle", order_by="RegionDose.position", cascade="all, delete-orphan"
    )


class TimePoint(Base):
    """An imaging time point of a cycle, hours after the administration."""

    __tablename__ = "time_points"
    __table_args__ = (
        UniqueConstraint("cycle_id", "position"),
        CheckConstraint("time_after_injection_h >= 0", name="time_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycles.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    time_after_injection_h: Mapped[float]

    cycle: Mapped[Cycle] = relationship(back_populates="time_points")


class Region(Base):
    """An organ, lesion or marrow region of a patient, by name (stable across cycles)."""

    __tablename__ = "regions"
    __table_args__ = (
        UniqueConstraint("patient_id", "name"),
        CheckConstraint("kind IN ('organ', 'lesion', 'marrow')", name="kind_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))

    patient: Mapped[Patient] = relationship(back_populates="regions")
    doses: Mapped[list[RegionDose]] = relationship(back_populates="region")


class RegionDose(Base):
    """The dosimetry of one region in one cycle.

    ``tia_sd_mbq_h`` and ``dose_sd_gy`` are NULL where the uncertainty is
    unknown; ``bed_gy`` and ``eqd2_gy`` are NULL until radiobiology sets them.
    """

    __tablename__ = "region_doses"
    __table_args__ = (
        UniqueConstraint("cycle_id", "region_id"),
        UniqueConstraint("cycle_id", "position"),
        CheckConstraint("volume_ml > 0", name="volume_positive"),
        CheckConstraint("mass_g > 0", name="mass_positive"),
        CheckConstraint("tia_mbq_h >= 0", name="tia_not_negative"),
        CheckConstraint("tia_sd_mbq_h IS NULL OR tia_sd_mbq_h >= 0", name="tia_sd_not_negative"),
        CheckConstraint("mean_dose_gy >= 0", name="dose_not_negative"),
        CheckConstraint("dose_sd_gy IS NULL OR dose_sd_gy >= 0", name="dose_sd_not_negative"),
        CheckConstraint("bed_gy IS NULL OR bed_gy >= 0", name="bed_not_negative"),
        CheckConstraint("eqd2_gy IS NULL OR eqd2_gy >= 0", name="eqd2_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycles.id", ondelete="CASCADE"))
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    volume_ml: Mapped[float]
    mass_g: Mapped[float]
    tia_mbq_h: Mapped[float]
    tia_sd_mbq_h: Mapped[float | None]
    mean_dose_gy: Mapped[float]
    dose_sd_gy: Mapped[float | None]
    bed_gy: Mapped[float | None]
    eqd2_gy: Mapped[float | None]
    model: Mapped[str] = mapped_column(String())
    method: Mapped[str] = mapped_column(String())

    cycle: Mapped[Cycle] = relationship(back_populates="doses")
    region: Mapped[Region] = relationship(back_populates="doses")
