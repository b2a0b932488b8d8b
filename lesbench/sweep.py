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
brow and eye AUs, :data:`~lesbench.metrics.controllability.UPPER_FACE_UNITS`; lower half: the
rest) are measured on the output with the unit's own half replaced by the neutral output's
pixels (:func:`~lesbench.metrics.controllability.hold_lower_face`, split at the base of the nose
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
with the yardstick's sha256 and provenance (:func:`evaluate_controllability`). A method that
cannot take requests at all (it replays or looks up test clips) is *not applicable*: it was not
asked, so nothing was measured.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from lesbench.records import json_safe
from lesbench.threads import torch_threads
from lesbench import schema
from lesbench.errors import LesbenchError
from lesbench.metrics.controllability import TrackerMeasure

if TYPE_CHECKING:  # pragma: no cover
    from lesbench.baselines.base import Method, PreparedData
    from lesbench.les.space import LinearEmotionSpace

#: Version of the sweep (requests, sources, aggregation); the metric functions are ``ctrl/1``.
SWEEP_VERSION = "sweep/3"
NEUTRAL = "neutral"

#: Leaderboard names of the sweep's outputs and whether higher is better.
OUTPUTS: dict[str, bool] = {"level-spearman": True, "level-linearity": True, "unit-isolation": True}

#: ``measure(frames (T, H, W, 3) uint8) -> (17,) float AU mean (NaN when no face)``.
AUMeasure = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SweepConfig:
    """What the sweep asks for. ``levels`` are LES levels (fractions of MEAD level 3) beyond the
    neutral level 0; ``duration_s`` the length of the driving audio (s); ``max_sources`` the
    number of test speakers used as sources; ``emotions``/``units`` restrict the sweep (default:
    all LES emotions, all facial units); ``flat_tol`` the projection range (AU units) below which
    an emotion counts as not responding to the level (scored 0); ``min_move`` the mean |ΔAU| inside a unit
    (AU units) below which an edit counts as not moving that unit (tracker noise floor);
    ``torch_threads``: torch's intra-op threads during the sweep (restored after; None leaves
    them). The sweep's many short clips run 4-8x slower with 2 threads than with 1 on a busy
    2-core machine (OpenMP spin-waits; same outputs), hence 1."""

    levels: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    duration_s: float = 0.6
    max_sources: int = 2
    emotions: tuple[str, ...] | None = None
    units: tuple[str, ...] | None = None
    flat_tol: float = 1e-3
    min_move: float = 0.005
    torch_threads: int | None = 1

    def __post_init__(self) -> None:
        if not self.levels or any(not (0.0 < float(lv) <= 2.0) for lv in self.levels):
            raise LesbenchError(f"sweep levels must be in (0, 2] (level 0 is always the neutral request): {self.levels}")
        if len(set(self.levels)) < 2:
            raise LesbenchError("the sweep needs at least 2 distinct non-zero levels")
        if self.duration_s <= 0 or self.max_sources < 1:
            raise LesbenchError("sweep duration_s must be > 0 and max_sources >= 1")
        unknown = set(self.units or ()) - set(schema.FACIAL_UNITS)
        if unknown:
            raise LesbenchError(f"unknown facial units {sorted(unknown)}; known: {', '.join(schema.FACIAL_UNITS)}")


@dataclass
class SweepSource:
    """One source image of the sweep: the first crop frame of ``clip_id`` ((H, W, 3) uint8 RGB)."""

    clip_id: str
    speaker: str
    view: str
    image: np.ndarray


@dataclass
class LevelRecord:
    """Level control of one (source, emotion): requested levels (0 first), projections (AU units,
    level-0 output subtracted), and ``level_control``'s numbers over the non-zero levels (0 when
    ``flat``: the method does not follow the level; NaN when too few requests succeeded).
    ``reason``: why the value is the worst one or undefined ("" when measured)."""

    source: str
    emotion: str
    levels: list[float]
    projections: list[float]
    spearman: float
    r2: float
    slope: float
    flat: bool
    reason: str = ""


@dataclass
class UnitRecord:
    """Unit isolation of one (source, unit): ctrl/1 ratios of the restricted (``ratio_restricted``)
    and unrestricted (``ratio_unrestricted``) edits of ``emotion`` against the neutral output,
    mean |ΔAU| inside/outside the unit for both, and ``isolation = 1 - restricted/unrestricted``
    (0 when the method cannot follow the unit request, NaN when undefined; ``reason`` says which)."""

    source: str
    unit: str
    emotion: str
    inside_restricted: float
    outside_restricted: float
    inside_unrestricted: float
    outside_unrestricted: float
    ratio_restricted: float
    ratio_unrestricted: float
    isolation: float
    measurement: str = "raw"  # "held": the other half measured with the unit's half held (module doc)
    reason: str = ""


@dataclass
class ControlSweepResult:
    """Everything the sweep measured; :meth:`summary` gives the reported means."""

    method: str
    levels: list[LevelRecord] = field(default_factory=list)
    units: list[UnitRecord] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    audio_clip: str | None = None
    n_frames: int = 0
    n_generated: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    config: SweepConfig = field(default_factory=SweepConfig)

    def level_values(self, key: str) -> list[float]:
        """Finite values of ``key`` over (source, emotion) pairs, flat pairs (scored 0) included."""
        return [float(getattr(r, key)) for r in self.levels if math.isfinite(getattr(r, key))]

    def isolation_values(self) -> list[float]:
        return [r.isolation for r in self.units if math.isfinite(r.isolation)]

    def summary(self) -> dict[str, Any]:
        """Means over (source, emotion) and (source, unit) pairs; NaN where nothing is defined."""
        def mean(v: list[float]) -> float:
            return float(np.mean(v)) if v else float("nan")

        per_emotion: dict[str, dict[str, float]] = {}
        for emo in sorted({r.emotion for r in self.levels}):
            rs = [r for r in self.levels if r.emotion == emo]
            per_emotion[emo] = {"spearman": mean([r.spearman for r in rs if math.isfinite(r.spearman)]),
                                "r2": mean([r.r2 for r in rs if math.isfinite(r.r2)]),
                                "slope": mean([r.slope for r in rs if not r.flat and math.isfinite(r.slope)]),
                                "n_flat": sum(r.flat for r in self.levels if r.emotion == emo)}
        per_unit = {u: {"isolation": mean([r.isolation for r in self.units if r.unit == u and math.isfinite(r.isolation)]),
                        "emotion": next(r.emotion for r in self.units if r.unit == u)}
                    for u in sorted({r.unit for r in self.units})}
        return {
            "level-spearman": mean(self.level_values("spearman")),
            "level-linearity": mean(self.level_values("r2")),
            "unit-isolation": mean(self.isolation_values()),
            "n_level_pairs": len(self.levels),
            "n_flat": sum(r.flat for r in self.levels),
            "n_unit_pairs": len(self.units),
            "n_unit_not_following": sum(r.isolation == 0.0 and bool(r.reason) for r in self.units),
            "n_unit_undefined": sum(not math.isfinite(r.isolation) for r in self.units),
            "reasons": self.reasons(),
            "per_emotion": per_emotion,
            "per_unit": per_unit,
        }

    def reasons(self) -> dict[str, int]:
        """How many (source, emotion) / (source, unit) pairs scored the worst value or were left
        out, by kind of reason (the text before its first colon; the records hold the details)."""
        out: dict[str, int] = {}
        for r in [*self.levels, *self.units]:
            if r.reason:
                kind = "level" if isinstance(r, LevelRecord) else "unit"
                key = f"{kind}: {r.reason.split(':')[0].split(' (')[0]}"
                out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items()))

    def as_dict(self) -> dict[str, Any]:
        return json_safe({
            "method": self.method, "version": SWEEP_VERSION, "config": asdict(self.config),
            "sources": self.sources, "audio_clip": self.audio_clip, "n_frames": self.n_frames,
            "n_generated": self.n_generated, "failures": dict(sorted(self.failures.items())),
            "seconds": round(self.seconds, 3), "summary": self.summary(),
            "levels": [asdict(r) for r in self.levels], "units": [asdict(r) for r in self.units],
        })


