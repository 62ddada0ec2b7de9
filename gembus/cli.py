"""The ``gembus`` command: serve, worker, db, demo, partner, gateway, clearing, outbox, events,
evse.

Every command and group has ``--help``. Commands that change data run one use case in one
unit of work, exactly like a SOAP request would, so the same rules apply.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import click

from gembus.settings import PROJECT_ROOT, Settings

SNIPPET = """\
.venv/bin/python - <<'PY'
from zeep import Client
from zeep.wsse.username import UsernameToken
client = Client("{base}/services/marketplace?wsdl",
                wsse=UsernameToken("gembus-admin", "demo-admin-password", use_digest=True))
print(client.service.GetPartner(partnerId="ice-charging"))
PY"""


def _gembus() -> Any:
    from gembus.bootstrap import build

    return build()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gembus")
def main() -> None:
    """gembus: the Green eMotion electromobility marketplace as a SOAP/WSDL service bus.

    Settings come from GEMBUS_* environment variables (see the README).
    """


@main.command()
@click.option(
    "--bind", default=None, help="host:port to listen on (default GEMBUS_BIND or 127.0.0.1:8000)"
)
@click.option(
    "--workers", type=int, default=None, help="gunicorn worker processes (default GEMBUS_WORKERS)"
)
def serve(bind: str | None, workers: int | None) -> None:
    """Start gunicorn with gembus's WSGI app and print where everything is."""
    settings = Settings.from_environ()
    bind = bind or os.environ.get("GEMBUS_BIND") or settings.bind
    base = settings.public_url.rstrip("/") or f"http://{bind}"
    click.echo(f"gembus service index: {base}/   (JSON: {base}/?format=json)")
    click.echo(f"health: {base}/health   metrics: {base}/metrics")
    click.echo(
        "demo partners (after `gembus demo load`): gembus-admin / demo-admin-password, "
        "ice-charging / demo-operator-password, tnm-mobility / demo-evsp-password"
    )
    click.echo("try it (WS-Security UsernameToken, PasswordDigest):\n" + SNIPPET.format(base=base))
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or "gunicorn"
    args = [gunicorn, "-c", str(PROJECT_ROOT / "gembus" / "gunicorn_conf.py"), "--bind", bind]
    if workers:
        args += ["--workers", str(workers)]
    sys.stdout.flush()
    os.execv(gunicorn, [*args, "gembus.wsgi:app"])  # noqa: S606 - replaces this process by design


@main.command()
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="relay threads in this process (SQLite: always 1)",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="rows claimed per transaction",
)
@click.option("--once", is_flag=True, help="deliver what is due now, then exit")
@click.option(
    "--sdr-batches-every",
    "batches_every",
    type=click.FloatRange(0),
    default=300.0,
    show_default=True,
    help="seconds between runs of `gembus sdr deliver-batches` in this worker (0: never)",
)
@click.option(
    "--evse-pull-every",
    "pull_every",
    type=click.FloatRange(0),
    default=900.0,
    show_default=True,
    help="pull each operator's CLM master data when its last pull is this many seconds old "
    "(a delta; a full pull the first time); 0: never",
)
@click.option(
    "--evse-status-pull-every",
    "status_every",
    type=click.FloatRange(0),
    default=60.0,
    show_default=True,
    help="pull each operator's live EVSE status when its last status pull is this many "
    "seconds old; 0: never",
)
def worker(
    concurrency: int,
    batch: int,
    once: bool,
    batches_every: float,
    pull_every: float,
    status_every: float,
) -> None:
    """Deliver the outbox: claim due rows, POST Notify or ReceiveSdrs, retry with backoff,
    dead-letter; every few minutes queue the SDR batches of closed periods; and pull EVSE
    master data and live status from the operators' CLMs when due.

    A pull of one operator runs in one worker at a time, whichever takes its lease first
    (an advisory lock on PostgreSQL): start as many workers as you like.

    Run any number of workers, on any machine sharing the PostgreSQL database: each claims
    its own rows (FOR UPDATE SKIP LOCKED). On SQLite run one. SIGTERM or Ctrl-C finishes the
    batch in hand and exits; SIGKILL loses nothing (the rows are sent again).
    """
    import signal
    import threading

    from bus.delivery import RetryPolicy, run_relays
    from bus.sdr_push import outbox_kinds

    gembus = _gembus()
    settings = gembus.settings
    if settings.is_sqlite and concurrency > 1:
        click.echo("SQLite has no row locks: one relay thread", err=True)
        concurrency = 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    policy = RetryPolicy(
        settings.outbox_max_attempts, settings.outbox_backoff_base_s, settings.outbox_backoff_cap_s
    )
    click.echo(f"gembus worker: {concurrency} relay thread(s), batch {batch}", err=True)
    if batches_every > 0 and not once:
        threading.Thread(
            target=_sdr_batches, args=(gembus, batches_every, stop), name="sdr-batches", daemon=True
        ).start()
    for every, statuses in ((pull_every, False), (status_every, True)):
        if every > 0 and not once:
            threading.Thread(
                target=_evse_pulls,
                args=(gembus, every, statuses, stop),
                name="evse-status-pulls" if statuses else "evse-pulls",
                daemon=True,
            ).start()
    stats = run_relays(
        gembus.uow,
        policy,
        concurrency=concurrency,
        batch=batch,
        timeout_s=settings.outbox_timeout_s,
        idle_s=settings.outbox_poll_s,
        once=once,
        stop=stop,
        kinds=outbox_kinds(),
    )
    click.echo(f"delivered {stats.delivered}, retry later {stats.retried}, dead {stats.dead}")


