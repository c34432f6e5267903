"""Response from CT studies of digital patients with designed lesion changes.

The expected categories are derived by hand from each design (RECIST 1.1,
Eisenhauer et al. 2009, Eur J Cancer 45:228, as in clinical.md §7.1; Choi et al.
2007, clinical.md §7.2): every lesion is scaled linearly by ``s``, so the sum of
diameters changes by ``s - 1`` (the targets are the same lesions at every study).
The designs keep clear of each threshold by more than the measurement error (about
one 2.4 mm voxel on diameters of 15-50 mm).
"""

from __future__ import annotations

import json
import shutil

import pytest

from theranet.phantom.response import SCENARIOS, generate_response_series
from theranet.response.recist import Response
from theranet.response.studies import assess_studies, read_imaging_study
from theranet.response.table import ResponseError

# scenario -> (overall per follow-up, best overall); derivations in the comments
DESIGNED = {
    # s = 0.60 -> -40 % <= -30 %: PR; s = 0.55 -> -45 %: PR
    "partial_response": ([Response.PR, Response.PR], Response.PR),
    # s = 1.00 -> 0 %: SD; s = 1.30 -> +30 % vs nadir (baseline) >= 20 % and >= 5 mm: PD
    "progression": ([Response.SD, Response.PD], Response.SD),
    # s = 0.50 -> -50 %: PR; s = 0.70 -> -30 % vs baseline but +40 % vs the nadir: PD
    "nadir_progression": ([Response.PR, Response.PD], Response.PR),
    # a new lesion: PD whatever the sizes
    "new_lesion": ([Response.PD], Response.PD),
    # non-nodal lesions gone, nodes at 0.3 x (short axis about 6-7 mm < 10 mm): CR
    "complete_response": ([Response.CR, Response.CR], Response.CR),
    # s = 0.95 -> -5 %: SD
    "stable": ([Response.SD], Response.SD),
}


def _run(tmp_path, scenario):
    series = generate_response_series(tmp_path / scenario, scenario, seed=0)
    return series, assess_studies(list(reversed(series.study_dirs)))


def _check_categories(result, scenario):
    overall, best = DESIGNED[scenario]
    assert [s.overall for s in result.recist.followups] == overall, result.recist.study_rows()
    assert result.recist.best_overall is best


@pytest.fixture(scope="module")
def partial_response(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("resp"), "partial_response")


def test_partial_response_categories_tracking_and_choi(partial_response):
    series, result = partial_response
    _check_categories(result, "partial_response")
    # Choi: -40 % size and -20 % density (designed), both beyond 10 % / 15 %: PR
    assert [c.category for _, c in result.choi] == [Response.PR, Response.PR]
    for _, c in result.choi:
        assert c.density_change_pct == pytest.approx(-20.0, abs=3.0)
    # identity comes from tracking: follow-up labels are renumbered, yet every lesion
    # keeps its baseline id
    truth = series.truth["studies"]
    for study in truth[1:]:
        expected = {r["label_name"]: r["lesion"] for r in study["lesions"]}
        got = {
            t["follow_up_name"]: t["lesion_id"]
            for t in result.tracking
            if t["study_date"] == study["date"]
        }
        assert got == expected
    # the registration found the designed patient shifts (to within 1 mm)
    for (_, text), study in zip(result.registrations, truth[1:], strict=True):
        shift = [float(v) for v in text.split("t=(")[1].split(")")[0].split(",")]
        assert shift == pytest.approx(study["shift_mm"], abs=1.0)


def test_target_diameters_equal_the_analytic_ones_within_one_voxel(partial_response):
    series, result = partial_response
    voxel = max(series.truth["voxel_mm"])
    analytic = {(s["date"], r["lesion"]): r for s in series.truth["studies"] for r in s["lesions"]}
    targets = [m for m in result.measurements if m.role == "target"]
    assert len({m.lesion_id for m in targets}) == 5  # RECIST: at most 5 targets
    for m in targets:
        a = analytic[(m.study_date.isoformat(), m.lesion_id)]
        if m.is_node:
            assert abs(m.short_axis_mm - a["short_axis_mm"]) <= voxel, m
        else:
            assert abs(m.longest_diameter_mm - a["longest_diameter_mm"]) <= voxel, m


def test_target_selection_at_most_two_per_organ_and_bone_non_target(tmp_path):
    _, result = _run(tmp_path, "new_lesion")
    _check_categories(result, "new_lesion")
    baseline = [m for m in result.measurements if m.study_date == result.recist.baseline_date]
    targets = [m for m in baseline if m.role == "target"]
    per_organ = {}
    for m in targets:
        per_organ[m.organ] = per_organ.get(m.organ, 0) + 1
    assert max(per_organ.values()) <= 2 and len(targets) <= 5
    # the two largest liver lesions are the liver targets
    liver = sorted((m for m in baseline if m.organ == "liver"), key=lambda m: m.lesion_id)
    assert {m.lesion_id for m in liver if m.role == "target"} == {
        "lesion_liver_1",
        "lesion_liver_2",
    }
    bone = [m for m in baseline if m.organ == "bone"]
    assert bone and all(m.role == "non_target" for m in bone)
    new = [m for m in result.measurements if m.role == "new"]
    assert len(new) == 1 and new[0].organ == "liver"


