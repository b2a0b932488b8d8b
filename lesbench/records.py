"""Writing records (results, artefact metadata) as JSON: one conversion for every writer."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def json_safe(obj: Any) -> Any:
    """``obj`` with numpy arrays/scalars turned into Python values, non-finite floats into
    ``None`` (JSON has no NaN), paths into strings and dict keys into strings."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj
