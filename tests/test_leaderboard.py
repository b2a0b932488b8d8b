import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lesbench.bibtex import format_entry, parse_bibtex, parse_entry
from lesbench.cli import main
from lesbench.leaderboard import (
    README_END,
    README_START,
    LeaderboardError,
    build_leaderboard,
    load_card,
    load_cards,
    load_reported,
    readme_section,
    render,
    render_readme_table,
    validate_result,
)

REPO = Path(__file__).resolve().parents[1]

REQUIRED_CARDS = {
    # the seeds' methods
    "les-talker", "multimodal-emotion-space", "fee4tv", "moee", "joyvasa",
    # the usual MEAD baselines and the data set
    "eamm", "eat", "sadtalker", "styletalk", "dreamtalk", "edtalk", "evp", "mead",
    # lesbench's own methods
    "ground-truth", "static", "renderer-oracle", "retrieval", "one-hot", "audio-only",
}


def make_record(method, scores, card=None, benchmark="mead-v1", dataset="tiny-demo"):
    return {
        "format_version": "1",
        "method": method,
        "card": card or method,
        "benchmark": benchmark,
        "protocol": {"name": benchmark, "version": "1.0", "id": f"{benchmark}@1.0", "sha256": "0" * 64},
        "dataset": {"name": dataset, "n_test_clips": 4},
        "scores": {
            m: {"value": v, "ci95": [v - 0.5, v + 0.5], "version": "1", "higher_is_better": hib, "n": 4}
            for m, (v, hib) in scores.items()
        },
        "unavailable": {"lse-c": "syncnet_v2 weights not installed"},
        "generation": {"method": method, "seed": 0, "revision": None, "checkpoint": None,
                       "checkpoint_sha256": None},
        "environment": {"lesbench_version": "0.1.0", "git_revision": "abc1234def5678", "date": "2026-01-01T00:00:00+00:00",
                        "hardware": {"summary": "2 CPU (x86_64)"}},
    }


@pytest.fixture
def results_dir(tmp_path):
    d = tmp_path / "results"
    recs = [
        make_record("ground-truth", {"psnr": (40.0, True), "fid": (0.5, False), "av-offset": (0.0, None)}),
        make_record("static", {"psnr": (20.123, True), "fid": (30.0, False), "av-offset": (7.0, None)}),
        make_record("retrieval", {"psnr": (22.5, True), "fid": (35.0, False), "av-offset": (1.0, None)}),
        make_record("eat", {"psnr": (21.0, True), "fid": (25.0, False)}, card="eat"),
        make_record("static", {"psnr": (18.0, True)}, benchmark="other-v1"),
    ]
    for r in recs:
        p = d / r["benchmark"] / r["dataset"]["name"] / f"{r['method']}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(r))
    return d


# --------------------------------------------------------------------------- cards and citations

def test_required_cards_exist_and_validate():
    cards = load_cards()
    assert REQUIRED_CARDS <= set(cards)
    assert cards["les-talker"].arxiv == "2411.09268"
    assert cards["multimodal-emotion-space"].arxiv == "2305.02572"
    assert cards["mead"].kind == "dataset"
    assert cards["static"].kind == "baseline" and cards["static"].lesbench_method == "static"
    for card in cards.values():
        if not card.verified:
            assert card.verification, card.key  # unverified cards say what was not checked


def test_every_card_bibtex_parses_and_round_trips():
    for path in sorted((REPO / "leaderboards" / "methods").glob("*.yaml")):
        card = load_card(path)
        entries = parse_bibtex(card.bibtex, source=str(path))
        assert len(entries) == 1, path
        entry = entries[0]
        assert entry.key == card.cite_key
        text = format_entry(entry)
        assert parse_entry(text) == entry
        assert format_entry(parse_entry(text)) == text
        for name in ("title", "author", "year"):
            assert entry.get(name), f"{path}: BibTeX lacks {name}"


