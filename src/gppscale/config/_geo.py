"""Geographic helpers of the run spec: UTM zones, lon/lat boxes and GeoJSON areas.

These are pure functions; the only I/O is reading a GeoJSON file named by the spec.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import shapely
import shapely.geometry
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from gppscale.errors import SpecError

__all__ = ["bbox_to_geometry", "check_bbox", "geojson_to_geometry", "utm_epsg_for"]

BBox = tuple[float, float, float, float]


def utm_epsg_for(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 UTM zone that holds a lon/lat point (degrees).

    Zones are 6 degrees wide counted from 180 W; a point on a zone edge belongs to the zone east of it,
    except longitude 180, which closes zone 60. Latitude >= 0 gives the northern zone (EPSG:326zz),
    below 0 the southern one (EPSG:327zz). The Norway and Svalbard exceptions of the military grid are
    not applied: gppscale only needs a projected grid with little distortion over the area.

    Args:
        lon: Longitude in degrees, -180 to 180.
        lat: Latitude in degrees, -90 to 90.

    Returns:
        The EPSG code, 32601-32660 or 32701-32760.

    Raises:
        SpecError: When the point is not in lon/lat degrees.

    Example:
        >>> utm_epsg_for(117.2, 42.1)
        32650
        >>> utm_epsg_for(-70.5, -33.4)
        32719
        >>> utm_epsg_for(180.0, 10.0)
        32660
    """
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise SpecError(
            f"({lon!r}, {lat!r}) is not a lon/lat point in degrees: longitude must lie in [-180, 180] "
            "and latitude in [-90, 90]; is the order (lon, lat)?"
        )
    zone = math.floor((lon + 180.0) / 6.0) + 1
    if lon < -180.0 + 6.0 * (zone - 1):  # lon + 180 was rounded up onto the zone's west edge
        zone -= 1
    return (32600 if lat >= 0.0 else 32700) + min(zone, 60)


def check_bbox(bbox: BBox) -> BBox:
    """Check a ``(west, south, east, north)`` box in lon/lat degrees; returned unchanged.

    Raises:
        ValueError: With the offending number and the fix.

    Example:
        >>> check_bbox((117.0, 41.95, 117.37, 42.23))
        (117.0, 41.95, 117.37, 42.23)
        >>> check_bbox((190.0, 41.0, 191.0, 42.0))
        Traceback (most recent call last):
        ...
        ValueError: west 190.0 is outside [-180, 180]; give [west, south, east, north] in degrees
    """
    west, south, east, north = bbox
    hint = "give [west, south, east, north] in degrees"
    for label, value, limit in (
        ("west", west, 180),
        ("south", south, 90),
        ("east", east, 180),
        ("north", north, 90),
    ):
        if not -limit <= value <= limit:
            raise ValueError(f"{label} {value!r} is outside [-{limit}, {limit}]; {hint}")
    if not west < east:
        raise ValueError(
            f"west {west!r} must be less than east {east!r}; {hint} "
            "(an area across the antimeridian is not supported: split it into two runs)"
        )
    if not south < north:
        raise ValueError(f"south {south!r} must be less than north {north!r}; {hint}")
    return bbox


def bbox_to_geometry(bbox: BBox) -> BaseGeometry:
    """A shapely polygon of a (west, south, east, north) box in degrees."""
    return shapely.geometry.box(*bbox)


def _read_geojson(path: str) -> object:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(
            f"cannot read the GeoJSON file {path!r} ({e.strerror or e}); a relative path is taken from "
            "the spec file's folder"
        ) from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path!r} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from e


def _geometry_of(obj: object) -> BaseGeometry:
    """A shapely geometry from a GeoJSON geometry, Feature or FeatureCollection (features unioned)."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"expected a GeoJSON object (a mapping with 'type'); got {type(obj).__name__}")
    kind = obj.get("type")
    if kind == "FeatureCollection":
        features = obj.get("features") or ()
        return shapely.union_all([_geometry_of(f) for f in features])
    if kind == "Feature":
        return _geometry_of(obj.get("geometry"))
    try:
        return shapely.geometry.shape(obj)
    except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.ShapelyError) as e:
        raise ValueError(f"not a GeoJSON geometry (type {kind!r}): {e}") from e


def geojson_to_geometry(value: str | Mapping[str, Any]) -> BaseGeometry:
    """The lon/lat area of a GeoJSON file path or an inline GeoJSON mapping, as a shapely geometry.

    The geometry must be a valid, non-empty Polygon or MultiPolygon in lon/lat degrees (RFC 7946).

    Raises:
        ValueError: With what is wrong and how to fix it.

    Example:
        >>> square = {"type": "Polygon", "coordinates": [[[117, 42], [117.1, 42], [117.1, 42.1], [117, 42]]]}
        >>> geojson_to_geometry(square).bounds
        (117.0, 42.0, 117.1, 42.1)
    """
    where = f"GeoJSON file {value!r}" if isinstance(value, str) else "inline GeoJSON"
    geometry = _geometry_of(_read_geojson(value) if isinstance(value, str) else value)
    if geometry.is_empty or geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise ValueError(
            f"{where}: the area must be a non-empty Polygon or MultiPolygon; got {geometry.geom_type}"
        )
    if not geometry.is_valid:
        raise ValueError(
            f"{where}: invalid polygon ({explain_validity(geometry)}); fix it, e.g. with shapely.make_valid"
        )
    try:
        check_bbox(geometry.bounds)
    except ValueError as e:
        raise ValueError(f"{where}: coordinates must be lon/lat degrees (RFC 7946): {e}") from e
    return geometry
