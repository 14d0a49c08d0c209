"""Land-cover classes of 30 m pixels for aggregate-aware training: every pixel of a coarse cell counts.

A coarse GPP value covers every pixel of its cell, forest or not, so a model fitted to reproduce it must
predict every pixel: the forest types (ids 1-5 of :data:`~gppscale.stages.forest.FOREST_TYPE_IDS`) and
the other GLC_FCS30 land covers, grouped by how they fix carbon. Class ids:

==  ====================================================================  =========================
id  class                                                                 GLC_FCS30 codes
==  ====================================================================  =========================
0   no vegetation or unknown: impervious, bare, water, ice, no data       190, 200-202, 210, 220, …
1-5 the forest types ENF, DBF, MF, DNF, EBF (from the ``forest_type`` layer)
6   cropland                                                              10-20
7   shrubland                                                             120-122
8   grassland                                                             130
9   sparse vegetation, lichens and mosses                                 140-153
10  wetland                                                               180-187
==  ====================================================================  =========================

Example:
    >>> pixel_classes(np.array([71, 10, 130, 210, 0]), np.array([1, 0, 0, 0, 255])).tolist()
    [1, 6, 8, 0, 0]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gppscale.errors import SpecError
from gppscale.stages.forest import FOREST_TYPE_IDS

__all__ = ["CLASS_NAMES", "N_CLASSES", "class_of_forest_type", "pixel_classes"]

CLASS_NAMES: tuple[str, ...] = (
    "none",
    "ENF",
    "DBF",
    "MF",
    "DNF",
    "EBF",
    "cropland",
    "shrubland",
    "grassland",
    "sparse",
    "wetland",
)
"""Class id → name."""

N_CLASSES = len(CLASS_NAMES)

_GROUPS = {6: range(10, 21), 7: range(120, 123), 8: range(130, 131), 9: range(140, 154), 10: range(180, 188)}


def _lut() -> npt.NDArray[np.int64]:
    lut = np.zeros(256, np.int64)
    for class_id, codes in _GROUPS.items():
        lut[list(codes)] = class_id
    return lut


_LUT = _lut()


def class_of_forest_type(name: str) -> int:
    """The class id of a forest type (its ``forest_type`` id).

    Example:
        >>> class_of_forest_type("DNF")
        4
    """
    if name not in FOREST_TYPE_IDS or FOREST_TYPE_IDS[name] == 0:
        raise SpecError(f"{name!r} is not a forest type; use one of ENF, DBF, MF, DNF, EBF")
    return int(FOREST_TYPE_IDS[name])


def pixel_classes(land_cover: npt.ArrayLike, forest_type: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Class id of each pixel: its forest type where it has one, else its land-cover group.

    ``land_cover`` holds GLC_FCS30 codes (any numeric dtype; NaN and codes outside 0-255 are class 0),
    ``forest_type`` the cube's forest-type ids (1-5 forest, 0 non-forest, 255 no data).
    """
    codes = np.asarray(land_cover, np.float64)
    types = np.asarray(forest_type)
    if codes.shape != types.shape:
        raise SpecError(f"pixel_classes: land cover {codes.shape} and forest type {types.shape} differ")
    valid = np.isfinite(codes) & (codes >= 0) & (codes <= 255)
    groups = np.where(valid, _LUT[np.where(valid, codes, 0).astype(np.intp)], 0)
    forest = (types >= 1) & (types <= 5)
    return np.where(forest, types.astype(np.int64), groups).astype(np.int64)