def _sdr_batches(gembus: Any, every_s: float, stop: Any) -> None:
    """The worker's batch thread: `gembus sdr deliver-batches` every ``every_s`` seconds."""
    from datetime import UTC, datetime

    from domain.clearing.sdr_delivery import forward_batches
    from gembus.logging import get_logger

    log = get_logger("gembus.sdr")
    while not stop.is_set():
        try:
            for report in forward_batches(gembus.uow, datetime.now(UTC)):
                if not report.skipped:
                    log.info("sdr.batch_queued", batch_id=report.batch_id, records=report.records)
        except Exception:  # the database is down: log, wait, try again
            log.exception("sdr.batches_failed")
        stop.wait(every_s)


def _evse_pulls(gembus: Any, every_s: float, statuses: bool, stop: Any) -> None:
    """The worker's pull thread: every due operator, checked a few times per period."""
    from gembus.logging import get_logger

    log, puller = get_logger("gembus.evse"), gembus.puller()
    while not stop.is_set():
        try:
            for run in puller.pull_due(every_s, statuses=statuses):
                (log.info if run.ok else log.warning)("evse.pulled", summary=run.summary())
        except Exception:  # the database is down: log, wait, try again
            log.exception("evse.pulls_failed")
        stop.wait(min(max(every_s / 4, 1.0), 60.0))


@main.group()
def outbox() -> None:
    """The outbox of publish/subscribe deliveries and its dead letters."""


@outbox.command("list")
@click.option(
    "--status",
    type=click.Choice(["pending", "delivered", "dead"]),
    default=None,
    help="only rows with this status (dead = the dead letters)",
)
@click.option("--page", default=1, show_default=True, help="page number (newest first)")
@click.option("--page-size", default=50, show_default=True, help="rows per page (1..1000)")
def outbox_list(status: str | None, page: int, page_size: int) -> None:
    """List outbox rows, one per line: id, status, attempts, topic, eventId, endpoint, error."""
    from domain.marketplace.partners import Page
    from domain.pubsub import DeliveryStatus

    gembus = _gembus()
    with _errors(), gembus.uow() as uow:
        paged = Page(page, page_size)
        found, total = uow.outbox.entries(
            DeliveryStatus(status) if status else None, (paged.offset, paged.size)
        )
    for e in found:
        when = (e.delivered_at or e.available_at).isoformat(timespec="seconds")
        error = f"  {e.last_error}" if e.last_error else ""
        click.echo(
            f"{e.id:>8} {e.status.value:<9} {e.attempts:>2} {e.topic:<20} {when} "
            f"{e.idempotency_key} {e.endpoint_url}{error}"
        )
    click.echo(f"-- page {page}, {len(found)} of {total}")


@outbox.command("retry")
@click.argument("entry_id", type=int, required=False)
@click.option("--all-dead", is_flag=True, help="re-drive every dead letter")
def outbox_retry(entry_id: int | None, all_dead: bool) -> None:
    """Re-drive ENTRY_ID (a dead letter, or a waiting row: now) or --all-dead.

    The row becomes pending with a fresh attempt budget and keeps its eventId, so a
    subscriber that did get it before answers "duplicate".
    """
    from datetime import UTC, datetime

    if (entry_id is None) == (not all_dead):
        raise click.UsageError("give an outbox id or --all-dead")
    gembus = _gembus()
    with _errors(), gembus.uow() as uow:
        count = uow.outbox.redrive(None if all_dead else entry_id, datetime.now(UTC))
        uow.commit()
    if entry_id is not None and count == 0:
        raise click.ClickException(f"no outbox row {entry_id} that is dead or pending")
    click.echo(f"re-driven {count}")


@outbox.command("purge")
@click.option(
    "--delivered-before",
    "days",
    type=click.FloatRange(0),
    required=True,
    help="delete delivered rows older than this many days",
)
def outbox_purge(days: float) -> None:
    """Delete delivered rows (one DELETE on an index: no progress bar needed). Pending and
    dead rows are never purged."""
    from datetime import UTC, datetime, timedelta

    gembus = _gembus()
    with _errors(), gembus.uow() as uow:
        count = uow.outbox.purge_delivered(datetime.now(UTC) - timedelta(days=days))
        uow.commit()
    click.echo(f"purged {count} delivered rows")


