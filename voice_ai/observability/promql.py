"""PromQL expressions shared by the Grafana dashboard and the alert rules.

Built from ``METRIC_NAMES`` so a renamed metric changes every panel and rule at once. ``window``
is a PromQL range: ``"5m"`` in alert rules, ``"$__rate_interval"`` in Grafana panels.

Definitions (docs/metrics.md):

- success rate: completed / (completed + failed) calls. Rejections (busy, over
  MAX_CONCURRENT_CALLS) are capacity, shown on their own, not failures.
- error rate: errors (any component) per agent turn.
- node CPU/memory/disk: Ray's per-node gauges, percent, one series per node.
"""

from __future__ import annotations

import re

from voice_ai.observability.metrics import METRIC_NAMES

__all__ = [
    "RAY_METRICS",
    "avg_latency",
    "error_rate",
    "metric_names_in",
    "node_cpu_percent",
    "node_disk_percent",
    "node_memory_percent",
    "p95_latency",
    "quantile_latency",
    "success_rate",
]

# Ray's node gauges (ray/dashboard/modules/reporter/reporter_agent.py, exported with "ray_"),
# labels: ip, SessionName (and instance, job from the scrape).
RAY_METRICS = frozenset({
    "ray_node_cpu_utilization",
    "ray_node_mem_used",
    "ray_node_mem_total",
    "ray_node_disk_usage",
    "ray_node_disk_free",
})


def _n(key: str) -> str:
    return METRIC_NAMES[key]


def quantile_latency(key: str, q: float, window: str, by: str = "") -> str:
    """``q`` quantile of the histogram ``METRIC_NAMES[key]``, optionally per label ``by``."""
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({_n(key)}_bucket[{window}])))"


def avg_latency(key: str, window: str, by: str = "") -> str:
    """Mean of the histogram ``METRIC_NAMES[key]`` over ``window``."""
    agg = f"sum by ({by})" if by else "sum"
    name = _n(key)
    return f"{agg} (rate({name}_sum[{window}])) / {agg} (rate({name}_count[{window}]))"


def p95_latency(window: str) -> str:
    return quantile_latency("response_latency", 0.95, window)


def success_rate(window: str) -> str:
    ended = _n("calls_ended")
    return (
        f'sum(rate({ended}{{outcome="completed"}}[{window}])) '
        f'/ sum(rate({ended}{{outcome=~"completed|failed"}}[{window}]))'
    )


def error_rate(window: str) -> str:
    return f"sum(rate({_n('errors')}[{window}])) / sum(rate({_n('turns')}[{window}]))"


def node_cpu_percent() -> str:
    return "ray_node_cpu_utilization"


def node_memory_percent() -> str:
    return "100 * ray_node_mem_used / ray_node_mem_total"


def node_disk_percent() -> str:
    return "100 * ray_node_disk_usage / (ray_node_disk_usage + ray_node_disk_free)"


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
    "offset", "inf", "nan",
})


def metric_names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        rest = text[match.end():].lstrip()
        if rest.startswith("(") or match.group(0).lower() in _KEYWORDS:
            continue
        names.add(match.group(0))
    return names
