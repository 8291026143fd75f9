"""A space-time diagram of one timeline in a browser page (plotly, embedded for offline use).

One horizontal lane per subtask, plus "coordinator" (the job's own events
too) and "store"; x is simulated time in ms.  Vertical lines mark failovers,
restarts and the fork of a restored timeline; the offending records of a
finding are big markers of their own colour, named in the legend.  Barriers
are drawn as they travel (a thin line from the sender's `barrier_sent` to each
receiver's `barrier_received`), an alignment as a thick stretch of its task's
lane (from its first barrier to the last), and each snapshot's cut as a dotted
zig-zag through the subtasks' snapshots.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from attrs import define, field

from onceflow.errors import OnceflowError
from onceflow.model.simulation import RunResult
from onceflow.properties.violation import Finding
from onceflow.report._history import RESTORED, Event, Offenders, events_of, op_records
from onceflow.report.timeline import described

__all__ = ["write_html"]

COORDINATOR, STORE = "coordinator", "store"
OFFENDING = "offending"
LEGEND_IDS = 8
_SUBTASK = re.compile(r"(?P<uid>.+)\[(?P<index>\d+)\]")

#: Series key -> (legend name, marker style).  Legend order is this order.
STYLES: dict[str, tuple[str, dict[str, Any]]] = {
    "records": ("record buffers (read / process)",
                {"symbol": "circle", "size": 5, "color": "#b8b8b8"}),
    "store_write": ("store writes", {"symbol": "line-ns-open", "size": 8, "color": "#9a9a9a"}),
    "barrier_hop": ("barrier in flight (sent → received)",
                    {"symbol": "triangle-right", "size": 6, "color": "#9ecae1"}),
    "alignment": ("alignment (early inputs blocked)",
                  {"symbol": "line-ns-open", "size": 10, "color": "#17becf",
                   "line": {"width": 2}}),
    "barrier": ("barrier: snapshot taken", {"symbol": "line-ns-open", "size": 16,
                                            "color": "#1f77b4", "line": {"width": 2.5}}),
    "channel_state": ("unaligned: records kept as channel state",
                      {"symbol": "hexagon-open", "size": 11, "color": "#1f77b4",
                       "line": {"width": 2}}),
    "trigger": ("checkpoint triggered", {"symbol": "triangle-right", "size": 11,
                                         "color": "#1f77b4"}),
    "completed": ("checkpoint completed", {"symbol": "star", "size": 15, "color": "#2ca02c"}),
    "savepoint_barrier": ("savepoint barrier: snapshot taken",
                          {"symbol": "line-ns-open", "size": 16, "color": "#6a3d9a",
                           "line": {"width": 2.5}}),
    "savepoint_trigger": ("savepoint triggered", {"symbol": "triangle-right-open", "size": 13,
                                                  "color": "#6a3d9a", "line": {"width": 2}}),
    "savepoint_completed": ("savepoint completed", {"symbol": "star-square", "size": 15,
                                                    "color": "#6a3d9a"}),
    "aborted": ("checkpoint aborted / declined", {"symbol": "x", "size": 12,
                                                  "color": "#ff7f0e"}),
    "pre_commit": ("pre-commit", {"symbol": "diamond-open", "size": 11, "color": "#2ca02c",
                                  "line": {"width": 2}}),
    "commit": ("commit", {"symbol": "diamond", "size": 12, "color": "#2ca02c"}),
    "abort": ("abort / failed or missing commit", {"symbol": "square-x-open", "size": 12,
                                      "color": "#8c564b", "line": {"width": 2}}),
    "failed": ("crash", {"symbol": "x", "size": 17, "color": "#d62728"}),
    "deploy": ("deploy / restart / restored timeline", {"symbol": "triangle-up", "size": 13,
                                                        "color": "#ff7f0e"}),
    "restore": ("task restores a snapshot", {"symbol": "triangle-up-open", "size": 11,
                                             "color": "#ff7f0e", "line": {"width": 2}}),
    "fault": ("fault injected", {"symbol": "star-triangle-up", "size": 15,
                                 "color": "#9467bd"}),
    "finished": ("job finished", {"symbol": "square", "size": 11, "color": "#222222"}),
    OFFENDING: ("offending records", {"symbol": "circle-open", "size": 22, "color": "#e6007e",
                                      "line": {"width": 2.5, "color": "#e6007e"}}),
}

#: Trace kind -> series key (per-buffer and transaction events are placed apart).
SERIES = {
    "snapshot": "barrier", "trigger": "trigger", "completed": "completed",
    "aborted": "aborted", "declined": "aborted", "savepoint_failed": "aborted",
    "alignment_cancelled": "aborted",
    "barrier_overtaken": "channel_state", "barriers_complete": "channel_state",
    "pre_commit": "pre_commit", "commit": "commit", "abort": "abort", "commit_lost": "abort",
    "crash": "failed", "deploy": "deploy", "restart": "deploy", RESTORED: "deploy",
    "fault": "fault", "finished": "finished",
    "txn_committed": "commit", "txn_aborted": "abort", "txn_expired": "abort",
    "txn_open": "abort",
}
#: Series drawn as lines (their points come in runs separated by gaps), and how.
LINES: dict[str, dict[str, Any]] = {
    "barrier": {"width": 1, "dash": "dot"},  # a snapshot's cut
    "savepoint_barrier": {"width": 1.5, "dash": "dash"},  # a savepoint's cut
    "barrier_hop": {"width": 1},  # sender -> receiver
    "alignment": {"width": 5},  # along one lane
}
#: Series whose points carry a visible label (the transaction id).
LABELLED = frozenset({"pre_commit", "commit", "abort"})
#: Series a savepoint's events go to instead of the checkpoint's.
SAVEPOINT_SERIES = {"barrier": "savepoint_barrier", "trigger": "savepoint_trigger",
                    "completed": "savepoint_completed"}
#: Transaction events that also get a marker in the store lane.
STORE_ECHO = frozenset({"commit", "commit_lost", "abort"})


@define
class Series:
    """The points of one legend entry."""

    xs: list[float | None] = field(factory=list)
    ys: list[str | None] = field(factory=list)
    texts: list[str | None] = field(factory=list)
    labels: list[str] = field(factory=list)

    def add(self, x: float, y: str, text: str, label: str = "") -> None:
        self.xs.append(x)
        self.ys.append(y)
        self.texts.append(text)
        self.labels.append(label)

    def gap(self) -> None:
        self.add(None, None, None)  # type: ignore[arg-type]


# -- the API -------------------------------------------------------------------------------

def write_html(result: RunResult, path: str | Path, finding: Finding | None = None) -> Path:
    """Write a space-time diagram of `result` (the timeline `finding` is about) to `path`."""
    go = _plotly()
    offenders = Offenders.of(result, finding)
    events = events_of(result, offenders)
    lanes = _lanes(result, events)
    series = _series(result, events, offenders, lanes)
    fig = go.Figure()
    for key, (name, marker) in STYLES.items():
        points = series.get(key)
        if points is None or not any(x is not None for x in points.xs):
            continue
        fig.add_trace(_scatter(go, key, _legend_name(key, name, offenders), marker, points))
    for x, text, colour, dash in _verticals(events):
        fig.add_vline(x=x, line_color=colour, line_dash=dash, line_width=1.5, opacity=0.7,
                      annotation_text=text, annotation_position="top",
                      annotation_font_size=10, annotation_font_color=colour)
    _layout(fig, result, finding, lanes)
    out = Path(path)
    fig.write_html(out, include_plotlyjs=True, full_html=True)
    return out


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError:
        raise OnceflowError("the HTML diagram needs plotly: pip install 'onceflow[html]'") from None
    return go


# -- lanes and points ------------------------------------------------------------------------

def _lane(where: str) -> str:
    return where if where == STORE or _SUBTASK.fullmatch(where) else COORDINATOR


def _lanes(result: RunResult, events: list[Event]) -> list[str]:
    """Top to bottom: the coordinator, every subtask in topology order, the store."""
    order = {v.uid: i for i, v in enumerate(result.scenario.topology.vertices)}

    def key(name: str) -> tuple[int, str, int]:
        m = _SUBTASK.fullmatch(name)
        assert m is not None
        return (order.get(m["uid"], len(order)), m["uid"], int(m["index"]))

    subtasks = {e[2] for e in events if _SUBTASK.fullmatch(e[2])}
    return [COORDINATOR, *sorted(subtasks, key=key), STORE]


def _series(result: RunResult, events: list[Event], offenders: Offenders,
            lanes: list[str]) -> dict[str, Series]:
    """Every event as a point of its legend entry; barriers joined per snapshot."""
    out: dict[str, Series] = {key: Series() for key in STYLES}
    barriers: dict[tuple[int, int], list[tuple[float, str, str]]] = {}
    sent: dict[tuple[int, int, str], tuple[float, str]] = {}  # -> (time, snapshot kind)
    attempt = 0  # join the barriers of one snapshot within one deployment
    for (time, kind, where, detail), line in described(events, offenders, True):
        attempt += kind == "deploy"
        if kind in _BARRIER_KINDS:
            _barrier_point(out, sent, attempt, (time, kind, where, detail))
            continue
        if line is None:
            continue
        text = f"t={time:.3f}  {where}<br>{line.what}"
        if kind == "snapshot":
            key = "savepoint_barrier" if _is_savepoint(detail) else "barrier"
            barriers.setdefault((attempt, detail[0], key), []).append((time, _lane(where), text))
        else:
            _place(out, kind, (time, _lane(where), text), offending=line.marked,
                   savepoint=kind in ("trigger", "completed") and _is_savepoint(detail),
                   label=_txn_label(kind, detail))
    _add_barriers(out, barriers, lanes)
    _add_store_writes(out, result, offenders)
    return out


_BARRIER_KINDS = frozenset({"barrier_sent", "barrier_received", "aligned", "restore"})


def _barrier_point(out: dict[str, Series], sent: dict[tuple[int, int, str], tuple[float, str]],
                   attempt: int, event: Event) -> None:
    """The events the text timeline folds or leaves out, drawn one by one: a barrier's
    hop from sender to receiver, an alignment's stretch, each task's restore."""
    time, kind, where, d = event
    lane = _lane(where)
    if kind == "barrier_sent":
        sent[(attempt, d[0], where)] = (time, d[1])
    elif kind == "barrier_received":
        start, snapshot = sent.get((attempt, d[0], d[2]), (None, "checkpoint"))
        if start is None:
            return
        text = (f"t={start:.3f} → t={time:.3f}  {d[2]} → {where}<br>barrier of {snapshot} "
                f"{d[0]} (input {d[1]})")
        out["barrier_hop"].add(start, _lane(d[2]), text)
        out["barrier_hop"].add(time, lane, text)
        out["barrier_hop"].gap()
    elif kind == "aligned":
        if not d[2]:
            return  # every barrier came at once: nothing was blocked
        text = (f"t={time - d[2]:.3f} → t={time:.3f}  {where}<br>alignment of {d[1]} {d[0]}: "
                f"{d[2]:.3f} ms")
        out["alignment"].add(time - d[2], lane, text)
        out["alignment"].add(time, lane, text)
        out["alignment"].gap()
    else:  # restore
        out["restore"].add(time, lane, f"t={time:.3f}  {where}<br>restore {d[1]} {d[0]}")


def _is_savepoint(detail: Any) -> bool:
    return len(detail) > 1 and detail[1] == "savepoint"


def _txn_label(kind: str, detail: Any) -> str:
    """The short id of the transaction a transaction event is about (shown on the mark)."""
    if SERIES.get(kind) not in LABELLED or not detail or not isinstance(detail[0], str):
        return ""
    parts = detail[0].split(".")
    return ".".join(parts[-3:]) if len(parts) > 3 else detail[0]


def _place(out: dict[str, Series], kind: str, point: tuple[float, str, str], *,
           offending: bool, savepoint: bool = False, label: str = "") -> None:
    """One event's markers: on its lane, echoed on the store's for transaction ends; an
    offending record's ring goes around the mark, which stays visible inside it."""
    time, lane, text = point
    if kind in ("read", "process"):
        out["records"].add(time, lane, text)
        if offending:
            out[OFFENDING].add(time, lane, text)
        return
    key = SERIES.get(kind)
    if key is None:
        return
    if savepoint:
        key = SAVEPOINT_SERIES.get(key, key)
    places = (lane, STORE) if kind in STORE_ECHO else (lane,)
    for place in places:
        out[key].add(time, place, text, label if place == lane else "")
        if offending:
            out[OFFENDING].add(time, place, text)


