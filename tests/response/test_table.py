"""Tests of theranet.response.table: reading and validating the lesion measurement table.

Rules referenced
----------------
* RECIST 1.1 (Eisenhauer EA et al., Eur J Cancer 2009;45:228–247; clinical.md §7.1):
  lesions are recorded at baseline as target or non-target; nodes are followed in short
  axis; non-target lesions as present / absent / unequivocal progression; a lesion that
  appears after baseline is a new lesion.
* Project rule (STYLE.md, units at the boundary): lengths are in mm; a column or value
  in another unit is refused, never converted by guess.
"""

from __future__ import annotations

from datetime import date

import pytest

from theranet.errors import TheranetError
from theranet.response.table import (
    COLUMNS,
    Measurement,
    ResponseError,
    group_studies,
    read_measurements,
    validate_measurements,
)

HEADER = ",".join(COLUMNS)
GOOD = [
    "P01,2024-01-10,L1,liver,false,target,42,,",
    "P01,2024-01-10,N1,lymph node,true,target,,18,",
    "P01,2024-01-10,B1,bone,false,non_target,,,present",
    "P01,2024-04-03,L1,liver,false,target,30,,",
    "P01,2024-04-03,N1,lymph node,true,target,,9,",
    "P01,2024-04-03,B1,bone,false,non_target,,,present",
    "P01,2024-04-03,X1,lung,false,new,,,",
    "P02,2024-02-01,L7,lung,no,target,25.5,,",
]


def write(tmp_path, rows, header=HEADER):
    path = tmp_path / "lesions.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_reads_typed_records(tmp_path):
    """The documented columns become typed Measurement records (clinical.md §7.1)."""
    ms = read_measurements(write(tmp_path, GOOD))
    assert len(ms) == 8
    first = ms[0]
    assert first == Measurement(
        "P01", date(2024, 1, 10), "L1", "liver", False, "target", 42.0, None, "", None, 2
    )
    node = ms[1]
    assert node.is_node and node.short_axis_mm == 18.0 and node.longest_diameter_mm is None
    assert ms[2].status == "present"
    assert ms[6].role == "new"
    assert ms[7].longest_diameter_mm == 25.5 and ms[7].is_node is False


def test_groups_by_patient_baseline_first(tmp_path):
    """The earliest study of a patient is its baseline; studies are ordered by date."""
    ms = read_measurements(write(tmp_path, list(reversed(GOOD))))
    grouped = group_studies(ms)
    assert list(grouped) == ["P02", "P01"]
    p01 = grouped["P01"]
    assert [s.study_date for s in p01] == [date(2024, 1, 10), date(2024, 4, 3)]
    assert p01[0].is_baseline and not p01[1].is_baseline
    assert set(p01[1].by_lesion()) == {"L1", "N1", "B1", "X1"}


def test_optional_slice_thickness_and_extra_columns(tmp_path):
    """slice_thickness_mm is read (RECIST 1.1 measurability above 5 mm slices); notes ignored."""
    header = HEADER + ",slice_thickness_mm,notes"
    rows = ["P01,2024-01-10,L1,liver,false,target,42,,,7,hello"]
    (m,) = read_measurements(write(tmp_path, rows, header))
    assert m.slice_thickness_mm == 7.0


def test_status_is_normalised(tmp_path):
    """'Unequivocal progression' is accepted as unequivocal_progression (RECIST 1.1 wording)."""
    rows = [
        "P01,2024-01-10,B1,bone,false,non_target,,,Present",
        "P01,2024-03-10,B1,bone,false,non_target,,,Unequivocal progression",
    ]
    ms = read_measurements(write(tmp_path, rows))
    assert ms[1].status == "unequivocal_progression"


def test_unknown_role_names_field_and_row(tmp_path):
    """Roles are target, non_target or new (RECIST 1.1 lesion categories)."""
    rows = ["P01,2024-01-10,L1,liver,false,measurable,42,,"]
    with pytest.raises(ResponseError, match=r"role \(row 2\).*unknown lesion role") as info:
        read_measurements(write(tmp_path, rows))
    err = info.value
    assert isinstance(err, TheranetError) and isinstance(err, ValueError)
    assert err.value == "measurable" and "target" in err.fix
    assert err.source == "lesions.csv"


@pytest.mark.parametrize(
    ("cell", "problem"),
    [("abc", "not a number"), ("-3", "must be >= 0"), ("nan", "must be finite")],
)
def test_bad_diameter_values(tmp_path, cell, problem):
    """Diameters are non-negative numbers in mm."""
    rows = [f"P01,2024-01-10,L1,liver,false,target,{cell},,"]
    with pytest.raises(ResponseError, match=rf"longest_diameter_mm \(row 2\): {problem}"):
        read_measurements(write(tmp_path, rows))


def test_decimal_comma_gets_a_specific_fix(tmp_path):
    rows = ['P01,2024-01-10,L1,liver,false,target,"4,2",,']
    with pytest.raises(ResponseError, match="decimal separator"):
        read_measurements(write(tmp_path, rows))


def test_value_in_cm_is_refused(tmp_path):
    """Units are never guessed: '2.1 cm' is refused with a fix to convert to mm."""
    rows = ["P01,2024-01-10,L1,liver,false,target,2.1 cm,,"]
    with pytest.raises(ResponseError, match=r"carries a unit \(cm\)") as info:
        read_measurements(write(tmp_path, rows))
    assert "convert to mm" in info.value.fix
    assert info.value.field == "longest_diameter_mm (row 2)"


