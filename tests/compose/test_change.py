"""The change measures of a restored frame: magnitude, the box a face can change, the change-map picture."""

from __future__ import annotations

import numpy as np
import pytest

from fvr.compose import FacePaste, change_magnitude, change_map, paste_box, paste_faces
from fvr.compose.change import box_change


def test_magnitude_is_the_largest_channel_difference_and_zero_where_equal() -> None:
    a = np.full((4, 5, 3), 100, np.uint8)
    b = a.copy()
    b[1, 2] = (100, 90, 103)
    mag = change_magnitude(b, a)
    assert mag.dtype == np.uint8 and mag[1, 2] == 10 and mag.sum() == 10
    with pytest.raises(ValueError):
        change_magnitude(a, a[:3])


def test_map_is_black_where_unchanged_and_saturates_at_its_scale() -> None:
    mag = np.array([[0, 1, 32, 64, 200]], np.uint8)
    picture = change_map(mag)
    assert picture.shape == (1, 5, 3) and picture[0, 0].tolist() == [0, 0, 0]
    assert picture[0, 1].any()  # one level is already visible
    brightness = picture[0].astype(int).sum(axis=1)
    assert brightness[1] < brightness[2] < brightness[3] == brightness[4]  # 64 levels and more: the brightest
    assert change_map(mag, full=32)[0, 2].tolist() == picture[0, 3].tolist()  # a finer scale


def test_paste_changes_nothing_outside_its_box() -> None:
    frame = np.full((120, 160, 3), 80, np.uint8)
    matrix = np.array([[1.0, 0.0, -40.0], [0.0, 1.0, -30.0]])  # the crop is frame pixels (40..104, 30..94)
    original = np.full((64, 64, 3), 80 / 255, np.float32)
    paste = FacePaste(matrix, np.ones((64, 64, 3), np.float32), original)
    out = paste_faces(frame, [paste], np.ones((64, 64), np.float32))
    box = paste_box(paste, 120, 160)
    assert box is not None
    x0, y0, x1, y1 = box
    mag = change_magnitude(out, frame)
    outside = mag.copy()
    outside[y0:y1, x0:x1] = 0
    assert outside.max() == 0 and mag[y0:y1, x0:x1].max() == 175
    mean, peak = box_change(mag, box)
    assert peak == 175 and 0 < mean <= 175
    assert box_change(mag, None) == (0.0, 0)
