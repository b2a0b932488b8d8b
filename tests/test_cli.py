import subprocess
import sys

import lesbench
from lesbench.cli import main
from lesbench.registry import DATASETS, Registry, UnknownNameError

import pytest


def test_version_and_help_are_cheap():
    # --help must not import heavy libraries (torch, mediapipe, dask, av).
    code = (
        "import sys; from lesbench.cli import build_parser; build_parser().format_help(); "
        "heavy = [m for m in ('torch', 'mediapipe', 'dask', 'av', 'cv2', 'pandas') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert lesbench.__version__ in capsys.readouterr().out


def test_registry_suggests_nearest_name():
    reg = Registry("metric", {"fid": "math:pi", "psnr": "math:e"})
    with pytest.raises(UnknownNameError) as exc:
        reg.get("fdi")
    assert "did you mean 'fid'" in str(exc.value).lower()
    assert "psnr" in str(exc.value)
    import math

    assert reg.get("fid") == math.pi


def test_registry_decorator():
    reg = Registry("stage")

    @reg.register("x")
    class X:
        pass

    assert reg.get("x") is X
    assert reg.names() == ["x"]


def test_ls_lists_datasets(capsys):
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    for name in DATASETS.names():
        assert name in out


def test_front_door_names_resolve_lazily():
    """`import lesbench` imports no heavy library; every front-door name resolves to the function
    the matching command calls."""
    code = ("import sys, lesbench; heavy = [m for m in ('torch', 'mediapipe', 'dask', 'av') if m in sys.modules]; "
            "assert not heavy, heavy; print(len(lesbench.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    from lesbench.metrics.score import score
    from lesbench.pipelines.prepare import prepare

    assert int(out.stdout) == len(lesbench.__all__)
    assert lesbench.prepare is prepare and lesbench.score is score
    from lesbench import evaluation  # importing the submodule must not shadow the function

    assert lesbench.evaluate is evaluation.evaluate
    for name in lesbench.__all__:
        assert getattr(lesbench, name) is not None
    with pytest.raises(AttributeError):
        lesbench.no_such_thing  # noqa: B018
