"""Data-set readers and the Dask ``prepare`` pipeline (installed as ``lesbench.pipelines``)."""
