import pytest

from lesbench.bibtex import (
    BibEntry,
    BibTeXError,
    format_bibtex,
    format_entry,
    parse_bibtex,
    parse_entry,
    strip_braces,
)

SAMPLE = r"""
% a comment line outside entries
@string{iccv = "Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)"}
@comment{ this {nested} block is ignored }
@InProceedings{Gan_2023_ICCV,
    author    = {Gan, Yuan and Yang, Zongxin and Yue, Xihang and Sun, Lingyun and Yang, Yi},
    title     = {Efficient {E}motional Adaptation for {Audio-Driven} Talking-Head Generation},
    booktitle = iccv,
    month     = oct,
    year      = 2023,
    pages     = "22634--22645",
    note      = "part one " # {part two}
}
@article(quoted,
  title = "A {"}quoted{"} title",
  journal = {J. \{Braces\} \& more},
)
"""


def test_parse_fields_types_and_macros():
    entries = parse_bibtex(SAMPLE)
    assert [e.key for e in entries] == ["Gan_2023_ICCV", "quoted"]
    gan = entries[0]
    assert gan.type == "inproceedings"
    assert gan["booktitle"] == "Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)"
    assert gan["month"] == "oct"
    assert gan["year"] == "2023"
    assert gan["pages"] == "22634--22645"
    assert gan["note"] == "part one part two"
    assert gan["title"] == "Efficient {E}motional Adaptation for {Audio-Driven} Talking-Head Generation"
    assert strip_braces(gan["title"]) == "Efficient Emotional Adaptation for Audio-Driven Talking-Head Generation"
    assert gan.authors() == ["Gan, Yuan", "Yang, Zongxin", "Yue, Xihang", "Sun, Lingyun", "Yang, Yi"]
    assert gan.field_names == ("author", "title", "booktitle", "month", "year", "pages", "note")
    q = entries[1]
    assert q["title"] == 'A {"}quoted{"} title'
    assert q["journal"] == r"J. \{Braces\} \& more"


def test_round_trip_is_exact():
    entries = parse_bibtex(SAMPLE)
    text = format_bibtex(entries)
    again = parse_bibtex(text)
    assert again == entries
    assert format_bibtex(again) == text  # canonical text is a fixed point
    # canonical layout
    assert format_entry(entries[1]).splitlines()[0] == "@article{quoted,"
    assert format_entry(entries[1]).endswith("}\n")


def test_authors_split_only_at_top_level():
    e = parse_entry("@misc{k, author = {{Barnes and Noble} and Smith, J.}, year = {2020}}")
    assert e.authors() == ["{Barnes and Noble}", "Smith, J."]


@pytest.mark.parametrize(
    "text, message",
    [
        ("@article{k, title = {un{closed}", "unbalanced braces"),
        ("@article{k, title = {a},\n year = 2020\n", "entry 'k' is never closed"),
        ("@article{k, title = {a}}\n\n@article{k, title = {b}}", "line 3: duplicate citation key 'k'"),
        ("@article{k, title = {a}, title = {b}}", "field 'title' given twice"),
        ("@article{k, month = notamacro}", "undefined macro 'notamacro'"),
        ("@article{, title = {a}}", "has no citation key"),
        ("@article{k title = {a}}", "expected ','"),
    ],
)
def test_errors_name_source_line_and_problem(text, message):
    with pytest.raises(BibTeXError) as exc:
        parse_bibtex(text, source="cards/x.yaml")
    assert str(exc.value).startswith("cards/x.yaml: line ")
    assert message in str(exc.value)


def test_parse_entry_requires_exactly_one():
    with pytest.raises(BibTeXError, match="exactly one"):
        parse_entry("@misc{a, year={1}} @misc{b, year={2}}")


def test_format_is_deterministic_and_ordered():
    e = BibEntry("misc", "z", (("year", "2020"), ("title", "T")))
    assert format_entry(e) == "@misc{z,\n  year = {2020},\n  title = {T},\n}\n"


def test_agrees_with_bibtexparser_when_installed():
    bibtexparser = pytest.importorskip("bibtexparser")
    ours = parse_bibtex(format_bibtex(parse_bibtex(SAMPLE)))
    lib = bibtexparser.parse_string(format_bibtex(ours))
    assert [e.key for e in lib.entries] == [e.key for e in ours]
    for a, b in zip(lib.entries, ours):
        assert {f.key.lower(): f.value.strip("{}") for f in a.fields} == {k: v for k, v in b.fields}
