"""Rich renderables of the registry commands (theranet.registry.cli)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from rich.console import Console

from tests.registry.conftest import cycle_kwargs, region_rows
from theranet.registry import RegistryError
from theranet.registry.cli import cumulative_doses, export, list_patients, show_patient


def _text(renderable) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(renderable)
    return console.export_text()


@pytest.fixture
def filled(registry):
    registry.record_cycle("NET-0001", **cycle_kwargs(dt.datetime(2024, 1, 8, 10, 30)))
    registry.record_cycle(
        "NET-0001",
        **cycle_kwargs(dt.datetime(2024, 3, 4, 9, 15), regions=region_rows(1, scale=2.0)),
    )
    registry.record_cycle("NET-0002", **cycle_kwargs(dt.datetime(2024, 2, 1, 8, 0)))
    return registry


def test_list_patients(filled):
    text = _text(list_patients(filled))
    assert "NET-0001" in text and "NET-0002" in text
    row = next(line for line in text.splitlines() if "NET-0001" in line)
    assert "2024-03-04 09:15" in row and "14.8" in row  # 2 x 7.4 GBq


def test_show_patient(filled):
    text = _text(show_patient(filled, "NET-0001"))
    assert "Cycles of NET-0001" in text
    assert "Treatment 1, cycle 2: absorbed doses" in text
    assert "Cumulative over all cycles" in text
    cumulative = cumulative_doses(filled.cycles("NET-0001"))
    # kidneys: 3.2109876543 Gy, then twice that
    assert cumulative["kidneys"]["dose_gy"] == pytest.approx(3 * 3.2109876543, rel=1e-12)
    assert cumulative["kidneys"]["cycles"] == 2
    assert cumulative["kidneys"]["bed_gy"] is None  # no BED yet
    assert cumulative["lesion_1"]["bed_gy"] == 2 * 17.25
    assert cumulative["lesion_2"]["cycles"] == 1
    with pytest.raises(RegistryError):
        show_patient(filled, "NET-9999")


def test_show_patient_with_two_treatments(filled):
    filled.record_cycle(
        "NET-0001",
        **cycle_kwargs(dt.datetime(2025, 5, 5, 9, 0), regions=region_rows(1, scale=3.0)),
        new_treatment=True,
    )
    text = _text(show_patient(filled, "NET-0001"))
    assert "Cumulative over the cycles of treatment 1" in text
    assert "Cumulative over the cycles of treatment 2" in text
    assert "Cumulative over all cycles of treatments [1, 2]" in text
    # kidneys: 3.2109876543 Gy x (1 + 2) in treatment 1, x 3 in treatment 2, 19.3 in all
    parts = text.split("Cumulative over ")[1:]
    kidney = [next(ln for ln in part.splitlines() if "kidneys" in ln) for part in parts]
    cells = [[c.strip() for c in ln.split("│")[3:5]] for ln in kidney]
    assert cells == [["2", "9.63"], ["1", "9.63"], ["3", "19.3"]]


def test_export(filled, tmp_path):
    message = export(filled, tmp_path / "all.json")
    assert "all patients" in message.plain
    doc = json.loads((tmp_path / "all.json").read_text())
    assert {c["patient_id"] for c in doc["cycles"]} == {"NET-0001", "NET-0002"}
    message = export(filled, tmp_path / "one.txt", patient_id="NET-0002", format="csv")
    assert "NET-0002" in message.plain
    assert (tmp_path / "one.txt").read_text().count("\n") == 1 + 4
