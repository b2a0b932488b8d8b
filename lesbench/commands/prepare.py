"""``lesbench prepare``, ``lesbench info`` and ``lesbench validate`` (the prepared data set)."""

from __future__ import annotations

import argparse

from lesbench.commands import Command

_PREPARE_EPILOG = """\
Every clip found gets one row in OUT/clips.parquet (ok, or failed / no_face / no_audio /
silent_audio with a reason). Re-running the same command redoes only clips whose inputs, stage
versions or settings changed; an interrupted run (Ctrl-C exits 130, SIGTERM 143) resumes where
it stopped, and no clip that was running when it stopped is recorded as done. Clips that could
not be written (disk full) are failed rows and the exit code is 1; free space and re-run.
Usage errors exit 2. Dask's scratch space is OUT/.lesbench/dask-scratch-space unless Dask's
temporary-directory is configured.

examples:
  lesbench prepare ~/data/MEAD --out ~/data/mead-prepared
  lesbench prepare ~/data/MEAD --out prep --views front left_30 --workers 8
  lesbench prepare videos/ --out prep --dataset folder --face-model mead-prepared/face_model.npz
  lesbench prepare ~/data/MEAD --out prep --scheduler tcp://10.0.0.5:8786   # existing Dask cluster
"""


def _add_prepare(p: argparse.ArgumentParser) -> None:
    p.epilog = _PREPARE_EPILOG
    p.add_argument("root", help="data set root (MEAD layout for --dataset mead, any folder of videos for folder)")
    p.add_argument("--out", required=True, help="output folder for the prepared data set")
    p.add_argument("--dataset", default="mead", help="data set reader (see `lesbench ls datasets`; default mead)")
    p.add_argument("--views", nargs="+", default=["front"], metavar="VIEW", help="MEAD camera views (default front)")
    p.add_argument("--fps", type=float, default=25.0, help="output frame rate; frames are resampled by timestamp (default 25)")
    p.add_argument("--workers", type=int, default=None, help="Dask worker processes (default: number of CPU cores)")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="attach to a running Dask scheduler (tcp://host:port) instead of starting a local "
                        "cluster; 'sync' runs in this process (debugging)")
    p.add_argument("--force", action="store_true", help="redo every clip, ignoring earlier results")
    p.add_argument("--strict", action="store_true", help="exit non-zero when any clip is not ok")
    p.add_argument("--face-model", default=None, metavar="PATH",
                   help="reuse this face_model.npz instead of fitting one on the train split")
    p.add_argument("--test-speakers", nargs="*", default=None, metavar="SPK",
                   help="speakers of the test split (default: M003 M030 W009 W015, the EAT protocol)")
    p.add_argument("--val-speakers", nargs="*", default=[], metavar="SPK", help="speakers of the val split")
    p.add_argument("--work-size", type=int, default=640,
                   help="longest side (px) larger videos are decoded at for landmarks and crops (default 640)")
    p.add_argument("--min-face-ratio", type=float, default=0.5,
                   help="fraction of frames that must show a face, else the clip is no_face (default 0.5)")
    p.add_argument("--device", default=None, help="landmarker device: cpu (default) or gpu where MediaPipe supports it")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")


def _run_prepare(args: argparse.Namespace) -> int:
    import json

    from lesbench.pipelines.prepare import prepare
    from lesbench.pipelines.prepare_config import PrepareConfig

    config = PrepareConfig(fps=args.fps, work_size=args.work_size, min_face_ratio=args.min_face_ratio,
                           device=args.device)
    summary = prepare(
        args.root,
        args.out,
        dataset=args.dataset,
        views=args.views,
        fps=args.fps,
        workers=args.workers,
        scheduler=args.scheduler,
        force=args.force,
        face_model=args.face_model,
        test_speakers=args.test_speakers,
        val_speakers=args.val_speakers,
        config=config,
        progress=not args.no_progress,
    )
    if args.json:
        print(json.dumps({
            "out": str(summary.out), "n_clips": summary.n_clips, "by_status": summary.by_status,
            "n_processed": summary.n_processed, "n_reused": summary.n_reused, "n_frames": summary.n_frames,
            "elapsed_s": round(summary.elapsed_s, 3), "reasons": summary.reasons,
            "skipped_files": [{"path": p, "reason": r} for p, r in summary.skipped_files],
        }, indent=2))
    else:
        print(summary.format())
    failure = summary.write_failure()
    if failure:
        import sys

        print(f"lesbench prepare: error: {failure}", file=sys.stderr)
        return 1
    if args.strict and summary.n_failed:
        return 1
    return 0


