"""The LES report: a text summary (``report.md``) and PNG plots next to the LES artefact.

Per emotion: the fitted level scales, the linearity (R^2) and monotonicity across MEAD levels
1-3, the AUs that make up the direction, and how well the directions separate emotions on
held-out speakers (nearest-direction accuracy and confusion matrix).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lesbench.les.space import LinearEmotionSpace
from lesbench.sanitize import md_text


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float) and not np.isfinite(x):
        return "n/a"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def report_text(space: LinearEmotionSpace) -> str:
    """Markdown summary of an LES (what ``lesbench les build`` prints and writes)."""
    prov = space.provenance
    lines = [
        "# Linear Emotion Space report",
        "",
        f"LES format {space.version}; built from {md_text(prov.get('root', '?'))} (split {md_text(repr(prov.get('train_split', 'train')))}, "
        f"{prov.get('n_train_clips', '?')} clips, {len(space.neutral_refs)} speakers with a neutral reference, "
        f"robust mean: {prov.get('robust', 'median')}); AU set: {space.au_set} ({len(space.au_names)} AUs).",
        f"dataset.json sha256: {prov.get('dataset.json_sha256')}",
        "",
        "Level scales are projections on the unit direction (AU intensity units); `frac` = scale / level-3 scale,",
        "the LES level at which that MEAD level lies. R^2: line fit of per-speaker projections against the level.",
        "",
        "| emotion | norm | level 1 (frac) | level 2 (frac) | level 3 | R^2 | monotonic | speakers monotonic | top AUs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in space.emotions:
        d = space.directions[e]
        cells = []
        for k in (1, 2, 3):
            if k in d.level_scales:
                frac = d.level_fraction(k)
                cells.append(f"{d.level_scales[k]:.3f}" + (f" ({frac:.2f})" if k != d.source_level else ""))
            else:
                cells.append("n/a")
        tops = ", ".join(f"{au} {w:+.2f}" for au, w in d.top_aus(4, tuple(space.au_names)))
        lines.append(
            f"| {md_text(e)} | {d.norm:.3f} | {cells[0]} | {cells[1]} | {cells[2]} | {_fmt(d.r2)} | {_fmt(d.monotonic)} | "
            f"{_fmt(d.speaker_monotonic, 2)} | {tops} |"
        )
    sep = space.separation or {}
    lines += ["", "## Held-out separation (nearest direction, cosine)", ""]
    if not sep.get("n_clips"):
        lines.append(f"No held-out clips: {sep.get('note', 'n/a')}.")
    else:
        lines.append(
            f"{sep['n_clips']} clips of {len(sep['speakers'])} held-out speakers ({md_text(', '.join(sep['speakers']))}): "
            f"accuracy {sep['accuracy']:.3f} (chance {sep['chance']:.3f})."
        )
        lines.append("")
        lines.append("Per emotion: " + ", ".join(f"{md_text(e)} {_fmt(v, 2)}" for e, v in sep["per_emotion"].items()))
        lines.append("Per level: " + ", ".join(f"level {k} {v:.2f}" for k, v in sep["per_level"].items()))
        lines += ["", "Confusion (rows: true, columns: predicted):", "", "| | " + " | ".join(md_text(e) for e in sep["emotions"]) + " |",
                  "|---" * (len(sep["emotions"]) + 1) + "|"]
        for e, row in zip(sep["emotions"], sep["confusion"]):
            lines.append(f"| {md_text(e)} | " + " | ".join(str(v) for v in row) + " |")
    lines += _au_set_lines(space)
    skipped = prov.get("skipped_clips") or {}
    if skipped:
        lines += ["", f"Skipped {len(skipped)} clip(s):"] + [f"- {md_text(k)}: {md_text(v)}" for k, v in sorted(skipped.items())[:20]]
    return "\n".join(lines) + "\n"


def _au_set_lines(space: LinearEmotionSpace) -> list[str]:
    """The averaged and bilateral sets' held-out separation side by side, and how one-sided each
    bilateral direction is (only for a bilateral LES)."""
    by_set = space.separation_by_au_set or {}
    lines: list[str] = []
    if by_set:
        sets = list(by_set)
        lines += ["", "## Held-out separation by AU set", "",
                  "The same LES built on each AU set from the same clips; nearest direction, held-out speakers.", "",
                  "| | " + " | ".join(f"{md_text(k)}" for k in sets) + " |", "|---" * (len(sets) + 1) + "|"]
        acc = [by_set[k].get("accuracy") for k in sets]
        lines.append("| accuracy (all) | " + " | ".join(_fmt(a) for a in acc) + " |")
        emos = sorted({e for k in sets for e in (by_set[k].get("per_emotion") or {})})
        for e in emos:
            lines.append(f"| {md_text(e)} | " + " | ".join(_fmt((by_set[k].get("per_emotion") or {}).get(e), 2)
                                                           for k in sets) + " |")
        levels = sorted({lv for k in sets for lv in (by_set[k].get("per_level") or {})})
        for lv in levels:
            lines.append(f"| level {md_text(lv)} | " + " | ".join(_fmt((by_set[k].get("per_level") or {}).get(lv), 2)
                                                                  for k in sets) + " |")
        lines.append("| clips | " + " | ".join(str(by_set[k].get("n_clips", 0)) for k in sets) + " |")
    asym = space.asymmetry()
    if asym:
        lines += ["", "## One-sidedness of the directions (bilateral set)", "",
                  "index = sum over AU pairs of |d_L - d_R| / sum of |d_L| + |d_R| (0: both sides alike, 1: one side only);",
                  "_L / _R: MediaPipe's Left / Right blendshapes (docs/action_units.md says which side of the image).", "",
                  "| emotion | index | most one-sided AU | _L | _R |", "|---|---|---|---|---|"]
        for e, a in asym.items():
            lines.append(f"| {md_text(e)} | {a['index']:.3f} | {a['pair']} | {a['left']:+.3f} | {a['right']:+.3f} |")
    return lines


def write_report(space: LinearEmotionSpace, out_dir: str | Path) -> list[Path]:
    """Write ``report.md`` and the PNG plots into ``out_dir``; return the written paths."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    md = out / "report.md"
    md.write_text(report_text(space))
    written.append(md)

    emos = space.emotions
    # 1. directions: emotions x AUs
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(emos) + 1.5))
    mat = space.matrix()
    lim = float(np.abs(mat).max()) or 1.0
    im = ax.imshow(mat, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(space.au_names)), space.au_names, rotation=90, fontsize=8)
    ax.set_yticks(range(len(emos)), emos)
    ax.set_title("LES directions (unit vectors over AUs)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    p = out / "directions.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    written.append(p)

    # 2. level scales per emotion with per-speaker points
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, e in enumerate(emos):
        d = space.directions[e]
        color = f"C{i % 10}"
        for per in d.per_speaker.values():
            ks = sorted(per)
            ax.plot(ks, [per[k] for k in ks], color=color, alpha=0.2, lw=0.8)
        ks = sorted(d.level_scales)
        ax.plot(ks, [d.level_scales[k] for k in ks], "o-", color=color, label=f"{e} (R²={_fmt(d.r2, 2)})")
    ax.set_xlabel("MEAD level")
    ax.set_ylabel("projection on direction (AU units)")
    ax.set_xticks([1, 2, 3])
    ax.legend(fontsize=7)
    ax.set_title("Level scales (median; thin: per speaker)")
    fig.tight_layout()
    p = out / "level_scales.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    written.append(p)

    # 3. held-out confusion
    sep = space.separation or {}
    if sep.get("n_clips"):
        conf = np.array(sep["confusion"], float)
        norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(5, 4.5))
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(emos)):
            for j in range(len(emos)):
                ax.text(j, i, int(conf[i, j]), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(emos)), emos, rotation=45)
        ax.set_yticks(range(len(emos)), emos)
        ax.set_xlabel("nearest direction")
        ax.set_ylabel("true emotion")
        ax.set_title(f"Held-out separation: acc {sep['accuracy']:.2f}")
        fig.tight_layout()
        p = out / "heldout_confusion.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    return written
