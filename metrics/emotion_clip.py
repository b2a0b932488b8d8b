"""Acc_emo per clip and over clips: frame probabilities pooled to one class per clip (mean
probability or majority vote), compared with the target emotion; the summary counts clips whose
target the classifier does not cover separately."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from lesbench.schema import EMOTIONS


def pool_clip(proba: np.ndarray, pool: str = "mean") -> int:
    """Clip-level class index from frame probabilities ``(T, C)``."""
    if len(proba) == 0:
        raise ValueError("no frames to classify")
    if pool == "mean":
        return int(np.argmax(proba.mean(axis=0)))
    if pool == "majority":
        votes = np.bincount(proba.argmax(axis=1), minlength=proba.shape[1])
        # ties go to the class with the higher mean probability
        best = np.flatnonzero(votes == votes.max())
        return int(best[np.argmax(proba.mean(axis=0)[best])])
    raise ValueError(f"pool must be 'mean' or 'majority', got {pool!r}")


@dataclass
class ClipEmotion:
    """One clip's emotion classification."""

    target: str
    predicted: str | None  # None when the target is not covered by the classifier (excluded)
    frame_accuracy: float | None
    n_frames: int
    mean_proba: dict[str, float] = field(default_factory=dict)


def classify_clip(frames: np.ndarray, target: str, classifier: Any, pool: str = "mean",
                  boxes: np.ndarray | None = None, aus: np.ndarray | None = None) -> ClipEmotion:
    """Classify one clip and compare with ``target`` (a MEAD emotion name)."""
    if target not in EMOTIONS:
        raise ValueError(f"unknown target emotion {target!r}; expected one of {', '.join(EMOTIONS)}")
    proba = classifier.predict_proba(frames, boxes=boxes, aus=aus)
    classes = list(classifier.classes)
    mean = {c: float(p) for c, p in zip(classes, proba.mean(axis=0))} if len(proba) else {}
    if target not in classes:
        return ClipEmotion(target, None, None, len(proba), mean)
    frame_pred = proba.argmax(axis=1)
    pred = classes[pool_clip(proba, pool)]
    return ClipEmotion(target, pred, float((frame_pred == classes.index(target)).mean()), len(proba), mean)


def summarize(clips: Sequence[ClipEmotion]) -> dict[str, float]:
    """Clip and frame accuracy over scored clips; excluded clips counted separately."""
    scored = [c for c in clips if c.predicted is not None]
    n_frames = sum(c.n_frames for c in scored)
    return {
        "acc_emo": float(np.mean([c.predicted == c.target for c in scored])) if scored else float("nan"),
        "acc_emo_frame": float(sum(c.frame_accuracy * c.n_frames for c in scored) / n_frames) if n_frames else float("nan"),
        "n_clips": float(len(scored)),
        "n_excluded_contempt": float(sum(1 for c in clips if c.predicted is None and c.target == "contempt")),
        "n_excluded": float(len(clips) - len(scored)),
    }
