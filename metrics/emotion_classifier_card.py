"""Cards of the emotion classifiers a result uses, and whether a classifier shares its training
features with the method it scores.

Every emotion instrument in a result has a card: ``name``, ``sha256`` (of the weights; None for
a rule without weights), ``training_data``, held-out accuracy (``heldout_clip_accuracy``, and
``heldout`` with where it was measured), ``features`` (what it reads per frame).

- A classifier from ``lesbench train-classifier``: its card is ``FILE.json`` beside
  ``FILE.safetensors`` (:func:`read_card`; written by
  :func:`lesbench.metrics.emotion_classifier.train_classifier`), with the weights' sha256.
- The FER2013 mini-Xception default: :data:`FER_CARD` (the sha256 comes from the weights the
  score used).
- The training-free FACS prototype instrument: its own
  :data:`lesbench.metrics.emotion_prototype.CARD`.

**Circularity.** A classifier that reads lesbench's MediaPipe AUs (``features`` ``au`` or
``both``) scores methods that *train on those same AUs* (lesbench's LES-Talker and its one-hot /
audio-only variants) with the features they were fitted to reproduce: their emotion accuracy is
then partly the method reproducing its own training targets, not an independent judgement (on
the demo, LES-Talker and one-hot score 0.875 against ground truth's 0.750).
:func:`classifier_caveats` finds such results; ``lesbench evaluate`` records the caveat in the
results file (``caveats``; the card's ``shares_training_features``) and the leaderboard marks
the emotion columns of those rows.

What a method trains on is read from its results record: ``generation.provenance.training_features``
(a list of feature names, ``au`` = the prepared data set's per-frame AU intensities); a record
written before that field existed but with a LES-Talker ``condition`` in its provenance was made by
lesbench's LES-Talker, which trains on ``au``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lesbench.errors import LesbenchError
from lesbench.metrics.emotion_prototype import CARD as PROTOTYPE_CARD

#: The FER2013 mini-Xception (Arriaga et al. 2017), lesbench's default ``emotion`` classifier.
FER_CARD: dict[str, Any] = {
    "name": "fer2013-mini-xception",
    "features": "face-image",
    "training_data": "FER2013 (ICML 2013 representation-learning challenge): 48x48 grayscale web face images, "
                     "7 classes (no contempt)",
    # the mini-Xception paper's FER2013 test accuracy; MEAD figures measured by lesbench
    "heldout_clip_accuracy": None,
    "heldout": {
        "fer2013_test_accuracy": "0.66 (Arriaga et al. 2017, arXiv 1710.07557)",
        "mead_dev": "MEAD W009 front, level 3: 6/7 clips (contempt excluded), frame accuracy 0.528 "
                    "(docs/instruments.md)",
    },
}

#: Classifier ``features`` -> the per-frame features it reads (``both`` = AUs and crops).
_READS: dict[str, frozenset[str]] = {"au": frozenset({"au"}), "crops": frozenset({"crops"}),
                                     "both": frozenset({"au", "crops"})}
#: How a caveat names each feature.
FEATURE_NAMES: dict[str, str] = {"au": "per-frame AU intensities", "crops": "face crops"}
#: The emotion outputs computed with the ``emotion`` metric's classifier.
EMOTION_OUTPUTS: tuple[str, ...] = ("emotion-acc", "emotion-acc-frame")


def read_card(path: str | Path) -> dict[str, Any]:
    """The card of a ``train-classifier`` file: ``FILE.json`` beside ``FILE.safetensors``
    (it holds the training folder's path and the weights' sha256), else the card embedded in
    the weights' metadata. Raises :class:`LesbenchError` naming the file when neither is
    readable."""
    path = Path(path)
    side = path.with_suffix(".json")
    if side.is_file():
        try:
            card = json.loads(side.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise LesbenchError(f"{side}: classifier card is not valid JSON ({exc})") from None
        if not isinstance(card, dict):
            raise LesbenchError(f"{side}: classifier card must be a JSON object")
        return card
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return dict(json.loads((f.metadata() or {}).get("card", "{}")))
    except Exception as exc:  # noqa: BLE001 - any unreadable file: say which and why
        raise LesbenchError(f"{path}: not a readable emotion classifier ({type(exc).__name__}: {exc})") from exc


def card_summary(card: dict[str, Any], sha256: str | None, path: str | None = None) -> dict[str, Any]:
    """The fields every classifier card in a result has, from a ``train-classifier`` card."""
    held = card.get("heldout") or {}
    data = card.get("dataset") or {}
    trained_on = data.get("path")
    return {
        "name": card.get("name") or (Path(path).stem if path else None),
        "path": path,
        "sha256": sha256,
        "features": card.get("features"),
        "training_data": {"prepared": trained_on, "split": "train",
                          "speakers": (card.get("train") or {}).get("speakers"),
                          "dataset_json_sha256": data.get("dataset_json_sha256")},
        # kept under its earlier name too: results files before cards read it from here
        "trained_on": trained_on,
        "heldout_clip_accuracy": held.get("clip_accuracy"),
        "heldout_speakers": held.get("speakers"),
        "heldout": {k: held.get(k) for k in ("n_clips", "clip_accuracy", "frame_accuracy", "speakers", "splits")
                    if k in held},
    }


def method_training_features(record: dict[str, Any]) -> list[str] | None:
    """The per-frame features the method of a results ``record`` trains on (``["au"]``), [] for a
    method that trains on none, None when the record does not say (see the module doc)."""
    prov = (record.get("generation") or {}).get("provenance") or {}
    if prov.get("training_features") is not None:
        return list(prov["training_features"])
    if prov.get("condition") is not None:  # lesbench's LES-Talker family, recorded before the field
        return ["au"]
    return None


def classifier_caveats(record: dict[str, Any]) -> dict[str, str]:
    """Output name -> caveat for a results ``record`` whose emotion classifier reads features
    its method trains on (see the module doc); {} otherwise."""
    clf = ((record.get("metric_options") or {}).get("emotion") or {}).get("classifier")
    if not isinstance(clf, dict):
        return {}
    reads = _READS.get(str(clf.get("features")), frozenset())
    trains = method_training_features(record) or []
    shared = sorted(reads & set(trains))
    if not shared:
        return {}
    note = (f"emotion classifier {clf.get('name')!r} reads the {' and '.join(FEATURE_NAMES.get(f, f) for f in shared)} "
            "the method was trained on: not an independent measurement")
    scores = record.get("scores") or {}
    return {name: note for name in EMOTION_OUTPUTS if name in scores}


def classifier_cards(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Metric name -> card of each emotion instrument a results ``record`` used: the
    ``emotion`` metric's classifier (from ``metric_options``, else the FER default, with the
    sha256 of the weights its scores name) and the training-free ``emotion-prototype``."""
    scores = record.get("scores") or {}
    used = {str(s.get("metric")) for s in scores.values() if isinstance(s, dict) and s.get("metric")}
    cards: dict[str, dict[str, Any]] = {}
    if "emotion" in used:
        clf = ((record.get("metric_options") or {}).get("emotion") or {}).get("classifier")
        if isinstance(clf, dict) and clf.get("sha256"):
            card = dict(clf)
        else:
            weights = next((s.get("weights") or {} for n, s in scores.items() if n in EMOTION_OUTPUTS), {})
            card = {**FER_CARD, "sha256": next(iter(weights.values()), None)}
        caveats = classifier_caveats(record)
        card["shares_training_features"] = next(iter(caveats.values()), None)
        cards["emotion"] = card
    if "emotion-prototype" in used:
        cards["emotion-prototype"] = {**PROTOTYPE_CARD, "sha256": None, "features": "au (FACS prototypes, no training)"}
    return cards
