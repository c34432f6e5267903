"""End-to-end dosimetry on the digital patient (theranet.pipeline, `theranet dosimetry`)."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from theranet.cli import app
from theranet.errors import TheranetError
from theranet.pipeline import CSV_COLUMNS, PipelineInputError, run_dosimetry

# Loose first target; the last few percent need partial-volume correction.
TOLERANCE = 0.25


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from theranet.phantom.generate import generate_study

    d = tmp_path_factory.mktemp("study")
    generate_study(d, times_h=(4, 24, 96, 168), seed=0, with_dose=True)
    return d


@pytest.fixture(scope="module")
def result(study, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    messages: list[str] = []
    res = run_dosimetry(study, out, progress=messages.append)
    return res, out, messages


@pytest.fixture(scope="module")
def truth(study):
    return json.loads((study / "ground_truth.json").read_text())["regions"]


def _rows(out):
    with open(out / "doses.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        return tuple(reader.fieldnames), {r["region"]: r for r in reader}


def test_csv_contract(result, truth):
    _, out, messages = result
    header, rows = _rows(out)
    assert header == CSV_COLUMNS
    assert set(rows) == set(truth)
    for name, r in rows.items():
        assert r["kind"] == ("lesion" if name.startswith("lesion_") else "organ")
        assert r["bed_gy"] == ""
        for col in ("volume_ml", "mass_g", "tia_mbq_h", "tia_sd_mbq_h", "mean_dose_gy"):
            assert float(r[col]) > 0, (name, col)
        assert r["model"]
    assert messages and messages[-1].startswith("wrote")


def _mass_weighted(rows, truth, names):
    m = [truth[n]["mass_g"] for n in names]
    got = sum(float(rows[n]["mean_dose_gy"]) * w for n, w in zip(names, m, strict=True))
    exp = sum(truth[n]["mean_dose_gy"] * w for n, w in zip(names, m, strict=True))
    return got / sum(m), exp / sum(m)


@pytest.mark.parametrize(
    "organ", [("kidney_cortex", "kidney_medulla"), ("liver",), ("spleen",)], ids=str
)
def test_organ_doses_near_truth(result, truth, organ):
    _, out, _ = result
    _, rows = _rows(out)
    got, exp = _mass_weighted(rows, truth, organ)
    assert got == pytest.approx(exp, rel=TOLERANCE)


def test_dose_outputs_read_back(result):
    import pydicom

    from theranet.io import read_nifti

    res, out, _ = result
    ds = pydicom.dcmread(out / "dose.dcm")
    assert ds.Modality == "RTDOSE"
    assert ds.DoseUnits == "GY"
    dcm = ds.pixel_array * float(ds.DoseGridScaling)
    assert dcm.max() == pytest.approx(float(res.dose.data.max()), rel=1e-3)
    img = read_nifti(out / "dose.nii.gz")
    assert img.shape == res.dose.shape
    np.testing.assert_allclose(img.data, res.dose.data, rtol=1e-5, atol=1e-7)
    assert (out / "dose.json").is_file()
    assert not (out / "report.html").exists()


def test_region_dose_sd_and_means_positive(result):
    res, _, _ = result
    for r in res.regions.values():
        assert r.dose_sd_gy >= 0
        assert r.mean_dose_gy > 0


def test_missing_labels_is_refused_and_writes_nothing(study, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(study, bare, ignore=shutil.ignore_patterns("labels.*"))
    out = tmp_path / "out"
    with pytest.raises(PipelineInputError, match="--labels"):
        run_dosimetry(bare, out)
    assert not out.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_labels_on_another_grid_are_refused(study, tmp_path):
    from theranet.image import Image, Labels, Quantity
    from theranet.io import read_labels, write_nifti

    lab = read_labels(study / "labels.nii.gz")
    cropped = np.asarray(lab.image.data)[1:]
    other = Labels(Image(cropped, lab.image.affine, Quantity.LABEL), lab.names)
    path = write_nifti(other, tmp_path / "other.nii.gz")
    out = tmp_path / "out"
    with pytest.raises(PipelineInputError, match="CT grid") as info:
        run_dosimetry(study, out, labels_path=path)
    assert isinstance(info.value, TheranetError)
    assert "Fix:" in str(info.value)
    assert not out.exists()


def test_cli_error_exits_2(tmp_path):
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(
        app, ["dosimetry", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]
    )
    assert r.exit_code == 2
    assert "labels" in r.output
    assert not (tmp_path / "o").exists()
