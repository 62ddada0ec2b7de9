"""Master-data pull of 100,000 EVSEs from a local fake CLM into PostgreSQL storage (issue 6:
the whole pull <= 20 s).

The fake CLM (:mod:`tests.fakes.clm_data`, spyne, its own process) serves N generated EVSEs
in pages of 1,000. It renders every record before it listens (``--prerender``) and serves
the kept text, as a CLM serves stored records: it shares the two cores with gembus, and a
pull should measure gembus and the wire, not the fake's generator. Two figures, from the
same fake in the same run:

* **client only**: :class:`adapters.clm_client.EvseMasterDataClient` walks every page,
  validating each against the canonical XSD, and touches every record's evseId; nothing is
  stored. This is what the CLM and the wire cost, the floor of any pull.
* **into storage**: ``gembus evse pull`` as the CLI runs it (:class:`domain.charging.pull.
  Puller`, found through the marketplace registry of a fresh PostgreSQL database): every
  record read into the domain, decided by the upload rules and stored (COPY + merge per
  page), the operator's set replaced in one transaction, the run recorded. Once into empty
  storage (the first pull) and once more over the stored set (every record an update).

Reported: wall time, the gembus process's CPU time (the pull's threads; the rest is the
fake serialising its pages and PostgreSQL), records per second, the ratio to the 20 s target.

``python -c "from bench.clm_pull_bench import run; run()"`` (or ``run(evses=10_000)``).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text

from adapters.clm_client import EvseMasterDataClient, PullProgress
from bench.http_bench import demo_env
from domain.identifiers import OperatorId
from gembus.bootstrap import build
from gembus.settings import Settings
from tests.fakes.clm_data import ClmDataProcess, start_clm_data_process
from tests.support.databases import fresh_postgres_database
from tests.support.marketplace import partner, published_clm

EV = "{urn:gembus:evse:v1}"
TARGET_S = 20.0


def run(evses: int = 100_000) -> dict[str, object]:
    print(f"\n== CLM master-data pull: {evses:,} EVSEs from the fake CLM, into PostgreSQL ==")
    with start_clm_data_process("DE*ICE", evses=evses, startup_timeout=180, prerender=True) as clm:
        client = _client_only(clm, evses)
        with fresh_postgres_database() as url:
            first, again = _into_storage(clm, url, evses)
    result = {"evses": evses, "target_s": TARGET_S, "client_only": client}
    result |= {"into_storage": first, "into_storage_again": again}
    print(
        f"  client only     {client['wall_s']:6.2f} s wall ({client['evses_per_s']:,}/s), "
        f"client CPU {client['cpu_s']:.2f} s, {client['pages']} pages"
    )
    for label, figures in (("into storage", first), ("stored again", again)):
        print(
            f"  {label:<15} {figures['wall_s']:6.2f} s wall ({figures['evses_per_s']:,}/s), "
            f"gembus CPU {figures['cpu_s']:.2f} s, {figures['summary']}; "
            f"{figures['ratio_to_target']:.2f}x the {TARGET_S:.0f} s target"
        )
    return result


def _client_only(clm: ClmDataProcess, evses: int) -> dict[str, Any]:
    client = EvseMasterDataClient(clm.masterdata_url, timeout_s=60)
    pages: list[PullProgress] = []
    wall, cpu = time.perf_counter(), time.process_time()
    pull = client.full_pull(on_progress=pages.append)
    ids = sum(1 for record in pull if record.findtext(f"{EV}evseId"))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert pull.complete and ids == evses, (ids, evses)
    return {
        "pages": len(pages),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "evses_per_s": round(evses / wall),
        "ratio_to_target": round(wall / TARGET_S, 3),
    }


def _into_storage(clm: ClmDataProcess, url: str, evses: int) -> tuple[dict[str, Any], ...]:
    env = demo_env(url)  # migrated, demo partners: ice-charging owns DE*ICE
    gembus = build(
        Settings(
            database_url=url,
            secret_key=env["GEMBUS_SECRET_KEY"],
            log_level="WARNING",
            clm_pull_timeout_s=60.0,
        )
    )
    published_clm(gembus.uow, partner(gembus.uow, "ice-charging"), clm.base_url)
    with gembus.engine.begin() as connection:  # the demo's own DE*ICE EVSEs: empty storage
        connection.execute(text("TRUNCATE evse, evse_document, evse_status, evse_operator"))
    figures = tuple(_timed_pull(gembus, evses) for _ in range(2))
    gembus.engine.dispose()
    return figures


def _timed_pull(gembus: Any, evses: int) -> dict[str, Any]:
    puller = gembus.puller()
    wall, cpu = time.perf_counter(), time.process_time()
    run = puller.pull_master_data(OperatorId.parse("DE*ICE"), full=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert run.ok and run.stored == evses, (run.summary(), run.rejections[:3])
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "evses_per_s": round(evses / wall),
        "summary": f"{run.stored:,} stored, {run.deleted} deleted",
        "ratio_to_target": round(wall / TARGET_S, 3),
    }


if __name__ == "__main__":
    run()
