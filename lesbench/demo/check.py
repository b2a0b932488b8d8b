"""``lesbench demo --check``: does a demo run reproduce the committed reference results?

A run (an output folder of ``lesbench demo``) is compared with a reference, row by row:

- counts (test clips, clips generated, failures, frames a metric used): exact;
- hashes of inputs every machine shares (the protocol file, model weights from packages): exact;
- content digests of what each step made (demo data, prepared features, LES, trained runs, the
  emotion classifier, edited clips): exact when the reference was made on the same processor
  model, informational otherwise. MediaPipe's XNNPACK kernels and numpy's SIMD math are chosen
  by processor, so another processor may legitimately part from the reference at the first
  step that uses them (docs/reproducibility.md);
- metric values: within a tolerance per metric (:data:`TOLERANCES`, absolute, in the metric's
  units), the slack a processor-dependent kernel needs. On the reference's own processor model
  the demo is deterministic and every difference is 0;
- a score the reference does not have at all (an output added to lesbench after the reference
  was made), with its count and version: listed as NEW, not compared and never failing. A score
  the reference has and the run lacks still fails.

References: the tiny demo's is one JSON Lines file committed under ``leaderboards/results/``
(:data:`TINY_REFERENCE`; a header line, then one results record per method, each verbatim as
``lesbench evaluate`` wrote it); the full demo's is the results folder the leaderboard reads
(``leaderboards/results/demo-v1/lesbench-demo/``), which holds no step digests. Summaries and
reference files are made and read by :mod:`lesbench.demo.reference` (its names are importable from
here too); this module compares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lesbench.demo.reference import (
    DIGEST_STEPS,
    FULL_REFERENCE,
    REFERENCE_KIND,
    REFERENCE_VERSION,
    RESULTS_SUBDIR,
    TINY_REFERENCE,
    RunSummary,
    default_reference,
    processor_model,
    read_reference,
    read_results_dir,
    step_digests,
    summarize_run,
    write_reference,
)

#: Absolute tolerance per score name, in the metric's units. What a processor-dependent kernel
#: (MediaPipe XNNPACK landmarks -> AUs, crops and coefficients; torch/oneDNN and OpenBLAS
#: reductions) may move; on the reference's processor model the demo is deterministic and the
#: difference is 0. A score not listed must match exactly. Rationale: docs/reproducibility.md.
TOLERANCES: dict[str, float] = {
    "psnr": 0.05,                 # dB
    "ssim": 0.002,
    "fid": 0.5,
    "kid": 0.002,
    "lpips": 0.002,
    "csim": 0.002,
    "m-lmd": 0.05,                # pixels of the 256 crop
    "f-lmd": 0.05,
    "av-sync": 0.01,              # confidence, 0..1
    "sync-confidence-z": 0.5,     # null-standardised confidence: 0.01 of confidence over a null sd >= 0.01
    "sync-confidence-pct": 5.0,   # percentile among 20 null rotations moves in steps of 5
    "av-offset": 0.25,            # frames: one of the 8 test clips moving by 2 frames
    "av-abs-offset": 0.25,
    "sync-offset-vs-ref": 0.25,   # frames, as av-offset
    "sync-abs-offset-vs-ref": 0.25,
    "sync-ref-offset": 0.25,
    "sync-confidence-vs-ref": 0.02,  # two confidences, each within 0.01
    "sync-ref-confidence": 0.01,
    "lse-c": 0.05,
    "lse-d": 0.05,
    "au-acc": 0.005,
    "au-f1": 0.01,
    "au-mae": 0.002,
    "au-pearson": 0.01,
    "emotion-acc": 0.0,           # clip accuracy over 8 clips moves in steps of 0.125
    "emotion-acc-frame": 0.01,
    "level-spearman": 0.01,
    "level-linearity": 0.01,
    "unit-isolation": 0.02,
}


# ------------------------------------------------------------------------------ comparing

@dataclass(frozen=True)
class CheckRow:
    """One compared quantity. ``verdict``: PASS, FAIL, INFO (a digest that may legitimately
    differ on another processor model; never fails the check) or NEW (a score the reference
    predates: listed, not compared)."""

    method: str
    metric: str
    reference: Any
    run: Any
    difference: float | None
    tolerance: str
    verdict: str
    #: ``exact`` (count, version, hash), ``score`` (a metric value) or ``digest``
    kind: str = "exact"


@dataclass
class CheckReport:
    rows: list[CheckRow]
    reference: str
    run: str
    same_processor: bool
    #: the first step whose digest differs from the reference's (None: none differs / unknown)
    parted_at: str | None = None

    @property
    def ok(self) -> bool:
        return all(r.verdict != "FAIL" for r in self.rows)

    @property
    def n_failed(self) -> int:
        return sum(r.verdict == "FAIL" for r in self.rows)

    def format(self, verbose: bool = False) -> str:
        """A plain-text table and a one-line verdict. Unless ``verbose``, the counts, versions
        and hashes that match are summed up in one row per method; scores are always listed."""
        head = ("method", "metric", "reference", "this run", "difference", "tolerance", "verdict")
        body = []
        hidden: dict[str, int] = {}
        hidden_new: dict[str, int] = {}
        for r in self.rows:
            if not verbose and r.kind == "exact" and r.verdict == "PASS" and r.method != "(demo)":
                hidden[r.method] = hidden.get(r.method, 0) + 1
                continue
            if not verbose and r.kind == "exact" and r.verdict == "NEW":  # counts and versions of new scores
                hidden_new[r.method] = hidden_new.get(r.method, 0) + 1
                continue
            body.append((r.method, r.metric, _fmt(r.reference), _fmt(r.run),
                         "" if r.difference is None else f"{r.difference:+.6g}", r.tolerance, r.verdict))
        for method, n in hidden.items():
            body.append((method, f"{n} counts, versions and hashes", "", "", "", "exact", "PASS"))
        for method, n in hidden_new.items():
            body.append((method, f"{n} counts and versions of new scores", "", "", "", "not in reference", "NEW"))
        body.sort(key=lambda row: (row[0] != "(demo)", row[0]))  # stable: keeps each method's order
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
        lines = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip() for row in (head, *body)]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append("")
        lines.append(f"reference: {self.reference}")
        lines.append(f"this run:  {self.run}")
        if self.parted_at:
            lines.append(f"step digests part from the reference first at step '{self.parted_at}'"
                         + ("" if self.same_processor else " (reference made on another processor model: "
                            "digests are informational, see docs/reproducibility.md)"))
        n_pass = sum(r.verdict == "PASS" for r in self.rows)
        lines.append(("PASS" if self.ok else "FAIL") + f": {n_pass} passed, {self.n_failed} failed, "
                     f"{sum(r.verdict == 'INFO' for r in self.rows)} informational"
                     + (f", {sum(r.verdict == 'NEW' for r in self.rows)} new (not in the reference, not compared)"
                        if any(r.verdict == "NEW" for r in self.rows) else ""))
        return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    s = str(v)
    return s[:16] if len(s) == 64 and all(c in "0123456789abcdef" for c in s) else s


def _exact(method: str, metric: str, ref: Any, run: Any) -> CheckRow:
    return CheckRow(method, metric, ref, run, None, "exact", "PASS" if ref == run else "FAIL")


def _new(method: str, metric: str, run: Any, kind: str = "exact") -> CheckRow:
    """A quantity of a score the reference does not have: listed, not compared."""
    return CheckRow(method, metric, None, run, None, "not in reference", "NEW", kind=kind)


def _counts(rec: dict[str, Any]) -> dict[str, Any]:
    gen = rec.get("generation") or {}
    ctl = rec.get("controllability") or {}
    counts: dict[str, Any] = {
        "n_test_clips": (rec.get("dataset") or {}).get("n_test_clips"),
        "n_generated": gen.get("n_generated"),
        "n_generation_failures": len(gen.get("failures") or {}),
        "unavailable": ",".join(sorted(rec.get("unavailable") or {})),
    }
    if ctl.get("applicable"):
        counts["controllability.n_generated"] = ctl.get("n_generated")
        counts["controllability.n_failures"] = len(ctl.get("failures") or {})
    for name, score in sorted((rec.get("scores") or {}).items()):
        if score.get("n") is not None:
            counts[f"{name}.n"] = score["n"]
    return counts


def _input_hashes(rec: dict[str, Any]) -> dict[str, Any]:
    """Hashes of inputs every machine shares: the protocol and packaged model files."""
    out: dict[str, Any] = {"protocol.sha256": (rec.get("protocol") or {}).get("sha256")}
    for name, score in sorted((rec.get("scores") or {}).items()):
        out[f"{name}.version"] = score.get("version")
        for wname, sha in sorted((score.get("weights") or {}).items()):
            if wname != "emotion-au":  # the demo's own classifier: an artefact, compared below
                out[f"weights.{wname}"] = sha
    return out


def _artefact_hashes(rec: dict[str, Any]) -> dict[str, Any]:
    """Hashes of what the run itself made (trained checkpoint, the demo's classifier)."""
    out: dict[str, Any] = {}
    gen = rec.get("generation") or {}
    if gen.get("checkpoint_sha256"):
        out["checkpoint_sha256"] = gen["checkpoint_sha256"]
    clf = ((rec.get("metric_options") or {}).get("emotion") or {}).get("classifier") or {}
    if isinstance(clf, dict) and clf.get("sha256"):
        out["classifier_sha256"] = clf["sha256"]
    return out


def compare(reference: RunSummary, run: RunSummary, tolerances: dict[str, float] | None = None) -> CheckReport:
    """Compare ``run`` with ``reference``; see the module doc for the rules."""
    tol = TOLERANCES if tolerances is None else tolerances
    same_cpu = bool(reference.processor) and reference.processor == run.processor
    artefact_verdict = "FAIL" if same_cpu else "INFO"
    rows: list[CheckRow] = []
    parted_at = None
    for step in DIGEST_STEPS:
        if step not in reference.digests:
            continue
        ref_d, run_d = reference.digests.get(step), run.digests.get(step)
        same = ref_d == run_d
        if not same and parted_at is None:
            parted_at = step
        rows.append(CheckRow("(demo)", f"digest:{step}", ref_d, run_d, None, "exact" if same_cpu else "same CPU only",
                             "PASS" if same else artefact_verdict, kind="digest"))
    for method in sorted(set(reference.results) | set(run.results)):
        ref, got = reference.results.get(method), run.results.get(method)
        if ref is None or got is None:
            rows.append(CheckRow(method, "results file", "present" if ref else "absent",
                                 "present" if got else "absent", None, "exact", "FAIL"))
            continue
        ref_s, got_s = ref.get("scores") or {}, got.get("scores") or {}
        new = set(got_s) - set(ref_s)  # outputs added after the reference was made
        new_keys = {f"{name}.{what}" for name in new for what in ("n", "version")}
        ref_c, got_c = _counts(ref), _counts(got)
        for key in sorted(set(ref_c) | set(got_c)):
            rows.append(_new(method, key, got_c[key]) if key in new_keys and key not in ref_c
                        else _exact(method, key, ref_c.get(key), got_c.get(key)))
        ref_h, got_h = _input_hashes(ref), _input_hashes(got)
        for key in sorted(set(ref_h) | set(got_h)):
            rows.append(_new(method, key, got_h[key]) if key in new_keys and key not in ref_h
                        else _exact(method, key, ref_h.get(key), got_h.get(key)))
        ref_a, got_a = _artefact_hashes(ref), _artefact_hashes(got)
        for key in sorted(set(ref_a) | set(got_a)):
            same = ref_a.get(key) == got_a.get(key)
            rows.append(CheckRow(method, key, ref_a.get(key), got_a.get(key), None,
                                 "exact" if same_cpu else "same CPU only", "PASS" if same else artefact_verdict,
                                 kind="digest"))
        for name in sorted(set(ref_s) | set(got_s)):
            rows.append(_new(method, name, got_s[name].get("value"), kind="score") if name in new
                        else _score_row(method, name, ref_s.get(name), got_s.get(name), tol))
    return CheckReport(rows=rows, reference=reference.source, run=run.source, same_processor=same_cpu,
                       parted_at=parted_at)


def _score_row(method: str, name: str, ref: dict | None, got: dict | None, tol: dict[str, float]) -> CheckRow:
    ref_v = None if ref is None else ref.get("value")
    got_v = None if got is None else got.get("value")
    t = float(tol.get(name, 0.0))
    label = f"±{t:g}" if t > 0 else "exact"
    if ref_v is None or got_v is None:
        return CheckRow(method, name, ref_v, got_v, None, label, "PASS" if ref_v == got_v else "FAIL", kind="score")
    ref_f, got_f = float(ref_v), float(got_v)
    if math.isnan(ref_f) or math.isnan(got_f):
        ok = math.isnan(ref_f) and math.isnan(got_f)
        return CheckRow(method, name, ref_f, got_f, None, label, "PASS" if ok else "FAIL", kind="score")
    diff = got_f - ref_f
    # a relative 1e-12 absorbs only the last bit of a float printed and read back through JSON
    ok = abs(diff) <= t + 1e-12 * max(abs(ref_f), 1.0)
    return CheckRow(method, name, ref_f, got_f, diff, label, "PASS" if ok else "FAIL", kind="score")


def check_demo(out: str | Path, reference: str | Path | None = None, *, tiny: bool = False) -> CheckReport:
    """Compare the demo output folder ``out`` with ``reference`` (default: the committed one)."""
    ref_path = Path(reference) if reference is not None else default_reference(tiny)
    return compare(read_reference(ref_path), summarize_run(out))


__all__ = [
    "DIGEST_STEPS", "FULL_REFERENCE", "REFERENCE_KIND", "REFERENCE_VERSION", "RESULTS_SUBDIR",
    "TINY_REFERENCE", "TOLERANCES", "CheckReport", "CheckRow", "RunSummary", "check_demo", "compare",
    "default_reference", "processor_model", "read_reference", "read_results_dir", "step_digests",
    "summarize_run", "write_reference",
]
