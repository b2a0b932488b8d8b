"""``lesbench demo --check``: comparison rules on small hand-made result files (no demo run)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from lesbench.demo import check
from lesbench.demo.check import (
    RESULTS_SUBDIR,
    RunSummary,
    compare,
    read_reference,
    step_digests,
    write_reference,
)
from lesbench.errors import LesbenchError


def _result(method: str, fid: float = 33.5, psnr: float = 19.4, n_generated: int = 8,
            ckpt: str | None = "a" * 64) -> dict:
    return {
        "format_version": "1", "method": method, "card": method, "benchmark": "demo-v1",
        "protocol": {"name": "demo-v1", "sha256": "p" * 64},
        "dataset": {"name": "lesbench-demo", "n_test_clips": 8},
        "scores": {
            "fid": {"version": "inception/1", "weights": {"fid-inception": "f" * 64}, "value": fid, "n": 8},
            "psnr": {"version": "psnr/1", "weights": {}, "value": psnr, "n": None},
        },
        "unavailable": {"lse": "no weights"},
        "generation": {"n_generated": n_generated, "failures": {}, "checkpoint_sha256": ckpt},
        "environment": {"lesbench_version": "0.1.0", "date": "2026-11-29T00:00:00+00:00", "hardware": {}},
    }


def _run_folder(root: Path, results: dict[str, dict]) -> Path:
    folder = root / RESULTS_SUBDIR
    folder.mkdir(parents=True)
    for method, rec in results.items():
        (folder / f"{method}.json").write_text(json.dumps(rec))
    return root


@pytest.fixture
def results() -> dict[str, dict]:
    return {"les-talker": _result("les-talker"), "static": _result("static", fid=42.4, ckpt=None)}


def _verdicts(report, method: str) -> dict[str, str]:
    return {r.metric: r.verdict for r in report.rows if r.method == method}


def test_copy_of_the_reference_passes(tmp_path, results):
    run = _run_folder(tmp_path / "run", results)
    ref = write_reference(run, tmp_path / "ref.jsonl", tiny=True, command="lesbench demo --tiny")
    report = check.check_demo(run, ref)
    assert report.ok, report.format()
    assert report.n_failed == 0
    # every score, count and hash of both methods is compared
    metrics = _verdicts(report, "les-talker")
    assert {"fid", "psnr", "n_test_clips", "n_generated", "fid.n", "protocol.sha256",
            "weights.fid-inception", "checkpoint_sha256", "unavailable"} <= set(metrics)
    assert set(metrics.values()) == {"PASS"}
    assert "PASS:" in report.format().splitlines()[-1]


def test_a_changed_number_fails_and_exits_nonzero(tmp_path, results, capsys):
    from lesbench.cli import main

    ref_run = _run_folder(tmp_path / "ref", results)
    ref = write_reference(ref_run, tmp_path / "ref.jsonl", tiny=True, command="lesbench demo --tiny")
    changed = copy.deepcopy(results)
    changed["les-talker"]["scores"]["fid"]["value"] = 33.5 + 0.6  # tolerance 0.5
    changed["les-talker"]["scores"]["psnr"]["value"] = 19.4 + 0.04  # tolerance 0.05: still passes
    run = _run_folder(tmp_path / "run", changed)
    report = check.check_demo(run, ref)
    assert not report.ok
    rows = {r.metric: r for r in report.rows if r.method == "les-talker"}
    assert rows["fid"].verdict == "FAIL" and rows["fid"].difference == pytest.approx(0.6)
    assert rows["fid"].tolerance == "±0.5"
    assert rows["psnr"].verdict == "PASS" and rows["psnr"].difference == pytest.approx(0.04)
    assert report.n_failed == 1
    # the command: steps already done are skipped (data step needs mead/demo.json: give none ->
    # run only the check through --steps '') and the exit status says FAIL
    code = main(["demo", "--out", str(run), "--steps", "", "--check", "--reference", str(ref)])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL: " in out and "fid" in out


def test_counts_are_exact(tmp_path, results):
    ref = RunSummary(results=results, source="ref")
    fewer = copy.deepcopy(results)
    fewer["static"]["generation"]["n_generated"] = 7
    report = compare(ref, RunSummary(results=fewer, source="run"))
    assert _verdicts(report, "static")["n_generated"] == "FAIL"
    assert report.n_failed == 1


def test_missing_method_and_missing_score_fail(results):
    ref = RunSummary(results=results, source="ref")
    run = copy.deepcopy(results)
    del run["static"]
    del run["les-talker"]["scores"]["psnr"]
    report = compare(ref, RunSummary(results=run, source="run"))
    assert _verdicts(report, "static") == {"results file": "FAIL"}
    assert _verdicts(report, "les-talker")["psnr"] == "FAIL"



def test_scores_the_reference_lacks_are_listed_not_compared(results):
    """An output added after the reference was made is NEW (with its count and version), never
    a failure; a score the reference has still must match."""
    run = copy.deepcopy(results)
    run["les-talker"]["scores"]["sync-offset-vs-ref"] = {"version": "sync/3", "weights": {}, "value": -0.5, "n": 8}
    report = compare(RunSummary(results, source="ref"), RunSummary(run, source="run"))
    assert report.ok, report.format()
    got = _verdicts(report, "les-talker")
    assert got["sync-offset-vs-ref"] == got["sync-offset-vs-ref.n"] == got["sync-offset-vs-ref.version"] == "NEW"
    assert got["fid"] == "PASS"
    assert "1 passed" not in report.format() and "3 new (not in the reference, not compared)" in report.format()
    run["les-talker"]["scores"]["fid"]["value"] = 40.0
    assert _verdicts(compare(RunSummary(results, source="ref"), RunSummary(run, source="run")),
                     "les-talker")["fid"] == "FAIL"

def test_artefact_hashes_exact_on_the_same_processor_only(results):
    other = copy.deepcopy(results)
    other["les-talker"]["generation"]["checkpoint_sha256"] = "b" * 64
    digests_ref = {"data": "1" * 64, "prepare": "2" * 64, "train": "3" * 64}
    digests_run = {"data": "1" * 64, "prepare": "9" * 64, "train": "8" * 64}
    same = compare(RunSummary(results, digests_ref, "cpu X"), RunSummary(other, digests_run, "cpu X"))
    assert not same.ok
    assert same.parted_at == "prepare"
    assert _verdicts(same, "les-talker")["checkpoint_sha256"] == "FAIL"
    assert _verdicts(same, "(demo)") == {"digest:data": "PASS", "digest:prepare": "FAIL", "digest:train": "FAIL"}
    # another processor model: digests and trained artefacts are informational, numbers decide
    across = compare(RunSummary(results, digests_ref, "cpu X"), RunSummary(other, digests_run, "cpu Y"))
    assert across.ok, across.format()
    assert _verdicts(across, "les-talker")["checkpoint_sha256"] == "INFO"
    assert "first at step 'prepare'" in across.format()


def test_nan_scores_match_only_nan(results):
    ref = copy.deepcopy(results)
    ref["static"]["scores"]["psnr"]["value"] = float("nan")
    run = copy.deepcopy(ref)
    assert compare(RunSummary(ref, source="r"), RunSummary(run, source="x")).ok
    run["static"]["scores"]["psnr"]["value"] = 20.0
    assert not compare(RunSummary(ref, source="r"), RunSummary(run, source="x")).ok


def test_reference_file_round_trip_and_errors(tmp_path, results):
    run = _run_folder(tmp_path / "run", results)
    path = write_reference(run, tmp_path / "ref.jsonl", tiny=True, command="lesbench demo --tiny")
    lines = path.read_text().splitlines()
    assert len(lines) == 3  # header + two methods, sorted
    header = json.loads(lines[0])
    assert header["kind"] == check.REFERENCE_KIND and header["tiny"] is True
    assert set(header["digests"]) == set(check.DIGEST_STEPS)
    assert all(v is None for v in header["digests"].values())  # no step outputs in this folder
    back = read_reference(path)
    assert back.results == results
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"kind": "something else"}) + "\n")
    with pytest.raises(LesbenchError, match="bad.jsonl: first line"):
        read_reference(bad)
    with pytest.raises(LesbenchError, match="no results folder"):
        check.summarize_run(tmp_path / "empty")


def test_step_digests_ignore_paths_and_times(tmp_path):
    """Two folders with the same content but different recorded paths and times digest alike."""
    np = pytest.importorskip("numpy")
    for name, stamp in (("a", "08:00"), ("b", "09:30")):
        out = tmp_path / name
        (out / "mead" / "W009").mkdir(parents=True)
        (out / "mead" / "W009" / "clip.mp4").write_bytes(b"video bytes")
        (out / "prepared" / "frames").mkdir(parents=True)
        (out / "prepared" / "frames" / "c.parquet").write_bytes(b"frames")
        (out / "prepared" / "dataset.json").write_text(json.dumps({"created_utc": stamp, "root": str(out)}))
        (out / "les").mkdir()
        np.savez(out / "les" / "les.npz", directions=np.eye(2))
        (out / "les" / "les.json").write_text(json.dumps({"emotions": ["happy"], "provenance": {"root": str(out)}}))
    da, db = step_digests(tmp_path / "a"), step_digests(tmp_path / "b")
    assert da == db
    assert da["data"] and da["prepare"] and da["les"] and da["train"] is None
    (tmp_path / "b" / "prepared" / "frames" / "c.parquet").write_bytes(b"frames, changed")
    db = step_digests(tmp_path / "b")
    assert db["prepare"] != da["prepare"] and db["data"] == da["data"]


def test_every_tolerance_names_a_demo_score():
    """Tolerances are keyed by the score names results files use (a typo would make it exact)."""
    names = set()
    for tiny in (False, True):
        ref = check.default_reference(tiny)
        if not ref.exists():
            pytest.skip(f"no committed reference {ref}")
        for rec in read_reference(ref).results.values():
            names |= set(rec["scores"])
    assert names and names <= set(check.TOLERANCES), names - set(check.TOLERANCES)


def test_committed_tiny_reference_is_complete():
    """The committed tiny reference holds every demo method and every step digest."""
    from lesbench.demo.run import DEMO_METHODS

    ref = read_reference(check.default_reference(tiny=True))
    assert set(ref.results) == {m for m, _ in DEMO_METHODS}
    assert set(ref.digests) == set(check.DIGEST_STEPS) and all(ref.digests.values())
    assert ref.processor
    assert all(rec["dataset"]["name"] == "lesbench-demo" for rec in ref.results.values())


def test_checkpoint_sha256_equal_for_equal_trainings(tmp_path):
    """Two trainings of the same data into different folders (different paths, seconds in
    their logs) have the same content digest; changing the weights changes it."""
    pytest.importorskip("torch")
    from _les_synthetic import TINY_TRAIN, build_synthetic_prepared

    from lesbench.model.runs import MODEL_FILE, checkpoint_sha256
    from lesbench.model.train import train

    prepared = tmp_path / "p"
    build_synthetic_prepared(prepared, n_train=2, n_heldout=1, sentences=1, n_frames=24)
    small = {**TINY_TRAIN, "data": {"window": 16, "windows_per_clip": 1, "batch_size": 8, "max_val_clips": 4}}
    a, b = tmp_path / "a", tmp_path / "elsewhere" / "b"
    train(prepared, a, overrides=small, epochs=1, progress=False)
    train(prepared, b, overrides=small, epochs=1, progress=False)
    assert (a / MODEL_FILE).read_bytes() == (b / MODEL_FILE).read_bytes()
    assert json.loads((a / "checkpoint.json").read_text())["provenance"]["les_sha256"] == \
        json.loads((b / "checkpoint.json").read_text())["provenance"]["les_sha256"]
    digest = checkpoint_sha256(a)
    assert digest == checkpoint_sha256(b)
    (b / "log.csv").write_text((b / "log.csv").read_text() + "\n")  # the log is not content
    assert checkpoint_sha256(b) == digest
    raw = bytearray((b / MODEL_FILE).read_bytes())
    raw[-1] ^= 1
    (b / MODEL_FILE).write_bytes(bytes(raw))
    assert checkpoint_sha256(b) != digest
