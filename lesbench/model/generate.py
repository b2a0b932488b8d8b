"""Generating and editing talking heads with a trained LES-Talker run.

    from lesbench.model.generate import generate
    generate("runs/les", "photo.png", "speech.wav", "happy.mp4", emotion="happy", level=0.6)
    generate("runs/les", "photo.png", "speech.wav", "brows.mp4", emotion="angry", units=["brows"])
    generate("runs/les", "photo.png", "speech.wav", "mix.mp4", mix={"happy": 0.5, "surprised": 0.5})
    generate("runs/les", "photo.png", "speech.wav", "ref.mp4", emotion_from="reference.mp4")
    generate("runs/les", "photo.png", "speech.wav", "ref.mp4", emotion_from="smiling.jpg")  # a still image
    generate("runs/les", "photo.png", "speech.wav", "text.mp4", emotion_text="slightly sad, very surprised")

Lower level (what tests and ``lesbench evaluate`` use)::

    gen = load_generator("runs/les")
    req = gen.request(emotion="happy", level=0.5, units=["mouth_upper"])
    exp, pose = gen.predict(mel, ident, req)            # (T, K_exp), (T, 3)
    frames = gen.generate(source_image=img, audio=samples, emotion="happy", level=0.5)

When the run folder holds a trained refiner (``RUN/refine.safetensors``, from ``lesbench
train-refine`` or ``lesbench train --refine on``) every warped frame goes through it
(:mod:`lesbench.model.refine`); ``refine=False`` turns it off (``--no-refine``), ``refine=True``
requires it. Without a refiner file the output is the plain warp, as before.

Levels are LES levels: a fraction of the MEAD level-3 expression (0 = neutral, 1 = level 3;
values above 1 extrapolate). ``mead_level=k`` asks for the LES level where MEAD level k lies
(the LES's fitted level scale).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from lesbench import io, schema
from lesbench.errors import LesbenchError, MediaError
from lesbench.les.lexicon import parse_emotion_text
from lesbench.les.prepared import read_clip_aus
from lesbench.les.space import LESError, LinearEmotionSpace, parse_mix, parse_units
from lesbench.model.config import config_from_dict
from lesbench.model.refine_net import REFINE_FILE, load_refiner
from lesbench.model.renderer import IMAGE_SUFFIXES, prepare_source, read_source_image, render_frames
from lesbench.model.runs import META_FILE, MODEL_FILE, load_run_weights, resolve_device
from lesbench.model.train import build_model
from lesbench.extract.audio_features import audio_features
from lesbench.extract.face import FaceTracker, analyze_video
from lesbench.extract.face_model import FaceModel
from lesbench.prepared import PreparedDataset
from lesbench.threads import torch_threads


@dataclass
class LESRequest:
    """What to generate: LES weights (emotion -> level), units, offsets and the resulting vectors."""

    weights: dict[str, float]
    units: list[str] | None
    offsets: dict[str, float]
    les_vector: np.ndarray  # (17,) AU delta from neutral
    cond: np.ndarray  # (C,) the model's condition input
    description: str = ""


@dataclass
class GenerateResult:
    path: Path | None
    n_frames: int
    request: LESRequest
    exp: np.ndarray
    pose: np.ndarray
    source_aus: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


class Generator:
    """A loaded run: model, LES, face model (and its refiner, when the run has one). Cheap to
    call repeatedly (one FaceTracker kept).

    ``refine``: None = use ``RUN/refine.safetensors`` when present; False = never; True = require
    it (error when missing).
    """

    def __init__(self, run_dir: str | Path, device: str | None = None, refine: bool | None = None) -> None:
        import torch

        run = Path(run_dir)
        if run.is_file():  # a checkpoint file inside a run folder
            run = run.parent
        meta_path = run / META_FILE
        if not meta_path.is_file() or not (run / MODEL_FILE).is_file():
            raise LesbenchError(f"{run}: not a LES-Talker run (needs {META_FILE} and {MODEL_FILE}; run `lesbench train`)")
        self.run_dir = run
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("format") != "lesbench-les-talker":
            raise LesbenchError(f"{meta_path}: not a LES-Talker checkpoint")
        self.config = config_from_dict(self.meta["config"], str(meta_path))
        self.condition = self.config.condition
        self.device = resolve_device(device)
        dims = self.meta["dims"]
        self.model = build_model(self.config, n_mel=dims["n_mel"], n_exp=dims["n_exp"], n_id=dims["n_id"], n_cond=dims["n_cond"])
        tensors, digest = load_run_weights(run, MODEL_FILE)  # sha256 checked against checkpoint.json
        try:
            self.model.load_state_dict(tensors)
        except RuntimeError as exc:
            raise LesbenchError(f"{run / MODEL_FILE}: weights do not fit the architecture in {meta_path} "
                                f"({str(exc).splitlines()[0]})") from None
        self.model.to(self.device).eval()
        self.weights_sha256 = digest
        self.revision = digest[:16]
        self.space = LinearEmotionSpace.load(run / "les")
        self.face_model = FaceModel.load(run / schema.FACE_MODEL)
        self.emotions: list[str] = list(self.meta["emotions"])
        self._tracker = None
        self._torch = torch
        self.refiner = self._load_refiner(refine)
        #: sha256 prefix of the refiner's weights (None: plain warp); ``revision`` stays the talker's
        self.refine_revision = self.refiner.revision if self.refiner is not None else None

    def _load_refiner(self, refine: bool | None):
        if refine is False:
            return None
        path = self.run_dir / REFINE_FILE
        if refine is None and not path.is_file():
            return None
        return load_refiner(path, device=str(self.device))  # a missing (refine=True) or corrupt file raises, naming it

    def refiner_for(self, refine: bool | None):
        """The refiner a call uses: None -> the run's (if any), False -> none, True -> required."""
        if refine is False:
            return None
        if refine is True and self.refiner is None:
            self.refiner = self._load_refiner(True)
            self.refine_revision = self.refiner.revision
        return self.refiner

    # -- requests -------------------------------------------------------------------------------
    def request(
        self,
        emotion: str | None = None,
        level: float | None = None,
        *,
        mead_level: int | None = None,
        mix: Mapping[str, float] | str | None = None,
        emotion_from: str | Path | np.ndarray | None = None,
        emotion_from_neutral: np.ndarray | str | Path | None = None,
        units: Sequence[str] | str | None = None,
        offsets: Mapping[str, float] | None = None,
        emotion_text: str | None = None,
    ) -> LESRequest:
        """Build the LES vector and the model's condition for one request.

        Exactly one of ``emotion`` / ``mix`` / ``emotion_from`` / ``emotion_text`` (or none:
        neutral). ``emotion_from``: measured AUs (T, 17) or (17,), a video file, a still image
        (``renderer.IMAGE_SUFFIXES``) or a prepared ``frames/{clip}.parquet`` — mapped into LES
        with :meth:`LinearEmotionSpace.to_les` against ``emotion_from_neutral`` (AUs (17,), or a
        neutral clip or photo of the same person; default: the LES's global neutral reference).
        ``emotion_text``: words such as ``"slightly sad, very surprised"``
        (:func:`lesbench.les.lexicon.parse_emotion_text`) -> a mix.
        """
        given = [x is not None for x in (emotion, mix, emotion_from, emotion_text)]
        if sum(given) > 1:
            raise LESError("give only one of emotion, mix, emotion_from and emotion_text")
        if isinstance(units, str):
            units = parse_units(units)
        units = list(units) if units else None
        if emotion is not None:
            if emotion == "neutral":
                weights = {}
            else:
                if emotion not in self.space.directions:
                    raise LESError(f"emotion {emotion!r} is not in this run's LES; known: {', '.join(self.space.emotions)}")
                if mead_level is not None:
                    lvl = self.space.directions[emotion].level_fraction(int(mead_level))
                    if not np.isfinite(lvl):
                        lvl = {1: 1 / 3, 2: 2 / 3, 3: 1.0}.get(int(mead_level), 1.0)
                else:
                    lvl = 1.0 if level is None else float(level)
                    if not -1.0 <= lvl <= 2.0:
                        raise LESError(
                            f"level {lvl:g}: LES levels are fractions of the MEAD level-3 expression "
                            "(0 = neutral, 1 = level 3); use mead_level= for MEAD levels 1-3"
                        )
                weights = {emotion: float(lvl)}
        elif mix is not None:
            weights = parse_mix(mix) if isinstance(mix, str) else {k: float(v) for k, v in mix.items()}
        elif emotion_text is not None:
            weights = parse_emotion_text(emotion_text)
            missing = [e for e in weights if e not in self.space.directions]
            if missing:
                raise LESError(f"--emotion-text {emotion_text!r}: {', '.join(missing)} not in this run's LES; "
                               f"known: {', '.join(self.space.emotions)}")
        elif emotion_from is not None:
            aus = self._aus_from(emotion_from)
            neutral = emotion_from_neutral
            if neutral is not None and not isinstance(neutral, np.ndarray):  # a neutral clip of the same person
                neutral = self._aus_from(neutral).mean(0)
            weights = self.space.to_les(aus, neutral)
        else:
            weights = {}
        weights = {k: v for k, v in weights.items() if k != "neutral"}
        les_vector = self.space.vector(weights, units=units, offsets=offsets)
        if self.condition == "les":
            cond = les_vector.astype(np.float32)
        elif self.condition == "onehot":
            if units or offsets:
                raise LESError("the one-hot variant cannot edit facial units or AU offsets (it has no LES input)")
            # one-hot label: the emotion(s) asked for, level ignored (a label cannot say how
            # much); a level of 0 asks for no emotion, i.e. the neutral (all-zero) label
            cond = np.zeros(len(self.emotions), np.float32)
            for e, w in weights.items():
                if e in self.emotions and w > 0:
                    cond[self.emotions.index(e)] = 1.0
        else:  # audio-only: no emotion input
            cond = np.zeros(0, np.float32)
        desc = ", ".join(f"{e}={w:.2f}" for e, w in weights.items() if abs(w) >= 0.005) or "neutral"
        if units:
            desc += f" [units: {','.join(units)}]"
        return LESRequest(weights=weights, units=units, offsets=dict(offsets or {}), les_vector=les_vector,
                          cond=cond, description=desc)

    def _aus_from(self, source) -> np.ndarray:
        if isinstance(source, np.ndarray):
            return source
        path = Path(source)
        if path.suffix == ".parquet":
            # a prepared frames table: DATASET/frames/{clip_id}.parquet
            return read_clip_aus(PreparedDataset(path.parent.parent), path.stem)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            # a still image: its one frame's AUs, measured as a clip's frames are
            table = self.tracker.track([read_source_image(path)])
            what = "image"
        else:
            table = analyze_video(path, tracker=self.tracker)
            what = "clip"
        table = table[table["face"].astype(bool)]
        if len(table) == 0:
            raise LesbenchError(f"{path}: no face found in the --emotion-from {what}")
        return table[list(schema.AU_NAMES)].to_numpy(np.float64)

    # -- prediction -----------------------------------------------------------------------------
    def predict(self, mel: np.ndarray, ident: np.ndarray, request: LESRequest) -> tuple[np.ndarray, np.ndarray]:
        """Expression coefficients (T, K_exp) and head-pose motion (T, 3) deg for log-mel (T, 80)."""
        torch = self._torch
        dev = self.device
        m = torch.as_tensor(np.array(mel, np.float32), device=dev)
        i = torch.as_tensor(np.array(ident, np.float32), device=dev)
        c = torch.as_tensor(request.cond, device=dev) if self.condition != "audio-only" else None
        # one CPU thread: the same bytes whatever thread count the caller runs with (float32
        # reductions over 1 or 2 threads differ in the last bits, which can flip a pixel)
        with torch_threads(1 if self.device.type == "cpu" else None):
            exp, pose = self.model.predict(m, i, c)
        return exp.cpu().numpy().astype(np.float64), pose.cpu().numpy().astype(np.float64)

    def predicted_aus(self, exp: np.ndarray, neutral_exp: np.ndarray | None = None) -> np.ndarray:
        """AU delta (T, 17) of coefficients through the run's train-split exp -> AU regressor."""
        a = self.model.au_from_exp.cpu().numpy().astype(np.float64)
        ref = self.model.exp_mean.cpu().numpy() if neutral_exp is None else neutral_exp
        return (np.asarray(exp) - ref) @ a

    @property
    def tracker(self):
        if self._tracker is None:
            self._tracker = FaceTracker()
        return self._tracker

    def close(self) -> None:
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None

    # -- full generation ------------------------------------------------------------------------
    def generate(
        self,
        source_image: np.ndarray | str | Path,
        audio: np.ndarray | str | Path | None,
        emotion: str | None = None,
        level: float | None = None,
        *,
        n_frames: int | None = None,
        sample_rate: int = schema.SAMPLE_RATE,
        seed: int = 0,
        pose_motion: bool = True,
        request: LESRequest | None = None,
        return_result: bool = False,
        refine: bool | None = None,
        **request_kwargs,
    ):
        """Frames (T, 256, 256, 3) uint8 of the source face speaking ``audio``.

        ``audio``: (N,) float32 mono at ``sample_rate`` or a file; ``n_frames`` defaults to the
        audio's length at 25 fps (silence when ``audio`` is None and ``n_frames`` is given).
        ``seed`` is accepted for API symmetry; generation is deterministic. ``refine``: see
        :class:`Generator` (None: the run's refiner when it has one).
        """
        img = read_source_image(source_image)
        samples, sr = self._audio(audio, sample_rate, n_frames)
        t = int(n_frames) if n_frames is not None else int(round(len(samples) / sr * schema.FPS))
        if t < 1:
            raise LesbenchError("audio is shorter than one video frame")
        mel = audio_features(samples, sr=sr, n_frames=t)["mel"]
        req = request or self.request(emotion, level, **request_kwargs)
        source = prepare_source(img, self.face_model, tracker=self.tracker,
                                name=str(source_image) if not isinstance(source_image, np.ndarray) else "source")
        exp, pose = self.predict(mel, source.ident, req)
        ref_exp = None
        if req.units and self.condition == "les":
            # unit edit: landmarks outside the units stay where the unedited (neutral) output has them
            ref_exp, pose = self.predict(mel, source.ident, self.request())
        refiner = self.refiner_for(refine)
        frames = np.stack(list(render_frames(source, self.face_model, exp, pose if pose_motion else None,
                                             ref_exp=ref_exp, units=req.units, refiner=refiner)))
        if return_result:
            return frames, GenerateResult(path=None, n_frames=t, request=req, exp=exp, pose=pose, source_aus=source.aus,
                                          extra={"samples": samples, "sample_rate": sr, "ref_exp": ref_exp,
                                                 "refined": refiner is not None,
                                                 "refine_revision": refiner.revision if refiner is not None else None})
        return frames

    @staticmethod
    def _audio(audio, sample_rate: int, n_frames: int | None) -> tuple[np.ndarray, int]:
        if audio is None:
            if n_frames is None:
                raise LesbenchError("no audio and no n_frames: nothing to drive the face")
            return np.zeros(int(n_frames) * schema.HOP, np.float32), schema.SAMPLE_RATE
        if isinstance(audio, np.ndarray):
            return np.asarray(audio, np.float32).reshape(-1), int(sample_rate)
        try:  # a video: its audio as heard with its first frame
            return io.read_audio_for_video(audio, sr=schema.SAMPLE_RATE), schema.SAMPLE_RATE
        except MediaError as exc:
            if exc.kind != "no_video_stream":
                raise
        return io.read_audio(audio, sr=schema.SAMPLE_RATE), schema.SAMPLE_RATE


