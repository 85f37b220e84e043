"""Circled and squared Latin letters separate words on both engines, as in the search text.

PostgreSQL's parser took `Ⓐ`-`ⓩ` (U+24B6-U+24E9) and most of U+1F130-U+1F189 (`🅰 🅱 🅾 🅿`),
symbols to Unicode, for letters, and kept them inside a word that SQLite's index and the
search text split there: `stepⓐ passed` was found by `step` on SQLite only. Migration 0021
makes PostgreSQL split there too. The second test looks for any character that PostgreSQL
alone keeps inside a word, so that the next such class is found by a test, not by a user.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Final

import asyncpg

from _early_rows import insert_early_results
from _search_helpers import found, result
from persistence import (
    Database,
    Engine,
    connect,
    migrate,
    save_result,
    save_results,
    search_results,
)
from persistence.migrations import discover_migrations, migrations_folder
from persistence.search._language import word_pattern
from strategies.filters import SPLIT_BY_POSTGRES

CORPUS: Final = [
    "step ⓐ passed",  # 0: the letter alone
    "stepⓐ passed",  # 1: glued to the end of a word
    "parking🅿 full",  # 2: a squared letter, an emoji
    "blood type A🅱 ok",  # 3
    "Ⓐlpha🄰beta ⓩ",  # 4: at the start of a word, and between two words
    "🅾🅾🅾",  # 5: nothing but such letters
    "①x ⓧ",  # 6: a circled number beside them, split before 0021 as well
]

SEARCHES: Final = [
    ("step", [0, 1]),
    ("passed", [0, 1]),
    ("parking", [2]),
    ("full", [2]),
    ("blood A", [3]),
    ('"type a ok"', [3]),
    ("lpha", [4]),
    ("beta", [4]),
    ('"lpha beta"', [4]),
    ("x", [6]),
    ("alpha", []),
    ("ok", [3]),
]


async def test_a_word_touching_a_circled_letter_is_found_alike(db: Database) -> None:
    """A word glued to a circled or squared letter is found by itself, on both engines."""
    ids = [
        (await save_result(db, result(text, minutes=i))).id or 0 for i, text in enumerate(CORPUS)
    ]
    for text, expected in SEARCHES:
        assert sorted(await found(db, text)) == sorted(ids[i] for i in expected), (db.engine, text)
    page = await search_results(db, "parking")
    assert [hit.snippet.marked() for hit in page.items] == ["[parking]🅿 full"]


async def test_postgres_keeps_inside_a_word_only_what_the_search_text_does(
    migrated_postgres_url: str,
) -> None:
    """No character that Python's Unicode assigns is kept inside a word by PostgreSQL alone.

    Each code point is put between two letters and read by PostgreSQL's index, then by
    `word_pattern()`, which splits the search text as SQLite's index splits the stored text.
    A character PostgreSQL keeps and the search text splits at makes a word glued to it
    unfound on PostgreSQL alone, as the circled letters did before 0021. The other way round,
    only the 23 spacing marks of `SPLIT_BY_POSTGRES` differ (docs/SEARCH.md). About a second.
    """
    points = [
        point
        for point in range(0x21, 0x110000)
        if unicodedata.category(chr(point)) not in {"Cn", "Cs"} and chr(point) not in "ab"
    ]
    connection = await asyncpg.connect(migrated_postgres_url)
    try:
        rows = await connection.fetch(
            "SELECT n FROM unnest($1::int[]) AS n WHERE length(to_tsvector('simple', "
            "persistence_search_text('a' || chr(n) || 'b'))) = 1",
            points,
        )
    finally:
        await connection.close()
    in_postgres = {row["n"] for row in rows}
    kept = {
        point for point in points if word_pattern(f"a{chr(point)}b").fullmatch(f"a{chr(point)}b")
    }
    assert len(in_postgres) > 100_000  # letters and digits of every script
    assert ord("\u094d") in in_postgres  # Devanagari's virama, a mark
    only_postgres = sorted(in_postgres - kept)
    assert not only_postgres, [f"U+{p:04X} {unicodedata.category(chr(p))}" for p in only_postgres][
        :40
    ]
    assert kept - in_postgres <= SPLIT_BY_POSTGRES, sorted(map(hex, kept - in_postgres))[:20]


async def test_migration_0021_reindexes_existing_rows(database_url: str, tmp_path: Path) -> None:
    """Rows saved before 0021 are found by the words glued to such letters once it has run.

    On PostgreSQL it writes again only the rows holding one of these letters.
    """
    async with connect(database_url) as db:
        early = tmp_path / "early"
        early.mkdir()
        for migration in discover_migrations(migrations_folder(db.engine)):
            if migration.version < 21:  # the migration under test
                (early / migration.path.name).write_text(migration.sql, encoding="utf-8")
        await migrate(db, package_folder=early)
        await insert_early_results(
            db.url,
            [
                result("stepⓐ passed"),
                result("plain", "parking🅿 full"),
                result("नमस्ते दुनिया"),
                result("plain ascii"),
            ],
        )
        before = await row_versions(db)
        if db.engine is Engine.POSTGRES:
            assert await found(db, "step") == []  # indexed as `stepⓐ`
        assert [m.version for m in await migrate(db)][:1] == [21]
        assert len(await found(db, "step")) == 1
        assert len(await found(db, "parking")) == 1
        assert len(await found(db, "नमस्ते")) == 1
        assert len(await found(db, "ascii")) == 1
        await save_results(db, [result("step🅐 again")])
        assert len(await found(db, "step")) == 2  # the old row and the new
        if db.engine is Engine.POSTGRES:
            after = await row_versions(db)
            assert [before[i] == after[i] for i in sorted(before)] == [False, False, True, True]


async def row_versions(db: Database) -> dict[int, str]:
    """Each PostgreSQL row's xmin, by id, which changes when the row is written; {} on SQLite."""
    if db.engine is not Engine.POSTGRES:
        return {}
    connection = await asyncpg.connect(db.url)
    try:
        rows = await connection.fetch("SELECT id, xmin::text AS version FROM test_results")
    finally:
        await connection.close()
    return {row["id"]: row["version"] for row in rows}
