"""Report figures: legibility, page fit, orientation and awkward data."""

from __future__ import annotations

import dataclasses

import matplotlib.text
import numpy as np
import pytest

from tests.report.builders import make_report, zyx_affine
from theranet.image import Image, Quantity
from theranet.report.figures import (
    MAX_TAC_PER_FIGURE,
    MIN_FONT_PT,
    _canonical,
    _tac_chunks,
    dose_bar_figure,
    dvh_figure,
    figure_png,
    figure_specs,
    overlay_figure,
    tac_figure,
    tac_figures,
)

A4_WIDTH_IN = 8.27


def assert_legible(fig) -> None:
    """Fits an A4 page width and no drawn text is smaller than 8 pt."""
    fig.canvas.draw()  # tick labels exist only once drawn
    width_in, height_in = fig.get_size_inches()
    assert width_in <= 8.3
    assert height_in <= 11.0
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text()]
    assert texts
    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < MIN_FONT_PT]
    assert not small, small


def all_figures(report):
    return [
        tac_figure(report.curves),
        overlay_figure(report.activity, report.dose, report.labels),
        dvh_figure(report.dvh),
        dose_bar_figure(report.doses),
    ]


def test_every_figure_is_legible(report):
    for fig in all_figures(report):
        assert_legible(fig)


def test_awkward_data_draws():
    """NaN SDs everywhere, a region without dose, a name with dollar signs."""
    name = "spleen $1$"
    awkward = make_report(("liver", name), nan_sd=True, zero_dose=(name,))
    spleen = next(r for r in awkward.doses if r.region == name)
    assert spleen.mean_dose_gy == 0.0
    figures = all_figures(awkward)
    for fig in figures:
        assert_legible(fig)
    # shown as typed, not as mathtext
    texts = [t.get_text() for t in figures[-1].findobj(matplotlib.text.Text)]
    assert r"spleen \$1\$" in texts


def test_single_region():
    one = make_report(("liver",), shape=(24, 24, 24))
    for fig in (tac_figure(one.curves), dvh_figure(one.dvh), dose_bar_figure(one.doses)):
        assert_legible(fig)


def test_tac_figures_split_many_regions():
    curves = list(make_report(("a", "b", "c"), shape=(16, 16, 16)).curves)
    with pytest.raises(ValueError, match="tac_figures"):
        tac_figure(curves * 5)  # 15 regions, over the 12-panel limit
    # balanced figures of at most 12: 15 -> 8 + 7, 14 -> 7 + 7, 30 -> 10 + 10 + 10
    assert [len(c) for c in _tac_chunks(list(range(15)), MAX_TAC_PER_FIGURE)] == [8, 7]
    assert [len(c) for c in _tac_chunks(list(range(14)), 12)] == [7, 7]
    assert [len(c) for c in _tac_chunks(list(range(30)), 12)] == [10, 10, 10]
    parts = tac_figures(curves, per_figure=2)
    assert [len(f.axes) for f in parts] == [4, 2]  # two axes (curve, residuals) per region
    assert tac_figures([]) == []


def test_empty_inputs_refused():
    with pytest.raises(ValueError, match="curves"):
        tac_figure([])
    with pytest.raises(ValueError, match="dvh"):
        dvh_figure({})
    with pytest.raises(ValueError, match="doses"):
        dose_bar_figure([])


def test_figure_png(report):
    png = figure_png(dose_bar_figure(report.doses), dpi=130)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width_px = int.from_bytes(png[16:20], "big")
    assert width_px == round(7.2 * 130)


def test_report_specs(report):
    keys = [s.key for s in figure_specs(report)]
    assert keys == ["tac-1", "overlay", "dvh", "dose-bars"]


def test_canonical_orientation():
    """A hot voxel at the patient's left, posterior, head end lands at the high end of
    the x, y, z axes of the canonical volume, whatever the array order and flips."""
    data = np.zeros((6, 8, 10), np.float32)  # (Z, Y, X)
    data[5, 7, 9] = 1.0  # largest z, y, x index
    affine = zyx_affine(2.0, data.shape)
    img = Image(data, affine, Quantity.ACTIVITY_CONCENTRATION)
    c = _canonical(img)
    assert c.data.shape == (10, 8, 6)
    assert np.unravel_index(np.argmax(c.data), c.data.shape) == (9, 7, 5)
    # flip the array along x and compensate in the affine: same patient geometry
    flipped_affine = affine.copy()
    flipped_affine[:3, 3] = affine[:3, :3] @ np.array([0, 0, 9]) + affine[:3, 3]
    flipped_affine[:3, 2] = -affine[:3, 2]
    flipped = Image(data[:, :, ::-1], flipped_affine, Quantity.ACTIVITY_CONCENTRATION)
    cf = _canonical(flipped)
    np.testing.assert_array_equal(cf.data, c.data)
    for k in range(3):
        np.testing.assert_allclose(cf.extent_mm[k], c.extent_mm[k])
    assert c.extent_mm[0] == pytest.approx((-10.0, 10.0))  # 10 voxels of 2 mm, centred


def test_overlay_refuses_other_grid(report):
    other = dataclasses.replace(report.dose, affine=zyx_affine(3.0))
    with pytest.raises(ValueError, match="resample"):
        overlay_figure(report.activity, other, report.labels)
