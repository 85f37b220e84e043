"""Full-text search over results, on each engine, and the same matches on both."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from persistence import (
    Database,
    ResultFilter,
    SearchCursor,
    SearchHit,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    connect,
    delete_result,
    delete_results_before,
    migrate,
    save_result,
    save_results,
    search_results,
    transaction,
)
from persistence._backend import Engine
from persistence._interface import JsonValue
from persistence.search import INDEXED_CHARS
from strategies import ON_DATABASE
from strategies.filters import SPLIT_BY_POSTGRES, search_texts
from strategies.hostile import hostile_values

T0: Final = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def result(
    output: str | None,
    error: str | None = None,
    *,
    status: TestStatus = TestStatus.FAILED,
    test_type: TestType = TestType.STRESS,
    minutes: int = 0,
    **metadata: JsonValue,
) -> TestResult:
    """A result with this output and error message."""
    return TestResult(
        test_type=test_type,
        status=status,
        output=output,
        error_message=error,
        created_at=T0 + dt.timedelta(minutes=minutes),
        metadata=metadata,
    )


async def found(db: Database, text: str, where: ResultFilter | None = None) -> list[str]:
    """The outputs of every result a search finds, best first."""
    page = await search_results(db, text, where, limit=10_000)
    return [hit.result.output or "" for hit in page.items]


async def searched(db: Database, text: str) -> tuple[SearchHit, ...] | ValidationError:
    """Every hit of a search, or the ValidationError it raises."""
    try:
        return (await search_results(db, text, limit=10_000)).items
    except ValidationError as error:
        return error


CORPUS: Final = [
    "Segmentation fault in solve() at solve.cpp:42",
    "segmentation-fault: core dumped",
    "fault: segmentation of the input",
    "Time limit exceeded on case 17",
    "all 42 cases passed",
    "café au lait; CAFÉ NOIR",
    "naïve Bayes Привет мир 漢字テスト",
    "x86_64 build of /usr/lib/libsolve.so v1.2.3",
    "solver solved solving",
]

SEARCHES: Final = [
    ("segmentation", [0, 1, 2]),
    ("SEGMENTATION fault", [0, 1, 2]),
    ('"segmentation fault"', [0, 1]),
    ('"fault segmentation"', [2]),
    ("segmentation -core", [0, 2]),
    ('segmentation -"core dumped"', [0, 2]),
    ("solve", [0]),
    ("solv*", [0, 8]),
    ("solve.cpp", [0]),
    ('"solve cpp"', [0]),
    ("cpp:42", [0]),
    ("42", [0, 4]),
    ("café", [5]),
    ("cafe", []),
    ("caf*", [5]),
    ("привет", [6]),
    ("漢字テスト", [6]),
    ("x86", [7]),
    ("64 build", [7]),
    ("libsolve so", [7]),
    ("v1.2.3", [7]),
    ('"v1 2"*', [7]),
    ('"1 2"', []),
    ("time -limit", []),
    ("nothing", []),
]


@pytest.fixture(name="corpus")
async def corpus_db(db: Database) -> Database:
    """The test's database, holding one failed result per line of CORPUS."""
    await save_results(db, [result(text, minutes=i) for i, text in enumerate(CORPUS)])
    return db


@pytest.mark.parametrize(("text", "expected"), SEARCHES)
async def test_finds_words_phrases_prefixes_and_exclusions(
    corpus: Database, text: str, expected: list[int]
) -> None:
    """Each form of the language finds the results it describes, and no others."""
    assert sorted(await found(corpus, text)) == sorted(CORPUS[i] for i in expected)


async def test_matches_either_field_and_phrases_do_not_match_out_of_order(db: Database) -> None:
    """A word may be in the output or the error message; a phrase's words must be in order."""
    await save_results(
        db,
        [
            result("core dumped", "signal 11"),
            result(None, "Segmentation fault (core dumped)"),
            result("dumped core", None),
        ],
    )
    assert sorted(await found(db, "signal")) == ["core dumped"]
    assert await found(db, '"core dumped"') in (["core dumped", ""], ["", "core dumped"])
    assert len(await found(db, "core dumped")) == 3


async def test_best_matches_come_first(db: Database) -> None:
    """Results are ranked: the one that says the word most, in the fewest words, comes first."""
    filler = " ".join(f"word{i}" for i in range(60))
    await save_results(
        db,
        [
            result(f"timeout {filler}"),
            result("timeout timeout timeout"),
            result(f"{filler} timeout {filler}"),
        ],
    )
    page = await search_results(db, "timeout")
    assert page.items[0].result.output == "timeout timeout timeout"
    scores = [hit.score for hit in page.items]
    assert scores == sorted(scores, reverse=True)
    assert all(score > 0 for score in scores)


