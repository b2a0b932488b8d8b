"""Protocol comparison on real clips: how ``mead-v1`` and ``eat-mead`` score the same files.

Builds five (generated, reference) pairs from one speaker's MEAD clips — the degradations a
method's output typically shows — and scores them under each protocol:

1. a heavily compressed copy (H.264 at CRF 45) of the angry clip;
2. the contempt clip shifted 3 px to the right (edge pixels repeated);
3. the disgusted clip blurred (Gaussian, sigma 2 px);
4. another clip of the same speaker (neutral) as the "generation" of the happy clip
   (different lengths);
5. the surprised clip with every third frame dropped (a third shorter).

    python -m lesbench.metrics.bench_protocols ../shared/data/mead-dev /tmp/pairs

The pairs are written to ``out`` (never into the repository: MEAD is research-licensed). The
references are the original files, copied under their clip ids.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lesbench import io
from lesbench.errors import DatasetError
from lesbench.metrics.score import score
from lesbench.schema import make_clip_id

#: what each pair's generated clip is: reference emotion -> (how it was made, source emotion)
PAIRS: dict[str, tuple[str, str]] = {
    "angry": ("compressed (CRF 45)", "angry"),
    "contempt": ("shifted 3 px", "contempt"),
    "disgusted": ("blurred (sigma 2 px)", "disgusted"),
    "happy": ("another clip (neutral)", "neutral"),
    "surprised": ("every third frame dropped", "surprised"),
}


def _clip_path(root: Path, speaker: str, emotion: str) -> Path:
    level = 1 if emotion == "neutral" else 3
    path = root / speaker / "video" / "front" / emotion / f"level_{level}" / "001.mp4"
    if not path.is_file():
        raise DatasetError(f"{path}: MEAD clip not found (needs {speaker}'s front clips, sentence 001)")
    return path


def build_degraded_pairs(mead_root: str | Path, out: str | Path, speaker: str = "W009") -> tuple[Path, Path]:
    """Write the five pairs (module doc) to ``out/pred`` and ``out/ref``; returns both folders.

    Files are named by clip id (``W009_front_angry_3_001.mp4``) so that they pair by key.
    """
    import cv2

    root, out = Path(mead_root), Path(out)
    pred_dir, ref_dir = out / "pred", out / "ref"
    pred_dir.mkdir(parents=True, exist_ok=True)
    ref_dir.mkdir(parents=True, exist_ok=True)
    for emotion, (_what, source) in PAIRS.items():
        cid = make_clip_id(speaker, "front", emotion, 3, "001")
        ref_src = _clip_path(root, speaker, emotion)
        shutil.copyfile(ref_src, ref_dir / f"{cid}.mp4")
        frames = io.read_frames(_clip_path(root, speaker, source), fps=25)
        crf = 18
        if emotion == "angry":
            crf = 45
        elif emotion == "contempt":
            frames = np.concatenate([np.repeat(frames[:, :, :1], 3, axis=2), frames[:, :, :-3]], axis=2)
        elif emotion == "disgusted":
            frames = np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in frames])
        elif emotion == "surprised":
            frames = frames[[i for i in range(len(frames)) if i % 3 != 2]]
        io.write_video(pred_dir / f"{cid}.mp4", frames, fps=25, crf=crf)
    return pred_dir, ref_dir


def compare_protocols(pred: str | Path, ref: str | Path, protocols: Sequence[str] = ("mead-v1", "eat-mead"),
                      metrics: Sequence[str] = ("psnr", "ssim", "lmd")) -> dict[str, dict[str, Any]]:
    """``{protocol: {"values": {output: value}, "counts": {metric: counts}, "unavailable": {...}}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name in protocols:
        report = score(pred, ref=ref, metrics=list(metrics), protocol=name)
        values: dict[str, float] = {}
        for metric, res in report.metrics.items():
            if res.unavailable is None and res.value is not None:
                vals = res.value if isinstance(res.value, dict) else {metric: res.value}
                values.update({k: float(v) for k, v in vals.items()})
        out[name] = {
            "values": values,
            "counts": {m: {**r.counts, **({"skipped": r.skipped} if r.skipped else {})}
                       for m, r in report.metrics.items()},
            "unavailable": {m: r.unavailable for m, r in report.metrics.items() if r.unavailable},
            "excluded": report.excluded,
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mead_root", help="MEAD-layout folder (e.g. ../shared/data/mead-dev)")
    ap.add_argument("out", help="where the pairs are written (outside the repository)")
    ap.add_argument("--speaker", default="W009")
    ap.add_argument("--metrics", default="psnr,ssim,lmd")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    pred, ref = build_degraded_pairs(args.mead_root, args.out, args.speaker)
    res = compare_protocols(pred, ref, metrics=[m for m in args.metrics.split(",") if m])
    if args.json:
        print(json.dumps(res, indent=2, default=str))
        return 0
    keys = sorted({k for r in res.values() for k in r["values"]})
    print(f"{'output':<10}" + "".join(f"{p:>12}" for p in res))
    for k in keys:
        print(f"{k:<10}" + "".join(f"{r['values'].get(k, float('nan')):>12.4f}" for r in res.values()))
    for p, r in res.items():
        print(f"\n{p}: counts {r['counts']}")
        for m, why in r["unavailable"].items():
            print(f"  {m} unavailable: {why}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
