"""Shared fixtures. Tests build their own tiny data; real MEAD clips are optional."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


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
