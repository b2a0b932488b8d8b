"""Controllability sweep: ask a method for levels 0…1 of every LES emotion and for unit-restricted
edits, measure the AUs of what it renders, and score level control and unit isolation.

The metric definitions are :mod:`lesbench.metrics.controllability` (``ctrl/1``); this module
only orchestrates (which requests, which sources, which audio) and aggregates.

**Requests.** For each source image (by default the first crop frame of the first neutral clip of
each test speaker, at most ``max_sources`` speakers) and one driving audio (the first
``duration_s`` seconds of the first test clip that has audio):

- the *neutral* request (emotion ``neutral``, LES level 0) — the level-0 point of every emotion
  and the reference ``N`` of the unit edits (an emotion at level 0 *is* the neutral request);
- for each LES emotion ``e`` and level ``l`` in ``levels`` (default 0.25, 0.5, 0.75, 1): emotion
  ``e`` at LES level ``l`` (a fraction of the MEAD level-3 expression; ``request.les_level``);
  methods that take only MEAD levels see ``level = clip(round(3 l), 1, 3)``;
- for each facial unit ``u`` (:data:`lesbench.schema.FACIAL_UNITS`): the emotion whose scaled LES
  direction is largest inside ``u`` (:func:`strongest_emotion`) at level 1, restricted to ``u``
  (``request.units``).

**Measurement.** Every output is tracked with :class:`lesbench.extract.face.FaceTracker`; its AU
vector is the mean over frames with a face of the blendshape AUs ((17,), ``schema.AU_NAMES``).

**Held halves for unit edits** (new in ``sweep/2``). MediaPipe's AUs are not local: an opened
jaw alone raises its eye squint (rendered eye pixels identical, AU07 +0.08 on the demo run).
So for the unit records, the AUs of the face half the unit does *not* belong to (upper half:
brow and eye AUs, :data:`~lesbench.extract.measure.UPPER_FACE_UNITS`; lower half: the
rest) are measured on the output with the unit's own half replaced by the neutral output's
pixels (:func:`~lesbench.extract.measure.hold_lower_face`, split at the base of the nose
on the neutral output's landmarks). Whatever the method changed in the other half is still in
the image and measured; the instrument's cross-talk from the edited half is not. Needs a
measurement that also returns landmarks (:class:`TrackerMeasure`); with a plain AU function the
unit records are measured raw (``UnitRecord.measurement``).

**One yardstick** (new in ``sweep/3``). Every method is measured with the same LES: the one the
benchmark builds from the prepared data set's train split (:func:`benchmark_les`,
:func:`lesbench.les.space.build_les`), never the LES in a method's checkpoint (which a method
could fit to its own outputs). Its sha256 and provenance are recorded with the numbers; an LES
in the method's checkpoint is recorded for information only (``method_les``). An explicit
``les=`` folder replaces the built one for every method of the run (recorded ``from: option``).

**Level control** (per source and emotion): projection of ``AU(e, l) - AU(neutral)`` on the LES
direction of ``e`` (:func:`~lesbench.metrics.controllability.project_on_direction`), then
Spearman ρ and R² of the line against the requested non-zero levels
(:func:`~lesbench.metrics.controllability.level_control`). Level 0 (the neutral request) is the
baseline, not a point of the fit (``sweep/3``): with it, a method that follows the emotion but
ignores its level (one-hot emotion input: neutral differs, every level > 0 gives the same
face) would get ρ = 1/√2 for level control it does not have. An emotion whose projections do not
change with the requested level (range below ``flat_tol`` AU units: an audio-only method, a
one-hot method) cannot follow a level request and scores the worst value, ρ = 0 and R² = 0,
with ``reason`` recorded (``flat``). Reported: the mean over (source, emotion) pairs as
``level-spearman`` and ``level-linearity`` (higher is better).

**Unit isolation** (per source and unit): with ``N`` the neutral output, ``U`` the unrestricted
edit (emotion ``e*`` at level 1) and ``R`` the same edit restricted to unit ``u``,
``r(X) = unit_isolation(N, X, u)`` = mean |ΔAU| outside ``u`` / mean |ΔAU| inside ``u``
(ctrl/1) and ``unit-isolation = 1 - r(R) / r(U)``: 1 = restricting the edit to ``u`` leaves every
other AU where the neutral output has it, 0 = restricting changes nothing (a method that cannot
edit units), below 0 = worse than not restricting (higher is better). A method that cannot
follow the unit request scores the worst value 0, with ``reason`` recorded: its unrestricted
edit moves ``u`` by less than ``min_move`` (mean |ΔAU| inside ``u``, default 0.005: the
tracker's noise floor; the method cannot edit ``u``), or its restricted edit does (the edit is
dropped instead of confined). Undefined (NaN, ``reason`` recorded, left out of the mean) only
where the yardstick cannot pose the request (the LES direction of ``e*`` has no component in
``u``) or the unrestricted edit already moves nothing outside ``u`` (nothing to isolate).

    from lesbench.sweep import control_sweep, SweepConfig
    res = control_sweep(method, prepared, les)          # method.setup(prepared) done before
    res.summary()   # {"level-spearman": 0.98, "level-linearity": 0.95, "unit-isolation": 0.9, ...}

``lesbench evaluate`` runs it for methods with ``Method.controllable`` and records the numbers
with the yardstick's sha256 and provenance (:func:`lesbench.sweep.yardstick.evaluate_controllability`). A method that
cannot take requests at all (it replays or looks up test clips) is *not applicable*: it was not
asked, so nothing was measured.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np

from lesbench import schema
from lesbench.baselines.base import GenerationRequest, Method, PreparedData
from lesbench.errors import LesbenchError
from lesbench.les.space import LinearEmotionSpace
from lesbench.metrics.controllability import level_control, project_on_direction, unit_isolation
from lesbench.extract.measure import UPPER_FACE_UNITS, TrackerMeasure, hold_lower_face
from lesbench.sweep.records import NEUTRAL, ControlSweepResult, LevelRecord, SweepConfig, SweepSource, unit_record
from lesbench.threads import torch_threads

#: ``measure(frames (T, H, W, 3) uint8) -> (17,) float AU mean (NaN when no face)``.
AUMeasure = Callable[[np.ndarray], np.ndarray]


# ----------------------------------------------------------------------------------- helpers

def supports_control(method: Any) -> bool:
    """True when ``method`` takes arbitrary (source, audio, emotion, level) requests."""
    return bool(getattr(method, "controllable", False))


def mead_level_for(les_level: float) -> int:
    """The MEAD level (1–3) nearest to an LES level (fraction of level 3), for level-only methods."""
    return int(min(3, max(1, round(3.0 * float(les_level)))))


def strongest_emotion(les: LinearEmotionSpace, unit: str, emotions: list[str] | None = None) -> str:
    """The emotion whose scaled LES direction ``|d_e| d_e`` has the largest norm inside ``unit``."""
    mask = les.unit_mask([unit])
    names = emotions or les.emotions
    best = max(names, key=lambda e: float(np.linalg.norm(les.directions[e].norm * les.directions[e].direction * mask)))
    return best


def select_sources(data: PreparedData, max_sources: int = 2, split: str = "test") -> list[SweepSource]:
    """First crop frame of each ``split`` speaker's first neutral clip (first clip if none),
    speakers in sorted order, at most ``max_sources``."""
    rows = data.split(split)
    if rows.empty:
        raise LesbenchError(f"{data.paths['clips']}: no usable {split!r} clip for the controllability sweep")
    out: list[SweepSource] = []
    for speaker in sorted(str(s) for s in rows["speaker"].unique()):
        mine = data.clips[data.clips["speaker"].astype(str) == speaker]
        neutral = mine[mine["emotion"].astype(str) == NEUTRAL]
        pick = (neutral if not neutral.empty else mine).sort_values("clip_id").iloc[0]
        cid = str(pick["clip_id"])
        out.append(SweepSource(clip_id=cid, speaker=speaker, view=str(pick.get("view", "front")),
                               image=data.read_first_frame(cid)))
        if len(out) >= max_sources:
            break
    return out


def select_audio(data: PreparedData, duration_s: float, split: str = "test") -> tuple[str, np.ndarray]:
    """The first ``duration_s`` seconds (16 kHz mono float32) of the first ``split`` clip with audio."""
    n = int(round(duration_s * schema.SAMPLE_RATE))
    for cid in sorted(str(c) for c in data.split(split)["clip_id"]):
        audio = data.read_audio(cid)
        if audio is not None and len(audio) >= schema.HOP * 3:
            return cid, np.asarray(audio[:n], np.float32)
    raise LesbenchError(f"{data.paths['clips']}: no {split!r} clip with audio to drive the controllability sweep")


def tracker_measure(tracker: Any | None = None) -> TrackerMeasure:
    """The default measurement: a :class:`TrackerMeasure`."""
    return TrackerMeasure(tracker)


# ----------------------------------------------------------------------------------- the sweep

def control_sweep(
    method: Method,
    data: PreparedData | None,
    les: LinearEmotionSpace,
    config: SweepConfig | None = None,
    *,
    sources: list[SweepSource] | None = None,
    audio: np.ndarray | None = None,
    audio_clip: str | None = None,
    measure: AUMeasure | None = None,
    progress: Callable[[str], None] | None = None,
) -> ControlSweepResult:
    """Run the sweep (module docstring) on a method whose :meth:`setup` was already called.

    ``sources``/``audio`` default to :func:`select_sources`/:func:`select_audio` on ``data``;
    ``measure`` defaults to :func:`tracker_measure`. One failing request is recorded in
    ``failures`` and leaves a NaN point, never stops the sweep.
    """
    cfg = config or SweepConfig()
    say = progress or (lambda _m: None)
    t_start = time.time()
    emotions = [e for e in (cfg.emotions or les.emotions) if e != NEUTRAL]
    unknown = [e for e in emotions if e not in les.directions]
    if unknown:
        raise LesbenchError(f"sweep emotions {unknown} are not in the LES; known: {', '.join(les.emotions)}")
    units = list(cfg.units or schema.FACIAL_UNITS)
    if sources is None or audio is None:
        if data is None:
            raise LesbenchError("control_sweep: give data= or both sources= and audio=")
        sources = sources if sources is not None else select_sources(data, cfg.max_sources)
        if audio is None:
            audio_clip, audio = select_audio(data, cfg.duration_s)
    n_frames = int(len(audio) // schema.HOP)
    if n_frames < 1:
        raise LesbenchError("control_sweep: the driving audio is shorter than one video frame")
    measure = measure or tracker_measure()
    with torch_threads(cfg.torch_threads):
        return _sweep(method, les, cfg, emotions, units, sources, audio, audio_clip, n_frames, measure, say, t_start)


def _sweep(method: Method, les: LinearEmotionSpace, cfg: SweepConfig, emotions: list[str], units: list[str],
           sources: list[SweepSource], audio: np.ndarray, audio_clip: str | None, n_frames: int,
           measure: AUMeasure, say: Callable[[str], None], t_start: float) -> ControlSweepResult:
    result = ControlSweepResult(method=getattr(method, "name", type(method).__name__), config=cfg,
                                sources=[s.clip_id for s in sources], audio_clip=audio_clip, n_frames=n_frames)
    nan = np.full(len(schema.AU_NAMES), np.nan)
    held = callable(getattr(measure, "with_landmarks", None))
    kept: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # (frames, landmarks) the unit records re-measure

    def ask(src: SweepSource, emotion: str, les_level: float, unit: str | None = None, keep: bool = False) -> np.ndarray:
        key = f"{src.clip_id}:{emotion}:{les_level:g}" + (f":{unit}" if unit else "")
        req = GenerationRequest(
            clip_id=f"ctrl:{key}", speaker=src.speaker, view=src.view, emotion=emotion,
            level=1 if emotion == NEUTRAL else mead_level_for(les_level), sentence="", n_frames=n_frames,
            fps=float(schema.FPS), source_image=src.image, source_clip_id=src.clip_id, audio=audio,
            sample_rate=schema.SAMPLE_RATE, les_level=float(les_level), units=(unit,) if unit else None,
        )
        try:
            frames = np.asarray(method.generate(req))
            result.n_generated += 1
            if frames.ndim != 4 or frames.shape[0] < 1 or frames.shape[3] != 3:
                raise LesbenchError(f"returned {frames.dtype} {frames.shape}; expected (T, H, W, 3)")
            if keep and held:
                aus, landmarks = measure.with_landmarks(frames)
                kept[key] = (frames, landmarks)
            else:
                aus = measure(frames)
            aus = np.asarray(aus, np.float64).reshape(-1)
            if aus.shape != (len(schema.AU_NAMES),):
                raise LesbenchError(f"AU measurement returned shape {aus.shape}")
            if not np.isfinite(aus).all():
                raise LesbenchError("no face found in the generated clip")
            return aus
        except Exception as exc:  # one failing request is recorded, never fatal
            if isinstance(exc, KeyboardInterrupt):
                raise
            result.failures[key] = f"{type(exc).__name__}: {exc}"
            return nan

    def halves(src: SweepSource, unit: str, key: str, aus: np.ndarray) -> tuple[np.ndarray, str]:
        """AUs of ``key``'s output with the other half measured against the held neutral half."""
        n_key = f"{src.clip_id}:{NEUTRAL}:0"
        if not held or key not in kept or n_key not in kept or not np.isfinite(aus).all():
            return aus, "raw"
        (frames, _), (neutral_frames, lm) = kept[key], kept[n_key]
        upper_unit = unit in UPPER_FACE_UNITS
        try:
            mixed = (hold_lower_face(neutral_frames, frames, lm) if upper_unit  # neutral's upper half
                     else hold_lower_face(frames, neutral_frames, lm))          # neutral's lower half
        except ValueError as exc:  # no landmarks on the neutral output / size mismatch
            result.failures[f"{key}:held"] = str(exc)
            return aus, "raw"
        other = np.asarray(measure(mixed), np.float64).reshape(-1)
        if not np.isfinite(other).all():
            result.failures[f"{key}:held"] = "no face found in the held-half clip"
            return aus, "raw"
        upper_aus = {a for u in UPPER_FACE_UNITS for a in schema.FACIAL_UNITS[u]}
        other_half = np.array([(a in upper_aus) != upper_unit for a in schema.AU_NAMES])
        return np.where(other_half, other, aus), "held"

    for si, src in enumerate(sources):
        kept.clear()
        neutral = ask(src, NEUTRAL, 0.0, keep=True)
        if not np.isfinite(neutral).all():
            say(f"controllability: source {src.clip_id}: neutral request failed; source skipped")
            continue
        full: dict[str, np.ndarray] = {}
        for emo in emotions:
            levels = [0.0] + [float(lv) for lv in cfg.levels]
            proj = [0.0]
            for lv in cfg.levels:
                a = ask(src, emo, float(lv), keep=float(lv) == 1.0)
                if float(lv) == 1.0:
                    full[emo] = a
                proj.append(project_on_direction(a, les.directions[emo].direction, neutral)
                            if np.isfinite(a).all() else float("nan"))
            # level 0 is the baseline, not a point of the fit (module doc)
            ok = [p for p in proj[1:] if math.isfinite(p)]
            flat = len(ok) >= 3 and float(np.ptp(ok)) < cfg.flat_tol
            sp = r2 = slope = float("nan")
            reason = ""
            if flat:  # cannot follow a level request: the worst value, not "unavailable"
                sp, r2, slope = 0.0, 0.0, 0.0
                reason = (f"flat: the output does not change with the requested level (projection range "
                          f"{float(np.ptp(ok)):.2g} < flat_tol {cfg.flat_tol:g} AU)")
            else:
                try:
                    lc = level_control(np.array(levels[1:]), np.array(proj[1:]))
                    sp, r2, slope = lc["spearman"], lc["r2"], lc["slope"]
                except ValueError as exc:  # too few valid points
                    result.failures[f"{src.clip_id}:{emo}:levels"] = str(exc)
                    reason = f"too few successful requests ({exc})"
            result.levels.append(LevelRecord(source=src.clip_id, emotion=emo, levels=levels,
                                             projections=[float(p) for p in proj], spearman=float(sp),
                                             r2=float(r2), slope=float(slope), flat=bool(flat), reason=reason))
        for unit in units:
            emo = strongest_emotion(les, unit, emotions)
            unrestricted = full.get(emo)
            if unrestricted is None:  # 1.0 not among the sweep levels: ask for it
                unrestricted = full[emo] = ask(src, emo, 1.0, keep=True)
            restricted = ask(src, emo, 1.0, unit, keep=True)
            held_u, how_u = halves(src, unit, f"{src.clip_id}:{emo}:1", unrestricted)
            held_r, how_r = halves(src, unit, f"{src.clip_id}:{emo}:1:{unit}", restricted)
            how = "held" if how_u == how_r == "held" else "raw"  # both measured the same way, or both raw
            if how == "held":
                unrestricted, restricted = held_u, held_r
            posable = float(np.linalg.norm(les.directions[emo].direction * les.unit_mask([unit]))) > 1e-9
            record = unit_record(src.clip_id, unit, emo, neutral, unrestricted, restricted, unit_isolation,
                                  cfg.min_move, posable=posable)
            record.measurement = how
            result.units.append(record)
        say(f"controllability: source {si + 1}/{len(sources)} ({src.clip_id}) done, "
            f"{result.n_generated} clips generated")
    result.seconds = time.time() - t_start
    return result


