"""One demo clip, start to finish: synthetic speech, the face rig's animation (emotion prototype at
the level's intensity, speech-driven mouth, blinks, head motion), the warped frames, and the files
and ground-truth columns written for it.

Every random draw of clip ``c`` comes from ``default_rng([seed, crc32(c), stream])``, so a clip
does not depend on the number of workers or the order clips are made in. Worker processes of
:func:`lesbench.demo.generate.generate_demo` build one :class:`ClipRenderer` each (:func:`init_worker`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from lesbench import io
from lesbench.demo.face import EXPRESSION_PROTOTYPES, LEVEL_SCALE, FaceRig
from lesbench.demo.plan import AUDIO_SR, ClipPlan, DemoConfig
from lesbench.demo.speech import Voice, prosody_for, sentence_syllables, synthesize
from lesbench.render import PiecewiseAffineWarp, paint_mouth_interior
from lesbench.schema import AU_NAMES


# --- per-clip animation -----------------------------------------------------------------------------
def _clip_rng(seed: int, clip_id: str, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(clip_id.encode()), stream])


def _smooth_noise(rng: np.random.Generator, n: int, fps: float, freqs=(0.15, 0.3, 0.55)) -> np.ndarray:
    """Sum of a few random-phase sinusoids, unit-ish amplitude: smooth, natural-looking drift."""
    t = np.arange(n) / fps
    out = np.zeros(n)
    for f in freqs:
        ff = f * rng.uniform(0.7, 1.3)
        out += np.sin(2 * np.pi * ff * t + rng.uniform(0, 2 * np.pi)) * rng.uniform(0.5, 1.0)
    return out / np.sqrt(len(freqs) / 2)


def blink_track(n: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """AU45 per frame: blinks at gamma-distributed intervals (mean ~3.3 s), each closing in
    ~80 ms and reopening in ~170 ms."""
    t = (np.arange(n) + 0.5) / fps
    out = np.zeros(n)
    start = rng.uniform(0.2, 2.2)
    total = n / fps
    while start < total:
        depth = rng.uniform(0.85, 1.0)
        close, reopen = 0.08 * rng.uniform(0.8, 1.2), 0.17 * rng.uniform(0.8, 1.2)
        x = np.where(t < start + close, (t - start) / close, 1 - (t - start - close) / reopen)
        x = np.clip(x, 0, 1)
        out = np.maximum(out, depth * x * x * (3 - 2 * x))
        start += close + reopen + rng.gamma(2.0, 1.6)
    return out


_EMOTION_POSE = {  # mean (yaw, pitch, roll) offsets and motion scale per emotion at level 3
    "neutral": (0.0, 0.0, 0.0, 1.0),
    "happy": (0.0, 1.0, 1.0, 1.3),
    "surprised": (0.0, 2.5, 0.0, 1.1),
    "angry": (0.0, -2.0, 0.0, 1.2),
    "sad": (0.0, -4.0, -1.0, 0.6),
    "fear": (1.5, -1.0, 0.0, 0.9),
    "disgusted": (-1.5, -0.5, -1.5, 1.0),
    "contempt": (2.0, 1.5, 2.0, 0.9),
}


@dataclass
class ClipAnimation:
    """Per-frame intensities (``(T, C)`` in ``FaceRig.channel_names()`` order) and pose
    (``(T, 5)``: yaw, pitch, roll in degrees, tx, ty in pixels)."""

    weights: np.ndarray
    pose: np.ndarray
    mouth_open: np.ndarray
    lip_round: np.ndarray


def animate_clip(emotion: str, level: int, open_: np.ndarray, round_: np.ndarray, fps: float, size: int,
                 rng: np.random.Generator) -> ClipAnimation:
    """Channel intensities and head pose for one clip of ``len(open_)`` frames."""
    names = FaceRig.channel_names()
    col = {n: j for j, n in enumerate(names)}
    n = len(open_)
    t = np.arange(n) / fps
    w = np.zeros((n, len(names)))
    # the expression: held through the clip (as MEAD's actors do), settling in over ~0.5 s,
    # with a slow +-5 % breathing of intensity
    env = 0.75 + 0.25 * np.clip(t / 0.5, 0, 1) ** 2 * (3 - 2 * np.clip(t / 0.5, 0, 1))
    env = env * (1 + 0.05 * _smooth_noise(rng, n, fps))
    scale = LEVEL_SCALE[int(level)]
    proto = EXPRESSION_PROTOTYPES[emotion]
    for name, value in proto.items():
        targets = [name] if name in col else [f"{name}_l", f"{name}_r"]
        for target in targets:
            w[:, col[target]] = np.clip(value * scale * env, 0, 1)
    # speech: jaw and lips follow the syllables; surprise's jaw drop adds to it
    mouth = np.clip(open_, 0, 1).astype(np.float64)
    jaw_emotion = w[:, col["AU26"]].copy()
    w[:, col["AU26"]] = np.clip(jaw_emotion + 0.8 * mouth, 0, 1)
    w[:, col["AU25"]] = np.clip(2.5 * mouth + 1.5 * jaw_emotion, 0, 1)
    w[:, col["round"]] = np.clip(round_, 0, 1)
    w[:, col["AU45"]] = blink_track(n, fps, rng)
    # head: smooth drift + emotion posture + small speech-linked nods
    dyaw, dpitch, droll, motion = _EMOTION_POSE[emotion]
    k = LEVEL_SCALE[int(level)]
    motion = 1 + (motion - 1) * k
    nod = np.convolve(mouth - mouth.mean(), np.ones(5) / 5, mode="same")
    pose = np.stack([
        dyaw * k + 3.0 * motion * _smooth_noise(rng, n, fps),
        dpitch * k + 2.0 * motion * _smooth_noise(rng, n, fps) - 1.5 * nod,
        droll * k + 1.5 * motion * _smooth_noise(rng, n, fps, (0.1, 0.25)),
        size * 0.008 * motion * _smooth_noise(rng, n, fps, (0.1, 0.2)),
        size * 0.006 * motion * _smooth_noise(rng, n, fps, (0.1, 0.2)),
    ], 1)
    return ClipAnimation(weights=w, pose=pose, mouth_open=mouth, lip_round=np.clip(round_, 0, 1))


def au_truth(weights: np.ndarray) -> np.ndarray:
    """``(T, 17)`` AU intensities (schema.AU_NAMES order) from channel weights; a sided AU is
    the mean of its two halves (lesbench's AUs are bilateral means)."""
    col = {n: j for j, n in enumerate(FaceRig.channel_names())}
    out = np.zeros((len(weights), len(AU_NAMES)))
    for j, au in enumerate(AU_NAMES):
        if au in col:
            out[:, j] = weights[:, col[au]]
        else:
            out[:, j] = (weights[:, col[f"{au}_l"]] + weights[:, col[f"{au}_r"]]) / 2
    return out


# --- rendering one clip -------------------------------------------------------------------------------
class ClipRenderer:
    """Per-process state: identities, their rigs and warps (built once per speaker)."""

    def __init__(self, identities: dict) -> None:
        self.identities = identities
        self.rigs = {s: FaceRig(i.landmarks) for s, i in identities.items()}
        self.bases = {s: r.basis() for s, r in self.rigs.items()}
        self.warps = {
            s: PiecewiseAffineWarp(np.concatenate([i.landmarks[:, :2], i.ring]), (i.image.shape[1], i.image.shape[0]))
            for s, i in identities.items()
        }

    def frames(self, speaker: str, anim: ClipAnimation) -> tuple[Iterable[np.ndarray], np.ndarray]:
        """A generator of the clip's RGB frames, and the ``(T,)`` rendered lip gap (IOD units)."""
        ident = self.identities[speaker]
        rig = self.rigs[speaker]
        expr = rig.deform(anim.weights, self.bases[speaker])  # (T, 478, 2)
        ring_z = np.full(len(ident.ring), ident.landmarks[:, 2].mean())
        posed = np.empty_like(expr)
        rings = np.empty((len(expr), len(ident.ring), 2))
        for k, (yaw, pitch, roll, tx, ty) in enumerate(anim.pose):
            posed[k] = rig.pose(expr[k], yaw, pitch, roll, tx, ty)
            rings[k] = rig.pose(ident.ring, yaw, pitch, roll, tx, ty, z=ring_z)
        gap = rig.lip_gap(posed)
        warp = self.warps[speaker]

        def gen() -> Iterable[np.ndarray]:
            for k in range(len(posed)):
                img = warp.warp(ident.image, np.concatenate([posed[k], rings[k]]))
                yield paint_mouth_interior(img, posed[k])

        return gen(), gap


#: The renderer of a worker process (set once by its pool initializer; never used in-process).
_WORKER: dict = {}


def init_worker(identities: dict) -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already fills the machine
    _WORKER["renderer"] = ClipRenderer(identities)


def worker_make_clip(args: tuple) -> dict:
    return make_clip(_WORKER["renderer"], *args)


def make_clip(renderer: ClipRenderer, plan: ClipPlan, config: DemoConfig, out: str) -> dict:
    """Synthesise, animate, render and write one clip; returns its truth columns."""
    from scipy.signal import resample_poly

    ident = renderer.identities[plan.speaker]
    cfg: DemoConfig = config
    srng = np.random.default_rng([cfg.seed, 0x5E47, int(plan.sentence)])
    seconds = float(srng.uniform(*cfg.sentence_seconds))
    syllables = sentence_syllables(cfg.seed, int(plan.sentence), seconds)
    rng = _clip_rng(cfg.seed, plan.clip_id, 1)
    utt = synthesize(
        syllables, Voice(ident.spec.f0, ident.spec.formant_scale), prosody_for(plan.emotion, plan.level), rng,
        fps=cfg.fps, lead=float(rng.uniform(*cfg.lead)), trail=float(rng.uniform(*cfg.lead)),
    )
    anim = animate_clip(plan.emotion, plan.level, utt.open, utt.round, cfg.fps, cfg.size, _clip_rng(cfg.seed, plan.clip_id, 2))
    frames, gap = renderer.frames(plan.speaker, anim)
    audio48 = np.clip(resample_poly(utt.audio.astype(np.float64), AUDIO_SR // utt.sr, 1), -1, 1).astype(np.float32)
    out = Path(out)
    io.write_video(out / plan.video_rel, frames, fps=cfg.fps, audio=audio48, sr=AUDIO_SR, crf=cfg.crf,
                   preset=cfg.preset)
    io.write_audio(out / plan.audio_rel, audio48, sr=AUDIO_SR)
    n = utt.n_frames
    return {
        "clip_id": plan.clip_id,
        "speaker": plan.speaker,
        "emotion": plan.emotion,
        "level": plan.level,
        "sentence": plan.sentence,
        "text": " ".join(s.text for s in syllables),
        "n": n,
        "aus": au_truth(anim.weights).astype(np.float32),
        "mouth_open": anim.mouth_open.astype(np.float32),
        "lip_round": anim.lip_round.astype(np.float32),
        "lip_gap": gap.astype(np.float32),
        "pose": anim.pose.astype(np.float32),
    }