async def test_hits_carry_the_stored_result_and_a_snippet(db: Database) -> None:
    """A hit is the result as stored, with its id, and a snippet marking what matched."""
    saved = await save_result(
        db, result("stress run\nSegmentation fault in solve()", "exit 139", seed=7)
    )
    (hit,) = (await search_results(db, '"segmentation fault" solve')).items
    assert isinstance(hit, SearchHit)
    assert hit.result == saved
    assert hit.snippet.field == "output"
    assert hit.snippet.marked() == "stress run [Segmentation] [fault] in [solve]()"


async def test_filters_narrow_a_search(db: Database) -> None:
    """Every field of a ResultFilter narrows a search as it narrows a listing."""
    await save_results(
        db,
        [
            result("overflow a", status=TestStatus.FAILED, minutes=1, solution="a.cpp"),
            result("overflow b", status=TestStatus.ERROR, minutes=2, solution="b.cpp"),
            result("overflow c", status=TestStatus.PASSED, minutes=3, solution="a.cpp"),
            result("overflow d", test_type=TestType.UNIT, minutes=4, solution="a.cpp"),
        ],
    )
    cases = [
        (ResultFilter(statuses={TestStatus.FAILED, TestStatus.ERROR}), ["a", "b", "d"]),
        (ResultFilter(status=TestStatus.PASSED), ["c"]),
        (ResultFilter(test_types={TestType.UNIT}), ["d"]),
        (ResultFilter(metadata={"solution": "a.cpp"}), ["a", "c", "d"]),
        (ResultFilter(metadata={"solution": "a.cpp"}, test_type=TestType.STRESS), ["a", "c"]),
        (ResultFilter(created_from=T0 + dt.timedelta(minutes=2)), ["b", "c", "d"]),
        (ResultFilter(created_until=T0 + dt.timedelta(minutes=2)), ["a"]),
        (ResultFilter(statuses=set()), []),
    ]
    for where, expected in cases:
        outputs = await found(db, "overflow", where)
        assert sorted(outputs) == [f"overflow {x}" for x in expected], where


async def test_pages_go_through_every_match_once(db: Database) -> None:
    """Following next_cursor gives every match once; the cursor keeps the text and filter."""
    await save_results(db, [result(f"flaky run {i}", minutes=i) for i in range(7)])
    await save_result(db, result("flaky run but passed", status=TestStatus.PASSED))
    where = ResultFilter(status=TestStatus.FAILED)
    seen: list[int] = []
    page = await search_results(db, "flaky", where, limit=3)
    while True:
        seen += [hit.result.id or 0 for hit in page.items]
        if page.next_cursor is None:
            break
        assert page.next_cursor.where == where
        page = await search_results(db, "flaky", limit=3, after=page.next_cursor)
    assert len(seen) == len(set(seen)) == 7


async def test_results_written_between_pages_move_the_matches_as_documented(db: Database) -> None:
    """Pages are offsets into a ranking made again for each page (docs/SEARCH.md, Pages).

    On PostgreSQL a match's score is its own: results that do not match, written between two
    pages, move nothing. On SQLite bm25 weighs each match by the row count and the average
    length of every result with text: those same writes reorder the matches, and the second
    page repeated the first whole, where the documentation promised a shift of a place.
    """
    await save_results(db, [result("crash", minutes=i) for i in range(5)])
    await save_results(db, [result("crash crash w w", minutes=i) for i in range(5)])
    first = await search_results(db, "crash", limit=5)
    filler = " ".join(["filler"] * 200)
    await save_results(db, [result(filler, status=TestStatus.PASSED) for _ in range(20)])
    second = await search_results(db, "crash", limit=5, after=first.next_cursor)
    ids = [hit.result.id for page in (first, second) for hit in page.items]
    if db.engine is Engine.POSTGRES:
        assert len(set(ids)) == 10
    else:
        assert len(set(ids)) == 5


async def test_a_cursor_for_another_search_is_refused(db: Database) -> None:
    """A cursor used with other text or another filter is refused, naming which."""
    await save_results(db, [result("flaky") for _ in range(3)])
    page = await search_results(db, "flaky", ResultFilter(status=TestStatus.FAILED), limit=1)
    cursor = page.next_cursor
    assert cursor is not None
    with pytest.raises(ValidationError, match=r"SearchCursor\.text"):
        await search_results(db, "other", after=cursor)
    with pytest.raises(ValidationError, match=r"SearchCursor\.where"):
        await search_results(db, "flaky", ResultFilter(), after=cursor)
    by_value: Any = "failed"  # the status's value names it as well as the member
    same = await search_results(db, "flaky", ResultFilter(status=by_value), after=cursor)
    assert len(same.items) == 2