@main.group()
def gateway() -> None:
    """The gateway's routing table and the operator's per-route policies."""


@gateway.command("routes")
def gateway_routes() -> None:
    """List every route, one per line: service, family vN, provider, endpoint (or "local"),
    operator and EVSP keys it is chosen for by content, timeout and reply validation."""
    gembus = _gembus()
    app = gembus.app
    with _errors():
        table = app.gateway.router.table
    default_timeout = app.gateway.timeout_s
    default_validation = app.gateway.validate_responses
    for r in sorted(table.routes, key=lambda r: (r.family, r.version, r.service_id)):
        keys = ",".join(sorted(r.operator_keys | r.provider_keys)) or "-"
        timeout = f"{r.timeout_s:g}s" if r.timeout_s else f"{default_timeout:g}s (default)"
        validation = r.validation or f"{default_validation} (default)"
        endpoint = "local" if r.local else r.endpoint_url
        click.echo(
            f"{r.service_id:<24} {r.family} v{r.version:<3} {r.provider_id:<20} {endpoint}  "
            f"keys={keys} timeout={timeout} validate={validation}"
        )
    click.echo(f"-- {len(table.routes)} routes")


@gateway.command("calls")
@click.option("--message-id", default=None, help="the call with this message id (faults quote it)")
@click.option("--requester", default=None, help="calls of this requester partner")
@click.option("--provider", default=None, help="calls to this provider partner")
@click.option("--service", default=None, help="calls to this service ID")
@click.option(
    "--outcome", type=click.Choice(["ok", "fault", "pending"]), default=None, help="only these"
)
@click.option("--since", default=None, help="calls at or after this ISO 8601 instant")
@click.option("--page", default=1, show_default=True, help="page number (newest first)")
@click.option("--page-size", default=50, show_default=True, help="rows per page (1..1000)")
def gateway_calls(
    message_id: str | None,
    requester: str | None,
    provider: str | None,
    service: str | None,
    outcome: str | None,
    since: str | None,
    page: int,
    page_size: int,
) -> None:
    """The transaction log, one call per line: time, message id, requester -> provider,
    service, family.operation, contract, outcome (or fault code), latency, bytes in/out.

    A partner quoting the messageId of a fault finds its call with --message-id; the same id
    is on every log line of the request."""
    from domain.gateway_calls import CallFilter
    from domain.marketplace.partners import Page

    where = CallFilter(
        message_id, requester, provider, service, outcome, _instant(since) if since else None
    )
    gembus = _gembus()
    with _errors(), gembus.uow() as uow:
        paged = Page(page, page_size)
        found, total = uow.gateway_calls.calls(where, (paged.offset, paged.size))
    for c in found:
        latency = f"{c.latency_ms:.2f}ms" if c.latency_ms is not None else "-"
        click.echo(
            f"{c.at.isoformat(timespec='milliseconds')} {c.message_id} "
            f"{c.requester_id or '-'} -> {c.provider_id or '-'} {c.service_id or '-'} "
            f"{c.family}.{c.operation or '-'} {c.contract_id or '-'} "
            f"{c.fault_code or c.outcome} {latency} {c.bytes_in}/{c.bytes_out or '-'}B"
        )
    click.echo(f"-- page {page}, {len(found)} of {total}")


@gateway.command("policy")
@click.argument("service_id")
@click.option(
    "--timeout-ms",
    type=click.IntRange(1),
    default=None,
    help="wait this long for the provider before Server.ProviderTimeout",
)
@click.option(
    "--validate",
    "validation",
    default=None,
    help="check the provider's replies: always, off or sample:<fraction>, e.g. sample:0.1",
)
@click.option("--clear", is_flag=True, help="drop the policy: the route takes the defaults")
def gateway_policy(
    service_id: str, timeout_ms: int | None, validation: str | None, clear: bool
) -> None:
    """Set the policy of the route to SERVICE_ID; unset fields keep the deployment's
    defaults. Every node applies it with its next routing-table reload (within a second)."""
    from datetime import UTC, datetime

    from domain.route_policy import RoutePolicy, set_policy

    if clear == (timeout_ms is not None or validation is not None):
        raise click.UsageError("give --timeout-ms and/or --validate, or --clear")
    gembus = _gembus()
    with _errors(), gembus.uow() as uow:
        stored = set_policy(
            uow,
            "cli",
            RoutePolicy(service_id, timeout_ms, validation),
            datetime.now(UTC),
        )
        uow.commit()
    if clear:
        click.echo(f"{service_id}: policy cleared, defaults apply")
    else:
        click.echo(
            f"{service_id}: timeout={stored.timeout_ms or 'default'} ms "
            f"validate={stored.response_validation or 'default'}"
        )


