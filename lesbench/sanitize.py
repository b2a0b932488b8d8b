"""Names from files made inert: as path components, and as Markdown, CSV and LaTeX text.

Protocols, method cards, results files and prepared data sets are data that anyone can edit;
their names end up in paths (``OUT/<protocol>/<dataset>/<method>.json``) and in tables. Every
place where such a name meets a path or a rendered table goes through this module, so there is
one rule per output:

- :func:`safe_name` / :func:`safe_join`: a name becomes ONE path component under a root, or is
  refused with an error naming the file it came from. ``../x``, ``/abs``, ``a/b``, ``.``, ``..``,
  empty names and control characters never reach the file system.
- :func:`md_text` / :func:`md_code`: Markdown table cells and inline text (no new line, no
  table pipe, no raw HTML, no heading, no link or image syntax survives).
- :func:`csv_cell`: spreadsheet formula injection (OWASP rule: a leading ``=``, ``+``, ``-``,
  ``@``, tab or carriage return gets a ``'``), numbers kept as numbers.
- :func:`latex_text`: LaTeX special characters, and new lines folded into spaces (a blank line
  in a ``\\caption{}`` is a paragraph break, which is an error there).
- :func:`plot_text`: labels of matplotlib charts (``$`` would start mathtext, which fails on
  most names that contain it).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lesbench.errors import LesbenchError

__all__ = ["UnsafeNameError", "safe_name", "safe_join", "md_text", "md_code", "csv_cell", "latex_text", "plot_text"]


class UnsafeNameError(LesbenchError):
    """A name read from a file (or given as an argument) cannot be used as a path component."""


#: Characters a slug keeps (``replace=True``); everything else becomes ``-``.
_SLUG_KEEP = re.compile(r"[^A-Za-z0-9._-]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Longest file-name component most file systems accept, in bytes (UTF-8).
_MAX_COMPONENT_BYTES = 255


def safe_name(name: object, *, what: str = "name", source: str | os.PathLike[str] | None = None,
              replace: bool = False) -> str:
    """``name`` as one safe path component, or :class:`UnsafeNameError`.

    ``what``: what the name is (``"protocol name"``), ``source``: the file that supplied it;
    both go into the error. ``replace=True`` first turns every character other than
    ``A-Z a-z 0-9 . _ -`` into ``-`` (a readable slug of a free-form label such as a data-set
    name); the result is still refused when it is ``.``/``..``/empty. Without ``replace`` a
    name with a path separator, a control character, or that is ``.``/``..``/empty/absolute
    is refused rather than changed, so that two different names never silently share a file.
    """
    text = str(name) if name is not None else ""
    if replace:
        text = _SLUG_KEEP.sub("-", text)
    where = f"{source}: " if source else ""
    problem = None
    if not text.strip():
        problem = "is empty"
    elif text in (".", ".."):
        problem = "is a relative path ('.' or '..')"
    elif "/" in text or "\\" in text or os.sep in text or (os.altsep and os.altsep in text):
        problem = "contains a path separator"
    elif _CONTROL.search(text):
        problem = "contains a control character (new line, tab, NUL...)"
    elif len(text.encode("utf-8")) > _MAX_COMPONENT_BYTES:
        problem = f"is longer than {_MAX_COMPONENT_BYTES} bytes"
    if problem:
        raise UnsafeNameError(
            f"{where}{what} {str(name)!r} {problem}; it becomes a file or folder name under the output "
            "folder, so it must be a single plain name such as 'mead-v1'")
    return text


def safe_join(root: str | os.PathLike[str], *parts: object, what: str = "name",
              source: str | os.PathLike[str] | None = None) -> Path:
    """``root / part1 / part2 ...`` with every part checked by :func:`safe_name`.

    The joined path is also checked to stay lexically inside ``root`` (symbolic links that the
    user made inside ``root`` are followed as usual: they are the user's choice, not a name from
    a file).
    """
    root_path = Path(root)
    path = root_path.joinpath(*(safe_name(p, what=what, source=source) for p in parts))
    base = os.path.normpath(os.path.abspath(root_path))
    full = os.path.normpath(os.path.abspath(path))
    if os.path.commonpath([base, full]) != base:  # unreachable after safe_name; kept as the invariant
        raise UnsafeNameError(f"{source or root}: {what} leads outside {root_path} ({path})")
    return path


# ----------------------------------------------------------------------------------- markdown

#: Characters escaped with a backslash in Markdown text: table pipes, code spans, links and
#: images (``[x](url)``, ``![x](url)``), and the backslash itself.
_MD_BACKSLASH = {"\\": "\\\\", "|": "\\|", "`": "\\`", "[": "\\[", "]": "\\]"}
#: Characters written as HTML entities, so no raw HTML tag or entity reaches the renderer.
_MD_ENTITY = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _one_line(text: object) -> str:
    """All whitespace runs (new lines included) folded into single spaces, control characters
    dropped, ends stripped."""
    return " ".join(_CONTROL.sub(" ", str(text)).split())


def md_text(text: object) -> str:
    """``text`` as inert Markdown inline text, safe in a table cell or a paragraph.

    New lines become spaces (a new line would end the table row), ``|`` ``\\`` `` ` `` ``[``
    ``]`` are backslash-escaped, ``& < >`` become entities (no raw HTML), and a leading ``#``,
    ``>``, ``-``, ``+``, ``*``, ``=`` or ``1.`` that could start a heading, quote or list when the
    text begins a line is escaped.
    """
    s = _one_line(text)
    s = "".join(_MD_BACKSLASH.get(c) or _MD_ENTITY.get(c) or c for c in s)
    if s[:1] in ("#", "-", "+", "*", "="):
        s = "\\" + s
    m = re.match(r"^(\d+)([.)])", s)
    if m:  # "1. x" would start an ordered list
        s = m.group(1) + "\\" + s[len(m.group(1)):]
    return s


def md_code(text: object) -> str:
    """``text`` as an inline code span (`` `mead-v1` ``), inert in a table cell.

    Inside a code span HTML and Markdown are literal already; what still matters is a new line
    (folded), a backtick (the span is delimited by a longer run of backticks) and ``|``, which
    GitHub-flavoured tables split on even inside code (escaped as ``\\|``, which tables unescape).
    Text with ``& < >`` is written as :func:`md_text` instead, so no raw HTML is in the output.
    """
    s = _one_line(text)
    if any(c in s for c in _MD_ENTITY):
        # literal inside a code span for CommonMark, but not for every Markdown tool that
        # reads the file: no raw HTML in the output bytes, so escaped text instead of code
        return md_text(s)
    s = s.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


# ----------------------------------------------------------------------------------- csv

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)", re.IGNORECASE)


def csv_cell(value: object) -> str:
    """``value`` as a CSV cell that a spreadsheet does not run as a formula.

    A text starting with ``= + - @``, tab or carriage return gets a leading ``'`` (OWASP CSV
    injection rule); a number (``-0.38``, ``1e-3``) is kept as it is, so negative values stay
    numbers. Quoting of commas, quotes and new lines is left to :mod:`csv`.
    """
    s = "" if value is None else str(value)
    if s.startswith(_FORMULA_START) and not _NUMBER.fullmatch(s):
        return "'" + s
    return s


# ----------------------------------------------------------------------------------- latex

_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}",
    "²": r"$^2$", "–": "--", "—": "---", "ρ": r"$\rho$", "|": r"$|$",
}


def latex_text(text: object) -> str:
    """``text`` as LaTeX text: special characters escaped, and every run of whitespace (new
    lines included) one space, so a name can never open a new paragraph."""
    return "".join(_TEX_SPECIAL.get(c, c) for c in _one_line(text))


# ----------------------------------------------------------------------------------- plots

def plot_text(text: object) -> str:
    """``text`` as a literal matplotlib label: one line, ``$`` escaped so it never starts
    mathtext (a name like ``$5 model`` would otherwise fail to render)."""
    return _one_line(text).replace("$", r"\$")
