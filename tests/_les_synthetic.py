"""A tiny synthetic *prepared* data set (the layout in docs/design.md) with known emotion directions.

Used by tests/test_les.py, test_model.py and test_generate.py to check the LES and LES-Talker
against ground truth, without video decoding or MediaPipe:

- per-speaker neutral AU reference = a base vector + speaker offset;
- emotion e at MEAD level k adds ``gain_s * LEVEL_SCALE[k] * NORM[e] * TRUE_DIRECTIONS[e]``;
- speech moves AU25/AU26 (and a little AU10) with a mouth-openness signal that is also what the
  log-mel features encode (so audio predicts the mouth);
- expression coefficients are an exact linear function of the AU delta (``exp = P @ dAU``), so
  a linear exp -> AU regressor is exact and the ground truth is known.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lesbench import schema

EMOTIONS = ("angry", "happy", "sad", "surprised")
LEVEL_SCALE = {1: 0.35, 2: 0.68, 3: 1.0}
NORM = {"angry": 0.45, "happy": 0.6, "sad": 0.4, "surprised": 0.55}
K_ID = 6
K_EXP = 20
N_MEL = 80
AU_INDEX = {name: i for i, name in enumerate(schema.AU_NAMES)}
MOUTH_OPEN_AUS = {"AU25": 0.5, "AU26": 0.35, "AU10": 0.05}


def true_directions() -> dict[str, np.ndarray]:
    """Unit directions built from the FACS prototypes (+ a small deterministic spill-over)."""
    rng = np.random.default_rng(123)
    out = {}
    for e in EMOTIONS:
        d = 0.08 * rng.random(len(schema.AU_NAMES))
        for au in schema.FACS_PROTOTYPES[e]:
            d[AU_INDEX[au]] = 1.0
        out[e] = d / np.linalg.norm(d)
    return out


def mouth_signal(n: int, rng: np.random.Generator, fps: int = 25) -> np.ndarray:
    """Mouth openness in [0, 1]: syllable-like bumps (~4 Hz) with pauses."""
    t = np.arange(n) / fps
    phase = rng.uniform(0, 2 * np.pi)
    rate = rng.uniform(3.0, 5.0)
    base = 0.5 + 0.5 * np.sin(2 * np.pi * rate * t + phase)
    gate = (np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)) > -0.6).astype(float)
    return base * gate


def mel_from_mouth(mouth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(T, 80) log-mel-like features whose energy pattern follows the mouth openness."""
    freqs = np.linspace(0, 1, N_MEL)
    template = np.exp(-((freqs - 0.25) ** 2) / 0.02) + 0.5 * np.exp(-((freqs - 0.6) ** 2) / 0.05)
    mel = -8.0 + 6.0 * mouth[:, None] * template[None, :] + 0.3 * rng.standard_normal((len(mouth), N_MEL))
    return mel.astype(np.float32)


def _face_model(rng: np.random.Generator):
    """A lesbench FaceModel with orthonormal random identity/expression bases."""
    from lesbench.extract.face_model import STABLE_LANDMARKS, FaceModel

    n = schema.N_LANDMARKS
    mean = rng.normal(0, 1, (n, 3)) * np.array([0.6, 0.7, 0.3])
    q = np.linalg.qr(rng.normal(size=(n * 3, K_ID + K_EXP)))[0].T
    return FaceModel(
        mean=mean, id_basis=q[:K_ID], exp_basis=q[K_ID:], id_std=np.ones(K_ID), exp_std=np.ones(K_EXP),
        reference=mean[list(STABLE_LANDMARKS)], provenance={"synthetic": True},
    )