@pytest.mark.slow
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_designed_scenario_gets_its_category(tmp_path, scenario):
    _, result = _run(tmp_path, scenario)
    _check_categories(result, scenario)


@pytest.fixture(scope="module")
def stable_series(tmp_path_factory):
    return generate_response_series(tmp_path_factory.mktemp("resp") / "s", "stable", seed=1)


def test_study_without_lesion_segmentation_is_refused(stable_series, tmp_path):
    study = tmp_path / "study"
    shutil.copytree(stable_series.study_dirs[0] / "ct", study / "ct")
    with pytest.raises(ResponseError, match="lesion segmentation") as err:
        read_imaging_study(study)
    assert "lesions.nii.gz" in str(err.value)


def test_single_study_is_refused(stable_series):
    with pytest.raises(ResponseError, match="follow-up"):
        assess_studies([stable_series.study_dirs[0]])


def test_two_studies_on_one_date_are_refused(stable_series):
    with pytest.raises(ResponseError, match="same date"):
        assess_studies([stable_series.study_dirs[0], stable_series.study_dirs[0]])


def test_lesion_without_organ_is_refused(stable_series, tmp_path):
    dirs = []
    for d in stable_series.study_dirs:
        copy = tmp_path / d.name
        shutil.copytree(d, copy)
        sidecar = copy / "lesions.json"
        meta = json.loads(sidecar.read_text())
        meta["labels"] = {k: f"finding {k}" for k in meta["labels"]}
        sidecar.write_text(json.dumps(meta))
        dirs.append(copy)
    with pytest.raises(ResponseError, match="has no organ") as err:
        assess_studies(dirs)
    assert "organs.nii.gz" in str(err.value)


def test_cli_from_images_writes_tables_plots_and_dose_response(stable_series, tmp_path):
    import csv
    import datetime as dt

    from typer.testing import CliRunner

    from theranet.cli import app
    from theranet.registry.store import Registry

    db = tmp_path / "r.sqlite"
    with Registry(path=db) as reg:
        reg.record_cycle(
            "RESP-1", tracer="177Lu-DOTATATE", nuclide="Lu-177",
            administered_activity_mbq=7400.0, administration=dt.datetime(2026, 1, 19, 9),
            times_h=[4, 24, 96, 168],
            regions=[dict(region="lesion_liver_1", kind="lesion", volume_ml=50.0, mass_g=52.0,
                          tia_mbq_h=2e4, tia_sd_mbq_h=1e3, mean_dose_gy=21.0, dose_sd_gy=2.0,
                          model="biexp", bed_gy=24.0)],
        )  # fmt: skip
    out = tmp_path / "out"
    args = ["response", *map(str, stable_series.study_dirs), "--out", str(out), "--quiet",
            "--patient-id", "RESP-1", "--registry", str(db)]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "SD" in r.output and "Dose-response" in r.output
    for name in (
        "response_studies.csv",
        "response_lesions.csv",
        "response_measurements.csv",
        "response_tracking.csv",
        "response_choi.csv",
        "waterfall.png",
        "spider_RESP-1.png",
        "dose_response_RESP-1.csv",
        "dose_response_RESP-1.png",
    ):
        assert (out / name).stat().st_size > 0, name  # fmt: skip
    with open(out / "dose_response_RESP-1.csv", newline="") as fh:
        rows = {row["lesion_id"]: row for row in csv.DictReader(fh)}
    assert float(rows["lesion_liver_1"]["dose_gy"]) == 21.0
    assert float(rows["lesion_liver_1"]["bed_gy"]) == 24.0
    # the measurement table written is the CSV contract: it reads back and gives the
    # same categories
    from theranet.response.recist import assess_csv

    again = assess_csv(out / "response_measurements.csv")["RESP-1"]
    assert [s.overall for s in again.followups] == [Response.SD]


def test_cli_needs_exactly_one_input(tmp_path):
    from typer.testing import CliRunner

    from theranet.cli import app

    r = CliRunner().invoke(app, ["response"])
    assert r.exit_code != 0 and "either study folders or --measurements" in r.output


@pytest.mark.slow
def test_lesions_from_dicom_seg_give_the_same_assessment(stable_series, tmp_path):
    """The lesions as a DICOM SEG on each CT instead of a NIfTI label map."""
    from theranet.io.dicom_write import write_seg
    from theranet.io.nifti import read_labels

    dirs = []
    for d in stable_series.study_dirs:
        copy = tmp_path / d.name
        shutil.copytree(d / "ct", copy / "ct")
        write_seg(copy / "lesions_seg.dcm", read_labels(d / "lesions.nii.gz"), copy / "ct")
        dirs.append(copy)
    from_seg = assess_studies(dirs)
    from_nifti = assess_studies(stable_series.study_dirs)
    assert [s.overall for s in from_seg.recist.followups] == [Response.SD]
    assert from_seg.recist.study_rows() == from_nifti.recist.study_rows()
