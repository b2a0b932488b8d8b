"""``lesbench evaluate``: one method, the test split of a prepared data set, one protocol."""

from __future__ import annotations

import argparse
import sys

from lesbench.commands import Command
from lesbench.commands.score import add_cluster_arguments


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True,
                   help="method to run (see `lesbench ls methods`): ground-truth, static, renderer-oracle, "
                        "retrieval, les-talker, one-hot, audio-only, or external")
    p.add_argument("--data", required=True, help="prepared data set (from `lesbench prepare`)")
    p.add_argument("--protocol", default="mead-v1", help="evaluation protocol name or YAML file (default mead-v1)")
    p.add_argument("--out", default="lesbench-results",
                   help="results folder; the file goes to OUT/<benchmark>/<dataset>/<method>.json")
    p.add_argument("--checkpoint", default=None, help="LES-Talker run folder or checkpoint (les-talker, one-hot, audio-only)")
    p.add_argument("--name", default=None, help="external: the method card of the videos (e.g. eat, sadtalker)")
    p.add_argument("--videos", default=None, help="external: folder of generated videos")
    p.add_argument("--scheme", default=None, choices=["auto", "clip-id", "eat", "mead-tree", "regex", "csv"],
                   help="external: how file names map to test clips (default auto)")
    p.add_argument("--pattern", default=None, help="external --scheme regex: a regex with named groups "
                   "(clip_id, or speaker, emotion, level, sentence[, view])")
    p.add_argument("--mapping", default=None, help="external --scheme csv: CSV with columns file, clip_id")
    p.add_argument("--metrics", default=None, help="comma-separated metric names (default: the protocol's)")
    p.add_argument("--emotion-classifier", metavar="PATH", default=None,
                   help="emotion accuracy with this classifier from `lesbench train-classifier` instead of the "
                        "FER2013 default (recorded with its sha256 in the results file)")
    p.add_argument("--no-refine", action="store_true",
                   help="les-talker / one-hot / audio-only: render with the plain warp even when the run has a "
                        "trained refiner (refine.safetensors)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="torch device for methods/metrics that use one (default auto: cuda if present)")
    add_cluster_arguments(p)
    p.add_argument("--workdir", default=None, help="where generated videos and caches go (default OUT/work/<method>)")
    p.add_argument("--max-clips", type=int, default=None, help="only the first N test clips (smoke runs)")
    p.add_argument("--clips", default=None, metavar="FILE",
                   help="evaluate only the test clips listed in FILE (one clip id or EAT-style name such as "
                        "M003_ang_3_001 per line; e.g. EAT's 100-clip subset); default: the protocol's clip_list")
    p.add_argument("--les", default=None,
                   help="LES folder that measures the controllability sweep for every method (default: the LES "
                        "built from --data's train split; a checkpoint's own LES is only recorded)")
    p.add_argument("--no-control", action="store_true",
                   help="skip the controllability sweep (levels 0..1 per emotion, unit edits)")
    p.add_argument("--match-only", action="store_true",
                   help="only list what the method would serve for each test clip (external: which files match "
                        "which test clips), then stop")


def _method_options(args: argparse.Namespace) -> dict:
    """Constructor options of the method from the flags given (a flag not given passes nothing,
    so a method records only the options it was run with)."""
    given = {"videos": args.videos, "card": args.name, "scheme": args.scheme, "pattern": args.pattern,
             "mapping_csv": args.mapping, "checkpoint": args.checkpoint}
    options = {k: v for k, v in given.items() if v is not None}
    if args.checkpoint and args.no_refine:
        options["refine"] = False
    return options


def _run(args: argparse.Namespace) -> int:
    options = _method_options(args)
    if args.match_only:  # what the method would serve for each test clip, nothing generated
        from lesbench.baselines.base import PreparedData
        from lesbench.registry import METHODS

        method = METHODS.get(args.method)(seed=args.seed, **options)
        method.setup(PreparedData.open(args.data))
        print(method.describe_inputs() or f"{args.method}: generates every test clip (nothing to match)")
        return 0
    from lesbench.evaluation import evaluate

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    metric_options = {"emotion": {"classifier": args.emotion_classifier}} if args.emotion_classifier else None
    res = evaluate(args.method, args.data, protocol=args.protocol, out=args.out, workdir=args.workdir,
                   seed=args.seed, device=None if args.device == "auto" else args.device, metrics=metrics, method_options=options,
                   max_clips=args.max_clips, progress=lambda msg: print(msg, file=sys.stderr),
                   les=args.les, control=not args.no_control, metric_options=metric_options, clips=args.clips,
                   workers=args.workers, scheduler=args.scheduler)
    rec = res.record
    print(f"{rec['method']} on {rec['dataset']['name']} ({rec['protocol']['id']}): "
          f"{rec['generation']['n_generated']}/{rec['dataset']['n_test_clips']} clips generated")
    for name, s in rec["scores"].items():
        ci = s.get("ci95")
        ci_text = f"  [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""
        counts = s.get("counts") or {}
        count_text = "  " + " ".join(f"{k}={v}" for k, v in counts.items() if k != "skipped") if counts else ""
        skipped = counts.get("skipped") or {}
        skip_text = "  skipped: " + "; ".join(f"{why} ({n})" for why, n in skipped.items()) if skipped else ""
        print(f"  {name:<20} {s['value']:.4f}{ci_text}{count_text}{skip_text}")
    for name, why in rec["unavailable"].items():
        print(f"  {name:<20} unavailable: {why}")
    clf = rec.get("metric_options", {}).get("emotion", {}).get("classifier")
    if isinstance(clf, dict) and clf.get("sha256"):
        print(f"  emotion classifier: {clf['name']} (sha256 {clf['sha256'][:12]}…)")
    for clip_id, (n_gen, n_ref) in rec["generation"].get("lengths_differ", {}).items():
        print(f"  {clip_id}: {n_gen} generated vs {n_ref} reference frames (paired by the protocol)")
    missing = (rec["dataset"].get("clip_list") or {}).get("missing") or []
    if missing:
        print(f"  {len(missing)} listed clip(s) are not test clips of this data set: {', '.join(missing[:5])}"
              + (" ..." if len(missing) > 5 else ""))
    for clip_id, why in rec["generation"]["failures"].items():
        print(f"  failed {clip_id}: {why}")
    secs = rec["environment"].get("seconds") or {}
    if secs:
        top = sorted(secs.get("scoring_stages", {}).items(), key=lambda kv: -kv[1])[:4]
        print(f"seconds: generating {secs['generating']:.1f}, scoring {secs['scoring']:.1f}"
              + (f" ({', '.join(f'{k} {v:.1f}' for k, v in top)})" if top else "")
              + f", sweep {secs['sweep']:.1f}")
    print(f"wrote {res.path}")
    return 0


COMMANDS = [
    Command(
        "evaluate",
        "generate the test split with a method and score it under a protocol; writes a results file",
        _add_arguments,
        _run,
        order=70,
        description=(
            "Run one method on the test split of a prepared data set (source = first frame of the "
            "speaker's neutral clip, audio/emotion/level = the test clip's), score against the "
            "ground-truth crops with the protocol, and write one results file with scores, CIs, "
            "metric versions, protocol, lesbench version, git revision, date and hardware.\n\n"
            "  lesbench evaluate --method static --data prepared/\n"
            "  lesbench evaluate --method les-talker --data prepared/ --checkpoint runs/les\n"
            "  lesbench evaluate --method external --name eat --videos eat_out/ --data prepared/"
        ),
    )
]
