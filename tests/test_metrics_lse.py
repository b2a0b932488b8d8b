"""LSE-C / LSE-D: the SyncNet v2 computation, checked with random weights against numpy and
against the syncnet-python package (syncnet_python's code: SyncNetInstance, its crop, S3FD)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lesbench.metrics.base import MetricUnavailable  # noqa: E402
from lesbench.metrics.lse import LSE  # noqa: E402
from lesbench.metrics.lse_crops import crop_face, crops_for_syncnet, face_track, follow_face  # noqa: E402
from lesbench.metrics.lse_mfcc import syncnet_mfcc  # noqa: E402
from lesbench.metrics.lse_model import SyncNetScorer, build_syncnet, load_syncnet_weights  # noqa: E402
from lesbench.metrics.lse_offsets import lse_from_embeddings, median_filter, offset_distances  # noqa: E402
from lesbench.metrics.lse_s3fd import S3FDDetector, load_face_detector  # noqa: E402


def numpy_distances(v: np.ndarray, a: np.ndarray, vshift: int) -> np.ndarray:
    """Independent reference: d[i, j] = || v_i - a_{i + j - vshift} + 1e-6 ||, a = 0 outside."""
    n, dim = v.shape
    d = np.zeros((n, 2 * vshift + 1))
    for i in range(n):
        for j in range(2 * vshift + 1):
            k = i + j - vshift
            ak = a[k] if 0 <= k < n else np.zeros(dim)
            d[i, j] = np.sqrt(((v[i] - ak + 1e-6) ** 2).sum())
    return d


def _save_sharp_random_s3fd(net, tmp_path: Path) -> Path:
    """Save a randomly initialised S3FD as ``sfd_face.pth``, its class scores sharpened so that
    some boxes pass the 0.9 confidence threshold."""
    with torch.no_grad():
        for layer in net.conf:
            layer.weight.mul_(20.0)
            layer.bias.zero_()
    path = tmp_path / "sfd_face.pth"
    torch.save(net.state_dict(), path)
    return path


def test_hand_computed_distances():
    # 3 windows, 2-d embeddings, vshift 1: distances written out by hand (eps ignored, 1e-6)
    v = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    a = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    d = offset_distances(v, a, vshift=1)
    expected = np.array([
        [0.0, 0.0, 1.0],                 # v0 vs (pad, a0, a1)
        [1.0, 0.0, np.sqrt(5.0)],        # v1 vs (a0, a1, a2)
        [np.sqrt(5.0), 0.0, 2.0],        # v2 vs (a1, a2, pad)
    ])
    np.testing.assert_allclose(d, expected, atol=1e-5)
    r = lse_from_embeddings(v, a, vshift=1)
    mdist = expected.mean(0)  # [(0+1+sqrt5)/3, 0, (1+sqrt5+2)/3]
    assert r.lse_d == pytest.approx(0.0, abs=1e-5)
    assert r.lse_c == pytest.approx(np.median(mdist) - 0.0, abs=1e-5)
    assert r.offset == 0


def test_delayed_audio_embeddings_give_positive_offset():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 8))
    v = base[5:35]
    a = base[2:32]  # a[i + 3] == v[i]: the audio of frame i arrives 3 windows later
    r = lse_from_embeddings(v, a, vshift=5)
    assert r.offset == 3
    np.testing.assert_allclose(r.dists, numpy_distances(v, a, 5), rtol=1e-5, atol=1e-5)
    assert r.lse_d == pytest.approx(numpy_distances(v, a, 5).mean(0).min(), rel=1e-5)


def test_mfcc_matches_python_speech_features():
    psf = pytest.importorskip("python_speech_features")
    rng = np.random.default_rng(1)
    audio = (np.sin(np.arange(16000) * 0.05) * 0.3 + rng.normal(0, 0.05, 16000)).astype(np.float32)
    audio[4000:6000] = 0.0  # digital silence: int16 zeros give log(eps) energy, as in the reference
    ours = syncnet_mfcc(audio)
    as_int16 = np.clip(np.rint(audio * 32768.0), -32768, 32767).astype(np.int16)  # a 16-bit WAV's samples
    ref = psf.mfcc(as_int16, 16000)
    assert ours.shape == ref.shape == (99, 13)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(syncnet_mfcc(as_int16), ref, rtol=1e-6, atol=1e-6)
    assert ref[30, 0] == pytest.approx(np.log(np.finfo(float).eps))  # a silent frame


def test_mfcc_frame_count():
    assert syncnet_mfcc(np.zeros(16000, np.float32)).shape == (99, 13)  # 1 + ceil((16000-400)/160)
    assert syncnet_mfcc(np.zeros(300, np.float32)).shape == (1, 13)


def test_architecture_matches_syncnet_v2_state_dict_layout():
    sd = build_syncnet().state_dict()
    assert tuple(sd["netcnnaud.0.weight"].shape) == (64, 1, 3, 3)
    assert tuple(sd["netcnnaud.18.weight"].shape) == (512, 256, 5, 4)
    assert tuple(sd["netcnnlip.0.weight"].shape) == (96, 3, 5, 7, 7)
    assert tuple(sd["netcnnlip.18.weight"].shape) == (512, 256, 1, 6, 6)
    assert tuple(sd["netfcaud.3.weight"].shape) == (1024, 512)
    assert tuple(sd["netfclip.1.running_mean"].shape) == (512,)
    # 102 tensors in the state dict, 13.6 M parameters (the released file is ~54 MB of float32)
    assert len(sd) == 102
    assert sum(p.numel() for p in build_syncnet().parameters()) == 13_631_616


def test_pipeline_equals_numpy_on_embeddings_with_random_weights(tmp_path):
    rng = np.random.default_rng(0)
    n_frames = 14
    crops = rng.integers(0, 256, size=(n_frames, 224, 224, 3), dtype=np.uint8)
    audio = rng.normal(0, 0.1, n_frames * 640).astype(np.float32)
    scorer = SyncNetScorer(random_init_seed=0, device="cpu")
    v, a = scorer.embeddings(crops, audio)
    assert v.shape == a.shape == (n_frames - 5, 1024)
    # the same embeddings by hand from the network's parts
    model = scorer.model
    mfcc = syncnet_mfcc(audio).T.astype(np.float32)
    with torch.no_grad():
        i = 3
        vid = torch.from_numpy(crops[i:i + 5].astype(np.float32)).permute(3, 0, 1, 2)[None]
        aud = torch.from_numpy(mfcc[None, None, :, 4 * i:4 * i + 20])
        np.testing.assert_allclose(model.forward_video(vid)[0].numpy(), v[i], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(model.forward_audio(aud)[0].numpy(), a[i], rtol=1e-4, atol=1e-4)
    r = scorer.score(crops, audio, vshift=4)
    ref = numpy_distances(v.astype(np.float64), a.astype(np.float64), 4).mean(0)
    assert r.lse_d == pytest.approx(ref.min(), rel=1e-5)
    assert r.lse_c == pytest.approx(np.median(ref) - ref.min(), rel=1e-4, abs=1e-6)
    assert r.offset == int(np.argmin(ref)) - 4
    # a saved state dict loads with weights_only=True and gives the same numbers
    path = tmp_path / "syncnet_v2.model"
    torch.save(model.state_dict(), path)
    again = build_syncnet()
    load_syncnet_weights(again, path)
    again.eval()
    scorer2 = SyncNetScorer(random_init_seed=123, device="cpu")
    scorer2.model = again
    assert scorer2.score(crops, audio, vshift=4).lse_d == pytest.approx(r.lse_d, rel=1e-6)


def test_wrong_file_is_rejected(tmp_path):
    path = tmp_path / "bad.model"
    torch.save({"foo": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="bad.model"):
        load_syncnet_weights(build_syncnet(), path)


def test_missing_weights_is_unavailable_with_instructions(tmp_path, monkeypatch):
    with pytest.raises(MetricUnavailable) as exc:
        LSE(weights_path=tmp_path / "nope" / "syncnet_v2.model")
    assert "syncnet_v2.model" in exc.value.reason
    assert "supply" in exc.value.reason.lower()  # says how to provide the file


def test_crop_geometry():
    frame = np.zeros((300, 300, 3), np.uint8)
    frame[100:200, 100:200] = 255  # the face box: centre (150, 150), half-size 50
    crop = crop_face(frame, 150.0, 150.0, 50.0, crop_scale=0.4, size=140)
    # rows [100, 240) x cols [80, 220): 140 px square, the box at rows 0..100, cols 20..120
    assert crop.shape == (140, 140, 3)
    assert crop[:100, 20:120].min() == 255 and crop[100:, :].max() == 0
    # beyond the image: grey 110 padding (a face at the top-left corner)
    corner = crop_face(frame, 10.0, 10.0, 50.0, crop_scale=0.4, size=140)
    assert (corner[:20, :20] == 110).all()


def test_median_filter_is_scipy_medfilt():
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(3)
    x = rng.normal(100, 20, 40)
    for k in (1, 9, 13):
        np.testing.assert_array_equal(median_filter(x, k), signal.medfilt(x, k))
    # zero padding: the first value of a 13-tap filter is the smallest of the first 7 (6 zeros)
    assert median_filter(x, 13)[0] == np.sort(x[:7])[0]


def test_face_track_interpolates_gaps_and_trims_ends():
    nan = [np.nan] * 4
    boxes = np.array([nan, [0, 0, 20, 10], nan, nan, [30, 0, 50, 40], nan] + [[30, 0, 50, 40]] * 14 + [nan])
    track = face_track(boxes, smooth=1)  # no smoothing: the raw track
    assert track.first == 1 and len(track) == 19 and track.n_interpolated == 3
    # frames 2 and 3: box corners a third and two thirds of the way from box 1 to box 4, i.e.
    # (10, 0, 30, 20) and (20, 0, 40, 30): half-sizes max(20, 20)/2 and max(20, 30)/2
    np.testing.assert_allclose(track.cx[:4], [10, 20, 30, 40])
    np.testing.assert_allclose(track.cy[:4], [5, 10, 15, 20])
    np.testing.assert_allclose(track.size[:4], [10, 10, 15, 20])
    smoothed = face_track(boxes)
    np.testing.assert_array_equal(smoothed.size, median_filter(track.size, 13))


def test_follow_face_keeps_the_first_face():
    a, b = [10, 10, 50, 50, 0.99], [100, 100, 140, 140, 0.999]
    dets = [np.array([a]), np.array([b, [12, 10, 52, 50, 0.95]]), np.zeros((0, 5)), np.array([b])]
    out = follow_face(dets)
    np.testing.assert_array_equal(out[0], a[:4])
    np.testing.assert_array_equal(out[1], [12, 10, 52, 50])  # not the better-scored other face
    assert np.isnan(out[2]).all() and np.isnan(out[3]).all()  # the other face never joins the track


def test_crops_for_syncnet_uses_the_smoothed_track():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (16, 120, 160, 3), dtype=np.uint8)
    boxes = np.array([[40 + t, 30, 100 + t, 95] for t in range(16)], float)
    crops, track = crops_for_syncnet(frames, boxes)
    assert crops.shape == (16, 224, 224, 3) and track.first == 0
    i = 8
    expected = crop_face(np.ascontiguousarray(frames[i][..., ::-1]), track.cx[i], track.cy[i], track.size[i])
    np.testing.assert_array_equal(crops[i], expected)  # BGR crop of the smoothed box


# --------------------------------------------------------------------------------------------
# Against the syncnet-python package
# --------------------------------------------------------------------------------------------


@pytest.fixture
def syncnet_python(monkeypatch):
    """syncnet-python's modules, imported without running its ``__init__``: that imports the
    whole video pipeline (ffmpeg-python, scenedetect; torchvision is a declared dependency),
    none of which the modules compared here need. A bare package object stands in for it."""
    spec = importlib.util.find_spec("syncnet_python")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("syncnet-python not installed (`pip install --no-deps syncnet-python==0.2.3`)")
    pytest.importorskip("python_speech_features")
    pkg = types.ModuleType("syncnet_python")
    pkg.__path__ = list(spec.submodule_search_locations)
    before = set(sys.modules)
    monkeypatch.setitem(sys.modules, "syncnet_python", pkg)
    yield pkg
    for name in set(sys.modules) - before:
        if name.startswith("syncnet_python."):
            del sys.modules[name]


def _random_reference_syncnet(path: Path, seed: int = 0) -> None:
    """A random syncnet_python SyncNet saved as syncnet_v2.model is: a state dict of tensors in
    torch's pre-1.6 serialisation, without the num_batches_tracked entries (the released file
    predates them). Running statistics are random too, so that eval mode is not the identity."""
    model_mod = importlib.import_module("syncnet_python.SyncNetModel")
    torch.manual_seed(seed)
    net = model_mod.S()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, buf in net.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, path, _use_new_zipfile_serialization=False)


def _synthetic_crop_dir(folder: Path, n_frames: int, n_samples: int, seed: int = 0) -> None:
    """JPEG crops 000001.jpg... (a mouth opening and closing) and a 16-bit 16 kHz audio.wav, as
    syncnet_python's pipeline leaves them for SyncNetInstance.evaluate."""
    import cv2
    from scipy.io import wavfile

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:224, 0:224]
    for t in range(n_frames):
        img = np.empty((224, 224, 3), np.int64)
        img[...] = (40 + 3 * t, 90, 160)
        img[(xx - 112) ** 2 / 60 ** 2 + (yy - 150) ** 2 / (20 + 15 * np.sin(t / 3)) ** 2 < 1] = (30, 20, 120)
        img = np.clip(img + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"{t + 1:06d}.jpg"), img)
    t = np.arange(n_samples) / 16000
    audio = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * t * 25 / 6)) + rng.normal(0, 0.02, n_samples)
    audio[:3000] = 0.0  # digital silence at the start
    wavfile.write(folder / "audio.wav", 16000, (audio * 32767).astype(np.int16))


