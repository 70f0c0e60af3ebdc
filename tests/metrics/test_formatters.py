"""The pure parts of the metrics: the sliding rate, the Prometheus text, the JSON shape.
No trio, no server."""

from __future__ import annotations

import dataclasses
import itertools
import math
from datetime import UTC, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from tests.metrics.support import T0, agent_figures, snapshot
from trio_wrapper.core.status import Status
from trio_wrapper.core.timefmt import rfc3339
from trio_wrapper.metrics.json_view import JsonView, StampTexts, render_json
from trio_wrapper.metrics.model import MetricsModel
from trio_wrapper.metrics.prometheus import (
    Family,
    PrometheusView,
    families,
    format_value,
    render_text,
    to_metric,
)
from trio_wrapper.metrics.rate import SlidingRate
from trio_wrapper.metrics.snapshot import (
    AgentColumns,
    AgentFigures,
    AgentRows,
    MetricsSnapshot,
    SseFigures,
)
from trio_wrapper.metrics.template import LayoutMemo, interleave, literal


def parse(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """family name → its samples, as prometheus_client's own parser reads them."""
    return {
        fam.name: [(s.name, s.labels, s.value) for s in fam.samples]
        for fam in text_string_to_metric_families(text)
    }


# ---- sliding rate ------------------------------------------------------------------------


def test_rate_counts_only_the_last_60_seconds() -> None:
    rate = SlidingRate(start=1000.0)
    rate.add(30, now=1000.5)
    assert rate.rate(1000.5) == 30.0  # less than a second in: divided by 1 s, not by 0.5 s
    rate.add(30, now=1030.0)
    assert rate.rate(1030.0) == pytest.approx(60 / 30.0)
    assert rate.rate(1059.9) == pytest.approx(60 / 59.9)
    # One-second buckets: the events of second 1000 leave the window when second 1060 starts.
    assert rate.rate(1060.0) == pytest.approx(30 / 60.0)
    assert rate.rate(1090.0) == 0.0
    rate.add(6, now=5000.0)  # a bucket reused a lap later starts from zero
    assert rate.rate(5000.0) == pytest.approx(6 / 60.0)


def test_rate_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window"):
        SlidingRate(0.0, window_seconds=0)


# ---- Prometheus ----------------------------------------------------------------------------


def test_prometheus_text_parses_with_every_family_and_value() -> None:
    fams = parse(render_text(families(snapshot(), "trio_wrapper")))
    ns = "trio_wrapper"
    assert fams[f"{ns}_build_info"] == [(f"{ns}_build_info", {"version": "9.9.9"}, 1.0)]
    assert fams[f"{ns}_uptime_seconds"] == [(f"{ns}_uptime_seconds", {}, 54098.21)]
    agents = {s[1]["status"]: s[2] for s in fams[f"{ns}_agents"]}
    assert agents == {
        "starting": 0,
        "running": 1,
        "waiting": 0,
        "stopping": 0,
        "completed": 1,
        "failed": 0,
        "stopped": 0,
        "interrupted": 0,
    }
    # The parser names counter families without _total; samples keep it.
    assert fams[f"{ns}_events"] == [(f"{ns}_events_total", {}, 145.0)]
    assert fams[f"{ns}_agents_started"] == [(f"{ns}_agents_started_total", {}, 3.0)]
    assert fams[f"{ns}_failed_starts"] == [(f"{ns}_failed_starts_total", {}, 1.0)]
    assert fams[f"{ns}_log_lines"] == [(f"{ns}_log_lines_total", {}, 98.0)]
    assert {s[1]["type"]: s[2] for s in fams[f"{ns}_extractions"]} == {
        "session": 16,
        "code_block": 8,
        "prompt": 2,
        "response": 21,
    }
    assert fams[f"{ns}_events_per_second"] == [(f"{ns}_events_per_second", {}, 0.00268)]
    assert fams[f"{ns}_agent_status"] == [
        (f"{ns}_agent_status", {"agent": "codex-1", "status": "running"}, 1.0),
        (f"{ns}_agent_status", {"agent": "codex-2", "status": "completed"}, 1.0),
    ]
    assert fams[f"{ns}_agent_log_lines"][0] == (
        f"{ns}_agent_log_lines_total",
        {"agent": "codex-1"},
        49.0,
    )
    output = {(s[1]["agent"], s[1]["stream"]): s[2] for s in fams[f"{ns}_agent_output_bytes"]}
    assert output[("codex-1", "stdout")] == 52000
    assert output[("codex-1", "stderr")] == 311
    # A running agent has no exit code series; a finished one has.
    assert fams[f"{ns}_agent_exit_code"] == [(f"{ns}_agent_exit_code", {"agent": "codex-2"}, 0.0)]
    assert fams[f"{ns}_sse_clients"] == [(f"{ns}_sse_clients", {"agent": "codex-1"}, 2.0)]
    assert fams[f"{ns}_sse_dropped_events"] == [(f"{ns}_sse_dropped_events_total", {}, 7.0)]


def test_prometheus_names_follow_the_conventions() -> None:
    for fam in families(snapshot(), "go_wrapper"):
        assert fam.name.startswith("go_wrapper_")
        assert fam.name.endswith("_total") == (fam.kind == "counter"), fam.name
    text = render_text(families(snapshot(), "x"))
    assert "_created" not in text


class _FamiliesCollector(Collector):
    def __init__(self, snap: MetricsSnapshot) -> None:
        self._snap = snap

    def collect(self):  # type: ignore[no-untyped-def]
        return [to_metric(f) for f in families(self._snap, "trio_wrapper")]


hostile_text = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12)


