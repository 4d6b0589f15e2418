"""Reading Prometheus's text format in tests: samples by name and labels, and the names exposed."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def names(text: str) -> set[str]:
    """Every series name a query may use: the samples' names, and each family's derived names
    (a counter's `_total`, a histogram's `_bucket`/`_sum`/`_count`) even before a first sample."""
    exposed: set[str] = set()
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("_sum", "_count"),
    }
    for family in text_string_to_metric_families(text):
        exposed.add(family.name)
        exposed.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
        exposed.update(sample.name for sample in family.samples)
    return exposed
