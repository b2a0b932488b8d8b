"""Methods benchmarked by ``lesbench evaluate``, one module each (installed as ``lesbench.baselines``)."""
