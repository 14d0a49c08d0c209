"""The world's data products: COGs on disk plus their STAC Items, collection by collection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from shapely.geometry import Polygon

from gppscale.world import layout
from gppscale.world.climate import day_of_year, glass_windows, quarter_edges
from gppscale.world.coarse import CoarseOperator, encode_uint16
from gppscale.world.fields import FourierField, seeded_rng
from gppscale.world.grids import Grid, lonlat_tile_grids
from gppscale.world.landsat import (
    BANDS,
    CENTER_WAVELENGTH_UM,
    QA,
    SR_OFFSET,
    SR_SCALE,
    SUN_AZIMUTH_DEG,
    Scene,
    clean_reflectance,
    scene_sun_elevation_deg,
    simulate_scene,
)
from gppscale.world.landscape import Landscape, Points
from gppscale.world.sites import SiteSet
from gppscale.world.stac import collection, footprint_geometry, item, proj_properties, raster_asset
from gppscale.world.towers import (
    TowerSite,
    WindowForcing,
    simulate_tower,
    sites_geojson,
    tower_csv_name,
    write_tower_csv,
)
from gppscale.world.truth import Canopy
from gppscale.world.writers import write_cog, write_json, write_ndjson

__all__ = ["ProductWriter"]

F32 = npt.NDArray[np.float32]
C = layout.COLLECTIONS
COARSE_SCALE = 0.01
COARSE_NODATA = 65535
LANDSAT_FILE = {
    "coastal": "SR_B1",
    "blue": "SR_B2",
    "green": "SR_B3",
    "red": "SR_B4",
    "nir08": "SR_B5",
    "swir16": "SR_B6",
    "swir22": "SR_B7",
}
GLC_RES_DEG = 0.000269494585236  # 30 m at the equator, as GLC_FCS30 tiles
DEM_RES_DEG = 1.0 / 3600.0  # 1 arc-second, as Copernicus GLO-30 below 50 degrees latitude
GLC_CLASSES = [
    (10, "rainfed cropland"),
    (61, "open deciduous broadleaved forest"),
    (62, "closed deciduous broadleaved forest"),
    (71, "open evergreen needle-leaved forest"),
    (72, "closed evergreen needle-leaved forest"),
    (81, "open deciduous needle-leaved forest"),
    (82, "closed deciduous needle-leaved forest"),
    (91, "open mixed-leaf forest"),
    (92, "closed mixed-leaf forest"),
    (120, "shrubland"),
    (130, "grassland"),
    (190, "impervious surfaces"),
    (210, "water body"),
]


def _iso(day: np.datetime64, end_of_day: bool = False) -> str:
    return f"{day}T23:59:59Z" if end_of_day else f"{day}T00:00:00Z"


class ProductWriter:
    """Writes products under ``root`` with hrefs pointing at ``final`` (where the world will live)."""

    def __init__(self, root: Path, final: Path, grid: Grid, epsg: int, seed: int, modis_tile: str) -> None:
        self.root, self.final, self.grid, self.epsg, self.seed = root, final, grid, epsg, seed
        self.modis_tile = modis_tile
        self.items: dict[str, list[dict[str, Any]]] = {cid: [] for cid in C.values()}
        self._cloud: list[float] = []
        self._bias: dict[str, npt.NDArray[np.float64]] = {}

    def _href(self, rel: str) -> str:
        return (self.final / rel).as_uri()

    def _path(self, rel: str) -> Path:
        return self.root / rel

    # --- static layers --------------------------------------------------------------------------
    def static_products(self, land: Landscape, canopy: Canopy, say: Callable[[str], None]) -> None:
        """DEM in EPSG:4326 1-degree tiles and GLC_FCS30 land cover in 5-degree tiles."""
        bbox = self.grid.bounds_lonlat()
        for (lon0, lat0), g in lonlat_tile_grids(bbox, DEM_RES_DEG, 1):
            x, y = g.centres_in(self.grid.crs)
            z = land.elevation(Points(x, y, grid=False)).astype(np.float32)
            name = f"Copernicus_DSM_COG_10_N{lat0:02d}_00_E{lon0:03d}_00_DEM"
            rel = f"{layout.DATA_DIR}/{C['dem']}/{name}.tif"
            write_cog(self._path(rel), z, g, None)
            geom, box = footprint_geometry(g)
            self.items[C["dem"]].append(
                item(
                    name,
                    C["dem"],
                    geom,
                    box,
                    datetime="2021-04-22T00:00:00Z",
                    properties={"gsd": 30, "platform": "TanDEM-X", **proj_properties(g, 4326)},
                    assets={"data": raster_asset(self._href(rel), "Elevation", "float32", unit="metre")},
                )
            )
        say(f"DEM: {len(self.items[C['dem']])} tile(s)")
        for (lon0, lat0), g in lonlat_tile_grids(bbox, GLC_RES_DEG, 5):
            code = _nearest_from(canopy.code, self.grid, g)
            name = f"GLC_FCS30D_2020_E{lon0}N{lat0 + 5}"
            rel = f"{layout.DATA_DIR}/{C['forest_type']}/{name}.tif"
            write_cog(self._path(rel), code, g, 0)
            geom, box = footprint_geometry(g)
            classes = [{"value": v, "name": n.replace(" ", "-"), "description": n} for v, n in GLC_CLASSES]
            asset = raster_asset(
                self._href(rel),
                "GLC_FCS30D land cover",
                "uint8",
                nodata=0,
                extra={"classification:classes": [*classes, {"value": 250, "name": "fill", "nodata": True}]},
            )
            self.items[C["forest_type"]].append(
                item(
                    name,
                    C["forest_type"],
                    geom,
                    box,
                    datetime=None,
                    start="2020-01-01T00:00:00Z",
                    end="2020-12-31T23:59:59Z",
                    properties=proj_properties(g, 4326),
                    assets={"classification": asset},
                    extensions=("proj", "raster", "classification"),
                )
            )

    # --- coarse GPP/NPP ----------------------------------------------------------------------------
    def coarse_window(
        self,
        year: int,
        wi: int,
        start: np.datetime64,
        n_days: int,
        gpp: F32,
        npp: F32,
        op: CoarseOperator,
        water_frac: F32,
    ) -> None:
        """GLASS-like 8-day GPP and NPP: area mean of truth, a smooth bias and 6 % cell noise, uint16."""
        doy = day_of_year(start)
        end = start + np.timedelta64(n_days - 1, "D")
        g = op.coarse
        for product, fine, cid in (("GPP", gpp, C["coarse_gpp"]), ("NPP", npp, C["coarse_npp"])):
            rng = seeded_rng(self.seed, "coarse", product, year, wi)
            noisy = (
                op.apply(fine) * self._coarse_bias(product, g) * (1.0 + 0.06 * rng.standard_normal(g.shape))
            )
            value: F32 = np.where(water_frac > 0.5, np.nan, np.maximum(noisy, 0.0)).astype(np.float32)
            name = f"GLASS_{product}_A{year}{doy:03d}_{self.modis_tile}"
            rel = f"{layout.DATA_DIR}/{cid}/{name}.tif"
            write_cog(self._path(rel), encode_uint16(value, COARSE_SCALE, COARSE_NODATA), g, COARSE_NODATA)
            geom, box = footprint_geometry(g)
            asset = raster_asset(
                self._href(rel),
                f"{product}, mean daily rate over the window",
                "uint16",
                nodata=COARSE_NODATA,
                scale=COARSE_SCALE,
                offset=0.0,
                unit="gC m-2 d-1",
            )
            self.items[cid].append(
                item(
                    name,
                    cid,
                    geom,
                    box,
                    datetime=_iso(start),
                    start=_iso(start),
                    end=_iso(end, True),
                    properties={"gppscale:variable": product.lower(), **proj_properties(g, None)},
                    assets={"data": asset},
                )
            )

    def _coarse_bias(self, product: str, g: Grid) -> npt.NDArray[np.float64]:
        """The product's fixed multiplicative bias: 0.97 times a smooth field of +-4 % (made once)."""
        if product not in self._bias:
            field = FourierField.make(seeded_rng(self.seed, "bias", product), 3000.0, 32)
            self._bias[product] = 0.97 * (1.0 + 0.04 * field.on_grid(g.xs, g.ys))
        return self._bias[product]

    # --- meteorology -------------------------------------------------------------------------------
    def met_window(self, year: int, start: np.datetime64, n_days: int, g: Grid, met: dict[str, F32]) -> None:
        """8-day mean weather on a 0.01-degree grid, one COG per variable."""
        name = f"meteo_8day_{year}{day_of_year(start):03d}"
        units = {"tmean": "degC", "prcp": "mm d-1", "srad": "W m-2", "vpd": "hPa"}
        assets = {}
        for var, arr in met.items():
            rel = f"{layout.DATA_DIR}/{C['meteorology']}/{name}_{var}.tif"
            write_cog(self._path(rel), arr, g, None)
            assets[var] = raster_asset(self._href(rel), var, "float32", unit=units[var])
        geom, box = footprint_geometry(g)
        end = start + np.timedelta64(n_days - 1, "D")
        self.items[C["meteorology"]].append(
            item(
                name,
                C["meteorology"],
                geom,
                box,
                datetime=_iso(start),
                start=_iso(start),
                end=_iso(end, True),
                properties=proj_properties(g, 4326),
                assets=assets,
            )
        )

    # --- Landsat -----------------------------------------------------------------------------------
    def landsat_scene(self, sc: Scene, canopy: Canopy, tmean: F32) -> F32:
        """Write one scene (7 SR bands + QA_PIXEL) and return its clean reflectance for the truth."""
        cold = float(np.median(tmean)) < 0.0
        snow_event = cold and seeded_rng(self.seed, "snow", sc.item_id).uniform() < 0.8
        dn, qa, _masks, cover = simulate_scene(canopy, self.grid, sc, tmean, snow_event, self.seed)
        self._cloud.append(cover)
        base = f"{layout.DATA_DIR}/{C['landsat']}/{sc.item_id}/{sc.item_id}"
        assets: dict[str, dict[str, Any]] = {}
        for k, band in enumerate(BANDS):
            rel = f"{base}_{LANDSAT_FILE[band]}.TIF"
            write_cog(self._path(rel), dn[k], self.grid, 0)
            assets[band] = raster_asset(
                self._href(rel),
                f"Surface reflectance {band}",
                "uint16",
                nodata=0,
                scale=SR_SCALE,
                offset=SR_OFFSET,
                roles=("data", "reflectance"),
                extra={
                    "eo:bands": [
                        {
                            "name": LANDSAT_FILE[band],
                            "common_name": band,  # eo v1.1 common names: coastal ... nir08, swir16
                            "center_wavelength": CENTER_WAVELENGTH_UM[k],
                        }
                    ]
                },
            )
        rel = f"{base}_QA_PIXEL.TIF"
        write_cog(self._path(rel), qa, self.grid, 1)
        assets["qa_pixel"] = raster_asset(
            self._href(rel),
            "Pixel quality assessment band",
            "uint16",
            nodata=1,
            unit="bit index",
            roles=("cloud", "cloud-shadow", "snow-ice", "water-mask"),
            extra={"classification:bitfields": _qa_bitfields()},
        )
        geom, box = footprint_geometry(self.grid, _scene_polygon(self.grid, sc))
        props = {
            "platform": "landsat-8",
            "instruments": ["oli", "tirs"],
            "eo:cloud_cover": cover,
            "view:sun_azimuth": SUN_AZIMUTH_DEG,
            "view:sun_elevation": round(scene_sun_elevation_deg(sc, self.grid), 2),
            "landsat:wrs_path": f"{sc.path:03d}",
            "landsat:wrs_row": f"{sc.row:03d}",
            "landsat:collection_category": "T1",
            "landsat:correction": "L2SP",
            "gsd": 30,
            **proj_properties(self.grid, self.epsg),
        }
        self.items[C["landsat"]].append(
            item(
                sc.item_id,
                C["landsat"],
                geom,
                box,
                datetime=f"{sc.date}T02:53:00Z",
                properties=props,
                assets=assets,
                extensions=("proj", "raster", "eo", "view", "classification"),
            )
        )
        return clean_reflectance(canopy, sc.doy)

    # --- reference 30 m product --------------------------------------------------------------------
    def reference_quarter(
        self, year: int, quarter: int, gpp: F32, npp: F32, canopy: Canopy, inner: tuple[slice, slice]
    ) -> None:
        """Truth plus a spatially correlated error sized so that R^2 against truth is about 0.7."""
        forest = (canopy.code >= 51) & (canopy.code <= 92)
        vegetated = ~np.isin(canopy.code, (190, 210))
        edges = quarter_edges(year)
        first, last = edges[quarter - 1], edges[quarter] - np.timedelta64(1, "D")
        for product, truth, cid in (("gpp", gpp, C["reference_gpp"]), ("npp", npp, C["reference_npp"])):
            rng = seeded_rng(self.seed, "reference", product, year, quarter)
            smooth = FourierField.make(rng, 250.0, 64).on_grid(self.grid.xs, self.grid.ys)
            err = (0.7 * smooth + 0.3 * rng.standard_normal(self.grid.shape)) / np.hypot(0.7, 0.3)
            sd = float(np.std(truth[inner][forest[inner]])) if forest[inner].any() else 0.0
            ref = np.maximum(truth + np.sqrt(0.35) * sd * err, 0.0)
            ref = np.where(vegetated, ref, np.nan).astype(np.float32)
            name = f"reference_{product}_{year}Q{quarter}"
            rel = f"{layout.DATA_DIR}/{cid}/{name}.tif"
            write_cog(self._path(rel), ref, self.grid, float("nan"))
            geom, box = footprint_geometry(self.grid)
            self.items[cid].append(
                item(
                    name,
                    cid,
                    geom,
                    box,
                    datetime=None,
                    start=_iso(first),
                    end=_iso(last, True),
                    properties=proj_properties(self.grid, self.epsg),
                    assets={
                        "data": raster_asset(
                            self._href(rel),
                            f"reference {product.upper()}",
                            "float32",
                            nodata="nan",
                            unit="gC m-2 quarter-1",
                        )
                    },
                )
            )

    # --- towers and plots --------------------------------------------------------------------------
    def towers(
        self, ts: SiteSet, forcing: list[dict[str, list[float]]], year: int, say: Callable[[str], None]
    ) -> None:
        """FLUXNET2015-style CSVs, the sites GeoJSON and the towers' true quarterly GPP."""
        starts, n_days = glass_windows(year)
        self._path(layout.TOWERS_DIR).mkdir(parents=True, exist_ok=True)
        sites, truth = [], {}
        for k, ((lon, lat), ftype) in enumerate(zip(ts.lonlat, ts.types, strict=True)):
            site = TowerSite(f"CN-Lu{k + 1}", lon, lat, ftype, 8.0)
            wf = WindowForcing(
                start=starts,
                n_days=n_days,
                **{v: np.asarray(forcing[k][v]) for v in ("gpp", "tmean", "srad", "vpd")},
            )
            rec = simulate_tower(site, wf, year, seeded_rng(self.seed, "tower", site.site_id))
            write_tower_csv(rec, self._path(f"{layout.TOWERS_DIR}/{tower_csv_name(site)}"))
            sites.append(site)
            truth[site.site_id] = {
                "year": year,
                "forest_type": ftype,
                "gpp_gc_m2_quarter": {str(q): round(v, 4) for q, v in rec.quarterly_true_gpp.items()},
            }
        write_json(self._path(layout.TOWER_SITES), sites_geojson(sites))
        write_json(self._path(layout.TOWER_TRUTH), truth)
        say(f"towers: {', '.join(s.site_id + ' (' + s.forest_type + ')' for s in sites)}")

    def plots(self, ps: SiteSet, npp_by_year: dict[int, list[float]]) -> None:
        """Field plots: 3 x 3-pixel annual NPP with 12 % measurement error, one feature per plot-year."""
        rng = seeded_rng(self.seed, "plot-error")
        feats = []
        for year, values in sorted(npp_by_year.items()):
            for k, ((lon, lat), ftype, v) in enumerate(zip(ps.lonlat, ps.types, values, strict=True)):
                obs = max(v * (1.0 + 0.12 * rng.standard_normal()), 0.0)
                feats.append(
                    {
                        "type": "Feature",
                        "geometry": {"type": "Point", "coordinates": [lon, lat]},
                        "properties": {
                            "plot_id": f"P{k + 1:03d}",
                            "forest_type": ftype,
                            "year": year,
                            "npp_gc_m2_yr": round(obs, 2),
                        },
                    }
                )
        write_json(self._path(layout.PLOTS), {"type": "FeatureCollection", "features": feats})

    # --- collections -------------------------------------------------------------------------------
    def finish_collections(self) -> None:
        """Write every collection.json and items.ndjson."""
        meta = {
            C["landsat"]: (
                "Landsat Collection 2 Level-2 (synthetic)",
                "Surface reflectance and QA_PIXEL.",
                ("proj", "raster", "eo", "view", "classification"),
            ),
            C["dem"]: (
                "Copernicus DEM GLO-30 (synthetic)",
                "Elevation, EPSG:4326, 1-degree tiles.",
                ("proj", "raster"),
            ),
            C["forest_type"]: (
                "GLC_FCS30D land cover (synthetic)",
                "GLC_FCS30 codes; tens digit 5 EBF, 6 DBF, 7 ENF, 8 DNF, 9 MF.",
                ("proj", "raster", "classification"),
            ),
            C["meteorology"]: (
                "8-day meteorology (synthetic)",
                "tmean degC, prcp mm d-1, srad W m-2, vpd hPa; 0.01 degree.",
                ("proj", "raster"),
            ),
            C["coarse_gpp"]: (
                "GLASS-like GPP (synthetic)",
                "8-day mean daily GPP, gC m-2 d-1, scale 0.01, MODIS sinusoidal 463 m.",
                ("proj", "raster"),
            ),
            C["coarse_npp"]: (
                "GLASS-like NPP (synthetic)",
                "8-day mean daily NPP, gC m-2 d-1, scale 0.01, MODIS sinusoidal 463 m.",
                ("proj", "raster"),
            ),
            C["reference_gpp"]: (
                "Reference 30 m GPP (synthetic)",
                "Quarterly GPP, gC m-2 quarter-1 (truth plus error, R2 about 0.7).",
                ("proj", "raster"),
            ),
            C["reference_npp"]: (
                "Reference 30 m NPP (synthetic)",
                "Quarterly NPP, gC m-2 quarter-1 (truth plus error, R2 about 0.7).",
                ("proj", "raster"),
            ),
        }
        for cid, items in self.items.items():
            title, desc, exts = meta[cid]
            items.sort(
                key=lambda it: (
                    it["properties"].get("datetime") or it["properties"]["start_datetime"],
                    it["id"],
                )
            )
            col = collection(cid, title, desc, items, extensions=exts)
            link = {
                "rel": "collection",
                "href": self._href(f"{layout.STAC_DIR}/{cid}/collection.json"),
                "type": "application/json",
            }
            for it in items:
                it["links"] = [link]
            write_json(self._path(f"{layout.STAC_DIR}/{cid}/collection.json"), col)
            write_ndjson(self._path(f"{layout.STAC_DIR}/{cid}/items.ndjson"), items)

    def stats(self) -> dict[str, Any]:
        """Counts for the manifest."""
        return {
            "items": {cid: len(v) for cid, v in self.items.items()},
            "landsat_mean_cloud_cover_pct": round(float(np.mean(self._cloud)), 2) if self._cloud else None,
        }


