"""Chart builders: thresholds as named rule layers inside the y-domain, bars spanning buckets, point counts."""

from __future__ import annotations

import altair as alt
import pandas as pd
import pytest

from dashboard.charts import Marker, Threshold, bar_chart, chart_points, series_label, time_chart


def frame(values: list[float], series: list[str] | None = None, bucket_s: int = 3600) -> pd.DataFrame:
    n = len(values)
    df = pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=n, freq=f"{bucket_s}s", tz="UTC"), "v": values,
                       "hits": [0] * (n - 1) + [3]})
    if series is not None:
        df["s"] = series
    df.attrs["bucket_s"] = bucket_s
    return df


def layer(spec: dict, name: str) -> dict:
    return next(part for part in spec["layer"] if part.get("name") == name)


def test_a_limit_far_above_the_data_stays_inside_the_y_domain() -> None:
    """A 10 GB limit over 44 MB of data still sets the top of the axis, so the line is drawn."""
    chart = time_chart(frame([0.04, 0.05]), "v", title="t", y_title="GB", thresholds=[Threshold(10.0, "limit")])
    spec = alt.LayerChart.to_dict(chart, validate=True)
    assert layer(spec, "data")["encoding"]["y"]["scale"]["domain"] == [0, pytest.approx(11.0)]


def test_thresholds_are_one_rule_layer_and_one_label_layer_with_their_values() -> None:
    """Every threshold is a row of the thresholds dataset, drawn as dashed rules and labelled."""
    chart = time_chart(frame([0.5, 0.9]), "v", title="t", y_title="share", floor=1.0,
                       thresholds=[Threshold(0.8, "80% warning", "warning"), Threshold(1.0, "limit", "limit")])
    spec = chart.to_dict()
    rules = layer(spec, "thresholds")
    assert rules["mark"]["type"] == "rule" and rules["mark"]["strokeDash"]
    rows = spec["datasets"][rules["data"]["name"]]
    assert [(r["label"], r["value"], r["kind"]) for r in rows] == [("80% warning", 0.8, "warning"),
                                                                   ("limit", 1.0, "limit")]
    assert layer(spec, "threshold-labels")["mark"]["type"] == "text"


def test_markers_and_bands_filter_to_the_rows_that_have_them() -> None:
    """429 markers and cooldown shading only draw where their count or share is positive."""
    df = frame([0.2, 0.3, 1.1]).assign(cool=[0.0, 0.5, 0.0])
    spec = time_chart(df, "v", title="t", y_title="share", markers=[Marker("hits", "429s")], band="cool").to_dict()
    assert layer(spec, "marker:hits")["transform"] == [{"filter": "datum['hits'] > 0"}]
    assert layer(spec, "band:cool")["transform"] == [{"filter": "datum['cool'] > 0"}]


def test_stacked_bars_span_their_bucket_and_stack_by_series() -> None:
    """Stacked bars are rects from the bucket start to its end, each on top of the previous series."""
    df = frame([1.0, 2.0, 3.0, 4.0], ["a", "b", "a", "b"], bucket_s=86400)
    df["ts"] = [df.ts[0], df.ts[0], df.ts[1], df.ts[1]]
    spec = time_chart(df, "v", title="t", y_title="n", series="s", mark="bar", stacked=True).to_dict()
    rows = spec["datasets"][spec["layer"][0]["data"]["name"]] if "data" in spec["layer"][0] else \
        spec["datasets"][spec["data"]["name"]]
    tops = {(r["s"], r["_y0"], r["_y1"]) for r in rows}
    assert tops == {("a", 0.0, 1.0), ("b", 1.0, 3.0), ("a", 0.0, 3.0), ("b", 3.0, 7.0)}
    main = layer(spec, "data")
    assert main["mark"]["type"] == "rect" and main["encoding"]["x2"]["field"] == "ts_end"
    assert main["encoding"]["y"]["scale"]["domain"][1] == pytest.approx(7.0 * 1.1)


def test_chart_points_counts_every_dataset_row() -> None:
    """The point count includes the data rows and the threshold rows."""
    chart = time_chart(frame([1.0] * 50), "v", title="t", y_title="n", thresholds=[Threshold(2.0, "x")])
    assert chart_points(chart) == 51


