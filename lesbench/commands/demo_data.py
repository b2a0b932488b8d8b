"""``lesbench demo-data OUT``: generate the synthetic MEAD-layout demo data set."""

from __future__ import annotations

import argparse

from lesbench.commands import Command

DESCRIPTION = """\
Generate a small synthetic data set in MEAD's layout and formats, so every lesbench command
runs on a fresh machine without MEAD: public-domain face photographs (from scikit-image and
matplotlib; licences in demo.json) animated with FACS expression prototypes for all 8 MEAD
emotions at levels 1-3, mouth movements driven by synthesised speech, blinks and head motion.

  OUT/SPK/video/front/EMO/level_N/NNN.mp4   256x256, 30 fps, H.264 + AAC 48 kHz
  OUT/SPK/audio/EMO/level_N/NNN.m4a         AAC 48 kHz
  OUT/truth.parquet                          per-frame ground truth (AUs, mouth, head pose)
  OUT/demo.json                              seed, identities, photo licences

Default: 4 speakers (W009, W015 = MEAD test speakers; W011, W014 = train) x 22 emotion/levels
x 2 sentences = 176 clips, about a minute on 2 cores. --tiny: 8 clips of ~1 s (for tests).
The same --seed gives the same clips.
"""


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="output folder (new or empty, or a previous demo with --overwrite)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--tiny", action="store_true", help="a few ~1 s clips (2 speakers, 3 emotions) for tests")
    p.add_argument("--speakers", nargs="+", metavar="SPK",
                   help="speaker ids to make (default W009 W011 W014 W015; also W016 W018)")
    p.add_argument("--sentences", type=int, default=None, metavar="N",
                   help="sentences per emotion/level (default 2; 1 with --tiny)")
    p.add_argument("--size", type=int, default=None, help="frame size in pixels (default 256)")
    p.add_argument("--fps", type=float, default=None, help="video frame rate (default 30, as MEAD)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: up to 2)")
    p.add_argument("--overwrite", action="store_true", help="replace a demo data set already in OUT")
    p.add_argument("-v", "--verbose", action="store_true", help="print each clip as it is written")


def _run(args: argparse.Namespace) -> int:
    from lesbench.demo import generate_demo

    summary = generate_demo(
        args.out,
        seed=args.seed,
        tiny=args.tiny,
        speakers=args.speakers,
        size=args.size,
        fps=args.fps,
        n_sentences=args.sentences,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=args.verbose,
    )
    print(summary.describe())
    return 0


COMMANDS = [
    Command("demo-data", "generate the synthetic MEAD-layout demo data set", _add_arguments, _run,
            order=10, description=DESCRIPTION),
]