def _add_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="a prepared data set (the --out of `lesbench prepare`)")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.add_argument("--by-level", action="store_true", help="also print the AU table per emotion and level")


def _run_info(args: argparse.Namespace) -> int:
    import json

    from lesbench.pipelines.info import dataset_info

    info = dataset_info(args.out)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
        return 0
    print(info.format())
    if args.by_level and len(info.au_delta_by_level):
        print("  AU means per emotion and level minus neutral (x100):")
        print((info.au_delta_by_level * 100).round(1).to_string())
    return 0


def _add_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="a prepared data set")
    p.add_argument("--limit", type=int, default=20, help="violations to list (default 20)")
    p.add_argument("--skip-crops", action="store_true", help="do not open the crop videos (faster)")
    p.add_argument("--skip-hashes", action="store_true",
                   help="do not check every output's sha256 against its done-record (reads every byte; "
                        "without it, damage that keeps a file's size goes unnoticed)")


def _run_validate(args: argparse.Namespace) -> int:
    from lesbench.pipelines.validate import validate

    report = validate(args.out, check_crops=not args.skip_crops, check_content=not args.skip_hashes)
    print(report.format(limit=args.limit))
    return 0 if report.ok else 1


_IMPORT_EPILOG = """\
Files (.mat, .npy, .txt, .csv; found recursively under SRC) map to clips by name (stem ==
clip_id, e.g. W009_front_happy_3_001.mat) or by path (ending with the clip's video path in the
source tree without its suffix, e.g. W009/video/front/happy/level_3/001.mat); a folder named
either way may hold one file per frame (Deep3DFaceRecon's default), stacked in name order.
Writes DATA/coeffs_deep3d/{clip_id}.parquet (or --out), coeffs_deep3d/import.json (every clip
written and every file not used, with why) and an imports.coeffs_deep3d entry in dataset.json.

examples:
  lesbench import-coeffs deep3d ~/deep3d_out --data ~/data/mead-prepared
  lesbench import-coeffs deep3d ~/deep3d_out --data prep --out prep/coeffs_bfm --extra
"""


def _add_import(p: argparse.ArgumentParser) -> None:
    p.epilog = _IMPORT_EPILOG
    p.add_argument("tool", choices=["deep3d"], help="which tool wrote the coefficients (deep3d: Deep3DFaceRecon, 257-d)")
    p.add_argument("src", help="a coefficient file or a folder of them")
    p.add_argument("--data", required=True, metavar="PREPARED", help="the prepared data set (--out of `lesbench prepare`)")
    p.add_argument("--out", default=None, help="output folder (default PREPARED/coeffs_deep3d)")
    p.add_argument("--extra", action="store_true", help="also keep texture (tex[80]) and lighting (gamma[27])")
    p.add_argument("--strict", action="store_true", help="exit non-zero when any file was not imported")
    p.add_argument("--json", action="store_true", help="print the import record as JSON")


def _run_import(args: argparse.Namespace) -> int:
    import json

    from lesbench.pipelines.deep3d import import_deep3d

    report = import_deep3d(args.src, args.data, out=args.out, include_extra=args.extra)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    if not report.written:
        return 1
    return 1 if args.strict and report.unmatched else 0


COMMANDS = [
    Command("prepare", "MEAD-layout (or any) video -> validated per-frame Parquet features, on Dask",
            _add_prepare, _run_prepare, order=20),
    Command("info", "summarise a prepared data set: counts, face ratio, AU means per emotion",
            _add_info, _run_info, order=21),
    Command("validate", "check a prepared data set against its contract; non-zero exit on violations",
            _add_validate, _run_validate, order=22),
    Command("import-coeffs", "import 3DMM coefficients from another tool (Deep3DFaceRecon) into a prepared data set",
            _add_import, _run_import, order=23),
]