@main.group()
def reservation() -> None:
    """Reservations EVSPs made through /services/reservation (for the marketplace operator)."""


@reservation.command("list")
@click.option("--evsp", "partner_id", help="only this EVSP partner's reservations")
@click.option("--page", default=1, show_default=True, help="page number (newest first)")
@click.option("--page-size", default=50, show_default=True, help="rows per page (1..1000)")
def reservation_list(partner_id: str | None, page: int, page_size: int) -> None:
    """List reservations, newest first, one per line: created, EVSP, state, EVSE,
    partnerReservationId, the CLM's reservationId, then the fault, the granted expiry or when
    it was cancelled."""
    from domain.marketplace.partners import Page

    gembus = _gembus()
    with _errors(), gembus.uow() as uow:
        paged = Page(page, page_size)
        found, total = uow.reservations.list(partner_id, (paged.offset, paged.size))
    for r in found:
        click.echo(
            f"{r.created_at.isoformat(timespec='seconds')} {r.partner_id:<20} {r.state.value:<9} "
            f"{r.evse_id:<22} {r.partner_reservation_id or '-':<20} {r.reservation_id or '-'} "
            f"{_reservation_outcome(r)}"
        )
    click.echo(f"-- page {page}, {len(found)} of {total}")


def _reservation_outcome(r: Any) -> str:
    if r.fault_code:
        return f"{r.fault_code}: {r.fault_message or ''}"
    if r.cancelled_at:
        return f"cancelled {r.cancelled_at.isoformat(timespec='seconds')}"
    return f"until {r.granted_expiry.isoformat(timespec='seconds')}" if r.granted_expiry else ""


@main.group()
def clearing() -> None:
    """Financial clearing: issue a period's statement, export statements as CSV."""


@clearing.command("run")
@click.option("--period", required=True, help="the month to clear, YYYY-MM (UTC)")
@click.option(
    "--cut-off",
    default=None,
    help="ISO instant: SDRs received or approved later wait for the next run (default: now)",
)
def clearing_run(period: str, cut_off: str | None) -> None:
    """Issue PERIOD's clearing statement: price every approved SDR with the plan valid at
    its session start, day by day (the progress bar), and store the gross lines. A period is
    issued once; the plans it used can then only be ended by successors."""
    from datetime import UTC, datetime

    from domain.clearing.financial import Period, StatementStatus, run_statement

    gembus = _gembus()
    now = datetime.now(UTC)
    with _errors():
        month = Period.month(period)
        cut = _instant(cut_off) if cut_off else now
        with (
            gembus.uow() as uow,
            click.progressbar(
                length=len(month.days()), label=f"pricing {period}", file=sys.stderr
            ) as bar,
        ):
            statement = run_statement(
                uow, "cli", month, cut, StatementStatus.ISSUED, now, lambda day: bar.update(1)
            )
            uow.commit()
    click.echo(
        f"issued {statement.statement_id}: {statement.sdr_count} SDRs priced in "
        f"{len(statement.lines)} gross lines, {statement.unpriced_count} without a price plan"
    )
    for line in statement.lines:
        click.echo(
            f"  {line.currency} {line.debtor} owes {line.creditor} {line.amount} "
            f"({line.sdr_count} SDRs)"
        )


@clearing.command("statement")
@click.argument("statement_id")
@click.option(
    "--strategy",
    type=click.Choice(["gross", "netted"]),
    default="gross",
    show_default=True,
    help="one line per direction, or the pairwise difference",
)
@click.option(
    "--output", type=click.Path(dir_okay=False), default="-", help="CSV file (- = stdout)"
)
def clearing_statement(statement_id: str, strategy: str, output: str) -> None:
    """Export STATEMENT_ID as CSV (every line; the items stay available over SOAP)."""
    from datetime import UTC, datetime

    from domain.clearing.financial import Strategy, readable_statement, statement_csv
    from domain.marketplace.partners import SYSTEM_ACTOR

    gembus = _gembus()
    with _errors(), gembus.uow() as uow:
        statement = readable_statement(uow, SYSTEM_ACTOR, statement_id, datetime.now(UTC))
    with click.open_file(output, "w") as out:
        out.write(statement_csv(statement, statement.lines, Strategy(strategy)))


def _instant(text: str) -> Any:
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 instant") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@main.group()
def events() -> None:
    """Publish/subscribe events (an operator's tool until the domains publish their own)."""


