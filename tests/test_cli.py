"""The ``theranet`` command line."""

from __future__ import annotations

import json
import math
from datetime import datetime

import numpy as np
import pytest
from typer.testing import CliRunner

from theranet import __version__
from theranet.cli import app
from theranet.image import DecayCorrection, Image, Quantity, Timing
from theranet.io.nifti import write_nifti

runner = CliRunner()


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0
    assert __version__ in r.output


def test_help_lists_verbs():
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for verb in ("nuclide", "info", "discover"):
        assert verb in r.output


def test_nuclide_json():
    # ICRP-107: 177Lu T1/2 = 6.647 d, beta- mean 0.13327 MeV/decay (0.2 %).
    r = runner.invoke(app, ["nuclide", "177Lu", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["nuclide"] == "Lu-177"
    assert out["half_life_h"] / 24 == pytest.approx(6.647, rel=2e-3)
    assert out["mean_energy_mev_per_decay"]["beta-"] == pytest.approx(0.13327, rel=2e-3)


def test_nuclide_bad_name():
    r = runner.invoke(app, ["nuclide", "Xx-999"])
    assert r.exit_code == 2
    assert "Xx-999" in r.output


def test_info_nifti(tmp_path):
    img = Image(
        np.ones((2, 3, 4), np.float32),
        np.diag([2.0, 3.0, 4.0, 1.0]),
        Quantity.ACTIVITY_CONCENTRATION,
        nuclide="Lu-177",
        timing=Timing(
            acquisition_start=datetime(2026, 1, 1, 10), decay_correction=DecayCorrection.START
        ),
    )
    path = write_nifti(img, tmp_path / "x.nii.gz")
    r = runner.invoke(app, ["info", str(path), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["unit"] == "MBq/mL"
    assert out["shape"] == [2, 3, 4]
    assert out["decay_correction"] == "START"


def test_info_missing_file(tmp_path):
    r = runner.invoke(app, ["info", str(tmp_path / "nope.nii.gz")])
    assert r.exit_code == 2
    assert "error" in r.output


# --------------------------------------------------------------- convert: bad input


def _ct(folder, **kw):
    from tests.io.builders_series import write_ct_series

    rng = np.random.default_rng(0)
    return write_ct_series(
        folder, rng.integers(-100, 200, (5, 4, 6)).astype(float), np.diag([3.0, 2, 2, 1]), **kw
    )


def _spect(path, **kw):
    from tests.io.builders_nm import axial_affine, write_nm_spect

    return write_nm_spect(path, np.full((4, 5, 6), 100.0), axial_affine(), **kw)


def _convert(src, out, *extra):
    return runner.invoke(app, ["convert", str(src), "--out", str(out), *extra])


def _assert_refused(r, out, *fragments):
    assert r.exit_code == 2, r.output
    assert "error" in r.output
    for f in fragments:
        assert f in r.output, (f, r.output)
    assert not out.exists()
    assert list(out.parent.iterdir()) == [], "no output, not even a temporary file"


def test_convert_ct_series(tmp_path):
    _ct(tmp_path / "ct")
    out = tmp_path / "out" / "ct.nii.gz"
    r = _convert(tmp_path / "ct", out)
    assert r.exit_code == 0, r.output
    assert out.exists() and out.with_name("ct.json").exists()


def test_convert_non_dicom_file(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "image.dcm").write_text("this is not DICOM")
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "x.nii.gz"
    _assert_refused(_convert(src / "image.dcm", out), out, "DICM")


def test_convert_truncated_file(tmp_path):
    files = _ct(tmp_path / "ct")
    files[2].write_bytes(files[2].read_bytes()[:600])
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "x.nii.gz"
    _assert_refused(_convert(tmp_path / "ct", out), out, files[2].name)


def test_convert_two_frames_of_reference(tmp_path):
    def other_for(k, ds):
        if k == 3:
            ds.FrameOfReferenceUID = "1.2.3.4.5"

    _ct(tmp_path / "ct", per_slice=other_for)
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "x.nii.gz"
    _assert_refused(_convert(tmp_path / "ct", out), out, "FrameOfReferenceUID (0020,0052)")


def test_convert_slice_gap(tmp_path):
    files = _ct(tmp_path / "ct")
    files[2].unlink()
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "x.nii.gz"
    _assert_refused(_convert(tmp_path / "ct", out, "--strictness", "lenient"), out, "gap")


def test_convert_missing_injection_strict_then_lenient(tmp_path):
    src = _spect(tmp_path / "spect.dcm", injection=None)
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "x.nii.gz"
    _assert_refused(
        _convert(src, out),
        out,
        "RadiopharmaceuticalStartDateTime (0018,1078)",
        "--injection-datetime",
    )
    r = _convert(src, out, "--strictness", "lenient")
    assert r.exit_code == 0, r.output
    assert "assumed" in r.output and "injection" in r.output
    side = json.loads(out.with_name("x.json").read_text())
    assert any("injection" in a for a in side["provenance"]["assumptions"])
    assert side["timing"]["injection"] is None
    # supplying the time on the command line is the fix
    out2 = tmp_path / "out" / "y.nii.gz"
    r = _convert(src, out2, "--injection-datetime", "2026-03-09T10:30")
    assert r.exit_code == 0, r.output
    assert json.loads(out2.with_name("y.json").read_text())["timing"]["injection"] == (
        "2026-03-09T10:30:00"
    )


def test_convert_units_absent(tmp_path):
    from tests.io.builders_series import write_pet_series

    write_pet_series(
        tmp_path / "pet", np.ones((3, 4, 4)) * 1000, np.diag([3.0, 4, 4, 1]), units=None
    )
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "x.nii.gz"
    _assert_refused(_convert(tmp_path / "pet", out), out, "Units (0054,1001)")
    r = _convert(tmp_path / "pet", out, "--units", "BQML")
    assert r.exit_code == 0, r.output


def test_convert_nan_pixels(tmp_path):
    vol = np.full((4, 5, 6), 100.0)
    vol[1, 2, 3] = np.nan
    from tests.io.builders_nm import axial_affine, write_nm_spect

    src = write_nm_spect(tmp_path / "s.dcm", vol, axial_affine(), float_pixels=True)
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "x.nii.gz"
    _assert_refused(_convert(src, out, "--strictness", "lenient"), out, "non-finite")


def test_convert_negative_calibration(tmp_path):
    src = _spect(tmp_path / "s.dcm", values="counts")
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "x.nii.gz"
    _assert_refused(
        _convert(src, out, "--calibration-cps-per-mbq", "-9.5"),
        out,
        "calibration_cps_per_mbq",
        "-9.5",
    )


# ------------------------------------------------------------------------- tia


def test_tia_mono_analytic():
    # A(t) = 100 exp(-ln2 t / 50 h): TIA = 100 * 50 / ln2 MBq h (analytic)
    t = [4.0, 24.0, 96.0, 168.0]
    a = [100 * math.exp(-math.log(2) * x / 50) for x in t]
    r = runner.invoke(
        app,
        [
            "tia",
            "--times-h",
            ",".join(map(str, t)),
            "--activities-mbq",
            ",".join(f"{x:.10g}" for x in a),
            "--method",
            "mono",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["model"] == "mono"
    assert out["tia_mbq_h"] == pytest.approx(100 * 50 / math.log(2), rel=5e-3)
    assert set(out["parameters"]) == {"a1_mbq", "lambda1_per_h"}


def test_tia_hanscheid_closed_form():
    # Hänscheid 2018: TIA = A(ts) 2 ts / ln2
    r = runner.invoke(
        app, ["tia", "--times-h", "96", "--activities-mbq", "40", "--method", "hanscheid", "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["tia_mbq_h"] == pytest.approx(40 * 2 * 96 / math.log(2), rel=1e-9)


@pytest.mark.parametrize(
    ("times", "acts", "fragment"),
    [
        ("4,24,96", "10,5", "activities"),
        ("24,4,96,168", "10,8,5,2", "times"),
        ("4,4,96,168", "10,8,5,2", "times"),
        ("-1,24,96,168", "10,8,5,2", "times"),
        ("4,24,96,168", "0,0,0,0", "activities"),
        ("4,24,96,168", "10,-8,5,2", "activities"),
    ],
)
def test_tia_bad_input(times, acts, fragment):
    r = runner.invoke(app, ["tia", "--times-h", times, "--activities-mbq", acts])
    assert r.exit_code == 2, r.output
    assert "error" in r.output.lower()
    assert fragment in r.output.lower()


# ---------------------------------------------------------------------- kernel


def test_kernel_csv_contract(tmp_path, monkeypatch):
    monkeypatch.setenv("THERANET_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "k.csv"
    r = runner.invoke(
        app,
        [
            "kernel",
            "Lu-177",
            "--voxel-mm",
            "4.42",
            "--medium",
            "soft_tissue",
            "--n-voxels",
            "5",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    rows = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert rows[0] == "i,j,k,s_mGy_per_MBq_s"
    assert len(rows) == 1 + 6**3
    i, j, k, s = rows[1].split(",")
    assert (i, j, k) == ("0", "0", "0") and float(s) > 0


def test_kernel_sphere_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("THERANET_CACHE_DIR", str(tmp_path / "cache"))
    r = runner.invoke(app, ["kernel", "Lu-177", "--sphere-g", "10", "--medium", "soft_tissue"])
    assert r.exit_code == 0, r.output
    assert "mGy/(MBq s)" in r.output
    r = runner.invoke(
        app,
        [
            "kernel",
            "Lu-177",
            "--voxel-mm",
            "4",
            "--n-voxels",
            "3",
            "--out",
            str(tmp_path / "x.csv"),
        ],
    )
    assert r.exit_code == 2
    assert not (tmp_path / "x.csv").exists()
    r = runner.invoke(app, ["kernel", "Lu-177", "--sphere-g", "-1"])
    assert r.exit_code == 2 and "mass_g" in r.output


def test_pathway_text_json_and_unknown_type():
    """MTC with Ct > 1000 pg/mL: 18F-DOPA PET first, FDG PET beside it
    (clinical.md §2, ATA-MTC / EANM rows)."""
    import json

    r = CliRunner().invoke(app, ["pathway", "mtc", "--calcitonin-pg-ml", "2000", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["inputs"]["calcitonin_band"] == "gt_1000"
    first = doc["imaging"][0]
    assert "DOPA" in json.dumps(first)
    r = CliRunner().invoke(app, ["pathway", "ppgl", "--site", "head_and_neck"])
    assert r.exit_code == 0 and "68Ga" in r.output
    r = CliRunner().invoke(app, ["pathway", "bogus"])
    assert r.exit_code == 2 and "unknown tumour type" in r.output