def build_synthetic_prepared(
    out: str | Path,
    *,
    n_train: int = 6,
    n_heldout: int = 2,
    sentences: int = 2,
    n_frames: int = 40,
    seed: int = 0,
    noise: float = 0.02,
    one_sided: str | None = None,
) -> dict:
    """Write a synthetic prepared data set to ``out``; return the ground truth used.

    ``one_sided``: also write the per-side AU columns (action-units stage 2); every AU moves
    both sides alike, except the emotion named here, whose delta is all on the ``_L`` side
    (twice the averaged delta on ``_L``, none on ``_R``, so the average is unchanged).
    """
    out = Path(out)
    paths = schema.dataset_paths(out)
    for key in ("frames", "audio", "coeffs"):
        paths[key].mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    dirs = true_directions()
    n_au = len(schema.AU_NAMES)
    # exp = P @ dAU (K_EXP x 17, full column rank) so exp -> AU is exactly linear.
    P = np.linalg.qr(rng.normal(size=(K_EXP, K_EXP)))[0][:, :n_au] * 3.0
    fm = _face_model(rng)
    fm.save(paths["face_model"])

    speakers = [f"M{100 + i:03d}" for i in range(n_train + n_heldout)]
    split_of = {s: ("train" if i < n_train else "test") for i, s in enumerate(speakers)}
    truth: dict = {"directions": dirs, "P": P, "neutral": {}, "gain": {}, "speakers": split_of}
    rows = []
    mouth_vec = np.zeros(n_au)
    for au, w in MOUTH_OPEN_AUS.items():
        mouth_vec[AU_INDEX[au]] = w
    for s in speakers:
        neutral = 0.1 + 0.05 * rng.random(n_au)
        neutral[AU_INDEX["AU25"]] = 0.1
        gain = rng.uniform(0.9, 1.1)
        ident = rng.normal(0, 1, K_ID).astype(np.float32)
        truth["neutral"][s] = neutral
        truth["gain"][s] = gain
        combos = [("neutral", 1)] + [(e, k) for e in EMOTIONS for k in (1, 2, 3)]
        for emotion, level in combos:
            for j in range(sentences):
                sentence = f"{j + 1:03d}"
                cid = schema.make_clip_id(s, "front", emotion, level, sentence)
                mouth = mouth_signal(n_frames, rng)
                emo = np.zeros(n_au) if emotion == "neutral" else gain * LEVEL_SCALE[level] * NORM[emotion] * dirs[emotion]
                blink = np.zeros(n_frames)
                blink[rng.integers(0, n_frames, 2)] = 0.8
                d_au = emo[None, :] + (mouth[:, None] - 0.5) * mouth_vec[None, :]
                d_au = d_au + noise * rng.standard_normal((n_frames, n_au))
                aus = np.clip(neutral[None, :] + d_au, 0, 1)
                aus[:, AU_INDEX["AU45"]] = np.clip(neutral[AU_INDEX["AU45"]] + blink, 0, 1)
                exp = (aus - neutral[None, :]) @ P.T  # (T, K_EXP)
                mel = mel_from_mouth(mouth, rng)
                sided = None
                if one_sided is not None:
                    left = aus + (emo[None, :] if emotion == one_sided else 0.0)
                    right = aus - (emo[None, :] if emotion == one_sided else 0.0)
                    sided = {f"{au}_{side}": (left if side == "L" else right)[:, AU_INDEX[au]]
                             for au in schema.AU_NAMES for side in ("L", "R")}
                _write_clip(paths, cid, aus, exp, ident, mel, fm, rng, sided)
                rows.append(
                    dict(
                        clip_id=cid, speaker=s, view="front", emotion=emotion, level=level,
                        sentence=sentence, split=split_of[s], video_path="", audio_path="",
                        status="ok", error="", n_frames=n_frames, src_fps=25.0,
                        duration_s=n_frames / 25.0, face_ratio=1.0,
                    )
                )
    # one failed clip: it must be ignored, not crash anything
    rows.append(
        dict(
            clip_id="M100_front_happy_3_999", speaker="M100", view="front", emotion="happy", level=3,
            sentence="999", split="train", video_path="", audio_path="", status="failed",
            error="truncated", n_frames=0, src_fps=0.0, duration_s=0.0, face_ratio=0.0,
        )
    )
    pq.write_table(pa.Table.from_pylist(rows), paths["clips"])
    paths["dataset"].write_text(
        json.dumps({"format_version": schema.DATASET_FORMAT_VERSION, "fps": 25, "sample_rate": 16000,
                    "source_root": "synthetic", "extractors": {}}, indent=1)
    )
    return truth


