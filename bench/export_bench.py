"""Benchmark of the bulk export (``consent-connector export --all``): rows per second and peak
memory of ``connector.exports.bulk.write_bulk`` from a synthetic source, no CRM, no network.

    .venv/bin/python bench/export_bench.py                       # 100,000 rows
    .venv/bin/python bench/export_bench.py --rows 10000 --rows 100000 --rows 300000

Each size runs in a fresh child process, twice: once plain, for the time and the process's
peak resident memory (``resource.getrusage`` ru_maxrss, growth over the same process just
before the export), and once under ``tracemalloc`` for the peak of Python's own allocations
during the export (tracemalloc slows Python down, so that run's time is not reported).

Targets (figures, not asserts; see bench/README.md): 100,000 rows in under 60 s, and memory
flat: the traced peak must not grow with the number of rows (within 2x from 10,000 to
300,000 rows) and stays under 50 MB.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_SECONDS_100K = 60.0
TARGET_TRACED_MB = 50.0


def synthetic_source(persons: int):
    """``persons`` persons, each with a realistic mix of consent rows (CRM keys)."""
    from connector.crm.types import ConsentRecord, Person

    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for person_id in range(1, persons + 1):
        registered = start + timedelta(minutes=person_id)
        rows = [ConsentRecord("STORE", "WITHDRAWN" if person_id % 17 == 0 else "61F",
                              "WEBFORM" if person_id % 5 == 0 else "USER",
                              "Recorded by consent-connector for a new person: Sales and "
                              "service on Legitimate interest, data source Registered by our "
                              "staff.", registered, 9, registered, 9)]
        if person_id % 3 == 0:
            rows.append(ConsentRecord("EMARKETING", "61A", "WEBFORM",
                                      "Consent given by the person on their personal page "
                                      "(notice 2026-01); link MTNFMNqH3MQN",
                                      registered, 9, registered + timedelta(days=3), 9))
        yield Person(id=person_id, first_name=f"First{person_id}", last_name="Lastname",
                     email=f"person{person_id}@example.org", language=None,
                     company_name=f"Company {person_id % 997} AS", created_by_associate_id=7,
                     consents=tuple(rows)), tuple(rows)


def child(rows: int, trace: bool) -> dict:
    """Export ``rows`` rows (2 configured purposes per person) and measure this process."""
    from connector.config import load_config
    from connector.exports.bulk import write_bulk
    from connector.files import atomic_output

    config = load_config(ROOT / "config" / "purposes.yaml")
    persons = rows // len(config.purposes)
    with tempfile.TemporaryDirectory(prefix="export-bench-") as folder:
        path = Path(folder) / "consents.xlsx"
        usage_before = resource.getrusage(resource.RUSAGE_SELF)
        rss_before = usage_before.ru_maxrss
        if trace:
            tracemalloc.start()
        started = time.perf_counter()
        with atomic_output(path) as stream:
            summary = write_bulk(stream, synthetic_source(persons), config, exported_by="bench")
        seconds = time.perf_counter() - started
        traced_peak = tracemalloc.get_traced_memory()[1] if trace else None
        usage_after = resource.getrusage(resource.RUSAGE_SELF)
        rss_after = usage_after.ru_maxrss
        cpu = (usage_after.ru_utime + usage_after.ru_stime
               - usage_before.ru_utime - usage_before.ru_stime)
        return {"rows": summary.rows, "persons": summary.persons, "seconds": seconds,
                "cpu_seconds": cpu,
                "rss_before_mb": rss_before / 1024,
                "rss_growth_mb": (rss_after - rss_before) / 1024,
                "traced_peak_mb": traced_peak / 2**20 if trace else None,
                "file_mb": path.stat().st_size / 2**20}


def run_child(rows: int, trace: bool) -> dict:
    command = [sys.executable, __file__, "--child", str(rows)] + (["--trace"] if trace else [])
    process = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(process.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append",
                        help="rows to export (repeatable); default 100000")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.trace)))
        return

    sizes = args.rows or [100_000]
    print(f"bulk export benchmark — Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print(f"{'rows':>9} {'persons':>8} {'seconds':>8} {'CPU s':>7} {'rows/s':>8} "
          f"{'RSS base MB':>11} "
          f"{'RSS growth MB':>13} {'traced peak MB':>14} {'file MB':>8}")
    results = []
    for rows in sizes:
        plain, traced = run_child(rows, trace=False), run_child(rows, trace=True)
        results.append((plain, traced))
        print(f"{plain['rows']:>9,} {plain['persons']:>8,} {plain['seconds']:>8.1f} "
              f"{plain['cpu_seconds']:>7.1f} "
              f"{plain['rows'] / plain['seconds']:>8,.0f} {plain['rss_before_mb']:>11.1f} "
              f"{plain['rss_growth_mb']:>13.1f} {traced['traced_peak_mb']:>14.1f} "
              f"{plain['file_mb']:>8.1f}")

    print()
    for plain, traced in results:
        if plain["rows"] == 100_000:
            verdict = "meets" if plain["seconds"] <= TARGET_SECONDS_100K else "MISSES"
            print(f"100,000 rows in {plain['seconds']:.1f} s ({plain['cpu_seconds']:.1f} s of CPU):"
                  f" {verdict} the target of {TARGET_SECONDS_100K:.0f} s")
    print(f"load average now: {', '.join(f'{value:.1f}' for value in os.getloadavg())} "
          f"(other work on the machine slows the wall time, not the CPU time)")
    peaks = [traced["traced_peak_mb"] for _, traced in results]
    worst = max(peaks)
    print(f"traced peak {worst:.1f} MB at most: "
          f"{'meets' if worst <= TARGET_TRACED_MB else 'MISSES'} the target of "
          f"{TARGET_TRACED_MB:.0f} MB")
    if len(peaks) > 1:
        ratio = max(peaks) / min(peaks)
        print(f"traced peak grows {ratio:.2f}x from {results[0][0]['rows']:,} to "
              f"{results[-1][0]['rows']:,} rows: {'flat' if ratio <= 2 else 'NOT flat'}")


if __name__ == "__main__":
    main()