def test_card_validation_catches_inconsistent_facts(tmp_path):
    good = (REPO / "leaderboards" / "methods" / "eat.yaml").read_text()
    bad = tmp_path / "eat.yaml"
    bad.write_text(good.replace("year: 2023", "year: 2022"))
    with pytest.raises(LeaderboardError, match="year 2022 differs"):
        load_card(bad)
    bad.write_text(good.replace("cite_key: gan2023efficient", "cite_key: gan2023"))
    with pytest.raises(LeaderboardError, match="differs from the BibTeX key"):
        load_card(bad)
    bad.write_text(good.replace("authors: [Yuan Gan,", "authors: [Someone Else,"))
    with pytest.raises(LeaderboardError, match="authors"):
        load_card(bad)


def test_reported_numbers_are_data_with_source_and_protocol():
    rows = load_reported()
    own = [r for r in rows if r.method == "eat" and r.protocol == "eat-mead-100"]
    assert len(own) == 1
    assert own[0].values == {"psnr": 21.79, "ssim": 0.679, "fid": 25.09, "m-lmd": 2.22, "f-lmd": 2.43, "lse-c": 8.22}
    assert own[0].verified
    eat_fids = sorted(r.values["fid"] for r in rows if r.method == "eat" and "fid" in r.values)
    assert eat_fids == [25.09, 32.70, 90.97]
    for r in rows:
        assert r.protocol and r.protocol_note and r.source.get("kind")
        if not r.verified:
            assert r.verification


# --------------------------------------------------------------------------- rendering

def test_measured_and_reported_tables_are_separate(results_dir):
    lb = build_leaderboard(results_dir)
    md = render(lb, "md")
    measured, reported = md.split("### Reported by papers")
    assert "`mead-v1` on `tiny-demo`" in measured and "`other-v1` on `tiny-demo`" in measured
    # the reported EAT numbers never enter a measured table, and vice versa
    assert "25.09" not in measured and "90.97" in reported
    assert "20.12" not in reported
    # ranking: best non-reference value bold per column; ground truth (reference) never bold
    mead = measured.split("`other-v1`")[0]
    gt_line = next(line for line in mead.splitlines() if line.startswith("| Ground truth"))
    assert "**" not in gt_line
    retrieval = next(line for line in mead.splitlines() if line.startswith("| Nearest-clip retrieval"))
    eat = next(line for line in mead.splitlines() if line.startswith("| EAT"))
    assert "**22.50**" in retrieval and "**25.00**" in eat  # PSNR higher-better, FID lower-better
    assert "AV offset" in mead and "AV offset ↑" not in mead and "AV offset ↓" not in mead
    header = next(line for line in mead.splitlines() if line.startswith("| Method"))
    assert "PSNR ↑" in header and "FID ↓" in header


def test_benchmark_filter(results_dir):
    lb = build_leaderboard(results_dir, benchmark="other-v1")
    assert [t.benchmark for t in lb.measured] == ["other-v1"]