def _add_barriers(out: dict[str, Series],
                  barriers: dict[tuple[int, int, str], list[tuple[float, str, str]]],
                  lanes: list[str]) -> None:
    """One zig-zag line per snapshot through the subtasks its barrier reached: the cut
    (dotted for a checkpoint, dashed and purple for a savepoint)."""
    rank = {lane: i for i, lane in enumerate(lanes)}
    for (_, _, key), points in barriers.items():
        series = out[key]
        for time, lane, text in sorted(points, key=lambda p: (rank.get(p[1], 0), p[0])):
            series.add(time, lane, text)
        series.gap()


def _add_store_writes(out: dict[str, Series], result: RunResult, offenders: Offenders) -> None:
    for op in result.store.ops:
        if op[0] not in ("write", "append", "upsert"):
            continue
        records = op_records(op)
        if not records:
            continue
        txn = f" in txn {op[2]}" if op[0] == "write" else ""
        span = records[0].id if len(records) == 1 else f"{records[0].id}..{records[-1].id}"
        out["store_write"].add(op[1], STORE, f"t={op[1]:.3f}  store<br>{op[0]} "
                                             f"{len(records)} record(s) ({span}){txn}")
    for time, txn, ids in offenders.writes:
        where = f" in txn {txn}" if txn else ""
        out[OFFENDING].add(time, STORE, f"t={time:.3f}  store<br>wrote {', '.join(ids)}{where}")


