"""The digital patient end to end: DICOM per time point + ground truth."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from datetime import datetime, timedelta

import numpy as np
import pytest
from numpy.testing import assert_allclose
from typer.testing import CliRunner

from theranet.cli import app
from theranet.io import read_nm_spect, read_series
from theranet.phantom.generate import generate_study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    return generate_study(
        out, tracer="177Lu-DOTATATE", activity_gbq=7.4, times_h=(4.0, 96.0), seed=0
    )


def test_layout_and_truth(study):
    assert [p.name for p in study.time_point_dirs] == ["tp1_4h", "tp2_96h"]
    gt = json.loads(study.ground_truth_path.read_text())
    assert gt["nuclide"] == "Lu-177" and gt["times_h"] == [4.0, 96.0]
    for name, r in gt["regions"].items():
        assert len(r["activity_mbq"]) == 2, name
        assert r["tia_mbq_h"] > 0 or r["kind"] == "organ", name
        assert r["mean_dose_gy"] is not None, name
    # whole body = sum of regions at each time (conservation of the truth)
    total = [sum(r["activity_mbq"][i] for r in gt["regions"].values()) for i in range(2)]
    assert_allclose(total, gt["whole_body_activity_mbq"], rtol=1e-6)
    from theranet.io import read_labels

    labels = read_labels(study.out_dir / gt["labels_file"])
    assert labels.names[gt["regions"]["liver"]["label"]] == "liver"
    assert_allclose(labels.image.affine, study.anatomy.affine, atol=1e-4)
    lesions = [r for r in gt["regions"].values() if r["kind"] == "lesion"]
    grades = [r["krenning_grade"] for r in lesions]
    # SSTR tracer: every lesion has a designed Krenning grade; the kinetics design
    # forces one grade-2 lesion per patient (docs/phantom.md, Krenning design)
    assert all(g in (0, 1, 2, 3, 4) for g in grades)
    assert 2 in grades


def test_spect_conserves_activity(study):
    # Sum of Bq/mL x voxel volume over the SPECT volume equals the true whole-body
    # activity at that time within 3 % (issue acceptance).
    gt = study.truth
    for i, tp in enumerate(study.time_point_dirs):
        img = read_nm_spect(tp / "spect.dcm")
        total = float(img.data.sum(dtype=np.float64)) * img.voxel_volume_ml
        assert total == pytest.approx(gt["whole_body_activity_mbq"][i], rel=0.03), tp.name


def test_ct_reads_back_to_the_phantom_geometry(study):
    ct = read_series(study.time_point_dirs[0] / "ct")
    assert ct.shape == study.anatomy.shape
    assert_allclose(ct.affine, study.anatomy.affine, atol=1e-4)
    # noise-free HU +- CT noise
    diff = ct.data.astype(float) - np.asarray(study.anatomy.hu)
    assert abs(float(diff.mean())) < 1.0


def test_kidney_dose_per_gbq_is_clinically_plausible(study):
    # data-sources.md: 177Lu-DOTATATE kidney dose per administered activity is
    # reported between about 0.4 and 0.65 Gy/GBq; the default patient lands there.
    r = study.truth["regions"]
    cortex, medulla = r["kidney_cortex"], r["kidney_medulla"]
    mass = cortex["mass_g"] + medulla["mass_g"]
    dose = (
        cortex["mean_dose_gy"] * cortex["mass_g"] + medulla["mean_dose_gy"] * medulla["mass_g"]
    ) / mass
    assert 0.4 <= dose / 7.4 <= 0.65


@pytest.mark.skipif(
    shutil.which("dciodvfy") is None, reason="dciodvfy not installed: apt-get install dicom3tools"
)
def test_files_validate(study):
    tp = study.time_point_dirs[0]
    for f in (tp / "spect.dcm", sorted((tp / "ct").iterdir())[0]):
        out = subprocess.run(["dciodvfy", "-new", str(f)], capture_output=True, text=True)
        errors = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]
        assert not errors, (f.name, errors)


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_patient(tmp_path):
    kw = {"tracer": "177Lu-DOTATATE", "activity_gbq": 7.4, "times_h": (24.0,), "with_dose": False}
    a = generate_study(tmp_path / "a", seed=5, **kw)
    b = generate_study(tmp_path / "b", seed=5, **kw)
    c = generate_study(tmp_path / "c", seed=6, **kw)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert a.truth["regions"]["liver"]["mass_g"] != c.truth["regions"]["liver"]["mass_g"]
    assert b.truth == a.truth


def test_counts_variant_with_separate_calibration(tmp_path):
    s = generate_study(
        tmp_path,
        tracer="177Lu-DOTATATE",
        activity_gbq=7.4,
        times_h=(24.0,),
        seed=2,
        spect_variant="counts",
        with_dose=False,
    )
    cf = s.truth["calibration_cps_per_mbq"]["tp1_24h"]
    counts = read_nm_spect(s.time_point_dirs[0] / "spect.dcm")
    assert counts.quantity.value == "counts"
    img = read_nm_spect(s.time_point_dirs[0] / "spect.dcm", calibration_cps_per_mbq=cf)
    total = float(img.data.sum(dtype=np.float64)) * img.voxel_volume_ml
    assert total == pytest.approx(s.truth["whole_body_activity_mbq"][0], rel=0.03)


def test_cli_phantom_and_bad_input(tmp_path):
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "phantom",
            "--tracer",
            "68Ga-DOTATATE",
            "--times-h",
            "1",
            "--seed",
            "1",
            "--no-dose",
            "--quiet",
            "--out",
            str(tmp_path / "p"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "p" / "ground_truth.json").exists()
    assert (tmp_path / "p" / "tp1_1h" / "pet").is_dir()
    r = runner.invoke(app, ["phantom", "--times-h", "24,4", "--out", str(tmp_path / "q")])
    assert r.exit_code == 2 and "times_h" in r.output


def test_second_cycle_same_patient_new_study(tmp_path):
    """Cycle 2: same anatomy and Patient ID, 8 weeks later, own kinetics and UIDs."""
    import pydicom

    from theranet.phantom.generate import CYCLE_INTERVAL_WEEKS, generate_study

    one = generate_study(tmp_path / "c1", times_h=(24.0,), seed=2, with_dose=False)
    two = generate_study(tmp_path / "c2", times_h=(24.0,), seed=2, with_dose=False, cycle=2)
    a = pydicom.dcmread(one.time_point_dirs[0] / "spect.dcm", stop_before_pixels=True)
    b = pydicom.dcmread(two.time_point_dirs[0] / "spect.dcm", stop_before_pixels=True)
    assert a.PatientID == b.PatientID
    assert a.StudyInstanceUID != b.StudyInstanceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID
    ia = datetime.fromisoformat(one.truth["injection_datetime"])
    ib = datetime.fromisoformat(two.truth["injection_datetime"])
    assert ib - ia == timedelta(weeks=CYCLE_INTERVAL_WEEKS)
    assert two.truth["cycle"] == 2
    assert one.truth["regions"]["liver"]["mass_g"] == two.truth["regions"]["liver"]["mass_g"]
    k1 = one.truth["regions"]["kidney_cortex"]["tia_mbq_h"]
    k2 = two.truth["regions"]["kidney_cortex"]["tia_mbq_h"]
    assert k1 != k2