def _fsl(values: np.ndarray, width: int) -> pa.Array:
    flat = pa.array(np.ascontiguousarray(values, np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, width)


def _write_clip(paths, cid, aus, exp, ident, mel, fm, rng, sided=None) -> None:
    n = len(aus)
    frame = np.arange(n, dtype=np.int32)
    t = frame / 25.0
    pose = {
        "yaw": rng.normal(0, 2, n), "pitch": rng.normal(0, 2, n), "roll": rng.normal(0, 1, n),
        "tx": np.full(n, 128.0), "ty": np.full(n, 128.0), "tz": np.zeros(n), "scale": np.ones(n),
    }
    shape = fm.reconstruct(ident, exp)
    lm = shape * 100.0
    lm[..., :2] += 128.0
    frames = {
        "clip_id": pa.array([cid] * n), "frame": pa.array(frame), "t": pa.array(t),
        "face": pa.array(np.ones(n, bool)),
        "bbox": _fsl(np.tile([40, 40, 216, 216], (n, 1)), 4),
        **{k: pa.array(v.astype(np.float32)) for k, v in pose.items()},
        "landmarks": _fsl(lm.reshape(n, -1), schema.N_LANDMARKS * 3),
        "blendshapes": _fsl(np.zeros((n, 52)), 52),
        **{au: pa.array(aus[:, i].astype(np.float32)) for i, au in enumerate(schema.AU_NAMES)},
        **{name: pa.array(v.astype(np.float32)) for name, v in (sided or {}).items()},
    }
    pq.write_table(pa.table(frames), paths["frames"] / f"{cid}.parquet")
    audio = {
        "clip_id": pa.array([cid] * n), "frame": pa.array(frame), "t": pa.array(t),
        "mel": _fsl(mel, N_MEL), "mfcc": _fsl(np.zeros((n, 39)), 39),
        "energy": pa.array(np.exp(mel.mean(1)).astype(np.float32)),
    }
    pq.write_table(pa.table(audio), paths["audio"] / f"{cid}.parquet")
    coeffs = {
        "clip_id": pa.array([cid] * n), "frame": pa.array(frame),
        "id": pa.array([ident.tolist()] * n, pa.list_(pa.float32())),
        "exp": pa.array(exp.astype(np.float32).tolist(), pa.list_(pa.float32())),
        **{k: pa.array(v.astype(np.float32)) for k, v in pose.items()},
    }
    pq.write_table(pa.table(coeffs), paths["coeffs"] / f"{cid}.parquet")


#: A small, fast training configuration for tests (every other value: the packaged default).
TINY_TRAIN = {
    "model": {"d_model": 32, "n_heads": 4, "n_layers": 1, "audio_layers": 2, "dropout": 0.0},
    # the synthetic tracks are exact (no face-tracker lag to compensate)
    "data": {"window": 24, "windows_per_clip": 4, "batch_size": 16, "max_val_clips": 24, "target_lead": 0.0},
    "train": {"epochs": 10, "lr": 0.003, "lr_min": 0.0005, "threads": 1},
}

_CACHE: dict = {}


def trained_synthetic_run() -> tuple[Path, Path, dict]:
    """(prepared, run, truth): a synthetic data set and a tiny LES-Talker trained on it, made once
    per test process (shared by test_model.py and test_generate.py)."""
    if "run" not in _CACHE:
        import tempfile

        from lesbench.model.train import train

        root = Path(tempfile.mkdtemp(prefix="lesbench-synth-"))
        truth = build_synthetic_prepared(root / "prepared", n_train=4, n_heldout=2, sentences=1)
        result = train(root / "prepared", root / "run", overrides=TINY_TRAIN, progress=False)
        _CACHE["run"] = (root / "prepared", root / "run", truth, result.history)
    prepared, run, truth, _ = _CACHE["run"]
    return prepared, run, truth


def trained_history() -> list[dict]:
    trained_synthetic_run()
    return _CACHE["run"][3]