@events.command("publish")
@click.option(
    "--topic",
    type=click.Choice(["EvseStatusChanged", "SdrAvailable", "LoadRequestPublished"]),
    required=True,
)
@click.option("--evse", help="EVSE ID (EvseStatusChanged, SdrAvailable), e.g. DE*ICE*E1*1")
@click.option(
    "--major",
    type=click.Choice(["available", "not-available", "unknown"]),
    help="EvseStatusChanged: major status",
)
@click.option(
    "--minor",
    type=click.Choice(["available", "reserved", "charging", "blocked", "outoforder"]),
    help="EvseStatusChanged: minor status",
)
@click.option("--sdr", help="SdrAvailable: SDR ID")
@click.option("--provider", help="SdrAvailable: provider ID, e.g. NL-TNM")
@click.option("--contract", help="SdrAvailable: contract ID")
@click.option("--request-id", help="LoadRequestPublished: request ID")
@click.option("--dso", help="LoadRequestPublished: the DSO's partner ID")
@click.option(
    "--load-area",
    "load_areas",
    multiple=True,
    help="LoadRequestPublished: load area ID (repeatable)",
)
@click.option(
    "--to",
    "addressees",
    multiple=True,
    help="LoadRequestPublished: addressed partner ID (repeatable)",
)
def events_publish(**options: Any) -> None:
    """Publish one event to every matching subscription (queued in the outbox, in one
    transaction; `gembus worker` delivers it). Times default to now / now + 1 h."""
    from datetime import UTC, datetime

    from domain.pubsub import Topic, publish

    gembus = _gembus()
    with _errors():
        topic = Topic(options["topic"])
        event = _event(topic, options, datetime.now(UTC))
        with gembus.uow() as uow:
            queued = publish(uow, topic, event)
            uow.commit()
    for delivery in queued:
        click.echo(f"queued {delivery.idempotency_key} -> {delivery.endpoint_url}")
    click.echo(f"{topic.value}: {len(queued)} deliveries queued")


def _event(topic: Any, o: dict[str, Any], now: Any) -> Any:
    """Build the event of ``topic`` from the options, naming a missing one."""
    from datetime import timedelta

    from domain.identifiers import EvseId, ProviderId
    from domain.marketplace.partners import parse_identifier
    from domain.pubsub import (
        EvseStatusChanged,
        LoadRequestPublished,
        SdrAvailable,
        Topic,
        operator_of,
    )

    def need(name: str) -> Any:
        if not o.get(name):
            raise click.UsageError(f"{topic.value} needs --{name.replace('_', '-')}")
        return o[name]

    if topic is Topic.LOAD_REQUEST_PUBLISHED:
        period = (now, now + timedelta(hours=1))
        return LoadRequestPublished(
            need("request_id"), need("dso"), need("load_areas"), period, now, need("addressees")
        )
    evse = parse_identifier(EvseId.parse, need("evse"), "--evse")
    operator = operator_of(evse)
    if topic is Topic.EVSE_STATUS_CHANGED:
        return EvseStatusChanged(evse, operator, need("major"), o.get("minor"))
    provider = parse_identifier(ProviderId.parse, need("provider"), "--provider")
    return SdrAvailable(
        need("sdr"), "accepted", operator, provider, evse, need("contract"), now, now
    )


@main.group()
def authorization() -> None:
    """Roaming authorization at the clearing house."""


@authorization.group("settings")
def authorization_settings() -> None:
    """How each EVSP's customers are authorized: its stored list or a live ask of its own
    endpoint (with a timeout and a fallback). Without settings an EVSP gets the defaults:
    storedList, 1500 ms, fallback deny."""


@authorization_settings.command("show")
@click.argument("partner_id", required=False)
def authorization_settings_show(partner_id: str | None) -> None:
    """Show PARTNER_ID's settings (defaults included), or every EVSP that has set some."""
    from domain.clearing.authorization import settings_of

    gembus = _gembus()
    with _errors(), gembus.uow() as uow:
        if partner_id is not None:
            found = [settings_of(uow, partner_id)]
        else:
            found = uow.authorizations.all_settings()
    for s in found:
        since = (
            f"set {s.updated_at:%Y-%m-%d %H:%M} by {s.updated_by}" if s.updated_at else "defaults"
        )
        click.echo(
            f"{s.partner_id:<24} mode={s.mode.value:<10} timeout={s.live_timeout_ms} ms "
            f"fallback={s.fallback.value:<10} ({since})"
        )
    if partner_id is None:
        click.echo(f"-- {len(found)} EVSPs with settings; all others use the defaults")


