"""Financial clearing arithmetic: wholesale amounts, plan placement, netting (hand-computed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from domain.clearing.financial import (
    GrossLine,
    NetLine,
    NetPosition,
    OverlapError,
    Prices,
    Window,
    net_lines,
    net_positions,
    place_plan,
    round_money,
    wholesale_amount,
)
from gembus.errors import InvalidValueError

D = Decimal
T0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


def test_the_wholesale_amount_adds_unrounded_parts_and_rounds_once_half_up() -> None:
    prices = Prices(per_kwh=D("0.2875"), per_minute=D("0.0125"), per_session=D("0.5"))
    end = T0 + timedelta(minutes=45, seconds=30)
    # 0.5 + 0.2875 x 12.345 + 0.0125 x 45.5 = 0.5 + 3.5491875 + 0.56875 = 4.6179375
    assert wholesale_amount(prices, "EUR", D("12.345"), T0, end) == D("4.62")
    assert wholesale_amount(Prices(per_session=D("1.005")), "EUR", None, T0, T0) == D("1.01")
    assert wholesale_amount(Prices(per_session=D("1.0049")), "EUR", None, T0, T0) == D("1.00")
    assert wholesale_amount(Prices(per_kwh=D("30.5")), "JPY", D("1"), T0, T0) == D("31")
    assert wholesale_amount(Prices(per_kwh=D("0.1235")), "KWD", D("10"), T0, T0) == D("1.235")


def test_rounding_refuses_a_currency_that_is_not_in_use() -> None:
    with pytest.raises(InvalidValueError):
        round_money(D("1"), "XTS")


def test_a_plan_needs_a_price_and_no_negative_one() -> None:
    with pytest.raises(InvalidValueError):
        Prices().check()
    with pytest.raises(InvalidValueError):
        Prices(per_kwh=D("-0.01")).check()
    Prices(per_minute=D("0")).check()


def test_a_new_plan_inside_an_open_ended_one_ends_it_else_overlap_is_refused() -> None:
    day = timedelta(days=1)
    open_ended = ("P1", Window(T0))
    closed = ("P2", Window(T0 - 10 * day, T0))
    assert place_plan(Window(T0 + 5 * day), [open_ended, closed]) == {
        "P1": Window(T0, T0 + 5 * day)
    }
    assert place_plan(Window(T0 - 20 * day, T0 - 10 * day), [closed]) == {}  # adjacent is fine
    with pytest.raises(OverlapError) as raised:
        place_plan(Window(T0 - 5 * day, T0 + day), [closed])
    assert "P2" in raised.value.message and raised.value.field == "validity"
    with pytest.raises(OverlapError):  # starting at the same instant is not "inside"
        place_plan(Window(T0), [open_ended])
    with pytest.raises(InvalidValueError):
        Window(T0, T0)


def _gross() -> list[GrossLine]:
    """Three partners, two currencies; alpha and beta are operators and EVSPs, gamma an EVSP."""
    return [
        GrossLine("beta", "alpha", "EUR", D("100.00"), 3),
        GrossLine("alpha", "beta", "EUR", D("30.50"), 2),
        GrossLine("gamma", "alpha", "EUR", D("12.34"), 1),
        GrossLine("gamma", "beta", "EUR", D("7.66"), 1),
        GrossLine("alpha", "beta", "CHF", D("20.00"), 1),
        GrossLine("beta", "alpha", "CHF", D("20.00"), 1),
    ]


def test_netting_against_a_hand_computed_example() -> None:
    lines = net_lines(_gross())
    assert [n.line_id for n in lines] == sorted(n.line_id for n in lines)  # contract order
    assert sorted(lines, key=lambda n: (n.payer, n.payee)) == [
        NetLine("beta", "alpha", "EUR", D("69.50"), D("100.00"), D("30.50"), 5),
        NetLine("gamma", "alpha", "EUR", D("12.34"), D("12.34"), D("0"), 1),
        NetLine("gamma", "beta", "EUR", D("7.66"), D("7.66"), D("0"), 1),
    ]  # CHF: alpha and beta owe each other 20.00: no line


def test_net_positions_are_the_same_for_both_strategies_and_sum_to_zero() -> None:
    positions = net_positions(_gross())
    assert positions == [
        NetPosition("alpha", "CHF", D("0.00")),
        NetPosition("beta", "CHF", D("0.00")),
        NetPosition("alpha", "EUR", D("81.84")),
        NetPosition("beta", "EUR", D("-61.84")),
        NetPosition("gamma", "EUR", D("-20.00")),
    ]
    for currency in ("EUR", "CHF"):
        assert sum(p.position for p in positions if p.currency == currency) == 0
    # what the net lines move equals the positions
    moved: dict[tuple[str, str], Decimal] = {}
    for line in net_lines(_gross()):
        moved[(line.payee, line.currency)] = (
            moved.get((line.payee, line.currency), D(0)) + line.net_amount
        )
        moved[(line.payer, line.currency)] = (
            moved.get((line.payer, line.currency), D(0)) - line.net_amount
        )
    assert {k: v for k, v in moved.items()} == {
        (p.partner_id, p.currency): p.position for p in positions if p.position
    }
