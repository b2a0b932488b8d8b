"""``lesbench generate``: a talking-head video from one photo and one audio file, edited in LES."""

from __future__ import annotations

import argparse

from lesbench.commands import Command

DESCRIPTION = """\
Make SOURCE (a photo or a video's first frame) say AUDIO with a chosen emotion, using a
LES-Talker run from `lesbench train`. Levels are fractions of the MEAD level-3 expression
(0 = neutral, 1 = level 3); --units keeps the emotion only in those facial units.

  lesbench generate --checkpoint runs/les --source me.png --audio hello.wav --out happy.mp4 --emotion happy --level 0.6
  lesbench generate ... --emotion angry --units brows            # angry only in the brows
  lesbench generate ... --mix happy=0.5,surprised=0.5            # a compound emotion
  lesbench generate ... --emotion-from reference.mp4             # emotion measured from a clip's AUs
  lesbench generate ... --emotion-from smiling.jpg                # ... or from a still image's AUs
  lesbench generate ... --emotion-text "slightly sad, very surprised"

--emotion-text takes "[intensity] emotion" phrases separated by commas or "and": MEAD's eight
emotions and common synonyms (furious, scared, glad, shocked, ...); intensities slightly (0.25),
somewhat (0.5), none = plain (0.75), very (1.0), extremely (1.25), in LES levels. The full
lexicon: docs/les-talker.md.

Facial units: brows, eyes, nose, mouth_upper, mouth_lower.
When RUN has a learned refiner (RUN/refine.safetensors) it is used; --no-refine turns it off.
"""


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="RUN", help="run folder from `lesbench train`")
    p.add_argument("--source", required=True, metavar="IMAGE_OR_VIDEO")
    p.add_argument("--audio", required=True, metavar="AUDIO", help="driving speech (any format PyAV reads)")
    p.add_argument("--out", required=True, metavar="OUT.mp4")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--emotion", help="one emotion (angry, contempt, disgusted, fear, happy, sad, surprised, neutral)")
    g.add_argument("--mix", metavar="E=L,...", help="compound emotion, e.g. happy=0.5,surprised=0.5")
    g.add_argument("--emotion-from", metavar="CLIP_OR_IMAGE",
                   help="take the emotion from a clip's or a still image's measured AUs")
    g.add_argument("--emotion-text", metavar="TEXT",
                   help='the emotion in words, e.g. "slightly sad, very surprised" (lexicon: docs/les-talker.md)')
    p.add_argument("--reference-neutral", metavar="CLIP_OR_IMAGE",
                   help="with --emotion-from: a neutral clip or photo of the same person (default: the LES's average "
                        "neutral face)")
    lv = p.add_mutually_exclusive_group()
    lv.add_argument("--level", type=float, help="LES level with --emotion (default 1.0 = MEAD level 3)")
    lv.add_argument("--mead-level", type=int, choices=[1, 2, 3], help="the LES level of MEAD level 1, 2 or 3")
    p.add_argument("--units", help="comma-separated facial units to edit (default: all)")
    p.add_argument("--offset", action="append", default=[], metavar="AU=DELTA", help="per-AU offset, e.g. AU12=0.1")
    p.add_argument("--no-head-motion", action="store_true", help="keep the source head pose")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-refine", action="store_true",
                   help="plain warp: skip the run's learned refiner (RUN/refine.safetensors) even when it has one")


def _run(args: argparse.Namespace) -> int:
    from lesbench.les.space import LESError, parse_units
    from lesbench.model.generate import generate

    offsets = {}
    for item in args.offset:
        au, sep, value = item.partition("=")
        try:
            offsets[au.strip()] = float(value)
        except ValueError:
            raise LESError(f"--offset {item!r}: expected AU=DELTA, e.g. AU12=0.1") from None
        if not sep:
            raise LESError(f"--offset {item!r}: expected AU=DELTA")
    if (args.level is not None or args.mead_level is not None) and not args.emotion:
        raise LESError("--level / --mead-level need --emotion (use --mix for several emotions)")
    result = generate(
        args.checkpoint, args.source, args.audio, args.out,
        emotion=args.emotion, level=args.level, mead_level=args.mead_level, mix=args.mix,
        emotion_from=args.emotion_from, emotion_from_neutral=args.reference_neutral, units=parse_units(args.units), offsets=offsets or None,
        emotion_text=args.emotion_text,
        pose_motion=not args.no_head_motion, device=args.device, refine=False if args.no_refine else None,
    )
    refined = " (refined)" if result.extra.get("refined") else ""
    print(f"wrote {result.path}: {result.n_frames} frames at 25 fps{refined}, emotion {result.request.description}")
    return 0


COMMANDS = [Command("generate", "generate a talking head from a photo + audio, edited by emotion/level/unit",
                    _add_arguments, _run, order=35, description=DESCRIPTION)]
