"""The LES-Talker acceptance checks, measured on rendered video (levels, unit isolation, mixes, lip sync).

:func:`edit_checks` generates one source face speaking one audio under a set of requests,
writes each as mp4 (H.264 + AAC, exactly what ``lesbench generate`` writes), re-measures every
clip with lesbench's own :class:`~lesbench.extract.face.FaceTracker`, and reports:

- **levels**: the emotion's FACS prototype AUs (mean over frames and AUs) at LES levels
  0, 0.25, ..., 1 and whether they rise strictly;
- **unit**: for an edit restricted to ``mouth_lower``, the brow and eye AUs minus the neutral
  output's, raw and with the lower face held at the neutral output's pixels
  (:func:`lesbench.extract.measure.hold_lower_face`; MediaPipe reads an opened jaw as
  squinting eyes), plus the unrestricted edit held the same way as the positive control;
- **mix**: AU12 of ``happy=0.5,surprised=0.5`` against its two components at level 1;
- **sync**: the weight-free AV-sync offset (:func:`lesbench.metrics.sync.av_sync`; frames,
  positive = audio lags) of every emotion at level 1, and how many are within 0 +- 1.

``lesbench demo`` writes the result to ``edits/checks.json``. The thresholds are the
acceptance criteria (monotonic, within a tolerance, between, 0 +- 1); the figures are what was measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from lesbench import io, schema
from lesbench.extract.measure import UPPER_FACE_UNITS, TrackerMeasure, hold_lower_face
from lesbench.metrics.sync import av_sync
from lesbench.sanitize import safe_join

#: Largest |delta AU| of a brow or eye AU (held measurement) that counts as "unchanged".
UNIT_TOLERANCE = 0.03
LEVELS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


def edit_checks(
    generator: Any,
    source: np.ndarray | str | Path,
    audio: np.ndarray,
    out_dir: str | Path,
    *,
    sample_rate: int = schema.SAMPLE_RATE,
    level_emotion: str = "happy",
    unit_emotion: str = "surprised",
    unit: str = "mouth_lower",
    mix: tuple[str, str] = ("happy", "surprised"),
    sync_emotions: Sequence[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the checks (module doc) with a loaded :class:`~lesbench.model.generate.Generator`.

    ``audio``: (N,) float32 mono at ``sample_rate`` (a few seconds; the sync estimate needs ~3 s).
    Clips are written to ``out_dir`` as ``check_*.mp4``. ``sync_emotions`` defaults to every
    emotion of the run's LES plus neutral; ``()`` skips the sync check. Emotions the LES lacks
    are skipped with a note. Returns a JSON-ready dict.
    """
    measure = TrackerMeasure(generator.tracker)
    say = log or (lambda _m: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    known = set(generator.space.emotions)
    audio = np.asarray(audio, np.float32).reshape(-1)
    names = list(schema.AU_NAMES)
    report: dict[str, Any] = {"audio_seconds": round(len(audio) / sample_rate, 3), "notes": []}
    cache: dict[str, dict[str, Any]] = {}

    def clip(name: str, **request: Any) -> dict[str, Any]:
        if name not in cache:
            path = safe_join(out, f"check_{name}.mp4", what="emotion name", source=generator.run_dir / "les")
            frames = generator.generate(source, audio, sample_rate=sample_rate, pose_motion=False,
                                        request=generator.request(**request))
            io.write_video(path, frames, fps=schema.FPS, audio=audio, sr=sample_rate)
            aus, landmarks = measure.with_landmarks(io.read_frames(path))  # what was written, decoded
            cache[name] = {"path": path, "aus": aus, "landmarks": landmarks}
        return cache[name]

    neutral = clip("neutral", emotion="neutral")

    if level_emotion in known:
        idx = [names.index(a) for a in schema.FACS_PROTOTYPES[level_emotion]]
        proto = [float(clip(f"{level_emotion}_{lv:g}", emotion=level_emotion, level=lv)["aus"][idx].mean()) for lv in LEVELS]
        report["levels"] = {"emotion": level_emotion, "aus": [names[i] for i in idx], "levels": list(LEVELS),
                            "prototype_au": proto, "monotonic": bool(all(b > a for a, b in zip(proto, proto[1:])))}
        say(f"levels: {level_emotion} {'/'.join(names[i] for i in idx)} "
            + " ".join(f"{lv:g}:{p:.3f}" for lv, p in zip(LEVELS, proto)))
    else:
        report["notes"].append(f"levels: {level_emotion!r} is not in the LES")

    if unit_emotion in known:
        upper = [names.index(a) for u in UPPER_FACE_UNITS for a in schema.FACIAL_UNITS[u]]
        neutral_frames = io.read_frames(neutral["path"])

        def held(c: dict[str, Any]) -> np.ndarray:
            return measure(hold_lower_face(io.read_frames(c["path"]), neutral_frames, neutral["landmarks"])) - neutral["aus"]

        restricted = clip(f"{unit_emotion}_{unit}", emotion=unit_emotion, level=1.0, units=[unit])
        full = clip(f"{unit_emotion}_1", emotion=unit_emotion, level=1.0)
        d_raw = restricted["aus"] - neutral["aus"]
        d_held, d_ctrl = held(restricted), held(full)
        worst = float(np.abs(d_held[upper]).max())
        report["unit"] = {
            "unit": unit, "emotion": unit_emotion, "tolerance": UNIT_TOLERANCE,
            "upper_face_raw": {names[i]: float(d_raw[i]) for i in upper},
            "upper_face_held": {names[i]: float(d_held[i]) for i in upper},
            "unrestricted_held": {names[i]: float(d_ctrl[i]) for i in upper},
            "max_abs_held": worst, "max_abs_unrestricted_held": float(np.abs(d_ctrl[upper]).max()),
            "within_tolerance": worst < UNIT_TOLERANCE,
        }
        say(f"unit: {unit_emotion} --units {unit}: brow/eye max |dAU| {worst:.3f} held "
            f"({float(np.abs(d_raw[upper]).max()):.3f} raw); unrestricted {float(np.abs(d_ctrl[upper]).max()):.3f}")
    else:
        report["notes"].append(f"unit: {unit_emotion!r} is not in the LES")

    if set(mix) <= known:
        i12 = names.index("AU12")
        a, b = (float(clip(f"{e}_1", emotion=e, level=1.0)["aus"][i12]) for e in mix)
        m = float(clip("mix", mix={e: 0.5 for e in mix})["aus"][i12])
        lo, hi = sorted((a, b))
        report["mix"] = {"components": list(mix), "AU12": {mix[0]: a, mix[1]: b, "mix": m},
                         "between": bool(lo - 0.02 <= m <= hi + 0.02)}
        say(f"mix: AU12 {mix[0]} {a:.3f}, {mix[1]} {b:.3f}, 50/50 mix {m:.3f}")
    else:
        report["notes"].append(f"mix: {', '.join(mix)} not all in the LES")

    emotions = ["neutral", *generator.space.emotions] if sync_emotions is None else list(sync_emotions)
    if emotions:
        per: dict[str, dict[str, Any]] = {}
        for e in emotions:
            if e != "neutral" and e not in known:
                report["notes"].append(f"sync: {e!r} is not in the LES")
                continue
            c = clip("neutral" if e == "neutral" else f"{e}_1", emotion=e, level=None if e == "neutral" else 1.0)
            r = av_sync(c["landmarks"], audio, sr=sample_rate)
            per[e] = {"offset": r.offset, "offset_frac": r.offset_frac, "confidence": r.confidence,
                      "valid": r.valid, "reason": r.reason}
        offsets = [v["offset"] for v in per.values() if v["offset"] is not None]
        report["sync"] = {"per_emotion": per, "n": len(per), "within_1": sum(abs(o) <= 1 for o in offsets),
                          "mean_offset_frac": float(np.mean([v["offset_frac"] for v in per.values()
                                                             if v["offset_frac"] is not None])) if offsets else None}
        say(f"sync: offset within 0 +- 1 for {report['sync']['within_1']}/{len(per)} emotions ("
            + ", ".join(f"{e} {v['offset']:+d}" if v["offset"] is not None else f"{e} -" for e, v in per.items()) + ")")
    report["clips"] = {k: v["path"].name for k, v in cache.items()}
    return report
