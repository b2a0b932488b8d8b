"""Which clips ``lesbench evaluate`` generates: the test split under the protocol's selection,
the source image of each, and the name of the evaluated data set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lesbench.metrics.protocol import canonical_clip_id, read_clip_list


def dataset_label(info: dict[str, Any], data: str | Path) -> str:
    """Name of the evaluated data set in results and tables.

    A prepared set of lesbench's synthetic demo is labelled ``lesbench-demo`` even though it was
    read with the MEAD reader, so demo numbers are never shown as MEAD numbers. It is recognised
    by a ``demo`` entry in ``dataset.json`` (the demo card, when prepare records it) or by the
    demo generator's ``demo.json`` in the recorded source root (or reader root).
    """
    if info.get("name"):
        return str(info["name"])
    if info.get("demo"):
        return "lesbench-demo"
    reader = info.get("reader") if isinstance(info.get("reader"), dict) else {}
    roots = {info.get("source_root"), reader.get("root")} - {None, ""}
    for root in roots:
        card = Path(str(root)) / "demo.json"
        if card.is_file():
            try:
                gen = json.loads(card.read_text()).get("generator", "lesbench.demo")
            except (OSError, ValueError, AttributeError):
                gen = "lesbench.demo"  # a demo.json that is not ours to parse still marks demo data
            if str(gen).startswith("lesbench"):
                return "lesbench-demo"
    return str(info.get("dataset") or Path(data).resolve().name)


# ----------------------------------------------------------------------------------- selection

def test_clips(data: Any, protocol: Any, clips: Any = None) -> list[dict[str, Any]]:
    """Rows of the test split, in the protocol's views (when the data has any of them), sorted
    by clip id; with the protocol's ``clips_per_condition`` = N, only the first N clips of each
    speaker x view x emotion x level (``demo-v1``: one level-3 clip per emotion, plus neutral).
    Only the protocol's ``levels`` are kept (neutral clips always); with the protocol's
    ``filter_speakers`` only its ``test_speakers``; with a clip list (``clips``: a file or ids,
    else the protocol's ``clip_list``) only the listed clips."""
    test = data.split("test")
    if getattr(protocol, "filter_speakers", False) and "speaker" in test.columns:
        test = test[test["speaker"].astype(str).isin(tuple(protocol.test_speakers))]
    listed = listed_clips(protocol, clips)
    if listed is not None:
        test = test[test["clip_id"].astype(str).isin(listed)]
    views = tuple(getattr(protocol, "views", ()) or ())
    if views and "view" in test.columns and test["view"].isin(views).any():
        test = test[test["view"].isin(views)]
    levels = tuple(getattr(protocol, "levels", ()) or ())
    if levels and "level" in test.columns:  # neutral has level 1 only: it is always kept
        test = test[test["level"].isin(levels) | (test["emotion"] == "neutral")]
    rows = sorted(test.to_dict("records"), key=lambda r: str(r["clip_id"]))
    per = getattr(protocol, "clips_per_condition", None)
    if per:
        by = tuple(getattr(protocol, "clips_by", ("speaker", "view", "emotion", "level")))
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(tuple(str(r.get(k, "")) for k in by), []).append(r)
        kept = []
        for i, cond in enumerate(sorted(groups)):
            cands = groups[cond]
            if "speaker" not in by:  # rotate the speaker over conditions: all speakers represented
                speakers = sorted({str(r["speaker"]) for r in cands})
                first = speakers[i % len(speakers)]
                cands = [r for r in cands if str(r["speaker"]) == first] + \
                        [r for r in cands if str(r["speaker"]) != first]
            kept += cands[: int(per)]
        rows = sorted(kept, key=lambda r: str(r["clip_id"]))
    return rows


def listed_clips(protocol: Any, clips: Any = None) -> tuple[str, ...] | None:
    """Clip ids of the clip list ``clips`` (a file, or a sequence of ids/EAT names), else of the
    protocol's ``clip_list``; None when there is none."""
    source = clips if clips is not None else getattr(protocol, "clip_list", None)
    if source is None:
        return None
    if isinstance(source, (str, Path)):
        return read_clip_list(source)
    return tuple(canonical_clip_id(str(c)) or str(c) for c in source)


def choose_source(data: Any, row: dict[str, Any]) -> str:
    """The clip whose first crop frame is the source image of test clip ``row``."""
    clips = data.clips
    same = clips[(clips["speaker"] == row["speaker"]) & (clips["emotion"] == "neutral")]
    if "view" in clips.columns and (same["view"] == row.get("view")).any():
        same = same[same["view"] == row.get("view")]
    ids = sorted(str(c) for c in same["clip_id"])
    others = [c for c in ids if c != row["clip_id"]]
    if others:
        return others[0]
    if ids:
        return ids[0]
    return str(row["clip_id"])  # no neutral clip of this speaker: the clip's own first frame