def test_value_with_mm_suffix_is_refused(tmp_path):
    """Even a matching unit suffix is refused: the column carries the unit."""
    rows = ["P01,2024-01-10,N1,lymph node,true,target,,18mm,"]
    with pytest.raises(ResponseError, match=r"short_axis_mm \(row 2\)") as info:
        read_measurements(write(tmp_path, rows))
    assert "number only" in info.value.fix


def test_column_in_cm_is_refused(tmp_path):
    """A header longest_diameter_cm is refused, not rescaled (units at the boundary)."""
    header = HEADER.replace("longest_diameter_mm", "longest_diameter_cm")
    rows = ["P01,2024-01-10,L1,liver,false,target,4.2,,"]
    with pytest.raises(ResponseError, match="this column is in cm") as info:
        read_measurements(write(tmp_path, rows, header))
    assert "longest_diameter_mm" in info.value.fix


def test_column_without_unit_is_refused(tmp_path):
    header = HEADER.replace("short_axis_mm", "short_axis")
    with pytest.raises(ResponseError, match="no unit"):
        read_measurements(write(tmp_path, GOOD, header))


def test_missing_column(tmp_path):
    header = HEADER.replace(",status", "")
    with pytest.raises(ResponseError, match="missing column"):
        read_measurements(write(tmp_path, [r.rsplit(",", 1)[0] for r in GOOD], header))


def test_bad_date_and_bool(tmp_path):
    with pytest.raises(ResponseError, match=r"study_date \(row 2\).*ISO"):
        read_measurements(write(tmp_path, ["P01,10/01/2024,L1,liver,false,target,42,,"]))
    with pytest.raises(ResponseError, match=r"is_node \(row 2\)"):
        read_measurements(write(tmp_path, ["P01,2024-01-10,L1,liver,maybe,target,42,,"]))


def test_follow_up_lesion_without_baseline(tmp_path):
    """A target/non-target lesion must be recorded at baseline (RECIST 1.1); else role new."""
    rows = [*GOOD[:6], "P01,2024-04-03,L9,liver,false,target,12,,"]
    with pytest.raises(ResponseError, match=r"lesion_id \(row 8\).*no baseline record") as info:
        read_measurements(write(tmp_path, rows))
    assert "'new'" in info.value.fix


def test_new_lesion_ids_may_recur_after_first_appearance(tmp_path):
    """A new lesion is followed with role new at later studies."""
    rows = [*GOOD[:7], "P01,2024-06-03,X1,lung,false,new,,,present"]
    assert len(read_measurements(write(tmp_path, rows))) == 8


def test_new_lesion_at_baseline_is_refused(tmp_path):
    rows = ["P01,2024-01-10,L1,liver,false,target,42,,", "P01,2024-01-10,X1,lung,false,new,,,"]
    with pytest.raises(ResponseError, match="new lesion cannot be recorded at baseline"):
        read_measurements(write(tmp_path, rows))


def test_study_before_baseline(tmp_path):
    """With the baseline date given, an earlier study is refused naming the row."""
    rows = ["P01,2023-12-01,L1,liver,false,target,44,,", *GOOD[:6]]
    with pytest.raises(ResponseError, match=r"study_date \(row 2\).*before the baseline"):
        read_measurements(write(tmp_path, rows), baseline_dates={"P01": date(2024, 1, 10)})


def test_baseline_date_without_study(tmp_path):
    with pytest.raises(ResponseError, match="no study on the baseline date"):
        read_measurements(write(tmp_path, GOOD[:6]), baseline_dates={"P01": date(2024, 1, 9)})


def test_duplicate_lesion_at_one_study(tmp_path):
    rows = [*GOOD[:3], "P01,2024-01-10,L1,liver,false,target,41,,"]
    with pytest.raises(ResponseError, match=r"row 5.*duplicate.*first at row 2"):
        read_measurements(write(tmp_path, rows))


def test_role_change_is_refused(tmp_path):
    rows = [*GOOD[:3], "P01,2024-04-03,L1,liver,false,non_target,,,present"]
    with pytest.raises(ResponseError, match=r"role \(row 5\): changed since baseline"):
        read_measurements(write(tmp_path, rows))


def test_status_per_role(tmp_path):
    """Non-target lesions need present/absent/unequivocal_progression (RECIST 1.1)."""
    rows = ["P01,2024-01-10,B1,bone,false,non_target,,,"]
    with pytest.raises(ResponseError, match=r"status \(row 2\).*non_target"):
        read_measurements(write(tmp_path, rows))
    rows = ["P01,2024-01-10,L1,liver,false,target,42,,present"]
    with pytest.raises(ResponseError, match=r"status \(row 2\).*target"):
        read_measurements(write(tmp_path, rows))


def test_target_status_contradicting_diameter():
    with pytest.raises(ResponseError, match="contradicts"):
        Measurement("P", date(2024, 1, 1), "L", "liver", False, "target", 8.0, status="too_small")


def test_empty_file_and_missing_path(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(ResponseError, match="empty"):
        read_measurements(path)
    with pytest.raises(ResponseError, match="cannot open"):
        read_measurements(tmp_path / "nope.csv")
    with pytest.raises(ResponseError, match="no measurements"):
        read_measurements(write(tmp_path, []))


def test_validate_programmatic_records():
    """The table rules apply to records built in code too."""
    ms = [
        Measurement("P", date(2024, 1, 1), "L1", "liver", False, "target", 20.0),
        Measurement("P", date(2024, 3, 1), "L2", "liver", False, "target", 20.0),
    ]
    with pytest.raises(ResponseError, match="no baseline record"):
        validate_measurements(ms)
