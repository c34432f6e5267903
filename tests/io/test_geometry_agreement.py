"""The same volume written as NM multi-frame SPECT and as a CT-style series reads
back to the same affine (1e-6 mm), and both agree with SimpleITK's CT reading."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from numpy.testing import assert_allclose

from tests.io.builders_nm import ascending, write_nm_spect
from tests.io.builders_series import write_ct_series
from theranet.image import affine_from_sitk
from theranet.io import read_nm_spect, read_series


def _oblique(slice_sign: int) -> np.ndarray:
    # rows/columns rotated 20 degrees about z, slice step +-3.3 mm along the normal
    a = math.radians(20.0)
    col_dir = np.array([math.cos(a), math.sin(a), 0.0])  # along a row (column index)
    row_dir = np.array([-math.sin(a), math.cos(a), 0.0])  # down a column (row index)
    normal = np.cross(col_dir, row_dir)
    aff = np.eye(4)
    aff[:3, 0] = slice_sign * 3.3 * normal
    aff[:3, 1] = 4.1 * row_dir
    aff[:3, 2] = 4.1 * col_dir
    aff[:3, 3] = [-211.7, -153.2, 87.25]
    return aff


@pytest.mark.parametrize("slice_sign", [+1, -1])
@pytest.mark.parametrize("spacing_sign", [+1, -1])
def test_nm_and_ct_series_same_affine(tmp_path, slice_sign, spacing_sign):
    rng = np.random.default_rng(7)
    volume = rng.integers(0, 3000, size=(9, 11, 13)).astype(np.float64)
    affine = _oblique(slice_sign)
    nm_path = write_nm_spect(
        tmp_path / "spect.dcm", volume, affine, values="counts", spacing_sign=spacing_sign
    )
    ct_files = write_ct_series(tmp_path / "ct", volume, affine, order="reverse")
    nm = read_nm_spect(nm_path)
    ct = read_series(tmp_path / "ct")
    expected_affine, expected_volume = ascending(affine, volume)
    assert_allclose(nm.affine, ct.affine, atol=1e-6)
    assert_allclose(nm.affine, expected_affine, atol=1e-6)
    assert_allclose(ct.affine, expected_affine, atol=1e-6)
    assert_allclose(nm.data, expected_volume)
    assert_allclose(ct.data, expected_volume)
    # the same physical point holds the same value in both readings
    for idx in ([0, 0, 0], [8, 10, 12], [3, 5, 7]):
        lps = nm.index_to_lps(idx)
        assert_allclose(ct.lps_to_index(lps), idx, atol=1e-6)
    # SimpleITK's own reading of the CT series
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(ct_files[0].parent)))
    s = reader.Execute()
    assert_allclose(affine_from_sitk(s), ct.affine, atol=1e-6)
    assert_allclose(sitk.GetArrayFromImage(s), ct.data)
