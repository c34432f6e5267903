"""The ``theranet`` command line."""

from __future__ import annotations

import json
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
