"""One case fold and one set of words on both engines.

Greek sigma, Turkish İ, ß, ligatures and CJK fold alike on SQLite and PostgreSQL; each
search word is one word of both indexes, written or searched, and each hit's snippet marks it.
"""

# ruff: noqa: RUF001, RUF002  # look-alike letters are what these tests are about

from __future__ import annotations

import contextlib
import sqlite3
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import asyncpg
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from _search_helpers import result
from persistence import (
    Database,
    ValidationError,
    connect,
    migrate,
    save_result,
    save_results,
    search_results,
)
from persistence.search._fold import FOLDED_FROM, FOLDED_TO, fold, fold_word
from persistence.search._language import SearchTerm, word_pattern
from strategies import ON_DATABASE
from strategies.filters import SPLIT_BY_POSTGRES

# --- one fold on both engines -------------------------------------------------------------------

FOLD_CORPUS: Final = [
    "ΟΔΟΣ Αθηνάς",  # 0: capital sigma
    "οδος στενή",  # 1: final sigma at the end of the word
    "ΟΔΌΣ ΜΕΓΆΛΗ",  # 2
    "οδός μεγάλη",  # 3
    "İstanbul İZMİR",  # 4: Turkish dotted capital I
    "istanbul izmir",  # 5
    "ISTANBUL ıstanbul",  # 6: dotless i is its own letter
    "Straße STRASSE straẞe",  # 7: German sharp s, and its capital
    "µs 5µm",  # 8: micro sign
    "μs 5μm",  # 9: Greek mu
    "ſtate Maſs",  # 10: long s
    "state mass",  # 11
    "ϑ ϕ ϵ ϐ ϰ ϱ ϖ",  # 12: Greek symbol letters
    "θ φ ε β κ ρ π",  # 13
    "ﬁle ﬂow",  # 14: ligatures
    "file flow",  # 15
    "漢字テスト 東京タワー",  # 16: CJK and kana
    "mixed Ωmega ωmega Привет ПРИВЕТ café CAFÉ",  # 17: mixed scripts
    "ẛ ṡ ṠTOP",  # 18: long s with dot above
]

FOLD_SEARCHES: Final = [
    ("οδος", [0, 1]),
    ("ΟΔΟΣ", [0, 1]),
    ("οδοσ", [0, 1]),
    ("ΟΔΌΣ", [2, 3]),
    ("οδός", [2, 3]),
    ("istanbul", [4, 5, 6]),
    ("İstanbul", [4, 5, 6]),
    ("İZMİR", [4, 5]),
    ("ıstanbul", [6]),
    ("straße", [7]),
    ("STRASSE", [7]),
    ("µs", [8, 9]),
    ("μm", []),
    ("5μm", [8, 9]),
    ("state", [10, 11]),
    ("ſtate", [10, 11]),
    ("mass", [10, 11]),
    ("ϑ", [12, 13]),
    ("θ", [12, 13]),
    ("Φ", [12, 13]),
    ("ϵ", [12, 13]),
    ("β κ ρ π", [12, 13]),
    ("ﬁle", [14]),
    ("file", [15]),
    ("漢字テスト", [16]),
    ("ωmega привет CAFÉ", [17]),
    ("cafe", []),
    ("ṡ", [18]),
    ("ẛ", [18]),
    ("ṡtop", [18]),
]


@pytest.fixture(name="pair")
async def both_engines(tmp_path: Path, postgres_url: str) -> AsyncIterator[list[Database]]:
    """A SQLite and a PostgreSQL database, migrated and empty."""
    async with connect(tmp_path / "pair.db") as lite, connect(postgres_url) as pg:
        for db in (lite, pg):
            await migrate(db)
        yield [lite, pg]


async def test_both_engines_fold_the_same_letters(pair: list[Database]) -> None:
    """Greek sigma, Turkish İ, ß, µ, ſ, symbol letters, ligatures, CJK: same results on both."""
    answers = []
    for db in pair:
        await save_results(db, [result(text, minutes=i) for i, text in enumerate(FOLD_CORPUS)])
        per_search = {}
        for text, expected in FOLD_SEARCHES:
            page = await search_results(db, text, limit=10_000)
            outputs = sorted(hit.result.output or "" for hit in page.items)
            assert outputs == sorted(FOLD_CORPUS[i] for i in expected), (db.engine, text)
            per_search[text] = sorted(hit.result.id or 0 for hit in page.items)
            for hit in page.items:
                assert hit.snippet.highlights, (db.engine, text, hit.snippet)
        answers.append(per_search)
    assert answers[0] == answers[1]


