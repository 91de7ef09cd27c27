"""Prometheus metrics of the order writer, on a registry of its own (one per app instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WriterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.rows_written = Counter(
            "foodflow_order_writer_rows_written",
            "Rows inserted or updated, per table",
            ["table"],
            registry=self.registry,
        )
        self.events = Counter(
            "foodflow_order_writer_events",
            "Final order events consumed, by outcome (written, stale, superseded, dead_letter)",
            ["outcome"],
            registry=self.registry,
        )
        self.batches = Counter(
            "foodflow_order_writer_batches", "Batches written and committed", registry=self.registry
        )
        self.dead_letters = Counter(
            "foodflow_order_writer_dead_letters",
            "Messages sent to the dead-letter topic",
            registry=self.registry,
        )
        # An alert: a final order PostgreSQL refused is missing from the system of record.
        self.rejects = Counter(
            "foodflow_order_writer_rejects",
            "Final order events PostgreSQL refused (dead-lettered): orders missing from the record",
            registry=self.registry,
        )
        self.batch_write_seconds = Histogram(
            "foodflow_order_writer_batch_write_seconds",
            "Time to write one batch to PostgreSQL, retries included",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "foodflow_order_writer_consumer_lag",
            "Messages not yet consumed on the assigned partitions (at scrape time)",
            registry=self.registry,
        )
        self.last_batch = Gauge(
            "foodflow_order_writer_last_batch_timestamp_seconds",
            "Unix time of the last batch written",
            registry=self.registry,
        )