def _reference_evaluate(folder: Path, weights: Path, vshift: int = 15) -> tuple[int, float, float, np.ndarray]:
    """syncnet_python's SyncNetInstance.evaluate on ``folder``: (AV offset, confidence, min
    distance, the framewise confidence it prints to 3 decimals)."""
    inst_mod = importlib.import_module("syncnet_python.SyncNetInstance")
    model_mod = importlib.import_module("syncnet_python.SyncNetModel")
    inst = inst_mod.SyncNetInstance(net=model_mod.S(), device="cpu")
    inst.loadParameters(str(weights))
    opt = types.SimpleNamespace(tmp_dir=str(folder), batch_size=20, vshift=vshift)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        offset, conf, dist = inst.evaluate(opt)
    printed = out.getvalue()
    framewise = printed.split("Framewise conf:")[1].split("AV offset")[0]
    return offset, conf, dist, np.array([float(v) for v in re.findall(r"-?\d+\.\d+", framewise)])


def test_lse_equals_syncnet_python_on_the_same_crops(syncnet_python, tmp_path):
    import cv2
    from scipy.io import wavfile

    weights = tmp_path / "syncnet_v2.model"
    _random_reference_syncnet(weights)
    n_frames = 27  # 22 windows: two batches of 20, as both sides batch
    _synthetic_crop_dir(tmp_path, n_frames, n_frames * 640 + 300)
    ref_offset, ref_conf, ref_dist, ref_framewise = _reference_evaluate(tmp_path, weights)

    crops = np.stack([cv2.imread(str(p)) for p in sorted(tmp_path.glob("*.jpg"))])  # BGR, as evaluate reads them
    _, pcm = wavfile.read(tmp_path / "audio.wav")
    scorer = SyncNetScorer(weights=weights, device="cpu")  # through lesbench.weights, weights_only=True
    ours = scorer.score(crops, pcm.astype(np.float32) / 32768.0)  # float audio, as lesbench.io gives it
    assert abs(ours.lse_c - ref_conf) < 1e-3
    assert abs(ours.lse_d - ref_dist) < 1e-3
    # A random network's embeddings barely change over a clip, so the best offset is where the
    # zero padding helps most: one end of the range, which end depending on the clip. That
    # still tells the two signs apart (syncnet_python: vshift - argmin; lesbench: argmin - vshift).
    assert ref_offset != 0
    assert ours.av_offset == ref_offset and ours.offset == -ref_offset
    assert ours.framewise_conf.shape == ref_framewise.shape == (n_frames - 5,)
    np.testing.assert_allclose(ours.framewise_conf, ref_framewise, atol=1e-3)
    gap = np.sort(ours.mdist)[1] - ours.mdist.min()
    assert gap > 1e-4  # the best offset is not a near-tie, so equal offsets mean something
    assert ref_conf > 1e-3 and ref_dist > 1.0


