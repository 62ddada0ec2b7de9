"""Financial clearing over SOAP (lxml path): price plans and clearing statements.

Requests arrive validated against xsd/financial_clearing.xsd, so the readers here only pick
values out; responses are built as elements in the contract's sequence order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from lxml import etree

from domain.clearing.financial import (
    GrossLine,
    NetLine,
    Period,
    PlanFilter,
    PricePlan,
    PricePlanData,
    Prices,
    Statement,
    StatementItem,
    Strategy,
    Window,
    list_price_plans,
    net_lines,
    net_positions,
    readable_statement,
    round_money,
    set_price_plan,
    statement_for,
    visible_lines,
)
from domain.identifiers import OperatorId, ProviderId
from domain.marketplace.partners import Page, parse_identifier
from domain.partners import Partner, Role
from domain.ports import UnitOfWork
from endpoints.customer_contracts.service import page_info_out, page_of
from gembus.context import RequestContext
from gembus.errors import NotFoundError

NS = "urn:gembus:financial-clearing:v1"
CMN = "urn:gembus:common:v1"
_NSMAP = {"fc": NS, "cmn": CMN}


def _find(parent: etree._Element, path: str) -> str | None:
    """Text at ``path`` (fc:/cmn: prefixes), None when absent."""
    found = parent.find(path, _NSMAP)
    return found.text.strip() if found is not None and found.text is not None else None


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _decimal(text: str | None) -> Decimal | None:
    return Decimal(text) if text is not None else None


def _page(request: etree._Element) -> Page:
    return page_of(request.find("fc:paging", _NSMAP))


def _plan_data(element: etree._Element) -> PricePlanData:
    valid_from = _when(_find(element, "fc:validity/cmn:validFrom"))
    assert valid_from is not None  # required by the XSD
    return PricePlanData(
        parse_identifier(
            OperatorId.parse, _find(element, "fc:operatorId") or "", "pricePlan/operatorId"
        ),
        parse_identifier(
            ProviderId.parse, _find(element, "fc:providerId") or "", "pricePlan/providerId"
        ),
        _find(element, "fc:serviceType") or "charging",
        _find(element, "fc:currency") or "",
        Prices(
            _decimal(_find(element, "fc:pricePerKwh")),
            _decimal(_find(element, "fc:pricePerMinute")),
            _decimal(_find(element, "fc:pricePerSession")),
        ),
        Window(valid_from, _when(_find(element, "fc:validity/cmn:validTo"))),
        _find(element, "fc:contractReference"),
    )


def set_plan(request: etree._Element, ctx: RequestContext) -> etree._Element:
    plan_element = request.find("fc:pricePlan", _NSMAP)
    assert plan_element is not None
    with ctx.uow() as uow:
        plan = set_price_plan(
            uow,
            ctx.actor,
            _find(request, "fc:pricePlanId"),
            _plan_data(plan_element),
            datetime.now(UTC),
        )
        uow.commit()
    ctx.log.info("clearing.price_plan_set", plan=plan.plan_id)
    root = etree.Element(f"{{{NS}}}SetPricePlanResponse", nsmap=_NSMAP)
    _plan(root, plan)
    return root


def list_plans(request: etree._Element, ctx: RequestContext) -> etree._Element:
    operator = _find(request, "fc:operatorId")
    provider = _find(request, "fc:providerId")
    plan_filter = PlanFilter(
        parse_identifier(OperatorId.parse, operator, "operatorId").key if operator else None,
        parse_identifier(ProviderId.parse, provider, "providerId").key if provider else None,
        _find(request, "fc:currency"),
        _when(_find(request, "fc:validAt")),
    )
    page = _page(request)
    with ctx.uow() as uow:
        plans, total = list_price_plans(uow, ctx.actor, plan_filter, page)
    root = etree.Element(f"{{{NS}}}ListPricePlansResponse", nsmap=_NSMAP)
    for plan in plans:
        _plan(root, plan)
    page_info_out(root, NS, page, total)
    return root


def sub(parent: etree._Element, name: str, text: str, ns: str = NS) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ns}}}{name}")
    element.text = text
    return element


def _plan(parent: etree._Element, plan: PricePlan) -> None:
    element = etree.SubElement(parent, f"{{{NS}}}pricePlan")
    sub(element, "pricePlanId", plan.plan_id)
    data = etree.SubElement(element, f"{{{NS}}}data")
    d = plan.data
    sub(data, "operatorId", d.operator_id.wire)
    sub(data, "providerId", d.provider_id.wire)
    sub(data, "serviceType", d.service_type)
    sub(data, "currency", d.currency)
    for name, price in (
        ("pricePerKwh", d.prices.per_kwh),
        ("pricePerMinute", d.prices.per_minute),
        ("pricePerSession", d.prices.per_session),
    ):
        if price is not None:
            sub(data, name, f"{price:.4f}")
    validity = etree.SubElement(data, f"{{{NS}}}validity")
    sub(validity, "validFrom", d.window.valid_from.isoformat(), CMN)
    if d.window.valid_to is not None:
        sub(validity, "validTo", d.window.valid_to.isoformat(), CMN)
    if d.contract_reference:
        sub(data, "contractReference", d.contract_reference)
    sub(element, "setBy", plan.set_by)
    sub(element, "createdAt", plan.created_at.isoformat())
    sub(element, "updatedAt", plan.updated_at.isoformat())
    sub(element, "usedInStatement", "true" if plan.used_in_statement else "false")


HANDLERS: dict[str, Callable[[etree._Element, RequestContext], etree._Element]] = {
    "SetPricePlan": set_plan,
    "ListPricePlans": list_plans,
}


# ------------------------------------------------------------------------- statements


def get_statement(request: etree._Element, ctx: RequestContext) -> etree._Element:
    period = _period(request)
    strategy = Strategy(_find(request, "fc:strategy") or "gross")
    currency = _find(request, "fc:currency")
    page = _page(request)
    now = datetime.now(UTC)
    with ctx.uow() as uow:
        statement = statement_for(uow, ctx.actor, period, now)
        uow.commit()  # a provisional statement is kept (24 h) so that its items can be read
    ctx.log.info("clearing.statement", statement=statement.statement_id, status=statement.status)
    lines = visible_lines(ctx.actor, statement.lines, currency)
    root = etree.Element(f"{{{NS}}}GetClearingStatementResponse", nsmap=_NSMAP)
    sub(root, "statementId", statement.statement_id)
    sub(root, "status", statement.status.value)
    _time_period(root, "period", statement.period)
    sub(root, "strategy", strategy.value)
    sub(root, "cutOff", statement.cut_off.isoformat())
    shown: list[GrossLine] | list[NetLine]
    if strategy is Strategy.GROSS:
        shown = lines
        listing = etree.SubElement(root, f"{{{NS}}}grossLines")
        for g in lines[page.offset : page.offset + page.size]:
            _gross_line(listing, g)
    else:
        shown = net_lines(lines)
        listing = etree.SubElement(root, f"{{{NS}}}netLines")
        for n in shown[page.offset : page.offset + page.size]:
            _net_line(listing, n)
    if page.number == 1:
        _positions(root, ctx.actor, lines)
    page_info_out(root, NS, page, len(shown))
    return root


def get_items(request: etree._Element, ctx: RequestContext) -> etree._Element:
    statement_id = _find(request, "fc:statementId") or ""
    wanted = _find(request, "fc:lineId")
    page = _page(request)
    with ctx.uow() as uow:
        statement = readable_statement(uow, ctx.actor, statement_id, datetime.now(UTC))
        lines = visible_lines(ctx.actor, statement.lines, None)
        if wanted is not None:
            lines = [g for g in lines if g.line_id == wanted]
            if not lines:
                raise NotFoundError("Line", f"no line {wanted} in {statement_id}", field="lineId")
        items = _page_of_items(uow, statement, lines, page)
    root = etree.Element(f"{{{NS}}}GetClearingStatementItemsResponse", nsmap=_NSMAP)
    sub(root, "statementId", statement.statement_id)
    for item in items:
        _item(root, item)
    page_info_out(root, NS, page, sum(g.sdr_count for g in lines))
    return root


def _page_of_items(
    uow: UnitOfWork, statement: Statement, lines: list[GrossLine], page: Page
) -> list[StatementItem]:
    """Items ordered by lineId then sdrId: walk the lines to the page's window."""
    items: list[StatementItem] = []
    skip, want = page.offset, page.size
    for line in lines:  # already in lineId order
        if skip >= line.sdr_count:
            skip -= line.sdr_count
            continue
        found = uow.clearing.items(statement, line, skip, want - len(items))
        items.extend(found)
        skip = 0
        if len(items) >= want:
            break
    return items


