"""Synthetic MEAD-layout demo data set: real public-domain face photos animated into talking,
emoting clips with synthetic speech and per-frame ground truth.

    from lesbench.demo import generate_demo
    summary = generate_demo("demo-data", seed=0)          # ~176 clips, MEAD layout
    print(summary.describe())

See :mod:`lesbench.demo.generate` (layout, ground truth), :mod:`lesbench.demo.face` (the
face rig and FACS prototypes), :mod:`lesbench.demo.speech` (the synthesiser) and
:mod:`lesbench.demo.identities` (photos and their licences, also in ``LICENCES.md``).
Importing this package is cheap; the heavy modules load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lesbench.demo.generate import DemoConfig, DemoSummary, generate_demo, plan_clips

__all__ = ["generate_demo", "DemoSummary", "DemoConfig", "plan_clips"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from lesbench.demo import generate

        return getattr(generate, name)
    raise AttributeError(f"module 'lesbench.demo' has no attribute {name!r}")