def load_generator(checkpoint: str | Path, data: str | Path | None = None, device: str | None = None,
                   refine: bool | None = None) -> Generator:
    """Load a run folder (or a file inside it). ``data`` is accepted for API symmetry;
    ``refine`` as in :class:`Generator`."""
    return Generator(checkpoint, device=device, refine=refine)


def generate(
    checkpoint: str | Path,
    source: str | Path | np.ndarray,
    audio: str | Path,
    out: str | Path,
    *,
    emotion: str | None = None,
    level: float | None = None,
    mead_level: int | None = None,
    mix: Mapping[str, float] | str | None = None,
    emotion_from: str | Path | None = None,
    emotion_from_neutral: str | Path | np.ndarray | None = None,
    units: Sequence[str] | str | None = None,
    offsets: Mapping[str, float] | None = None,
    emotion_text: str | None = None,
    pose_motion: bool = True,
    device: str | None = None,
    generator: Generator | None = None,
    refine: bool | None = None,
) -> GenerateResult:
    """Generate ``out`` (mp4, H.264 + the driving audio as AAC). See the module docstring.
    ``refine``: None = the run's refiner when it has one, False = plain warp, True = required."""
    gen = generator or Generator(checkpoint, device=device, refine=refine)
    try:
        req = gen.request(emotion, level, mead_level=mead_level, mix=mix, emotion_from=emotion_from,
                          emotion_from_neutral=emotion_from_neutral, units=units, offsets=offsets,
                          emotion_text=emotion_text)
        frames, result = gen.generate(source, audio, request=req, pose_motion=pose_motion, return_result=True,
                                      refine=refine)
        path = io.write_video(out, frames, fps=schema.FPS, audio=result.extra["samples"], sr=result.extra["sample_rate"])
        result.path = Path(path)
        return result
    finally:
        if generator is None:
            gen.close()
