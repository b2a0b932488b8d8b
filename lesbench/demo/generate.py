"""Generate the synthetic MEAD-layout demo data set (``lesbench demo-data OUT``).

Layout and formats follow MEAD (docs/design.md)::

    OUT/{speaker}/video/front/{emotion}/level_{N}/{NNN}.mp4   H.264 + AAC 48 kHz (muxed)
    OUT/{speaker}/audio/{emotion}/level_{N}/{NNN}.m4a          AAC 48 kHz, mono
    OUT/truth.parquet   per-frame ground truth (what the generator applied)
    OUT/demo.json       seed, generator version, identities and their photos' licences

The configuration and the clips' layout are in :mod:`lesbench.demo.plan`, the making of one clip
in :mod:`lesbench.demo.clip`; this module makes the data set. Each clip: a speaker's neutral face (:mod:`lesbench.demo.identities`) animated with the face
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

import lesbench
from lesbench.demo.clip import init_worker, make_clip, ClipRenderer, worker_make_clip
from lesbench.demo.identities import IDENTITIES, PHOTOS, StillLandmarker, make_identity
from lesbench.demo.plan import (
    AUDIO_SR,
    DEMO_JSON,
    GENERATOR_VERSION,
    LICENCES_FILE,
    TRUTH_EXTRA,
    TRUTH_FILE,
    VIEW,
    DemoConfig,
    default_config,
    plan_clips,
)
from lesbench.errors import LesbenchError
from lesbench.schema import AU_NAMES, DEFAULT_TEST_SPEAKERS


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
        renderer = ClipRenderer(identities)
        for i, job in enumerate(jobs):
            results.append(make_clip(renderer, *job))
            if progress:
                print(f"  [{i + 1}/{len(jobs)}] {job[0].clip_id}", flush=True)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the parent has MediaPipe's threads running
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker, initargs=(identities,)) as pool:
            for i, res in enumerate(pool.map(worker_make_clip, jobs, chunksize=2)):
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