async def test_the_index_follows_updates_and_deletes(db: Database) -> None:
    """Changing, deleting or expiring a result changes what a search finds, at once."""
    saved = await save_result(db, result("alpha beta", minutes=5))
    assert await found(db, "alpha") == ["alpha beta"]
    assert saved.id is not None
    await save_result(db, attrs.evolve(saved, output="gamma", error_message="delta"))
    assert await found(db, "alpha") == []
    assert await found(db, "gamma delta") == ["gamma"]
    await save_result(db, attrs.evolve(saved, output="gamma", metadata={"retried": True}))
    assert await found(db, "gamma") == ["gamma"]
    assert await found(db, "delta") == []
    assert await delete_result(db, saved.id)
    assert await found(db, "gamma") == []
    await save_results(db, [result("old news", minutes=-10), result("new news", minutes=10)])
    assert await delete_results_before(db, T0) == 1
    assert await found(db, "news") == ["new news"]


async def test_a_rolled_back_write_leaves_the_index_as_it_was(db: Database) -> None:
    """Results saved in a transaction that rolls back are not found, and the rest still are."""
    await save_result(db, result("kept"))
    with pytest.raises(RuntimeError):
        async with transaction(db) as tx:
            await save_results(tx, [result("kept lost") for _ in range(3)])
            raise RuntimeError
    assert await found(db, "kept") == ["kept"]


async def test_a_bulk_insert_fails_whole_even_past_its_first_statement(db: Database) -> None:
    """A batch bigger than one statement, whose last row the database refuses, saves nothing."""
    batch = [result(f"bulk row {i}") for i in range(1_234)]
    broken = attrs.evolve(batch[-1])
    object.__setattr__(broken, "test_cases_passed", 5)  # past its total: only a CHECK stops it
    with pytest.raises(ValidationError):
        await save_results(db, [*batch[:-1], broken])
    assert await found(db, "bulk") == []
    assert await save_results(db, batch) == 1_234
    assert len(await found(db, "bulk row")) == 1_234


async def test_only_the_indexed_characters_are_searched(db: Database) -> None:
    """The first INDEXED_CHARS characters of each text are searched, the rest are not."""
    head = "a " * (INDEXED_CHARS // 2 - 4)
    await save_result(db, result(head + "inside " + "outside", head + "again"))
    assert len(await found(db, "inside")) == 1
    assert await found(db, "outside") == []
    assert len(await found(db, "again")) == 1


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "has no word"), ("-only", "needs a word"), ("?!", "has no word")],
)
async def test_text_without_a_word_is_refused(db: Database, text: str, reason: str) -> None:
    """A search with nothing to find is refused by name, before any query runs."""
    with pytest.raises(ValidationError, match=reason) as raised:
        await search_results(db, text)
    assert (raised.value.model, raised.value.field) == ("SearchQuery", "text")


@pytest.mark.parametrize("given", [None, 42, 2.5, b"word", ["word"]])
async def test_text_that_is_no_str_is_refused_by_name(db: Database, given: object) -> None:
    """A search of anything but a str is refused by name, whatever searches came before.

    An int or a list was an AttributeError of the look for text beyond ASCII, before the
    text's own check.
    """
    hostile: Any = given
    with pytest.raises(ValidationError, match=r"SearchQuery\.text: expected str"):
        await search_results(db, hostile)


@ON_DATABASE
@example(text='"unclosed phrase with * and - and OR')
@example(text="'; DROP TABLE test_results; --")
@example(text="a* NEAR(b c) ^d col:e {f g}:h")
@given(text=search_texts())
async def test_any_text_gives_matches_or_a_validation_error(db: Database, text: str) -> None:
    """Whatever a user types, a search returns a page or ValidationError, never an engine error."""
    await save_results(db, [result("Segmentation fault in solve() at a.cpp:42", "café x_y 42")])
    answer = await searched(db, text)
    if isinstance(answer, ValidationError):
        assert (answer.model, answer.field) == ("SearchQuery", "text")
        return
    for hit in answer:
        assert hit.result.id is not None


@ON_DATABASE
@given(limit=hostile_values(), offset=hostile_values(), cursor_text=hostile_values())
async def test_bad_limits_and_cursors_are_refused(
    db: Database, limit: object, offset: object, cursor_text: object
) -> None:
    """A limit or a cursor that is not what it must be is refused by name."""
    bad: Any = limit
    if type(limit) is not int or not 1 <= limit <= 10_000:
        with pytest.raises(ValidationError, match=r"SearchQuery\.limit"):
            await search_results(db, "word", limit=bad)
    values: Any = (offset, cursor_text)
    if not (type(offset) is int and 0 <= offset < 2**63 and isinstance(cursor_text, str)):
        with pytest.raises(ValidationError, match=r"SearchCursor\.(offset|text)"):
            SearchCursor(*values)
    with pytest.raises(ValidationError, match=r"SearchCursor\.after"):
        await search_results(db, "word", after=values)


