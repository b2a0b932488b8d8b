"""``lesbench audit PRED [--ref REF] --out DIR``: how much each metric moves under content-
preserving perturbations of the same predictions (lesbench.metrics.robustness).

A command of its own rather than a ``score --robustness`` flag: it writes a folder (perturbed
copies, a feature cache, JSON/text/PNG), not one report, takes options score has no use for
(the perturbation set, a subset of it), and runs score many times through its public API.
"""

from __future__ import annotations

import argparse

from lesbench.commands import Command

DESCRIPTION = """\
Re-score the same predictions under a fixed, versioned set of content-preserving perturbations
(re-encoding at H.264 CRF 18/23/28 and H.265, AAC vs PCM audio, 2-4 px crop shifts, +-5% crop
scale, 25<->30 fps, FID on every frame vs EAT's 5 frames per clip) and report, per metric, the
change each perturbation causes and the spread (max - min), with bootstrap 95% CIs over clips.
Perturbed copies are written under --out/perturbed (re-used by a re-run), reference features
are cached under --out/cache; the report is --out/robustness.{json,txt,png}.

examples:
  lesbench audit gen/ --ref mead/ --metrics psnr,ssim,lmd,fid --out audit/
  lesbench audit clips/ --metrics sync --only h264-crf18,h264-crf28,aac-64k,fps-30 --out audit-sync/
"""


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pred", help="predictions: folder, MEAD tree or prepared data set (as for `lesbench score`)")
    p.add_argument("--ref", default=None, help="reference videos, paired with PRED by relative path / clip id")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (perturbed copies, cache, report)")
    p.add_argument("--metrics", default=None, help="comma-separated metric names (default: the protocol's)")
    p.add_argument("--protocol", default="mead-v1", help="protocol name or .yaml path (default mead-v1)")
    p.add_argument("--perturbations", default="robustness-v1", metavar="NAME|YAML",
                   help="perturbation set: a name under metrics/perturbations/ or a .yaml path (default robustness-v1)")
    p.add_argument("--only", default=None, metavar="NAMES", help="comma-separated subset of the set's perturbations")
    p.add_argument("--clips", default=None, metavar="IDS", help="comma-separated clip keys to audit (default: all)")
    p.add_argument("--device", default=None, help="torch device for network metrics")


def _run(args: argparse.Namespace) -> int:
    from lesbench.metrics.robustness import audit

    def split(text: str | None) -> list[str] | None:
        return [x.strip() for x in text.split(",") if x.strip()] if text else None

    report = audit(args.pred, args.ref, out=args.out, metrics=split(args.metrics), protocol=args.protocol,
                   perturbations=args.perturbations, only=split(args.only), clips=split(args.clips),
                   device=args.device, progress=print)
    print(report.text())
    print(f"\nwrote {args.out}/robustness.json, robustness.txt, robustness.png")
    return 0


COMMANDS = [Command("audit", "metric robustness: re-score predictions under content-preserving perturbations",
                    _add_arguments, _run, order=62, description=DESCRIPTION)]
