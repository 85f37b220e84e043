"""Every query is an OpenTelemetry CLIENT span, measured and, when slow, logged."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import attrs
import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider, Span, SpanKind, StatusCode

from codegen.facts import query_facts
from persistence import (
    ConflictError,
    Database,
    NotFoundError,
    TestResult,
    TestStatus,
    TestType,
    Tracing,
    ValidationError,
    connect,
    get_config_value,
    get_result,
    migrate,
    open_persistence,
    save_result,
    save_results,
    search_results,
    set_config,
    transaction,
)
from persistence._interface import JsonObject
from persistence._tracing import SLOW_QUERY_VARIABLE, _shared_attributes, observer_for

SECRET = "hunter2-not-for-logs"  # noqa: S105  # a value that must never show


@attrs.frozen
class Telemetry:
    """An SDK set up for one test: its spans and its metrics, in memory."""

    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracing: Tracing

    def finished(self) -> list[ReadableSpan]:
        """The spans ended so far, the caller's own included."""
        return list(self.spans.get_finished_spans())

    def queries(self) -> list[ReadableSpan]:
        """The query spans ended so far."""
        return [s for s in self.finished() if s.kind is SpanKind.CLIENT]

    def durations(self) -> list[HistogramDataPoint]:
        """The data points of the duration histogram."""
        data = self.metrics.get_metrics_data()
        assert data is not None
        points: list[HistogramDataPoint] = []
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == "db.client.operation.duration":
                        assert metric.unit == "s"
                        points += [
                            p for p in metric.data.data_points if isinstance(p, HistogramDataPoint)
                        ]
        return points


def telemetry(*, parameters: bool = False) -> Telemetry:
    """Set up a tracer and a meter provider that keep what they record in memory."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[metrics])
    return Telemetry(
        spans, metrics, Tracing(tracer_provider, meter_provider, parameters=parameters)
    )


@pytest.fixture(name="otel")
def otel_fixture() -> Iterator[Telemetry]:
    """A fresh in-memory SDK, shut down after the test."""
    recorded = telemetry()
    yield recorded
    provider = recorded.tracing.tracer_provider
    assert isinstance(provider, TracerProvider)
    provider.shutdown()


@pytest.fixture(name="traced")
async def traced_db(database_url: str, otel: Telemetry) -> AsyncIterator[Database]:
    """A fresh, migrated, traced database of each engine in turn; the migration's spans cleared."""
    async with connect(database_url, tracing=otel.tracing) as db:
        await migrate(db)
        otel.spans.clear()
        yield db


def caller(otel: Telemetry) -> AbstractContextManager[Span]:
    """Start the caller's own span, under which the query spans must nest."""
    provider = otel.tracing.tracer_provider
    assert provider is not None
    return provider.get_tracer("test").start_as_current_span("caller")


def result() -> TestResult:
    """A passed unit test's result."""
    return TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED)


