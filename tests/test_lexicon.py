"""Emotion from text (the lexicon) and from a still image, as LES requests."""

from __future__ import annotations

import numpy as np
import pytest

from _les_synthetic import trained_synthetic_run
from lesbench import schema
from lesbench.les.lexicon import EMOTION_WORDS, INTENSITY_LEVELS, parse_emotion_text
from lesbench.les.space import LESError


def test_lexicon_covers_mead_and_nothing_else():
    assert set(EMOTION_WORDS.values()) == set(schema.EMOTIONS)
    for e in schema.EMOTIONS:  # every MEAD name is itself a word of the lexicon
        assert EMOTION_WORDS[e] == e
    assert not set(EMOTION_WORDS) & set(INTENSITY_LEVELS)


@pytest.mark.parametrize("text, expected", [
    ("slightly sad, very surprised", {"sad": 0.25, "surprised": 1.0}),
    ("Furious and a little scared", {"angry": 0.75, "fear": 0.25}),
    ("happy", {"happy": 0.75}),
    ("somewhat contemptuous; extremely disgusted", {"contempt": 0.5, "disgusted": 1.25}),
    ("calm", {}),
    ("neutral, very glad", {"happy": 1.0}),
])
def test_parse(text, expected):
    assert parse_emotion_text(text) == expected


@pytest.mark.parametrize("text, match", [
    ("very bored", r"unknown word 'bored'"),
    ("slightly hapy", r"unknown word 'hapy' \(did you mean happy"),
    ("very", r"intensity word 'very'"),
    ("sad happy", r"exactly one emotion word"),
    ("happy, glad", r"happy is given twice"),
    ("slightly very sad", r"two intensity words"),
    ("very calm", r"neutral has no intensity"),
    ("  ,  ", r"no emotion word"),
    ("sad (very)", r"not words"),
])
def test_parse_errors_name_the_problem(text, match):
    with pytest.raises(LESError, match=match):
        parse_emotion_text(text)


def test_intensities_order_the_requested_les_vector(generator):
    space = generator.space
    for emotion in ("happy", "sad"):
        proj = []
        for word in ("slightly", "somewhat", "", "very", "extremely"):
            r = generator.request(emotion_text=f"{word} {emotion}".strip())
            np.testing.assert_allclose(r.les_vector, space.vector(r.weights))
            proj.append(float(r.les_vector @ space.directions[emotion].direction))
        assert all(a < b for a, b in zip(proj, proj[1:])), (emotion, proj)
        # the level is the fraction of the LES's level-3 delta: very = |d_e|
        assert proj[3] == pytest.approx(space.directions[emotion].norm)
    mix = generator.request(emotion_text="slightly sad, very surprised")
    np.testing.assert_allclose(mix.les_vector, space.vector({"sad": 0.25, "surprised": 1.0}))
    assert mix.description == "sad=0.25, surprised=1.00"
    with pytest.raises(LESError, match="only one"):
        generator.request("happy", emotion_text="sad")
    with pytest.raises(LESError, match=r"contempt not in this run's LES"):
        generator.request(emotion_text="contemptuous")  # the synthetic LES has four emotions


def test_emotion_from_still_image(generator, tmp_path, monkeypatch):
    """--emotion-from photo.jpg: the image's one frame of AUs, through the tracker, into LES."""
    import cv2
    import pandas as pd

    prepared, _, truth = trained_synthetic_run()
    aus = pd.read_parquet(prepared / "frames" / "M105_front_happy_3_001.parquet")[list(schema.AU_NAMES)].to_numpy()
    seen = []

    class StillTracker:  # the synthetic faces have no pixels: stand in for MediaPipe on one frame
        def track(self, frames):
            frames = list(frames)
            seen.append(frames[0].shape)
            return pd.DataFrame({"face": [True], **{au: [aus[5, j]] for j, au in enumerate(schema.AU_NAMES)}})

    monkeypatch.setattr(generator, "_tracker", StillTracker())
    photo = tmp_path / "photo.JPG"
    cv2.imwrite(str(photo), np.full((40, 30, 3), 128, np.uint8))
    r = generator.request(emotion_from=photo, emotion_from_neutral=truth["neutral"]["M105"])
    assert seen == [(40, 30, 3)]  # the image itself, read as RGB, one frame
    assert max(r.weights, key=r.weights.get) == "happy"
    direct = generator.request(emotion_from=aus[5:6], emotion_from_neutral=truth["neutral"]["M105"])
    assert r.weights == direct.weights

    class NoFace:
        def track(self, frames):
            return pd.DataFrame({"face": [False], **{au: [np.nan] for au in schema.AU_NAMES}})

    monkeypatch.setattr(generator, "_tracker", NoFace())
    with pytest.raises(Exception, match=r"photo\.JPG: no face found in the --emotion-from image"):
        generator.request(emotion_from=photo)
    monkeypatch.setattr(generator, "_tracker", None)
