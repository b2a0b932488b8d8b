"""Emotion from text: a small documented lexicon of emotion and intensity words -> an LES mix.

    parse_emotion_text("slightly sad, very surprised")   # {"sad": 0.25, "surprised": 1.0}

No model and no download: a phrase is ``[intensity] emotion-word``, phrases are separated by
commas or "and". Emotion words are MEAD's eight emotions and common synonyms
(:data:`EMOTION_WORDS`); intensity words map to LES levels, i.e. fractions of the MEAD level-3
expression (:data:`INTENSITY_LEVELS`; no intensity word = ``plain``). Any other word is an error
that names it. The lexicon, its choices and its limits are written up in docs/les-talker.md.
"""

from __future__ import annotations

import difflib
import re

from lesbench.les.artefact import NEUTRAL, LESError

#: Word -> MEAD emotion. A synonym names the emotion only; how strong is the intensity word's job
#: (so "furious" is angry at the plain level, "very furious" at level 1).
EMOTION_WORDS: dict[str, str] = {
    **{w: "angry" for w in ("angry", "anger", "mad", "annoyed", "irritated", "furious", "irate", "cross",
                            "enraged")},
    **{w: "contempt" for w in ("contempt", "contemptuous", "scornful", "scorn", "disdainful", "disdain",
                               "sneering", "dismissive")},
    **{w: "disgusted" for w in ("disgusted", "disgust", "revolted", "repulsed", "nauseated")},
    **{w: "fear" for w in ("fear", "afraid", "fearful", "scared", "frightened", "terrified", "anxious",
                           "nervous")},
    **{w: "happy" for w in ("happy", "happiness", "glad", "joyful", "joy", "cheerful", "pleased",
                            "delighted", "joyous")},
    **{w: "sad" for w in ("sad", "sadness", "unhappy", "sorrowful", "sorrow", "gloomy", "miserable",
                          "melancholy")},
    **{w: "surprised" for w in ("surprised", "surprise", "astonished", "amazed", "shocked", "startled")},
    **{w: NEUTRAL for w in ("neutral", "calm", "expressionless")},
}

#: Intensity word (or two-word phrase) -> LES level (fraction of the MEAD level-3 expression).
#: Five steps, evenly spaced by a quarter of level 3; "very" is MEAD's strongest level and
#: "extremely" extrapolates beyond it.
INTENSITY_LEVELS: dict[str, float] = {
    "slightly": 0.25, "a little": 0.25, "a bit": 0.25, "mildly": 0.25,
    "somewhat": 0.5, "moderately": 0.5, "fairly": 0.5,
    "plain": 0.75,
    "very": 1.0, "really": 1.0, "strongly": 1.0,
    "extremely": 1.25, "intensely": 1.25,
}
#: The level of an emotion word without an intensity word.
DEFAULT_INTENSITY = "plain"

_SPLIT = re.compile(r",|;|\band\b", re.IGNORECASE)


def _unknown(word: str, text: str) -> LESError:
    known = sorted(set(EMOTION_WORDS) | set(INTENSITY_LEVELS))
    near = difflib.get_close_matches(word, known, n=3)
    hint = f" (did you mean {', '.join(near)}?)" if near else ""
    return LESError(
        f"--emotion-text {text!r}: unknown word {word!r}{hint}; emotion words: "
        f"{', '.join(sorted(EMOTION_WORDS))}; intensity words: {', '.join(INTENSITY_LEVELS)}"
    )


def parse_emotion_text(text: str) -> dict[str, float]:
    """An emotion description -> LES mix ``{emotion: level}`` (MEAD emotion names).

    Each comma- or "and"-separated phrase is an optional intensity word followed by one emotion
    word, case-insensitive. Neutral words give no entry (``"calm"`` -> ``{}``). Raises
    :class:`LESError` naming an unknown word, an intensity without an emotion, two emotion words
    in one phrase, or an emotion given twice.
    """
    out: dict[str, float] = {}
    phrases = [p.strip() for p in _SPLIT.split(text) if p.strip()]
    if not phrases:
        raise LESError(f"--emotion-text {text!r}: no emotion word (e.g. \"slightly sad, very surprised\")")
    for phrase in phrases:
        words = [w.rstrip(".!?").lower() for w in phrase.split()]
        if not all(re.fullmatch(r"[a-z]+", w) for w in words):
            raise LESError(f"--emotion-text {text!r}: {phrase!r} is not words (expected \"[intensity] emotion\")")
        intensity, i = None, 0
        while i < len(words) - 1:
            two = " ".join(words[i:i + 2])
            if two in INTENSITY_LEVELS:
                one = two
            elif words[i] in INTENSITY_LEVELS:
                one = words[i]
            else:
                break
            if intensity is not None:
                raise LESError(f"--emotion-text {text!r}: two intensity words in {phrase!r}")
            intensity = one
            i += len(one.split())
        rest = words[i:]
        for w in rest:
            if w not in EMOTION_WORDS:
                if w in INTENSITY_LEVELS:
                    raise LESError(f"--emotion-text {text!r}: intensity word {w!r} in {phrase!r} must come "
                                   "before an emotion word")
                raise _unknown(w, text)
        if len(rest) != 1:
            raise LESError(f"--emotion-text {text!r}: {phrase!r} needs exactly one emotion word after "
                           "its intensity (separate emotions with commas)")
        emotion = EMOTION_WORDS[rest[0]]
        if emotion == NEUTRAL:
            if intensity is not None:
                raise LESError(f"--emotion-text {text!r}: {phrase!r}: neutral has no intensity")
            continue
        if emotion in out:
            raise LESError(f"--emotion-text {text!r}: {emotion} is given twice")
        out[emotion] = INTENSITY_LEVELS[intensity or DEFAULT_INTENSITY]
    return out

