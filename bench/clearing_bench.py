"""A netted clearing statement over 10,000,000 SDRs on PostgreSQL (target: <= 30 s).

The bench helper generates one month of approved-and-other SDRs in session order (as they
arrive in life: an operator submits a record shortly after the session ends, so the table's
pages follow time): 20 partners that are each an operator and an EVSP (so lines go both
ways and netting has work to do), 800 price plans (every pair, EUR and CHF), 95 % approved.
The dataset is kept in the database ``gembus_bench_clearing`` between runs (generating it
takes minutes); ``--regenerate`` rebuilds it.

The limit printed next to the figure is a plain ``SELECT count(*), sum(energy_kwh)`` over the
same rows in the same run: what one pass over the data costs the server before any pricing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, text

from domain.clearing.financial import Period, StatementStatus, net_lines, run_statement
from persistence.engine import make_session_factory
from persistence.migrate import upgrade
from persistence.unit_of_work import SqlUnitOfWork
from tests.support.databases import kept_postgres_database

DATABASE = "gembus_bench_clearing"
NOVEMBER = Period(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
PARTNERS = 20

_GENERATE = """
INSERT INTO sdr (sdr_id, operator_partner_id, operator_key, operator_wire, provider_partner_id,
                 provider_key, provider_wire, evse_id, contract_id, contract_key, service_type,
                 status, version, content_hash, session_start, session_end, total_cost,
                 currency, energy_kwh, received_at, status_changed_at)
SELECT 'DEB' || lpad((g % :n)::text, 2, '0') || '-' || g,
       'partner-' || (g % :n), 'DEB' || lpad((g % :n)::text, 2, '0'),
       'DE*B' || lpad((g % :n)::text, 2, '0'),
       'partner-' || pr, 'NLC' || lpad(pr::text, 2, '0'), 'NL-C' || lpad(pr::text, 2, '0'),
       'DE*B' || lpad((g % :n)::text, 2, '0') || '*E1*1', 'NL-C00-C12345678-X', 'NLC00C12345678',
       'charging', CASE WHEN g % 20 = 0 THEN 'accepted' ELSE 'approved' END, 1, 'x',
       start, start + make_interval(secs => 600 + g % 13000), 9.99,
       CASE WHEN g % 10 = 0 THEN 'CHF' ELSE 'EUR' END, (g % 60000) / 1000.0,
       start + interval '1 hour', start + interval '2 hours'
FROM generate_series(1, :count) AS g,
     LATERAL (SELECT timestamptz '2026-11-01 00:00+00'
                     + make_interval(secs => (g::float8 / :count) * 2591000)) AS t(start),
     -- the home EVSP is never the operator itself (that is no roaming case)
     LATERAL (SELECT (g % :n + 1 + (g / :n) % (:n - 1)) % :n) AS e(pr)
"""
_PLANS = """
INSERT INTO price_plan (plan_id, operator_id, operator_key, provider_id, provider_key,
                        service_type, currency, per_kwh, per_minute, per_session, valid_from,
                        set_by, created_at, updated_at, used_in_statement)
SELECT 'PP' || o || '-' || p || '-' || c, 'DE*B' || lpad(o::text, 2, '0'),
       'DEB' || lpad(o::text, 2, '0'), 'NL-C' || lpad(p::text, 2, '0'),
       'NLC' || lpad(p::text, 2, '0'), 'charging', c, 0.2 + o * 0.001, 0.01, 0.3,
       timestamptz '2026-01-01 00:00+00', 'bench', now(), now(), false
FROM generate_series(0, :n - 1) AS o, generate_series(0, :n - 1) AS p,
     unnest(ARRAY['EUR', 'CHF']) AS c
"""


def _database(regenerate: bool, count: int) -> str:
    name = DATABASE if count == 10_000_000 else f"{DATABASE}_{count}"
    url = kept_postgres_database(name, regenerate=regenerate)
    engine = create_engine(url)
    upgrade(engine)
    with engine.begin() as connection:
        have = connection.execute(text("SELECT count(*) FROM sdr")).scalar_one()
        if have != count:
            print(f"  generating {count:,} SDRs and {2 * PARTNERS * PARTNERS} price plans ...")
            started = time.perf_counter()
            for table in ("clearing_line", "clearing_statement", "price_plan", "sdr"):
                connection.execute(text(f"TRUNCATE {table}"))
            connection.execute(text(_GENERATE), {"n": PARTNERS, "count": count})
            connection.execute(text(_PLANS), {"n": PARTNERS})
            print(f"  generated in {time.perf_counter() - started:.0f} s")
    with create_engine(url, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text("VACUUM ANALYZE sdr"))
        connection.execute(text("VACUUM ANALYZE price_plan"))
    engine.dispose()
    return url


def run(count: int = 10_000_000, regenerate: bool = False) -> dict[str, object]:
    url = _database(regenerate, count)
    engine = create_engine(url)
    with engine.connect() as connection:  # warm the cache the same way for both figures
        started = time.perf_counter()
        connection.execute(text("SELECT count(*), sum(energy_kwh) FROM sdr")).one()
        limit_s = time.perf_counter() - started
    sessions = make_session_factory(engine)
    started = time.perf_counter()
    with SqlUnitOfWork(sessions) as uow:
        statement = run_statement(  # cut-off two days after the month, as a run would
            uow,
            "bench",
            NOVEMBER,
            NOVEMBER.end + timedelta(days=2),
            StatementStatus.PROVISIONAL,
            datetime.now(UTC),
        )
        netted = net_lines(statement.lines)
        uow.commit()
    elapsed = time.perf_counter() - started
    engine.dispose()
    print(
        f"clearing: netted statement over {count:,} SDRs ({statement.sdr_count:,} approved and "
        f"priced) on postgresql: {elapsed:.1f} s (target <= 30 s); {len(statement.lines)} gross "
        f"-> {len(netted)} net lines"
    )
    print(
        f"  limit: one pass (count + sum) over the same rows: {limit_s:.1f} s "
        f"({elapsed / limit_s:.1f}x)"
    )
    return {
        "sdrs": count,
        "priced": statement.sdr_count,
        "seconds": round(elapsed, 2),
        "limit_scan_s": round(limit_s, 2),
        "gross_lines": len(statement.lines),
        "net_lines": len(netted),
    }
