"""`FlinkPlan` -> Java source of one Flink job (deterministic: same plan, same text).

The job's fixed parts (record type, operators with the model's semantics, the
failing operator, the sinks, the driver that triggers savepoints and restores)
live in `OnceflowJob.java.tmpl`; this module writes the job graph, the
configuration and the savepoint schedule into it.  The class name is the hash
of the text, so a compiled class is cached by content.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files

from onceflow.flink.translate import FailPoint, FlinkPlan
from onceflow.registry import sink_spec

__all__ = ["java_source"]

_TEMPLATE = "OnceflowJob.java.tmpl"


def _template() -> str:
    return files("onceflow.flink").joinpath(_TEMPLATE).read_text(encoding="utf-8")


def _java_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _failers(var: str, keyed: bool, points: list[FailPoint], uid: str, index: int) -> list[str]:
    lines = []
    for j, f in enumerate(points):
        name = _java_string(f"{uid}~fail{j}")
        marker = f'new File(markers, "fault-{f.fault}").getPath()'
        label = _java_string(f"{f.label} on {uid}[{f.subtask}]")
        lines.append(f"    DataStream<Rec> {var}f{j} = {var}.transform({name}, REC, new FailOnce("
                     f"{marker}, {_java_string(f.point)}, {f.n}L, {f.k}L, {f.subtask}, {f.which}, {label}))"
                     f".uid({name}).setParallelism(par[{index}]);")
        if keyed:
            lines.append(f"    KeyedStream<Rec, Integer> {var}k{j} = "
                         f"DataStreamUtils.reinterpretAsKeyedStream({var}f{j}, new ByKey(), Types.INT);")
            var = f"{var}k{j}"
        else:
            var = f"{var}f{j}"
    return lines + ([f"    var {var}_in = {var};"] if points else [])


def _build(plan: FlinkPlan) -> str:
    scenario = plan.scenario
    vertices = scenario.topology.vertices
    by_vertex: dict[int, list[FailPoint]] = {}
    for f in plan.faults:
        by_vertex.setdefault(f.vertex, []).append(f)
    src = vertices[0]
    lines = [
        f"    env.setMaxParallelism({scenario.topology.max_parallelism});",
        "    DataStream<Rec> s0 = env.fromSource(",
        "        FileSource.forRecordStreamFormat(new TextLineInputFormat(), "
        "new Path(new File(in).toURI())).build(),",
        f"        WatermarkStrategy.noWatermarks(), {_java_string(src.uid)})"
        f".uid({_java_string(src.uid)}).setParallelism(par[0])",
        f"      .map(new Parse({plan.pause_nanos}L)).returns(REC)"
        f".uid({_java_string(src.uid + '~parse')}).setParallelism(par[0]);",
    ]
    stream = "s0"
    if 0 in by_vertex:
        lines += _failers("s0", False, by_vertex[0], src.uid, 0)
        stream = lines[-1].split()[1]  # the "var X_in" line
    for i, v in enumerate(vertices[1:], start=1):
        uid = _java_string(v.uid)
        keyed = v.edge == "hash"
        p = f"p{i}"
        if keyed:
            lines.append(f"    KeyedStream<Rec, Integer> {p} = {stream}.keyBy(new ByKey(), Types.INT);")
        else:
            call = {"forward": "forward", "rebalance": "rebalance", "broadcast": "broadcast"}[v.edge]
            lines.append(f"    DataStream<Rec> {p} = {stream}.{call}();")
        if i in by_vertex:
            lines += _failers(p, keyed, by_vertex[i], v.uid, i)
            p = lines[-1].split()[1]
        tail = f".uid({uid}).setParallelism(par[{i}])"
        out = f"s{i}"
        if v.kind == "map":
            lines.append(f"    DataStream<Rec> {out} = {p}.map(new AddMap({v.param}L)).returns(REC){tail};")
        elif v.kind == "filter":
            lines.append(f"    DataStream<Rec> {out} = {p}.filter(new ModFilter({v.param}L)){tail};")
        elif v.kind == "flat_map":
            lines.append(f"    DataStream<Rec> {out} = {p}.flatMap(new FanOut({v.param})).returns(REC){tail};")
        elif v.kind == "reduce":
            lines.append(f"    DataStream<Rec> {out} = {p}.reduce(new Sum()){tail};")
        elif v.kind == "window":
            lines.append(f"    DataStream<Rec> {out} = {p}.process(new CountWindow({v.param}L))"
                         f".returns(REC){tail};")
        elif v.kind == "sink":
            lines.append(_sink(sink_spec(scenario.sink).kind, p, uid, i))
        stream = out
    return "\n".join(lines)


def _sink(kind: str, p: str, uid: str, i: int) -> str:
    """The Flink sink for a sink of declared `kind`."""
    tail = f".uid({uid}).setParallelism(par[{i}]);"
    if kind == "two_phase":
        line_uid = uid[:-1] + '~line"'
        return (f"    {p}.map(new Line()).returns(Types.STRING).uid({line_uid}).setParallelism(par[{i}])\n"
                "      .sinkTo(FileSink.forRowFormat(new Path(new File(out).toURI()), "
                "new SimpleStringEncoder<String>())\n"
                "        .withRollingPolicy(OnCheckpointRollingPolicy.build()).build())" + tail)
    if kind == "idempotent":
        return f"    {p}.sinkTo(new UpsertSink(out)){tail}"
    return f"    {p}.sinkTo(new AppendSink(out)){tail}"


def _config(plan: FlinkPlan) -> str:
    cp = plan.scenario.checkpoints
    restart = plan.scenario.restart
    mode = "AT_LEAST_ONCE" if cp.mode == "at_least_once" else "EXACTLY_ONCE"
    return "\n".join([
        f"    conf.set(CheckpointingOptions.CHECKPOINTING_INTERVAL, Duration.ofMillis({plan.interval_ms}));",
        f"    conf.set(CheckpointingOptions.CHECKPOINTING_CONSISTENCY_MODE, CheckpointingMode.{mode});",
        f"    conf.set(CheckpointingOptions.ENABLE_UNALIGNED, {'true' if cp.mode == 'unaligned' else 'false'});",
        f"    conf.set(CheckpointingOptions.MAX_CONCURRENT_CHECKPOINTS, {cp.max_concurrent});",
        f"    conf.set(CheckpointingOptions.MAX_RETAINED_CHECKPOINTS, {cp.retained});",
        f"    conf.set(CheckpointingOptions.CHECKPOINTING_TIMEOUT, Duration.ofSeconds({plan.timeout_s}));",
        '    conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");',
        f"    conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, {restart.attempts});",
        "    conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, "
        f"Duration.ofMillis({max(10, int(restart.delay))}));",
    ])


def java_source(plan: FlinkPlan) -> tuple[str, str]:
    """(class name, Java text) of the job; the name is a hash of the text."""
    vertices = plan.scenario.topology.vertices
    parallelism = "{" + ", ".join(str(v.parallelism) for v in vertices) + "}"
    savepoints = "{" + ", ".join(
        f"{{{s.records}L, {int(s.stop)}L, {int(s.drain)}L, {s.restore}L}}"
        for s in plan.savepoints) + "}"
    body = (_template()
            .replace("%%BUILD%%", _build(plan))
            .replace("%%CONFIG%%", _config(plan))
            .replace("%%SAVEPOINTS%%", savepoints)
            .replace("%%PARALLELISM%%", parallelism)
            .replace("%%TIMEOUT%%", str(plan.timeout_s)))
    name = "OnceflowJob_" + hashlib.blake2b(body.encode(), digest_size=8).hexdigest()
    return name, body.replace("%%CLASS%%", name)
