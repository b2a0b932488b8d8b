"""Finding the clips to score: from folders (``lesbench score``) or given as items (``evaluate``).

Inputs (PRED and REF alike):

- a **MEAD-layout tree** (``M003/video/front/angry/level_3/001.mp4``): clips keyed by
  ``clip_id`` (``M003_front_angry_3_001``), emotion and level from the path
  (``lesbench.pipelines.mead``);
- a **prepared data set** (``dataset.json`` present, read through
  :class:`~lesbench.prepared.PreparedDataset`): the aligned crops with their muxed audio,
  emotion/level from the clips table;
- any other **folder of videos**: clips keyed by relative path without suffix; an emotion
  name (``angry``...) or ``level_N`` among the path parts is picked up; a file named like a
  MEAD clip id (``M003_front_angry_3_001.mp4``) is keyed by that id, so a flat folder of
  generated videos pairs with a MEAD reference tree.

PRED and REF clips pair by key, or by the clip id both keys name (an EAT-style file
``W009_con_3_028.mp4`` pairs with the MEAD clip ``W009_front_contempt_3_028``). A clip list
and the protocol's ``test_clips.filter_speakers`` select the clips scored; every clip left out
is listed with the reason. The result is a list of :class:`ScoreItem`, what the scorer reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from lesbench.errors import DatasetError
from lesbench.metrics.protocol import Protocol, canonical_clip_id, read_clip_list
from lesbench.pipelines.mead import MeadDataset, normalise_emotion, parse_level
from lesbench.prepared import PreparedDataset
from lesbench.schema import EMOTIONS, VIEWS
from lesbench.weights import file_sha256

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


@dataclass(frozen=True)
class ScoreItem:
    """One clip to score: ``key`` (names it in the report), the generated video ``pred``, its
    reference video ``ref`` (None: scored only by metrics that need no reference), the target
    ``emotion`` and ``level`` (None: unknown), and separate audio files (None: the video's own
    audio track) of the prediction (``audio``) and of the reference (``ref_audio``)."""

    key: str
    pred: Path
    ref: Path | None = None
    emotion: str | None = None
    level: int | None = None
    audio: Path | None = None
    ref_audio: Path | None = None


@dataclass
class Discovered:
    """What :func:`discover_items` found: the items to score, and what it left out."""

    items: list[ScoreItem]
    #: PRED clips not scored (clip list, speaker filter): key -> reason
    excluded: dict[str, str] = field(default_factory=dict)
    #: PRED clips without a reference (when a reference was given)
    unpaired: list[str] = field(default_factory=list)
    #: the clip list used: path, sha256, listed, missing (listed clips without a video)
    clip_list: dict[str, Any] | None = None

@dataclass
class ClipEntry:
    """One video found under PRED or REF: ``key`` pairs PRED with REF."""

    key: str
    video: Path
    audio: Path | None = None
    emotion: str | None = None
    level: int | None = None
    speaker: str | None = None


def discover(root: str | Path | dict[str, str | Path]) -> dict[str, ClipEntry]:
    """Clips under ``root`` keyed for pairing (see the module docstring); a ``{key: video}``
    mapping is taken as it is.

    Raises:
        DatasetError: ``root`` is missing or holds no video.
    """
    if isinstance(root, dict):
        out = {}
        for key, video in root.items():
            emotion, level = _parse_path_parts(Path(str(key)).parts)
            out[str(key)] = ClipEntry(str(key), Path(video), None, emotion, level)
        return out
    root = Path(root).expanduser()
    if root.is_file():
        return {root.stem: ClipEntry(root.stem, root)}
    if not root.is_dir():
        raise DatasetError(f"{root}: no such file or folder")
    if PreparedDataset(root).info_path.is_file():
        return _discover_prepared(root)
    entries = _discover_mead(root)
    if entries:
        return entries
    entries = _discover_folder(root)
    if not entries:
        raise DatasetError(f"{root}: no video files ({', '.join(VIDEO_SUFFIXES)}) found")
    return entries


def _discover_prepared(root: Path) -> dict[str, ClipEntry]:
    """Every crop on disk (whatever its status), emotion, level and speaker from the manifest."""
    data = PreparedDataset(root)
    rows: dict[str, dict] = {}
    if data.path("clips").is_file():
        for row in data.clips(statuses=None, required=("clip_id",)).to_dict("records"):
            rows[str(row["clip_id"])] = row
    out: dict[str, ClipEntry] = {}
    for clip_id, video in data.clip_files("crops"):
        row = rows.get(clip_id, {})
        level = row.get("level")
        out[clip_id] = ClipEntry(clip_id, video, None, row.get("emotion"),
                                 None if level is None or (isinstance(level, float) and math.isnan(level)) else int(level),
                                 row.get("speaker"))
    if not out:
        raise DatasetError(f"{data.path('crops')}: prepared data set without face crops")
    return out


def _discover_mead(root: Path) -> dict[str, ClipEntry]:
    try:
        clips = MeadDataset(root, views=VIEWS).clips()
    except DatasetError:
        return {}
    return {c.clip_id: ClipEntry(c.clip_id, Path(c.video_path), Path(c.audio_path) if c.audio_path else None,
                                 c.emotion, c.level, c.speaker) for c in clips}


def _parse_path_parts(parts: Sequence[str]) -> tuple[str | None, int | None]:
    emotion = level = None
    for part in parts:
        emotion = normalise_emotion(part) or emotion
        lv = parse_level(part)
        level = lv if lv is not None else level
    return emotion, level


def _discover_folder(root: Path) -> dict[str, ClipEntry]:
    out: dict[str, ClipEntry] = {}
    for video in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES):
        rel = video.relative_to(root).with_suffix("")
        key = rel.as_posix()
        emotion, level = _parse_path_parts(rel.parts[:-1])
        speaker = None
        bits = video.stem.split("_")
        # a MEAD clip id as file name: {speaker}_{view...}_{emotion}_{level}_{sentence}
        if len(bits) >= 5 and bits[-3] in EMOTIONS and bits[-2].isdigit():
            key, emotion, level, speaker = video.stem, bits[-3], int(bits[-2]), bits[0]
        out[key] = ClipEntry(key, video, None, emotion, level, speaker)
    return out


def _select_clips(pred_entries: dict[str, ClipEntry], proto: Protocol,
                  clips: str | Path | Sequence[str] | None
                  ) -> tuple[dict[str, ClipEntry], dict[str, str], dict[str, Any] | None]:
    """Apply the clip list (``clips``, else the protocol's ``clip_list``) and the protocol's
    speaker filter: ``(kept entries, excluded key -> reason, clip-list record)``."""
    source = clips if clips is not None else proto.clip_list
    listed: tuple[str, ...] | None = None
    record: dict[str, Any] | None = None
    if source is not None:
        if isinstance(source, (str, Path)):
            listed = read_clip_list(source)
            record = {"path": str(source), "sha256": file_sha256(Path(source)), "n_listed": len(listed)}
        else:
            listed = tuple(canonical_clip_id(c) or str(c) for c in source)
            record = {"path": None, "n_listed": len(listed)}
    keep: dict[str, ClipEntry] = {}
    excluded: dict[str, str] = {}
    found: set[str] = set()
    for key, entry in pred_entries.items():
        cid = canonical_clip_id(key) or key
        speaker = entry.speaker or (cid.split("_", 1)[0] if canonical_clip_id(key) else None)
        if proto.filter_speakers and proto.test_speakers and speaker not in proto.test_speakers:
            excluded[key] = (f"speaker {speaker} is not a test speaker of {proto.name}" if speaker
                             else f"speaker unknown (file name), {proto.name} scores test speakers only")
            continue
        if listed is not None and cid not in listed:
            excluded[key] = "not in the clip list"
            continue
        found.add(cid)
        keep[key] = entry
    if record is not None and listed is not None:
        record["missing"] = [c for c in listed if c not in found]
    return keep, excluded, record


def _pair_refs(pred_entries: dict[str, ClipEntry], ref_entries: dict[str, ClipEntry]) -> dict[str, ClipEntry]:
    """PRED key -> its REF entry: same key, else the same clip id (EAT-style names vs MEAD ids)."""
    by_id: dict[str, ClipEntry | None] = {}
    for key, entry in ref_entries.items():
        cid = canonical_clip_id(key)
        if cid is not None:
            by_id[cid] = None if cid in by_id else entry  # ambiguous ids pair with nothing
    out: dict[str, ClipEntry] = {}
    for key in pred_entries:
        if key in ref_entries:
            out[key] = ref_entries[key]
            continue
        cid = canonical_clip_id(key)
        if cid is not None and by_id.get(cid) is not None:
            out[key] = by_id[cid]  # type: ignore[assignment]
    return out


def discover_items(pred: str | Path | dict[str, str | Path], ref: str | Path | dict[str, str | Path] | None,
                   protocol: Protocol, clips: str | Path | Sequence[str] | None = None) -> Discovered:
    """The items to score under ``pred`` (paired with ``ref``), selected by the clip list
    (``clips``, else the protocol's ``clip_list``) and the protocol's speaker filter, sorted by
    key. Emotion and level come from PRED's paths, else REF's."""
    pred_entries, excluded, clip_record = _select_clips(discover(pred), protocol, clips)
    ref_entries = _pair_refs(pred_entries, discover(ref)) if ref is not None else {}
    items = []
    for key in sorted(pred_entries):
        pe, re_ = pred_entries[key], ref_entries.get(key)
        items.append(ScoreItem(
            key, pe.video, re_.video if re_ else None,
            pe.emotion or (re_.emotion if re_ else None),
            pe.level if pe.level is not None else (re_.level if re_ else None),
            pe.audio, re_.audio if re_ else None))
    unpaired = sorted(set(pred_entries) - set(ref_entries)) if ref is not None else []
    return Discovered(items, dict(sorted(excluded.items())), unpaired, clip_record)
