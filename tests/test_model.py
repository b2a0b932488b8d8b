"""LES-Talker training on a synthetic prepared data set with known ground truth.

The tiny run (tests/_les_synthetic.py: 4 train + 2 held-out speakers, 6 epochs) is trained once
per test process and shared with test_generate.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from _les_synthetic import TINY_TRAIN, build_synthetic_prepared, trained_history, trained_synthetic_run
from lesbench.model.config import ConfigError, load_config


def test_default_config_and_overrides(tmp_path):
    cfg = load_config()
    assert cfg.condition == "les" and cfg.train.epochs > 0 and cfg.loss.lip > 0
    cfg2 = load_config(overrides={"train": {"epochs": 3}, "condition": "onehot"})
    assert cfg2.train.epochs == 3 and cfg2.condition == "onehot"
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  d_model: 64\n")
    assert load_config(f).model.d_model == 64
    f.write_text("model:\n  d_modle: 64\n")
    with pytest.raises(ConfigError, match="d_modle"):
        load_config(f)
    with pytest.raises(ConfigError, match="condition"):
        load_config(overrides={"condition": "emoji"})
    with pytest.raises(ConfigError, match="divisible"):
        load_config(overrides={"model": {"d_model": 30, "n_heads": 4}})


def test_training_loss_and_heldout_error_go_down():
    _, run, _ = trained_synthetic_run()
    hist = trained_history()
    first, last = hist[0], hist[-1]
    assert last["train_total"] < 0.75 * first["train_total"]
    assert last["val_exp_l1"] < 0.75 * first["val_exp_l1"]
    # and beats predicting the train mean on held-out speakers by a wide margin
    assert last["val_exp_l1"] < 0.6 * last["val_exp_l1_mean_baseline"]
    log = (run / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,lr,train_total") and len(log) == len(hist) + 1


def test_checkpoint_provenance():
    from safetensors.torch import load_file

    prepared, run, _ = trained_synthetic_run()
    meta = json.loads((run / "checkpoint.json").read_text())
    prov = meta["provenance"]
    from lesbench.weights import file_sha256 as sha256_file
    from lesbench.les.space import les_hash

    assert prov["dataset.json_sha256"] == sha256_file(prepared / "dataset.json")
    assert prov["les_sha256"] == les_hash(run / "les")
    assert prov["face_model_sha256"] == sha256_file(run / "face_model.npz")
    assert prov["train_speakers"] == ["M100", "M101", "M102", "M103"] and prov["val_speakers"] == ["M104", "M105"]
    assert meta["config"]["model"]["d_model"] == TINY_TRAIN["model"]["d_model"]
    weights = load_file(str(run / "model.safetensors"))
    assert "exp_from_au" in weights and weights["au_from_exp"].shape == (20, 17)
    # the train-split exp -> AU regressor is exact on this data (exp = P @ dAU)
    assert meta["au_fit_r2"] > 0.99


def _predict_aus(gen, clip, truth, request):
    """Predicted AU delta (17,) (clip mean) of a held-out clip's audio under ``request``."""
    import pandas as pd

    prepared = gen.meta["provenance"]["root"]
    mel = np.stack(pd.read_parquet(f"{prepared}/audio/{clip}.parquet")["mel"].to_numpy())
    ident = np.asarray(pd.read_parquet(f"{prepared}/coeffs/{clip}.parquet")["id"].iloc[0])
    exp, pose = gen.predict(mel, ident, request)
    return gen.predicted_aus(exp, neutral_exp=np.zeros(exp.shape[1])).mean(0), exp


@pytest.fixture(scope="module")
def generator():
    from lesbench.model.generate import load_generator

    _, run, _ = trained_synthetic_run()
    return load_generator(run, device="cpu")


CLIP = "M104_front_neutral_1_001"  # a held-out speaker's neutral sentence as the audio


