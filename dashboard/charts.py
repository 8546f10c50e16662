"""Altair chart builders: time series with thresholds drawn as rule layers.

Every builder takes an already aggregated frame (see `dashboard.data`) and
returns a layered chart whose threshold layers are named ``threshold:<label>``, so
tests can find them in the Vega-Lite spec. The y-domain always reaches past the
highest threshold: a limit the data never approaches is still drawn (the hidden
threshold line of grafana/grafana#12135). Time axes are UTC.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import altair as alt
import pandas as pd

__all__ = ["KIND_COLORS", "OUTCOME_COLORS", "LayeredChart", "Marker", "Threshold", "bar_chart", "chart_points",
           "series_label", "threshold_layers", "time_chart"]

#: Threshold kinds and their colours (warning amber, limit red, budget purple, trigger grey, target green).
KIND_COLORS = {"warning": "#e8a33d", "limit": "#d62728", "budget": "#7b4ea3", "trigger": "#6b6b6b",
               "target": "#2f8f5b"}
#: Job outcomes keep their meaning in every chart: ok green, failed and timed out red (dark red), skipped grey.
OUTCOME_COLORS = {"ok": "#59a14f", "failed": "#d62728", "timed_out": "#8b0000", "skipped": "#9d9d9d",
                  "running": "#4c78a8"}
_SPARSE_POINTS = 2  # a line series with this few samples also gets dots
_HEADROOM = 1.1  # the domain's top sits 10% above the highest value or threshold
_UTC_TIP = alt.Tooltip("utcyearmonthdatehoursminutes(ts):T", title="UTC")


@dataclass(frozen=True, slots=True)
class Threshold:
    """A horizontal line at ``value`` with a label, e.g. the 80% warning or the 30 s deadline."""

    value: float
    label: str
    kind: str = "limit"

    def __post_init__(self) -> None:
        if self.kind not in KIND_COLORS:
            raise ValueError(f"unknown threshold kind {self.kind!r}; expected one of {sorted(KIND_COLORS)}")


@dataclass(frozen=True, slots=True)
class Marker:
    """Points drawn on the main series wherever ``field`` is positive (429s, timeouts)."""

    field: str
    label: str
    color: str = "#d62728"
    shape: str = "triangle-up"


class LayeredChart(alt.LayerChart):
    """An Altair layer chart that skips JSON-schema validation when converted to a spec.

    Streamlit converts every chart on every run, under a process-wide lock; schema
    validation was most of that cost (~0.1 s a chart) and re-checks specs these
    builders always produce the same way. The tests validate each builder's output
    once with ``alt.LayerChart.to_dict(chart, validate=True)``.
    """

    def to_dict(self, validate: bool = False, **kwargs: Any) -> dict[str, Any]:
        spec: dict[str, Any] = super().to_dict(validate=validate, **kwargs)
        return spec


def series_label(df: pd.DataFrame, parts: Sequence[str], *, source: str = "source", empty: str = "") -> pd.Series:
    """One legend label per row: the non-empty ``parts`` joined by " · ", plus the source when
    the frame holds more than one (so collectors and worker series sit side by side, labelled)."""
    cols = list(parts)
    if source in df.columns and df[source].nunique() > 1:
        cols.append(source)
    text = pd.Series("", index=df.index, dtype="object")
    for col in cols:  # vectorised: a row-wise apply costs seconds on a few thousand rows
        part = df[col].astype("object").where(df[col].notna(), "").astype(str)
        text = text.where(part == "", text.where(text == "", text + " · ") + part)
    return text.where(text != "", empty)


def _top(values: Sequence[float], thresholds: Sequence[Threshold], floor: float) -> float:
    highest = max([float(v) for v in values if pd.notna(v)] + [t.value for t in thresholds] + [floor])
    return highest * _HEADROOM if highest > 0 else 1.0


def threshold_layers(thresholds: Sequence[Threshold], *, y_format: str, axis: str = "y") -> list[alt.Chart]:
    """Every threshold of a chart as one dashed-rule layer and two label layers.

    The rule layer is named ``thresholds``; all three share one small dataset of
    ``value``, ``label``, ``kind`` and ``color`` per threshold (colour used as is,
    so it shares no legend with the data). The highest label sits above its line and
    the others below theirs, so an 80% warning and a 100% limit do not print over
    each other. A fixed three layers, not two per threshold: each Altair layer costs
    work on every page run.
    """
    if not thresholds:
        return []
    highest = max(t.value for t in thresholds)
    table = pd.DataFrame({"value": [t.value for t in thresholds], "label": [t.label for t in thresholds],
                          "kind": [t.kind for t in thresholds],
                          "color": [KIND_COLORS[t.kind] for t in thresholds],
                          "above": [t.value == highest for t in thresholds]})
    base = alt.Chart(table)
    position = alt.Y("value:Q") if axis == "y" else alt.X("value:Q")
    rules = base.mark_rule(strokeDash=[6, 4], size=1.5).encode(
        position, color=alt.Color("color:N", scale=None),
        tooltip=[alt.Tooltip("label:N", title="threshold"), alt.Tooltip("value:Q", format=y_format)],
    ).properties(name="thresholds")
    if axis != "y":
        return [rules]
    text = {"x": alt.value(0), "y": position, "text": alt.Text("label:N"), "color": alt.Color("color:N", scale=None)}
    over = base.mark_text(align="left", baseline="bottom", dx=4, dy=-2, fontSize=11).encode(**text) \
        .transform_filter("datum.above").properties(name="threshold-labels")
    under = base.mark_text(align="left", baseline="top", dx=4, dy=2, fontSize=11).encode(**text) \
        .transform_filter("!datum.above").properties(name="threshold-labels-below")
    return [rules, over, under]


def _time_axis(data: pd.DataFrame, width: int, span: tuple[float, float] | None = None) -> alt.Axis:
    """Ticks at whole days (or hours) with one label format, at most ~8 of them.

    Vega's default multi-format labels ("Wed 14", "12 PM") lose the dates when
    overlapping labels are dropped in a half-width chart.
    """
    if span is not None:
        span_s = span[1] - span[0]
    elif data.empty:
        return alt.Axis(labelAngle=0)
    else:
        span_s = (data["ts"].max() - data["ts"].min()).total_seconds() + width
    if span_s >= 2 * 86400:
        step = max(1, math.ceil(span_s / 86400 / 7))
        return alt.Axis(format="%b %d", tickCount=alt.TimeIntervalStep("day", step), labelAngle=0,
                        labelOverlap=True)
    # A plain count, not an interval: Vega's tick intervals are named "hours", not Vega-Lite's
    # "hour", and the mismatch threw "reading 'every'" and left every sub-2-day chart blank.
    return alt.Axis(format="%H:%M", tickCount=7, labelAngle=0, labelOverlap=True)


def time_chart(df: pd.DataFrame, y: str, *, title: str, y_title: str, series: str | None = None,
               mark: str = "line", stacked: bool = False, thresholds: Sequence[Threshold] = (),
               y_format: str = ",.0f", markers: Sequence[Marker] = (), band: str | None = None,
               band_label: str = "", floor: float = 0.0, height: int = 300,
               colors: Mapping[str, str] | None = None, legend_columns: int = 4,
               tooltip: Sequence[str | alt.Tooltip] = (), span: tuple[float, float] | None = None,
               forecast: pd.DataFrame | None = None) -> LayeredChart:
    """A UTC time series (one line, area or bar series per ``series`` value) with thresholds.

    Args:
        df: rows with a tz-aware ``ts`` column (bucket starts; width in ``attrs["bucket_s"]``),
            ``y`` and optionally ``series``.
        y: the measure plotted.
        title: the chart title.
        y_title: the y-axis title.
        series: the column naming each series (colour).
        mark: "line", "area" or "bar" (bars span their bucket).
        stacked: stack series (areas and bars); the domain then covers the stack's sum.
        thresholds: rule layers, always inside the y-domain.
        y_format: d3 format of the axis and tooltip.
        markers: points where a count column is positive, drawn at the row's ``y``.
        band: a column whose positive rows shade their bucket (e.g. cooldown share).
        band_label: tooltip title of the shading.
        floor: the smallest top of the y-domain (e.g. 1.0 for a share of a limit).
        height: pixels.
        colors: fixed series colours (series value -> colour), e.g. `OUTCOME_COLORS`.
        legend_columns: legend entries per row.
        tooltip: extra tooltip fields.
        span: the picked range (epoch seconds), which sets the axis' tick format; default
            ``df.attrs["window"]``, else the data's extent.
        forecast: the trend projected forward (`dashboard.forecasting.projection`): rows of
            ``ts, series, forecast, low, high``, drawn as a dashed line in a shaded band.
    """
    if mark not in ("line", "area", "bar"):
        raise ValueError(f"mark must be 'line', 'area' or 'bar', got {mark!r}")
    data = df.copy()
    width = int(df.attrs.get("bucket_s") or 60)
    peaks = data.groupby("ts")[y].sum().tolist() if stacked and series and len(data) else data[y].tolist()
    ahead = forecast if forecast is not None and len(forecast) else None
    top = _top(peaks + (ahead["forecast"].tolist() if ahead is not None else []), thresholds, floor)
    scale = alt.Scale(domain=[0, top], nice=False, zero=True)
    span = span or df.attrs.get("window")
    # The span picks the axis' tick format only: a numeric domain on this temporal axis squeezed every
    # line into the left edge in Chromium (Streamlit ships the times in another unit than epoch ms).
    x = alt.X("ts:T", title=None, scale=alt.Scale(type="utc"), axis=_time_axis(data, width, span))
    if series:
        present = set(data[series]) if len(data) else set()
        known = [k for k in colors if k in present] if colors else []
        hues = alt.Scale(domain=known, range=[colors[k] for k in known]) if colors else alt.Scale()
        color: Any = alt.Color(f"{series}:N", title=None, scale=hues,
                               legend=alt.Legend(orient="bottom", columns=legend_columns, labelLimit=220))
    else:
        color = alt.value("#4c78a8")
    tips: list[Any] = [_UTC_TIP]
    if series:
        tips.append(alt.Tooltip(f"{series}:N", title="series"))
    tips.append(alt.Tooltip(f"{y}:Q", title=y_title, format=y_format))
    tips.extend(tooltip)
    if band or mark == "bar":
        data["ts_end"] = data["ts"] + pd.Timedelta(seconds=width)
    if mark == "bar":
        # Bars are rects spanning their bucket, stacked here rather than by Vega-Lite
        # (whose stacking of x/x2-ranged bars draws zero-height bars).
        if stacked and series:
            data = data.sort_values(["ts", series], kind="stable")
        below = data.groupby("ts")[y].cumsum() - data[y] if stacked and series else 0.0
        data["_y0"] = below
        data["_y1"] = data["_y0"] + data[y]
    base = alt.Chart(data)
    y_enc = alt.Y(f"{y}:Q", title=y_title, scale=scale, axis=alt.Axis(format=y_format),
                  stack="zero" if stacked else None)
    layers: list[Any] = []
    if band:
        layers.append(base.mark_rect(color="#d62728", opacity=0.12)
                      .encode(x=x, x2="ts_end:T",
                              tooltip=[_UTC_TIP, alt.Tooltip(f"{band}:Q", title=band_label, format=".0%")])
                      .transform_filter(f"datum['{band}'] > 0").properties(name=f"band:{band}"))
    if mark == "bar":
        # A hairline between wide bars; narrow ones would turn white.
        wide = data["ts"].nunique() <= 120
        main = base.mark_rect(opacity=0.9, stroke="white" if wide else alt.Undefined,
                              strokeWidth=0.5 if wide else alt.Undefined).encode(
            x=x, x2="ts_end:T", y=alt.Y("_y1:Q", title=y_title, scale=scale, axis=alt.Axis(format=y_format)),
            y2="_y0:Q", color=color, tooltip=tips)
    elif mark == "area":
        main = base.mark_area(opacity=0.75, line=False).encode(x=x, y=y_enc, color=color, tooltip=tips)
    else:
        main = base.mark_line(strokeWidth=1.6, interpolate="monotone").encode(x=x, y=y_enc, color=color,
                                                                             tooltip=tips)
    layers.append(main.properties(name="data"))
    if mark == "line" and len(data):
        # A line through one or two samples is invisible or a dash (a source that just started,
        # a limiter sampled once): draw those series' samples as dots.
        counts = data.groupby(series)[y].transform("size") if series else pd.Series(len(data), index=data.index)
        data["_sparse"] = counts <= _SPARSE_POINTS
        if data["_sparse"].any():
            layers.append(alt.Chart(data).mark_point(filled=True, size=45, opacity=0.9)
                          .encode(x=x, y=y_enc, color=color, tooltip=tips)
                          .transform_filter("datum._sparse").properties(name="sparse"))
    if ahead is not None:
        layers.extend(_forecast_layers(ahead, x, scale, y_title, y_format))
    for marker in markers:
        layers.append(base.mark_point(shape=marker.shape, filled=True, size=60, color=marker.color, opacity=0.9)
                      .encode(x=x, y=alt.Y(f"{y}:Q", scale=scale),
                              tooltip=[*tips, alt.Tooltip(f"{marker.field}:Q", title=marker.label)])
                      .transform_filter(f"datum['{marker.field}'] > 0").properties(name=f"marker:{marker.field}"))
    layers.extend(threshold_layers(thresholds, y_format=y_format))
    return LayeredChart(layer=layers, title=title, height=height)


def _forecast_layers(ahead: pd.DataFrame, x: alt.X, scale: alt.Scale, y_title: str,
                     y_format: str) -> list[alt.Chart]:
    """The band (an area from ``low`` to ``high``, clipped to the axis) and the dashed trend line.

    Both are always typed the same (``ts:T``, ``:Q``, ``series:N``) and only added with rows: a
    layer of an empty, untyped frame is what blanked Vega charts before.
    """
    base = alt.Chart(ahead)
    tips = [_UTC_TIP, alt.Tooltip("series:N", title="forecast"),
            alt.Tooltip("forecast:Q", title=y_title, format=y_format),
            alt.Tooltip("low:Q", title="90% band from", format=y_format),
            alt.Tooltip("high:Q", title="to", format=y_format)]
    band = base.mark_area(opacity=0.15, color="#7f7f7f", clip=True).encode(
        x=x, y=alt.Y("low:Q", scale=scale), y2="high:Q", detail="series:N", tooltip=tips)
    line = base.mark_line(strokeDash=[5, 3], strokeWidth=1.4, color="#555555", clip=True).encode(
        x=x, y=alt.Y("forecast:Q", scale=scale), detail="series:N", tooltip=tips)
    return [band.properties(name="forecast band"), line.properties(name="forecast")]


def bar_chart(df: pd.DataFrame, category: str, value: str, *, title: str, value_title: str,
              thresholds: Sequence[Threshold] = (), value_format: str = ",.0f", color: str | None = None,
              step: int = 26) -> LayeredChart:
    """Horizontal bars per category (e.g. bytes per table), largest first, with vertical threshold rules.

    Each bar gets ``step`` pixels: a fixed chart height squeezes many categories until
    their labels overlap and Vega drops them.
    """
    top = _top(df[value].tolist(), thresholds, 0.0)
    scale = alt.Scale(domain=[0, top], nice=False)
    rows_height = alt.Step(step)
    base = alt.Chart(df)
    bars = base.mark_bar().encode(
        y=alt.Y(f"{category}:N", title=None, sort="-x", axis=alt.Axis(labelLimit=260)),
        x=alt.X(f"{value}:Q", title=value_title, scale=scale, axis=alt.Axis(format=value_format)),
        color=alt.Color(f"{color}:N", title=None, legend=alt.Legend(orient="bottom")) if color
        else alt.value("#4c78a8"),
        tooltip=[f"{category}:N", alt.Tooltip(f"{value}:Q", format=value_format)]).properties(name="data")
    return LayeredChart(layer=[bars, *threshold_layers(thresholds, y_format=value_format, axis="x")], title=title,
                        height=rows_height)


def chart_points(chart: alt.TopLevelMixin) -> int:
    """How many data rows the chart ships to the browser (every dataset, thresholds included)."""
    spec = chart.to_dict()
    return sum(len(rows) for rows in spec.get("datasets", {}).values())