def _period(request: etree._Element) -> Period:
    start = _when(_find(request, "fc:period/cmn:start"))
    end = _when(_find(request, "fc:period/cmn:end"))
    assert start is not None and end is not None  # required by the XSD
    return Period(start, end)


def _time_period(parent: etree._Element, name: str, period: Period) -> None:
    element = etree.SubElement(parent, f"{{{NS}}}{name}")
    sub(element, "start", period.start.isoformat(), CMN)
    sub(element, "end", period.end.isoformat(), CMN)


def _money(parent: etree._Element, name: str, amount: Decimal, currency: str) -> None:
    element = etree.SubElement(parent, f"{{{NS}}}{name}")
    sub(element, "amount", _amount(amount, currency), CMN)
    sub(element, "currency", currency, CMN)


def _amount(amount: Decimal, currency: str) -> str:
    return str(round_money(amount, currency))


def _gross_line(parent: etree._Element, g: GrossLine) -> None:
    element = etree.SubElement(parent, f"{{{NS}}}line")
    sub(element, "lineId", g.line_id)
    sub(element, "debtor", g.debtor)
    sub(element, "creditor", g.creditor)
    _money(element, "amount", g.amount, g.currency)
    sub(element, "sdrCount", str(g.sdr_count))


def _net_line(parent: etree._Element, n: NetLine) -> None:
    element = etree.SubElement(parent, f"{{{NS}}}line")
    sub(element, "lineId", n.line_id)
    sub(element, "payer", n.payer)
    sub(element, "payee", n.payee)
    _money(element, "netAmount", n.net_amount, n.currency)
    sub(element, "grossPayerToPayee", _amount(n.gross_payer_to_payee, n.currency))
    sub(element, "grossPayeeToPayer", _amount(n.gross_payee_to_payer, n.currency))
    sub(element, "sdrCount", str(n.sdr_count))


