"""Validation figures (arrays and tables in, PNG bytes out) and a self-contained report writer.

The figure builders are pure: they take NumPy arrays, xarray DataArrays or pandas tables and return the
bytes of a PNG. They draw on :class:`matplotlib.figure.Figure` with the Agg canvas and never touch
``pyplot``, so they hold no global state and may run in threads (Dask workers) at the same time.

Input with no finite value (an all-NaN map, an empty table, scatter pairs of which none is finite) gives
a figure that says "no data" instead of an error: a validation run in which one forest type has no tower
still gets its report, with the gap in plain sight. Input of the wrong shape or without the required
columns raises :class:`~gppscale.errors.SpecError`.

:func:`write_report` writes the figures, one CSV per table, ``report.md`` and ``report.html`` into a
:class:`~gppscale.io.store.RunStore`. The HTML file stands alone: inline CSS, figures embedded as
``data:`` URIs, no reference to any other file or host, so it opens offline and survives being mailed.

Example:
    >>> import numpy as np
    >>> png = scatter_figure(np.arange(10.0), np.arange(10.0) + 1, title="t", label_pred="p", label_obs="o")
    >>> png[:8] == PNG_SIGNATURE
    True
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from gppscale.errors import SpecError
from gppscale.io.store import RunStore
from gppscale.stages.metrics import scores as compute_scores

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "PNG_SIGNATURE",
    "UNITS",
    "maps_figure",
    "md_to_html",
    "scatter_figure",
    "timeseries_figure",
    "write_report",
]

#: Units of every GPP/NPP value the figures show.
UNITS = "gC m⁻² quarter⁻¹"
#: The first eight bytes of every PNG file.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_DPI = 120
# Larger maps are thinned by striding before drawing: a 30 m map of a whole region has ~10^8 pixels,
# far more than a figure shows, and striding a lazy DataArray reads only the pixels kept.
_MAX_MAP_PIXELS = 1000
_HEXBIN_ABOVE = 5000
_CMAP = "viridis"
_NAN_COLOUR = "#d9d9d9"
_FOREST_ORDER = ("ENF", "DBF", "MF", "DNF")
_SOURCE_STYLE = {
    "coarse": ("#7f7f7f", "s"),
    "downscaled": ("#1f77b4", "o"),
    "reference": ("#ff7f0e", "^"),
    "truth": ("#2ca02c", "D"),
    "observed": ("#d62728", "v"),
}
_Extent = tuple[float, float, float, float]
_SCHEME = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*)://")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# --- figures ------------------------------------------------------------------------------------------


def _new_figure(width_in: float, height_in: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No "Software" entry: the same figure gives the same bytes under any Matplotlib version.
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


def _no_data(ax: Axes, why: str) -> None:
    ax.text(0.5, 0.5, f"no data\n({why})", ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _thin_map(arr: xr.DataArray | np.ndarray, name: str) -> tuple[np.ndarray, _Extent | None]:
    """A 2-D float array strided down to at most ``_MAX_MAP_PIXELS`` a side, and its extent if known."""
    if arr.ndim != 2:
        raise SpecError(f"maps_figure: {name} has shape {arr.shape}; give one quarter as a 2-D (y, x) array")
    step = max(1, math.ceil(max(arr.shape) / _MAX_MAP_PIXELS))
    if isinstance(arr, xr.DataArray):
        thin = arr[::step, ::step]
        values = np.asarray(thin.values, dtype="float64")
        return values, _extent(thin)
    return np.asarray(arr[::step, ::step], dtype="float64"), None


def _extent(arr: xr.DataArray) -> _Extent | None:
    """Pixel-edge extent (left, right, bottom, top) from 1-D coordinates, or None without them."""
    dim_y, dim_x = arr.dims
    if dim_x not in arr.coords or dim_y not in arr.coords or min(arr.shape) < 2:
        return None
    x = np.asarray(arr[dim_x].values, dtype="float64")
    y = np.asarray(arr[dim_y].values, dtype="float64")
    dx, dy = (x[1] - x[0]) / 2, (y[1] - y[0]) / 2
    return (x[0] - dx, x[-1] + dx, y[-1] + dy, y[0] - dy)


def _shared_limits(*arrays: np.ndarray) -> tuple[float, float] | None:
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays])
    if finite.size == 0:
        return None
    # 2nd-98th percentile: one hot pixel must not wash out the whole colour scale.
    lo, hi = (float(v) for v in np.percentile(finite, [2, 98]))
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def maps_figure(coarse: xr.DataArray | np.ndarray, fine: xr.DataArray | np.ndarray, title: str) -> bytes:
    """Draw a coarse map and its 30 m downscaled map side by side on one shared colour scale.

    Both maps hold one quarter's GPP or NPP in gC m⁻² quarter⁻¹ as 2-D ``(y, x)`` arrays. NaN pixels are
    grey. The colour scale spans the 2nd to 98th percentile of both maps together, so equal colours mean
    equal values across the panels. Maps wider than 1,000 pixels are shown strided (every n-th pixel).
    A DataArray with 1-D ``y``/``x`` coordinates is drawn in those coordinates; a NumPy array in pixels.

    Args:
        coarse: The coarse product (e.g. MODIS at 500 m), 2-D.
        fine: The downscaled 30 m map, 2-D.
        title: Figure title (say which quarter and product).

    Returns:
        PNG bytes. All-NaN input gives panels that say "no data".

    Raises:
        SpecError: If either array is not 2-D.

    Example:
        >>> import numpy as np
        >>> maps_figure(np.ones((4, 4)), np.ones((40, 40)), "2021Q2")[:8] == PNG_SIGNATURE
        True
    """
    panels = [("coarse", _thin_map(coarse, "coarse")), ("30 m downscaled", _thin_map(fine, "fine"))]
    limits = _shared_limits(panels[0][1][0], panels[1][1][0])
    fig = _new_figure(10.0, 4.6)
    axes = fig.subplots(1, 2)
    image = None
    for ax, (label, (values, extent)) in zip(axes, panels, strict=True):
        ax.set_title(label)
        if limits is None or not np.isfinite(values).any():
            _no_data(ax, "no finite pixel")
            continue
        image = _draw_map(ax, values, extent, limits)
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.85, label=f"GPP/NPP ({UNITS})")
    fig.suptitle(title)
    return _png(fig)


def _draw_map(ax: Axes, values: np.ndarray, extent: _Extent | None, limits: tuple[float, float]) -> Any:  # noqa: ANN401 - matplotlib AxesImage
    from matplotlib import colormaps

    cmap = colormaps[_CMAP].with_extremes(bad=_NAN_COLOUR)
    image = ax.imshow(
        np.ma.masked_invalid(values), cmap=cmap, vmin=limits[0], vmax=limits[1], extent=extent,
        interpolation="nearest",
    )  # fmt: skip
    ax.set_xlabel("x (m)" if extent is not None else "column (pixel)")
    ax.set_ylabel("y (m)" if extent is not None else "row (pixel)")
    return image


def _score_text(scores: Mapping[str, float]) -> str:
    def fmt(key: str, spec: str) -> str:
        value = scores.get(key, math.nan)
        return "n/a" if not math.isfinite(float(value)) else format(float(value), spec)

    n = scores.get("n", math.nan)
    n_text = "n/a" if not math.isfinite(float(n)) else f"{int(n):,}"
    return f"R² = {fmt('r2', '.3f')}\nRMSE = {fmt('rmse', '.3g')}\nMD = {fmt('md', '+.3g')}\nN = {n_text}"


def scatter_figure(
    pred: npt.ArrayLike,
    obs: npt.ArrayLike,
    *,
    title: str,
    label_pred: str,
    label_obs: str,
    scores: Mapping[str, float] | None = None,
) -> bytes:
    """Scatter predictions against observations with a 1:1 line and their scores in a text box.

    Only pairs where both values are finite are drawn. Above 5,000 pairs the points become a hexbin
    density (log colour scale), so dense clouds stay readable.

    Args:
        pred: Predicted values (y axis), any shape.
        obs: Observed values (x axis), same shape as ``pred``.
        title: Figure title.
        label_pred: Name of the prediction (the axis label adds the units).
        label_obs: Name of the observation.
        scores: ``{"r2", "rmse", "md", "n"}`` to print (e.g. from
            :func:`gppscale.stages.metrics.scores`); computed from the pairs when None.

    Returns:
        PNG bytes. No finite pair gives a figure that says "no data".

    Raises:
        SpecError: If the shapes of ``pred`` and ``obs`` differ.
    """
    p = np.asarray(pred, dtype="float64")
    o = np.asarray(obs, dtype="float64")
    if p.shape != o.shape:
        raise SpecError(f"scatter_figure: pred shape {p.shape} and obs shape {o.shape} must match")
    ok = np.isfinite(p) & np.isfinite(o)
    p, o = p[ok], o[ok]
    fig = _new_figure(5.2, 5.0)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(f"{label_obs} ({UNITS})")
    ax.set_ylabel(f"{label_pred} ({UNITS})")
    if p.size == 0:
        _no_data(ax, "no finite pair")
        return _png(fig)
    _draw_pairs(fig, ax, p, o)
    text = _score_text(compute_scores(p, o) if scores is None else scores)
    ax.text(0.04, 0.96, text, transform=ax.transAxes, va="top", ha="left", family="monospace",
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": "0.6"})  # fmt: skip
    return _png(fig)


def _draw_pairs(fig: Figure, ax: Axes, p: np.ndarray, o: np.ndarray) -> None:
    lo = float(min(p.min(), o.min()))
    hi = float(max(p.max(), o.max()))
    pad = (hi - lo) * 0.04 or 1.0
    lims = (lo - pad, hi + pad)
    if p.size > _HEXBIN_ABOVE:
        hb = ax.hexbin(o, p, gridsize=60, mincnt=1, bins="log", cmap="viridis", extent=(*lims, *lims))
        fig.colorbar(hb, ax=ax, label="pairs per cell")
    else:
        ax.scatter(o, p, s=12, alpha=0.6 if p.size > 200 else 0.9, edgecolors="none")
    ax.plot(lims, lims, color="0.2", lw=1, ls="--", label="1:1")
    ax.set_xlim(lims)
    ax.set_ylim(lims)
    ax.set_aspect("equal")
    ax.legend(loc="lower right")


def _forest_types(table: pd.DataFrame) -> list[str]:
    found = [str(v) for v in pd.unique(table["forest_type"])]
    known = [f for f in _FOREST_ORDER if f in found]
    return known + sorted(f for f in found if f not in _FOREST_ORDER)


def timeseries_figure(table: pd.DataFrame, *, title: str) -> bytes:
    """Quarterly time series, one panel per forest type and one line per source (the paper's Fig. 8).

    Args:
        table: Columns ``quarter`` (labels such as ``"2021Q2"``; sorted as text, which orders
            ``YYYYQn`` labels in time), ``forest_type`` and one numeric column per source (e.g.
            ``coarse``, ``downscaled``, ``reference``, ``truth``) in gC m⁻² quarter⁻¹. Missing values
            leave gaps. Panels follow ENF, DBF, MF, DNF, then other types alphabetically.
        title: Figure title.

    Returns:
        PNG bytes. An empty table, or one with no finite value, gives a figure that says "no data".

    Raises:
        SpecError: If ``quarter`` or ``forest_type`` is missing, or no other column is numeric.

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame({"quarter": ["2021Q1", "2021Q2"], "forest_type": "ENF", "truth": [1.0, 2.0]})
        >>> timeseries_figure(t, title="t")[:8] == PNG_SIGNATURE
        True
    """
    missing = [c for c in ("quarter", "forest_type") if c not in table.columns]
    if missing:
        raise SpecError(f"timeseries_figure: table lacks column(s) {missing}; it has {list(table.columns)}")
    sources = [
        str(c)
        for c in table.columns
        if c not in ("quarter", "forest_type") and pd.api.types.is_numeric_dtype(table[c])
    ]
    if not sources:
        raise SpecError(
            f"timeseries_figure: table has no numeric source column besides quarter and forest_type "
            f"(columns {list(table.columns)}); add e.g. 'downscaled' or 'truth'"
        )
    if not np.isfinite(table[sources].to_numpy(dtype="float64")).any():
        fig = _new_figure(6.0, 3.5)
        ax = fig.add_subplot()
        ax.set_title(title)
        _no_data(ax, "empty table" if table.empty else "no finite value")
        return _png(fig)
    return _draw_series(table, sources, title)


def _draw_series(table: pd.DataFrame, sources: Sequence[str], title: str) -> bytes:
    types = _forest_types(table)
    quarters = sorted(str(q) for q in pd.unique(table["quarter"]))
    ncols = min(2, len(types))
    nrows = math.ceil(len(types) / ncols)
    fig = _new_figure(5.0 * ncols + 0.6, 3.0 * nrows + 0.6)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
    x = np.arange(len(quarters))
    for ax, ftype in zip(axes, types, strict=False):
        rows = table[table["forest_type"].astype(str) == ftype]
        by_q = rows.assign(quarter=rows["quarter"].astype(str)).groupby("quarter")[list(sources)].mean()
        by_q = by_q.reindex(quarters)
        for i, src in enumerate(sources):
            colour, marker = _SOURCE_STYLE.get(src, (f"C{(i + 5) % 10}", "x"))
            ax.plot(
                x, by_q[src].to_numpy(dtype="float64"), color=colour, marker=marker, ms=4, lw=1.3, label=src
            )
        ax.set_title(ftype)
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel(f"GPP/NPP ({UNITS})")
        ax.grid(alpha=0.3)
    for ax in axes[len(types) :]:
        ax.set_visible(False)
    step = max(1, math.ceil(len(quarters) / 12))
    for ax in axes[: len(types)]:
        ax.set_xticks(x[::step], quarters[::step], rotation=45, ha="right")
        ax.set_xlabel("quarter")
    axes[0].legend(fontsize="small")
    fig.suptitle(title)
    return _png(fig)


# --- report -------------------------------------------------------------------------------------------


def _check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise SpecError(
            f"write_report: {kind} name {name!r} cannot be a file name; use letters, digits, '_', '-', '.'"
        )


def _plain_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table as written everywhere: a meaningful index becomes columns, a default one is dropped."""
    default = isinstance(table.index, pd.RangeIndex) and table.index.name is None
    return table.reset_index(drop=True) if default else table.reset_index()


def _cell(value: object) -> str:
    if isinstance(value, float | np.floating):
        return "NaN" if math.isnan(value) else format(float(value), ".4g")
    return str(value)


def _md_cell(value: object) -> str:
    # Markdown renderers pass raw HTML through, so cell text is HTML-escaped as well as made pipe-safe.
    text = html.escape(_cell(value)).replace("|", "\\|")
    return " ".join(text.split())


def _md_table(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(_md_cell(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    rows = ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _esc(text: str) -> str:
    """HTML-escape ``text``; a URL scheme gets an entity colon (shown the same), so no live URL remains."""
    return _SCHEME.sub(r"\1&#58;//", html.escape(text))


def _html_table(table: pd.DataFrame) -> str:
    head = "".join(f"<th>{_esc(_cell(c))}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_esc(_cell(v))}</td>" for v in row) + "</tr>"
        for row in table.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _inline_md(text: str) -> str:
    out = _esc(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def md_to_html(text: str) -> str:
    """Render a small Markdown subset as HTML: ``#`` headings, ``-``/``*`` lists, paragraphs, code, bold.

    Everything is escaped first; links are left as text (``://`` written with an entity colon), so the
    result references nothing outside.

    Example:
        >>> md_to_html("# Hi")
        '<h2>Hi</h2>'
        >>> md_to_html("- a <b>")
        '<ul><li>a &lt;b&gt;</li></ul>'
    """
    blocks: list[str] = []
    items: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if items:
            blocks.append("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
            items.clear()
        if para:
            blocks.append(f"<p>{' '.join(para)}</p>")
            para.clear()

    for line in text.splitlines():
        stripped = line.strip()
        heading = re.match(r"^(#{1,5})\s+(.*)$", stripped)
        if not stripped or heading:
            flush()
            if heading:  # h1 is the report title, so the summary's headings start at h2
                level = len(heading.group(1)) + 1
                blocks.append(f"<h{level}>{_inline_md(heading.group(2))}</h{level}>")
        elif re.match(r"^[-*]\s+", stripped):
            if para:
                flush()
            items.append(_inline_md(stripped[2:].strip()))
        else:
            if items:
                flush()
            para.append(_inline_md(stripped))
    flush()
    return "\n".join(blocks)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #ddd;padding-bottom:.3em}
nav ul{columns:2}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f2f2f2}
td:first-child,th:first-child{text-align:left}
figure{margin:1.5em 0}
img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}
code{background:#f4f4f4;padding:0 .2em}
"""
# The Content-Security-Policy makes a browser refuse any outside fetch, so "opens offline" is enforced.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _markdown_report(
    title: str, summary_md: str, tables: Mapping[str, pd.DataFrame], figures: Mapping[str, bytes]
) -> str:
    parts = [f"# {title}", "", summary_md.strip(), ""]
    if figures:
        parts += ["## Figures", ""]
        parts += [f"![{name}](figures/{name}.png)\n" for name in figures]
    for name, table in tables.items():
        parts += [f"## {name}", "", f"[{name}.csv]({name}.csv)", "", _md_table(table), ""]
    return "\n".join(parts)


def _html_report(
    title: str, summary_md: str, tables: Mapping[str, pd.DataFrame], figures: Mapping[str, bytes]
) -> str:
    toc = ['<li><a href="#summary">Summary</a></li>']
    toc += [f'<li><a href="#fig-{n}">Figure: {_esc(n)}</a></li>' for n in figures]
    toc += [f'<li><a href="#table-{n}">Table: {_esc(n)}</a></li>' for n in tables]
    body = [f'<section id="summary">{md_to_html(summary_md)}</section>']
    for name, png in figures.items():
        data = base64.b64encode(png).decode("ascii")
        body.append(
            f'<figure id="fig-{name}"><img src="data:image/png;base64,{data}" alt="{_esc(name)}">'
            f"<figcaption>{_esc(name)}</figcaption></figure>"
        )
    for name, table in tables.items():
        body.append(f'<section id="table-{name}"><h2>{_esc(name)}</h2>{_html_table(table)}</section>')
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{_esc(title)}</h1>\n<nav><ul>{''.join(toc)}</ul></nav>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_report(
    store: RunStore,
    *,
    title: str,
    summary_md: str,
    tables: Mapping[str, pd.DataFrame],
    figures: Mapping[str, bytes],
    folder: str = "validation",
) -> dict[str, str]:
    """Write figures, tables and a Markdown and a self-contained HTML report into ``store``.

    Under ``folder`` it writes ``figures/<name>.png`` per figure, ``<name>.csv`` per table,
    ``report.md`` (the summary, links to the PNGs and CSVs, each table as a Markdown table) and, last,
    ``report.html``: one file with inline CSS, every figure as a ``data:image/png;base64`` URI and every
    table as an HTML table, referring to nothing outside itself (only ``#`` anchors and ``data:`` URIs;
    a Content-Security-Policy forbids any fetch). Cell text is HTML-escaped in both reports. A table
    with a named or non-default index gets the index written as leading columns.

    Args:
        store: The run store (local folder or ``s3://``); each file is written atomically.
        title: Report title.
        summary_md: Markdown shown first. The HTML renders headings, lists, paragraphs, ``code`` and
            ``**bold**``; anything else (links included) is shown as escaped text.
        tables: Table name -> table, in the order to show.
        figures: Figure name -> PNG bytes (from the ``*_figure`` builders), in the order to show.
        folder: Folder under the store root.

    Returns:
        Path under ``folder`` (``"report.html"``, ``"figures/maps.png"``, ``"scores.csv"``) -> full URL.

    Raises:
        SpecError: If a name is not a plain file name or a figure is not PNG bytes.
        StoreError: If a file cannot be written.
    """
    for name in tables:
        _check_name("table", name)
    for name, png in figures.items():
        _check_name("figure", name)
        if bytes(png[:8]) != PNG_SIGNATURE:
            raise SpecError(
                f"write_report: figure {name!r} is not PNG bytes; build it with a *_figure function"
            )
    plain = {name: _plain_table(t) for name, t in tables.items()}
    files: dict[str, bytes] = {f"figures/{n}.png": bytes(png) for n, png in figures.items()}
    files |= {f"{n}.csv": t.to_csv(index=False).encode() for n, t in plain.items()}
    files["report.md"] = _markdown_report(title, summary_md, plain, figures).encode()
    files["report.html"] = _html_report(title, summary_md, plain, figures).encode()
    written: dict[str, str] = {}
    for rel, data in files.items():  # report.html last: its presence means the report is complete
        store.write_bytes(f"{folder}/{rel}", data)
        written[rel] = store.join(folder, rel)
    return written
