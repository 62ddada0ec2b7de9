"""SDR forwarding end to end: operators and EVSPs over zeep (every message checked against the
canonical XSD), a real gunicorn, `gembus worker` processes delivering to a fake EVSP SDR
receiver running as its own process (tests/fakes/evsp_sdr.py), and `gembus sdr` commands.

Two EVSPs take part: The New Motion (NL-TNM, the demo EVSP, with a published sdr_receiver
service) and a second EVSP registered here (DE*SDE); ICE Charging (DE*ICE) submits for both.
Reliability is reported in SECURITY.md §7's terms (lost, duplicated effects, duplicate
deliveries) on the terminal (``-s``) and in the assertion messages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import zeep.exceptions
from sqlalchemy import Engine, text

from domain.identifiers import emaid_check_digit
from persistence.engine import make_engine
from tests.conftest import REPO
from tests.e2e.conftest import LiveServer, free_port, gembus_cli
from tests.fakes.evsp_sdr import ReceiverProcess, start_receiver_process, tally
from tests.fakes.subscriber import endpoint_url, start_subscriber_process
from tests.fakes.subscriber import tally as notify_tally
from tests.support.sdr import fields
from tests.support.zeep_validation import client

pytestmark = pytest.mark.e2e

ICE = ("ice-charging", "demo-operator-password")
TNM = ("tnm-mobility", "demo-evsp-password")
ADMIN = ("gembus-admin", "demo-admin-password")
OTHER = ("sdr-e2e-evsp", "sdr-e2e-evsp-password")
OTHER_CONTRACT = f"DE-SDE-C00000001-{emaid_check_digit('DESDEC00000001')}"


@dataclass
class Clearing:
    """What the module sets up: the receiver, when TNM sessions may start, the database."""

    receiver: ReceiverProcess
    port: int
    log: Path
    tnm_start: datetime
    database: Engine

    def restart_receiver(self, **options: Any) -> None:
        self.receiver.stop()
        self.receiver = start_receiver_process(self.log, port=self.port, **options)


@pytest.fixture(scope="module")
def clearing(
    live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Clearing]:
    base = live_server.base_url
    admin = client(base, "marketplace", *ADMIN)
    admin.RegisterPartner(
        partnerId=OTHER[0],
        password=OTHER[1],
        data={
            "legalName": "SDR e2e EVSP",
            "roles": {"role": ["Evsp"]},
            "providerIds": {"providerId": ["DE*SDE"]},
            "contact": {"email": "ops@sdr-e2e.example"},
        },
    )
    ice = client(base, "marketplace", *ICE)
    ice.CreateRoamingAgreement(
        operatorId="DE*ICE",
        providerId="DE*SDE",
        validity={"validFrom": datetime(2020, 1, 1, tzinfo=UTC)},
    )
    demo = ice.ListRoamingAgreements(providerId="NL-TNM").roamingAgreement
    tnm_start = max(a.validity.validFrom for a in demo) + timedelta(seconds=1)
    log = tmp_path_factory.mktemp("evsp") / "receiver.jsonl"
    port = free_port()
    receiver = start_receiver_process(log, port=port)
    database = make_engine(live_server.env["GEMBUS_DATABASE_URL"])
    setup = Clearing(receiver, port, log, tnm_start, database)
    try:  # from here on the receiver is stopped whatever fails
        tnm = client(base, "marketplace", *TNM)
        service = tnm.RegisterService(
            data={
                "name": "TNM SDR receiver",
                "category": "ClearingHouse",
                "serviceInterface": {"family": "sdr_receiver", "version": 1},
                "endpointUrl": receiver.url,
            }
        )
        tnm.ChangeServiceLifecycle(serviceId=service.serviceId, targetState="published")
        yield setup
    finally:
        setup.receiver.stop()
        database.dispose()


def operator(live_server: LiveServer) -> Any:
    return client(live_server.base_url, "sdr", *ICE)


def evsp(live_server: LiveServer, who: tuple[str, str] = TNM) -> Any:
    return client(live_server.base_url, "sdr", *who)


def session(clearing: Clearing) -> datetime:
    """A session start the demo ICE-TNM agreement covers (it began when the server did)."""
    return max(clearing.tnm_start, datetime.now(UTC) - timedelta(hours=1))


def pending_ids(live_server: LiveServer, who: tuple[str, str]) -> set[str]:
    answer = evsp(live_server, who).GetPendingSdrs(paging={"page": 1, "pageSize": 1000})
    return {e.sdr.sdrId for e in answer.sdrEntry}


def submit(live_server: LiveServer, records: list[dict[str, object]]) -> list[tuple[str, str]]:
    answer = operator(live_server).SubmitSdrs(operatorId="DE*ICE", sdrs={"sdr": records})
    return [(r.sdrId, r.result) for r in answer.sdrResult]


def set_mode(live_server: LiveServer, mode: str) -> None:
    out = gembus_cli(
        live_server.env, "sdr", "delivery", "set", "--evsp", "tnm-mobility", "--mode", mode
    )
    assert out.startswith(f"tnm-mobility: {mode}"), out


def worker(live_server: LiveServer) -> subprocess.Popen[str]:
    env = {
        **live_server.env,
        "GEMBUS_OUTBOX_BACKOFF_BASE_S": "0.3",
        "GEMBUS_OUTBOX_BACKOFF_CAP_S": "1.5",
        "GEMBUS_OUTBOX_MAX_ATTEMPTS": "100",
        "GEMBUS_OUTBOX_POLL_S": "0.1",
        "GEMBUS_OUTBOX_TIMEOUT_S": "5",
        "GEMBUS_LOG_LEVEL": "ERROR",
    }
    command = [
        sys.executable,
        "-m",
        "gembus.cli",
        "worker",
        "--concurrency",
        "2",
        "--sdr-batches-every",
        "0",
    ]
    return subprocess.Popen(
        command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    return output


def wait(what: str, done: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def outbox(clearing: Clearing, like: str) -> list[tuple[str, str, int, str | None]]:
    """(key, status, attempts, error) of the sdr_receiver rows whose payload mentions ``like``."""
    with clearing.database.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT idempotency_key, status, attempts, last_error FROM outbox "
                "WHERE kind = 'sdr_receiver' AND payload LIKE :like ORDER BY id"
            ),
            {"like": f"%{like}%"},
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]


def received(clearing: Clearing, prefix: str) -> list[dict[str, Any]]:
    return [r for r in clearing.receiver.records() if r["sdrId"].startswith(prefix)]


# ------------------------------------------------------------------------------ the batch


def test_a_batch_with_good_implausible_duplicate_and_revised_sdrs(
    live_server: LiveServer, clearing: Clearing
) -> None:
    set_mode(live_server, "pull")
    start = session(clearing)
    good = fields("DEICEE2EA000001", start=start, minutes=2)
    results = submit(live_server, [
        good,
        fields("DEICEE2EA000002", start=start, minutes=2, contract=OTHER_CONTRACT),
        fields("DEICEE2EA000003", start=start, minutes=2, currency="XYZ"),
        fields("DEICEE2EA000004", start=start, minutes=2, evse="DE*BMW*E1*1"),
        good,
    ])  # fmt: skip
    assert results == [
        ("DEICEE2EA000001", "accepted"),
        ("DEICEE2EA000002", "accepted"),
        ("DEICEE2EA000003", "implausible"),
        ("DEICEE2EA000004", "implausible"),
        ("DEICEE2EA000001", "duplicate"),
    ]
    tnm = evsp(live_server)
    declined = tnm.ConfirmSdrs(
        providerId="NL-TNM",
        confirmations={"confirmation": [{
            "sdrId": "DEICEE2EA000001", "version": 1, "decision": "declined",
            "reasonCode": "PRICE_DISPUTE", "reason": "the agreed price is 0.30",
        }]},
    )  # fmt: skip
    assert [(r.result, r.sdrStatus) for r in declined] == [("declined", "declined")]
    checked = operator(live_server).CheckSdrs(statuses={"status": ["declined"]})
    mine = [e for e in checked.sdrEntry if e.sdr.sdrId == "DEICEE2EA000001"]
    assert mine[0].decline.reasonCode == "PRICE_DISPUTE" and mine[0].providerId == "NL-TNM"
    revised = fields("DEICEE2EA000001", start=start, minutes=2, status="revised", meter_id="FIXED")
    assert submit(live_server, [revised]) == [("DEICEE2EA000001", "revised")]
    everything = tnm.GetPendingSdrs(paging={"pageSize": 1000}).sdrEntry
    pending = [e for e in everything if e.sdr.sdrId == "DEICEE2EA000001"]
    assert [(e.version, e.sdr.status, e.sdr.meterId) for e in pending] == [(2, "revised", "FIXED")]
    approved = tnm.ConfirmSdrs(
        providerId="NL-TNM",
        confirmations={
            "confirmation": [{"sdrId": "DEICEE2EA000001", "version": 2, "decision": "approved"}]
        },
    )
    assert approved[0].result == "approved"  # zeep unwraps the only child: the results


def test_each_side_sees_only_its_own_sdrs(live_server: LiveServer, clearing: Clearing) -> None:
    start = session(clearing)
    submit(live_server, [
        fields("DEICEE2EB000001", start=start, minutes=2),
        fields("DEICEE2EB000002", start=start, minutes=2, contract=OTHER_CONTRACT),
    ])  # fmt: skip
    tnm_ids, other_ids = pending_ids(live_server, TNM), pending_ids(live_server, OTHER)
    assert "DEICEE2EB000001" in tnm_ids and "DEICEE2EB000002" not in tnm_ids
    assert "DEICEE2EB000002" in other_ids and "DEICEE2EB000001" not in other_ids
    refused = evsp(live_server, OTHER).ConfirmSdrs(
        providerId="DE*SDE",
        confirmations={"confirmation": [{"sdrId": "DEICEE2EB000001", "decision": "approved"}]},
    )
    assert refused[0].result == "notFound"
    with pytest.raises(zeep.exceptions.Fault) as fault:
        evsp(live_server, OTHER).GetPendingSdrs(providerId="NL-TNM")
    assert "NotAuthorized" in str(fault.value.code) or "NotAuthorized" in str(fault.value.detail)
    bmw = client(live_server.base_url, "sdr", "bmw-emobility", "demo-evsp2-password")
    seen_by_bmw = [e.sdr.sdrId for e in bmw.CheckSdrs(paging={"pageSize": 1000}).sdrEntry]
    assert not [i for i in seen_by_bmw if i.startswith("DEICE")]  # an operator, not of these
    with pytest.raises(zeep.exceptions.Fault):
        bmw.SubmitSdrs(
            operatorId="DE*ICE", sdrs={"sdr": [fields("DEICEE2EB000009", start=start, minutes=2)]}
        )


# ------------------------------------------------------------------------------ delivery


def test_push_with_the_evsp_down_for_a_while_delivers_each_sdr_once(
    live_server: LiveServer, clearing: Clearing, tmp_path: Path
) -> None:
    set_mode(live_server, "push")
    subscriber = start_subscriber_process(tmp_path / "notify.jsonl")
    tnm_market = client(live_server.base_url, "marketplace", *TNM)
    subscription = tnm_market.Subscribe(
        topic="SdrAvailable", endpointUrl=endpoint_url(subscriber.base_url)
    )
    clearing.receiver.kill()  # the EVSP is down
    start, expected = session(clearing), []
    try:
        for batch in range(3):
            ids = [f"DEICEE2EC{batch}{n:05d}" for n in range(40)]
            results = submit(live_server, [fields(i, start=start, minutes=2) for i in ids])
            assert {r for _, r in results} == {"accepted"}
            expected += [(i, 1) for i in ids]
        process = worker(live_server)
        try:
            wait(
                "2 failed attempts",
                lambda: min(a for _, _, a, _ in outbox(clearing, "DEICEE2EC")) >= 2,
            )
            rows = outbox(clearing, "DEICEE2EC")
            assert len(rows) == 3 and all(e and e.startswith("transport:") for _, _, _, e in rows)
            clearing.restart_receiver(temporary={"DEICEE2EC100007"})
            wait("delivery", lambda: {s for _, s, _, _ in outbox(clearing, "DEICEE2EC")} == {"delivered"}
                 and len(received(clearing, "DEICEE2EC")) >= 121)  # fmt: skip
            wait("notifications", lambda: len(subscriber.records()) >= 120)
        finally:
            output = stop(process)
    finally:
        subscriber.stop()
        tnm_market.Unsubscribe(subscriptionId=subscription.subscriptionId)
    records = received(clearing, "DEICEE2EC")
    report = tally(records, expected)
    attempts = max(a for _, _, a, _ in outbox(clearing, "DEICEE2EC"))
    print(
        f"\nEVSP down: 120 SDRs in 3 batches delivered after up to {attempts} attempts; lost "
        f"{report.lost}, duplicated effects {report.duplicated_effects} of 120, duplicate "
        f"deliveries {report.duplicate_deliveries}"
    )
    assert (report.lost, report.duplicated_effects) == (0, 0), report
    assert all(r["valid"] for r in records) and {r["schedule"] for r in records} == {"immediate"}
    resent = [k for k, _, _, _ in outbox(clearing, "DEICEE2EC100007") if ".r1" in k]
    assert len(resent) == 1  # the TEMPORARY_FAILURE went again on its own
    notified = notify_tally(subscriber.records(), [r["eventId"] for r in subscriber.records()])
    assert notified.duplicated_effects == 0 and len(subscriber.records()) >= 120
    assert "delivered" in output


def test_daily_batches_go_once_their_day_is_over(
    live_server: LiveServer, clearing: Clearing
) -> None:
    set_mode(live_server, "daily")
    start = session(clearing)
    ids = [f"DEICEE2ED00000{n}" for n in range(5)]
    submit(live_server, [fields(i, start=start, minutes=2) for i in ids])
    assert outbox(clearing, "DEICEE2ED") == []
    today = gembus_cli(live_server.env, "sdr", "deliver-batches")
    assert "0 batches, 0 SDRs queued" in today, today
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    queued = gembus_cli(live_server.env, "sdr", "deliver-batches", "--as-of", tomorrow)
    assert "-> tnm-mobility daily" in queued and "0 batches" not in queued, queued
    again = gembus_cli(live_server.env, "sdr", "deliver-batches", "--as-of", tomorrow)
    assert "0 batches, 0 SDRs queued" in again, again
    process = worker(live_server)
    try:
        wait(
            "the batch",
            lambda: [s for _, s, _, _ in outbox(clearing, "DEICEE2ED")] == ["delivered"],
        )
    finally:
        stop(process)
    records = received(clearing, "DEICEE2ED")
    assert sorted(r["sdrId"] for r in records) == ids
    assert {(r["result"], r["schedule"]) for r in records} == {("received", "daily")}


def test_pull_then_confirm(live_server: LiveServer, clearing: Clearing) -> None:
    set_mode(live_server, "pull")
    start = session(clearing)
    ids = [f"DEICEE2EE00000{n}" for n in range(3)]
    submit(live_server, [fields(i, start=start, minutes=2) for i in ids])
    assert outbox(clearing, "DEICEE2EE") == []
    tnm = evsp(live_server)
    first = tnm.GetPendingSdrs(
        providerId="NL-TNM", operatorId="DE*ICE", paging={"page": 1, "pageSize": 1000}
    )
    pulled = [e for e in first.sdrEntry if e.sdr.sdrId in ids]
    assert [e.sdr.status for e in pulled] == ["accepted"] * 3
    assert set(ids) <= pending_ids(live_server, TNM)  # at least once: pending until confirmed
    confirmed = tnm.ConfirmSdrs(
        providerId="NL-TNM",
        confirmations={"confirmation": [
            {"sdrId": ids[0], "version": 1, "decision": "approved"},
            {"sdrId": ids[1], "decision": "declined", "reasonCode": "UNKNOWN_CONTRACT"},
            {"sdrId": ids[2], "decision": "declined"},
        ]},
    )  # fmt: skip
    assert [r.result for r in confirmed] == ["approved", "declined", "missingReason"]
    left = pending_ids(live_server, TNM)
    assert ids[2] in left and not ({ids[0], ids[1]} & left)
    statuses = {
        e.sdr.sdrId: e.sdr.status
        for e in operator(live_server).CheckSdrs(sdrIds={"sdrId": ids}).sdrEntry
    }
    assert statuses == {ids[0]: "approved", ids[1]: "declined", ids[2]: "accepted"}


def test_delivery_settings_are_listed(live_server: LiveServer, clearing: Clearing) -> None:
    set_mode(live_server, "weekly")
    listed = gembus_cli(live_server.env, "sdr", "delivery", "list")
    assert "tnm-mobility" in listed and "weekly" in listed and clearing.receiver.url in listed
    set_mode(live_server, "pull")


# ------------------------------------------------------------------------------ SECURITY.md R1


def _gunicorn_workers(live_server: LiveServer) -> list[int]:
    """PIDs of the live server's gunicorn workers: the processes holding its listening socket
    whose parent holds it too (the master), found in /proc (no psutil needed)."""
    port = int(live_server.base_url.rsplit(":", 1)[1])
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # LISTEN
            inodes.add(f"socket:[{fields[9]}]")
    holders: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if fds & inodes:
            holders[int(proc.name)] = ppid
    return [pid for pid, ppid in holders.items() if ppid in holders]


def test_workers_killed_mid_request_lose_and_duplicate_nothing(
    live_server: LiveServer, clearing: Clearing
) -> None:
    """R1: batches posted while gunicorn workers are SIGKILLed; the client retries a batch
    until it is answered. Every record ends up stored once, and a retry of a batch whose
    answer was lost is answered duplicate, never stored twice."""
    import random
    import signal
    import threading

    import requests
    from lxml import etree

    from bus.contracts import all_contracts
    from tests.support.sdr import SUBMIT_ACTION, record, submit_body
    from tests.support.soap import envelope, wsse_header

    set_mode(live_server, "pull")
    start, schema = session(clearing), all_contracts()["sdr"].schema
    batches = [[f"DEICEE2EK{b:02d}{n:04d}" for n in range(200)] for b in range(30)]
    stop, killed = threading.Event(), [0]

    def killer() -> None:
        while not stop.wait(random.uniform(0.2, 0.8)):
            workers = _gunicorn_workers(live_server)
            if workers:
                os.kill(random.choice(workers), signal.SIGKILL)
                killed[0] += 1

    results: dict[str, str] = {}
    retries = 0
    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        for ids in batches:
            body = submit_body([record(i, start=start, minutes=2) for i in ids])
            while True:
                try:
                    answer = requests.post(
                        f"{live_server.base_url}/services/sdr",
                        data=envelope(body, wsse_header(*ICE)),
                        headers={"Content-Type": "text/xml; charset=utf-8",
                                 "SOAPAction": f'"{SUBMIT_ACTION}"'},
                        timeout=30,
                    )  # fmt: skip
                except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                    # killed before or while answering: the operator resends the same batch
                    retries += 1
                    continue
                child = etree.fromstring(answer.content).find(".//{*}Body")[0]  # type: ignore[index]
                if answer.status_code != 200:
                    retries += 1
                    time.sleep(0.2)
                    continue
                assert schema.validate(child), schema.error_log
                for r in child.iterfind("{urn:gembus:sdr:v1}sdrResult"):
                    results[r.findtext("{urn:gembus:sdr:v1}sdrId") or ""] = (
                        r.findtext("{urn:gembus:sdr:v1}result") or ""
                    )
                break
    finally:
        stop.set()
        thread.join(5)
    wanted = [i for ids in batches for i in ids]
    with clearing.database.connect() as connection:
        stored = connection.execute(
            text("SELECT sdr_id, count(*) FROM sdr WHERE sdr_id LIKE 'DEICEE2EK%' GROUP BY 1")
        ).all()
    counts = {sdr_id: n for sdr_id, n in stored}
    lost = [i for i in wanted if i not in counts]
    duplicated = [i for i, n in counts.items() if n > 1]
    print(
        f"\nR1: N = {len(wanted)} SDRs sent in {len(batches)} batches, {len(results)} acked, "
        f"lost {len(lost)}, duplicated {len(duplicated)} of {len(wanted)}, client retries "
        f"{retries}, workers killed {killed[0]}"
    )
    assert (len(lost), len(duplicated)) == (0, 0)
    assert set(results) == set(wanted) and set(results.values()) <= {"accepted", "duplicate"}
    assert killed[0] > 0