@authorization_settings.command("set")
@click.argument("partner_id")
@click.option(
    "--mode",
    type=click.Choice(["storedList", "liveEvsp"]),
    default=None,
    help="storedList: the contracts the EVSP uploaded; liveEvsp: ask its authorization service",
)
@click.option(
    "--timeout-ms",
    type=click.IntRange(50, 30_000),
    default=None,
    help="how long a live ask may take before the fallback applies",
)
@click.option(
    "--fallback",
    type=click.Choice(["deny", "storedList"]),
    default=None,
    help="when the live EVSP is silent: deny (EVSP_TIMEOUT) or decide from the stored list",
)
def authorization_settings_set(
    partner_id: str, mode: str | None, timeout_ms: int | None, fallback: str | None
) -> None:
    """Set the EVSP PARTNER_ID's authorization settings; unset options keep their value.
    Every node applies them with its next decision."""
    from datetime import UTC, datetime

    from domain.clearing.authorization import AuthorizationMode, LiveFallback, set_settings

    if mode is None and timeout_ms is None and fallback is None:
        raise click.UsageError("give --mode, --timeout-ms and/or --fallback")
    gembus = _gembus()
    with _errors(), gembus.uow() as uow:
        stored = set_settings(
            uow,
            partner_id,
            mode=AuthorizationMode(mode) if mode else None,
            live_timeout_ms=timeout_ms,
            fallback=LiveFallback(fallback) if fallback else None,
            actor="cli",
            at=datetime.now(UTC),
        )
        uow.commit()
    click.echo(
        f"{partner_id}: mode={stored.mode.value} timeout={stored.live_timeout_ms} ms "
        f"fallback={stored.fallback.value}"
    )


@authorization_settings.command("reset")
@click.argument("partner_id")
def authorization_settings_reset(partner_id: str) -> None:
    """Drop PARTNER_ID's settings: the defaults apply again."""
    from domain.clearing.authorization import reset_settings

    gembus = _gembus()
    with _errors(), gembus.uow() as uow:
        reset_settings(uow, partner_id)
        uow.commit()
    click.echo(f"{partner_id}: defaults (storedList, 1500 ms, fallback deny)")


@main.group()
def sdr() -> None:
    """SDR forwarding: how each EVSP gets its SDRs, and the batch job."""


@sdr.group("delivery")
def sdr_delivery() -> None:
    """Per-EVSP delivery: push at once, daily/weekly/monthly batches, or pull."""


@sdr_delivery.command("set")
@click.option("--evsp", "partner_id", required=True, help="the EVSP's partner ID")
@click.option(
    "--mode",
    type=click.Choice(["push", "daily", "weekly", "monthly", "pull"]),
    required=True,
    help="push: each SDR at once; daily/weekly/monthly: a batch per closed UTC period; "
    "pull: nothing is pushed, the EVSP calls GetPendingSdrs",
)
def sdr_delivery_set(partner_id: str, mode: str) -> None:
    """Set how EVSP gets its SDRs (pushes go to its published sdr_receiver service). Records
    not yet pushed follow the new mode; pending records can always be pulled as well."""
    from datetime import UTC, datetime

    from domain.clearing.sdr import DeliveryMode
    from domain.clearing.sdr_delivery import receiver_endpoint, set_delivery_mode

    gembus = _gembus()
    with _errors(), gembus.uow() as uow:
        setting = set_delivery_mode(uow, partner_id, DeliveryMode(mode), "cli", datetime.now(UTC))
        url = receiver_endpoint(uow, partner_id)
        uow.commit()
    click.echo(f"{partner_id}: {setting.mode.value}")
    if setting.mode.value != "pull" and url is None:
        click.echo(
            f"warning: {partner_id} has no published sdr_receiver service yet; its SDRs wait "
            "for pull until it publishes one (then `gembus sdr deliver-batches` catches up)",
            err=True,
        )


@sdr_delivery.command("list")
def sdr_delivery_list() -> None:
    """List the EVSPs' delivery modes and receiver endpoints (an EVSP not listed pulls)."""
    from domain.clearing.sdr_delivery import receiver_endpoint

    gembus = _gembus()
    with _errors(), gembus.uow() as uow:
        settings = uow.sdrs.delivery_settings()
        rows = [(s, receiver_endpoint(uow, s.partner_id)) for s in settings]
    for setting, url in rows:
        when = setting.updated_at.isoformat(timespec="seconds")
        click.echo(f"{setting.partner_id:<24} {setting.mode.value:<8} {when} {url or '-'}")
    click.echo(f"-- {len(rows)} EVSPs with a delivery setting; every other EVSP pulls")


@sdr.command("deliver-batches")
@click.option(
    "--as-of",
    default=None,
    help="ISO instant deciding which periods are closed (default: now; for backfills)",
)
def sdr_deliver_batches(as_of: str | None) -> None:
    """Queue the batches of every closed day/week/month for EVSPs on a schedule, and push
    what push-mode EVSPs missed; `gembus worker` delivers them. Repeatable: a record is
    queued once per version, and jobs running side by side never take the same records."""
    from datetime import UTC, datetime

    from domain.clearing.sdr_delivery import forward_batches

    gembus = _gembus()
    queued = records = 0
    with _errors():
        for report in forward_batches(
            gembus.uow, datetime.now(UTC), as_of=_instant(as_of) if as_of else None
        ):
            if report.skipped:
                click.echo(f"skipped {report.partner_id}: {report.skipped}", err=True)
                continue
            queued, records = queued + 1, records + report.records
            period = (
                f" {report.period[0]:%Y-%m-%d}..{report.period[1]:%Y-%m-%d}"
                if report.period
                else ""
            )
            part = f" part {report.part[0]}/{report.part[1]}" if report.part else ""
            click.echo(
                f"queued {report.batch_id} -> {report.partner_id} {report.schedule}{period}"
                f"{part}: {report.records} SDRs"
            )
    click.echo(f"{queued} batches, {records} SDRs queued for delivery")


