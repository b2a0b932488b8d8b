"""The optional learned refiner of LES-Talker's warp renderer (lesbench/model/refine.py).

Data: the tiny synthetic demo (conftest ``tiny_demo``) through ``lesbench prepare``. The demo's
videos are themselves rendered with lesbench's warp and mouth painting, so the warp renderer
reproduces their crops up to tracking noise and there is little for a refiner to learn there. To
test that the refiner *learns* a correction and carries it to held-out speakers, the ``graded``
copy plants a known gap: every crop frame is colour graded except the frames that serve as
warp sources (the first face frame of each speaker's neutral clip) — "the photo was taken
under different light than the video". The warp of an ungraded source then differs from every
graded target by a colour transform that only training can recover.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lesbench import schema

# small and fast: 64 px, 12 channels
FAST = {"channels": 12, "levels": 3, "batch_size": 8, "lr": 0.003, "pairs_per_clip": 10, "max_val_pairs": 24,
        "eval_every": 20, "threads": 2}


def _grade(img: np.ndarray) -> np.ndarray:
    """The planted appearance gap: per-channel gain and offset (warmer, lower contrast)."""
    out = img.astype(np.float32) * np.array([0.8, 0.85, 0.95]) + np.array([40.0, 22.0, -6.0])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def prepared(tiny_demo, tmp_path_factory) -> Path:
    from lesbench.cli import main

    out = tmp_path_factory.mktemp("refine") / "prep"
    assert main(["prepare", str(tiny_demo), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def graded(prepared, tmp_path_factory) -> Path:
    """A copy of ``prepared`` whose crops are graded except the warp sources (see the module doc)."""
    from lesbench import io
    from lesbench.les.prepared import open_prepared
    from lesbench.model.refine_pairs import _source_clips, read_crop_track

    root = tmp_path_factory.mktemp("refine-graded") / "prep"
    shutil.copytree(prepared, root)
    index = open_prepared(root)
    sources = set(_source_clips(index.clips, "neutral").values())
    for c in index.clips:
        track = read_crop_track(root, c.clip_id)
        frames = np.stack([_grade(f) for f in track.frames])
        if c.clip_id in sources:
            k = int(np.flatnonzero(track.valid)[0])
            frames[k] = track.frames[k]
        io.write_video(root / "crops" / f"{c.clip_id}.mp4", frames, fps=schema.FPS, crf=12)
    return root


@pytest.fixture(scope="module")
def talker_run(prepared, tmp_path_factory) -> Path:
    from lesbench.model.train import train

    run = tmp_path_factory.mktemp("refine-talker") / "run"
    train(prepared, run, overrides={"train": {"epochs": 1}}, device="cpu", progress=False)
    return run


@pytest.fixture(scope="module")
def refined_run(graded, talker_run, tmp_path_factory) -> Path:
    """The talker run plus a refiner trained by `lesbench train-refine` on the graded copy."""
    from lesbench.cli import main

    run = tmp_path_factory.mktemp("refine-run") / "run"
    shutil.copytree(talker_run, run)
    sets = [x for k, v in FAST.items() for x in ("--set", f"{k}={v}")]
    assert main(["train-refine", "--data", str(graded), "--run", str(run), "--size", "64", "--steps", "80",
                 "--device", "cpu", "--no-progress", *sets]) == 0
    return run


def test_crop_landmarks_match_retracking(prepared):
    """Frames-table landmarks mapped through the recomputed crop transform land where the face
    tracker finds them on the crop video itself."""
    from lesbench.model.refine_pairs import read_crop_track
    from lesbench.extract.face import FaceTracker

    track = read_crop_track(prepared, "W011_front_happy_3_001")
    assert track.frames.shape[1:] == (256, 256, 3) and track.valid.all()
    tracker = FaceTracker()
    try:
        table = tracker.track(list(track.frames[:6]))
    finally:
        tracker.close()
    lm = np.stack(table["landmarks"].to_numpy()).reshape(-1, schema.N_LANDMARKS, 3)
    err = np.linalg.norm(lm[:, :, :2] - track.landmarks[:6, :, :2], axis=-1)
    assert np.median(err) < 1.5, np.median(err, axis=1)


def test_untrained_refiner_is_identity_and_fully_convolutional():
    import torch

    from lesbench.model.config import RefineConfig
    from lesbench.model.refine_net import Refiner, RefineNet

    net = RefineNet(8, 3)
    for s in (64, 128, 256, 72):
        assert net(torch.rand(2, 7, s, s)).shape == (2, 3, s, s)
    rng = np.random.default_rng(0)
    warped = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    source = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    r = Refiner(net=net.eval(), config=RefineConfig(channels=8), size=128, device=torch.device("cpu"))
    lm = np.full((schema.N_LANDMARKS, 3), 128.0)
    assert np.array_equal(r.refine(warped, source, lm), warped)  # zero-initialised output layer


def test_refiner_learns_a_gap_and_carries_it_to_heldout_speakers(refined_run):
    meta = json.loads((refined_run / "refine.json").read_text())
    hist = meta["history"]
    assert [h["step"] for h in hist][-1] == 80 and meta["size"] == 64 and meta["device"] == "cpu"
    # training loss goes down (to the floor set by tracking noise: the demo's own warp residual)
    assert hist[-1]["loss"] < 0.75 * hist[0]["loss"], [h["loss"] for h in hist]
    # held-out speaker (W009), scored at 256 through the inference path: closer to the real crop
    val = meta["val"]
    assert val["n_pairs"] > 10
    assert val["refined_l1"] < 0.75 * val["warp_l1"], val
    assert val["refined_psnr"] > val["warp_psnr"] + 1.5, val
    prov = meta["provenance"]
    assert prov["train_speakers"] == ["W011"] and prov["val_speakers"] == ["W009"]
    assert all(c.startswith("W011") for c in prov["train_clips"])
    log = (refined_run / "refine_log.csv").read_text().splitlines()
    assert log[0].startswith("step,lr,loss") and len(log) == len(hist) + 1


def test_checkpoint_round_trip(refined_run, graded):
    """The saved file reloads to the same network: it reproduces the held-out scores exactly,
    and its sha256 is the one recorded."""
    from lesbench.les.prepared import open_prepared
    from lesbench.model.refine_net import load_refiner
    from lesbench.model.refine_pairs import build_pairs, evaluate_pairs
    from lesbench.weights import file_sha256 as sha256_file

    meta = json.loads((refined_run / "refine.json").read_text())
    assert meta["sha256"] == sha256_file(refined_run / "refine.safetensors")
    refiner = load_refiner(refined_run, device="cpu")
    assert refiner.size == 64 and refiner.config.channels == FAST["channels"]
    index = open_prepared(graded)
    pairs = build_pairs(graded, [c for c in index.clips if c.split != "train"], size=256,
                        pairs_per_clip=FAST["pairs_per_clip"], max_pairs=FAST["max_val_pairs"])
    again = evaluate_pairs(refiner, pairs)
    for k, v in meta["val"].items():
        assert again[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k


def test_training_is_deterministic(graded, tmp_path):
    from lesbench.model.refine import train_refiner
    from safetensors.torch import load_file

    ov = {**FAST, "max_val_pairs": 2, "pairs_per_clip": 3, "eval_every": 100}
    a = train_refiner(graded, tmp_path / "a", size=32, steps=4, device="cpu", seed=3, overrides=ov, progress=False)
    b = train_refiner(graded, tmp_path / "b", size=32, steps=4, device="cpu", seed=3, overrides=ov, progress=False)
    wa, wb = load_file(str(a.path)), load_file(str(b.path))
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k].numpy(), wb[k].numpy()) for k in wa)
    # and the files themselves are identical (the header's metadata is written in sorted order)
    assert a.sha256 == b.sha256 and a.path.read_bytes() == b.path.read_bytes()
    assert a.history == [{**h, "seconds": a.history[i]["seconds"]} for i, h in enumerate(b.history)]


def test_generate_uses_the_refiner_and_no_refine_turns_it_off(refined_run, talker_run, tiny_demo, tmp_path):
    from lesbench import io
    from lesbench.cli import main
    from lesbench.model.generate import load_generator

    src = io.read_frames(tiny_demo / "W009" / "video" / "front" / "neutral" / "level_1" / "001.mp4")[0]
    plain_gen = load_generator(talker_run, device="cpu")  # a run without a refiner: the plain warp
    gen = load_generator(refined_run, device="cpu")
    try:
        assert plain_gen.refiner is None and gen.refiner is not None and gen.refine_revision
        plain = plain_gen.generate(src, None, "happy", 1.0, n_frames=3)
        refined = gen.generate(src, None, "happy", 1.0, n_frames=3)
        off = gen.generate(src, None, "happy", 1.0, n_frames=3, refine=False)
        assert np.array_equal(off, plain)  # refine=False is byte-identical to a run without the file
        # the refiner learned the planted grade: the output is much warmer than the warp
        assert refined.mean(axis=(0, 1, 2))[0] - plain.mean(axis=(0, 1, 2))[0] > 5.0
        assert gen.generate(src, None, "happy", 1.0, n_frames=3, refine=True).tobytes() == refined.tobytes()
        with pytest.raises(Exception, match="refine.safetensors"):
            plain_gen.generate(src, None, "happy", 1.0, n_frames=3, refine=True)
    finally:
        plain_gen.close()
        gen.close()
    # CLI: the refiner is used by default, --no-refine gives the plain warp
    image = tmp_path / "src.png"
    import cv2

    cv2.imwrite(str(image), cv2.cvtColor(src, cv2.COLOR_RGB2BGR))
    audio = tmp_path / "a.wav"
    io.write_audio(audio, np.zeros(3 * schema.HOP, np.float32))
    outs = {}
    for name, run, extra in (("plain", talker_run, []), ("off", refined_run, ["--no-refine"]), ("on", refined_run, [])):
        outs[name] = tmp_path / f"{name}.mp4"
        assert main(["generate", "--checkpoint", str(run), "--source", str(image), "--audio", str(audio),
                     "--out", str(outs[name]), "--emotion", "happy", "--device", "cpu", *extra]) == 0
    frames = {k: io.read_frames(v) for k, v in outs.items()}
    assert np.array_equal(frames["off"], frames["plain"])
    assert frames["on"][..., 0].mean() - frames["plain"][..., 0].mean() > 5.0


def test_missing_and_corrupt_refiner_files(refined_run, tmp_path):
    from lesbench.errors import LesbenchError
    from lesbench.model.generate import Generator
    from lesbench.model.refine_net import load_refiner

    run = tmp_path / "run"
    shutil.copytree(refined_run, run)
    path = run / "refine.safetensors"
    # sha256 recorded in refine.json must match
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(LesbenchError, match="sha256.*refine.json"):
        load_refiner(path)
    # not a safetensors file at all
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(LesbenchError, match=r"refine\.safetensors: not a readable safetensors file"):
        Generator(run, device="cpu")  # a corrupt refiner is an error, not silently ignored
    assert Generator(run, device="cpu", refine=False).refiner is None  # unless switched off
    path.unlink()
    with pytest.raises(LesbenchError, match=r"refine\.safetensors: refiner checkpoint not found"):
        Generator(run, device="cpu", refine=True)
    assert Generator(run, device="cpu").refiner is None  # absent: the plain warp


def test_config_and_training_switch(tmp_path):
    from lesbench.commands.train import parse_sets
    from lesbench.model.config import ConfigError, load_config
    from lesbench.model.refine import should_train_refiner

    cfg = load_config()
    assert cfg.refine.enabled == "auto" and cfg.refine.size == 128
    assert load_config(overrides=parse_sets(["refine.enabled=true"])).refine.enabled == "true"
    assert load_config(overrides=parse_sets(["refine.enabled=off"])).refine.enabled == "false"
    with pytest.raises(ConfigError, match="refine.enabled"):
        load_config(overrides={"refine": {"enabled": "sometimes"}})
    with pytest.raises(ConfigError, match="divisible"):
        load_config(overrides={"refine": {"size": 100, "levels": 4}})
    import torch

    gpu = torch.cuda.is_available()
    assert should_train_refiner("auto", "auto") == gpu
    assert should_train_refiner("auto", "cpu") is False
    assert should_train_refiner("on", "cpu") is True and should_train_refiner("false", "auto") is False


def test_train_cli_refine_flag(prepared, tmp_path):
    """`lesbench train`: --refine on trains the refiner after the talker (here on CPU, tiny);
    the default (auto) with --device cpu leaves the run exactly as before: no refiner files."""
    from lesbench.cli import main

    small = ["--set", "train.epochs=1", "--set", "refine.steps=3", "--set", "refine.size=32",
             "--set", "refine.channels=4", "--set", "refine.pairs_per_clip=2", "--set", "refine.max_val_pairs=2",
             "--device", "cpu", "--no-progress"]
    assert main(["train", "--data", str(prepared), "--out", str(tmp_path / "on"), "--refine", "on", *small]) == 0
    meta = json.loads((tmp_path / "on" / "refine.json").read_text())
    assert meta["size"] == 32 and meta["steps"] == 3 and (tmp_path / "on" / "refine.safetensors").is_file()
    assert main(["train", "--data", str(prepared), "--out", str(tmp_path / "auto"), *small]) == 0
    assert not (tmp_path / "auto" / "refine.safetensors").exists() and not (tmp_path / "auto" / "refine.json").exists()


def test_saved_refiner_bytes_do_not_depend_on_metadata_order(tmp_path):
    """safetensors writes its metadata map in no fixed order; save_refiner sorts the header, so
    the same weights always give the same file (and sha256), and the file still loads."""
    import torch
    from safetensors import safe_open

    from lesbench.model.config import RefineConfig
    from lesbench.model.refine_net import RefineNet, save_refiner

    torch.manual_seed(0)
    net = RefineNet(8, 2)
    shas = {save_refiner(net, tmp_path / f"r{i}.safetensors", RefineConfig(channels=8, levels=2), 64) for i in range(6)}
    assert len(shas) == 1
    with safe_open(str(tmp_path / "r0.safetensors"), framework="pt") as f:
        meta = f.metadata()
        assert meta["size"] == "64" and meta["format"] and json.loads(meta["config"])["channels"] == 8
        for k, v in net.state_dict().items():
            assert torch.equal(f.get_tensor(k), v)


def test_evaluated_method_records_and_can_switch_off_the_refiner(refined_run, prepared):
    """`lesbench evaluate --no-refine` -> LESTalkerMethod(refine=False): plain warp, and the
    provenance says which refiner (if any) rendered the clips."""
    from lesbench.baselines.base import PreparedData
    from lesbench.baselines.les_talker import LESTalkerMethod

    data = PreparedData.open(prepared)
    on = LESTalkerMethod(checkpoint=refined_run, device="cpu")
    on.setup(data)
    off = LESTalkerMethod(checkpoint=refined_run, device="cpu", refine=False)
    off.setup(data)
    meta = json.loads((refined_run / "refine.json").read_text())
    assert on.provenance()["refine_revision"] and meta["sha256"].startswith(on.provenance()["refine_revision"])
    assert off.provenance()["refine_revision"] is None and off._generator.refiner is None
