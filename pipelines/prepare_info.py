"""``dataset.json`` as ``prepare`` writes it: what the data set is (source, reader, splits,
settings), how it was made (every stage's version and model files, the face model) and what it
holds (counts, files that could not be placed, the path templates), as a
:class:`~lesbench.prepared.DatasetInfo`.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import lesbench
from lesbench.errors import DatasetError
from lesbench.pipelines.prepare_config import PrepareConfig
from lesbench.pipelines.stages import describe_stages
from lesbench.prepared import DatasetInfo, PreparedDataset


def build_dataset_info(data: PreparedDataset, root: Path, dataset: str, reader: Any, views: Sequence[str],
                       config: PrepareConfig, test_speakers: Sequence[str] | None, val_speakers: Sequence[str],
                       face_model: "str | os.PathLike | None", fm_info: dict[str, Any], rows: list[dict[str, Any]],
                       skipped: list[tuple[str, str]]) -> DatasetInfo:
    """The ``dataset.json`` of a run that read ``root`` with ``reader`` into ``data`` and gave
    the manifest ``rows``; ``fm_info``: the face model's provenance (``fit_s`` is left out)."""
    return DatasetInfo(
        lesbench_version=lesbench.__version__,
        created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        source_root=str(root.resolve()),
        dataset=dataset,
        reader=reader.config() if hasattr(reader, "config") else {"dataset": dataset},
        config={
            **asdict(config),
            "dataset": dataset,
            "views": list(views),
            "test_speakers": list(getattr(reader, "test_speakers", test_speakers or ())),
            "val_speakers": list(getattr(reader, "val_speakers", val_speakers)),
            "face_model": str(face_model) if face_model else None,
        },
        fps=config.fps,
        sample_rate=config.sample_rate,
        hop=int(round(config.sample_rate / config.fps)),
        crop_size=config.crop_size,
        extractors=describe_stages(config),
        face_model={k: v for k, v in fm_info.items() if k != "fit_s"},
        counts={"clips": len(rows), "by_status": dict(sorted(Counter(r["status"] for r in rows).items())),
                "by_split": dict(sorted(Counter(r["split"] for r in rows).items()))},
        skipped_files=[{"path": p, "reason": r} for p, r in skipped],
        # lesbench's synthetic demo data: recorded so its results are never labelled MEAD,
        # even after the source tree is deleted (lesbench.evaluation.dataset_label)
        demo=demo_card(root),
        imports=kept_imports(data.root) or None,
    )


def kept_imports(out: Path) -> dict[str, Any]:
    """``imports`` entries of the previous dataset.json (``lesbench import-coeffs``) whose
    record file still exists: a re-run of prepare keeps documenting them. An unreadable or
    foreign earlier file keeps nothing (it is about to be replaced)."""
    try:
        old = PreparedDataset(out).info
    except (DatasetError, OSError):
        return {}
    imports = old.imports if old is not None and isinstance(old.imports, dict) else {}
    return {k: v for k, v in sorted(imports.items()) if isinstance(v, dict) and v.get("record")
            and (out / str(v["record"])).is_file()}


def demo_card(root: Path) -> dict[str, Any] | None:
    """The demo generator's card (``demo.json``: generator, version, seed) when ``root`` is
    lesbench's synthetic demo data, else None."""
    card = root / "demo.json"
    if not card.is_file():
        return None
    try:
        meta = json.loads(card.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("generator") != "lesbench.demo":
        return None
    return {k: meta.get(k) for k in ("generator", "generator_version", "seed", "tiny")}
