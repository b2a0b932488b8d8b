"""Names and records shared by every part of lesbench (the data contract in docs/design.md).

One concept, one place: emotions, views, AU names, blendshape names, facial units, the clip
record and the prepared data set's file names are defined here and imported everywhere else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Version of the prepared data-set layout (``dataset.json["format_version"]``).
DATASET_FORMAT_VERSION = "1.0"

# --- MEAD vocabulary -----------------------------------------------------------------------
EMOTIONS: tuple[str, ...] = (
    "angry",
    "contempt",
    "disgusted",
    "fear",
    "happy",
    "neutral",
    "sad",
    "surprised",
)
VIEWS: tuple[str, ...] = ("down", "front", "left_30", "left_60", "right_30", "right_60", "top")
LEVELS: tuple[int, ...] = (1, 2, 3)
#: Common MEAD test speakers (EAT protocol).
DEFAULT_TEST_SPEAKERS: tuple[str, ...] = ("M003", "M030", "W009", "W015")
SPLITS: tuple[str, ...] = ("train", "val", "test")

# --- Timing contract ------------------------------------------------------------------------
FPS = 25
SAMPLE_RATE = 16_000
HOP = SAMPLE_RATE // FPS  # 640 audio samples per video frame
CROP_SIZE = 256
N_LANDMARKS = 478

# --- Action units (docs/action_units.md) ------------------------------------------------------------------
AU_NAMES: tuple[str, ...] = (
    "AU01",  # inner brow raiser
    "AU02",  # outer brow raiser
    "AU04",  # brow lowerer
    "AU05",  # upper lid raiser
    "AU06",  # cheek raiser
    "AU07",  # lid tightener
    "AU09",  # nose wrinkler
    "AU10",  # upper lip raiser
    "AU12",  # lip corner puller
    "AU14",  # dimpler
    "AU15",  # lip corner depressor
    "AU17",  # chin raiser
    "AU20",  # lip stretcher
    "AU23",  # lip tightener
    "AU25",  # lips part
    "AU26",  # jaw drop
    "AU45",  # blink
)

#: FACS prototypes (docs/action_units.md) used to check extractors, demo data and generated video.
FACS_PROTOTYPES: dict[str, tuple[str, ...]] = {
    "happy": ("AU06", "AU12"),
    "surprised": ("AU01", "AU02", "AU05", "AU26"),
    "angry": ("AU04", "AU05", "AU07", "AU23"),
    "sad": ("AU01", "AU04", "AU15"),
    "disgusted": ("AU09", "AU10"),
    "fear": ("AU01", "AU02", "AU04", "AU05", "AU20"),
    "contempt": ("AU12", "AU14"),  # unilateral in FACS; lesbench's AUs are bilateral means
    "neutral": (),
}

#: Facial units (docs/les-talker.md): editing a unit masks the AUs outside it.
FACIAL_UNITS: dict[str, tuple[str, ...]] = {
    "brows": ("AU01", "AU02", "AU04"),
    "eyes": ("AU05", "AU06", "AU07", "AU45"),
    "nose": ("AU09",),
    "mouth_upper": ("AU10", "AU12", "AU14"),
    "mouth_lower": ("AU15", "AU17", "AU20", "AU23", "AU25", "AU26"),
}

#: MediaPipe FaceLandmarker's 52 blendshape categories, in its output order.
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral",
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
    "eyeLookDownLeft",
    "eyeLookDownRight",
    "eyeLookInLeft",
    "eyeLookInRight",
    "eyeLookOutLeft",
    "eyeLookOutRight",
    "eyeLookUpLeft",
    "eyeLookUpRight",
    "eyeSquintLeft",
    "eyeSquintRight",
    "eyeWideLeft",
    "eyeWideRight",
    "jawForward",
    "jawLeft",
    "jawOpen",
    "jawRight",
    "mouthClose",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthFunnel",
    "mouthLeft",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthPucker",
    "mouthRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "noseSneerLeft",
    "noseSneerRight",
)

POSE_NAMES: tuple[str, ...] = ("yaw", "pitch", "roll", "tx", "ty", "tz", "scale")

# --- Prepared data set layout (docs/design.md) --------------------------------------------------------
DATASET_JSON = "dataset.json"
CLIPS_PARQUET = "clips.parquet"
FRAMES_DIR = "frames"
AUDIO_DIR = "audio"
COEFFS_DIR = "coeffs"
CROPS_DIR = "crops"
FACE_MODEL = "face_model.npz"

#: Clip status values written to ``clips.parquet``.
STATUS_OK = "ok"
CLIP_STATUSES: tuple[str, ...] = (
    "ok",
    "failed",  # unreadable / truncated / not a media file / stage error
    "no_face",  # the face detector found no face in (almost) any frame
    "no_audio",  # video fine, audio missing or unreadable (features still written where possible)
    "silent_audio",  # audio present but silent
)


@dataclass(frozen=True)
class Clip:
    """One input clip found by a data-set reader.

    ``clip_id`` is stable and readable: ``{speaker}_{view}_{emotion}_{level}_{sentence}``,
    e.g. ``M003_front_angry_3_001``. Paths are absolute strings; ``audio_path`` is ``None``
    when the data set has no separate audio for the clip.
    """

    clip_id: str
    speaker: str
    view: str
    emotion: str
    level: int
    sentence: str
    video_path: str
    audio_path: str | None = None
    split: str = "train"
    extra: dict = field(default_factory=dict, compare=False)

    def as_row(self) -> dict:
        row = asdict(self)
        row.pop("extra")
        return row


def make_clip_id(speaker: str, view: str, emotion: str, level: int, sentence: str) -> str:
    return f"{speaker}_{view}_{emotion}_{level}_{sentence}"


def dataset_paths(out: str | Path) -> dict[str, Path]:
    """Paths of a prepared data set's parts, by name."""
    out = Path(out)
    return {
        "dataset": out / DATASET_JSON,
        "clips": out / CLIPS_PARQUET,
        "frames": out / FRAMES_DIR,
        "audio": out / AUDIO_DIR,
        "coeffs": out / COEFFS_DIR,
        "crops": out / CROPS_DIR,
        "face_model": out / FACE_MODEL,
    }
