"""Land-cover classes of 30 m pixels for aggregate training, checked code by code."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import gppscale.stages.landclass as landclass_mod
from gppscale.errors import SpecError
from gppscale.stages.landclass import CLASS_NAMES, N_CLASSES, class_of_forest_type, pixel_classes


def test_doctests() -> None:
    assert doctest.testmod(landclass_mod).failed == 0


@pytest.mark.parametrize(
    ("code", "forest_type", "expected"),
    [
        (10, 0, "cropland"),  # rainfed cropland
        (20, 0, "cropland"),  # irrigated cropland
        (122, 0, "shrubland"),  # deciduous shrubland
        (130, 0, "grassland"),
        (152, 0, "sparse"),  # sparse shrubland
        (181, 0, "wetland"),  # swamp
        (190, 0, "none"),  # impervious
        (210, 0, "none"),  # water
        (91, 3, "MF"),  # mixed-leaf forest: its forest type decides
        (81, 4, "DNF"),
        (250, 255, "none"),  # fill
        (61, 255, "none"),  # a forest code where the forest-type map has no data
    ],
)
def test_classes_by_hand(code: int, forest_type: int, expected: str) -> None:
    assert CLASS_NAMES[int(pixel_classes(np.array([code]), np.array([forest_type]))[0])] == expected


def test_nan_and_out_of_range_codes_are_no_class_and_shapes_must_agree() -> None:
    got = pixel_classes(np.array([np.nan, -3.0, 300.0, 130.0]), np.zeros(4, np.uint8))
    assert got.tolist() == [0, 0, 0, 8] and got.dtype == np.int64
    assert N_CLASSES == 11 and class_of_forest_type("ENF") == 1
    with pytest.raises(SpecError, match="differ"):
        pixel_classes(np.zeros(3), np.zeros(2))
    with pytest.raises(SpecError, match="not a forest type"):
        class_of_forest_type("non-forest")