async def test_postgres_folds_by_the_same_table(postgres_url: str) -> None:
    """The migration's translate() table is FOLDED_FROM and FOLDED_TO, letter for letter."""
    async with connect(postgres_url) as db:
        await migrate(db)
    connection = await asyncpg.connect(postgres_url)
    try:
        for before, after in zip(FOLDED_FROM, FOLDED_TO, strict=True):
            lexemes = await connection.fetchval(
                "SELECT tsvector_to_array(to_tsvector('simple', persistence_search_text($1)))",
                f"x{before}x",
            )
            assert lexemes == [f"x{after}x".lower()], (before, lexemes)
    finally:
        await connection.close()


def sqlite_kept(database: Path, probes: dict[int, str]) -> set[int]:
    """The probes that the SQLite file's search index reads as one word, by its own tokenizer."""
    with contextlib.closing(sqlite3.connect(database)) as schema:
        (sql,) = schema.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'test_results_fts'"
        ).fetchone()
    with contextlib.closing(sqlite3.connect(":memory:")) as probe:
        probe.execute(sql.replace("test_results_fts", "probe", 1))
        probe.executemany("INSERT INTO probe (rowid, output) VALUES (?, ?)", probes.items())
        probe.execute("CREATE VIRTUAL TABLE words USING fts5vocab(probe, 'instance')")
        counts = probe.execute("SELECT doc, count(*) FROM words GROUP BY doc").fetchall()
    return {point for point, words in counts if words == 1}


async def test_a_search_word_is_a_word_of_both_indexes(
    pair: list[Database], tmp_path: Path
) -> None:
    """The search language keeps a character inside a word exactly when both indexes do.

    Checked for every code point below U+30000 that Python's Unicode assigns, between two
    letters. Where they differed, an engine was asked for pieces of a word it held whole, or
    for a whole word it held in pieces, and found nothing: PostgreSQL split `नमस्ते` at its
    virama, and SQLite kept `²` inside a word. The one exception is a few spacing marks.
    """
    points = (p for p in range(0x21, 0x30000) if unicodedata.category(chr(p)) not in {"Cn", "Cs"})
    probes = {point: f"a{chr(point)}b" for point in points if chr(point) not in "ab"}
    in_sqlite = sqlite_kept(tmp_path / "pair.db", probes)
    connection = await asyncpg.connect(pair[1].url)
    try:
        rows = await connection.fetch(
            "SELECT n FROM unnest($1::int[]) AS n WHERE length(to_tsvector('simple', "
            "persistence_search_text('a' || chr(n) || 'b'))) = 1",
            sorted(probes),
        )
    finally:
        await connection.close()
    in_both = in_sqlite & {row["n"] for row in rows}
    kept = {point for point, text in probes.items() if word_pattern(text).fullmatch(text)}
    assert len(kept) > 100_000  # letters and digits of every script
    assert ord("\u094d") in kept  # Devanagari's virama
    assert ord("\u00b2") not in kept  # superscript two
    assert not in_both - kept, sorted(map(hex, in_both - kept))[:20]
    assert not kept - in_both - SPLIT_BY_POSTGRES, sorted(map(hex, kept - in_both))[:20]
    assert kept - in_sqlite == set()


_MIXED_CHARS: Final = st.characters(
    categories=["L", "M", "Nd", "Nl", "No", "P", "Zs", "Cf", "S"], exclude_characters="\x00"
)
"""Letters, marks, numbers, punctuation, spaces, format characters and symbols."""


@ON_DATABASE
@example(texts=["\u0301segfault x² नमस्ते a\u200db ΟΔΟΣ ϑ"])
@given(texts=st.lists(st.text(_MIXED_CHARS, min_size=1, max_size=12), min_size=1, max_size=40))
async def test_each_search_word_is_one_word_when_written_and_when_searched(
    pair: list[Database], tmp_path: Path, texts: list[str]
) -> None:
    """Each word of the search text is one word of each index, when written and when searched.

    The test above puts each code point between two letters; this one puts them in any
    company: marks before, after and between letters, numbers, format characters. On SQLite
    the text and the search go through one tokenizer. On PostgreSQL the text goes through
    persistence_search_text() and the parser, the search through the term's own tsquery
    (folded, quoted), and both must give the same one lexeme.
    """
    found = {word for text in texts for word in word_pattern(text).findall(text)}
    words = sorted(w for w in found if not SPLIT_BY_POSTGRES.intersection(map(ord, w)))
    if not words:
        return
    in_sqlite = sqlite_kept(tmp_path / "pair.db", dict(enumerate(words, 1)))
    assert in_sqlite == set(range(1, len(words) + 1)), [
        ascii(w) for n, w in enumerate(words, 1) if n not in in_sqlite
    ]
    connection = await asyncpg.connect(pair[1].url)
    try:
        rows = await connection.fetch(
            "SELECT tsvector_to_array(to_tsvector('simple', persistence_search_text(w)))"
            " AS written, querytree(to_tsquery('simple', q)) AS searched"
            " FROM unnest($1::text[], $2::text[]) AS u(w, q)",
            words,
            [SearchTerm((word,)).tsquery() for word in words],
        )
    finally:
        await connection.close()
    for word, row in zip(words, rows, strict=True):
        assert len(row["written"]) == 1, (ascii(word), row["written"])
        assert row["searched"] == f"'{row['written'][0]}'", (ascii(word), row["searched"])


