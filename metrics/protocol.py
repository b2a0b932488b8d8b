"""Evaluation protocols as versioned data (docs/protocols.md compares the built-in ones).

A protocol fixes everything that changes a number without changing the method: test speakers,
views, crop, frame rate, sample rate, which frames each metric reads, how generated and
reference frames are paired, how values are averaged (per clip or pooled over frames), the rule
for values that cannot be computed (PSNR of identical frames), metric settings (SSIM window,
landmark set and LMD definition, FID channel order), the test-clip selection (clip list,
speakers), the emotion classifier, the AU activation thresholds and the bootstrap settings.
Protocols are YAML files (``yaml.safe_load``); the built-in ones (``mead-v1``, ``eat-mead``,
``demo-v1``) live in ``lesbench/metrics/protocols/*.yaml`` and any other file can be passed by
path.

    p = load_protocol("mead-v1")
    p.test_speakers                     # ('M003', 'M030', 'W009', 'W015')
    p.frame_indices("fid", n_frames=120)  # which frames FID reads from a 120-frame clip
    p.paired_frame_indices("psnr", 120, 100)  # (generated, reference) frames PSNR compares
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from lesbench.errors import LesbenchError
from lesbench.schema import AU_NAMES, EMOTIONS, VIEWS, make_clip_id


@dataclass(frozen=True)
class FrameSampling:
    """Which frames of a clip one metric reads, and how its values are averaged.

    ``every``: every ``every``-th frame from 0; ``max_frames``: at most that many (``None``:
    all); ``frames_per_clip``: instead, that many evenly spaced frames,
    ``floor(linspace(0, n, min(n, k), endpoint=False))`` (EAT's FID sampling). For metrics
    that read a generated and a reference clip, ``n`` counts the *paired* frames
    (:func:`paired_indices`), so the sampling picks pairs. ``unit``: ``clip`` (one value per
    clip) or ``dataset`` (one value over all clips, e.g. FID). ``aggregate`` (unit ``clip``
    only): ``clips`` = mean of the clip values (each clip weighs the same), ``frames`` = mean
    over all frames of all clips pooled (a long clip weighs more; EAT's PSNR/SSIM).
    """

    every: int = 1
    max_frames: int | None = None
    unit: str = "clip"
    frames_per_clip: int | None = None
    aggregate: str = "clips"

    def indices(self, n_frames: int) -> np.ndarray:
        n = max(0, int(n_frames))
        if self.frames_per_clip is not None:
            k = min(n, int(self.frames_per_clip))
            return np.linspace(0, n, k, endpoint=False).astype(np.int64) if k else np.zeros(0, np.int64)
        idx = np.arange(0, n, max(1, int(self.every)))
        return idx if self.max_frames is None else idx[: int(self.max_frames)]


@dataclass(frozen=True)
class Protocol:
    """A loaded protocol. ``raw`` keeps the file's full content (it goes into results)."""

    name: str
    version: str
    description: str
    dataset: str
    test_speakers: tuple[str, ...]
    views: tuple[str, ...]
    emotions: tuple[str, ...]
    levels: tuple[int, ...]
    crop_size: int
    aligned: bool
    fps: float
    sample_rate: int
    frames: dict[str, FrameSampling]
    pairing: str
    emotion_classifier: str
    au_default_threshold: float
    au_thresholds: dict[str, float]
    sync_max_shift: int
    lse_vshift: int
    lse_crop_scale: float
    lmd_landmarks: str
    bootstrap_n: int
    bootstrap_seed: int
    bootstrap_level: float
    source: str = ""
    #: Test-clip selection: keep at most this many clips (the first by clip id) per speaker x
    #: view x emotion x level; None = every test clip. From ``test_clips.per_condition``.
    clips_per_condition: int | None = None
    #: Columns that define a condition for ``clips_per_condition`` (``test_clips.by``). When
    #: ``speaker`` is not among them, the speaker of each condition's clip rotates over the test
    #: speakers (condition i takes speaker i mod S first) so every speaker is represented.
    clips_by: tuple[str, ...] = ("speaker", "view", "emotion", "level")
    #: FID formula: ``sqrtm`` (pytorch-fid's) or ``eig`` (same value, faster; ``fid.method``).
    fid_method: str = "sqrtm"
    #: Channel order the Inception network is fed (``fid.channel_order``): ``rgb``, or ``bgr``
    #: = channels reversed first (EAT's code feeds RGB frames as BGR).
    fid_channel_order: str = "rgb"
    #: LMD definition (``lmd.definition``): ``lesbench`` (M-LMD/F-LMD, mean over clips) or
    #: ``eat`` (EAT's code: also M-LVD/F-LVD, averaged over valid videos).
    lmd_definition: str = "lesbench"
    #: PSNR of identical frames (infinite): ``cap`` = counted and set to ``psnr_cap_db``,
    #: ``skip`` = counted and left out of the mean (``psnr.identical``, ``psnr.cap_db``).
    psnr_identical: str = "cap"
    psnr_cap_db: float = 100.0
    #: SSIM window (``ssim.window``): ``gaussian`` (sigma 1.5, 11x11, population covariance:
    #: Wang et al.'s setting) or ``uniform`` (7x7 box, sample covariance: scikit-image's
    #: defaults, what EAT's code calls); ``ssim.win_size`` / ``ssim.sample_covariance`` override.
    ssim_window: str = "gaussian"
    ssim_win_size: int | None = None
    ssim_sample_covariance: bool | None = None
    #: Keep only clips of ``test_speakers`` when scoring (``test_clips.filter_speakers``); clips
    #: of other speakers are counted as excluded.
    filter_speakers: bool = False
    #: A file listing the clips to score (``clip_list``: one clip id or EAT-style name per
    #: line); None = every clip. Relative paths are relative to the protocol file.
    clip_list: str | None = None
    #: Metrics run when none are named (``metrics``); empty = lesbench's full default suite.
    default_metrics: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def id(self) -> str:
        """``name@version``, the string recorded next to every result."""
        return f"{self.name}@{self.version}"

    def sampling(self, metric: str) -> FrameSampling:
        return self.frames.get(metric, FrameSampling())

    def frame_indices(self, metric: str, n_frames: int) -> np.ndarray:
        """Indices of the frames ``metric`` reads from a clip of ``n_frames`` frames."""
        return self.sampling(metric).indices(n_frames)

    def paired_frame_indices(self, metric: str, n_pred: int, n_ref: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame indices ``(pred_idx, ref_idx)`` a paired ``metric`` reads: the protocol's
        pairing of the two clips (:func:`paired_indices`), then its sampling of those pairs."""
        ip, ir = paired_indices(n_pred, n_ref, self.pairing)
        pick = self.sampling(metric).indices(len(ip))
        return ip[pick], ir[pick]

    def au_threshold_vector(self) -> np.ndarray:
        """(17,) float32 activation thresholds in ``schema.AU_NAMES`` order."""
        return np.array([self.au_thresholds.get(n, self.au_default_threshold) for n in AU_NAMES],
                        np.float32)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, **self.raw}


def builtin_protocols() -> list[str]:
    """Names of the protocols shipped with lesbench."""
    root = resources.files("lesbench.metrics") / "protocols"
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def read_packaged_yaml(name_or_path: str | Path, folder: str, what: str,
                       builtin: list[str]) -> tuple[Any, str, str]:
    """``(data, source, text)`` of a YAML file given by path (a ``.yaml``/``.yml`` name or an
    existing file) or by the name of one shipped in ``lesbench.metrics/{folder}/``; read with
    ``yaml.safe_load``. ``what`` names the kind in errors ("protocol"), ``builtin`` lists the
    shipped names for the message. A name is one plain word: it never reaches outside ``folder``.
    """
    import yaml

    candidate = Path(str(name_or_path))
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise LesbenchError(f"{candidate}: {what} file not found")
        text, source = candidate.read_text(encoding="utf-8"), str(candidate)
    else:
        name = str(name_or_path)
        res = resources.files("lesbench.metrics") / folder / f"{name}.yaml"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) or not res.is_file():
            raise LesbenchError(f"unknown {what} {name!r}; built-in: {', '.join(builtin)} "
                                f"(or pass the path of a {what} .yaml file)")
        text, source = res.read_text(encoding="utf-8"), f"lesbench:{name}"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LesbenchError(f"{source}: not valid YAML: {exc}") from None
    return data, source, text


def load_protocol(name_or_path: str | Path = "mead-v1") -> Protocol:
    """Load a built-in protocol by name (``"mead-v1"``) or any protocol YAML file by path.

    Raises:
        LesbenchError: unknown name, unreadable file, or a missing/invalid field (the message
            names the file and the field).
    """
    data, source, _ = read_packaged_yaml(name_or_path, "protocols", "protocol", builtin_protocols())
    if not isinstance(data, dict):
        raise LesbenchError(f"{source}: a protocol must be a mapping")
    return _from_dict(data, source)


def _from_dict(d: dict[str, Any], source: str) -> Protocol:
    def need(key: str) -> Any:
        if key not in d:
            raise LesbenchError(f"{source}: protocol field {key!r} is missing")
        return d[key]

    def section(key: str) -> dict[str, Any]:
        value = d.get(key) or {}
        if not isinstance(value, dict):
            raise LesbenchError(f"{source}: protocol field {key!r} must be a mapping")
        return value

    frames: dict[str, FrameSampling] = {}
    for metric, spec in section("frames").items():
        spec = spec or {}
        unit = str(spec.get("unit", "clip"))
        if unit not in ("clip", "dataset"):
            raise LesbenchError(f"{source}: frames.{metric}.unit must be clip or dataset, got {unit!r}")
        every = int(spec.get("every", 1))
        if every < 1:
            raise LesbenchError(f"{source}: frames.{metric}.every must be >= 1")
        mx = spec.get("max_frames")
        per = spec.get("frames_per_clip")
        if per is not None and int(per) < 1:
            raise LesbenchError(f"{source}: frames.{metric}.frames_per_clip must be >= 1 (or null)")
        aggregate = str(spec.get("aggregate", "clips"))
        if aggregate not in ("clips", "frames"):
            raise LesbenchError(f"{source}: frames.{metric}.aggregate must be clips or frames, got {aggregate!r}")
        frames[str(metric)] = FrameSampling(every, None if mx is None else int(mx), unit,
                                            None if per is None else int(per), aggregate)
    crop = section("crop")
    au = section("au")
    thresholds = {str(k): float(v) for k, v in (au.get("thresholds") or {}).items()}
    unknown = sorted(set(thresholds) - set(AU_NAMES))
    if unknown:
        raise LesbenchError(f"{source}: au.thresholds names unknown AUs {unknown}; known: {list(AU_NAMES)}")
    boot = section("bootstrap")
    per_condition = section("test_clips").get("per_condition")
    clips_by = tuple(str(c) for c in (section("test_clips").get("by") or ("speaker", "view", "emotion", "level")))
    bad_by = sorted(set(clips_by) - {"speaker", "view", "emotion", "level", "sentence"})
    if bad_by:
        raise LesbenchError(f"{source}: test_clips.by names unknown columns {bad_by}")
    fid_method = str(section("fid").get("method", "sqrtm"))
    if fid_method not in ("sqrtm", "eig"):
        raise LesbenchError(f"{source}: fid.method must be sqrtm or eig, got {fid_method!r}")
    if per_condition is not None and int(per_condition) < 1:
        raise LesbenchError(f"{source}: test_clips.per_condition must be >= 1 (or null for every clip)")
    pairing = str(d.get("pairing", "linspace"))
    if pairing not in ("linspace", "truncate"):
        raise LesbenchError(f"{source}: pairing must be linspace or truncate, got {pairing!r}")
    channel_order = str(section("fid").get("channel_order", "rgb"))
    if channel_order not in ("rgb", "bgr"):
        raise LesbenchError(f"{source}: fid.channel_order must be rgb or bgr, got {channel_order!r}")
    lmd_definition = str(section("lmd").get("definition", "lesbench"))
    if lmd_definition not in ("lesbench", "eat"):
        raise LesbenchError(f"{source}: lmd.definition must be lesbench or eat, got {lmd_definition!r}")
    psnr = section("psnr")
    identical = str(psnr.get("identical", "cap"))
    if identical not in ("cap", "skip"):
        raise LesbenchError(f"{source}: psnr.identical must be cap or skip, got {identical!r}")
    ssim = section("ssim")
    window = str(ssim.get("window", "gaussian"))
    if window not in ("gaussian", "uniform"):
        raise LesbenchError(f"{source}: ssim.window must be gaussian or uniform, got {window!r}")
    win_size = ssim.get("win_size")
    if win_size is not None and (int(win_size) < 3 or int(win_size) % 2 == 0):
        raise LesbenchError(f"{source}: ssim.win_size must be an odd number >= 3, got {win_size!r}")
    clip_list = d.get("clip_list")
    if clip_list is not None:
        clip_list = str(clip_list)
        if not Path(clip_list).is_absolute() and not source.startswith("lesbench:"):
            clip_list = str(Path(source).parent / clip_list)
    return Protocol(
        name=str(need("name")),
        version=str(need("version")),
        description=str(d.get("description", "")).strip(),
        dataset=str(d.get("dataset", "")),
        test_speakers=tuple(str(s) for s in d.get("test_speakers", ())),
        views=tuple(str(s) for s in d.get("views", ())),
        emotions=tuple(str(s) for s in d.get("emotions", ())),
        levels=tuple(int(s) for s in d.get("levels", ())),
        crop_size=int(crop.get("size", 256)),
        aligned=bool(crop.get("aligned", True)),
        fps=float(need("fps")),
        sample_rate=int(need("sample_rate")),
        frames=frames,
        pairing=pairing,
        emotion_classifier=str(d.get("emotion_classifier", "fer-mini-xception")),
        au_default_threshold=float(au.get("default_threshold", 0.5)),
        au_thresholds=thresholds,
        sync_max_shift=int(section("sync").get("max_shift", 15)),
        lse_vshift=int(section("lse").get("vshift", 15)),
        lse_crop_scale=float(section("lse").get("crop_scale", 0.4)),
        lmd_landmarks=str(section("lmd").get("landmarks", "mediapipe478")),
        bootstrap_n=int(boot.get("n", 1000)),
        bootstrap_seed=int(boot.get("seed", 0)),
        bootstrap_level=float(boot.get("level", 0.95)),
        source=source,
        clips_per_condition=None if per_condition is None else int(per_condition),
        clips_by=clips_by,
        fid_method=fid_method,
        fid_channel_order=channel_order,
        lmd_definition=lmd_definition,
        psnr_identical=identical,
        psnr_cap_db=float(psnr.get("cap_db", 100.0)),
        ssim_window=window,
        ssim_win_size=None if win_size is None else int(win_size),
        ssim_sample_covariance=None if ssim.get("sample_covariance") is None else bool(ssim["sample_covariance"]),
        filter_speakers=bool(section("test_clips").get("filter_speakers", False)),
        clip_list=clip_list,
        default_metrics=tuple(str(m) for m in (d.get("metrics") or ())),
        raw=d,
    )


def paired_indices(n_pred: int, n_ref: int, pairing: str = "linspace") -> tuple[np.ndarray, np.ndarray]:
    """Frame pairing of a generated and a reference clip of different lengths.

    ``linspace`` (EAT's LMD code): ``m = min(n_pred, n_ref)`` pairs, indices
    ``floor(linspace(0, n, m, endpoint=False))`` in each clip, so the longer clip is evenly
    subsampled. ``truncate``: the first ``m`` frames of each.
    """
    m = min(int(n_pred), int(n_ref))
    if m <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if pairing == "truncate":
        return np.arange(m), np.arange(m)
    a = np.linspace(0, n_pred, m, endpoint=False).astype(np.int64)
    b = np.linspace(0, n_ref, m, endpoint=False).astype(np.int64)
    return a, b


_CLIP_ID_RE = re.compile(
    r"^(?P<speaker>[MW]\d{3})_(?:(?P<view>[a-z]+(?:_\d+)?)_)?(?P<emotion>[a-z]+)_(?:level_)?(?P<level>[123])_"
    r"(?P<sentence>\d{1,3})$", re.IGNORECASE)


def canonical_clip_id(name: str, default_view: str = "front") -> str | None:
    """The lesbench clip id (``M003_front_angry_3_001``) named by ``name``, or None.

    Accepts lesbench clip ids and EAT-style names without a view and with MEAD's 3-letter
    emotion codes (``W009_con_3_028``, as in EAT's result folders; view = ``default_view``).
    A path or a file suffix is ignored (``gen/W009_con_3_028.mp4``).
    """
    stem = Path(str(name).strip()).name
    for suffix in (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    m = _CLIP_ID_RE.match(stem)
    if not m:
        return None
    emo = m.group("emotion").lower()
    codes = {e[:3]: e for e in EMOTIONS}  # MEAD's codes are the names' first three letters
    emotion = emo if emo in EMOTIONS else codes.get(emo)
    view = (m.group("view") or default_view).lower()
    if emotion is None or view not in VIEWS:
        return None
    return make_clip_id(m.group("speaker").upper(), view, emotion, int(m.group("level")),
                        f"{int(m.group('sentence')):03d}")


def read_clip_list(path: str | Path, default_view: str = "front") -> tuple[str, ...]:
    """Clip ids listed in a text file: one lesbench clip id or EAT-style name per line
    (:func:`canonical_clip_id`); blank lines and ``#`` comments are ignored.

    Raises:
        LesbenchError: the file is missing, or a line names no clip (file and line number).
    """
    path = Path(path)
    if not path.is_file():
        raise LesbenchError(f"{path}: clip list not found")
    if path.suffix == ".npy":
        raise LesbenchError(f"{path}: a clip list must be a text file, one clip per line (EAT's .npy list "
                            "is a pickle, which lesbench does not load: write its names to a .txt)")
    out: list[str] = []
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        clip = canonical_clip_id(text, default_view)
        if clip is None:
            raise LesbenchError(f"{path}:{no}: {text!r} is not a clip id (M003_front_angry_3_001) or an "
                                "EAT-style name (M003_ang_3_001)")
        out.append(clip)
    if not out:
        raise LesbenchError(f"{path}: clip list names no clip")
    return tuple(dict.fromkeys(out))