@main.group()
def evse() -> None:
    """EVSE data pulled from the operators' CLMs: master data and live status."""


@evse.command("pull")
@click.option(
    "--operator", "operator_id", required=True, help="the operator ID to pull, e.g. DE*ICE"
)
@click.option(
    "--full",
    is_flag=True,
    help="master data: a full pull even when a delta would do; --status: every status, "
    "not only the changed ones",
)
@click.option(
    "--status",
    "statuses",
    is_flag=True,
    help="pull live status (ProvideEVSEStatusData) instead of master data",
)
def evse_pull(operator_id: str, full: bool, statuses: bool) -> None:
    """Pull OPERATOR's EVSE master data, or with --status its live status, from the CLM
    service it published on the marketplace into storage, now.

    Master data comes as a delta since the last successful pull, or as a full pull the
    first time (or with --full) that replaces the operator's set. A failing CLM changes
    nothing: the run is recorded as failed (see `gembus evse pulls`) and the command exits
    with status 1. Records that break gembus's rules are rejected one by one and listed.
    """
    from domain.identifiers import OperatorId
    from domain.marketplace.partners import parse_identifier

    gembus = _gembus()
    with _errors():
        operator = parse_identifier(OperatorId.parse, operator_id, "--operator")
        puller = gembus.puller()
        pull = puller.pull_statuses if statuses else puller.pull_master_data
        with _PullBar(f"pulling {operator.wire}") as bar:
            run = pull(operator, full=full, progress=bar.update)
    click.echo(run.summary())
    if run.note:
        click.echo(f"note: {run.note}")
    for r in run.rejections:
        click.echo(f"  rejected {r.evse_wire}: {r.reason} ({r.field}): {r.message}")
    if run.rejected > len(run.rejections):
        click.echo(f"  ... and {run.rejected - len(run.rejections)} more rejected")
    if not run.ok:
        sys.exit(1)