def test_level_control_is_monotonic(generator):
    from lesbench import schema

    _, _, truth = trained_synthetic_run()
    idx = [schema.AU_NAMES.index(a) for a in schema.FACS_PROTOTYPES["happy"]]
    values = []
    for level in (0.0, 0.25, 0.5, 0.75, 1.0):
        aus, _ = _predict_aus(generator, CLIP, truth, generator.request("happy", level))
        values.append(aus[idx].mean())
    assert all(b > a for a, b in zip(values, values[1:])), values
    # level 1 lands near the LES's level-3 happy expression (|d| * d on AU06/AU12 ~ 0.42)
    target = generator.space.vector({"happy": 1.0})[idx].mean()
    assert 0.4 * target < values[-1] - values[0] < 1.3 * target


def test_unit_editing_leaves_other_units(generator):
    from lesbench import schema

    _, _, truth = trained_synthetic_run()
    neutral, _ = _predict_aus(generator, CLIP, truth, generator.request())
    mouth_only, _ = _predict_aus(generator, CLIP, truth, generator.request("surprised", 1.0, units=["mouth_lower"]))
    full, _ = _predict_aus(generator, CLIP, truth, generator.request("surprised", 1.0))
    upper = [schema.AU_NAMES.index(a) for a in ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07")]
    # the full emotion raises the brows/eyes a lot; the mouth-only edit leaves them near neutral
    assert np.abs(full[upper] - neutral[upper]).max() > 0.2
    assert np.abs(mouth_only[upper] - neutral[upper]).max() < 0.06
    # the requested lower-mouth part still moves the jaw (single-unit edits are out of the natural
    # distribution: the tiny run reaches ~1/3 of the requested jaw drop, see docs/les-talker.md)
    jaw = schema.AU_NAMES.index("AU26")
    assert mouth_only[jaw] - neutral[jaw] > 0.25 * (full[jaw] - neutral[jaw])


def test_compound_mix_lands_between(generator):
    from lesbench import schema

    _, _, truth = trained_synthetic_run()
    h, _ = _predict_aus(generator, CLIP, truth, generator.request("happy", 1.0))
    s, _ = _predict_aus(generator, CLIP, truth, generator.request("surprised", 1.0))
    m, _ = _predict_aus(generator, CLIP, truth, generator.request(mix={"happy": 0.5, "surprised": 0.5}))
    n, _ = _predict_aus(generator, CLIP, truth, generator.request())
    for au in ("AU12", "AU02"):
        i = schema.AU_NAMES.index(au)
        lo, hi = sorted((h[i], s[i]))
        assert lo - 0.03 <= m[i] <= hi + 0.03, (au, h[i], s[i], m[i])
        assert m[i] > n[i] + 0.05  # both components are present in the mix
    # close to the midpoint of the two components (linear LES)
    assert np.abs(m - 0.5 * (h + s)).max() < 0.1


def test_mouth_shape_kept_under_emotions(generator):
    """Lip motion (speech) follows the audio under every emotion: the mouth-opening trajectory
    correlates with the neutral one (lip-vertex loss + audio encoder)."""
    from lesbench import schema

    _, _, truth = trained_synthetic_run()
    jaw = schema.AU_NAMES.index("AU25")
    _, e0 = _predict_aus(generator, CLIP, truth, generator.request())
    a0 = generator.predicted_aus(e0)[:, jaw]
    for emotion in ("angry", "happy", "sad", "surprised"):
        _, e1 = _predict_aus(generator, CLIP, truth, generator.request(emotion, 1.0))
        a1 = generator.predicted_aus(e1)[:, jaw]
        assert np.corrcoef(a0, a1)[0, 1] > 0.9, emotion


def test_resume_continues_exactly(tmp_path):
    from safetensors.torch import load_file

    from lesbench.model.train import train

    prepared = tmp_path / "p"
    build_synthetic_prepared(prepared, n_train=2, n_heldout=1, sentences=1, n_frames=24)
    small = {**TINY_TRAIN, "model": {**TINY_TRAIN["model"], "dropout": 0.1},
             "data": {"window": 16, "windows_per_clip": 1, "batch_size": 8, "max_val_clips": 4}}
    train(prepared, tmp_path / "a", overrides=small, epochs=2, progress=False)
    train(prepared, tmp_path / "b", overrides=small, epochs=1, progress=False)
    with pytest.raises(Exception, match="resume"):
        train(prepared, tmp_path / "b", overrides=small, epochs=2, progress=False)
    hist = train(prepared, tmp_path / "b", resume=True, epochs=2, progress=False).history
    assert [h["epoch"] for h in hist] == [1, 2]
    wa, wb = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert float((wa[k] - wb[k]).abs().max()) <= 1e-6, k
    ja = json.loads((tmp_path / "a" / "checkpoint.json").read_text())["history"]
    assert ja[-1]["train_total"] == pytest.approx(hist[-1]["train_total"], abs=1e-6)


@pytest.mark.parametrize("condition", ["onehot", "audio-only"])
def test_variants_train_with_the_same_code(tmp_path, condition):
    from lesbench.model.generate import load_generator
    from lesbench.model.train import train

    prepared = tmp_path / "p"
    build_synthetic_prepared(prepared, n_train=2, n_heldout=1, sentences=1, n_frames=24)
    cfg = {**TINY_TRAIN, "condition": condition, "train": {**TINY_TRAIN["train"], "epochs": 1}}
    train(prepared, tmp_path / "r", overrides=cfg, progress=False)
    gen = load_generator(tmp_path / "r", device="cpu")
    assert gen.condition == condition
    mel = np.random.default_rng(0).normal(-6, 1, (30, 80)).astype(np.float32)
    ident = np.zeros(gen.meta["dims"]["n_id"], np.float32)
    e_h, _ = gen.predict(mel, ident, gen.request("happy", 1.0))
    e_n, _ = gen.predict(mel, ident, gen.request())
    assert e_h.shape == (30, gen.meta["dims"]["n_exp"])
    if condition == "audio-only":
        np.testing.assert_array_equal(e_h, e_n)  # no emotion input at all
        assert gen.meta["dims"]["n_cond"] == 0
    else:
        assert gen.meta["dims"]["n_cond"] == len(gen.emotions)
        assert not np.allclose(e_h, e_n)
        from lesbench.les.space import LESError

        with pytest.raises(LESError, match="one-hot"):
            gen.request("happy", 1.0, units=["brows"])


def test_cli_train_and_errors(tmp_path, capsys):
    from lesbench.cli import main

    prepared = tmp_path / "p"
    build_synthetic_prepared(prepared, n_train=2, n_heldout=1, sentences=1, n_frames=24)
    args = ["train", "--data", str(prepared), "--out", str(tmp_path / "r"), "--no-progress", "--device", "cpu",
            "--set", "train.epochs=1", "--set", "model.d_model=16", "--set", "model.n_layers=1",
            "--set", "data.windows_per_clip=1"]
    assert main(args) == 0
    assert "held-out exp L1" in capsys.readouterr().out
    assert main(args) == 2  # the run exists: refuse to overwrite
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "r2")]) == 2
    assert main(["train", "--data", str(prepared), "--out", str(tmp_path / "r3"), "--set", "train.epochz=1"]) == 2
    assert "epochz" in capsys.readouterr().err