def _positions(parent: etree._Element, actor: Partner, lines: list[GrossLine]) -> None:
    """A party sees its own net positions (the only complete ones it can see); the
    marketplace operator sees every party's."""
    everyone = actor.has_role(Role.MARKETPLACE_OPERATOR)
    positions = [p for p in net_positions(lines) if everyone or p.partner_id == actor.partner_id]
    listing = etree.SubElement(parent, f"{{{NS}}}netPositions")
    for p in positions[:1000]:
        element = etree.SubElement(listing, f"{{{NS}}}netPosition")
        sub(element, "partnerId", p.partner_id)
        _money(element, "position", p.position, p.currency)


def _item(parent: etree._Element, item: StatementItem) -> None:
    element = etree.SubElement(parent, f"{{{NS}}}item")
    sub(element, "lineId", item.line_id)
    sub(element, "sdrId", item.sdr_id)
    sub(element, "sdrVersion", str(item.sdr_version))
    sub(element, "operatorId", item.operator_id)
    sub(element, "providerId", item.provider_id)
    sub(element, "debtor", item.debtor)
    sub(element, "creditor", item.creditor)
    sub(element, "sessionStart", item.session_start.isoformat(timespec="seconds"))
    if item.energy_kwh is not None:
        sub(element, "energy", f"{item.energy_kwh:.3f}")
    sub(element, "pricePlanId", item.plan_id)
    _money(element, "amount", item.amount, item.currency)


HANDLERS["GetClearingStatement"] = get_statement
HANDLERS["GetClearingStatementItems"] = get_items
