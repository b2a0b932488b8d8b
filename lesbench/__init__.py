"""lesbench: emotional talking-head preprocessing, LES-Talker, and benchmark toolkit.

Importing this package is cheap on purpose: heavy libraries (torch, mediapipe, dask, av)
are imported inside the functions that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
