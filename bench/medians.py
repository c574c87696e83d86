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


def chat_row(name, reports):
    lat = [r["latency_ms"] or {} for r in reports]
    msgs = [r["messages"] for r in reports]
    srv = [r.get("server") or {} for r in reports]
    return (
        f"| {name} | {len(reports)} | {med([m['deliveries_per_second'] for m in msgs], 0)} "
        f"| {med([l.get('p50') for l in lat])} | {med([l.get('p99') for l in lat])} "
        f"| {med([l.get('p99_9') for l in lat])} | {med([l.get('max') for l in lat])} "
        f"| {worst([m['lost'] for m in msgs])} | {worst([m['duplicated'] for m in msgs])} "
        f"| {worst([r['connections']['failed'] for r in reports])} "
        f"| {med([s.get('cpu_percent') for s in srv], 0)} |"
    )


def main(dirs):
    print("| scenario | runs | deliveries/s | p50 ms | p99 ms | p99.9 ms | max ms | lost | duplicated | failed connections | server CPU % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in ["S1", "S2", "S4", "S6"]:
        reports = load(dirs, name)
        if reports:
            print(chat_row(name, reports))

    s3 = load(dirs, "S3")
    if s3:
        print()
        print("| S3 idle | runs | connections ok | failed | RSS before KiB | RSS held KiB | KiB per connection |")
        print("|---|---|---|---|---|---|---|")
        srv = [r["server"] for r in s3]
        print(
            f"| {s3[0]['settings']['connections']:,} connections | {len(s3)} "
            f"| {med([r['connections']['ok'] for r in s3], 0)} | {worst([r['connections']['failed'] for r in s3])} "
            f"| {med([s['rss_before_kib'] for s in srv], 0)} | {med([s['rss_end_kib'] for s in srv], 0)} "
            f"| {med([s['rss_per_connection_kib'] for s in srv])} |"
        )

    s5 = load(dirs, "S5")
    if s5:
        print()
        print("| S5 history page | runs | pages/s | p50 ms | p99 ms | p99.9 ms | max ms | errors |")
        print("|---|---|---|---|---|---|---|---|")
        for i, page in enumerate(s5[0]["pages"]):
            pages = [r["pages"][i] for r in s5]
            lat = [p["latency_ms"] or {} for p in pages]
            errors = max(sum(p["errors"].values()) for p in pages)
            print(
                f"| `{page['query']}` | {len(pages)} | {med([p['per_second'] for p in pages], 0)} "
                f"| {med([l.get('p50') for l in lat], 3)} | {med([l.get('p99') for l in lat], 3)} "
                f"| {med([l.get('p99_9') for l in lat], 3)} | {med([l.get('max') for l in lat], 3)} | {errors} |"
            )

    s6 = load(dirs, "S6")
    if s6:
        print()
        print("| S6 reconnect storm | runs | clients dropped | back | all back within s |")
        print("|---|---|---|---|---|")
        rec = [r["reconnect"] or {} for r in s6]
        back_s = [r.get("all_back_ms") / 1000 if r.get("all_back_ms") else None for r in rec]
        print(
            f"| {s6[0]['settings']['connections']:,} connections | {len(s6)} "
            f"| {med([r.get('clients') for r in rec], 0)} | {med([r.get('back') for r in rec], 0)} | {med(back_s)} |"
        )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
