"""Run the gembus benchmarks and record them in bench/results/.

1. guard: time to reject each SECURITY.md §2 attack, in-process, against the time lxml needs to
   parse a valid 1 KB request (the floor any XML service pays).
2. hot path: guard + parse of valid 1 KB and 10 KB requests vs lxml parse + XPath + serialise
   (PERFORMANCE.md §3's floor; budget: guard + parse <= 1 ms at 10 KB).
3. SRV 1967 in process: the cached contract check the gateway makes (target <= 50 us median).
4. end to end: GetPartner and ValidateServiceContract over HTTP through gunicorn (2 workers,
   PostgreSQL when it answers, else SQLite) at 8 concurrent clients vs an lxml
   parse-and-serialise WSGI app on the same gunicorn (target for SRV 1967: >= 0.5x).
5. the gateway: a routed 1 KB call vs calling the same lxml provider directly (targets: added
   median latency <= 1.5 ms; forwarded throughput >= 0.5x the direct throughput).
6. the outbox: 2 gembus worker processes draining 5,000 deliveries to a fast local receiver, vs
   the receiver called directly (target >= 2,000 deliveries/s).
7. roaming authorization: AuthorizeRoaming through gunicorn (2 workers, PostgreSQL) at 16
   clients, every decision recorded with the nonce in one statement, vs the lxml echo on the
   same gunicorn (target >= 1,000/s, p99 <= 30 ms).
8. SDR ingest: SubmitSdrs in batches of 500 through gunicorn, durable with their outbox rows, vs
   the lxml parse-and-serialise app fed the same bodies (target >= 5,000 SDRs/s).
9. Search EVSE: SearchEvse (10 km radius + plug filter) over 1,000,000 EVSEs through gunicorn
   (2 workers, PostgreSQL) at 8 clients vs the lxml echo (targets p50 <= 15 ms, >= 300/s).
10. CLM master-data pull: 100,000 EVSEs from the fake CLM process, through the pull client
   alone (every page validated) and as the whole full pull into PostgreSQL storage, once into
   empty storage and once over the stored set (target for the whole pull: <= 20 s).
11. financial clearing: a netted statement over 10,000,000 SDRs on PostgreSQL (target <= 30 s),
   next to one plain pass over the same rows.

The bulk benches (9-11) run last, and a CHECKPOINT separates every bench from the next.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    authorization_bench,
    clearing_bench,
    clm_pull_bench,
    gateway_bench,
    guard_bench,
    http_bench,
    outbox_bench,
    sdr_bench,
    search_bench,
    validation_bench,
)

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="make bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each HTTP load run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    parser.add_argument("--skip-http", action="store_true", help="only the in-process benchmarks")
    parser.add_argument(
        "--clearing-sdrs",
        type=int,
        default=10_000_000,
        help="SDRs behind the netted clearing statement (0 skips it; the dataset is kept)",
    )
    parser.add_argument(
        "--search-evses",
        type=int,
        default=1_000_000,
        help="EVSEs behind the Search EVSE figures (0 skips it; the dataset is kept)",
    )
    parser.add_argument(
        "--regenerate", action="store_true", help="rebuild the kept datasets even if present"
    )
    args = parser.parse_args()
    report: dict[str, object] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "cores": __import__("os").cpu_count(),
        },
    }
    report["guard"] = guard_bench.run()
    report["srv1967_in_process"] = validation_bench.run()
    if not args.skip_http:
        for name, bench in (
            ("http", lambda: http_bench.run(args.seconds, args.clients)),
            ("gateway", lambda: gateway_bench.run(args.seconds, args.clients)),
            ("outbox", outbox_bench.run),
            ("authorization", lambda: authorization_bench.run(args.seconds)),
            ("sdr_ingest", lambda: sdr_bench.run(max(args.seconds, 8.0))),
        ):
            report[name] = bench()
            settle()
    # The bulk benches last, heaviest last: each leaves the server writing back what it wrote
    # and its caches full of its own data, which the next one would otherwise pay for.
    if args.search_evses and not args.skip_http:
        report["search_evse"] = search_bench.run(
            max(args.seconds, 10.0), args.clients, args.search_evses, args.regenerate
        )
        settle()
    if not args.skip_http:
        report["clm_pull"] = clm_pull_bench.run()
        settle()
    if args.clearing_sdrs:
        report["clearing"] = clearing_bench.run(args.clearing_sdrs, args.regenerate)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nrecorded in {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    return 0


def settle() -> None:
    """Between benches: a CHECKPOINT, so the previous bench's dirty pages are written now and
    not during the next one's measurement (a no-op without PostgreSQL or its rights)."""
    from sqlalchemy import create_engine, text

    from tests.support.databases import postgres_admin_url

    engine = create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("CHECKPOINT"))
    except Exception as exc:  # no server, or not allowed: the benches run unsettled
        print(f"  (no CHECKPOINT between benches: {type(exc).__name__})")
    finally:
        engine.dispose()
    time.sleep(2)


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
    }


if __name__ == "__main__":
    sys.exit(main())