def _nearest_from(code: npt.NDArray[np.uint8], grid: Grid, g: Grid) -> npt.NDArray[np.uint8]:
    """Land cover on grid ``g`` (EPSG:4326) by nearest 30 m truth pixel; fill 0 outside the world."""
    x, y = g.centres_in(grid.crs)
    col = np.floor((x - grid.x0) / grid.res_x).astype(np.int64)
    row = np.floor((grid.y0 - y) / grid.res_y).astype(np.int64)
    ok = (col >= 0) & (col < grid.width) & (row >= 0) & (row < grid.height)
    out = np.zeros(g.shape, dtype=np.uint8)
    out[ok] = code[row[ok], col[ok]]
    return out


def _scene_polygon(grid: Grid, sc: Scene) -> Polygon:
    """The scene's data area in the grid's CRS (see ``landsat.footprint``)."""
    tilt = np.tan(np.radians(12.0)) * grid.height / 2
    c_top = sc.edge_frac * grid.width + tilt
    c_bot = sc.edge_frac * grid.width - tilt
    w, s, e, n = grid.bounds
    xt, xb = grid.x0 + c_top * grid.res_x, grid.x0 + c_bot * grid.res_x
    if sc.covers_west:
        return Polygon([(w - 1, n), (xt, n), (xb, s), (w - 1, s)])
    return Polygon([(xt, n), (e + 1, n), (e + 1, s), (xb, s)])


def _qa_bitfields() -> list[dict[str, Any]]:
    def flag(name: str, offset: int) -> dict[str, Any]:
        return {
            "name": name,
            "offset": offset,
            "length": 1,
            "classes": [{"name": f"not_{name}", "value": 0}, {"name": name, "value": 1}],
        }

    def conf(name: str, offset: int) -> dict[str, Any]:
        return {
            "name": name,
            "offset": offset,
            "length": 2,
            "classes": [{"name": n, "value": v} for v, n in enumerate(("not_set", "low", "medium", "high"))],
        }

    return [
        flag("fill", QA.FILL),
        flag("dilated_cloud", QA.DILATED_CLOUD),
        flag("cirrus", QA.CIRRUS),
        flag("cloud", QA.CLOUD),
        flag("cloud_shadow", QA.SHADOW),
        flag("snow", QA.SNOW),
        flag("clear", QA.CLEAR),
        flag("water", QA.WATER),
        conf("cloud_confidence", QA.CLOUD_CONF),
        conf("cloud_shadow_confidence", QA.SHADOW_CONF),
        conf("snow_ice_confidence", QA.SNOW_CONF),
        conf("cirrus_confidence", QA.CIRRUS_CONF),
    ]
