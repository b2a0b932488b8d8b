"""Emotion accuracy (Acc_emo) with a frame-level facial-expression classifier.

**Classifiers.** The default is FER2013 mini-Xception ported to torch, on a fixed face box of the
aligned crop (:mod:`lesbench.metrics.emotion_fer`, where the port and the crop are described).
Its classes map to MEAD's names; MEAD's **contempt has no FER2013 class**: Acc_emo is computed
over the 7 covered emotions and clips whose target is contempt are counted separately as
excluded (``n_excluded_contempt``), never scored as wrong or right.

**Acc_emo.** Frame-level class probabilities -> clip-level prediction by the mean probability
over frames (``pool="mean"``, default) or by majority vote of frame argmaxes
(``pool="majority"``); Acc_emo = fraction of clips whose prediction equals the requested/target
emotion (in [0, 1], higher is better). Frame-level accuracy is reported as well.

A MEAD-specific 8-class classifier trained with ``lesbench train-classifier`` (see
:mod:`lesbench.metrics.emotion_classifier`) can be used instead: ``EmotionAccuracy(classifier=PATH)``;
results name the classifier they used.

Per-clip pooling and the summary: :mod:`lesbench.metrics.emotion_clip`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from lesbench.schema import AU_NAMES
from lesbench.extract.action_units import au_from_blendshapes
from lesbench.metrics.base import Metric, Output
from lesbench.metrics.emotion_classifier_model import MeadEmotionClassifier
from lesbench.metrics.emotion_clip import ClipEmotion, classify_clip, summarize
from lesbench.metrics.emotion_fer import WEIGHTS, FERClassifier

_FER_NAMES = ("fer", "fer2013-mini-xception", WEIGHTS)


def load_classifier(classifier: str | Path | None = None, device: str | None = None) -> Any:
    """``None`` -> :class:`FERClassifier`; a path -> a MEAD classifier from ``train-classifier``."""
    if classifier is None or str(classifier) in _FER_NAMES:
        return FERClassifier(device=device)
    return MeadEmotionClassifier.load(classifier, device=device)


class EmotionAccuracy(Metric):
    """Acc_emo: clip-level emotion classification accuracy against the target emotion.

    ``update(pred_video=(T, H, W, 3) uint8 aligned crops, emotion="happy", pred_face=None,
    boxes=None, aus=None)``; ``classifier``: ``None``/``"fer-mini-xception"`` (default) or a file
    from ``lesbench train-classifier`` (or a classifier object);
    ``compute()`` -> ``{"acc_emo": clip accuracy, "acc_emo_frame": frame accuracy,
    "n_clips": scored clips, "n_excluded_contempt": clips whose target the classifier lacks}``.
    """

    name = "emotion"
    version = "1"
    outputs = (Output("acc_emo", "emotion-acc", "Emo acc", "higher", 3),
               Output("acc_emo_frame", "emotion-acc-frame", "Emo acc (frame)", "higher", 3))
    weights: ClassVar[tuple[str, ...]] = (WEIGHTS,)
    #: ``pred_face`` (face-tracker table of the generated video) is optional: AU-based MEAD
    #: classifiers read their AUs from it (AU columns, else blendshapes).
    inputs: ClassVar[tuple[str, ...]] = ("pred_video", "emotion", "pred_face")

    def __init__(self, device: str | None = None, classifier: Any = None, pool: str = "mean", load: bool = True) -> None:
        """``load``: load the classifier now (missing weights raise MetricUnavailable here)."""
        self._classifier_arg = classifier
        self._classifier: Any = None if isinstance(classifier, (str, Path)) or classifier is None else classifier
        self.pool = pool
        if classifier is None or str(classifier) in _FER_NAMES:
            # the image classifier needs no face-tracker table: don't make the scorer track faces
            self.inputs = ("pred_video", "emotion")  # type: ignore[misc]
        super().__init__(device=device)
        if load:
            _ = self.classifier

    @property
    def classifier(self) -> Any:
        if self._classifier is None:
            self._classifier = load_classifier(self._classifier_arg, self.device)
        return self._classifier

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["classifier"] = self.classifier.describe()
        d["pool"] = self.pool
        return d

    def reset(self) -> None:
        self.clips: list[ClipEmotion] = []

    def update(self, pred_video: np.ndarray, emotion: str, pred_face: Any = None, boxes: np.ndarray | None = None,
               aus: np.ndarray | None = None) -> ClipEmotion:
        if aus is None and pred_face is not None and getattr(self.classifier, "features", "") in ("au", "both"):
            aus = aus_from_face_table(pred_face)
        clip = classify_clip(pred_video, emotion, self.classifier, self.pool, boxes, aus)
        self.clips.append(clip)
        return clip

    def compute(self) -> dict[str, float]:
        return summarize(self.clips)


def aus_from_face_table(face: Any) -> np.ndarray:
    """``(T, 17)`` AUs from a face-tracker / frames table: its AU columns, else its blendshapes."""
    if all(c in face.columns for c in AU_NAMES):
        return face[list(AU_NAMES)].to_numpy(np.float32)
    bs = np.stack([np.asarray(b, np.float32) for b in face["blendshapes"]])
    return au_from_blendshapes(bs)


def emotion_accuracy(clips: Sequence[tuple[np.ndarray, str]], classifier: Any = None, pool: str = "mean",
                     device: str | None = None) -> dict[str, float]:
    """Functional twin of :class:`EmotionAccuracy`: ``clips`` = [(frames, target emotion), ...]."""
    clf = classifier if classifier is not None and not isinstance(classifier, (str, Path)) else load_classifier(classifier, device)
    return summarize([classify_clip(f, e, clf, pool) for f, e in clips])