def _lag_frames(x: np.ndarray, y: np.ndarray, k: int = 4) -> float:
    """Frames by which ``y`` lags ``x`` (peak of the normalised cross-correlation, parabola-refined)."""
    x = (x - x.mean()) / x.std()
    y = (y - y.mean()) / y.std()
    ks = np.arange(-k, k + 1)
    r = np.array([np.mean(x[max(0, -s): len(x) - max(0, s)] * y[max(0, s): len(y) - max(0, -s)]) for s in ks])
    i = int(np.argmax(r))
    if 0 < i < len(r) - 1:
        return float(ks[i] + (r[i - 1] - r[i + 1]) / (2 * (r[i - 1] - 2 * r[i] + r[i + 1])))
    return float(ks[i])


def test_predicted_mouth_is_not_late(generator):
    """On exactly aligned synthetic data the predicted mouth opening follows the audio energy
    with no lag (the audio encoder is centred, not causal), under every emotion."""
    import pandas as pd

    from lesbench import schema

    prepared = generator.meta["provenance"]["root"]
    energy = np.stack(pd.read_parquet(f"{prepared}/audio/{CLIP}.parquet")["mel"].to_numpy()).mean(1)
    jaw = schema.AU_NAMES.index("AU25")
    for request in (generator.request(), generator.request("surprised", 1.0), generator.request("sad", 1.0)):
        _, exp = _predict_aus(generator, CLIP, None, request)
        lag = _lag_frames(energy, generator.predicted_aus(exp)[:, jaw])
        assert abs(lag) < 0.3, (request.description, lag)