def test_s3fd_equals_syncnet_python(syncnet_python, tmp_path):
    import cv2

    nets = importlib.import_module("syncnet_python.detectors.s3fd.nets")
    s3fd = importlib.import_module("syncnet_python.detectors.s3fd")
    torch.manual_seed(0)
    net = nets.S3FDNet(device="cpu")
    path = _save_sharp_random_s3fd(net, tmp_path)
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (360, 480, 3)).astype(np.uint8), (7, 7), 2)
    ref = s3fd.S3FD(net=net, device="cpu").detect_faces(image, conf_th=0.9, scales=[0.25])
    ours = S3FDDetector(path, device="cpu").detect(image)
    assert len(ref) >= 5 and ours.shape == ref.shape
    np.testing.assert_allclose(ours[:, :4], ref[:, :4], atol=1e-3)
    np.testing.assert_allclose(ours[:, 4], ref[:, 4], atol=1e-6)


def test_crop_equals_syncnet_python(syncnet_python, tmp_path, monkeypatch):
    """The pipeline's _crop on the same frames and track: its median-filtered boxes, padding and
    resize. Its module imports ffmpeg-python and scenedetect at the top (used elsewhere in it):
    empty stand-ins take their place here; the crops it writes are caught before the lossy
    XVID encoder and the ffmpeg calls that mux audio are replaced by no-ops."""
    import cv2

    for name in ("ffmpeg", "scenedetect", "scenedetect.video_manager"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    for attr in ("ContentDetector", "SceneManager", "StatsManager"):
        monkeypatch.setattr(sys.modules["scenedetect"], attr, None, raising=False)
    monkeypatch.setattr(sys.modules["scenedetect.video_manager"], "VideoManager", None, raising=False)
    pipeline = importlib.import_module("syncnet_python.syncnet_pipeline")

    written: list[np.ndarray] = []

    class CatchWriter:
        def __init__(self, path, *args):
            Path(path).touch()  # _crop removes it afterwards

        def write(self, frame):
            written.append(frame.copy())

        def release(self):
            pass

    class Cv2WithCatchWriter(types.ModuleType):  # cv2 for that module only, its writer replaced
        VideoWriter = CatchWriter

        def __getattr__(self, name):
            return getattr(cv2, name)

    monkeypatch.setattr(pipeline, "cv2", Cv2WithCatchWriter("cv2"))
    monkeypatch.setattr(pipeline, "subprocess", types.SimpleNamespace(run=lambda *a, **k: None))

    rng = np.random.default_rng(1)
    n = 30
    frames_rgb = rng.integers(0, 256, (n, 180, 240, 3), dtype=np.uint8)
    paths = []
    for i, f in enumerate(frames_rgb):
        paths.append(str(tmp_path / f"{i:06d}.png"))  # lossless, so both read the same pixels
        cv2.imwrite(paths[-1], f[..., ::-1])
    t = np.arange(n)
    boxes = np.stack([60 + 8 * np.sin(t / 2), 40 + 3 * np.cos(t), 150 + 8 * np.sin(t / 2) + rng.normal(0, 4, n),
                      140 + rng.normal(0, 4, n)], axis=1)
    boxes[0, 0] = -20  # a box leaving the image: the grey padding is used
    ref_obj = object.__new__(pipeline.SyncNetPipeline)
    ref_obj.cfg = pipeline.PipelineConfig()
    ref_obj._crop({"frame": t, "bbox": boxes}, paths, str(tmp_path / "speech.wav"), tmp_path / "cropped" / "00000")
    ours, track = crops_for_syncnet(frames_rgb, boxes, crop_scale=ref_obj.cfg.crop_scale)
    assert len(written) == n and track.first == 0
    np.testing.assert_array_equal(ours, np.stack(written))


# --------------------------------------------------------------------------------------------
# The metric: detector choice, version, recorded weights, the crop it scores
# --------------------------------------------------------------------------------------------


@pytest.fixture
def no_installed_weights(tmp_path, monkeypatch):
    """An empty weights cache, offline, no weight environment variables."""
    monkeypatch.setenv("LESBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LESBENCH_OFFLINE", "1")
    for var in ("LESBENCH_WEIGHT_SYNCNET_V2", "LESBENCH_WEIGHT_SYNCNET_S3FD",
                "LESBENCH_WEIGHTS_SYNCNET_V2", "LESBENCH_WEIGHTS_SYNCNET_S3FD"):
        monkeypatch.delenv(var, raising=False)


def test_metric_names_its_detector_and_records_the_files_it_used(tmp_path, no_installed_weights):
    from lesbench.metrics.lse_s3fd import build_s3fd
    from lesbench.metrics.score import metric_weights as _metric_weights
    from lesbench.weights import file_sha256

    syncnet = tmp_path / "my_syncnet.model"
    torch.manual_seed(0)
    torch.save(build_syncnet().state_dict(), syncnet)
    m = LSE(weights_path=syncnet, device="cpu")
    assert m.version == "syncnet_v2/2+mediapipe"
    assert "S3FD weights not found" in m.describe()["detector"]
    # score's record: the explicitly given file's sha256, not a second resolution by name
    assert _metric_weights(m) == {"syncnet-v2": file_sha256(syncnet)}

    s3fd = tmp_path / "sfd_face.pth"
    torch.save(build_s3fd().state_dict(), s3fd)
    m = LSE(weights_path=syncnet, device="cpu", s3fd_weights_path=s3fd)
    assert m.version == "syncnet_v2/2+s3fd"
    assert _metric_weights(m) == {"syncnet-v2": file_sha256(syncnet), "syncnet-s3fd": file_sha256(s3fd)}
    assert LSE(weights_path=syncnet, device="cpu", s3fd_weights_path=s3fd, detector="mediapipe").version \
        == "syncnet_v2/2+mediapipe"

    with pytest.raises(MetricUnavailable) as exc:
        LSE(weights_path=syncnet, device="cpu", detector="s3fd")
    assert "sfd_face.pth" in exc.value.reason and "supply" in exc.value.reason.lower()
    torch.save({"vgg.0.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"bad\.pth: not an S3FD"):
        S3FDDetector(tmp_path / "bad.pth", device="cpu")
    with pytest.raises(MetricUnavailable, match=r"bad\.pth: not an S3FD"):  # the run's other metrics go on
        LSE(weights_path=syncnet, device="cpu", s3fd_weights_path=tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="unknown face detector 'dlib'"):
        load_face_detector("dlib")


def test_metric_scores_the_track_and_the_audio_under_it(no_installed_weights):
    rng = np.random.default_rng(0)
    n = 14
    frames = rng.integers(0, 256, (n, 120, 160, 3), dtype=np.uint8)
    boxes = np.array([[40 + t, 30, 100 + t, 95] for t in range(n)], float)
    boxes[:2] = np.nan  # no face in the first two frames: the track starts at frame 2
    boxes[6] = np.nan   # one frame without a box inside: interpolated
    audio = rng.normal(0, 0.1, n * 640).astype(np.float32)
    scorer = SyncNetScorer(random_init_seed=0, device="cpu")
    m = LSE(scorer=scorer, detector="mediapipe", vshift=3)
    got = m.update(frames, boxes, audio)
    crops, track = crops_for_syncnet(frames, boxes)
    want = scorer.score(crops, audio[2 * 640:], vshift=3)
    assert got.crop == {"detector": "mediapipe", "first_frame": 2, "n_frames": 12, "n_video_frames": 14,
                        "n_interpolated": 1}
    assert (got.lse_d, got.lse_c, got.offset) == (want.lse_d, want.lse_c, want.offset)
    assert m.compute() == pytest.approx(got.as_dict())
    assert m.clip_notes == ["scored frames 2-13 of 14 (the mediapipe face track)",
                            "1 frame without a mediapipe face box: box interpolated"]
    m.reset()
    with pytest.raises(ValueError, match="mediapipe found no face in any of the 14 frames"):
        m.update(frames, np.full((n, 4), np.nan), audio)


def test_metric_with_s3fd_crops_around_its_boxes(tmp_path, no_installed_weights):
    import cv2

    from lesbench.metrics.lse_s3fd import build_s3fd

    torch.manual_seed(0)
    net = build_s3fd()
    path = _save_sharp_random_s3fd(net, tmp_path)
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 256, (160, 200, 3)).astype(np.uint8), (7, 7), 2)
    # a still picture: random weights' boxes jump between frames, a real face's would not
    frames = np.stack([base] * 9)
    audio = rng.normal(0, 0.1, 9 * 640).astype(np.float32)
    scorer = SyncNetScorer(random_init_seed=0, device="cpu")
    m = LSE(scorer=scorer, s3fd_weights_path=path, vshift=2)
    assert m.version == "syncnet_v2/2+s3fd"
    got = m.update(frames, np.full((9, 4), np.nan), audio)  # the frames table's boxes are not used
    first = m.detector.detect(base)
    assert len(first) >= 1
    boxes = np.tile(first[0, :4], (9, 1))  # the best box of the first frame, found again in each
    crops, track = crops_for_syncnet(frames, boxes)
    want = scorer.score(crops, audio[track.first * 640:(track.first + len(track)) * 640], vshift=2)
    assert got.crop["detector"] == "s3fd" and got.crop["first_frame"] == track.first
    assert (got.lse_d, got.lse_c, got.offset) == (want.lse_d, want.lse_c, want.offset)