class _PullBar:
    """A progress bar on stderr that starts once the first page tells how many records come."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None

    def __enter__(self) -> _PullBar:
        return self

    def update(self, received: int, total: int | None) -> None:
        if self.bar is None:
            self.bar = click.progressbar(
                length=max(total or 0, 1), label=self.label, file=sys.stderr
            )
            self.bar.__enter__()
        self.bar.update(received - self.bar.pos)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


@evse.command("pulls")
@click.option("--operator", "operator_id", default=None, help="only this operator's pulls")
@click.option("--page", default=1, show_default=True, help="page number (newest first)")
@click.option("--page-size", default=50, show_default=True, help="rows per page (1..1000)")
def evse_pulls(operator_id: str | None, page: int, page_size: int) -> None:
    """List the pull runs, newest first, one per line: id, start, operator, kind, trigger,
    outcome, received/stored/deleted/rejected, and the failure or note."""
    from domain.identifiers import OperatorId
    from domain.marketplace.partners import Page, parse_identifier

    gembus = _gembus()
    with _errors(), gembus.uow() as uow:
        key = (
            parse_identifier(OperatorId.parse, operator_id, "--operator").key
            if operator_id
            else None
        )
        paged = Page(page, page_size)
        runs, total = uow.evses.pull_runs(key, (paged.offset, paged.size))
    for r in runs:
        detail = f"  {r.failure_kind}: {r.failure_detail}" if not r.ok else ""
        note = f"  note: {r.note}" if r.note else ""
        click.echo(
            f"{r.run_id:>8} {r.started_at.isoformat(timespec='seconds')} {r.operator_wire:<8} "
            f"{r.kind.value:<6} {r.trigger.value:<8} {r.outcome.value:<6} "
            f"{r.received}/{r.stored}/{r.deleted}/{r.rejected}{detail}{note}"
        )
    click.echo(f"-- page {page}, {len(runs)} of {total} (received/stored/deleted/rejected)")


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="alembic revision to reach")
def db_upgrade(revision: str) -> None:
    """Apply the alembic migrations to GEMBUS_DATABASE_URL."""
    from persistence.migrate import upgrade

    gembus = _gembus()
    upgrade(gembus.engine, revision)
    click.echo(
        f"database at {gembus.engine.url.render_as_string(hide_password=True)} is at {revision}"
    )


@main.group()
def demo() -> None:
    """Demo data for trying gembus out."""


@demo.command("load")
def demo_load() -> None:
    """Register the demo partners (idempotent)."""
    from gembus import demo as demo_data

    gembus = _gembus()
    for partner_id, created in demo_data.load(gembus.uow, gembus.vault):
        click.echo(f"{'created' if created else 'exists '}  {partner_id}")
    base = gembus.settings.public_url.rstrip("/") or f"http://{gembus.settings.bind}"
    for line in demo_data.load_marketplace(gembus.uow, base):
        click.echo(f"created  {line}")
    for line in demo_data.load_customer_contracts(gembus.uow):
        click.echo(f"loaded   {line}")
    for line in demo_data.load_sdrs(gembus.uow):
        click.echo(f"loaded   {line}")
    for line in demo_data.load_evses(gembus.uow):
        click.echo(f"loaded   {line}")


@demo.command("generate")
@click.option(
    "--evses",
    "count",
    type=click.IntRange(1, 5_000_000),
    default=100_000,
    show_default=True,
    help="how many EVSEs to add",
)
@click.option("--seed", type=int, default=42, show_default=True, help="same seed, same data")
def demo_generate(count: int, seed: int) -> None:
    """Add a realistic Europe-wide EVSE dataset (clustered around cities, with live status).

    Synthetic operators per country (e.g. DE*AK0); COPY on PostgreSQL. For Search EVSE
    benchmarks: `gembus demo generate --evses 1000000`.
    """
    from gembus import evse_dataset

    gembus = _gembus()
    now = evse_dataset.now_utc()
    with click.progressbar(length=count, label="generating EVSEs") as bar:
        generated = evse_dataset.generate(count, seed, now)
        written = evse_dataset.load(gembus.engine, generated, now, bar.update)
    click.echo(f"generated {written} EVSEs with live status")


@main.group()
def partner() -> None:
    """Business partners."""


@partner.command("add")
@click.argument("partner_id")
@click.option("--name", "legal_name", required=True, help="legal name")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(["EvseOperator", "Evsp", "Dso", "SearchProvider", "MarketplaceOperator"]),
    help="a role (repeat for several)",
)
@click.option(
    "--operator-id", "operator_ids", multiple=True, help="operator ID, e.g. DE*ICE (repeatable)"
)
@click.option(
    "--provider-id", "provider_ids", multiple=True, help="provider ID, e.g. DE-8AA (repeatable)"
)
@click.option("--email", required=True, help="contact e-mail")
@click.password_option(help="UsernameToken password (asked for when not given)")
def partner_add(
    partner_id: str,
    legal_name: str,
    roles: tuple[str, ...],
    operator_ids: tuple[str, ...],
    provider_ids: tuple[str, ...],
    email: str,
    password: str,
) -> None:
    """Register an active partner PARTNER_ID (also its WS-Security user name)."""
    from domain.marketplace import partners as uc
    from domain.partners import Contact, PartnerData, Role

    gembus = _gembus()
    with _errors():
        operators, providers = uc.parse_identifiers(operator_ids, provider_ids)
        data = PartnerData(
            legal_name, tuple(Role(r) for r in roles), Contact(email), operators, providers
        )
        with gembus.uow() as uow:
            uc.register_partner(uow, gembus.vault, uc.SYSTEM_ACTOR, partner_id, data, password)
            uow.commit()
    click.echo(f"registered {partner_id}")


@partner.command("list")
@click.option("--role", default=None, help="only partners with this role")
@click.option("--page", default=1, show_default=True, help="page number")
@click.option("--page-size", default=100, show_default=True, help="rows per page (1..1000)")
def partner_list(role: str | None, page: int, page_size: int) -> None:
    """List partners, one per line."""
    from domain.marketplace import partners as uc
    from domain.partners import Role

    gembus = _gembus()
    with _errors(), gembus.uow() as uow:
        found, total = uc.list_partners(
            uow, Role(role) if role else None, None, uc.Page(page, page_size)
        )
    for p in found:
        ids = [o.wire for o in p.data.operator_ids] + [i.wire for i in p.data.provider_ids]
        roles = ",".join(r.value for r in p.data.roles)
        click.echo(f"{p.partner_id:<24} {p.status.value:<12} {roles:<32} {' '.join(ids)}")
    click.echo(f"-- page {page}, {len(found)} of {total}")


@partner.command("set-password")
@click.argument("partner_id")
@click.password_option(help="the new UsernameToken password (asked for when not given)")
def partner_set_password(partner_id: str, password: str) -> None:
    """Replace PARTNER_ID's password; the old one stops working at once."""
    from domain.marketplace import partners as uc

    gembus = _gembus()
    with _errors(), gembus.uow() as uow:
        uc.rotate_credentials(uow, gembus.vault, uc.SYSTEM_ACTOR, partner_id, password)
        uow.commit()
    click.echo(f"password of {partner_id} replaced")


class _errors:
    """Show gembus errors as one line and exit 1 instead of a traceback."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        from gembus.errors import GembusError

        if isinstance(exc, GembusError):
            where = f" ({exc.field})" if exc.field else ""
            raise click.ClickException(f"{exc.fault_code}: {exc.message}{where}")


if __name__ == "__main__":
    main()