# --- the same matches on both engines ----------------------------------------------------------

_VOCABULARY: Final = (
    "segfault", "Segmentation", "fault", "core", "dumped", "solve", "Solver", "solving",
    "timeout", "TLE", "case", "42", "007", "3", "x86", "64", "cpp", "main", "café", "CAFÉ",
    "naïve", "Straße", "Привет", "привет", "Ωmega", "ωmega", "漢字", "テスト", "e5", "1e5",
    "overflow", "underflow", "ok", "OK", "aa", "aaa", "ab", "ΟΔΟΣ", "οδος", "οδός", "İstanbul",
    "istanbul", "\u017ftate", "µs", "ϑeta", "ﬁle",
)  # fmt: skip
_SEPARATORS: Final = (
    " ", " ", " ", "\n", ".", "-", "/", ":", "_", "(", ")", ", ", "—", "“", "”", "\t", "'", "@",
    "<", ">", "&", "+", "=", "#", "%", "\\", "...", " - ", "://", "\u00a0",
)  # fmt: skip


def _text(rng: random.Random, words: int) -> str:
    parts = [rng.choice(_VOCABULARY)]
    for _ in range(words - 1):
        parts += [rng.choice(_SEPARATORS), rng.choice(_VOCABULARY)]
    return "".join(parts)


def shared_corpus(size: int = 240, seed: int = 13) -> list[TestResult]:
    """Results with output and error messages made of a mixed vocabulary and separators."""
    rng = random.Random(seed)  # noqa: S311  # test data
    return [
        result(
            _text(rng, rng.randint(1, 30)),
            None if rng.random() < 0.3 else _text(rng, rng.randint(1, 8)),
            minutes=index,
        )
        for index in range(size)
    ]


@pytest.fixture(name="both")
async def both_engines(tmp_path: Path, postgres_url: str) -> AsyncIterator[list[Database]]:
    """A SQLite and a PostgreSQL database holding the same shared corpus."""
    async with connect(tmp_path / "parity.db") as lite, connect(postgres_url) as pg:
        for db in (lite, pg):
            await migrate(db)
            await save_results(db, shared_corpus())
        yield [lite, pg]


@st.composite
def corpus_searches(draw: st.DrawFn) -> str:
    """Searches built from the corpus's words: words, phrases, prefixes, exclusions, any case."""
    word = st.sampled_from(_VOCABULARY)
    cased = st.tuples(word, st.sampled_from(["as is", "lower", "upper"])).map(
        lambda pair: pair[0] if pair[1] == "as is" else getattr(pair[0], pair[1])()
    )
    term = st.one_of(
        cased,
        cased.map(lambda w: w[: max(1, len(w) // 2)] + "*"),
        st.lists(cased, min_size=2, max_size=3).map(lambda ws: '"' + " ".join(ws) + '"'),
        st.tuples(cased, st.sampled_from(_SEPARATORS), cased).map("".join),
    )
    terms = draw(st.lists(st.tuples(st.booleans(), term), min_size=1, max_size=3))
    return " ".join(("-" if excluded else "") + text for excluded, text in terms)


@ON_DATABASE
@example(text='"segfault core"')
@example(text="solv* -timeout")
@example(text="café")
@example(text="Ωmega")
@example(text="1e5")
@example(text="οδοσ")
@example(text="ISTANBUL")
@example(text="state -µs")
@example(text='²"SEGFAULT')  # other numbers split words in one index only
@example(text="SEGFAULT²")
@example(text="\u0301segfault")  # a mark before a word: PostgreSQL's index drops it
@given(
    text=st.one_of(corpus_searches(), search_texts()).filter(
        lambda text: not SPLIT_BY_POSTGRES.intersection(map(ord, text))
    )
)
async def test_both_engines_find_the_same_results(both: list[Database], text: str) -> None:
    """On one corpus, a search finds the same set of results, with the same snippets, on both.

    Unless the search holds one of the spacing marks that only PostgreSQL's index splits at.

    Every hit's snippet marks at least one word.
    """
    answers: list[object] = []
    for db in both:
        answer = await searched(db, text)
        if isinstance(answer, ValidationError):
            answers.append(str(answer))
        else:
            answers.append({(hit.result.created_at, hit.snippet) for hit in answer})
            assert all(hit.snippet.highlights for hit in answer), text
    assert answers[0] == answers[1]
