"""The usage chart of a contract page, computed on the server as SVG geometry.

The Content-Security-Policy forbids scripts (and inline styles), so the chart is plain inline
SVG drawn by a template from the numbers here: one bar per day (successful calls, faults
stacked on top in another colour) on the left axis, the day's p95 latency as a line with dots
on the right axis. Colours come from classes in gembus.css.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from domain.marketplace.usage import UsageFigures

WIDTH, HEIGHT = 880, 300
#: Plot area inside the SVG: room for the left and right axis labels and the date row.
LEFT, RIGHT, TOP, BOTTOM = 56, 64, 20, 44
TICKS = 4


@dataclass(frozen=True)
class Bar:
    day: date
    x: float
    width: float
    ok_y: float
    ok_height: float
    fault_y: float
    fault_height: float
    calls: int
    faults: int
    p95: Decimal | None


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class UsageChart:
    width: int
    height: int
    left: int
    right: float
    top: int
    bottom: float
    bars: tuple[Bar, ...]
    calls_ticks: tuple[Tick, ...]
    latency_ticks: tuple[Tick, ...]
    day_ticks: tuple[Tick, ...]
    latency_points: tuple[Point, ...]
    has_calls: bool

    @property
    def latency_path(self) -> str:
        """The SVG polyline points of the p95 line (days without calls leave no point)."""
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.latency_points)


def nice_ceiling(value: float, *, whole: bool = False) -> float:
    """The axis maximum: TICKS steps of 1, 2, 2.5 or 5 x 10^n that reach at least value, so
    every tick reads naturally; ``whole`` keeps steps at 1 or more (call counts)."""
    if value <= 0:
        return float(TICKS) if whole else 1.0
    raw = value / TICKS
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw <= m * magnitude)
    if whole:
        step = max(1.0, math.ceil(step))
    return float(step * TICKS)


def _label(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def usage_chart(days: tuple[tuple[date, UsageFigures], ...]) -> UsageChart:
    """Geometry for one bar per day; the scales start at zero and end on a nice number."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    base = TOP + plot_h
    calls_max = nice_ceiling(max((f.calls for _, f in days), default=0), whole=True)
    latency_max = nice_ceiling(
        max((float(f.p95_latency_ms) for _, f in days if f.p95_latency_ms is not None), default=0)
    )
    slot = plot_w / max(1, len(days))
    bar_w = max(2.0, slot * 0.64)
    bars, points = [], []
    for index, (day, fig) in enumerate(days):
        x = LEFT + index * slot + (slot - bar_w) / 2
        ok_h = (fig.calls - fig.faults) / calls_max * plot_h
        fault_h = fig.faults / calls_max * plot_h
        bars.append(
            Bar(
                day,
                x,
                bar_w,
                base - ok_h,
                ok_h,
                base - ok_h - fault_h,
                fault_h,
                fig.calls,
                fig.faults,
                fig.p95_latency_ms,
            )
        )
        if fig.p95_latency_ms is not None:
            y = base - float(fig.p95_latency_ms) / latency_max * plot_h
            points.append(Point(x + bar_w / 2, y, f"{day:%d %b}: p95 {fig.p95_latency_ms} ms"))
    return UsageChart(
        WIDTH,
        HEIGHT,
        LEFT,
        WIDTH - RIGHT,
        TOP,
        base,
        tuple(bars),
        _axis(calls_max, base, plot_h),
        _axis(latency_max, base, plot_h),
        _day_ticks(days, slot),
        tuple(points),
        any(f.calls for _, f in days),
    )


def _axis(maximum: float, base: float, plot_h: float) -> tuple[Tick, ...]:
    return tuple(
        Tick(base - plot_h * i / TICKS, _label(maximum * i / TICKS)) for i in range(TICKS + 1)
    )


def _day_ticks(days: tuple[tuple[date, UsageFigures], ...], slot: float) -> tuple[Tick, ...]:
    """About six date labels, always including the last (today), so they never overlap."""
    every = max(1, math.ceil(len(days) / 6))
    last = len(days) - 1
    chosen = [i for i in range(len(days)) if (last - i) % every == 0]
    return tuple(Tick(LEFT + i * slot + slot / 2, f"{days[i][0]:%d %b}") for i in chosen)
