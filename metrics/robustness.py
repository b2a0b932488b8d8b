"""Metric robustness: how much each score moves when the same predictions are perturbed in ways
that preserve their content (version ``robust/1``).

Re-encoding a video shifts SyncNet scores by 0.4-1.2 (THEval), crops and frame sampling change
FID; a table that reports one number per metric hides how much of a difference between methods
is the instrument's. The audit re-scores one set of predictions under a fixed, versioned set of
perturbations (data: ``metrics/perturbations/robustness-v1.yaml``, :func:`load_perturbations`)
with the public :func:`lesbench.metrics.score.score` (a black box: its ``metrics`` results
only) and reports, per metric output:

- ``values``: the score of the original predictions (``original``) and of each perturbation;
- ``delta[p]`` = score(p) - score(original), with a bootstrap 95% CI over clips of the mean
  per-clip difference (clips resampled with replacement, the same draw for every variant);
- ``spread`` = max - min over the original and every perturbation, with a bootstrap CI: per
  draw, the clip-mean of every variant, then max - min. Dataset-level metrics (FID) have no
  per-clip values: their deltas and spread get no CI (``ci_reason`` says so).

The point values are the scorer's own (e.g. a frame-pooled PSNR under ``aggregate: frames``);
the CIs resample clip values. A perturbation or metric that could not be computed is listed
with its reason (``skipped``, ``unavailable``), never dropped.

**Perturbations** (:class:`Perturbation`; all keep what is said and shown): ``encode`` (video
codec and CRF, audio codec and bit rate), ``geometry`` (content moved by ``dx``/``dy`` pixels,
zoom ``scale`` about the centre, edges repeated; :func:`shift_scale`), ``fps`` (resampled by
timestamp to ``fps``, duration kept; :func:`lesbench.io.iter_frames`), ``sampling`` (the
original files scored with one metric's frame sampling replaced). Perturbed copies are written
under the output folder only, with :func:`lesbench.io.write_video` (atomic), the audio read with
:func:`lesbench.io.read_audio_for_video` so it stays on the video's timeline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lesbench import schema
from lesbench.errors import LesbenchError
from lesbench.metrics.protocol import read_packaged_yaml

VERSION = "robust/1"
ORIGINAL = "original"
KINDS = ("encode", "geometry", "fps", "sampling")


@dataclass(frozen=True)
class Perturbation:
    """One content-preserving change (module doc). ``crf``: x264/x265 CRF; ``audio_bit_rate``:
    bits/s (AAC); ``dx``/``dy``: pixels the content moves (+x right, +y down); ``scale``: zoom
    about the frame centre; ``fps``: target frame rate; ``metric``/``sampling``: the protocol
    frame sampling (:class:`~lesbench.metrics.protocol.FrameSampling` fields) that replaces
    ``metric``'s; ``requires``: an encoder PyAV must have."""

    name: str
    kind: str
    description: str = ""
    codec: str = "libx264"
    crf: int = 18
    audio_codec: str = "pcm_s16le"
    audio_bit_rate: int | None = None
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0
    fps: float | None = None
    metric: str | None = None
    sampling: dict[str, Any] | None = None
    requires: str | None = None

    @property
    def rewrites_files(self) -> bool:
        return self.kind != "sampling"


@dataclass(frozen=True)
class PerturbationSet:
    """A loaded perturbation file: ``name``, ``version``, the entries, the file and its sha256."""

    name: str
    version: str
    description: str
    perturbations: tuple[Perturbation, ...]
    source: str
    sha256: str

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "source": self.source, "sha256": self.sha256,
                "perturbations": [dataclasses.asdict(p) for p in self.perturbations]}