def by_name(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    """The one span of that name."""
    (found,) = [s for s in spans if s.name == name]
    return found


async def test_each_query_is_a_client_span_under_its_caller(
    traced: Database, otel: Telemetry
) -> None:
    """Spans carry the stable conventions' attributes, nest under the caller, keep no values.

    Each query's duration is a data point of db.client.operation.duration, in seconds. A
    failed query's span and data point carry error.type and the database's own code, and
    neither carries the error's message, which may quote a value.
    """
    with caller(otel):
        await set_config(traced, "runner", "token", SECRET)
        for _ in range(3):
            assert await get_config_value(traced, "runner", "token", str) == SECRET
        await save_results(traced, [result()] * 3)
        await save_results(traced, [result()])
    system = "sqlite" if traced.engine.value == "sqlite" else "postgresql"
    check_spans(otel, system)
    check_durations(otel)
    orphan = attrs.evolve(result(), run_id=987654, output=SECRET)
    with pytest.raises(ConflictError):
        await save_result(traced, orphan)
    check_failure(otel, "23503" if system == "postgresql" else "SQLITE_CONSTRAINT_FOREIGNKEY")


def check_spans(otel: Telemetry, system: str) -> None:
    """Each query span: its attributes, its parent, and no parameter value."""
    parent = by_name(otel.finished(), "caller")
    spans = otel.queries()
    assert spans
    for span in spans:
        assert span.parent is not None
        assert span.parent.span_id == parent.context.span_id
        attributes = dict(span.attributes or {})
        assert attributes["db.system.name"] == system
        assert attributes["db.namespace"]
        assert attributes["db.query.summary"] == span.name
        assert SECRET not in repr(attributes)
        assert not [key for key in attributes if key.startswith("db.query.parameter")]
    upsert = dict(by_name(spans, "UpsertConfigEntry").attributes or {})
    assert upsert["db.operation.name"] == "INSERT"
    assert upsert["db.collection.name"] == "config_entries"
    text = str(upsert["db.query.text"])
    assert "INSERT INTO config_entries" in text
    assert ("$1" if system == "postgresql" else ":section") in text
    assert "db.operation.batch.size" not in upsert
    batch = dict(by_name(spans, "BATCH InsertTestResults").attributes or {})
    assert batch["db.operation.batch.size"] == 3
    assert batch["db.operation.name"] == "BATCH INSERT"
    assert batch["db.collection.name"] == "test_results"
    single = dict(by_name(spans, "InsertTestResults").attributes or {})
    assert "db.operation.batch.size" not in single
    assert single["db.operation.name"] == "INSERT"


def check_durations(otel: Telemetry) -> None:
    """The duration histogram: a data point per query, in seconds, without the query's text."""
    points = {dict(p.attributes or {})["db.query.summary"]: p for p in otel.durations()}
    read = points["GetConfigEntryByKey"]
    assert read.count == 3
    assert 0 < read.sum < 5
    assert read.explicit_bounds[:3] == (0.001, 0.005, 0.01)
    measured = dict(read.attributes or {})
    assert measured["db.operation.name"] == "SELECT"
    assert measured["db.collection.name"] == "config_entries"
    assert "error.type" not in measured
    assert "db.query.text" not in measured
    assert points["BATCH InsertTestResults"].count == 1


def check_failure(otel: Telemetry, expected: str) -> None:
    """The failed insert's span and data point: error.type and the code, not the message."""
    span = by_name(otel.queries(), "InsertTestResult")
    assert span.status.status_code is StatusCode.ERROR
    assert not span.status.description
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == expected
    assert attributes["db.response.status_code"] == expected
    assert not span.events
    assert SECRET not in repr(attributes)
    failed = [p for p in otel.durations() if dict(p.attributes or {}).get("error.type") == expected]
    assert [p.count for p in failed] == [1]
    assert "db.query.text" not in dict(failed[0].attributes or {})


async def test_a_statement_run_in_a_thread_nests_under_its_caller(
    tmp_path: Path, otel: Telemetry
) -> None:
    """SQLite's thread-run statements (a long read, a bulk write in a transaction) nest too."""
    async with connect(tmp_path / "t.db", tracing=otel.tracing) as db:
        await migrate(db)
        otel.spans.clear()
        with caller(otel):
            async with transaction(db) as tx:
                await save_results(tx, [result()] * 2)
            await search_results(db, "anything")  # marked `-- runs: long`: read in a thread
    parent = by_name(otel.finished(), "caller")
    names = set()
    for span in otel.queries():
        assert span.parent is not None
        assert span.parent.span_id == parent.context.span_id
        names.add(span.name)
    assert {"BATCH InsertTestResults", "SearchTestResults"} <= names


@attrs.define
class FailingProcessor(SpanProcessor):
    """A span processor of the application's that raises when a span starts or ends."""

    at: str

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:  # noqa: ARG002  # the SDK's signature
        """Fail when asked to at a span's start."""
        if self.at == "start":
            raise RuntimeError("the processor failed at start")

    def on_end(self, span: ReadableSpan) -> None:  # noqa: ARG002  # the SDK's signature
        """Fail when asked to at a span's end."""
        if self.at == "end":
            raise RuntimeError("the processor failed at end")


@pytest.mark.parametrize("at", ["start", "end"])
async def test_a_failing_span_processor_never_changes_a_querys_outcome(
    database_url: str, caplog: pytest.LogCaptureFixture, at: str
) -> None:
    """A tracer that raises is logged on persistence.queries; each query's outcome stands.

    Its RuntimeError came out of every call: at a span's end, after a write had committed (a
    caller retrying it would write twice); at its start, with the query never run.
    """
    provider = TracerProvider()
    provider.add_span_processor(FailingProcessor(at))
    with caplog.at_level(logging.WARNING, logger="persistence.queries"):
        async with connect(database_url, tracing=Tracing(provider)) as db:
            await migrate(db)
            await set_config(db, "runner", "workers", 3)
            assert await get_config_value(db, "runner", "workers", int) == 3
            with pytest.raises(NotFoundError):
                await get_result(db, 10**6)
    provider.shutdown()
    failed = [r for r in caplog.records if "tracing" in r.getMessage()]
    assert failed
    assert all(r.name == "persistence.queries" and r.exc_info for r in failed)


async def test_parameters_are_recorded_only_when_asked(tmp_path: Path) -> None:
    """Tracing(parameters=True) records each value as db.query.parameter.<name>."""
    otel = telemetry(parameters=True)
    async with connect(tmp_path / "p.db", tracing=otel.tracing) as db:
        await migrate(db)
        await set_config(db, "runner", "token", SECRET)
    attributes = dict(by_name(otel.queries(), "UpsertConfigEntry").attributes or {})
    assert attributes["db.query.parameter.section"] == "runner"
    assert SECRET in str(attributes["db.query.parameter.value"])


async def test_a_bulk_insert_of_one_row_records_its_parameters(tmp_path: Path) -> None:
    """`save_results` of one row is a plain operation: its values are recorded, as asked.

    They were left out, as for a batch: a row saved alone by `save_result` had them.
    """
    otel = telemetry(parameters=True)
    async with connect(tmp_path / "p.db", tracing=otel.tracing) as db:
        await migrate(db)
        await save_results(db, [TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED)])
    span = next(s for s in otel.queries() if s.name.endswith("InsertTestResults"))
    attributes = dict(span.attributes or {})
    assert "db.operation.batch.size" not in attributes
    assert attributes["db.query.parameter.status"] == "passed"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://u@%2Fvar%2Frun%2Fpostgresql/app",
            {"db.namespace": "app"},
        ),
        (
            "postgresql://u@db.example:5433?dbname=app",
            {"db.namespace": "app", "server.address": "db.example", "server.port": 5433},
        ),
        (
            "postgresql://u@db.example/app?dbname=other",
            {"db.namespace": "app", "server.address": "db.example"},
        ),
    ],
    ids=["a socket's folder as host", "the name in the query", "the path first"],
)
def test_the_shared_attributes_read_the_url_as_the_driver_does(
    url: str, expected: dict[str, object]
) -> None:
    """A socket's percent-encoded folder is no server; a database named by `?dbname=` is named.

    The folder was given as `server.address`; the query's name was left out.
    """
    shared = _shared_attributes("postgres", url)
    assert shared == {"db.system.name": "postgresql", **expected}


