"""The demo's faces: public-domain photographs from installed packages, and identities made
from them.

The repository ships no photograph. Each photo is loaded at generation time from a package
that is installed with lesbench anyway (scikit-image, matplotlib); its licence is recorded in
:data:`PHOTOS` and in ``LICENCES.md`` next to this module (and copied into ``demo.json``).

Only two suitable real faces ship offline, so two of the default four identities are
*derived*: the photo mirrored, its face shape morphed (jaw, face length, eye spacing, nose,
mouth), skin tone and the colours of hair, clothes and background changed, and a different
crop. They look like different people at a glance, but a face-recognition embedding may still
find them close to the photo they came from: treat ``W011``/``W015`` and ``W009``/``W014`` as
related when reading identity metrics (CSIM) on the demo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lesbench.errors import LesbenchError
from lesbench.demo.face import FACE_OVAL
from lesbench.demo.face import FaceRig
from lesbench.demo.face import OUTER_LIP_LOWER
from lesbench.extract.native_logs import quiet_native_stderr
from lesbench.render import INNER_LIP_LOWER
from lesbench.render import INNER_LIP_UPPER
from lesbench.render import warp_face
from lesbench.weights import resolve


@dataclass(frozen=True)
class Photo:
    """A real face photograph that an installed package ships, with its licence."""

    key: str
    title: str
    package: str  # where it is loaded from
    location: str
    licence: str
    source: str


PHOTOS: dict[str, Photo] = {
    "astronaut": Photo(
        key="astronaut",
        title="Eileen Collins, NASA astronaut, official portrait",
        package="scikit-image",
        location="skimage.data.astronaut() (skimage/data/astronaut.png)",
        licence="Public domain (NASA photograph; scikit-image: 'No known copyright restrictions, "
                "released into the public domain')",
        source="NASA Great Images database, via scikit-image's data module",
    ),
    "grace_hopper": Photo(
        key="grace_hopper",
        title="Commodore Grace M. Hopper, U.S. Navy, official portrait",
        package="matplotlib",
        location="matplotlib mpl-data/sample_data/grace_hopper.jpg",
        licence="Public domain (official U.S. Navy photograph, a work of the U.S. federal "
                "government, 17 U.S.C. 105)",
        source="U.S. Navy, via matplotlib's sample data",
    ),
}


def load_photo(key: str) -> np.ndarray:
    """The photo ``key`` of :data:`PHOTOS` as ``(H, W, 3)`` uint8 RGB."""
    if key == "astronaut":
        import skimage.data

        return np.ascontiguousarray(skimage.data.astronaut()[..., :3])
    if key == "grace_hopper":
        import matplotlib
        import matplotlib.image

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        if not path.is_file():
            raise LesbenchError(f"{path}: matplotlib's sample photo is missing (reinstall matplotlib)")
        return np.ascontiguousarray(matplotlib.image.imread(path)[..., :3]).astype(np.uint8)
    raise KeyError(f"unknown photo {key!r}; known: {', '.join(PHOTOS)}")


@dataclass(frozen=True)
class IdentitySpec:
    """How one demo speaker's neutral face image is made from a photo.

    ``face_width``: width of the landmark bounding box as a fraction of the frame.
    ``offset``: where the face centre sits relative to the frame centre, in frame widths.
    ``shape``: face-shape morph (see :meth:`lesbench.demo.face.FaceRig.morph`), IOD units.
    ``skin_gain``: RGB gains inside the face; ``hue_shift`` (degrees), ``surround_sat`` and
    ``surround_gain`` recolour everything outside it (hair, clothes, background).
    ``neutralise``: AU intensities (negative allowed) baked in to make the photo's own
    expression closer to neutral; ``close_lips`` closes a photo's parted lips.
    """

    speaker: str
    photo: str
    description: str
    mirror: bool = False
    face_width: float = 0.44
    offset: tuple[float, float] = (0.0, 0.02)
    shape: tuple[tuple[str, float], ...] = ()
    skin_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    hue_shift: float = 0.0
    surround_sat: float = 1.0
    surround_gain: float = 1.0
    neutralise: tuple[tuple[str, float], ...] = ()
    close_lips: bool = False
    f0: float = 200.0  # the synthetic voice's mean pitch, Hz
    formant_scale: float = 1.0  # vocal-tract length factor of the synthetic voice
    derived: bool = False


#: Every identity the demo can make, by MEAD-style speaker id. All four photos' subjects are
#: women, hence ``W`` ids. ``W009`` and ``W015`` are default MEAD test speakers (EAT protocol),
#: ``W011`` and ``W014`` are not, so the default split has two train and two test speakers.
IDENTITIES: dict[str, IdentitySpec] = {
    "W011": IdentitySpec(
        speaker="W011", photo="astronaut", description="astronaut photo, smile relaxed and lips closed",
        face_width=0.46, offset=(0.0, 0.03), neutralise=(("AU12", -0.8), ("AU06", -0.4)), close_lips=True,
        f0=215.0, formant_scale=1.0,
    ),
    "W009": IdentitySpec(
        speaker="W009", photo="grace_hopper", description="Grace Hopper photo as it is",
        face_width=0.44, offset=(0.0, 0.06), f0=185.0, formant_scale=0.97,
    ),
    "W015": IdentitySpec(
        speaker="W015", photo="astronaut",
        description="derived: astronaut mirrored, longer narrower face, wider-set eyes, darker skin, "
                    "dark hair and blue-green clothes/background, tighter crop",
        mirror=True, face_width=0.52, offset=(0.03, 0.0),
        shape=(("face_length", 0.10), ("jaw_width", -0.07), ("eye_spacing", 0.05), ("nose_length", 0.04),
               ("mouth_width", 0.04)),
        skin_gain=(0.74, 0.62, 0.52), hue_shift=150.0, surround_sat=0.8, surround_gain=0.7,
        neutralise=(("AU12", -0.8), ("AU06", -0.4)), close_lips=True, f0=230.0, formant_scale=1.04,
        derived=True,
    ),
    "W014": IdentitySpec(
        speaker="W014", photo="grace_hopper",
        description="derived: Grace Hopper mirrored, wider jaw, shorter face, closer eyes, wider mouth, "
                    "warmer skin, purple-red background and uniform, looser crop",
        mirror=True, face_width=0.38, offset=(-0.04, 0.08),
        shape=(("jaw_width", 0.10), ("face_length", -0.06), ("eye_spacing", -0.04), ("mouth_width", 0.06),
               ("nose_length", -0.03)),
        skin_gain=(1.05, 0.9, 0.8), hue_shift=-60.0, surround_sat=1.2, surround_gain=0.95,
        f0=170.0, formant_scale=0.95, derived=True,
    ),
    "W016": IdentitySpec(
        speaker="W016", photo="astronaut",
        description="derived: astronaut with a rounder, shorter face, narrow-set eyes, lighter skin, "
                    "green-grey clothes/background",
        face_width=0.42, offset=(-0.03, 0.04),
        shape=(("jaw_width", 0.08), ("face_length", -0.05), ("eye_spacing", -0.035), ("nose_length", -0.02)),
        skin_gain=(1.04, 1.0, 0.98), hue_shift=70.0, surround_sat=0.6, surround_gain=1.05,
        neutralise=(("AU12", -0.8), ("AU06", -0.4)), close_lips=True, f0=205.0, formant_scale=1.02,
        derived=True,
    ),
    "W018": IdentitySpec(
        speaker="W018", photo="grace_hopper",
        description="derived: Grace Hopper with a longer face, wider-set eyes, olive skin, "
                    "green background and uniform",
        face_width=0.48, offset=(0.03, 0.05),
        shape=(("face_length", 0.08), ("eye_spacing", 0.04), ("mouth_width", -0.04), ("jaw_width", -0.04)),
        skin_gain=(0.85, 0.8, 0.66), hue_shift=60.0, surround_sat=0.9, surround_gain=0.9,
        f0=195.0, formant_scale=0.99, derived=True,
    ),
}

DEFAULT_SPEAKERS: tuple[str, ...] = ("W009", "W011", "W014", "W015")
TINY_SPEAKERS: tuple[str, ...] = ("W009", "W011")


@dataclass
class Identity:
    """A speaker's neutral face, ready to animate.

    ``image``: ``(S, S, 3)`` uint8 RGB; ``landmarks``: ``(478, 3)`` MediaPipe landmarks
    detected on it (pixels; z in the same scale); ``ring``: ``(K, 2)`` points around the head
    that follow head motion (hair, neck), pixels.
    """

    spec: IdentitySpec
    image: np.ndarray
    landmarks: np.ndarray
    ring: np.ndarray
    photo: Photo = field(repr=False, default=None)  # type: ignore[assignment]


# --- MediaPipe on still images ------------------------------------------------------------------
def landmarker_model_path() -> Path:
    """The MediaPipe FaceLandmarker task file, through :mod:`lesbench.weights` (sha256-checked)."""

    return Path(resolve("mediapipe-face-landmarker"))


class StillLandmarker:
    """MediaPipe FaceLandmarker in IMAGE mode, for identity photos (use as a context manager)."""

    def __init__(self, model_path: str | os.PathLike | None = None) -> None:
        from mediapipe.tasks.python import BaseOptions, vision


        path = Path(model_path) if model_path is not None else landmarker_model_path()
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=1,
        )
        with quiet_native_stderr():  # MediaPipe's C++ start-up lines, as for FaceTracker
            self._landmarker = vision.FaceLandmarker.create_from_options(options)

    def detect(self, image: np.ndarray) -> np.ndarray | None:
        """``(478, 3)`` float64 landmarks in pixels of ``image`` (RGB uint8), or None."""
        import mediapipe as mp

        h, w = image.shape[:2]
        result = self._landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
        if not result.face_landmarks:
            return None
        lm = np.array([[p.x, p.y, p.z] for p in result.face_landmarks[0]], np.float64)
        # normalised -> pixels; MediaPipe's pixel centres sit at +0.5, OpenCV's at 0
        return np.stack([lm[:, 0] * w - 0.5, lm[:, 1] * h - 0.5, lm[:, 2] * w], 1)

    def close(self) -> None:
        self._landmarker.close()

    def __enter__(self) -> "StillLandmarker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- making an identity -------------------------------------------------------------------------
def make_identity(spec: IdentitySpec, size: int, landmarker: StillLandmarker) -> Identity:
    """Build ``spec``'s neutral face at ``size`` x ``size`` pixels.

    Steps (all deterministic): load the photo, mirror it, detect landmarks, crop a square
    around the face (face width ``spec.face_width`` of the frame, at twice the final size),
    bake in the neutralising expression and the face-shape morph with a landmark warp,
    recolour skin and surroundings, detect the landmarks again on the result, downscale.
    """
    import cv2


    photo = load_photo(spec.photo)
    if spec.mirror:
        photo = np.ascontiguousarray(photo[:, ::-1])
    lm = landmarker.detect(photo)
    if lm is None:
        raise LesbenchError(f"demo identity {spec.speaker}: no face found in photo {spec.photo!r}")
    work = 2 * size
    x0, y0 = lm[:, :2].min(0)
    x1, y1 = lm[:, :2].max(0)
    side = (x1 - x0) / spec.face_width
    cx = (x0 + x1) / 2 - spec.offset[0] * side
    cy = (y0 + y1) / 2 - spec.offset[1] * side
    scale = work / side
    m = np.array([[scale, 0, work / 2 - scale * cx], [0, scale, work / 2 - scale * cy]])
    img = cv2.warpAffine(photo, m, (work, work), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REPLICATE)
    lm = np.concatenate([lm[:, :2] @ m[:, :2].T + m[:, 2], lm[:, 2:] * scale], 1)

    rig = FaceRig(lm)
    weights = np.zeros(len(rig.channel_names()))
    names = rig.channel_names()
    for au, value in spec.neutralise:
        for j, n in enumerate(names):
            if n == au or n.startswith(au + "_"):
                weights[j] = value
    dst = rig.deform(weights) + rig.frame.vec_to_px(rig.morph(**dict(spec.shape)))
    if spec.close_lips:
        dst = _close_lips(dst)
    if spec.neutralise or spec.shape or spec.close_lips:
        img = warp_face(img, lm[:, :2], dst, border_per_side=6)
    img = _recolour(img, dst, spec)
    lm2 = landmarker.detect(img)
    if lm2 is None:
        raise LesbenchError(f"demo identity {spec.speaker}: the face is no longer found after the identity transform")
    small = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    # pixel centres: x_small = (x_work + 0.5) / 2 - 0.5
    lm_small = np.concatenate([(lm2[:, :2] + 0.5) / 2 - 0.5, lm2[:, 2:] / 2], 1)
    return Identity(spec=spec, image=small, landmarks=lm_small, ring=head_ring(lm_small, size),
                    photo=PHOTOS[spec.photo])


def _close_lips(dst: np.ndarray) -> np.ndarray:
    """Move both inner lips (and the lower lip's outer edge with them) to their middle line."""

    dst = dst.copy()
    up, lo = list(INNER_LIP_UPPER), list(INNER_LIP_LOWER)
    mid = (dst[up] + dst[lo]) / 2
    shift_lo = mid - dst[lo]
    dst[up] = mid
    dst[lo] = mid
    outer = list(OUTER_LIP_LOWER[1:-1])
    dst[outer] += shift_lo[1:-1] * 0.8
    return dst


def _recolour(img: np.ndarray, lm: np.ndarray, spec: IdentitySpec) -> np.ndarray:
    """Skin gain inside the face oval, hue/saturation/value change outside, soft boundary."""
    import cv2


    if spec.skin_gain == (1.0, 1.0, 1.0) and spec.hue_shift == 0 and spec.surround_sat == 1 and spec.surround_gain == 1:
        return img
    oval = lm[list(FACE_OVAL), :2]
    centre = oval.mean(0)
    oval = centre + (oval - centre) * 0.96
    mask = np.zeros(img.shape[:2], np.float32)
    cv2.fillPoly(mask, [np.round(oval * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
    width = float(np.ptp(oval[:, 0]))
    mask = cv2.GaussianBlur(mask, (0, 0), max(width * 0.03, 1.0))
    # skin outside the face oval (ears, neck) keeps skin colours: chroma close to the face's
    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    inner = mask > 0.99
    ref = np.median(ycc[inner][:, 1:], axis=0)
    dist = np.linalg.norm(ycc[..., 1:] - ref, axis=-1)
    skin_like = np.exp(-0.5 * (dist / 9.0) ** 2) * (ycc[..., 0] > 40)
    skin_like = cv2.GaussianBlur(skin_like.astype(np.float32), (0, 0), 1.5)
    mask = np.maximum(mask, skin_like)[..., None]
    f = img.astype(np.float32)
    skin = f * np.asarray(spec.skin_gain, np.float32)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    hsv[..., 0] = np.mod(hsv[..., 0] + spec.hue_shift * 256.0 / 360.0, 256.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * spec.surround_sat, 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * spec.surround_gain, 0, 255)
    surround = cv2.cvtColor(np.round(hsv).astype(np.uint8), cv2.COLOR_HSV2RGB_FULL).astype(np.float32)
    out = skin * mask + surround * (1 - mask)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def head_ring(lm: np.ndarray, size: int, n: int = 16, scale: float = 1.35) -> np.ndarray:
    """``(n, 2)`` points on an ellipse around the face that move with the head (hair, ears,
    neck), kept a few pixels inside the frame."""

    oval = lm[list(FACE_OVAL), :2]
    centre = oval.mean(0)
    half = np.ptp(oval, axis=0) / 2 * scale
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = centre + np.stack([np.cos(ang) * half[0], np.sin(ang) * half[1]], 1)
    return np.clip(ring, 3.0, size - 4.0)