def load_perturbations(name_or_path: str | Path = "robustness-v1") -> PerturbationSet:
    """Load a built-in perturbation set by name or any perturbation YAML by path.

    Raises:
        LesbenchError: the file is missing or malformed (the message names the file and entry).
    """
    raw, source, text = read_packaged_yaml(name_or_path, "perturbations", "perturbation set", ["robustness-v1"])
    if not isinstance(raw, dict) or not raw.get("name") or "version" not in raw:
        raise LesbenchError(f"{source}: a perturbation set needs `name`, `version` and `perturbations`")
    entries = raw.get("perturbations")
    if not isinstance(entries, list) or not entries:
        raise LesbenchError(f"{source}: `perturbations` must be a non-empty list")
    fields = {f.name for f in dataclasses.fields(Perturbation)}
    out: list[Perturbation] = []
    for i, e in enumerate(entries):
        where = f"{source}: perturbations[{i}]"
        if not isinstance(e, dict) or not e.get("name") or e.get("kind") not in KINDS:
            raise LesbenchError(f"{where}: needs a `name` and a `kind` in {KINDS}, got {e!r}")
        unknown = set(e) - fields
        if unknown:
            raise LesbenchError(f"{where} ({e['name']}): unknown keys {sorted(unknown)}")
        p = Perturbation(**e)
        if p.name == ORIGINAL or p.name in {q.name for q in out}:
            raise LesbenchError(f"{where}: duplicate or reserved name {p.name!r}")
        if p.kind == "sampling" and (not p.metric or not isinstance(p.sampling, dict)):
            raise LesbenchError(f"{where} ({p.name}): a sampling entry needs `metric` and a `sampling` mapping")
        if not (0.5 <= float(p.scale) <= 2.0) or (p.fps is not None and p.fps <= 0) or not (0 <= int(p.crf) <= 51):
            raise LesbenchError(f"{where} ({p.name}): scale must be in [0.5, 2], fps > 0, crf in 0..51")
        out.append(p)
    return PerturbationSet(str(raw["name"]), str(raw["version"]), str(raw.get("description", "")).strip(),
                           tuple(out), source, hashlib.sha256(text.encode("utf-8")).hexdigest())


def missing_requirement(p: Perturbation) -> str | None:
    """Why ``p`` cannot run here (an encoder PyAV lacks), or None."""
    if not p.requires:
        return None
    import av

    return None if p.requires in av.codecs_available else f"PyAV has no {p.requires} encoder"


# ----------------------------------------------------------------------------------- applying


