"""The freshness histogram, the stored time read off a delivery, and their way to ``/metrics``."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from projections.freshness import FRESHNESS_BOUNDS_S, FreshnessHistogram
from services.read_side import ChildStatus
from services.store.feed import stream_position_of
from services.web.metrics import freshness_family
from tests.bench.up_process import freshness_from_metrics


def test_ages_land_in_their_buckets_and_quantiles_interpolate_inside_them() -> None:
    histogram = FreshnessHistogram()
    histogram.observe([0.001] * 50 + [0.012] * 40 + [0.047] * 9 + [99.0])
    assert histogram.count == 100
    assert histogram.sum_s == pytest.approx(0.05 + 0.48 + 0.423 + 99.0)
    cumulative = dict(histogram.cumulative())
    assert (cumulative[0.0025], cumulative[0.015], cumulative[0.05]) == (50, 90, 99)
    assert cumulative[float("inf")] == 100
    # Rank 50 is the top of the first bucket; rank 70 is halfway through (0.01, 0.015].
    assert histogram.quantile(0.5) == pytest.approx(0.0025)
    assert histogram.quantile(0.7) == pytest.approx(0.0125)
    assert histogram.quantile(0.99) == pytest.approx(0.05)
    assert histogram.quantile(1.0) == FRESHNESS_BOUNDS_S[-1]  # past the last bound
    assert FreshnessHistogram().quantile(0.99) is None


def test_ages_come_from_stored_times_and_unknown_ones_are_left_out() -> None:
    histogram = FreshnessHistogram()
    histogram.observe_stored([1_000_000_000, 0, 1_030_000_000], visible_ns=1_040_000_000)
    assert histogram.count == 2
    assert histogram.sum_s == pytest.approx(0.04 + 0.01)


def test_the_difference_of_two_snapshots_is_what_came_between() -> None:
    histogram = FreshnessHistogram()
    histogram.observe([0.001, 0.2])
    earlier = FreshnessHistogram.from_dict(histogram.to_dict())
    histogram.observe([0.02, 0.02])
    between = histogram.minus(earlier)
    assert between.count == 2
    assert between.quantile(1.0) == pytest.approx(0.02)


@pytest.mark.parametrize("value", [None, {}, {"counts": [1, 2]}, {"counts": "x"},
                                   {"counts": [1.5] * (len(FRESHNESS_BOUNDS_S) + 1)}])
def test_a_malformed_snapshot_reads_as_an_empty_histogram(value: Any) -> None:
    assert FreshnessHistogram.from_dict(value).count == 0


@pytest.mark.parametrize(("reply", "seq", "stored_ns"), [
    ("$JS.ACK.RUNLOG.ordered.1.42.40.1764700000123456789.0", 42, 1764700000123456789),
    ("$JS.ACK.hub.ACCHASH.RUNLOG.ordered.1.42.40.1764700000123456789.0.r4nd0m", 42,
     1764700000123456789),
])
def test_a_deliverys_ack_subject_gives_its_stream_sequence_and_stored_time(
        reply: str, seq: int, stored_ns: int) -> None:
    assert stream_position_of(SimpleNamespace(reply=reply)) == (seq, stored_ns)  # type: ignore[arg-type]


def test_the_child_sends_its_histogram_on_its_status_line() -> None:
    histogram = FreshnessHistogram()
    histogram.observe([0.004, 0.03])
    line = json.dumps(ChildStatus(position=7, freshness=histogram.to_dict()).to_dict())
    status = ChildStatus.from_line(line.encode())
    assert status is not None
    assert FreshnessHistogram.from_dict(status.freshness) == histogram


class _Families(Collector):
    def __init__(self, family: Metric) -> None:
        self._family = family

    def collect(self) -> list[Metric]:
        return [self._family]


def test_metrics_serve_it_as_a_prometheus_histogram_that_reads_back_the_same() -> None:
    histogram = FreshnessHistogram()
    histogram.observe([0.003, 0.011, 0.011, 0.6, 45.0])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(freshness_family({"read_models": histogram})))
    text = generate_latest(registry).decode()
    assert 'runlog_projector_freshness_seconds_bucket{le="0.0025",projector="read_models"} 0.0' \
        in text
    assert 'runlog_projector_freshness_seconds_count{projector="read_models"} 5.0' in text
    assert freshness_from_metrics(text) == histogram
    assert freshness_from_metrics(text, projector="other").count == 0
