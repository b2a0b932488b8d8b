"""A small BibTeX reader and writer, enough for method cards and generated ``.bib`` files.

It reads the subset of BibTeX that citation blocks use: ``@type{key, field = {value}, ...}``
with values in braces (nested braces kept verbatim), in double quotes, bare numbers, or bare
macro names (``month = oct``), and ``#`` concatenation of those. ``@comment``, ``@preamble``
and ``@string`` blocks and text between entries are skipped (``@string`` macros are expanded
when used). Field names are case-insensitive and stored lower-case; the entry type is stored
lower-case; the key is kept as written.

:func:`format_entry` writes one canonical form (two-space indent, ``name = {value}``, one
field per line, trailing comma), so ``parse(format(entries)) == entries`` and
``format(parse(text)) == text`` for text already in that form. Output is deterministic: the
same entries always give the same bytes.

    entries = parse_bibtex(text)          # [BibEntry(type='inproceedings', key=..., fields=...)]
    text = format_bibtex(entries)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lesbench.errors import LesbenchError


class BibTeXError(LesbenchError):
    """Malformed BibTeX; the message names the source, the line and the problem."""


@dataclass(frozen=True)
class BibEntry:
    """One BibTeX entry. ``fields`` keeps the order of the source (name, value) pairs."""

    type: str
    key: str
    fields: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self.fields:
            if k == name:
                return v
        return default

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.fields)

    def authors(self) -> list[str]:
        """The ``author`` field split on `` and `` (top-level only), stripped."""
        raw = self.get("author") or ""
        return [a.strip() for a in _split_top_level_and(raw) if a.strip()]


_SKIP_TYPES = {"comment", "preamble"}
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-:.+/]*")
_KEY_RE = re.compile(r"[^\s,{}()=\"#%'~\\]+")
_MONTHS = {m: m for m in ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")}


class _Reader:
    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.pos = 0
        self.strings: dict[str, str] = dict(_MONTHS)

    # --- helpers ------------------------------------------------------------------------
    def error(self, problem: str, pos: int | None = None) -> BibTeXError:
        pos = self.pos if pos is None else pos
        line = self.text.count("\n", 0, pos) + 1
        return BibTeXError(f"{self.source}: line {line}: {problem}")

    def skip_ws(self) -> None:
        n = len(self.text)
        while self.pos < n and self.text[self.pos].isspace():
            self.pos += 1

    def expect(self, char: str) -> None:
        self.skip_ws()
        if self.pos >= len(self.text) or self.text[self.pos] != char:
            found = self.text[self.pos] if self.pos < len(self.text) else "end of text"
            raise self.error(f"expected {char!r}, found {found!r}")
        self.pos += 1

    def name(self, what: str) -> str:
        self.skip_ws()
        m = _NAME_RE.match(self.text, self.pos)
        if not m:
            raise self.error(f"expected {what}")
        self.pos = m.end()
        return m.group(0)

    def braced(self) -> str:
        """Read ``{...}`` (self.pos at the opening brace); return the inside verbatim."""
        depth = 0
        start = self.pos
        n = len(self.text)
        i = self.pos
        while i < n:
            c = self.text[i]
            if c == "\\":
                i += 2
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    self.pos = i + 1
                    return self.text[start + 1 : i]
            i += 1
        raise self.error("unbalanced braces: '{' is never closed", start)

    def quoted(self) -> str:
        start = self.pos
        depth = 0
        i = self.pos + 1
        n = len(self.text)
        while i < n:
            c = self.text[i]
            if c == "\\":
                i += 2
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            elif c == '"' and depth == 0:
                self.pos = i + 1
                return self.text[start + 1 : i]
            i += 1
        raise self.error('unterminated "..." value', start)

    def value(self) -> str:
        parts: list[str] = []
        while True:
            self.skip_ws()
            if self.pos >= len(self.text):
                raise self.error("expected a value")
            c = self.text[self.pos]
            if c == "{":
                parts.append(self.braced())
            elif c == '"':
                parts.append(self.quoted())
            elif c.isdigit():
                m = re.compile(r"\d+").match(self.text, self.pos)
                assert m is not None
                parts.append(m.group(0))
                self.pos = m.end()
            else:
                macro_pos = self.pos
                macro = self.name("a value").lower()
                if macro not in self.strings:
                    raise self.error(f"undefined macro {macro!r}", macro_pos)
                parts.append(self.strings[macro])
            self.skip_ws()
            if self.pos < len(self.text) and self.text[self.pos] == "#":
                self.pos += 1
                continue
            return "".join(parts)

    # --- entries ------------------------------------------------------------------------
    def entries(self) -> list[BibEntry]:
        out: list[BibEntry] = []
        seen: dict[str, int] = {}
        while True:
            at = self.text.find("@", self.pos)
            if at < 0:
                return out
            self.pos = at + 1
            etype = self.name("an entry type after '@'").lower()
            self.skip_ws()
            if self.pos >= len(self.text) or self.text[self.pos] not in "{(":
                raise self.error(f"expected '{{' after @{etype}")
            if etype in _SKIP_TYPES:
                if self.text[self.pos] == "{":
                    self.braced()
                else:
                    close = self.text.find(")", self.pos)
                    self.pos = len(self.text) if close < 0 else close + 1
                continue
            closing = "}" if self.text[self.pos] == "{" else ")"
            self.pos += 1
            if etype == "string":
                name = self.name("a @string name").lower()
                self.expect("=")
                self.strings[name] = self.value()
                self.expect(closing)
                continue
            entry_pos = self.pos
            self.skip_ws()
            m = _KEY_RE.match(self.text, self.pos)
            if not m:
                raise self.error(f"@{etype} entry has no citation key")
            key = m.group(0)
            self.pos = m.end()
            if key in seen:
                raise self.error(f"duplicate citation key {key!r}", entry_pos)
            seen[key] = entry_pos
            fields: list[tuple[str, str]] = []
            names: set[str] = set()
            while True:
                self.skip_ws()
                if self.pos >= len(self.text):
                    raise self.error(f"entry {key!r} is never closed (missing {closing!r})", entry_pos)
                if self.text[self.pos] == closing:
                    self.pos += 1
                    break
                self.expect(",")
                self.skip_ws()
                if self.pos < len(self.text) and self.text[self.pos] == closing:
                    self.pos += 1
                    break
                fname = self.name(f"a field name in entry {key!r}").lower()
                if fname in names:
                    raise self.error(f"entry {key!r}: field {fname!r} given twice")
                names.add(fname)
                self.expect("=")
                fields.append((fname, self.value()))
            out.append(BibEntry(etype, key, tuple(fields)))


def parse_bibtex(text: str, source: str = "<bibtex>") -> list[BibEntry]:
    """Parse BibTeX ``text`` into entries, in order. Raises :class:`BibTeXError`."""
    return _Reader(text, source).entries()


def parse_entry(text: str, source: str = "<bibtex>") -> BibEntry:
    """Parse text that must hold exactly one entry."""
    entries = parse_bibtex(text, source)
    if len(entries) != 1:
        raise BibTeXError(f"{source}: expected exactly one BibTeX entry, found {len(entries)}")
    return entries[0]


def format_entry(entry: BibEntry) -> str:
    """Canonical text of one entry (ends with a newline)."""
    lines = [f"@{entry.type}{{{entry.key},"]
    for name, value in entry.fields:
        lines.append(f"  {name} = {{{value}}},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def format_bibtex(entries: list[BibEntry] | tuple[BibEntry, ...]) -> str:
    """Canonical text of several entries, separated by one blank line."""
    return "\n".join(format_entry(e) for e in entries)


def strip_braces(value: str) -> str:
    """``{MEAD}: A {L}arge`` -> ``MEAD: A Large`` (for comparing titles), whitespace collapsed."""
    return " ".join(value.replace("{", "").replace("}", "").split())


def _split_top_level_and(value: str) -> list[str]:
    value = " ".join(value.split())
    parts, depth, start = [], 0, 0
    i = 0
    while i < len(value):
        c = value[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif depth == 0 and value[i : i + 5].lower() == " and ":
            parts.append(value[start:i])
            start = i + 5
            i += 5
            continue
        i += 1
    parts.append(value[start:])
    return parts