def shift_scale(frames: np.ndarray, dx: float = 0.0, dy: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Move the content of (T, H, W, 3) uint8 frames by (``dx``, ``dy``) pixels and zoom it by
    ``scale`` about the frame centre; pixels from outside repeat the edge. Integer shifts with
    ``scale`` 1 copy pixels exactly. Returns the same shape and dtype."""
    import cv2

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"shift_scale: frames must be (T, H, W, 3), got {frames.shape}")
    if dx == 0 and dy == 0 and scale == 1.0:
        return frames.copy()
    h, w = frames.shape[1:3]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    m = np.array([[scale, 0.0, (1 - scale) * cx + dx], [0.0, scale, (1 - scale) * cy + dy]], np.float64)
    return np.stack([cv2.warpAffine(f, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for f in frames])


def perturb_clip(src: str | Path, dst: str | Path, p: Perturbation, audio_path: str | Path | None = None) -> dict[str, Any]:
    """Write ``src`` perturbed by ``p`` to ``dst`` (an .mp4, atomic); return what was written:
    ``{"n_frames", "fps", "audio_samples"}`` (audio: 16 kHz samples on the video's timeline,
    None without audio). ``audio_path``: the clip's separate audio file (MEAD's .m4a)."""
    from lesbench.errors import MediaError
    from lesbench.io import probe, read_audio_for_video, read_frames, write_video

    if not p.rewrites_files:
        raise ValueError(f"{p.name}: a sampling perturbation rewrites no file")
    src = Path(src)
    info = probe(src, count_frames=False)
    fps = float(p.fps) if p.fps else float(info.fps)
    frames = read_frames(src, fps=fps)  # resampled by timestamp: duration kept
    frames = shift_scale(frames, p.dx, p.dy, p.scale)
    audio = None
    if info.has_audio or audio_path is not None:
        try:
            audio = read_audio_for_video(src, audio_path, sr=schema.SAMPLE_RATE)
        except MediaError:
            audio = None  # a video without a decodable audio track stays without one
    write_video(dst, frames, fps=fps, audio=audio, sr=schema.SAMPLE_RATE, crf=int(p.crf), codec=p.codec,
                audio_codec=p.audio_codec, audio_bit_rate=p.audio_bit_rate)
    return {"n_frames": int(len(frames)), "fps": fps, "audio_samples": None if audio is None else int(len(audio))}


# ----------------------------------------------------------------------------------- the report


def _numbers(name: str, value: Any) -> dict[str, float]:
    """``{output label: float}`` of one metric value (a float, or a dict of outputs)."""
    if isinstance(value, dict):
        return {f"{name}.{k}": float(v) for k, v in value.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {name: float(value)}
    return {}


def _flatten(results: dict[str, Any]) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, str]]:
    """From ``{metric: MetricResult}``: output values, per-output per-clip values, unavailable."""
    values: dict[str, float] = {}
    per_clip: dict[str, dict[str, float]] = {}
    unavailable: dict[str, str] = {}
    for name, res in results.items():
        if getattr(res, "unavailable", None) is not None:
            unavailable[name] = str(res.unavailable)
            continue
        values.update(_numbers(name, res.value))
        for clip, v in (getattr(res, "per_clip", None) or {}).items():
            for label, x in _numbers(name, v).items():
                if math.isfinite(x):
                    per_clip.setdefault(label, {})[clip] = x
    return values, per_clip, unavailable


def _percentile_ci(draws: np.ndarray, level: float) -> list[float]:
    lo, hi = np.percentile(draws, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def robustness_table(variants: dict[str, dict[str, Any]], *, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95) -> dict[str, Any]:
    """The report's numbers from ``{variant: {metric: MetricResult}}`` (``original`` first).

    Returns ``{output: {"values": {variant: v}, "delta": {p: {"value", "ci95"}}, "spread":
    {"value", "ci95", "max_at", "min_at"}, "n_clips", "ci_reason", "missing": {variant: why}}}``
    (module doc for the definitions).
    """
    if ORIGINAL not in variants:
        raise ValueError(f"robustness_table: no {ORIGINAL!r} variant")
    flat = {k: _flatten(v) for k, v in variants.items()}
    labels = list(dict.fromkeys(lab for v in flat.values() for lab in v[0]))
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for lab in labels:
        metric = lab.split(".")[0]
        vals = {k: f[0][lab] for k, f in flat.items() if lab in f[0] and math.isfinite(f[0][lab])}
        missing = {k: (f[2].get(metric) or "no value for this output") for k, f in flat.items() if k not in vals}
        entry: dict[str, Any] = {"values": vals, "missing": missing, "delta": {}, "spread": None,
                                 "n_clips": 0, "ci_reason": None}
        if ORIGINAL not in vals or len(vals) < 2:
            entry["ci_reason"] = "the original or every perturbation has no value"
            out[lab] = entry
            continue
        # clips with a value in every variant that has one: the paired bootstrap's population
        clip_sets = [set(flat[k][1].get(lab, {})) for k in vals]
        clips = sorted(set.intersection(*clip_sets)) if clip_sets else []
        entry["n_clips"] = len(clips)
        draws = None
        if len(clips) >= 2:
            table = np.array([[flat[k][1][lab][c] for c in clips] for k in vals])  # (V, C)
            idx = rng.integers(0, len(clips), size=(int(n_boot), len(clips)))
            draws = table[:, idx].mean(axis=2)  # (V, B): clip-mean of every variant per draw
        else:
            entry["ci_reason"] = ("no per-clip values (a dataset-level metric)" if not clips
                                  else "fewer than 2 clips with values in every variant")
        names = list(vals)
        base = vals[ORIGINAL]
        for i, k in enumerate(names):
            if k == ORIGINAL:
                continue
            ci = _percentile_ci(draws[i] - draws[names.index(ORIGINAL)], level) if draws is not None else None
            entry["delta"][k] = {"value": vals[k] - base, "ci95": ci}
        hi = max(vals, key=vals.__getitem__)
        lo = min(vals, key=vals.__getitem__)
        entry["spread"] = {"value": vals[hi] - vals[lo], "max_at": hi, "min_at": lo,
                           "ci95": _percentile_ci(draws.max(axis=0) - draws.min(axis=0), level)
                           if draws is not None else None}
        out[lab] = entry
    return out


@dataclass
class RobustnessReport:
    """An audit's outcome: the perturbation set, per-variant scorer output summaries, the table."""

    perturbations: dict[str, Any]
    pred: str
    ref: str | None
    metrics: list[str] | None
    protocol: str
    table: dict[str, Any]
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        from lesbench.records import json_safe

        return json_safe({"version": VERSION, "perturbations": self.perturbations, "pred": self.pred,
                          "ref": self.ref, "metrics": self.metrics, "protocol": self.protocol,
                          "skipped": self.skipped, "variants": self.variants, "table": self.table,
                          "seconds": round(self.seconds, 1)})

    def text(self) -> str:
        """One block per metric output: original value, delta per perturbation [CI], spread [CI]."""
        def fmt(x: float | None) -> str:
            return "-" if x is None or not math.isfinite(x) else f"{x:+.4g}"

        def ci(c: list[float] | None) -> str:
            return f"[{c[0]:+.3g}, {c[1]:+.3g}]" if c else ""

        lines = [f"robustness {self.perturbations['name']}@{self.perturbations['version']} ({VERSION})  "
                 f"pred {self.pred}  ref {self.ref or '-'}  protocol {self.protocol}", ""]
        for lab, e in self.table.items():
            if e["spread"] is None:
                lines.append(f"{lab}: no spread ({e['ci_reason']})")
                continue
            sp = e["spread"]
            lines.append(f"{lab}: original {e['values'][ORIGINAL]:.4g}   spread {sp['value']:.4g} {ci(sp['ci95'])}"
                         f"  (max {sp['max_at']}, min {sp['min_at']}; {e['n_clips']} clips"
                         + (f"; no CI: {e['ci_reason']}" if e["ci_reason"] else "") + ")")
            for k, d in e["delta"].items():
                lines.append(f"    {k:<18}{fmt(d['value']):>12}  {ci(d['ci95'])}")
            for k, why in e["missing"].items():
                lines.append(f"    {k:<18}{'n/a':>12}  {why}")
        if self.skipped:
            lines += ["", "perturbations not run:"] + [f"  {k}: {v}" for k, v in self.skipped.items()]
        return "\n".join(lines)

    def write(self, out_dir: str | Path) -> list[Path]:
        """``robustness.json``, ``robustness.txt`` and ``robustness.png`` into ``out_dir`` (atomic)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in (("robustness.json", json.dumps(self.as_dict(), indent=2, allow_nan=False)),
                           ("robustness.txt", self.text() + "\n")):
            tmp = out / (name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(out / name)
            written.append(out / name)
        png = plot_report(self.table, out / "robustness.png",
                          title=f"{self.perturbations['name']}@{self.perturbations['version']}")
        if png is not None:
            written.append(png)
        return written


def plot_report(table: dict[str, Any], path: str | Path, title: str = "") -> Path | None:
    """One panel per metric output: delta per perturbation with its CI (bars), the spread in the
    panel title. None when no output has a spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(lab, e) for lab, e in table.items() if e.get("spread")]
    if not rows:
        return None
    ncol = min(3, len(rows))
    nrow = math.ceil(len(rows) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 0.32 * 16 * nrow + 1), squeeze=False)
    for ax, (lab, e) in zip(axes.flat, rows):
        names = list(e["delta"])
        vals = [e["delta"][k]["value"] for k in names]
        err = np.array([[v - d["ci95"][0], d["ci95"][1] - v] if d["ci95"] else [0.0, 0.0]
                        for v, d in zip(vals, (e["delta"][k] for k in names))]).T
        ax.barh(range(len(names)), vals, xerr=err if len(names) else None, color="tab:blue", alpha=0.8)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        sp = e["spread"]
        ax.set_title(f"{lab}: orig {e['values'][ORIGINAL]:.3g}, spread {sp['value']:.3g}", fontsize=9)
        ax.set_xlabel("score(perturbed) - score(original)", fontsize=8)
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # room for the suptitle
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)
    return path