@given(
    types=st.dictionaries(hostile_text, st.integers(0, 10**12), max_size=4),
    uptime=st.floats(min_value=0, max_value=1e12, allow_nan=False),
    eps=st.floats(allow_nan=True, allow_infinity=True),
)
def test_fast_writer_reads_the_same_as_prometheus_client(
    types: dict[str, int], uptime: float, eps: float
) -> None:
    """/metrics is written by render_text; prometheus_client's own generate_latest over
    the same families (through MetricsCollector's conversion) must parse to the same."""
    snap = snapshot(
        extractions_by_type=types,
        uptime_seconds=uptime,
        events_per_second=eps,
        sse=SseFigures({'a"b\\c\nd': 1}),
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_FamiliesCollector(snap))
    ours = list(text_string_to_metric_families(render_text(families(snap, "trio_wrapper"))))
    theirs = list(text_string_to_metric_families(generate_latest(registry).decode()))
    assert [(f.name, f.type, f.documentation) for f in ours] == [
        (f.name, f.type, f.documentation) for f in theirs
    ]
    for mine, ref in zip(ours, theirs, strict=True):
        for a, b in zip(mine.samples, ref.samples, strict=True):
            assert (a.name, a.labels) == (b.name, b.labels)
            assert a.value == b.value or (math.isnan(a.value) and math.isnan(b.value))


def test_format_value() -> None:
    assert format_value(3) == "3"
    assert format_value(0.5) == "0.5"
    assert format_value(1e-05) == "1e-05"
    assert format_value(math.inf) == "+Inf"
    assert format_value(-math.inf) == "-Inf"
    assert format_value(math.nan) == "NaN"


def test_label_values_and_help_are_escaped() -> None:
    fam = Family("m", "gauge", "a\\b\nc", ("l",), [('q"\\\n',)], [1])
    assert render_text([fam]) == '# HELP m a\\\\b\\nc\n# TYPE m gauge\nm{l="q\\"\\\\\\n"} 1\n'
    assert parse(render_text([fam]))["m"] == [("m", {"l": 'q"\\\n'}, 1.0)]


# ---- JSON ------------------------------------------------------------------------------------


