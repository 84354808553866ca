"""What a Spark event log says a job did: plan shape and data moved, per job description.

``benchmarks/spark_jobs.py`` runs every job under ``SparkContext.setJobDescription("<job>@<scale>x")`` with the
event log on (``spark.eventLog.*``, uncompressed, not rolled); :func:`summarize` reads that log back and gives,
for each description:

* from the final (adaptive) physical plan of every SQL execution: shuffle exchanges, broadcast exchanges,
  file scans (and which tables they read), cached-table reads, Python evaluation nodes, windows, sort-merge
  and broadcast joins.  A cached relation's plan is counted once, where it is first met;
* from the task metrics: bytes read from files, shuffle bytes written, and ``driver_result_bytes`` -- the
  serialized task results sent to the driver (collect, toPandas, count results and the per-task metric
  updates).  The last one is the driver-collection check: it must not grow with the input.

    .venv/bin/python -m benchmarks.spark_eventlog runs/bench/spark_events   # prints the table of a log folder
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SQL = "org.apache.spark.sql.execution.ui."
PYTHON_NODES = ("ArrowEvalPython", "BatchEvalPython", "MapInPandas", "MapInArrow", "FlatMapGroupsInPandas",
                "FlatMapCoGroupsInPandas", "AggregateInPandas", "WindowInPandas", "ArrowWindowPython")


def event_log_conf(folder: Path) -> dict[str, str]:
    """Spark settings that write an uncompressed, single-file event log into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return {"spark.eventLog.enabled": "true", "spark.eventLog.dir": folder.resolve().as_uri(),
            "spark.eventLog.compress": "false", "spark.eventLog.rolling.enabled": "false"}


def read_events(folder: Path) -> Iterator[dict[str, Any]]:
    """Every event of every (uncompressed) log file under ``folder``."""
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if f.suffix in (".zstd", ".lz4", ".snappy", ".lzf", ".crc"):
            raise ValueError(f"{f} is compressed: write the log with spark.eventLog.compress=false")
        with f.open() as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)


def _table(location: str) -> str:
    m = re.search(r"\[(.*)\]$", location)
    path = (m.group(1) if m else location).split(",")[0].rstrip("/")
    return path.rsplit("/", 1)[-1]


def _signature(node: dict[str, Any]) -> str:
    """What identifies a cached relation across plans: the scans under it (their attribute ids are its own)."""
    leaves: list[str] = []
    todo = list(node.get("children", []))
    while todo:
        n = todo.pop()
        if n["nodeName"].startswith("Scan ") or n["nodeName"] in ("LocalTableScan", "InMemoryTableScan"):
            leaves.append(n["simpleString"])
        todo += n.get("children", [])
    return "\n".join(sorted(leaves))


def _walk(node: dict[str, Any], seen_cached: set[str], counts: Counter, scans: Counter) -> None:
    name = node["nodeName"].strip()
    children = node.get("children", [])
    if name == "Exchange":
        counts["shuffle_exchanges"] += 1
    elif name == "BroadcastExchange":
        counts["broadcast_exchanges"] += 1
    elif name == "ReusedExchange":
        counts["reused_exchanges"] += 1
        children = []  # its plan ran where the exchange was first met
    elif name.startswith("Scan ") and "Location" in node.get("metadata", {}):  # a file scan
        counts["file_scans"] += 1
        scans[_table(node.get("metadata", {}).get("Location", "?"))] += 1
    elif name == "InMemoryTableScan":
        counts["cached_reads"] += 1
        key = _signature(node)  # one cached relation, whichever of its columns this read takes
        if key in seen_cached:
            children = []
        seen_cached.add(key)
    elif name in PYTHON_NODES:
        counts["python_nodes"] += 1
    elif name == "Window":
        counts["windows"] += 1
    elif name == "SortMergeJoin" or name.startswith("SortMergeJoin"):
        counts["sort_merge_joins"] += 1
    elif name.startswith("BroadcastHashJoin") or name.startswith("BroadcastNestedLoopJoin"):
        counts["broadcast_joins"] += 1
    for c in children:
        _walk(c, seen_cached, counts, scans)


