"""What the synthetic demo data set holds: its configuration (:class:`DemoConfig`, the default
and tiny demos), the clips it asks for (:class:`ClipPlan`: ids and MEAD-layout paths) and the
file names and ground-truth columns of its layout. :mod:`lesbench.demo.generate` makes it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from lesbench.demo.identities import DEFAULT_SPEAKERS, TINY_SPEAKERS
from lesbench.schema import EMOTIONS, make_clip_id

#: Bump when the same seed would produce different clips.
GENERATOR_VERSION = "1"
VIEW = "front"
AUDIO_SR = 48_000  # MEAD's raw audio is AAC at 48 kHz
TRUTH_FILE = "truth.parquet"
DEMO_JSON = "demo.json"
LICENCES_FILE = "LICENCES.md"

#: Per-frame ground-truth columns besides the 17 AUs (see :func:`truth_columns`).
TRUTH_EXTRA = {
    "mouth_open": "speech articulation driving the jaw and lips, 0 (closed) .. 1 (wide open /a/)",
    "lip_round": "lip rounding from the speech (/o/, /u/, /sh/), 0..1",
    "lip_gap": "inner-lip gap (landmarks 13-14) of the rendered face / eye-centre distance",
    "yaw": "head yaw, degrees; > 0 turns the face toward the image's right (pipelines.face convention)",
    "pitch": "head pitch, degrees; > 0 tips the face up",
    "roll": "head roll, degrees; > 0 tilts the face counter-clockwise as seen in the image",
    "tx": "head translation in x, pixels of the frame",
    "ty": "head translation in y, pixels of the frame (down)",
}


@dataclass(frozen=True)
class DemoConfig:
    """What to generate. ``sentence_seconds``: range of a sentence's speaking time;
    ``lead``: silence before the speech, s (after it: the same range)."""

    seed: int = 0
    speakers: tuple[str, ...] = ()
    emotions: tuple[str, ...] = EMOTIONS
    levels: tuple[int, ...] = (1, 2, 3)
    n_sentences: int = 2
    size: int = 256
    fps: float = 30.0
    sentence_seconds: tuple[float, float] = (2.0, 3.2)
    lead: tuple[float, float] = (0.2, 0.35)
    tiny: bool = False
    crf: int = 20
    preset: str = "veryfast"
    #: (emotion, level) pairs instead of emotions x levels (the tiny set uses this)
    combos: tuple[tuple[str, int], ...] = ()

    def emotion_levels(self) -> list[tuple[str, int]]:
        if self.combos:
            return list(self.combos)
        out = []
        for emotion in self.emotions:
            for level in self.levels:
                if emotion == "neutral" and level != 1:
                    continue  # MEAD: neutral has level_1 only
                out.append((emotion, level))
        return out


def default_config(seed: int = 0, tiny: bool = False, speakers: Sequence[str] | None = None, **overrides) -> DemoConfig:
    """The default demo (4 speakers x 22 emotion/levels x 2 sentences = 176 clips of 2.5-4 s)
    or, with ``tiny``, 2 speakers x 4 emotion/levels x 1 sentence of ~1.2 s."""
    if tiny:
        base = DemoConfig(
            seed=seed, speakers=tuple(speakers or TINY_SPEAKERS), n_sentences=1,
            sentence_seconds=(0.55, 0.7), lead=(0.12, 0.18), tiny=True,
            combos=(("neutral", 1), ("happy", 1), ("happy", 3), ("surprised", 3)),
        )
    else:
        base = DemoConfig(seed=seed, speakers=tuple(speakers or DEFAULT_SPEAKERS))
    fields_ = {k: v for k, v in overrides.items() if v is not None}
    return DemoConfig(**{**asdict(base), **fields_}) if fields_ else base


@dataclass(frozen=True)
class ClipPlan:
    speaker: str
    emotion: str
    level: int
    sentence: str  # "001"

    @property
    def clip_id(self) -> str:
        return make_clip_id(self.speaker, VIEW, self.emotion, self.level, self.sentence)

    @property
    def video_rel(self) -> str:
        return f"{self.speaker}/video/{VIEW}/{self.emotion}/level_{self.level}/{self.sentence}.mp4"

    @property
    def audio_rel(self) -> str:
        return f"{self.speaker}/audio/{self.emotion}/level_{self.level}/{self.sentence}.m4a"


def plan_clips(config: DemoConfig) -> list[ClipPlan]:
    """Every clip the config asks for, sorted by clip id."""
    plans = [
        ClipPlan(speaker, emotion, level, f"{s + 1:03d}")
        for speaker in config.speakers
        for emotion, level in config.emotion_levels()
        for s in range(config.n_sentences)
    ]
    return sorted(plans, key=lambda p: p.clip_id)