async def test_metadata_encoded_ahead_is_recorded_as_its_text(tmp_path: Path) -> None:
    """Metadata past 32 kB goes to the engine as text encoded ahead: recorded as that text.

    A dict that holds no items stands for it, and was recorded as `{}`.
    """
    otel = telemetry(parameters=True)
    metadata: JsonObject = {"seed": 7, "numbers": list(range(10_000))}
    async with connect(tmp_path / "p.db", tracing=otel.tracing) as db:
        await migrate(db)
        await save_result(
            db,
            TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, metadata=metadata),
        )
    attributes = dict(by_name(otel.queries(), "InsertTestResult").attributes or {})
    assert json.loads(str(attributes["db.query.parameter.metadata"])) == metadata


async def test_a_slow_query_is_logged_by_name_without_its_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the threshold, a WARNING on persistence.queries names the query, never a value."""
    async with connect(tmp_path / "s.db", slow_query=0) as db:
        await migrate(db)
        with caplog.at_level(logging.WARNING, logger="persistence.queries"):
            await set_config(db, "runner", "token", SECRET)
    (record,) = [r for r in caplog.records if "UpsertConfigEntry" in r.getMessage()]
    assert record.name == "persistence.queries"
    assert record.levelno == logging.WARNING
    assert all(SECRET not in r.getMessage() for r in caplog.records)


async def test_the_threshold_comes_from_the_environment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$PERSISTENCE_SLOW_QUERY sets the threshold when open_persistence is given none."""
    monkeypatch.setenv(SLOW_QUERY_VARIABLE, "0")
    with caplog.at_level(logging.WARNING, logger="persistence.queries"):
        async with open_persistence(tmp_path / "e.db", files=tmp_path / "files") as p:
            await set_config(p.db, "runner", "workers", 2)
    assert any("UpsertConfigEntry" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "soon"])
