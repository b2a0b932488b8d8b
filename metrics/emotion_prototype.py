"""Training-free emotion instrument: FACS prototypes over lesbench's AU intensities.

Why: the FER2013 classifier (``emotion``) was trained on other faces and lacks contempt, and the
demo's AU classifier is trained on the very AUs the model trains on, so its accuracy on the demo
is circular. This instrument has no parameters fitted to any data: it reads the prototype AUs
of each emotion (Ekman & Friesen's FACS prototypes, ``lesbench.schema.FACS_PROTOTYPES``) off the
same per-frame AU intensities the ``au`` metric uses (AU columns of the face table, else mapped
from its blendshapes).

Rule (version ``facs-proto/1``)
-------------------------------
For a clip with per-frame AUs ``a_t`` (17, [0, 1]; frames without a face dropped) and a neutral
baseline ``b`` (17,):

- ``score[e] = mean over frames of mean_{u in P(e)} (a_t[u] - b[u])`` for the six bilateral
  prototypes ``P``: happy AU06+12, surprised AU01+02+05+26, angry AU04+05+07+23, sad
  AU01+04+15, disgusted AU09+10, fear AU01+02+04+05+20.
- **contempt** is *unilateral* AU12+14 in FACS, and lesbench's AUs are left/right averages, so
  it cannot be read from them. When the face table has blendshapes, ``score[contempt]`` = mean
  over frames of ``(|smileL - smileR| + |dimpleL - dimpleR|) / 2`` (the blendshapes behind AU12
  and AU14) minus the same asymmetry of the baseline. Without blendshapes (plain AU arrays)
  contempt is not scored: clips whose target is contempt are counted in ``n_excluded`` (never
  right or wrong) and contempt is never predicted.
- prediction = the emotion with the highest score; ``neutral`` when that score is below
  ``threshold`` (default 0.1 intensity units, fixed a priori: a tenth of the AU range).
  Ties go to the earlier emotion in ``schema.EMOTIONS`` order (alphabetical), so the rule is
  deterministic.

Baseline (``baseline=``): ``"neutral"`` (default) = mean AUs (and asymmetry) over all frames of
the clips updated whose *target* is neutral, i.e. the method's own neutral output, computed at
:meth:`EmotionPrototype.compute` (so the metric's unit is the data set); a method that ignores
the requested emotion then reads as neutral everywhere. Without any neutral clip it falls back
to no baseline (zeros) and says so (``baseline_source``). ``"none"``: zeros. A (17,) array: a
given baseline (e.g. the speaker's real neutral clip). With the neutral-clips baseline a single
neutral clip is its own baseline and is classified neutral by construction; figures therefore
also report accuracy over the non-neutral clips (``accuracy_emotional``).

Held-out accuracy, measured on the real W009 clips of ``mead-dev`` (8 emotions, level 3,
neutral level 1, the real neutral clip as baseline): see ``CARD`` and ``docs/instruments.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np

from lesbench.extract.face_arrays import aus_array
from lesbench.metrics.base import Metric, Output
from lesbench.metrics.emotion import aus_from_face_table
from lesbench.schema import AU_NAMES, BLENDSHAPE_NAMES, EMOTIONS, FACS_PROTOTYPES

VERSION = "facs-proto/1"
#: Below this best score (AU intensity units, [0, 1]) a clip is neutral.
NEUTRAL_THRESHOLD = 0.1
#: Blendshape pairs (left, right) whose asymmetry stands for unilateral AU12 and AU14.
CONTEMPT_PAIRS: tuple[tuple[str, str], ...] = (("mouthSmileLeft", "mouthSmileRight"),
                                                ("mouthDimpleLeft", "mouthDimpleRight"))
#: Emotions with a bilateral AU prototype, in schema order.
BILATERAL: tuple[str, ...] = tuple(e for e in EMOTIONS if e not in ("neutral", "contempt"))

#: The instrument's card: what it is and what it was measured to do.
CARD: dict[str, Any] = {
    "name": "emotion-prototype",
    "version": VERSION,
    "rule": "per class: mean over its FACS prototype AUs of (AU - neutral baseline), averaged over frames; "
            "contempt: left/right asymmetry of mouthSmile and mouthDimple; argmax, neutral below "
            f"{NEUTRAL_THRESHOLD}; ties by schema.EMOTIONS order",
    "training_data": "none",
    "classes": list(EMOTIONS),
    "held_out": {
        "data": "mead-dev: MEAD W009 front, 8 clips (7 emotions level 3, neutral level 1), baseline = the real "
                "neutral clip",
        "clip_accuracy": "4/8 (non-neutral clips 3/7; the neutral clip is its own baseline)",
        "frame_accuracy": 0.455,
        "without_baseline": "clip 2/8, frame 0.345",
        "fer2013_same_clips": "clip 6/7 (contempt excluded), frame 0.528",
    },
}


def prototype_matrix() -> np.ndarray:
    """(6, 17) float64: row ``e`` (``BILATERAL`` order) = 1 / |P(e)| on e's prototype AUs."""
    m = np.zeros((len(BILATERAL), len(AU_NAMES)))
    for i, e in enumerate(BILATERAL):
        idx = [AU_NAMES.index(a) for a in FACS_PROTOTYPES[e]]
        m[i, idx] = 1.0 / len(idx)
    return m


