"""Initial registry schema: patients, treatments, cycles, time points, regions, doses.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pseudonym", sa.String(length=64), nullable=False),
        sa.Column("created_at_utc", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("pseudonym", name=op.f("uq_patients_pseudonym")),
    )
    op.create_table(
        "regions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.CheckConstraint(
            "kind IN ('organ', 'lesion', 'marrow')", name=op.f("ck_regions_kind_known")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_regions_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_regions")),
        sa.UniqueConstraint("patient_id", "name", name=op.f("uq_regions_patient_id_name")),
    )
    op.create_table(
        "treatments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("radiopharmaceutical", sa.String(length=64), nullable=False),
        sa.Column("started_on", sa.Date(), nullable=False),
        sa.CheckConstraint("number >= 1", name=op.f("ck_treatments_number_positive")),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_treatments_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_treatments")),
        sa.UniqueConstraint("patient_id", "number", name=op.f("uq_treatments_patient_id_number")),
    )
    op.create_table(
        "cycles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("treatment_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("administered_at", sa.DateTime(), nullable=False),
        sa.Column("administered_utc_offset_min", sa.Integer(), nullable=True),
        sa.Column("radiopharmaceutical", sa.String(length=64), nullable=False),
        sa.Column("nuclide", sa.String(length=32), nullable=False),
        sa.Column("administered_activity_mbq", sa.Double(), nullable=False),
        sa.Column("software_version", sa.String(length=64), nullable=False),
        sa.Column("methods", sa.JSON(), nullable=False),
        sa.Column("created_at_utc", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "administered_activity_mbq > 0", name=op.f("ck_cycles_activity_positive")
        ),
        sa.CheckConstraint(
            "administered_utc_offset_min IS NULL"
            " OR (administered_utc_offset_min > -1440 AND administered_utc_offset_min < 1440)",
            name=op.f("ck_cycles_utc_offset_range"),
        ),
        sa.CheckConstraint("number >= 1", name=op.f("ck_cycles_number_positive")),
        sa.ForeignKeyConstraint(
            ["treatment_id"],
            ["treatments.id"],
            name=op.f("fk_cycles_treatment_id_treatments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cycles")),
        sa.UniqueConstraint("treatment_id", "number", name=op.f("uq_cycles_treatment_id_number")),
    )
    op.create_table(
        "region_doses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("volume_ml", sa.Double(), nullable=False),
        sa.Column("mass_g", sa.Double(), nullable=False),
        sa.Column("tia_mbq_h", sa.Double(), nullable=False),
        sa.Column("tia_sd_mbq_h", sa.Double(), nullable=True),
        sa.Column("mean_dose_gy", sa.Double(), nullable=False),
        sa.Column("dose_sd_gy", sa.Double(), nullable=True),
        sa.Column("bed_gy", sa.Double(), nullable=True),
        sa.Column("eqd2_gy", sa.Double(), nullable=True),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("method", sa.String(), nullable=False),
        sa.CheckConstraint(
            "bed_gy IS NULL OR bed_gy >= 0", name=op.f("ck_region_doses_bed_not_negative")
        ),
        sa.CheckConstraint(
            "dose_sd_gy IS NULL OR dose_sd_gy >= 0",
            name=op.f("ck_region_doses_dose_sd_not_negative"),
        ),
        sa.CheckConstraint(
            "eqd2_gy IS NULL OR eqd2_gy >= 0", name=op.f("ck_region_doses_eqd2_not_negative")
        ),
        sa.CheckConstraint("mass_g > 0", name=op.f("ck_region_doses_mass_positive")),
        sa.CheckConstraint("mean_dose_gy >= 0", name=op.f("ck_region_doses_dose_not_negative")),
        sa.CheckConstraint("tia_mbq_h >= 0", name=op.f("ck_region_doses_tia_not_negative")),
        sa.CheckConstraint(
            "tia_sd_mbq_h IS NULL OR tia_sd_mbq_h >= 0",
            name=op.f("ck_region_doses_tia_sd_not_negative"),
        ),
        sa.CheckConstraint("volume_ml > 0", name=op.f("ck_region_doses_volume_positive")),
        sa.ForeignKeyConstraint(
            ["cycle_id"],
            ["cycles.id"],
            name=op.f("fk_region_doses_cycle_id_cycles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["regions.id"],
            name=op.f("fk_region_doses_region_id_regions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_region_doses")),
        sa.UniqueConstraint("cycle_id", "position", name=op.f("uq_region_doses_cycle_id_position")),
        sa.UniqueConstraint(
            "cycle_id", "region_id", name=op.f("uq_region_doses_cycle_id_region_id")
        ),
    )
    op.create_table(
        "time_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("time_after_injection_h", sa.Double(), nullable=False),
        sa.CheckConstraint(
            "time_after_injection_h >= 0", name=op.f("ck_time_points_time_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["cycle_id"],
            ["cycles.id"],
            name=op.f("fk_time_points_cycle_id_cycles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_time_points")),
        sa.UniqueConstraint("cycle_id", "position", name=op.f("uq_time_points_cycle_id_position")),
    )


def downgrade() -> None:
    op.drop_table("time_points")
    op.drop_table("region_doses")
    op.drop_table("cycles")
    op.drop_table("treatments")
    op.drop_table("regions")
    op.drop_table("patients")