# ----------------------------------------------------------------------------------- the audit


def _variant_summary(report: Any) -> dict[str, Any]:
    """What the report keeps of one score run: values, CIs, counts, unavailable reasons."""
    out = {}
    for name, m in report.metrics.items():
        out[name] = {"value": m.value, "ci95": m.ci95, "unavailable": m.unavailable,
                     "counts": dict(getattr(m, "counts", {}) or {}), "skipped": dict(getattr(m, "skipped", {}) or {})}
    return out


def audit(pred: str | Path, ref: str | Path | None = None, *, out: str | Path,
          metrics: list[str] | None = None, protocol: str | Path = "mead-v1",
          perturbations: str | Path | PerturbationSet = "robustness-v1", only: list[str] | None = None,
          clips: list[str] | None = None, device: str | None = None, metric_options: dict | None = None,
          scorer: Callable[..., Any] | None = None, progress: Callable[[str], None] | None = None) -> RobustnessReport:
    """Score ``pred`` (against ``ref``) as it is and under every perturbation; write the report.

    ``out``: the output folder; perturbed copies go to ``out/perturbed/{name}/`` (re-used when
    present and complete, so an interrupted audit resumes), reference features to
    ``out/cache``. ``only``: run just these perturbation names. ``clips``: clip keys to keep
    (default: every clip of ``pred``). ``scorer``: :func:`lesbench.metrics.score.score` or a
    stand-in with its signature (tests). Returns the :class:`RobustnessReport` (also written:
    :meth:`RobustnessReport.write`).
    """
    from lesbench.metrics.protocol import FrameSampling, load_protocol
    from lesbench.metrics.discover import discover

    if scorer is None:
        from lesbench.metrics.score import score as scorer
    say = progress or (lambda _m: None)
    t0 = time.time()
    out = Path(out)
    pset = perturbations if isinstance(perturbations, PerturbationSet) else load_perturbations(perturbations)
    chosen = list(pset.perturbations)
    if only:
        unknown = set(only) - {p.name for p in chosen}
        if unknown:
            raise LesbenchError(f"{pset.source}: no perturbation named {sorted(unknown)}; "
                                f"known: {', '.join(p.name for p in chosen)}")
        chosen = [p for p in chosen if p.name in only]
    proto = load_protocol(protocol)
    entries = discover(pred)
    if clips:
        missing = sorted(set(clips) - set(entries))
        if missing:
            raise LesbenchError(f"{pred}: clips not found: {', '.join(missing[:5])}")
        entries = {k: v for k, v in entries.items() if k in set(clips)}
    keys = sorted(entries)
    cache = out / "cache"

    def run(pred_in: Any, proto_in: Any, what: str) -> Any:
        say(f"scoring {what} ({len(keys)} clips)")
        return scorer(pred_in, ref=ref, metrics=metrics, protocol=proto_in, device=device,
                      metric_options=metric_options, cache_dir=cache, clips=keys)

    variants: dict[str, Any] = {ORIGINAL: run(pred, proto, ORIGINAL)}
    skipped: dict[str, str] = {}
    written: dict[str, dict[str, Any]] = {}
    for p in chosen:
        why = missing_requirement(p)
        if why:
            skipped[p.name] = why
            continue
        if p.kind == "sampling":
            if metrics is not None and p.metric not in metrics:
                skipped[p.name] = f"{p.metric} is not among the audited metrics"
                continue
            spec = FrameSampling(**{k: v for k, v in p.sampling.items()})
            variants[p.name] = run(pred, dataclasses.replace(proto, frames={**proto.frames, p.metric: spec}), p.name)
            continue
        folder = out / "perturbed" / p.name
        info: dict[str, Any] = {}
        for i, key in enumerate(keys):
            dst = folder / f"{key}.mp4"
            if not dst.is_file():  # written atomically: a present file is complete
                info[key] = perturb_clip(entries[key].video, dst, p, entries[key].audio)
            say(f"{p.name}: {i + 1}/{len(keys)} {key}")
        written[p.name] = {"folder": str(folder), "clips": info}
        variants[p.name] = run(folder, proto, p.name)
    results = {k: v.metrics for k, v in variants.items()}
    table = robustness_table(results, n_boot=int(proto.bootstrap_n), seed=int(proto.bootstrap_seed),
                             level=float(proto.bootstrap_level))
    report = RobustnessReport(
        perturbations=pset.summary(), pred=str(pred), ref=None if ref is None else str(ref), metrics=metrics,
        protocol=f"{proto.name}@{proto.version}", table=table,
        variants={k: {"scores": _variant_summary(v), **({"written": written[k]} if k in written else {})}
                  for k, v in variants.items()},
        skipped=skipped, seconds=time.time() - t0)
    report.write(out)
    return report
