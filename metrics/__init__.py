"""Metric suite and evaluation protocols (installed as ``lesbench.metrics``)."""