def _verticals(events: list[Event]) -> list[tuple[float, str, str, str]]:
    """(time, label, colour, dash) of the lines across every lane."""
    out = []
    for time, kind, where, detail in events:
        if kind == "failed":
            out.append((time, "failover" if where != COORDINATOR else "coordinator lost",
                        "#d62728", "dash"))
        elif kind == "restart":
            out.append((time, f"restart #{detail[0]}", "#ff7f0e", "dot"))
        elif kind == RESTORED:
            out.append((time, f"restored from {detail[0].split(' (')[0]}", "#000000", "dash"))
    return out


# -- figure ------------------------------------------------------------------------------------

def _legend_name(key: str, name: str, offenders: Offenders) -> str:
    if key != OFFENDING:
        return name
    ids = offenders.ids
    shown = ", ".join(ids[:LEGEND_IDS]) + (", ..." if len(ids) > LEGEND_IDS else "")
    return f"offending records: {shown}"


def _scatter(go: Any, key: str, name: str, marker: dict[str, Any], points: Series) -> Any:
    joined = key in LINES
    labelled = key in LABELLED and any(points.labels)
    mode = "lines+markers" if joined else "markers"
    return go.Scatter(
        x=points.xs, y=points.ys, hovertext=points.texts, name=name, marker=marker,
        mode=mode + "+text" if labelled else mode, hoverinfo="text",
        text=points.labels if labelled else None,
        textposition="top center", textfont={"size": 10, "color": marker["color"]},
        line=LINES[key] | {"color": marker["color"]} if joined else None,
        connectgaps=False)


def _layout(fig: Any, result: RunResult, finding: Finding | None, lanes: list[str]) -> None:
    if finding is not None:
        title = (f"{finding.property}: {finding.anomaly} — {finding.timeline}"
                 f"<br><sup>{finding.summary}</sup>")
    else:
        title = f"onceflow run {result.run_id}: {result.status}"
    # the legend sits on top, under the title, so that a 1600x1000 screenshot of the
    # page shows it whatever the number of lanes
    fig.update_layout(
        title={"text": title, "x": 0.01, "y": 0.96, "yanchor": "top"},
        height=max(560, 300 + 30 * len(lanes)),
        xaxis={"title": {"text": "simulated time (ms)"}, "zeroline": False,
               "showgrid": True, "gridcolor": "#eeeeee"},
        yaxis={"type": "category", "categoryorder": "array", "categoryarray": lanes,
               "autorange": "reversed", "showgrid": True, "gridcolor": "#dddddd"},
        plot_bgcolor="#ffffff", hovermode="closest",
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom",
                "font": {"size": 11}, "bgcolor": "rgba(255,255,255,0.9)"},
        margin={"l": 110, "r": 20, "t": 180, "b": 60},
    )