# ----------------------------------------------------------------------------------- helpers

def supports_control(method: Any) -> bool:
    """True when ``method`` takes arbitrary (source, audio, emotion, level) requests."""
    return bool(getattr(method, "controllable", False))


def mead_level_for(les_level: float) -> int:
    """The MEAD level (1–3) nearest to an LES level (fraction of level 3), for level-only methods."""
    return int(min(3, max(1, round(3.0 * float(les_level)))))


def strongest_emotion(les: "LinearEmotionSpace", unit: str, emotions: list[str] | None = None) -> str:
    """The emotion whose scaled LES direction ``|d_e| d_e`` has the largest norm inside ``unit``."""
    mask = les.unit_mask([unit])
    names = emotions or les.emotions
    best = max(names, key=lambda e: float(np.linalg.norm(les.directions[e].norm * les.directions[e].direction * mask)))
    return best


def select_sources(data: "PreparedData", max_sources: int = 2, split: str = "test") -> list[SweepSource]:
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


def select_audio(data: "PreparedData", duration_s: float, split: str = "test") -> tuple[str, np.ndarray]:
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
    method: "Method",
    data: "PreparedData | None",
    les: "LinearEmotionSpace",
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


def _sweep(method: "Method", les: "LinearEmotionSpace", cfg: SweepConfig, emotions: list[str], units: list[str],
           sources: list[SweepSource], audio: np.ndarray, audio_clip: str | None, n_frames: int,
           measure: AUMeasure, say: Callable[[str], None], t_start: float) -> ControlSweepResult:
    from lesbench.baselines.base import GenerationRequest
    from lesbench.metrics.controllability import level_control, project_on_direction, unit_isolation

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
        from lesbench.metrics.controllability import UPPER_FACE_UNITS, hold_lower_face

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
            record = _unit_record(src.clip_id, unit, emo, neutral, unrestricted, restricted, unit_isolation,
                                  cfg.min_move, posable=posable)
            record.measurement = how
            result.units.append(record)
        say(f"controllability: source {si + 1}/{len(sources)} ({src.clip_id}) done, "
            f"{result.n_generated} clips generated")
    result.seconds = time.time() - t_start
    return result