def test_advance_moves_tracks_earlier():
    from lesbench.model.data import advance

    t = np.arange(12, dtype=np.float64)
    pulse = np.exp(-0.5 * (t - 6.0) ** 2)[:, None] * np.array([1.0, 2.0])
    valid = np.ones(12, bool)
    valid[2] = False
    out, ok = advance(pulse, valid, 0.7)
    centre = lambda x: float((t[ok] * x[ok, 0]).sum() / x[ok, 0].sum())  # noqa: E731
    assert centre(out) == pytest.approx(6.0 - 0.7, abs=0.05)  # the pulse comes 0.7 frame earlier
    np.testing.assert_allclose(out[ok, 1], 2 * out[ok, 0])
    assert not ok[-1] and ok[-2] and not ok[1] and not ok[2] and ok[3]  # frame 1 reads invalid frame 2
    assert (out[~ok] == 0).all()
    out2, ok2 = advance(pulse, np.ones(12, bool), -2.0)  # negative: delayed by whole frames
    np.testing.assert_allclose(out2[2:], pulse[:-2])
    assert not ok2[:2].any() and ok2[2:].all()
    same, ok3 = advance(pulse, valid, 0.0)
    assert same is pulse and ok3 is valid


def test_counterfactual_inverse_ignores_an_au_the_train_split_never_moves():
    """exp -> AU regressor a (K, 17) and its inverse b (17, K) for the counterfactual targets.
    When an AU never varies on the train split (one speaker, few clips: AU15 on the tiny demo),
    a has a ~0 singular value and the plain pseudo-inverse put ~1000 into b's row for that AU
    (train loss ~650). With ``pinv_rcond`` the row is 0 and b @ a stays I on the reachable AUs."""
    from lesbench.les.prepared import ClipRecord
    from lesbench.les.space import LinearEmotionSpace
    from lesbench.model.data import ClipArrays, fit_statistics
    from lesbench.schema import AU_NAMES

    rng = np.random.default_rng(0)
    k, t = 20, 200
    mix = rng.normal(size=(k, len(AU_NAMES)))
    dead = AU_NAMES.index("AU15")
    mix[:, dead] = 0.0  # no expression coefficient moves AU15 ...
    clips = []
    for i, emo in enumerate(["neutral", "happy", "sad", "angry"]):
        exp = rng.normal(size=(t, k)).astype(np.float32) * (0.2 if emo == "neutral" else 1.0)
        aus = (exp @ mix).astype(np.float32)
        aus[:, dead] = 1e-4 * rng.normal(size=t)  # ... and it barely varies (tracker noise)
        rec = ClipRecord(clip_id=f"S1_{emo}", speaker="S1", emotion=emo, level=3, split="train")
        clips.append(ClipArrays(record=rec, mel=np.zeros((t, 80), np.float32), exp=exp,
                                ident=np.zeros(4, np.float32), pose=np.zeros((t, 3), np.float32),
                                aus=aus, valid=np.ones(t, bool)))
    space = LinearEmotionSpace(directions={}, neutral_refs={}, global_neutral=np.zeros(len(AU_NAMES)))
    plain = fit_statistics(clips, space, pinv_rcond=1e-15)
    safe = fit_statistics(clips, space)  # default 0.01
    assert np.abs(plain.exp_from_au[dead]).max() > 50  # the blow-up this guards against
    assert np.abs(safe.exp_from_au[dead]).max() < 1e-3
    live = [j for j in range(len(AU_NAMES)) if j != dead]
    ba = safe.exp_from_au.astype(np.float64) @ safe.au_from_exp.astype(np.float64)
    np.testing.assert_allclose(ba[np.ix_(live, live)], np.eye(len(live)), atol=0.02)
