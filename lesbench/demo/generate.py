"""Generate the synthetic MEAD-layout demo data set (``lesbench demo-data OUT``).

Layout and formats follow MEAD (docs/design.md)::

    OUT/{speaker}/video/front/{emotion}/level_{N}/{NNN}.mp4   H.264 + AAC 48 kHz (muxed)
    OUT/{speaker}/audio/{emotion}/level_{N}/{NNN}.m4a          AAC 48 kHz, mono
    OUT/truth.parquet   per-frame ground truth (what the generator applied)
    OUT/demo.json       seed, generator version, identities and their photos' licences

Each clip: a speaker's neutral face (:mod:`lesbench.demo.identities`) animated with the face
rig (:mod:`lesbench.demo.face`): the emotion's FACS prototype at the level's intensity, mouth
opening and rounding from the synthetic speech (:mod:`lesbench.demo.speech`), blinks, and
small smooth head motion; warped with :class:`lesbench.render.PiecewiseAffineWarp`. The
video runs at 30 fps like MEAD's raw video (lesbench resamples to 25 fps when preparing).

Everything is a function of ``seed``: clip ``c`` draws from ``default_rng([seed, crc32(c)])``,
so the result does not depend on the number of workers or the order clips are made in.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from lesbench.errors import LesbenchError
from lesbench.schema import AU_NAMES, DEFAULT_TEST_SPEAKERS, EMOTIONS, make_clip_id

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
    from lesbench.demo.identities import DEFAULT_SPEAKERS, TINY_SPEAKERS

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


@dataclass
class DemoSummary:
    """What :func:`generate_demo` made."""

    out: Path
    n_clips: int
    n_frames: int
    duration_s: float  # total audio/video time
    speakers: dict[str, str]  # speaker -> split under the default test speakers
    emotion_levels: list[tuple[str, int]]
    n_sentences: int
    size: int
    fps: float
    seconds: float  # wall-clock generation time
    seed: int
    tiny: bool
    timings: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        """A few lines for people: what was made and where."""
        emotions = sorted({e for e, _ in self.emotion_levels})
        splits = ", ".join(f"{s} ({split})" for s, split in sorted(self.speakers.items()))
        return "\n".join([
            f"demo data set in {self.out}{' (tiny)' if self.tiny else ''}, seed {self.seed}",
            f"  {self.n_clips} clips = {len(self.speakers)} speakers x {len(self.emotion_levels)} "
            f"emotion/levels x {self.n_sentences} sentence(s); {self.n_frames} frames, "
            f"{self.duration_s:.1f} s of video at {self.fps:g} fps, {self.size}x{self.size}",
            f"  speakers: {splits}",
            f"  emotions: {', '.join(emotions)}",
            f"  layout: SPK/video/{VIEW}/EMO/level_N/NNN.mp4 (H.264 + AAC) and SPK/audio/EMO/level_N/NNN.m4a",
            f"  ground truth: {self.out / TRUTH_FILE}; card and licences: {self.out / DEMO_JSON}",
            f"  generated in {self.seconds:.1f} s",
        ])


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
    from lesbench.demo.face import EXPRESSION_PROTOTYPES, LEVEL_SCALE, FaceRig

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
    from lesbench.demo.face import FaceRig

    col = {n: j for j, n in enumerate(FaceRig.channel_names())}
    out = np.zeros((len(weights), len(AU_NAMES)))
    for j, au in enumerate(AU_NAMES):
        if au in col:
            out[:, j] = weights[:, col[au]]
        else:
            out[:, j] = (weights[:, col[f"{au}_l"]] + weights[:, col[f"{au}_r"]]) / 2
    return out


# --- rendering one clip -------------------------------------------------------------------------------
class _Renderer:
    """Per-process state: identities, their rigs and warps (built once per speaker)."""

    def __init__(self, identities: dict) -> None:
        from lesbench.demo.face import FaceRig
        from lesbench.render import PiecewiseAffineWarp

        self.identities = identities
        self.rigs = {s: FaceRig(i.landmarks) for s, i in identities.items()}
        self.bases = {s: r.basis() for s, r in self.rigs.items()}
        self.warps = {
            s: PiecewiseAffineWarp(np.concatenate([i.landmarks[:, :2], i.ring]), (i.image.shape[1], i.image.shape[0]))
            for s, i in identities.items()
        }

    def frames(self, speaker: str, anim: ClipAnimation) -> tuple[Iterable[np.ndarray], np.ndarray]:
        """A generator of the clip's RGB frames, and the ``(T,)`` rendered lip gap (IOD units)."""
        from lesbench.render import paint_mouth_interior

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


def _init_worker(identities: dict) -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already fills the machine
    _WORKER["renderer"] = _Renderer(identities)


