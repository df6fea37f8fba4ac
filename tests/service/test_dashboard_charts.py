"""Geometry of the dashboard's SVG chart and interval bars (``service/dashboard/charts.py``)."""

import pytest

from clickloop.service import schemas
from clickloop.service.dashboard import charts


def stats(impressions, clicks, low=0.0, high=1.0):
    ctr = clicks / impressions if impressions else 0.0
    return schemas.Stats(impressions=impressions, clicks=clicks, ctr=ctr, ctr_low=low, ctr_high=high)


def pool(iteration, impressions, clicks, low, high):
    return schemas.Pool(iteration=iteration, created_at=0.0, stats=stats(impressions, clicks, low, high), items=[])


@pytest.mark.parametrize(
    ("value", "expected"), [(0.003, 0.005), (0.01, 0.01), (0.011, 0.02), (0.021, 0.025), (0.3, 0.5), (7, 10)]
)
def test_nice_ceiling(value, expected):
    assert charts.nice_ceiling(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_nice_ceiling_needs_a_positive_value(value):
    with pytest.raises(ValueError, match=r"must be > 0"):
        charts.nice_ceiling(value)


@pytest.mark.parametrize(
    ("maximum", "ticks"),
    [(0.271, [0, 0.1, 0.2, 0.3]), (0.01, [0, 0.002, 0.004, 0.006, 0.008, 0.01]), (1.0, [0, 0.2, 0.4, 0.6, 0.8, 1.0])],
)
def test_axis_values_are_round_and_cover_the_maximum(maximum, ticks):
    assert charts.axis_values(maximum) == pytest.approx(ticks)


def test_chart_has_one_point_per_iteration_inside_the_plot():
    history = [pool(0, 100, 10, 0.05, 0.17), pool(1, 100, 20, 0.13, 0.29), pool(2, 0, 0, 0.0, 1.0)]
    chart = charts.ctr_chart(history)
    assert chart is not None
    assert [p.iteration for p in chart.points] == [0, 1, 2] and [p.empty for p in chart.points] == [False] * 2 + [True]
    assert chart.points[0].x == chart.left and chart.points[-1].x == chart.width - chart.right
    bottom = chart.height - chart.bottom
    assert all(chart.top <= p.high_y <= p.y <= p.low_y <= bottom for p in chart.points)
    assert chart.points[2].y == bottom  # no impressions: drawn at 0, its [0, 1] interval ignored
    assert [t.label for t in chart.y_ticks] == ["0%", "10%", "20%", "30%"]
    assert [t.label for t in chart.x_ticks] == ["0", "1", "2"]
    assert len(chart.line.split()) == 3 and len(chart.band.split()) == 6


def test_single_iteration_is_centred_and_empty_history_has_no_chart():
    chart = charts.ctr_chart([pool(0, 0, 0, 0.0, 1.0)])
    assert chart is not None and chart.points[0].x == pytest.approx((chart.left + chart.width - chart.right) / 2)
    assert charts.ctr_chart([]) is None


def test_many_iterations_thin_out_the_x_ticks():
    chart = charts.ctr_chart([pool(i, 10, 1, 0.01, 0.4) for i in range(40)])
    assert chart is not None and len(chart.x_ticks) <= charts.MAX_X_TICKS and len(chart.points) == 40


def test_bar_clips_to_its_scale():
    scale = charts.scale_for([stats(10, 5, 0.2, 0.8), stats(0, 0)])
    assert scale == pytest.approx(0.8)
    bar = charts.bar(stats(10, 5, 0.2, 0.8), scale)
    assert (bar.low_x, bar.ctr_x, bar.high_x) == pytest.approx((30.0, 75.0, 120.0))
    assert charts.bar(stats(10, 9, 0.6, 0.99), 0.5).high_x == charts.BAR_WIDTH
    assert charts.percent(0.0345) == "3.5%"
