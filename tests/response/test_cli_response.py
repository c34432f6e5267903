"""`theranet response --measurements` end to end (RECIST 1.1, Eisenhauer 2009)."""

from __future__ import annotations

import csv

from typer.testing import CliRunner

from theranet.cli import app

HEADER = ("patient_id,study_date,lesion_id,organ,is_node,role,longest_diameter_mm,"
          "short_axis_mm,status")  # fmt: skip
ROWS = [
    # baseline: liver target LD 30 mm, node target SA 20 mm, one non-target
    "P1,2026-01-05,L1,liver,false,target,30,,",
    "P1,2026-01-05,N1,lymph node,true,target,25,20,",
    "P1,2026-01-05,B1,bone,false,non_target,,,present",
    # 8 weeks: 20 + 12 = 32 mm, -36 % vs 50 mm baseline -> PR
    "P1,2026-03-02,L1,liver,false,target,20,,",
    "P1,2026-03-02,N1,lymph node,true,target,16,12,",
    "P1,2026-03-02,B1,bone,false,non_target,,,present",
    # 16 weeks: 28 + 14 = 42 mm, +31 % and +10 mm vs the nadir 32 mm -> PD
    "P1,2026-04-27,L1,liver,false,target,28,,",
    "P1,2026-04-27,N1,lymph node,true,target,18,14,",
    "P1,2026-04-27,B1,bone,false,non_target,,,present",
]


def test_response_cli_categories_tables_and_plots(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("\n".join([HEADER, *ROWS]) + "\n")
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["response", "--measurements", str(path), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "PR" in r.output and "PD" in r.output
    with open(out / "response_studies.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["study_date"] for row in rows] == ["2026-01-05", "2026-03-02", "2026-04-27"]
    assert abs(float(rows[1]["change_from_baseline_pct"]) - (-36.0)) < 1e-9
    for name in ("response_lesions.csv", "waterfall.png", "spider_P1.png"):
        assert (out / name).stat().st_size > 500, name


def test_response_cli_refuses_centimetres(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(HEADER.replace("longest_diameter_mm", "longest_diameter_cm") + "\n"
                    + ROWS[0] + "\n")  # fmt: skip
    r = CliRunner().invoke(app, ["response", "--measurements", str(path)])
    assert r.exit_code == 2
    assert "mm" in r.output