def test_series_label_adds_the_source_only_when_sources_differ() -> None:
    """Series carry their source name only when two sources share the chart."""
    one = pd.DataFrame({"key": ["web", "bot"], "source": ["demo", "demo"]})
    two = pd.DataFrame({"key": ["web", ""], "source": ["demo", "worker"]})
    assert series_label(one, ["key"]).tolist() == ["web", "bot"]
    assert series_label(two, ["key"]).tolist() == ["web · demo", "worker"]
    assert series_label(one.assign(key=""), ["key"], empty="spotify").tolist() == ["spotify", "spotify"]


def test_bar_chart_thresholds_are_vertical_rules() -> None:
    """Horizontal bars get their thresholds as rules on the x axis, inside its domain."""
    df = pd.DataFrame({"table": ["a", "b"], "mb": [1.0, 2.0]})
    spec = alt.LayerChart.to_dict(bar_chart(df, "table", "mb", title="t", value_title="MB",
                                            thresholds=[Threshold(5.0, "cap")]), validate=True)
    assert layer(spec, "thresholds")["encoding"]["x"]["field"] == "value"
    assert layer(spec, "data")["encoding"]["x"]["scale"]["domain"] == [0, pytest.approx(5.5)]


def test_unknown_mark_or_threshold_kind_is_refused() -> None:
    """A typo in a mark or threshold kind fails at once with its name."""
    with pytest.raises(ValueError, match="mark"):
        time_chart(frame([1.0]), "v", title="t", y_title="n", mark="pie")
    with pytest.raises(ValueError, match="kind"):
        Threshold(1.0, "x", "danger")


def test_a_forecast_is_a_typed_band_and_line_only_when_it_has_rows() -> None:
    """The projection adds a band (low–high) and a dashed line on the data's axis, typed like the data; an
    empty projection (no trend) adds no layer at all, so Vega never sees an untyped empty layer."""
    ahead = pd.DataFrame({"ts": pd.date_range("2026-01-01 02:00", periods=3, freq="1h", tz="UTC"),
                          "series": "trend", "forecast": [3.0, 4.0, 5.0], "low": [2.5, 3.0, 3.5],
                          "high": [3.5, 5.0, 20.0]})
    spec = alt.LayerChart.to_dict(time_chart(frame([1.0, 2.0, 3.0]), "v", title="t", y_title="u", forecast=ahead),
                                  validate=True)
    band, line = layer(spec, "forecast band"), layer(spec, "forecast")
    assert band["encoding"]["y"]["field"] == "low" and band["encoding"]["y2"]["field"] == "high"
    assert line["encoding"]["y"]["type"] == "quantitative" and line["encoding"]["x"]["type"] == "temporal"
    assert line["mark"]["strokeDash"] and band["mark"]["clip"]
    # The axis covers the forecast's line (5.0), not the band's far edge (20.0), which is clipped.
    assert 5.0 < layer(spec, "data")["encoding"]["y"]["scale"]["domain"][1] < 20.0
    empty = ahead.iloc[0:0]
    for nothing in (empty, None):
        names = [part.get("name") for part in alt.LayerChart.to_dict(
            time_chart(frame([1.0, 2.0]), "v", title="t", y_title="u", forecast=nothing))["layer"]]
        assert "forecast" not in names and "forecast band" not in names


def test_a_series_with_one_or_two_samples_is_drawn_as_dots_and_a_dense_one_is_not() -> None:
    """A line through a single sample draws nothing: such series get a dot layer, dense series only the line."""
    df = frame([0.2, 0.3, 0.4, 0.5, 0.9], ["dense"] * 4 + ["new"])
    spec = time_chart(df, "v", title="t", y_title="share", series="s").to_dict()
    dots = layer(spec, "sparse")
    assert dots["mark"]["type"] == "point" and dots["transform"] == [{"filter": "datum._sparse"}]
    rows = spec["datasets"][(dots.get("data") or spec["data"])["name"]]
    assert sorted(r["s"] for r in rows if r["_sparse"]) == ["new"]
    dense = time_chart(frame([0.2, 0.3, 0.4]), "v", title="t", y_title="share").to_dict()
    assert not [p for p in dense["layer"] if p.get("name") == "sparse"]
