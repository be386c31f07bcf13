"""Prometheus metrics of one server, served at ``/metrics`` by ``nanhu serve --metrics HOST:PORT``.

Counted as calls happen (:meth:`Metrics.observe_rpc`, :meth:`Metrics.observe_stages`):

- ``nanhu_rpc_requests_total{rpc, code}``: calls of each RPC by status code (``OK`` included);
- ``nanhu_rpc_errors_total{rpc, code}``: the same, calls that did not end ``OK`` only;
- ``nanhu_rpc_duration_seconds{rpc}``: latency histogram per RPC, as the server sees it;
- ``nanhu_stage_duration_seconds{stage}``: time in each stage of the heavy work, measured in the
  worker processes: ``decode`` (demuxing and decoding the media), ``fingerprint`` (the rest of
  making the fingerprint: spectra, peaks, hashes, frame embeddings), ``match`` (candidates,
  alignment, scoring).

Read from the server's state at each scrape (:class:`StateCollector`):

- ``nanhu_calls_in_flight`` and ``nanhu_calls_limit``: heavy calls (uploads, fingerprinting,
  matching) holding a concurrency slot, and ``--max-concurrent``;
- ``nanhu_uploads_open``: uploads being received into the spool;
- ``nanhu_worker_processes``, ``nanhu_worker_jobs`` (handed to the pool, queued or running) and
  ``nanhu_worker_queue_depth`` (jobs waiting for a free worker);
- ``nanhu_worker_restarts_total``: workers replaced after their process died (crash, kill, a
  job over budget); ``nanhu_jobs_over_budget_total{budget}``: jobs stopped for going over the
  CPU-time (``cpu``) or memory (``memory``) budget;
- ``nanhu_catalog_references``, ``nanhu_catalog_hours``, ``nanhu_catalog_generation``,
  ``nanhu_catalog_index_bytes{modality}``: the catalog the read side serves.

Each server has its own registry (tests run several servers in one process); the endpoint has no
authentication, so bind it to an address only the monitoring system reaches.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from nanhu.engine.errors import InvalidArgument, NanhuError

if TYPE_CHECKING:
    from nanhu.server.servicers import Shared

log = logging.getLogger(__name__)

#: seconds; from a cached catalog read to a long film's upload, fingerprint and match
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   120.0, 300.0, 900.0)
STAGES = ("decode", "fingerprint", "match")


class Metrics:
    """The counters and histograms of one server, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("nanhu_rpc_requests", "RPCs handled, by RPC and status code",
                                ["rpc", "code"], registry=self.registry)
        self.errors = Counter("nanhu_rpc_errors", "RPCs that did not end OK, by RPC and status code",
                              ["rpc", "code"], registry=self.registry)
        self.latency = Histogram("nanhu_rpc_duration_seconds", "RPC latency as the server sees it",
                                 ["rpc"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.stages = Histogram("nanhu_stage_duration_seconds",
                                "time per stage of the work on one piece of media "
                                "(decode, fingerprint, match)",
                                ["stage"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self._http = None

    def observe_rpc(self, rpc: str, code: str, seconds: float) -> None:
        self.requests.labels(rpc, code).inc()
        if code != "OK":
            self.errors.labels(rpc, code).inc()
        self.latency.labels(rpc).observe(seconds)

    def observe_stages(self, stages: dict[str, float]) -> None:
        """Record one job's stage times (seconds per stage name)."""
        for stage, seconds in stages.items():
            self.stages.labels(stage).observe(seconds)

    def sample(self, name: str, **labels: str) -> float:
        """The current value of one sample (``nanhu_rpc_requests_total``, rpc=..., code=...);
        0 when it was never counted."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def watch(self, shared: Shared) -> None:
        """Report the state of ``shared`` (a :class:`server.servicers.Shared`) at each scrape."""
        self.registry.register(StateCollector(shared))

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` over HTTP on ``host:port`` (0: any free port); returns the port."""
        try:
            httpd, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise InvalidArgument(f"cannot serve metrics on {host}:{port} ({exc.strerror or exc})") from exc
        self._http = httpd
        return httpd.server_address[1]

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


class StateCollector(Collector):
    """Gauges read from the server's state when Prometheus scrapes (nothing to keep in step)."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        s = self.shared
        yield _gauge("nanhu_calls_in_flight", "heavy calls holding a concurrency slot",
                     s.limiter.in_flight)
        yield _gauge("nanhu_calls_limit", "concurrency limit (--max-concurrent)", s.limiter.limit)
        yield _gauge("nanhu_uploads_open", "uploads being received into the spool",
                     s.spool.open_uploads)
        jobs = s.pool.jobs
        yield _gauge("nanhu_worker_processes", "worker processes in the pool", s.pool.workers)
        yield _gauge("nanhu_worker_jobs", "jobs handed to the worker pool, queued or running", jobs)
        yield _gauge("nanhu_worker_queue_depth", "jobs waiting for a free worker",
                     max(0, jobs - s.pool.workers))
        restarts = CounterMetricFamily("nanhu_worker_restarts",
                                       "workers replaced after their process died")
        restarts.add_metric([], s.pool.restarts)
        yield restarts
        over = CounterMetricFamily("nanhu_jobs_over_budget",
                                   "jobs stopped for going over a CPU-time or memory budget",
                                   labels=["budget"])
        for budget, count in sorted(s.pool.over_budget.items()):
            over.add_metric([budget], count)
        yield over
        with self._lock:
            try:
                stats = s.core.stats()
            except NanhuError as exc:  # a catalog being replaced or damaged: no catalog gauges
                log.warning("metrics: catalog statistics unavailable (%s)", exc)
                return
        yield _gauge("nanhu_catalog_references", "references in the catalog", stats["references"])
        yield _gauge("nanhu_catalog_hours", "hours of reference media in the catalog", stats["hours"])
        yield _gauge("nanhu_catalog_generation", "the catalog generation the server reads",
                     stats["generation"])
        index = GaugeMetricFamily("nanhu_catalog_index_bytes", "bytes of index per modality",
                                  labels=["modality"])
        index.add_metric(["audio"], stats["audio_index_bytes"])
        index.add_metric(["video"], stats["video_index_bytes"])
        yield index


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