async def test_a_bad_threshold_is_refused_before_anything_opens(
    tmp_path: Path, bad: object
) -> None:
    """A negative, NaN or non-number threshold is a ValidationError; no file is created."""
    with pytest.raises(ValidationError, match="slow_query"):
        await connect(tmp_path / "never.db", slow_query=bad).__aenter__()  # type: ignore[arg-type]  # the wrong type on purpose
    assert not (tmp_path / "never.db").exists()


@pytest.mark.parametrize("text", ["abc", "nan", "-1", "1e999"])
async def test_a_bad_threshold_in_the_environment_is_refused_as_it_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """The error shows the variable's text: "abc" was refused as "got nan"."""
    monkeypatch.setenv(SLOW_QUERY_VARIABLE, text)
    with pytest.raises(ValidationError, match=rf"^{SLOW_QUERY_VARIABLE}\.value: .* got '{text}'$"):
        await connect(tmp_path / "never.db").__aenter__()
    assert not (tmp_path / "never.db").exists()


def test_nothing_observes_without_an_sdk_or_a_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the API's own providers (no SDK set up) and no threshold, no observer exists."""
    monkeypatch.delenv(SLOW_QUERY_VARIABLE, raising=False)
    assert observer_for("sqlite", "x.db", None, None) is None
    assert observer_for("sqlite", "x.db", Tracing(NoOpTracerProvider()), None) is None
    assert observer_for("postgres", "postgresql://h/db", None, 1.0) is not None


async def test_without_the_extra_only_the_slow_log_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without opentelemetry importable, tracing is off and the slow-query log still works."""
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    assert observer_for("sqlite", "x.db", Tracing(), None) is None
    with caplog.at_level(logging.WARNING, logger="persistence.queries"):
        async with connect(tmp_path / "n.db", slow_query=0) as db:
            await migrate(db)
    assert any("ListAppliedMigrations" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("sql", "facts"),
    [
        ("SELECT id FROM runs WHERE id = ?", ("SELECT", "runs")),
        ("WITH old AS (SELECT id FROM runs) DELETE FROM runs WHERE id IN old", ("DELETE", "runs")),
        (
            "INSERT INTO runs (id) VALUES (?) ON CONFLICT (id) DO UPDATE SET id = 1",
            ("INSERT", "runs"),
        ),
        ("SELECT r.id FROM runs AS r JOIN test_results AS t ON t.run_id = r.id", ("SELECT", None)),
        ("-- UPDATE runs\nSELECT 'DELETE FROM runs' FROM test_results", ("SELECT", "test_results")),
    ],
)
def test_the_generator_names_each_query_verb_and_table(
    sql: str, facts: tuple[str, str | None]
) -> None:
    """The outermost statement's verb, and the one schema table named, comments and text aside."""
    assert query_facts(sql, {"runs": (), "test_results": ()}) == facts
