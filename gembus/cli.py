"""The ``gembus`` command: serve, db upgrade, demo load, partner add/list/set-password.

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