def contempt_asymmetry(blendshapes: np.ndarray) -> np.ndarray:
    """(T,) mean over :data:`CONTEMPT_PAIRS` of |left - right|; ``blendshapes`` (T, 52) in
    ``schema.BLENDSHAPE_NAMES`` order."""
    bs = np.asarray(blendshapes, np.float64).reshape(-1, len(BLENDSHAPE_NAMES))
    return np.mean([np.abs(bs[:, BLENDSHAPE_NAMES.index(a)] - bs[:, BLENDSHAPE_NAMES.index(b)])
                    for a, b in CONTEMPT_PAIRS], axis=0)


@dataclass
class Baseline:
    """Neutral reference: ``aus`` (17,) and ``asymmetry`` (contempt), ``source`` in words."""

    aus: np.ndarray
    asymmetry: float = 0.0
    source: str = "none (zeros)"


def frame_scores(aus: np.ndarray, baseline: Baseline | None = None,
                 asymmetry: np.ndarray | None = None) -> np.ndarray:
    """(T, 8) per-frame class scores in ``schema.EMOTIONS`` order.

    ``aus`` (T, 17) intensities; ``asymmetry`` (T,) from :func:`contempt_asymmetry` or None
    (contempt NaN: not scored). The neutral column is NaN (neutral is decided by the threshold).
    """
    a = np.asarray(aus, np.float64).reshape(-1, len(AU_NAMES))
    b = baseline or Baseline(np.zeros(len(AU_NAMES)))
    out = np.full((len(a), len(EMOTIONS)), np.nan)
    proto = (a - b.aus[None]) @ prototype_matrix().T
    for i, e in enumerate(BILATERAL):
        out[:, EMOTIONS.index(e)] = proto[:, i]
    if asymmetry is not None:
        out[:, EMOTIONS.index("contempt")] = np.asarray(asymmetry, np.float64) - b.asymmetry
    return out


def decide(scores: np.ndarray, threshold: float = NEUTRAL_THRESHOLD) -> str:
    """Emotion name from one (8,) score vector: argmax over scored classes (first in
    ``schema.EMOTIONS`` order on ties), ``neutral`` when the best is below ``threshold``."""
    s = np.asarray(scores, np.float64)
    finite = np.where(np.isfinite(s), s, -np.inf)
    best = int(np.argmax(finite))  # argmax returns the first maximum: the documented tie rule
    return EMOTIONS[best] if finite[best] >= threshold else "neutral"


@dataclass
class ClipPrototype:
    """One clip: target, prediction (None when the target cannot be scored), mean scores (8,),
    per-frame predictions."""

    target: str
    predicted: str | None
    scores: np.ndarray
    frame_predictions: list[str] = field(default_factory=list)