def test_json_shape_key_by_key() -> None:
    doc = msgspec.json.decode(render_json(snapshot()))
    assert list(doc) == ["version", "system", "agents", "sse"]
    assert doc["version"] == "9.9.9"
    assert doc["system"] == {
        "uptime_seconds": 54098.21,
        "total_agents": 2,
        "running_agents": 1,
        "completed_agents": 1,
        "failed_agents": 0,
        "total_events": 145,
        "total_logs": 98,
        "total_extractions": 47,
        "events_per_second": 0.00268,
        "extractions_by_type": {"session": 16, "code_block": 8, "prompt": 2, "response": 21},
        "waiting_agents": 0,
    }
    assert list(doc["system"]) == [
        "uptime_seconds",
        "total_agents",
        "running_agents",
        "completed_agents",
        "failed_agents",
        "total_events",
        "total_logs",
        "total_extractions",
        "events_per_second",
        "extractions_by_type",
        "waiting_agents",
    ]
    assert doc["agents"][0] == {
        "name": "codex-1",
        "status": "running",
        "started_at": "2026-02-10T05:44:30.000-08:00",
        "completed_at": None,
        "log_lines": 49,
        "extractions": 14,
        "code_blocks": 2,
        "errors": 0,
        "bytes_processed": 52311,
        "exit_code": None,
        "duration_seconds": 630.5,
    }
    assert doc["agents"][1]["completed_at"] == "2026-02-10T05:49:30.000-08:00"
    assert doc["agents"][1]["exit_code"] == 0
    assert doc["sse"] == {"total_agents": 1, "total_clients": 2, "agents": {"codex-1": 2}}


def test_json_running_agents_counts_every_live_status() -> None:
    by_status = dict.fromkeys(
        ["starting", "running", "stopping", "completed", "failed", "stopped", "interrupted"], 1
    )
    doc = msgspec.json.decode(render_json(snapshot(agents_by_status=by_status, agents=[])))
    assert doc["system"]["total_agents"] == 7
    assert doc["system"]["running_agents"] == 3
    assert doc["system"]["completed_agents"] == 1
    assert doc["system"]["failed_agents"] == 1
    assert doc["agents"] == []


def test_agent_figures_helper() -> None:
    assert agent_figures().bytes_processed == 52311
    assert agent_figures().started_at == T0


# ---- what the views keep between scrapes ---------------------------------------------------


class _NoAgents:
    agents: dict[str, object] = {}
    started_total = 0
    failed_starts = 0


def unused_model() -> MetricsModel:
    """For views driven through render_snapshot: their model is never read."""
    return MetricsModel(_NoAgents(), version="0")  # type: ignore[arg-type]


# Names with every character some format treats specially, '%' (the format strings' own)
# included.
tricky_text = st.text(alphabet=st.sampled_from('ab %s"\\\n\r,= {}#é'), min_size=1, max_size=6)


@st.composite
def scrapes(draw: st.DrawFn) -> list[MetricsSnapshot]:
    """Successive snapshots over a few shared names: agents come, go, change status,
    finish; values change. What a view sees from one scrape to the next."""
    pool = draw(st.lists(tricky_text, min_size=1, max_size=4, unique=True))
    snaps = []
    for _ in range(draw(st.integers(1, 5))):
        names = draw(st.lists(st.sampled_from(pool), unique=True, max_size=4))
        agents = [
            agent_figures(
                name,
                status=draw(st.sampled_from([s.value for s in Status])),
                exit_code=draw(st.none() | st.integers(-5, 255)),
                log_lines=draw(st.integers(0, 10**12)),
                duration_seconds=draw(st.floats(min_value=0) | st.just(math.nan)),
            )
            for name in names
        ]
        snaps.append(
            snapshot(
                agents=agents,
                version=draw(st.sampled_from(["9.9.9", '1%s"\\'])),
                uptime_seconds=draw(st.floats(min_value=0, max_value=1e9)),
                extractions_by_type=draw(st.dictionaries(tricky_text, st.integers(0, 9))),
                sse=SseFigures(draw(st.dictionaries(st.sampled_from(pool), st.integers(0, 3)))),
            )
        )
    return snaps