@pytest.mark.parametrize("fmt", ["md", "latex", "csv", "bib", "png"])
def test_same_data_same_bytes(results_dir, tmp_path, fmt):
    a = render(build_leaderboard(results_dir), fmt)
    copy = tmp_path / "copy"
    shutil.copytree(results_dir, copy)
    b = render(build_leaderboard(copy), fmt)
    assert a == b
    assert len(a) > 100
    if fmt == "png":
        assert a[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"matplotlib" not in a  # no software version in the metadata


def test_latex_cites_exist_in_bib_and_arrows(results_dir):
    lb = build_leaderboard(results_dir)
    tex = render(lb, "latex")
    bib = render(lb, "bib")
    cited = set()
    for group in re.findall(r"\\cite\{([^}]*)\}", tex):
        cited.update(k.strip() for k in group.split(","))
    keys = {e.key for e in parse_bibtex(bib)}
    assert cited and cited == keys
    assert {"gan2023efficient", "lesbench", "liu2025moee", "wang2020mead"} <= keys
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"PSNR $\uparrow$" in tex and r"FID $\downarrow$" in tex
    assert r"\textbf{22.50}" in tex
    assert r"\texttt{mead-v1}" in tex  # protocol in the caption


def test_csv_rows_name_protocol_and_source(results_dir):
    lb = build_leaderboard(results_dir)
    rows = list(csv.DictReader(io.StringIO(render(lb, "csv"))))
    assert {r["kind"] for r in rows} == {"measured", "reported"}
    for r in rows:
        assert r["protocol"], r
        assert r["source"], r
        assert r["cite_key"], r
    measured = [r for r in rows if r["kind"] == "measured" and r["method"] == "static" and r["protocol"] == "mead-v1"]
    psnr = next(r for r in measured if r["metric"] == "psnr")
    assert float(psnr["value"]) == 20.123 and float(psnr["ci95_low"]) == pytest.approx(19.623)


def test_latex_compiles_with_bibtex(results_dir, tmp_path):
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed")
    lb = build_leaderboard(results_dir)
    (tmp_path / "table.tex").write_text(render(lb, "latex"))
    (tmp_path / "refs.bib").write_text(render(lb, "bib"))
    (tmp_path / "paper.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        "\\input{table}\n\\bibliographystyle{plain}\n\\bibliography{refs}\n\\end{document}\n"
    )

    def run(*cmd):
        return subprocess.run(list(cmd), cwd=tmp_path, capture_output=True, text=True, timeout=120)

    first = run("pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex")
    assert first.returncode == 0, first.stdout[-3000:]
    if shutil.which("bibtex"):
        bt = run("bibtex", "paper")
        assert bt.returncode == 0, bt.stdout
        run("pdflatex", "-interaction=nonstopmode", "paper.tex")
        final = run("pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex")
        assert final.returncode == 0
        log = (tmp_path / "paper.log").read_text(errors="replace")
        assert "Citation" not in log or "undefined" not in log
    assert (tmp_path / "paper.pdf").stat().st_size > 1000


def test_results_validation_fails_loudly(tmp_path):
    rec = make_record("static", {"psnr": (20.0, True)})
    validate_result(rec)
    for key in ("scores", "environment", "generation"):
        broken = dict(rec)
        del broken[key]
        with pytest.raises(LeaderboardError, match=key):
            validate_result(broken, "x.json")
    broken = json.loads(json.dumps(rec))
    broken["protocol"]["name"] = "mead-v2"
    with pytest.raises(LeaderboardError, match="differs from protocol"):
        validate_result(broken, "x.json")
    broken = json.loads(json.dumps(rec))
    broken["scores"]["psnr"]["value"] = "n/a"
    with pytest.raises(LeaderboardError, match="non-numeric"):
        validate_result(broken, "x.json")


def test_result_for_unknown_card_is_an_error(tmp_path):
    p = tmp_path / "r" / "x.json"
    p.parent.mkdir()
    p.write_text(json.dumps(make_record("mystery", {"psnr": (1.0, True)})))
    with pytest.raises(LeaderboardError, match="has no method card"):
        build_leaderboard(p.parent)


# --------------------------------------------------------------------------- CLI and README

def test_cli_latex_writes_table_and_bib(results_dir, tmp_path, capsys):
    out = tmp_path / "paper" / "leaderboard.tex"
    assert main(["leaderboard", "--results", str(results_dir), "--format", "latex", "--out", str(out)]) == 0
    assert out.is_file() and out.with_suffix(".bib").is_file()
    assert main(["leaderboard", "--results", str(results_dir), "--format", "csv", "--benchmark", "mead-v1"]) == 0
    assert "reported,,eat-mead-100" in capsys.readouterr().out
    assert main(["leaderboard", "--results", str(results_dir), "--format", "png"]) == 2  # png needs --out


def test_readme_table_matches_data():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme_section(readme)
    assert section is not None, f"README.md lacks the markers {README_START} / {README_END}"
    assert section == render_readme_table(), (
        "README leaderboard is stale: run `lesbench leaderboard --update-readme README.md`"
    )


# --------------------------------------------------------------------------- ground truth bounds, caveats

def _write(d, recs):
    for r in recs:
        p = d / r["benchmark"] / r["dataset"]["name"] / f"{r['method']}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(r))
    return d


def test_sync_confidence_is_ranked_by_distance_to_ground_truth(tmp_path):
    """AV conf (reference-bound): ground truth 0.800; 0.850 is past it (marked), 0.780 is
    closest (0.020 < 0.050 < 0.100) and bold; |AV offset| keeps its plain direction."""
    from lesbench.leaderboard.tables import best_methods, past_reference

    d = _write(tmp_path / "r", [
        make_record("ground-truth", {"av-sync": (0.8, True), "av-abs-offset": (0.5, False)}),
        make_record("one-hot", {"av-sync": (0.85, True), "av-abs-offset": (0.25, False)}),
        make_record("les-talker", {"av-sync": (0.78, True), "av-abs-offset": (1.0, False)}),
        make_record("static", {"av-sync": (0.7, True), "av-abs-offset": (2.0, False)}),
    ])
    lb = build_leaderboard(d, include_reported=False)
    t = lb.measured[0]
    assert best_methods(t)["av-sync"] == {"les-talker"}  # plain "higher" would pick one-hot
    assert best_methods(t)["av-abs-offset"] == {"one-hot"}
    assert past_reference(t) == {"av-sync": {"one-hot"}}
    md = render(lb, "md")
    rows = {line.split(" | ")[0].strip("| "): line for line in md.splitlines() if line.startswith("| LES")
            or line.startswith("| Static") or line.startswith("| Ground")}
    assert "| **0.780** |" in rows["LES-Talker (lesbench reimplementation)"]
    assert "0.850†" in md and "**0.850**" not in md
    assert "AV conf: ground truth bounds the meaningful scale" in md
    tex = render(lb, "latex")
    assert r"0.850$^\dagger$" in tex and r"\textbf{0.780}" in tex and "ground truth bounds" in tex
    # without a ground-truth row the column is ranked by its direction, and nothing is marked
    d2 = _write(tmp_path / "r2", [make_record("one-hot", {"av-sync": (0.85, True)}),
                                  make_record("les-talker", {"av-sync": (0.78, True)})])
    t2 = build_leaderboard(d2, include_reported=False).measured[0]
    assert best_methods(t2)["av-sync"] == {"one-hot"} and past_reference(t2) == {}
    assert "ground truth bounds" not in render(build_leaderboard(d2, include_reported=False), "md")


def test_emotion_scores_from_a_classifier_on_the_method_training_features_are_marked(tmp_path):
    """An AU classifier scoring a method that trains on AUs: caveat in the row, mark and note;
    the same classifier on ground truth (no training features) and a face-image classifier on
    the method: no caveat."""
    clf = {"name": "emotion-au", "sha256": "c" * 64, "features": "au"}
    def rec(method, features, clf_features="au"):
        r = make_record(method, {"emotion-acc": (0.875, True), "psnr": (20.0, True)})
        r["metric_options"] = {"emotion": {"classifier": {**clf, "features": clf_features}}}
        r["generation"]["provenance"] = {"training_features": features}
        return r
    d = _write(tmp_path / "r", [rec("ground-truth", None), rec("les-talker", ["au"]),
                                rec("one-hot", ["au"], clf_features="crops")])
    lb = build_leaderboard(d, include_reported=False)
    rows = {r.method: r for r in lb.measured[0].rows}
    assert set(rows["les-talker"].caveats) == {"emotion-acc"}
    assert rows["ground-truth"].caveats == {} and rows["one-hot"].caveats == {}
    md = render(lb, "md")
    assert md.count("‡") == 2  # the les-talker cell and the note
    assert "‡ emotion classifier 'emotion-au' reads the per-frame AU intensities the method was trained on" in md
    assert "psnr" not in rows["les-talker"].caveats
