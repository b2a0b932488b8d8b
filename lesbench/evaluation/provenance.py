"""What a results file records about where its numbers come from: the git revision, the
hardware, file digests, and the seed every random generator starts from."""

from __future__ import annotations

import os
import platform
import random
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from lesbench.weights import file_sha256


def git_revision(path: str | Path | None = None) -> str | None:
    """HEAD commit of the git checkout containing lesbench (None outside a checkout)."""
    here = Path(path) if path else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    rev = out.stdout.strip()
    if out.returncode != 0 or not rev:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, timeout=10)
    return rev + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def hardware_info(device: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "device": device or "cpu",
        "gpu": None,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # torch is a core dependency, but the evaluator does not need it
        info["torch"] = None
    info["summary"] = f"{info['cpu_count']} CPU ({info['machine']})" + (f", {info['gpu']}" if info["gpu"] else "")
    return info



def sha256_file(path: Path) -> str | None:
    """sha256 of the file at ``path``, or None when there is none."""
    return file_sha256(path) if path.is_file() else None


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass
