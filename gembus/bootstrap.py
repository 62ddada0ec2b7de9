"""The composition root: the only module that knows every part of gembus.

``build(settings)`` wires settings -> engine -> unit of work -> vault -> authenticator ->
endpoints -> pipeline -> WSGI app. Tests call it with their own settings (a PostgreSQL or
SQLite URL, a key); nothing else constructs these objects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adapters.contract_inspector import ZeepContractInspector
from bus.contracts import Contract, all_contracts
from bus.gateway import Gateway, RateLimiter
from bus.guard import Limits
from bus.metering import UsageMeter
from bus.pipeline import Handler, Pipeline
from bus.relay import GatewayRelay
from bus.routing import Router
from bus.wsse import Authenticator
from domain.charging.pull import Puller
from domain.marketplace.validation import ContractValidator
from endpoints.authorization import service as authorization
from endpoints.contract_validation import service as contract_validation
from endpoints.customer_contracts import service as customer_contracts
from endpoints.evse_search import service as evse_search
from endpoints.evse_status_push import service as evse_status_push
from endpoints.evse_upload import service as evse_upload
from endpoints.financial_clearing import service as financial_clearing
from endpoints.marketplace import service as marketplace
from endpoints.reservation import service as reservation
from endpoints.reservation_v2 import service as reservation_v2
from endpoints.sdr import service as sdr
from gembus.clearing_house import build_authorizer
from gembus.context import RequestContext, Services
from gembus.evse_pull import build_puller
from gembus.identity import SqlIdentityStore
from gembus.logging import configure, get_logger
from gembus.secrets import Vault, resolve_key
from gembus.settings import PROJECT_ROOT, Settings
from gembus.web import GembusApp
from persistence.engine import make_engine, make_session_factory, read_session_factory
from persistence.evse import near_search
from persistence.fastpath import fast_engine
from persistence.transaction_log import TransactionLog
from persistence.unit_of_work import SqlUnitOfWork
from ui.app import make_ui


@dataclass
class Gembus:
    """Everything built once per process."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    vault: Vault
    contracts: dict[str, Contract]
    app: GembusApp
    services: Services | None = None

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.session_factory)

    def puller(self) -> Puller:
        """Pulls from the operators' CLMs: `gembus evse pull` and the worker's schedule."""
        return build_puller(self.session_factory, self.engine, self.settings)


#: Self-registration is the one thing a partner can do before it has credentials.
ANONYMOUS_OPERATIONS = frozenset({("marketplace", "RegisterPartner")})
#: Operations that record the caller's nonce in their own statement (one round trip in all).
DEFERRED_NONCE_OPERATIONS = frozenset({("authorization", "AuthorizeRoaming")})


def build_handlers() -> dict[str, dict[str, Handler]]:
    """Which operations are implemented, by family. Everything else is Server.NotImplemented."""
    market = marketplace.endpoint()
    partner_ops = (
        "RegisterPartner",
        "UpdatePartner",
        "ApprovePartner",
        "DeactivatePartner",
        "RotatePartnerCredentials",
        "GetPartner",
        "ListPartners",
    )
    service_ops = (
        "RegisterService",
        "UpdateService",
        "ChangeServiceLifecycle",
        "DeregisterService",
        "GetService",
        "BrowseCatalogue",
        "CreateOffering",
        "WithdrawOffering",
        "ListOfferings",
    )
    contract_ops = (
        "AcceptOffering",
        "TerminateContract",
        "ListMyContracts",
        "GetContract",
        "CreateRoamingAgreement",
        "TerminateRoamingAgreement",
        "ListRoamingAgreements",
    )
    billing_ops = ("GetUsageReport", "GetBillingStatement")
    subscription_ops = ("Subscribe", "Unsubscribe", "ListSubscriptions")
    marketplace_ops = partner_ops + service_ops + contract_ops + billing_ops + subscription_ops
    return {
        "marketplace": dict.fromkeys(marketplace_ops, market.call),
        "contract_validation": dict(contract_validation.HANDLERS),
        "authorization": dict(authorization.HANDLERS),
        "customer_contracts": dict(customer_contracts.HANDLERS),
        "sdr": dict(sdr.HANDLERS),
        "financial_clearing": dict(financial_clearing.HANDLERS),
        "evse_upload": dict(evse_upload.HANDLERS),
        "evse_status_push": dict(evse_status_push.HANDLERS),
        "evse_search": dict(evse_search.HANDLERS),
        "reservation": dict(reservation.HANDLERS),
        "reservation_v2": dict(reservation_v2.HANDLERS),
    }


def build(settings: Settings | None = None) -> Gembus:
    settings = settings or Settings.from_environ()
    configure(settings.log_level, settings.log_format)
    engine = make_engine(settings.database_url)
    session_factory = make_session_factory(engine)
    vault = Vault(resolve_key(settings.secret_key, PROJECT_ROOT / "var" / "secret.key"))
    fast = fast_engine(engine)  # hot-path writes: nonces, the transaction log
    authenticator = Authenticator(
        SqlIdentityStore(session_factory, fast, vault),
        window_s=settings.wsse_created_window_s,
        allow_password_text=settings.allow_password_text,
    )
    limits = Limits(
        settings.max_body_bytes,
        settings.max_depth,
        settings.max_attributes,
        settings.max_namespace_declarations,
        settings.max_header_blocks,
    )
    pipeline = Pipeline(
        limits,
        authenticator,
        build_handlers(),
        validate_requests=settings.validate_requests,
        anonymous_operations=ANONYMOUS_OPERATIONS,
        deferred_nonce_operations=DEFERRED_NONCE_OPERATIONS,
    )
    contracts = all_contracts()
    services = Services(
        ContractValidator(lambda: SqlUnitOfWork(session_factory)), ZeepContractInspector()
    )
    authorizer = build_authorizer(
        session_factory, fast, services.validator, settings.operator_partner_id
    )
    relay = GatewayRelay()  # attached to the gateway below, once it exists
    services = replace(
        services, authorizer=authorizer, relay=relay, near_search=near_search(engine)
    )
    context_factory = _context_factory(session_factory, vault, services)
    app = GembusApp(settings, contracts, pipeline, engine, context_factory)
    app.gateway = Gateway(
        pipeline,
        Router(lambda: SqlUnitOfWork(session_factory), settings.operator_partner_id),
        services.validator,
        lambda: SqlUnitOfWork(session_factory),
        contracts,
        timeout_s=settings.gateway_timeout_s,
        validate_responses=settings.gateway_validate_responses,
        rate=RateLimiter(settings.gateway_rate_per_second),
        log=TransactionLog(fast),
    )
    relay.attach(app.gateway, app.log_call)
    app.meter = UsageMeter(
        services.validator, lambda: SqlUnitOfWork(session_factory), settings.operator_partner_id
    )
    gembus = Gembus(settings, engine, session_factory, vault, contracts, app, services)
    app.ui = make_ui(gembus)
    return gembus


def _context_factory(
    session_factory: sessionmaker[Session], vault: Vault, services: Services
) -> Callable[[str, str], RequestContext]:
    def uow() -> SqlUnitOfWork:
        return SqlUnitOfWork(session_factory)

    reads = read_session_factory(session_factory)

    def reader() -> SqlUnitOfWork:
        return SqlUnitOfWork(reads)

    def make(message_id: str, family: str) -> RequestContext:
        log = get_logger("gembus.soap").bind(message_id=message_id, family=family)
        return RequestContext(message_id, family, uow, vault, log, services=services, reader=reader)

    return make