def _unit_record(source: str, unit: str, emotion: str, neutral: np.ndarray, unrestricted: np.ndarray,
                 restricted: np.ndarray, unit_isolation: Callable[..., float], min_move: float = 0.0,
                 posable: bool = True) -> UnitRecord:
    """One unit record (module doc). ``posable``: the yardstick's direction of ``emotion`` has a
    component inside ``unit`` (else the request means nothing and the record is undefined)."""
    inside = np.array([n in schema.FACIAL_UNITS[unit] for n in schema.AU_NAMES])

    def parts(x: np.ndarray) -> tuple[float, float]:
        d = np.abs(x - neutral)
        return float(d[inside].mean()), float(d[~inside].mean())

    nan = float("nan")
    if not (np.isfinite(unrestricted).all() and np.isfinite(restricted).all()):
        return UnitRecord(source, unit, emotion, nan, nan, nan, nan, nan, nan, nan,
                          reason="a request failed (see failures)")
    in_r, out_r = parts(restricted)
    in_u, out_u = parts(unrestricted)
    r_r = unit_isolation(neutral, restricted, unit)
    r_u = unit_isolation(neutral, unrestricted, unit)
    # below min_move, the ratios are tracker noise
    if not posable:
        iso, reason = nan, f"undefined: the LES direction of {emotion} has no component in {unit}"
    elif in_u < min_move:
        iso, reason = 0.0, (f"cannot edit the unit: the unrestricted {emotion} edit moves {unit} by "
                            f"{in_u:.2g} < min_move {min_move:g} AU")
    elif in_r < min_move:
        iso, reason = 0.0, (f"does not follow the unit request: the edit restricted to {unit} moves it by "
                            f"{in_r:.2g} < min_move {min_move:g} AU")
    elif not (math.isfinite(r_r) and math.isfinite(r_u) and r_u > 0):
        iso, reason = nan, f"undefined: the unrestricted {emotion} edit moves nothing outside {unit}"
    else:
        iso, reason = 1.0 - r_r / r_u, ""
    return UnitRecord(source, unit, emotion, in_r, out_r, in_u, out_u, float(r_r), float(r_u), float(iso),
                      reason=reason)


# ----------------------------------------------------------------------------------- evaluate hook

def method_les(method: Any) -> Path | None:
    """The LES folder recorded in ``method``'s checkpoint (``{run}/les``), or None."""
    from lesbench.les.space import LES_JSON

    ckpt = getattr(method, "checkpoint", None)
    if ckpt is None:
        return None
    run = Path(ckpt) if Path(ckpt).is_dir() else Path(ckpt).parent
    return run / "les" if (run / "les" / LES_JSON).is_file() else None


def benchmark_les(data: "PreparedData | str | Path", split: str = "train") -> tuple["LinearEmotionSpace", dict[str, Any]]:
    """The yardstick: the LES built from ``data``'s ``split`` with :func:`build_les`'s defaults,
    and its provenance (``sha256`` of the saved artefact, the data set's sha256s, the split).

    Built afresh on each call (seconds; deterministic, so equal data give an equal sha256) and
    hashed through a temporary folder: nothing is written next to the prepared data.
    """
    import tempfile

    from lesbench.les.space import build_les, les_hash

    root = Path(getattr(data, "root", data))
    space = build_les(root, train_split=split)
    with tempfile.TemporaryDirectory(prefix="lesbench-les-") as tmp:
        sha = les_hash(space.save(tmp))
    info = {"from": "benchmark", "sha256": sha, "built_from": {"split": split, **space.provenance},
            "emotions": space.emotions}
    return space, info


