"""Names from files stay inert: paths stay inside the output folder, and tables render names
from results files and method cards as text (Markdown, CSV, LaTeX), never as structure."""

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from lesbench.sanitize import UnsafeNameError, csv_cell, latex_text, md_code, md_text, safe_join, safe_name

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------- safe paths

@pytest.mark.parametrize("bad", ["../x", "../../x", "/abs", "a/b", "a\\b", "..", ".", "", "  ", "x\ny", "x\x00y"])
def test_safe_name_refuses_names_that_are_not_one_component(bad):
    with pytest.raises(UnsafeNameError) as exc:
        safe_name(bad, what="protocol name", source="/tmp/p.yaml")
    assert "/tmp/p.yaml" in str(exc.value) and "protocol name" in str(exc.value)


def test_safe_name_keeps_plain_names_and_slugs_labels():
    assert safe_name("mead-v1") == "mead-v1"
    assert safe_name("M003_front_angry_3_001.mp4") == "M003_front_angry_3_001.mp4"
    assert safe_name("my data/set v2", replace=True) == "my-data-set-v2"
    assert safe_name("../../x", replace=True) == "..-..-x"  # no separator left: one component
    with pytest.raises(UnsafeNameError):
        safe_name("..", replace=True)


def test_safe_join_stays_under_root(tmp_path):
    assert safe_join(tmp_path, "a", "b.json") == tmp_path / "a" / "b.json"
    for bad in ("..", "/etc", "../../x"):
        with pytest.raises(UnsafeNameError):
            safe_join(tmp_path, "a", bad)


# ----------------------------------------------------------------------------------- evaluate

def _write_prepared(root: Path, name: str) -> Path:
    """A two-clip prepared set (one test clip + its neutral source) as evaluate reads it."""
    import numpy as np
    import pandas as pd

    from lesbench.io import write_video

    (root / "crops").mkdir(parents=True)
    rows = []
    for i, (cid, emo) in enumerate([("W002_front_neutral_1_001", "neutral"), ("W002_front_happy_3_001", "happy")]):
        frames = np.full((4, 32, 32, 3), 60 + 40 * i, np.uint8)
        write_video(root / "crops" / f"{cid}.mp4", frames, fps=25, audio=np.zeros(2560, np.float32), sr=16000)
        rows.append(dict(clip_id=cid, speaker="W002", view="front", emotion=emo, level=3 if i else 1,
                         sentence="001", split="test", status="ok"))
    pd.DataFrame(rows).to_parquet(root / "clips.parquet")
    (root / "dataset.json").write_text(json.dumps({"format_version": "1.0", "name": name}))
    return root


def _scorer(items, protocol, metrics, device=None):
    return {"psnr": {"value": 30.0, "ci95": None, "version": "t", "higher_is_better": True, "n": len(items)}}


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("proto_name", ["../../escaped", "/ABS/escaped", "a/b"])
def test_protocol_name_cannot_write_outside_out(tmp_path, proto_name):
    from lesbench.evaluation import evaluate

    proto_text = (REPO / "metrics" / "protocols" / "demo-v1.yaml").read_text()
    proto_name = proto_name.replace("/ABS", str(tmp_path / "abs"))
    proto = tmp_path / "proto.yaml"
    proto.write_text(re.sub(r"(?m)^name: .*$", f"name: {json.dumps(proto_name)}", proto_text))
    data = _write_prepared(tmp_path / "prepared", "tiny")
    out = tmp_path / "sandbox" / "a" / "out"
    before = _tree(tmp_path)
    with pytest.raises(UnsafeNameError) as exc:
        evaluate("static", data, protocol=proto, out=out, scorer=_scorer, control=False)
    assert str(proto) in str(exc.value)
    assert _tree(tmp_path) == before  # nothing written anywhere, inside out or outside


def test_dataset_name_from_dataset_json_stays_inside_out(tmp_path):
    from lesbench.evaluation import evaluate

    data = _write_prepared(tmp_path / "prepared", "..")
    out = tmp_path / "sandbox" / "out"
    with pytest.raises(UnsafeNameError) as exc:
        evaluate("static", data, protocol="demo-v1", out=out, scorer=_scorer, control=False)
    assert "dataset.json" in str(exc.value)
    assert not (tmp_path / "sandbox" / "demo-v1").exists()

    data2 = _write_prepared(tmp_path / "prepared2", "../../../outside")
    res = evaluate("static", data2, protocol="demo-v1", out=out, scorer=_scorer, control=False)
    assert res.path == out / "demo-v1" / "..-..-..-outside" / "static.json"
    assert res.path.is_file()
    assert {p.name for p in tmp_path.iterdir()} == {"prepared", "prepared2", "sandbox"}