@given(text=st.text(st.characters(max_codepoint=127), max_size=40))
def test_ascii_text_has_the_same_words_by_either_pattern(text: str) -> None:
    """ASCII text, read with its own pattern, gives the words the pattern of any text gives."""
    assert word_pattern(text).findall(text) == word_pattern("é").findall(text)


WRITTEN_WITH_MARKS: Final = [
    "नमस्ते दुनिया",  # 0: Devanagari vowel signs and virama
    "ভাষা বাংলা",  # 1: Bengali
    "ภาษาไทย สวัสดี",  # 2: Thai vowel and tone marks
    "שָׁלוֹם עוֹלָם",  # 3: Hebrew points
    "cafe\u0301 re\u0301sume\u0301",  # 4: accents written as combining marks (NFD)
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("नमस्ते", [0]),
        ('"नमस्ते दुनिया"', [0]),
        ("दुनि*", [0]),
        ("বাংলা", [1]),
        ("สวัสดี", [2]),
        ("שָׁלוֹם", [3]),
        ("cafe\u0301", [4]),
        ("re\u0301sume\u0301", [4]),
    ],
)
async def test_words_written_with_marks_are_found_on_both_engines(
    pair: list[Database], text: str, expected: list[int]
) -> None:
    """A word with combining marks is found whole, and marked whole in its snippet, on both.

    PostgreSQL found none of these: the search split each word at its marks.
    """
    for db in pair:
        await save_results(
            db, [result(text, minutes=i) for i, text in enumerate(WRITTEN_WITH_MARKS)]
        )
        page = await search_results(db, text, limit=100)
        outputs = sorted(hit.result.output or "" for hit in page.items)
        assert outputs == sorted(WRITTEN_WITH_MARKS[i] for i in expected), (db.engine, text)
        for hit in page.items:
            assert hit.snippet.highlights, (db.engine, text, hit.snippet)


def test_fold_reads_the_table_letters_as_the_index_does() -> None:
    """fold() reads every letter of the table as the index does; fold_word() maps only those."""
    text = "ΟΔΟΣ οδος İstanbul ſ µ ϑ Straße"
    assert fold(text) == "οδοσ οδοσ istanbul s μ θ strasse"
    assert all(fold(a) == fold(b) for a, b in zip(FOLDED_FROM, FOLDED_TO, strict=True))
    assert fold_word("ΟΔΌΣ") == "ΟΔΌΣ"
    assert fold_word("οδός") == "οδόσ"


_SNIPPET_WORDS: Final = (
    "ΟΔΟΣ", "οδος", "οδός", "ΟΔΌΣ", "İstanbul", "istanbul", "ISTANBUL", "Straße", "STRASSE",
    "µs", "μs", "ſtate", "state", "ϑeta", "θeta", "ﬁle", "file", "漢字", "Ωmega", "ωmega",
    "café", "CAFÉ", "segfault", "core", "dumped", "ẛ", "ṡ",
)  # fmt: skip


@ON_DATABASE
@example(words=["ΟΔΟΣ"], search="οδοσ")
@example(words=["İstanbul"], search="İstanbul")
@example(words=["İstanbul", "x"], search="istanbul")
@given(
    words=st.lists(st.sampled_from(_SNIPPET_WORDS), min_size=1, max_size=12),
    search=st.one_of(
        st.sampled_from(_SNIPPET_WORDS),
        st.sampled_from(_SNIPPET_WORDS).map(str.upper),
        st.sampled_from(_SNIPPET_WORDS).map(str.lower),
        st.sampled_from(_SNIPPET_WORDS).map(lambda w: w[: max(1, len(w) // 2)] + "*"),
    ),
)
async def test_every_hit_marks_a_term_in_its_snippet(
    db: Database, words: list[str], search: str
) -> None:
    """Whatever the case or fold of the words, a hit's snippet marks at least one of them."""
    await save_result(db, result(" ".join(words), " ".join(reversed(words))))
    try:
        page = await search_results(db, search, limit=10_000)
    except ValidationError:
        return
    for hit in page.items:
        assert hit.snippet.highlights, (search, hit.snippet)