def _worker_make_clip(args: tuple) -> dict:
    return _make_clip(_WORKER["renderer"], *args)


def _make_clip(renderer: _Renderer, plan: ClipPlan, config: DemoConfig, out: str) -> dict:
    """Synthesise, animate, render and write one clip; returns its truth columns."""
    from scipy.signal import resample_poly

    from lesbench import io
    from lesbench.demo.speech import Voice, prosody_for, sentence_syllables, synthesize

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


# --- the data set ------------------------------------------------------------------------------------
def generate_demo(
    out: str | os.PathLike,
    seed: int = 0,
    tiny: bool = False,
    speakers: Sequence[str] | None = None,
    *,
    size: int | None = None,
    fps: float | None = None,
    n_sentences: int | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> DemoSummary:
    """Generate the demo data set into ``out`` (see the module docstring for what is made).

    Args:
        out: output folder; created. If it holds anything but a previous demo, nothing is
            written and :class:`~lesbench.errors.LesbenchError` is raised; a previous demo is
            replaced only with ``overwrite=True``.
        seed: everything (sentences, timing, blinks, head motion) follows from it; the same
            seed gives the same decoded frames and audio (and, with the same library versions,
            the same bytes).
        tiny: a few ~1.2 s clips for tests (2 speakers, neutral/happy/surprised).
        speakers: speaker ids from :data:`lesbench.demo.identities.IDENTITIES` (default: 4).
        size: frame width = height in pixels (default 256, even); fps: default 30 (MEAD's).
        n_sentences: sentences per emotion/level (default 2; tiny 1).
        workers: processes rendering clips (default: 1 for tiny, else up to 2 / the CPU count).
            Workers are spawned, so a script calling this with ``workers > 1`` needs the usual
            ``if __name__ == "__main__":`` guard.
        progress: print a line per finished clip.
    """
    from lesbench.demo.identities import IDENTITIES, StillLandmarker, make_identity

    t_start = time.perf_counter()
    config = default_config(seed, tiny, speakers, size=size, fps=fps, n_sentences=n_sentences)
    unknown = [s for s in config.speakers if s not in IDENTITIES]
    if unknown:
        raise LesbenchError(f"unknown demo speaker(s) {unknown}; known: {', '.join(sorted(IDENTITIES))}")
    if len(set(config.speakers)) != len(config.speakers):
        raise LesbenchError(f"speakers repeated: {list(config.speakers)}")
    if config.size < 64 or config.size % 2:
        raise LesbenchError(f"size must be an even number of pixels >= 64, got {config.size}")
    if config.n_sentences < 1 or config.n_sentences > 999:
        raise LesbenchError(f"n_sentences must be 1..999, got {config.n_sentences}")
    out = Path(out).expanduser().resolve()
    _prepare_out(out, overwrite)

    plans = plan_clips(config)
    t0 = time.perf_counter()
    with StillLandmarker() as landmarker:
        identities = {s: make_identity(IDENTITIES[s], config.size, landmarker) for s in config.speakers}
    timings = {"identities_s": time.perf_counter() - t0}

    if workers is None:
        workers = 1 if config.tiny else max(1, min(2, os.cpu_count() or 1, len(plans)))
    t0 = time.perf_counter()
    jobs = [(p, config, str(out)) for p in plans]
    results: list[dict] = []
    if workers <= 1:
        renderer = _Renderer(identities)
        for i, job in enumerate(jobs):
            results.append(_make_clip(renderer, *job))
            if progress:
                print(f"  [{i + 1}/{len(jobs)}] {job[0].clip_id}", flush=True)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the parent has MediaPipe's threads running
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(identities,)) as pool:
            for i, res in enumerate(pool.map(_worker_make_clip, jobs, chunksize=2)):
                results.append(res)
                if progress:
                    print(f"  [{i + 1}/{len(jobs)}] {res['clip_id']}", flush=True)
    timings["render_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _write_truth(out / TRUTH_FILE, results, config.fps)
    _write_card(out, config, identities, results)
    timings["truth_s"] = time.perf_counter() - t0
    n_frames = int(sum(r["n"] for r in results))
    return DemoSummary(
        out=out,
        n_clips=len(results),
        n_frames=n_frames,
        duration_s=n_frames / config.fps,
        speakers={s: ("test" if s in DEFAULT_TEST_SPEAKERS else "train") for s in config.speakers},
        emotion_levels=config.emotion_levels(),
        n_sentences=config.n_sentences,
        size=config.size,
        fps=config.fps,
        seconds=time.perf_counter() - t_start,
        seed=config.seed,
        tiny=config.tiny,
        timings=timings,
    )


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise LesbenchError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        card = out / DEMO_JSON
        if not card.is_file():
            raise LesbenchError(f"{out}: folder is not empty and holds no demo data set ({DEMO_JSON}); "
                                "choose an empty or new folder")
        if not overwrite:
            raise LesbenchError(f"{out}: already holds a demo data set; pass --overwrite to replace it")
        try:
            previous = json.loads(card.read_text())
            old_speakers = list(previous.get("speakers", {}))
        except (OSError, ValueError) as exc:
            raise LesbenchError(f"{card}: unreadable ({exc}); remove the folder by hand") from None
        for speaker in old_speakers:
            target = out / speaker
            if target.is_dir() and target.parent == out:
                shutil.rmtree(target)
        for name in (TRUTH_FILE, DEMO_JSON):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def truth_columns() -> dict[str, str]:
    """Column name -> meaning, for ``truth.parquet``."""
    cols = {
        "clip_id": "schema.make_clip_id(speaker, 'front', emotion, level, sentence)",
        "speaker": "speaker id", "emotion": "MEAD emotion", "level": "1..3", "sentence": "'001'...",
        "frame": "video frame index (30 fps by default)", "t": "frame start time, s",
    }
    cols.update({au: "applied AU intensity, 0..1 (bilateral mean)" for au in AU_NAMES})
    cols.update(TRUTH_EXTRA)
    return cols


def _write_truth(path: Path, results: list[dict], fps: float) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    results = sorted(results, key=lambda r: r["clip_id"])
    n = [r["n"] for r in results]

    def rep(key: str) -> np.ndarray:
        return np.repeat(np.array([r[key] for r in results]), n)

    frame = np.concatenate([np.arange(k, dtype=np.int32) for k in n])
    aus = np.concatenate([r["aus"] for r in results])
    pose = np.concatenate([r["pose"] for r in results])
    columns = {
        "clip_id": pa.array(rep("clip_id").astype(str)),
        "speaker": pa.array(rep("speaker").astype(str)),
        "emotion": pa.array(rep("emotion").astype(str)),
        "level": pa.array(rep("level").astype(np.int8)),
        "sentence": pa.array(rep("sentence").astype(str)),
        "frame": pa.array(frame),
        "t": pa.array(frame.astype(np.float64) / fps),
    }
    for j, au in enumerate(AU_NAMES):
        columns[au] = pa.array(aus[:, j].astype(np.float32))
    for key in ("mouth_open", "lip_round", "lip_gap"):
        columns[key] = pa.array(np.concatenate([r[key] for r in results]).astype(np.float32))
    for j, key in enumerate(("yaw", "pitch", "roll", "tx", "ty")):
        columns[key] = pa.array(pose[:, j].astype(np.float32))
    table = pa.table(columns)
    table = table.replace_schema_metadata({"lesbench.demo": json.dumps(truth_columns())})
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def _write_card(out: Path, config: DemoConfig, identities: dict, results: list[dict]) -> None:
    import lesbench
    from lesbench.demo.identities import PHOTOS

    texts = {}
    for r in results:
        texts.setdefault(r["sentence"], r["text"])
    used_photos = sorted({i.spec.photo for i in identities.values()})
    card = {
        "generator": "lesbench.demo",
        "generator_version": GENERATOR_VERSION,
        "lesbench_version": lesbench.__version__,
        "seed": config.seed,
        "tiny": config.tiny,
        "config": {k: v for k, v in asdict(config).items() if k not in ("seed", "tiny")},
        "layout": {
            "video": "{speaker}/video/front/{emotion}/level_{level}/{sentence}.mp4",
            "audio": "{speaker}/audio/{emotion}/level_{level}/{sentence}.m4a",
            "video_codec": "h264 yuv420p + aac mono", "audio_codec": "aac mono", "audio_sample_rate": AUDIO_SR,
        },
        "n_clips": len(results),
        "n_frames": int(sum(r["n"] for r in results)),
        "speakers": {
            s: {
                "split_under_default_test_speakers": "test" if s in DEFAULT_TEST_SPEAKERS else "train",
                "photo": i.spec.photo,
                "derived": i.spec.derived,
                "description": i.spec.description,
                "voice_f0_hz": i.spec.f0,
            }
            for s, i in identities.items()
        },
        "default_test_speakers": list(DEFAULT_TEST_SPEAKERS),
        "photos": {k: asdict(PHOTOS[k]) for k in used_photos},
        "licences_file": f"lesbench/demo/{LICENCES_FILE}",
        "sentences": texts,
        "truth_columns": truth_columns(),
    }
    tmp = out / (DEMO_JSON + ".tmp")
    tmp.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, out / DEMO_JSON)