def face_inputs(face: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``(aus (T, 17), asymmetry (T,) or None)`` from a face table (AU columns, else mapped from
    blendshapes; asymmetry when it has blendshapes) or a plain (T, 17) AU array (no asymmetry).
    Frames without a face are NaN."""
    if hasattr(face, "columns"):
        aus = aus_array(face) if all(c in face.columns for c in AU_NAMES) else aus_from_face_table(face)
        aus = np.array(aus, np.float64)
        if "face" in face.columns:
            aus[~np.asarray(face["face"], bool)] = np.nan
        asym = None
        if "blendshapes" in face.columns:
            rows = [np.full(len(BLENDSHAPE_NAMES), np.nan) if v is None else np.asarray(v, np.float64)
                    for v in face["blendshapes"]]
            asym = contempt_asymmetry(np.stack(rows)) if rows else np.zeros(0)
            if "face" in face.columns:
                asym[~np.asarray(face["face"], bool)] = np.nan
        return aus, asym
    return aus_array(face), None


def classify_prototype(aus: np.ndarray, target: str, baseline: Baseline | None = None,
                       asymmetry: np.ndarray | None = None, threshold: float = NEUTRAL_THRESHOLD) -> ClipPrototype:
    """Classify one clip (the rule in the module docstring) and compare with ``target``."""
    if target not in EMOTIONS:
        raise ValueError(f"unknown target emotion {target!r}; expected one of {', '.join(EMOTIONS)}")
    a = np.asarray(aus, np.float64).reshape(-1, len(AU_NAMES))
    ok = np.isfinite(a).all(axis=1)
    if asymmetry is not None:
        ok &= np.isfinite(asymmetry)
    if not ok.any():
        raise ValueError("emotion-prototype: no frame with a face (and AUs)")
    fs = frame_scores(a[ok], baseline, None if asymmetry is None else np.asarray(asymmetry)[ok])
    mean = fs.mean(axis=0)
    frames = [decide(s, threshold) for s in fs]
    scorable = asymmetry is not None or target != "contempt"
    return ClipPrototype(target, decide(mean, threshold) if scorable else None, mean, frames)


def neutral_baseline(clips: Sequence[tuple[np.ndarray, np.ndarray | None]], source: str) -> Baseline:
    """Mean AUs and asymmetry over all face frames of ``clips`` [(aus, asymmetry), ...]."""
    aus = np.concatenate([np.asarray(a, np.float64).reshape(-1, len(AU_NAMES)) for a, _ in clips])
    aus = aus[np.isfinite(aus).all(axis=1)]
    asyms = [np.asarray(s, np.float64) for _, s in clips if s is not None]
    asym = np.concatenate(asyms) if asyms else np.zeros(0)
    asym = asym[np.isfinite(asym)]
    return Baseline(aus.mean(axis=0), float(asym.mean()) if len(asym) else 0.0, source)


def confusion(clips: Sequence[ClipPrototype], frames: bool = False) -> dict[str, dict[str, int]]:
    """target -> predicted -> count (clips, or frames with ``frames=True``); excluded clips left out."""
    out: dict[str, dict[str, int]] = {}
    for c in clips:
        if c.predicted is None:
            continue
        row = out.setdefault(c.target, {})
        for p in (c.frame_predictions if frames else [c.predicted]):
            row[p] = row.get(p, 0) + 1
    return out


def summarize(clips: Sequence[ClipPrototype]) -> dict[str, float]:
    """Clip accuracy (all scored / non-neutral targets), frame accuracy, counts."""
    scored = [c for c in clips if c.predicted is not None]
    emotional = [c for c in scored if c.target != "neutral"]
    n_frames = sum(len(c.frame_predictions) for c in scored)
    nan = float("nan")
    return {
        "accuracy": float(np.mean([c.predicted == c.target for c in scored])) if scored else nan,
        "accuracy_emotional": float(np.mean([c.predicted == c.target for c in emotional])) if emotional else nan,
        "frame_accuracy": float(sum(sum(p == c.target for p in c.frame_predictions) for c in scored) / n_frames)
        if n_frames else nan,
        "n_clips": float(len(scored)),
        "n_excluded": float(len(clips) - len(scored)),
    }


class EmotionPrototype(Metric):
    """Training-free FACS-prototype emotion accuracy (``emotion-prototype``).

    ``update(pred_face=face table or (T, 17) AUs, emotion="happy")``; ``compute()`` ->
    ``{"accuracy", "accuracy_emotional", "frame_accuracy", "n_clips", "n_excluded",
    "n_baseline_clips"}``; after ``compute`` :attr:`clips` holds each clip's
    :class:`ClipPrototype` and :attr:`baseline` the baseline used.
    """

    name: ClassVar[str] = "emotion-prototype"
    version: ClassVar[str] = VERSION
    outputs: ClassVar[tuple[Output, ...]] = (
        Output("accuracy", "emotion-prototype-accuracy", None, "higher", 3),
        Output("accuracy_emotional", "emotion-prototype-accuracy-emotional", None, "higher", 3),
        Output("frame_accuracy", "emotion-prototype-frame-accuracy", None, "higher", 3))
    inputs: ClassVar[tuple[str, ...]] = ("pred_face", "emotion")
    needs_face: ClassVar[bool] = True
    #: the default baseline (the neutral-target clips) needs every clip before classifying
    unit: ClassVar[str] = "dataset"

    def __init__(self, device: str | None = None, baseline: str | np.ndarray = "neutral",
                 threshold: float = NEUTRAL_THRESHOLD) -> None:
        if isinstance(baseline, str) and baseline not in ("neutral", "none"):
            raise ValueError("emotion-prototype: baseline must be 'neutral', 'none' or a (17,) array, "
                             f"got {baseline!r}")
        if not isinstance(baseline, str):
            baseline = np.asarray(baseline, np.float64).reshape(-1)
            if baseline.shape != (len(AU_NAMES),):
                raise ValueError(f"emotion-prototype: baseline array must be ({len(AU_NAMES)},), got {baseline.shape}")
        self.baseline_arg = baseline
        self.threshold = threshold
        super().__init__(device)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(card=CARD, threshold=self.threshold,
                 baseline=self.baseline_arg if isinstance(self.baseline_arg, str) else "given (17,) vector")
        return d

    def reset(self) -> None:
        self.inputs_seen: list[tuple[np.ndarray, np.ndarray | None, str]] = []
        self.clips: list[ClipPrototype] = []
        self.baseline: Baseline | None = None
        self.clip_notes = []

    def update(self, pred_face: Any, emotion: str) -> None:
        if emotion not in EMOTIONS:
            raise ValueError(f"unknown target emotion {emotion!r}; expected one of {', '.join(EMOTIONS)}")
        aus, asym = face_inputs(pred_face)
        self.inputs_seen.append((aus, asym, emotion))

    def _baseline(self) -> tuple[Baseline, int]:
        if not isinstance(self.baseline_arg, str):
            return Baseline(self.baseline_arg, 0.0, "given"), 0
        neutral = [(a, s) for a, s, e in self.inputs_seen if e == "neutral"]
        if self.baseline_arg == "neutral" and neutral:
            return neutral_baseline(neutral, f"mean of {len(neutral)} neutral-target clip(s)"), len(neutral)
        why = "none (zeros)" if self.baseline_arg == "none" else "none (zeros): no neutral-target clip"
        return Baseline(np.zeros(len(AU_NAMES)), 0.0, why), 0

    def compute(self) -> dict[str, float]:
        if not self.inputs_seen:
            raise ValueError("emotion-prototype: no clips")
        self.baseline, n_base = self._baseline()
        self.clips = []
        self.clip_notes: list[str] = []
        for a, s, e in self.inputs_seen:
            try:
                self.clips.append(classify_prototype(a, e, self.baseline, s, self.threshold))
            except ValueError as exc:  # no usable frame: counted in n_excluded with the reason
                self.clips.append(ClipPrototype(e, None, np.full(len(EMOTIONS), np.nan)))
                self.clip_notes.append(str(exc))
        return {**summarize(self.clips), "n_baseline_clips": float(n_base)}


def emotion_prototype_accuracy(clips: Sequence[tuple[Any, str]], baseline: str | np.ndarray = "neutral",
                               threshold: float = NEUTRAL_THRESHOLD) -> dict[str, float]:
    """Functional twin of :class:`EmotionPrototype`: ``clips`` = [(face table or AUs, target), ...]."""
    m = EmotionPrototype(baseline=baseline, threshold=threshold)
    for face, target in clips:
        m.update(face, target)
    return m.compute()
