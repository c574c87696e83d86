#!/usr/bin/env python3
"""Medians of several `bench/run-scenarios.sh` runs, as the Markdown table of docs/benchmarks.md.

    bench/medians.py bench/results/run1 bench/results/run2 bench/results/run3

Each directory holds the JSON reports of one run (S1.json ... S6.json). A figure
is the median over the runs that have it; counts that must be zero (lost,
duplicated, failed) are shown as the largest seen instead, so one bad run shows.
"""

import json
import statistics
import sys
from pathlib import Path


def load(dirs, name):
    reports = []
    for d in dirs:
        path = Path(d) / f"{name}.json"
        if path.exists():
            reports.append(json.loads(path.read_text()))
    return reports


def med(values, digits=2):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    m = statistics.median(values)
    return f"{m:,.{digits}f}"


def worst(values):
    values = [v for v in values if v is not None]
    return f"{max(values):,}" if values else "–"


def table(headers, rows):
    """A Markdown table."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


def latency_cells(latencies, digits):
    """Median p50, p99, p99.9 and max of several runs' latency summaries."""
    latencies = [l or {} for l in latencies]
    return [med([l.get(q) for l in latencies], digits) for q in ("p50", "p99", "p99_9", "max")]


def chat_row(name, reports):
    msgs = [r["messages"] for r in reports]
    srv = [r.get("server") or {} for r in reports]
    return [
        name,
        len(reports),
        med([m["deliveries_per_second"] for m in msgs], 0),
        *latency_cells([r["latency_ms"] for r in reports], 2),
        worst([m["lost"] for m in msgs]),
        worst([m["duplicated"] for m in msgs]),
        worst([r["connections"]["failed"] for r in reports]),
        med([s.get("cpu_percent") for s in srv], 0),
    ]


def main(dirs):
    chat = [(name, load(dirs, name)) for name in ["S1", "S2", "S4", "S6"]]
    table(
        ["scenario", "runs", "deliveries/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms",
         "lost", "duplicated", "failed connections", "server CPU %"],
        [chat_row(name, reports) for name, reports in chat if reports],
    )

    s3 = load(dirs, "S3")
    if s3:
        print()
        srv = [r["server"] for r in s3]
        table(
            ["S3 idle", "runs", "connections ok", "failed", "RSS before KiB", "RSS held KiB",
             "KiB per connection"],
            [[
                f"{s3[0]['settings']['connections']:,} connections",
                len(s3),
                med([r["connections"]["ok"] for r in s3], 0),
                worst([r["connections"]["failed"] for r in s3]),
                med([s["rss_before_kib"] for s in srv], 0),
                med([s["rss_end_kib"] for s in srv], 0),
                med([s["rss_per_connection_kib"] for s in srv]),
            ]],
        )

    s5 = load(dirs, "S5")
    if s5:
        print()
        rows = []
        for i, page in enumerate(s5[0]["pages"]):
            pages = [r["pages"][i] for r in s5]
            rows.append([
                f"`{page['query']}`",
                len(pages),
                med([p["per_second"] for p in pages], 0),
                *latency_cells([p["latency_ms"] for p in pages], 3),
                max(sum(p["errors"].values()) for p in pages),
            ])
        table(["S5 history page", "runs", "pages/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms",
               "errors"], rows)

    s6 = load(dirs, "S6")
    if s6:
        print()
        rec = [r["reconnect"] or {} for r in s6]
        back_s = [r.get("all_back_ms") / 1000 if r.get("all_back_ms") else None for r in rec]
        table(
            ["S6 reconnect storm", "runs", "clients dropped", "back", "all back within s"],
            [[
                f"{s6[0]['settings']['connections']:,} connections",
                len(s6),
                med([r.get("clients") for r in rec], 0),
                med([r.get("back") for r in rec], 0),
                med(back_s),
            ]],
        )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
