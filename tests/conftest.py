"""Test-wide settings."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_registry(tmp_path_factory):
    """`theranet dosimetry` records cycles in the default registry under
    $XDG_DATA_HOME: keep the tests' records out of the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg_data")))
    yield
    mp.undo()
