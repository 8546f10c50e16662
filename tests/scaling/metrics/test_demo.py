"""Demo metrics: deterministic for a seed, consistent with retention, replaceable, reachable from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from scaling import cli
from scaling.metrics import models as m
from scaling.metrics import queries as q
from scaling.metrics.db import open_metrics_db
from scaling.metrics.demo import generate
from scaling.metrics.migrate import upgrade
from scaling.metrics.records import UserCounts
from scaling.metrics.writer import MetricsWriter

NOW = 1_767_225_600.0 + 1234.0
DAY = 86400.0


def _dump(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows without surrogate ids, in a stable order."""
    out = {}
    with engine.connect() as conn:
        for table in m.metadata.sorted_tables:
            cols = [c for c in table.c if c.name != "id"]
            out[table.name] = [tuple(r) for r in conn.execute(select(*cols).order_by(*cols))]
    return out


@pytest.mark.sqlite
def test_same_seed_same_rows_other_seed_other_rows(tmp_path: Path) -> None:
    """Two databases generated with one seed and `now` are identical row for row; another seed differs."""
    dumps = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        url = f"sqlite:///{tmp_path}/{name}.db"
        upgrade(url)
        engine = open_metrics_db(url)
        generate(engine, now=NOW, days=3, users=40, seed=seed, raw_days=1)
        dumps.append(_dump(engine))
        engine.dispose()
    assert dumps[0] == dumps[1]
    assert dumps[0]["headroom_samples"] != dumps[2]["headroom_samples"]


def test_history_tells_the_story_and_agrees_with_rollups(engine: Engine) -> None:
    """Users grow to the target, prewarm slows with them, and minute and hourly views give the same 429s."""
    report = generate(engine, now=NOW, days=10, users=120, seed=0, raw_days=2)
    assert report.rows["headroom_samples"] == 7 * 2 * 1440 + 7 * 20  # two raw days, from the hour boundary
    assert q.latest_user_counts(engine, source="demo").total == 120  # type: ignore[union-attr]
    users = q.user_count_series(engine, NOW - 10 * DAY, NOW)
    assert users["total"].iloc[0] == 20 and users["total"].is_monotonic_increasing
    assert 0.6 < users["with_lastfm"].iloc[-1] / 120 < 0.8
    runs = q.job_runs(engine, "prewarm", NOW - 10 * DAY, NOW, bucket_s=86400)
    assert runs["duration_avg"].iloc[-1] > 2 * runs["duration_avg"].iloc[0]
    assert q.cron_summary(engine, NOW - DAY, NOW).set_index("job").loc["prewarm", "timed_out"] > 0
    recent = q.headroom_series(engine, NOW - DAY, NOW)  # raw minutes
    assert recent.attrs["bucket_s"] == 60
    hours = q.headroom_series(engine, NOW - DAY, NOW, bucket_s=3600)  # roll-ups + raw
    assert recent["upstream_429"].sum() == hours[hours.ts >= recent.ts.min().floor("h")]["upstream_429"].sum()
    whole = q.headroom_series(engine, NOW - 10 * DAY, NOW)
    assert whole["upstream_429"].sum() > 0 and whole.groupby(["upstream", "limiter_key"]).size().max() <= 2000
    costs = q.ai_cost_by(engine, NOW - 10 * DAY, NOW, ("provider",)).set_index("provider")
    # The app's providers: OpenAI and Perplexity, both spending (issue 13: demo data like the app).
    assert set(costs.index) == {"openai", "perplexity"} and (costs["cost_usd"] > 0).all()
    assert len(q.alerts(engine, NOW - 30 * DAY)) == 3


def test_rerun_replaces_demo_rows_and_spares_other_sources(engine: Engine, writer: MetricsWriter) -> None:
    """Generating twice leaves one copy of the demo history; collectors' rows are untouched."""
    writer.record_user_counts(UserCounts(7, 5, 1, ts=NOW - 5))
    generate(engine, now=NOW, days=2, users=30, seed=1, raw_days=1)
    first = _dump(engine)
    generate(engine, now=NOW, days=2, users=30, seed=1, raw_days=1)
    assert _dump(engine) == first
    assert q.latest_user_counts(engine, source="collectors") == UserCounts(7, 5, 1, NOW - 5, "collectors")


def test_bad_arguments_are_refused(engine: Engine) -> None:
    """Zero days or more than two years is a ValueError naming the limits."""
    with pytest.raises(ValueError, match="days"):
        generate(engine, now=NOW, days=0)
    with pytest.raises(ValueError, match="days"):
        generate(engine, now=NOW, days=731)


@pytest.mark.sqlite
def test_cli_generates_and_prints_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`demo-metrics --json` refuses an unmigrated DB (exit 1), then writes and reports row counts."""
    url = f"sqlite:///{tmp_path}/metrics.db"
    monkeypatch.setenv("HEADROOM_METRICS_DB_URL", url)
    assert cli.main(["demo-metrics", "--days", "2"]) == 1
    assert "python -m scaling migrate" in capsys.readouterr().err
    upgrade(url)
    assert cli.main(["demo-metrics", "--days", "2", "--users", "30", "--seed", "5", "--now", str(NOW), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["source"] == "demo" and report["rows"]["job_runs"] > 500 and report["total_rows"] > 20_000


@pytest.mark.sqlite
def test_cli_rejects_out_of_range_days(capsys: pytest.CaptureFixture[str]) -> None:
    """`--days 0` is a usage error (exit 2) with one line naming the option."""
    with pytest.raises(SystemExit) as info:
        cli.main(["demo-metrics", "--days", "0"])
    assert info.value.code == 2 and "--days" in capsys.readouterr().err
