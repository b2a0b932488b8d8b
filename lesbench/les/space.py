"""Building the Linear Emotion Space from a prepared data set's *train* split (the method and the
artefact are described in :mod:`lesbench.les.artefact`; see docs/les-talker.md).

    space = build_les("prepared/")               # a LinearEmotionSpace
    space.separation["accuracy"]                 # held-out speakers, nearest direction

:func:`build_les` reads each clip's mean AUs (frames with a face) through
:mod:`lesbench.les.prepared`; held-out speakers are used only for :func:`heldout_separation`.
The artefact's names (:class:`LinearEmotionSpace`, :func:`les_hash`, :func:`parse_mix`, ...) are
importable from here too, so ``lesbench.les.space`` is the one import for users of the LES.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lesbench.errors import DatasetError
from lesbench.les.artefact import (
    AU_SETS,
    LES_FORMAT_VERSION,
    LES_JSON,
    LES_NPZ,
    NEUTRAL,
    EmotionDirection,
    LESError,
    LinearEmotionSpace,
    les_hash,
    parse_mix,
    parse_units,
    units_for,
)
from lesbench.les.prepared import PreparedIndex, clip_mean_aus, open_prepared, require_au_columns


def _robust_mean(rows: np.ndarray, method: str) -> np.ndarray:
    if len(rows) == 0:
        raise ValueError("no rows")
    if method == "median" and len(rows) >= 3:
        return np.median(rows, axis=0)
    if method == "trimmed" and len(rows) >= 5:
        from scipy.stats import trim_mean

        return trim_mean(rows, 0.2, axis=0)
    return rows.mean(axis=0)


def _linearity_r2(points: list[tuple[int, float]]) -> float | None:
    """R^2 of the least-squares line through (level, projection) points; None if undefined."""
    if len({k for k, _ in points}) < 2:
        return None
    x = np.array([p[0] for p in points], float)
    y = np.array([p[1] for p in points], float)
    A = np.stack([x, np.ones_like(x)], 1)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    ss_res = float(((y - A @ coef) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else None


def build_les(
    prepared: str | Path,
    *,
    robust: str = "median",
    train_split: str = "train",
    min_speakers: int = 1,
    bilateral: bool = False,
) -> LinearEmotionSpace:
    """Build the LES from a prepared data set's ``train_split`` (see module docstring).

    ``robust``: ``median`` (default), ``trimmed`` (20% trimmed mean) or ``mean`` across
    speakers. Held-out speakers (any other split) are used only for the separation report.
    ``bilateral``: build on the 30-d bilateral AU set (``artefact.AU_SETS``; needs frames tables
    from action-units stage 2) instead of the 17 averaged AUs; the space then also records the
    held-out separation of the averaged set built the same way (``separation_by_au_set``).
    """
    index = open_prepared(prepared)
    if bilateral:
        require_au_columns(index, AU_SETS["bilateral"])
        space = _build_on(index, AU_SETS["bilateral"], robust, train_split, min_speakers)
        averaged = _build_on(open_prepared(prepared), AU_SETS["averaged"], robust, train_split, min_speakers)
        space.separation_by_au_set = {"averaged": averaged.separation, "bilateral": space.separation}
        return space
    return _build_on(index, AU_SETS["averaged"], robust, train_split, min_speakers)


def _build_on(index: PreparedIndex, au_names: tuple[str, ...], robust: str, train_split: str,
              min_speakers: int) -> LinearEmotionSpace:
    """:func:`build_les` on one AU set (``au_names``: frames-table columns)."""
    train = index.by_split(train_split)
    if not train:
        raise DatasetError(f"{index.data.path('clips')}: no clip in split {train_split!r}")
    means = clip_mean_aus(index, au_names=au_names)

    def speaker_level_means(clips):
        """(speaker, emotion, level) -> mean AU over that cell's clips."""
        cells: dict[tuple[str, str, int], list[np.ndarray]] = {}
        for c in clips:
            if c.clip_id in means:
                cells.setdefault((c.speaker, c.emotion, c.level), []).append(means[c.clip_id])
        return {k: np.mean(v, axis=0) for k, v in cells.items()}

    cells = speaker_level_means(train)
    neutral_refs = _neutral_refs(cells)
    if not neutral_refs:
        raise DatasetError(
            f"{index.data.path('clips')}: no neutral clip in split {train_split!r}; the LES needs each "
            "speaker's neutral reference"
        )
    global_neutral = np.median(np.stack(list(neutral_refs.values())), axis=0)

    emotions = sorted({e for (_, e, _) in cells if e != NEUTRAL})
    directions: dict[str, EmotionDirection] = {}
    for e in emotions:
        levels_present = sorted({k for (s, ee, k) in cells if ee == e and s in neutral_refs})
        if not levels_present:
            continue
        top = 3 if 3 in levels_present else max(levels_present)
        deltas = {s: cells[(s, e, top)] - neutral_refs[s] for s in neutral_refs if (s, e, top) in cells}
        if len(deltas) < min_speakers:
            continue
        m = _robust_mean(np.stack(list(deltas.values())), robust)
        norm = float(np.linalg.norm(m))
        if norm < 1e-9:
            continue
        d = m / norm
        per_speaker: dict[str, dict[int, float]] = {}
        for (s, ee, k), mean_au in cells.items():
            if ee == e and s in neutral_refs:
                per_speaker.setdefault(s, {})[k] = float((mean_au - neutral_refs[s]) @ d)
        scales = {
            k: float(np.median([p[k] for p in per_speaker.values() if k in p])) for k in levels_present
        }
        points = [(k, v) for p in per_speaker.values() for k, v in p.items()]
        ks = sorted(scales)
        monotonic = bool(all(scales[a] < scales[b] for a, b in zip(ks, ks[1:]))) if len(ks) > 1 else None
        multi = [p for p in per_speaker.values() if len(p) > 1]
        sp_mono = (
            float(np.mean([all(p[a] < p[b] for a, b in zip(sorted(p), sorted(p)[1:])) for p in multi]))
            if multi else None
        )
        directions[e] = EmotionDirection(
            emotion=e, direction=d, norm=norm, level_scales=scales, r2=_linearity_r2(points),
            monotonic=monotonic, speaker_monotonic=sp_mono, n_speakers=len(deltas), source_level=top,
            per_speaker=per_speaker,
        )
    if not directions:
        raise DatasetError(f"{index.data.path('clips')}: no emotional clip with a neutral reference in split {train_split!r}")

    space = LinearEmotionSpace(
        directions=directions,
        neutral_refs=neutral_refs,
        global_neutral=global_neutral,
        units=units_for(au_names),
        au_names=tuple(au_names),
        provenance={
            **index.data.provenance(),
            "train_split": train_split,
            "robust": robust,
            "n_train_clips": sum(1 for c in train if c.clip_id in means),
            "skipped_clips": dict(index.skipped),
        },
    )
    heldout = [c for c in index.clips if c.split != train_split]
    space.separation = heldout_separation(space, heldout, means)
    return space