def test_clip_id_with_a_path_is_refused_before_generating(tmp_path):
    import pandas as pd

    from lesbench.evaluation import evaluate

    data = _write_prepared(tmp_path / "prepared", "tiny")
    clips = pd.read_parquet(data / "clips.parquet")
    clips.loc[1, "clip_id"] = "../../../escaped"
    clips.to_parquet(data / "clips.parquet")
    with pytest.raises(UnsafeNameError, match="clips.parquet: clip id"):
        evaluate("static", data, protocol="demo-v1", out=tmp_path / "out", scorer=_scorer, control=False)
    assert {p.name for p in tmp_path.iterdir()} == {"prepared", "out"}
    assert not any(p.suffix == ".mp4" for p in (tmp_path / "out").rglob("*"))


def test_leaderboard_latex_out_with_bib_suffix_is_refused(tmp_path, capsys):
    from lesbench.cli import main

    target = tmp_path / "table.bib"
    assert main(["leaderboard", "--format", "latex", "--out", str(target)]) == 2
    assert "another suffix" in capsys.readouterr().err and not target.exists()


# ----------------------------------------------------------------------------------- renderers

EVIL_NAME = "Evil\n# Heading\n| x | y |\n<script>alert(1)</script> `code` [a](http://t)"
EVIL_DATASET = "tiny\n\n<img src=x>"
EVIL_METRIC = "=HYPERLINK(\"http://x\",\"y\")"


@pytest.fixture()
def evil_leaderboard(tmp_path):
    """Packaged cards plus one card and one results file whose names try to be structure."""
    import yaml

    from lesbench.leaderboard import build_leaderboard, cards_dir

    cards = tmp_path / "methods"
    shutil.copytree(cards_dir(), cards)
    card = yaml.safe_load((cards / "static.yaml").read_text())
    card["name"] = EVIL_NAME
    (cards / "evil.yaml").write_text(yaml.safe_dump(card))
    results = tmp_path / "results"
    results.mkdir()
    src = REPO / "leaderboards" / "results" / "demo-v1" / "lesbench-demo" / "static.json"
    good = json.loads(src.read_text())
    evil = json.loads(src.read_text())
    evil["method"] = evil["card"] = "evil"
    evil["dataset"]["name"] = good["dataset"]["name"] = EVIL_DATASET
    evil["scores"][EVIL_METRIC] = {"value": -0.5, "ci95": None, "version": "1", "higher_is_better": True}
    (results / "static.json").write_text(json.dumps(good))
    (results / "evil.json").write_text(json.dumps(evil))
    return build_leaderboard(results, cards=cards, include_reported=False)


def _md_table_rows(md: str) -> list[list[str]]:
    """Rows of the first pipe table (GFM: split on unescaped |)."""
    rows = []
    for line in md.splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif rows:
            break
    return rows


def test_markdown_renders_injected_names_inert(evil_leaderboard):
    from lesbench.leaderboard import render

    md = render(evil_leaderboard, "md")
    rows = _md_table_rows(md)
    assert len(rows) == 2 + 2  # header, separator, two methods: no extra rows
    assert len({len(r) for r in rows}) == 1  # every row has the header's cell count
    assert "<script>" not in md and "<img" not in md
    assert not any(line.startswith("# ") for line in md.splitlines())
    assert "](http" not in md.replace("\\](http", "")  # no live link
    evil_row = next(r for r in rows if "Evil" in r[0])
    assert evil_row[0] == ("Evil # Heading \\| x \\| y \\| &lt;script&gt;alert(1)&lt;/script&gt; "
                           "\\`code\\` \\[a\\](http://t)")
    # the data set (with a blank line) stays on the heading line
    heading = next(line for line in md.splitlines() if line.startswith("### Measured"))
    assert "tiny &lt;img src=x&gt;" in heading


def test_csv_cells_never_start_a_formula_and_numbers_stay_numbers(evil_leaderboard):
    from lesbench.leaderboard import render

    rows = list(csv.DictReader(io.StringIO(render(evil_leaderboard, "csv"))))
    metrics = {r["metric"] for r in rows}
    assert "'" + EVIL_METRIC in metrics and EVIL_METRIC not in metrics
    for r in rows:
        for key, cell in r.items():
            if cell[:1] in ("=", "+", "@", "\t", "\r"):
                pytest.fail(f"{key} starts a formula: {cell!r}")
            if cell.startswith("-"):
                float(cell)  # only negative numbers may start with '-'
    evil_value = next(r["value"] for r in rows if r["metric"] == "'" + EVIL_METRIC)
    assert float(evil_value) == -0.5


