"""Shared fixtures. Tests build their own tiny data; real MEAD clips are optional."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The real-data folder sits beside the checkout; LESBENCH_SHARED_DATA points elsewhere (a git
# worktree, a copy of the data on another disk).
SHARED_DATA = Path(os.environ.get("LESBENCH_SHARED_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def mead_dev() -> Path:
    """Real MEAD clips (research-only, never copied into the repo); skip when absent."""
    root = SHARED_DATA / "mead-dev"
    if not root.is_dir():
        pytest.skip("../shared/data/mead-dev not present")
    return root


@pytest.fixture(scope="session")
def speech_dev() -> Path:
    root = SHARED_DATA / "speech-dev"
    if not root.is_dir():
        pytest.skip("../shared/data/speech-dev not present")
    return root


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    """The ``--tiny`` synthetic demo data set (MEAD layout, seed 0), generated once per session:
    speakers W009 (test) and W011 (train); neutral level 1, happy levels 1 and 3, surprised
    level 3; sentence 001; ~1.1 s clips at 30 fps, 256x256, with ``truth.parquet``. Read-only:
    copy it before changing anything."""
    from lesbench.demo import generate_demo

    root = tmp_path_factory.mktemp("tiny_demo") / "mead"
    generate_demo(root, seed=0, tiny=True)
    return root


@pytest.fixture(scope="module")
def generator():
    """A generator loaded from the cached synthetic LES-Talker run (tests/_les_synthetic.py), on the CPU."""
    from _les_synthetic import trained_synthetic_run

    from lesbench.model.generate import load_generator

    _, run, _ = trained_synthetic_run()
    return load_generator(run, device="cpu")