def _neutral_refs(cells: dict[tuple[str, str, int], np.ndarray]) -> dict[str, np.ndarray]:
    refs: dict[str, list[np.ndarray]] = {}
    for (s, e, _), m in cells.items():
        if e == NEUTRAL:
            refs.setdefault(s, []).append(m)
    return {s: np.mean(v, axis=0) for s, v in refs.items()}


def heldout_separation(space: LinearEmotionSpace, clips, means: dict[str, np.ndarray]) -> dict:
    """Nearest-direction classification of held-out speakers' clip deltas.

    Each held-out clip's mean AU minus its speaker's own neutral reference (measured from that
    speaker's neutral clips; the train global neutral when the speaker has none) is assigned to
    the direction of highest cosine. Returns accuracy overall, per emotion and per level, and the
    confusion matrix (rows: true emotion, columns: predicted).
    """
    cells: dict[tuple[str, str, int], list[np.ndarray]] = {}
    for c in clips:
        if c.clip_id in means:
            cells.setdefault((c.speaker, c.emotion, c.level), []).append(means[c.clip_id])
    own_neutral = _neutral_refs({k: np.mean(v, 0) for k, v in cells.items()})
    emos = space.emotions
    confusion = np.zeros((len(emos), len(emos)), int)
    by_level: dict[int, list[bool]] = {}
    n = 0
    speakers = set()
    for c in clips:
        if c.clip_id not in means or c.emotion not in space.directions:
            continue
        ref = own_neutral.get(c.speaker, space.global_neutral)
        pred = space.classify(means[c.clip_id] - ref)
        confusion[emos.index(c.emotion), emos.index(pred)] += 1
        by_level.setdefault(c.level, []).append(pred == c.emotion)
        speakers.add(c.speaker)
        n += 1
    if n == 0:
        return {"n_clips": 0, "accuracy": None, "note": "no held-out clip of an LES emotion"}
    per_emotion = {
        e: (float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None) for i, e in enumerate(emos)
    }
    return {
        "n_clips": n,
        "speakers": sorted(speakers),
        "accuracy": float(np.trace(confusion) / n),
        "chance": 1.0 / len(emos),
        "per_emotion": per_emotion,
        "per_level": {str(k): float(np.mean(v)) for k, v in sorted(by_level.items())},
        "emotions": emos,
        "confusion": confusion.tolist(),
    }

__all__ = [
    "AU_SETS",
    "LES_FORMAT_VERSION",
    "LES_JSON",
    "LES_NPZ",
    "NEUTRAL",
    "EmotionDirection",
    "LinearEmotionSpace",
    "LESError",
    "build_les",
    "heldout_separation",
    "les_hash",
    "parse_mix",
    "parse_units",
]
