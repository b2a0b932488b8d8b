"""Quieting MediaPipe's and TF Lite's native start-up logging without losing what matters.

MediaPipe's C++ logging: creating a landmarker makes MediaPipe and TF Lite write about five
lines straight to the process's stderr (``WARNING: Logging before InitGoogle()``, ``INFO:
Created TensorFlow Lite XNNPACK delegate``, ``W0000 ... inference_feedback_manager.cc``...),
in every worker process, through progress bars. Environment variables do not stop them
(measured: ``GLOG_minloglevel`` and ``TF_CPP_MIN_LOG_LEVEL`` leave all five), so
:func:`quiet_native_stderr` points file descriptor 2 at a temporary file while the landmarker
is created, then drops the known routine lines and shows anything else once, prefixed
``lesbench: MediaPipe:``. ``LESBENCH_VERBOSE=1`` (``lesbench --verbose``) leaves stderr alone.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


#: Lines MediaPipe / TF Lite print while a landmarker is created that say nothing a user can
#: act on (glog info lines of any source file, and these known warnings).
_ROUTINE_NATIVE_LINE = re.compile(
    r"^I\d{4} |Logging before InitGoogle|Created TensorFlow Lite XNNPACK delegate|"
    r"inference_feedback_manager\.cc|face_landmarker_graph\.cc:\d+\] Sets FaceBlendshapesGraph acceleration|"
    r"gl_context|GL version|Successfully initialized EGL")
#: glog's line prefix: severity, date, time, thread, ``file:line]``.
_GLOG_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ (?P<where>[^\]]+)\] ")


def native_logs_verbose() -> bool:
    """True when ``LESBENCH_VERBOSE`` is set (``lesbench --verbose`` sets it for workers too)."""
    return os.environ.get("LESBENCH_VERBOSE", "").strip().lower() not in ("", "0", "false", "no")


@functools.lru_cache(maxsize=None)
def _say_once(line: str) -> None:
    """Show one kept native line, once per process (every worker creates a landmarker)."""
    print(line, file=sys.stderr, flush=True)


def filter_native_lines(text: str) -> list[str]:
    """The lines of ``text`` worth showing, in lesbench's words: routine lines dropped, glog
    prefixes (severity, time, thread) replaced by ``lesbench: MediaPipe:`` and the source file."""
    kept = []
    for line in text.splitlines():
        if not line.strip() or _ROUTINE_NATIVE_LINE.search(line):
            continue
        m = _GLOG_PREFIX.match(line)
        kept.append(f"lesbench: MediaPipe ({m.group('where')}): {line[m.end():]}" if m else line)
    return kept


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Capture what native code writes to file descriptor 2 during the block; afterwards show
    only lines that are not routine (:func:`filter_native_lines`), each once per process.

    Python's own writes to ``sys.stderr`` in the block are captured too and shown afterwards
    unchanged (unless routine); nothing is lost, only delayed. No-op when
    :func:`native_logs_verbose` or when file descriptor 2 cannot be duplicated.
    """
    if native_logs_verbose():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2 (closed, embedded interpreter)
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in filter_native_lines(capture.read().decode("utf-8", "replace")):
                _say_once(line)
