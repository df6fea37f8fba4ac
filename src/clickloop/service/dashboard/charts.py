"""Geometry of the dashboard's inline SVG: the CTR-per-iteration line chart and the CTR interval bars.

Pure values in, pure values out: the templates draw the shapes (and escape every label), so no markup
is built here. Coordinates are SVG user units (pixels at scale 1); the y axis of SVG points down.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from clickloop.service import schemas

WIDTH, HEIGHT = 640.0, 260.0
LEFT, RIGHT, TOP, BOTTOM = 56.0, 16.0, 16.0, 44.0
MAX_X_TICKS = 12
BAR_WIDTH = 120.0
MIN_SCALE = 0.01  # a chart of CTRs that are all 0 still spans 0-1%


@dataclass(frozen=True)
class Tick:
    """An axis tick: ``pos`` along its axis (SVG units) and its label."""

    pos: float
    label: str


@dataclass(frozen=True)
class ChartPoint:
    """One iteration's pool CTR. ``low_y``/``high_y``: its 95% interval, clipped to the plot area.
    ``empty``: the pool had no impressions (its CTR is shown as 0 and its interval is meaningless)."""

    iteration: int
    x: float
    y: float
    low_y: float
    high_y: float
    ctr: float
    impressions: int
    clicks: int
    empty: bool


@dataclass(frozen=True)
class LineChart:
    """Everything the template needs to draw the chart; ``line``/``band``: SVG ``points`` strings."""

    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float
    points: tuple[ChartPoint, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    line: str
    band: str


@dataclass(frozen=True)
class Bar:
    """A CTR with its 95% interval on a shared scale: the interval from ``low_x`` to ``high_x``, a
    mark at ``ctr_x`` (SVG units within :data:`BAR_WIDTH`)."""

    low_x: float
    high_x: float
    ctr_x: float
    width: float = BAR_WIDTH


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is >= ``value`` (> 0)."""
    if value <= 0:
        raise ValueError(f"value ({value}) must be > 0")
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in (1.0, 2.0, 2.5, 5.0, 10.0) if step * power >= value * (1 - 1e-12))


def axis_values(maximum: float) -> list[float]:
    """Round tick values from 0 to the first one >= ``maximum`` (> 0), in at most 5 equal steps."""
    step = nice_ceiling(maximum / 5)
    return [step * k for k in range(math.ceil(maximum / step - 1e-9) + 1)]


def percent(fraction: float) -> str:
    """A CTR fraction as a one-decimal percentage (the paper's notation): 0.0345 -> ``3.5%``."""
    return f"{fraction * 100:.1f}%"


def scale_for(stats: Sequence[schemas.Stats]) -> float:
    """A shared axis maximum (a fraction) that holds every CTR and every interval with impressions."""
    return _ticks(stats)[-1]


def _ticks(stats: Sequence[schemas.Stats]) -> list[float]:
    highs = [s.ctr_high if s.impressions else s.ctr for s in stats]
    return axis_values(max([MIN_SCALE, *highs]))


def bar(stats: schemas.Stats, scale: float) -> Bar:
    """``stats`` drawn on ``0..scale`` (a fraction, from :func:`scale_for`)."""

    def x(fraction: float) -> float:
        return round(min(fraction / scale, 1.0) * BAR_WIDTH, 2)

    return Bar(low_x=x(stats.ctr_low), high_x=x(stats.ctr_high), ctr_x=x(stats.ctr))


def ctr_chart(history: Sequence[schemas.Pool]) -> LineChart | None:
    """Pool CTR (clicks / impressions of shown items) per iteration, with its 95% interval as a band;
    None before the first pool."""
    if not history:
        return None
    ticks = _ticks([pool.stats for pool in history])
    scale = ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    first, last = history[0].iteration, history[-1].iteration
    span = last - first

    def x(iteration: int) -> float:
        return round(LEFT + (plot_w / 2 if span == 0 else (iteration - first) / span * plot_w), 2)

    def y(fraction: float) -> float:
        return round(TOP + plot_h * (1 - min(fraction / scale, 1.0)), 2)

    points = tuple(
        ChartPoint(
            iteration=pool.iteration,
            x=x(pool.iteration),
            y=y(pool.stats.ctr),
            low_y=y(pool.stats.ctr_low if pool.stats.impressions else pool.stats.ctr),
            high_y=y(pool.stats.ctr_high if pool.stats.impressions else pool.stats.ctr),
            ctr=pool.stats.ctr,
            impressions=pool.stats.impressions,
            clicks=pool.stats.clicks,
            empty=pool.stats.impressions == 0,
        )
        for pool in history
    )
    step = max(1, math.ceil((span + 1) / MAX_X_TICKS))
    x_ticks = tuple(Tick(x(i), str(i)) for i in range(first, last + 1, step))
    y_ticks = tuple(Tick(y(value), f"{round(value * 100, 6):g}%") for value in ticks)
    line = " ".join(f"{p.x},{p.y}" for p in points)
    band = " ".join([*(f"{p.x},{p.high_y}" for p in points), *(f"{p.x},{p.low_y}" for p in reversed(points))])
    return LineChart(WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM, points, x_ticks, y_ticks, line, band)