def resolve_les(method: Any, les: str | Path | None = None,
                data: "PreparedData | str | Path | None" = None) -> tuple["LinearEmotionSpace", dict[str, Any]] | None:
    """The yardstick that measures the sweep and its provenance, or None when there is none.

    An explicit ``les`` (folder or ``les.json``) wins (``from: option``, for every method of the
    run); otherwise the LES the benchmark builds from ``data``'s train split
    (:func:`benchmark_les`, ``from: benchmark``). The method's checkpoint LES never measures; when
    there is one its path and sha256 are recorded as ``method_les``.
    """
    from lesbench.les.space import LES_JSON, LinearEmotionSpace, les_hash

    if les is not None:
        folder = Path(les).parent if Path(les).name == LES_JSON else Path(les)
        space = LinearEmotionSpace.load(folder)
        info: dict[str, Any] = {"from": "option", "path": str(folder.resolve()), "sha256": les_hash(folder),
                                "built_from": space.provenance, "emotions": space.emotions}
    elif data is not None:
        space, info = benchmark_les(data)
    else:
        return None
    own = method_les(method)
    if own is not None:
        info["method_les"] = {"path": str(own.resolve()), "sha256": les_hash(own),
                              "same_as_yardstick": les_hash(own) == info["sha256"]}
    return space, info


def evaluate_controllability(
    method: "Method",
    data: "PreparedData",
    *,
    les: str | Path | None = None,
    config: SweepConfig | None = None,
    bootstrap_n: int = 1000,
    bootstrap_seed: int = 0,
    measure: AUMeasure | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, str], dict[str, Any]]:
    """Run the sweep for ``lesbench evaluate``: ``(scores, unavailable, record)``.

    ``scores`` uses the evaluator's record format (``value``, ``ci95`` over (source, emotion) or
    (source, unit) pairs, ``version``, ``higher_is_better``, ``n``); ``unavailable`` names outputs
    that could not be measured at all and why (a method that cannot follow the requests is not
    unavailable: it scores 0, reasons in ``record["summary"]["reasons"]``); ``record`` is the full
    sweep with the yardstick's provenance (``les``: sha256, built from what). A method
    without ``controllable`` gets no scores and ``record = {"applicable": False, "reason": ...}``
    (not applicable is not "unavailable": nothing is missing).
    """
    from lesbench.metrics.controllability import VERSION as CTRL_VERSION

    version = f"{CTRL_VERSION}+{SWEEP_VERSION}"
    name = getattr(method, "name", type(method).__name__)
    if not supports_control(method):
        why = (f"{name} does not generate from arbitrary (source, audio, emotion, level) requests "
               "(it replays or looks up test clips)")
        return {}, {}, {"applicable": False, "reason": f"not applicable: {why}"}
    try:
        resolved = resolve_les(method, les, data)
    except LesbenchError as exc:  # e.g. no train split with neutral clips to build the yardstick from
        resolved, why = None, f"no yardstick LES: {exc}"
    else:
        why = "no Linear Emotion Space to measure with: pass data or les=LES_FOLDER (`lesbench les build`)"
    if resolved is None:
        return {}, {k: why for k in OUTPUTS}, {"applicable": True, "reason": why}
    space, les_info = resolved
    res = control_sweep(method, data, space, config, measure=measure, progress=progress)
    from lesbench.metrics.score import bootstrap_ci

    series = {"level-spearman": res.level_values("spearman"), "level-linearity": res.level_values("r2"),
              "unit-isolation": res.isolation_values()}
    outputs = {"level-spearman": "spearman", "level-linearity": "r2", "unit-isolation": "isolation"}
    scores: dict[str, dict[str, Any]] = {}
    unavailable: dict[str, str] = {}
    for key, values in series.items():
        if not values:
            # flat levels and unfollowed unit requests score 0 above: only undefined or failed
            # points are left, e.g. every request failed
            recs = res.units if key == "unit-isolation" else res.levels
            why = (f"no defined sweep point ({len(res.failures)} failed requests; "
                   f"{'; '.join(sorted({r.reason for r in recs if r.reason})) or 'no record'})")
            unavailable[key] = why
            continue
        scores[key] = {"version": version, "weights": {}, "value": float(np.mean(values)),
                       "ci95": (list(ci) if (ci := bootstrap_ci(values, n=bootstrap_n, seed=bootstrap_seed)) else None),
                       "higher_is_better": OUTPUTS[key], "n": len(values), "metric": "controllability",
                       "output": outputs[key], "yardstick": {"les_sha256": les_info["sha256"],
                                                             "from": les_info["from"]}}
    record = {"applicable": True, "les": les_info, **res.as_dict()}
    return scores, unavailable, record