def _naive_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def naive_text(fams: list[Family]) -> str:
    """The text format written the obvious way, sample by sample: the oracle."""
    out = []
    for fam in fams:
        help_text = fam.help.replace("\\", "\\\\").replace("\n", "\\n")
        out.append(f"# HELP {fam.name} {help_text}\n# TYPE {fam.name} {fam.kind}\n")
        for label_values, value in zip(fam.label_values, fam.values, strict=True):
            labels = ",".join(
                f'{key}="{_naive_escape(text)}"'
                for key, text in zip(fam.label_names, label_values, strict=True)
            )
            selector = "{" + labels + "}" if fam.label_names else ""
            out.append(f"{fam.name}{selector} {format_value(value)}\n")
    return "".join(out)


@given(scrapes())
def test_prometheus_view_writes_what_a_fresh_render_writes(snaps: list[MetricsSnapshot]) -> None:
    view = PrometheusView(unused_model(), "trio_wrapper")
    for snap in snaps:
        expected = naive_text(families(snap, "trio_wrapper"))
        assert render_text(families(snap, "trio_wrapper")) == expected
        assert view.render_snapshot(snap) == expected.encode()


@given(scrapes())
def test_json_view_writes_what_a_fresh_render_writes(snaps: list[MetricsSnapshot]) -> None:
    view = JsonView(unused_model())
    for snap in snaps:
        assert view.render_snapshot(snap) == render_json(snap)


def test_stamp_texts_go_by_the_object_not_by_equality() -> None:
    stamps = StampTexts()
    utc = T0.astimezone(UTC)
    assert utc == T0  # the same instant, written differently
    assert stamps.texts((T0, None, utc)) == [rfc3339(T0), None, rfc3339(utc)]
    assert stamps.texts((T0, None, utc)) == [rfc3339(T0), None, rfc3339(utc)]  # reused
    later = T0 + timedelta(seconds=1)
    assert stamps.texts((utc, later)) == [rfc3339(utc), rfc3339(later)]
    assert StampTexts(none_text="").texts((None,)) == [""]


def test_layout_memo_builds_once_per_layout() -> None:
    memo: LayoutMemo[tuple[str, ...]] = LayoutMemo()
    built = []

    def build(text: str) -> str:
        built.append(text)
        return text

    assert memo.get(("a",), lambda: build("A")) == "A"
    assert memo.get(("a",), lambda: build("B")) == "A"
    assert memo.get(("b",), lambda: build("C")) == "C"
    assert built == ["A", "C"]
    assert literal("50% of %s") == "50%% of %%s"
    assert interleave([(1, 2), ("a", "b"), (None, 3.5)]) == (1, "a", None, 2, "b", 3.5)
    assert interleave([]) == ()
    with pytest.raises(ValueError):
        interleave([(1, 2), (3,)])


def test_agent_columns_are_the_figures_transposed() -> None:
    assert AgentColumns._fields == AgentFigures._fields
    one, two = agent_figures("a"), agent_figures("b", log_lines=7)
    columns = AgentColumns.of([one, two])
    assert columns.name == ("a", "b")
    assert columns.log_lines == (49, 7)
    assert AgentColumns.of([]) == AgentColumns(*([()] * len(AgentColumns._fields)))


def test_agent_rows_read_as_the_list_of_figures() -> None:
    figures = [agent_figures("a"), agent_figures("b", exit_code=3), agent_figures("c")]
    rows = AgentRows(tuple(itertools.chain.from_iterable(figures)))
    assert len(rows) == 3
    assert rows[1] == figures[1]
    assert rows[-1] == figures[-1]
    assert rows[1:] == figures[1:]
    assert list(rows) == figures
    assert rows == figures
    assert AgentColumns.of(rows) == AgentColumns.of(figures)
    assert "exit_code=3" in repr(rows)
    with pytest.raises(IndexError):
        rows[3]
    with pytest.raises(ValueError, match="rows of 12"):
        AgentRows((1, 2))


@given(scrapes())
def test_flat_rows_render_as_figures_do(snaps: list[MetricsSnapshot]) -> None:
    """The model hands over AgentRows; hand-made snapshots hold AgentFigures lists."""
    for snap in snaps:
        flat = AgentRows(tuple(itertools.chain.from_iterable(snap.agents)))
        same = dataclasses.replace(snap, agents=flat)
        assert render_text(families(same, "ns")) == render_text(families(snap, "ns"))
        assert render_json(same) == render_json(snap)