def summarize(events: Iterator[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per job description: plan counts over its SQL executions and task metrics over its Spark jobs."""
    plans: dict[int, tuple[str, dict[str, Any]]] = {}
    desc_of_exec: dict[int, str] = {}
    stage_desc: dict[int, str] = {}
    metrics: dict[str, Counter] = defaultdict(Counter)
    for e in events:
        kind = e["Event"]
        if kind == SQL + "SparkListenerSQLExecutionStart":
            desc_of_exec[e["executionId"]] = e.get("description") or ""
            plans[e["executionId"]] = (desc_of_exec[e["executionId"]], e["sparkPlanInfo"])
        elif kind == SQL + "SparkListenerSQLAdaptiveExecutionUpdate" and e["executionId"] in desc_of_exec:
            plans[e["executionId"]] = (desc_of_exec[e["executionId"]], e["sparkPlanInfo"])
        elif kind == "SparkListenerJobStart":
            desc = (e.get("Properties") or {}).get("spark.job.description") or ""
            metrics[desc]["spark_jobs"] += 1
            for s in e["Stage IDs"]:
                stage_desc.setdefault(s, desc)
        elif kind == "SparkListenerTaskEnd" and e.get("Task Metrics"):
            desc = stage_desc.get(e["Stage ID"], "")
            m, c = e["Task Metrics"], metrics[desc]
            c["tasks"] += 1
            c["input_bytes"] += m["Input Metrics"]["Bytes Read"]
            c["input_records"] += m["Input Metrics"]["Records Read"]
            c["shuffle_write_bytes"] += m["Shuffle Write Metrics"]["Shuffle Bytes Written"]
            c["shuffle_write_records"] += m["Shuffle Write Metrics"]["Shuffle Records Written"]
            c["driver_result_bytes"] += m["Result Size"]
            c["max_task_result_bytes"] = max(c["max_task_result_bytes"], m["Result Size"])
            c["spill_bytes"] += m["Disk Bytes Spilled"]
    out: dict[str, dict[str, Any]] = {}
    seen: dict[str, set[str]] = defaultdict(set)
    scans: dict[str, Counter] = defaultdict(Counter)
    counts: dict[str, Counter] = defaultdict(Counter)
    for _, (desc, plan) in sorted(plans.items()):
        counts[desc]["sql_executions"] += 1
        _walk(plan, seen[desc], counts[desc], scans[desc])
    for desc in sorted(set(counts) | set(metrics)):
        out[desc] = {**dict(counts[desc]), **dict(metrics[desc]), "scans_per_table": dict(sorted(scans[desc].items()))}
    return out


COLUMNS = ("sql_executions", "shuffle_exchanges", "broadcast_exchanges", "file_scans", "cached_reads",
           "python_nodes", "windows", "sort_merge_joins", "broadcast_joins", "input_bytes", "shuffle_write_bytes",
           "driver_result_bytes")


def print_table(summary: dict[str, dict[str, Any]], file=sys.stdout) -> None:
    short = {"sql_executions": "sql", "shuffle_exchanges": "xchg", "broadcast_exchanges": "bcast",
             "file_scans": "scans", "cached_reads": "cache", "python_nodes": "py", "windows": "win",
             "sort_merge_joins": "smj", "broadcast_joins": "bhj", "input_bytes": "in MB",
             "shuffle_write_bytes": "shuf MB", "driver_result_bytes": "driver KB"}
    print(f"{'job':<24}" + "".join(f"{short[c]:>10}" for c in COLUMNS), file=file)
    for desc, s in summary.items():
        if not desc:
            continue
        cells = []
        for c in COLUMNS:
            v = s.get(c, 0)
            cells.append(f"{v / 1e6:>10.2f}" if c.endswith("bytes") and c != "driver_result_bytes" else
                         f"{v / 1e3:>10.1f}" if c == "driver_result_bytes" else f"{v:>10}")
        print(f"{desc:<24}" + "".join(cells), file=file)
        print(f"{'':<24}scans: {s['scans_per_table']}", file=file)


if __name__ == "__main__":
    print_table(summarize(read_events(Path(sys.argv[1]))))