def test_latex_has_no_paragraph_break_inside_a_caption(evil_leaderboard):
    from lesbench.leaderboard import render

    tex = render(evil_leaderboard, "latex")
    for caption in re.findall(r"\\caption\{.*?\}\n\\label", tex, flags=re.S):
        assert "\n\n" not in caption and "\n" not in caption.removesuffix("\n\\label")
    assert "\n\n" not in tex.split("\\begin{table}")[1]  # nowhere inside the table either
    assert r"Evil \# Heading $|$ x $|$ y $|$ \textless{}script\textgreater{}" in tex


def test_escapers_hand_checked():
    assert md_text("a|b\nc") == "a\\|b c"
    assert md_text("# h") == "\\# h" and md_text("1. x") == "1\\. x"
    assert md_text("<b>&") == "&lt;b&gt;&amp;"
    assert md_code("a`b") == "``a`b``" and md_code("x|y") == "`x\\|y`" and md_code("`") == "`` ` ``"
    assert [csv_cell(v) for v in ("=1+1", "+1x", "-x", "@SUM", "\tx", "\rx", "-0.38", "-1e-3", "abc")] == \
        ["'=1+1", "'+1x", "'-x", "'@SUM", "'\tx", "'\rx", "-0.38", "-1e-3", "abc"]
    assert latex_text("a_b\n\nc%") == r"a\_b c\%"


# ----------------------------------------------------------------------------------- weights

@pytest.fixture()
def small_run(tmp_path) -> Path:
    """A run folder written by the training code's own checkpoint writer, for a small model
    (no data set needed: the weights and their record are what is under test)."""
    import torch

    from lesbench.model.config import load_config
    from lesbench.model.runs import save_checkpoint as _save_checkpoint
    from lesbench.model.train import build_model

    cfg = load_config()
    dims = {"n_mel": 8, "n_exp": 4, "n_id": 3, "n_cond": 0}
    torch.manual_seed(0)
    model = build_model(cfg, **dims)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.zeros(1, 5, 8), torch.zeros(1, 3), None, torch.zeros(1, 5, dtype=torch.bool))[0].sum().backward()
    opt.step()
    run = tmp_path / "run"
    run.mkdir()
    _save_checkpoint(run, model, opt, 1, [], {"format": "lesbench-les-talker", "config": cfg.to_dict(), "dims": dims,
                                               "emotions": ["happy"]})
    return run


def _flip_a_weight(path: Path) -> None:
    """Change one byte of tensor data: still a valid safetensors file, different weights."""
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))


def test_run_records_weight_digests_and_refuses_modified_weights(small_run):
    from lesbench.errors import ChecksumError
    from lesbench.model.runs import load_run_weights
    from lesbench.weights import file_sha256, load_safetensors

    meta = json.loads((small_run / "checkpoint.json").read_text())
    model_file = small_run / "model.safetensors"
    assert meta["weights_sha256"]["model.safetensors"] == file_sha256(model_file)
    assert meta["weights_sha256"]["optimizer.safetensors"] == file_sha256(small_run / "optimizer.safetensors")
    tensors, digest = load_run_weights(small_run)
    assert digest == meta["weights_sha256"]["model.safetensors"] and tensors

    expected = digest
    _flip_a_weight(model_file)
    load_safetensors(model_file)  # still a readable safetensors file ...
    with pytest.raises(ChecksumError) as exc:  # ... but not the one training wrote
        load_run_weights(small_run)
    msg = str(exc.value)
    assert str(model_file) in msg and expected in msg and file_sha256(model_file, fresh=True) in msg
    assert "checkpoint.json" in msg and "lesbench train" in msg


