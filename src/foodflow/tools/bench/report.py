"""From a LoadResult to figures: HDR percentiles, sustained throughput, accounting, JSON, plot."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from foodflow.tools.bench.load import LoadResult

log = logging.getLogger(__name__)

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
# 1 µs to 10 min at 3 significant digits.
HDR_RANGE_US = (1, 600_000_000, 3)


def latency_stats(latencies_s: list[float]) -> dict[str, float | int]:
    """Percentiles in milliseconds from an HDR histogram of microseconds."""
    hist = HdrHistogram(*HDR_RANGE_US)
    for value in latencies_s:
        hist.record_value(max(1, int(value * 1_000_000)))
    stats: dict[str, float | int] = {"count": hist.get_total_count()}
    for p in PERCENTILES:
        stats[f"p{p:g}_ms"] = round(hist.get_value_at_percentile(p) / 1000, 2)
    stats["max_ms"] = round(hist.get_max_value() / 1000, 2)
    stats["mean_ms"] = round(hist.get_mean_value() / 1000, 2)
    return stats


def summarize(res: LoadResult, duration: float) -> dict[str, Any]:
    """Everything the run measured; orders due in the warm-up are left out of the figures."""
    t0 = res.started
    window_start, window_end = t0 + res.warmup, t0 + duration
    measured = [i for i, due in enumerate(res.due) if window_start <= due < window_end]
    # Latency is the customer's wait for a confirmation: FAILED orders (counted as errors) are
    # left out, so a fast failure cannot flatter the figures.
    confirmed = [i for i in measured if res.status[i] == "CONFIRMED"]
    confirmed_lat = [c - res.due[i] for i in confirmed if (c := res.confirmed_at[i]) is not None]
    persisted_lat = [p - res.due[i] for i in confirmed if (p := res.persisted_at[i]) is not None]
    span = window_end - window_start
    # Sustained: orders that completed inside the window, whenever they were sent.
    confirmed_in_window = sum(
        1 for c in res.confirmed_at if c is not None and window_start <= c < window_end
    )
    persisted_in_window = sum(
        1 for p in res.persisted_at if p is not None and window_start <= p < window_end
    )
    statuses: dict[str, int] = {}
    for s in res.status:
        statuses[s or "NO_FINAL_EVENT"] = statuses.get(s or "NO_FINAL_EVENT", 0) + 1
    sent = res.sent
    finished = sum(1 for s in res.status if s is not None)
    persisted = sum(1 for p in res.persisted_at if p is not None)
    redis_ok = sum(res.redis_ok)
    errors = {
        "produce_errors": res.produce_errors,
        "failed_orders": sent - statuses.get("CONFIRMED", 0) - statuses.get("NO_FINAL_EVENT", 0),
        "no_final_event": statuses.get("NO_FINAL_EVENT", 0),
        "not_persisted": sent - persisted,
        "redis_mismatch": finished - redis_ok,
    }
    return {
        "sent": sent,
        "offered_per_s": round(sent / max(1e-9, res.send_end - t0), 1),
        "statuses": statuses,
        "persisted": persisted,
        "redis_verified": redis_ok,
        "accounted": sent == sum(statuses.values())
        and errors["no_final_event"] == 0
        and errors["not_persisted"] == 0,
        "errors": errors,
        "error_total": sum(errors.values()),
        "measured_orders": len(measured),
        "window_seconds": round(span, 3),
        "throughput_confirmed_per_s": round(confirmed_in_window / span, 1),
        "throughput_persisted_per_s": round(persisted_in_window / span, 1),
        "latency_confirmed": latency_stats(confirmed_lat),
        "latency_persisted": latency_stats(persisted_lat),
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))


def plot(path: Path, res: LoadResult, title: str) -> None:
    """Latency over time (every order) and the latency percentile curve, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    due = np.array(res.due) - res.started
    fig, (over_time, curve) = plt.subplots(1, 2, figsize=(14, 5))
    for label, seen, colour in (
        ("CONFIRMED event", res.confirmed_at, "tab:blue"),
        ("row in PostgreSQL", res.persisted_at, "tab:orange"),
    ):
        pairs = [(d, s - res.started - d) for d, s in zip(due, seen, strict=True) if s is not None]
        if not pairs:
            continue
        x, y = np.array(pairs).T
        over_time.scatter(x, y * 1000, s=2, alpha=0.4, color=colour, label=label)
        lat = np.sort(y * 1000)
        ranks = np.arange(1, len(lat) + 1) / len(lat)
        keep = ranks < 1.0
        curve.plot(1 / (1 - ranks[keep]), lat[keep], color=colour, label=label)
    over_time.axvline(res.warmup, color="grey", linestyle="--", label="end of warm-up")
    over_time.set(
        xlabel="scheduled send time (s)",
        ylabel="latency (ms)",
        yscale="log",
        title="latency over time",
    )
    over_time.legend(loc="upper left", markerscale=4)
    curve.set(
        xscale="log",
        yscale="log",
        xlabel="percentile",
        ylabel="latency (ms)",
        title="latency by percentile",
    )
    ticks = [2, 10, 100, 1000, 10000]
    curve.set_xticks(ticks, ["50%", "90%", "99%", "99.9%", "99.99%"])
    curve.legend(loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