@pytest.mark.parametrize("content", [b"not a safetensors file", b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json"])
def test_cli_not_safetensors_is_one_line_without_traceback(small_run, tmp_path, capsys, content):
    from lesbench.cli import main

    (small_run / "model.safetensors").write_bytes(content)
    rc = main(["generate", "--checkpoint", str(small_run), "--source", str(tmp_path / "x.png"),
               "--audio", str(tmp_path / "x.wav"), "--out", str(tmp_path / "o.mp4"), "--emotion", "happy",
               "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and not (tmp_path / "o.mp4").exists()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{small_run / 'model.safetensors'}: not a readable safetensors file" in err


def test_cli_modified_weights_are_refused(small_run, tmp_path, capsys):
    from lesbench.cli import main

    _flip_a_weight(small_run / "model.safetensors")
    rc = main(["generate", "--checkpoint", str(small_run), "--source", str(tmp_path / "x.png"),
               "--audio", str(tmp_path / "x.wav"), "--out", str(tmp_path / "o.mp4"), "--emotion", "happy",
               "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "does not match" in err and "Traceback" not in err


def test_emotion_classifier_card_records_sha256_and_load_checks_it(tmp_path):
    import torch
    from safetensors.torch import save_file

    from lesbench.errors import ChecksumError
    from lesbench.metrics.emotion_classifier_model import CARD_FORMAT, MeadEmotionClassifier
    from lesbench.metrics.emotion_classifier_model import torch_modules as _torch_modules
    from lesbench.weights import file_sha256

    AUFrameMLP, _ = _torch_modules()
    torch.manual_seed(0)
    tensors = {f"au.{k}": v.contiguous() for k, v in AUFrameMLP().state_dict().items()}
    card = {"format": CARD_FORMAT, "name": "t", "features": "au"}
    path = tmp_path / "clf.safetensors"
    save_file(tensors, str(path), metadata={"card": json.dumps(card)})
    (tmp_path / "clf.json").write_text(json.dumps({**card, "sha256": file_sha256(path)}))
    assert MeadEmotionClassifier.load(path, device="cpu").sha256 == file_sha256(path)
    _flip_a_weight(path)
    with pytest.raises(ChecksumError, match="clf.json"):
        MeadEmotionClassifier.load(path, device="cpu")


# ----------------------------------------------------------------------------------- native logs

def test_filter_native_lines_drops_routine_lines_and_rewords_the_rest():
    from lesbench.extract.native_logs import filter_native_lines

    text = (
        "WARNING: Logging before InitGoogle() is written to STDERR\n"
        "W0000 00:00:1795939426.815305    8306 face_landmarker_graph.cc:181] Sets FaceBlendshapesGraph "
        "acceleration to xnnpack by default.\n"
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
        "W0000 00:00:1795939426.843165    8311 inference_feedback_manager.cc:121] Feedback manager requires "
        "a model with a single signature inference. Disabling support for feedback tensors.\n"
        "I0000 00:00:1.0 1 gl_context_egl.cc:85] Successfully initialized EGL.\n"
        "E0000 00:00:1795939426.9 8311 calculator_graph.cc:9] model file is truncated\n"
        "a Python warning\n"
    )
    assert filter_native_lines(text) == [
        "lesbench: MediaPipe (calculator_graph.cc:9): model file is truncated", "a Python warning"]


_CREATE_TRACKER = (
    "import numpy as np\n"
    "from lesbench.extract.face import FaceTracker\n"
    "t = FaceTracker()\n"
    "print(int(t.track([np.zeros((64, 64, 3), np.uint8)] * 2, fps=25.0)['face'].sum()))\n"
)


@pytest.mark.parametrize("verbose", [False, True])
def test_landmarker_creation_is_quiet_unless_verbose(verbose):
    import os
    import subprocess
    import sys

    pytest.importorskip("mediapipe")
    from lesbench.weights import WeightsNotFoundError, resolve

    try:
        resolve("mediapipe-face-landmarker")
    except WeightsNotFoundError:
        pytest.skip("face_landmarker.task not installed")
    env = {k: v for k, v in os.environ.items() if k != "LESBENCH_VERBOSE"}
    if verbose:
        env["LESBENCH_VERBOSE"] = "1"
    out = subprocess.run([sys.executable, "-c", _CREATE_TRACKER], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"  # blank frames: no face, and the tracker ran
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    if verbose:  # MediaPipe's own start-up lines are back (5 with mediapipe 0.10 on CPU)
        assert any("XNNPACK" in x for x in lines) and len(lines) >= 3
    else:
        assert lines == []


def test_png_renders_a_name_with_dollar_signs(evil_leaderboard):
    import dataclasses

    from lesbench.leaderboard import render

    cards = dict(evil_leaderboard.cards)
    cards["evil"] = dataclasses.replace(cards["evil"], name="costs $5^{ and $\\frac{")  # broken mathtext
    png = render(dataclasses.replace(evil_leaderboard, cards=cards), "png")
    assert png.startswith(b"\x89PNG")


def test_builtin_protocol_names_never_reach_outside_the_package(tmp_path, monkeypatch):
    from lesbench.errors import LesbenchError
    """A protocol given by name (no .yaml suffix) is looked up only among the shipped files."""
    from lesbench.metrics.protocol import load_protocol
    from lesbench.metrics.robustness_perturb import load_perturbations

    monkeypatch.chdir(tmp_path)
    for name in ("../protocols/mead-v1", "../../metrics/protocols/mead-v1", "a/../mead-v1"):
        with pytest.raises(LesbenchError, match="unknown protocol|protocol file not found"):
            load_protocol(name)
    with pytest.raises(LesbenchError, match="unknown perturbation set"):
        load_perturbations("../protocols/mead-v1")
    assert load_protocol("mead-v1").source == "lesbench:mead-v1"
