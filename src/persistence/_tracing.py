"""Traces, the duration metric and the slow-query log of every query, in one place.

Each engine's adapter hands the call to the database's `Observer` when it has one; without
one, tracing costs the check `observer is None`. The span is started in the caller's task
around the whole call, so a statement run in a thread or queued for group commit is inside
it. docs/OBSERVABILITY.md gives the attributes (OpenTelemetry's stable database
conventions), and what is never recorded.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Final, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import attrs

from persistence._guards import argument, finite_amount, with_method
from persistence.exceptions import ValidationError
from persistence.queries import QUERY_FACTS

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.metrics import Histogram, MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

_T = TypeVar("_T")

SLOW_QUERY_VARIABLE: Final = "PERSISTENCE_SLOW_QUERY"
"""The environment variable read when no slow-query threshold is given: seconds."""

DURATION_BUCKETS: Final = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
"""The bucket boundaries, in seconds, that the conventions advise for the duration histogram."""

LOG: Final = logging.getLogger("persistence.queries")
"""Where a slow query is logged, at WARNING: its name and duration, never its parameters."""

_SYSTEM_NAMES: Final = {"sqlite": "sqlite", "postgres": "postgresql"}
_POSTGRES_PORT: Final = 5432


@attrs.frozen
class Tracing:
    """How queries are traced through OpenTelemetry: install the `otel` extra to use it.

    A provider left None is the global one when the database opens (the API's own, with no
    SDK, traces nothing). `parameters=True` records each parameter's value: off by default,
    since values may be personal or secret.
    """

    tracer_provider: TracerProvider | None = attrs.field(
        default=None, validator=lambda _, field, value: _provider(field.name, value, "get_tracer")
    )
    meter_provider: MeterProvider | None = attrs.field(
        default=None, validator=lambda _, field, value: _provider(field.name, value, "get_meter")
    )
    parameters: bool = attrs.field(
        default=False,
        kw_only=True,
        validator=lambda _, field, value: argument("Tracing", field.name, bool, value),
    )


def _provider(field: str, value: object, method: str) -> None:
    """Refuse what is no OpenTelemetry provider: it failed as a query was first traced."""
    if value is not None:
        with_method("Tracing", field, value, method, f"an OpenTelemetry provider (.{method}())")


@attrs.frozen
class _Traced:
    """What the spans and the metric of one query carry, worked out once at load."""

    name: str
    operation: str
    span: dict[str, AttributeValue]
    metric: dict[str, AttributeValue]

    def batch(self, size: int) -> _Traced:
        """Give the form of a batch of `size` parameter sets (two or more, or none)."""
        name = f"BATCH {self.name}"
        operation = f"BATCH {self.operation}".rstrip()
        changed = {"db.operation.name": operation, "db.query.summary": name}
        return _Traced(
            name,
            operation,
            {**self.span, **changed, "db.operation.batch.size": size},
            {**self.metric, **changed},
        )


class Observer:
    """Traces, measures and logs each query that an engine's adapter hands over."""

    def __init__(
        self,
        shared: Mapping[str, AttributeValue],
        *,
        tracer: Tracer | None,
        histogram: Histogram | None,
        parameters: bool,
        slow: float,
    ) -> None:
        self._shared = dict(shared)
        self._tracer = tracer
        self._histogram = histogram
        self._parameters = parameters
        self._slow = slow
        self._queries: dict[str, _Traced] = {}
        if tracer is not None:
            from opentelemetry import context, trace  # noqa: PLC0415  # the optional extra

            self._attach = context.attach
            self._detach = context.detach
            self._in_context: Callable[[Span], Context] = trace.set_span_in_context
            self._client = trace.SpanKind.CLIENT
            self._error = trace.StatusCode.ERROR

    def prepare(self, engine: str, query: str, sql: str) -> None:
        """Work out, once, what the spans of `query` carry: called from `process_sql`."""
        facts = QUERY_FACTS[engine].get(query)
        name = query if facts is None else facts.name
        operation = "" if facts is None else facts.operation
        metric = {**self._shared, "db.query.summary": name}
        if operation:
            metric["db.operation.name"] = operation
        if facts is not None and facts.table is not None:
            metric["db.collection.name"] = facts.table
        self._queries[query] = _Traced(name, operation, {**metric, "db.query.text": sql}, metric)

    async def observe(
        self, run: Awaitable[_T], query: str, parameters: object, batch: int | None = None
    ) -> _T:
        """Await one query's call inside its span, then record its duration and log it if slow.

        `batch` is the number of parameter sets of a bulk call, None for a single statement.
        """
        traced = self._queries[query]
        if batch is not None and batch != 1:
            traced = traced.batch(batch)
        span: Span | None = None
        token: Token[Context] | None = None
        if self._tracer is not None:
            attributes = traced.span
            if self._parameters and batch in (None, 1):  # a batch of one is a plain operation
                given = parameters if batch is None else _only(parameters)
                attributes = {**attributes, **_parameter_attributes(given)}
            try:  # the application's tracer: its failure must not change the query's outcome
                span = self._tracer.start_span(
                    traced.name, kind=self._client, attributes=attributes
                )
            except Exception as error:  # noqa: BLE001  # any error of the SDK or its processors
                _telemetry_failed(traced.name, error)
            else:
                token = self._attach(self._in_context(span))
        failure: dict[str, str] = {}
        start = time.perf_counter()
        try:
            return await run
        except BaseException as error:
            failure = _failure(error)
            raise
        finally:
            duration = time.perf_counter() - start
            try:
                self._record(traced, span, token, failure, duration)
            except Exception as error:  # noqa: BLE001  # the query's own result or error goes on
                _telemetry_failed(traced.name, error)
            if duration >= self._slow:
                outcome = f", failed with {failure['error.type']}" if failure else ""
                LOG.warning(
                    "slow query %s: %.3f s, over the %g s threshold%s",
                    traced.name,
                    duration,
                    self._slow,
                    outcome,
                    extra={"query": traced.name, "duration": duration},
                )

    def _record(
        self,
        traced: _Traced,
        span: Span | None,
        token: Token[Context] | None,
        failure: dict[str, str],
        duration: float,
    ) -> None:
        """End the query's span and record its duration (the application's SDK: it may raise)."""
        if span is not None and token is not None:  # set together
            self._detach(token)
            if failure:
                span.set_attributes(failure)
                span.set_status(self._error)
            span.end()
        if self._histogram is not None:
            metric = {**traced.metric, **failure} if failure else traced.metric
            self._histogram.record(duration, metric)


def _telemetry_failed(query: str, error: Exception) -> None:
    """Log, with its traceback, that tracing or measuring a query failed; the query's stands."""
    LOG.warning("tracing query %s failed; its outcome stands", query, exc_info=error)


def _only(parameter_sets: object) -> object:
    """Give the one parameter set of a batch of one (a list of one), or nothing to name."""
    if isinstance(parameter_sets, list | tuple) and len(parameter_sets) == 1:
        return parameter_sets[0]
    return None


def _parameter_attributes(parameters: object) -> dict[str, AttributeValue]:
    """Name each parameter's value, as text, the way the conventions' opt-in attribute does."""
    if isinstance(parameters, Mapping):
        return {f"db.query.parameter.{key}": str(value) for key, value in parameters.items()}
    if isinstance(parameters, list | tuple):
        return {f"db.query.parameter.{key}": str(value) for key, value in enumerate(parameters)}
    return {}


def _failure(error: BaseException) -> dict[str, str]:
    """Give a failure's `error.type`, and the database's own code for it if it gave one.

    The code is PostgreSQL's SQLSTATE or SQLite's error name (SQLITE_CONSTRAINT_UNIQUE), read
    from the error or the driver error it was raised from; without one, the error's class.
    """
    for candidate in (error, error.__cause__):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "sqlite_errorname", None)
        if isinstance(code, str) and code:
            return {"error.type": code, "db.response.status_code": code}
    kind = type(error)
    if kind.__module__ == "builtins":
        return {"error.type": kind.__qualname__}
    return {"error.type": f"{kind.__module__}.{kind.__qualname__}"}


def slow_threshold(given: float | None) -> float:
    """Give the slow-query threshold: `given`, else $PERSISTENCE_SLOW_QUERY, else none (inf)."""
    if given is not None:
        return finite_amount("open_database", "slow_query", given, "a number of seconds")
    text = os.environ.get(SLOW_QUERY_VARIABLE, "").strip()
    if not text:
        return math.inf
    try:
        value = float(text)
    except ValueError:
        reason = f"must be a number of seconds, got {text!r:.80}"
        raise ValidationError(SLOW_QUERY_VARIABLE, "value", reason) from None
    try:
        return finite_amount(SLOW_QUERY_VARIABLE, "value", value, "a number of seconds")
    except ValidationError as error:  # it read "nan" or "1e999" as the number: name the text
        reason = f"must be a finite number of seconds, 0 or more, got {text!r:.80}"
        raise ValidationError(SLOW_QUERY_VARIABLE, "value", reason) from error


def observer_for(
    engine: str, target: str, tracing: Tracing | None, slow_query: float | None
) -> Observer | None:
    """Give the observer of a database about to open; None when nothing would be recorded.

    `target` is what the driver connects to: a SQLite path, or a PostgreSQL URL, of which
    only the database name, the host and the port are kept.
    """
    slow = slow_threshold(slow_query)
    if tracing is not None:
        argument("open_database", "tracing", Tracing, tracing, "a Tracing or None")
    tracer, histogram = _instruments(tracing or Tracing())
    if tracer is None and histogram is None and math.isinf(slow):
        return None
    return Observer(
        _shared_attributes(engine, target),
        tracer=tracer,
        histogram=histogram,
        parameters=tracing is not None and tracing.parameters,
        slow=slow,
    )


OTEL_MODULES: Final = ("opentelemetry.trace", "opentelemetry.metrics")
"""The `otel` extra's modules an open reads: import them first, off the loop (80 to 250 ms)."""


def _instruments(tracing: Tracing) -> tuple[Tracer | None, Histogram | None]:
    """Give the tracer and the histogram, each None where no SDK's provider is set up.

    None where the `otel` extra's API was not imported (OTEL_MODULES): not installed.
    """
    if not all(name in sys.modules for name in OTEL_MODULES):
        return None, None
    try:
        from opentelemetry import metrics, trace  # noqa: PLC0415  # the optional extra, imported
    except ImportError:  # its import blocked since (None in sys.modules)
        return None, None
    tracer_provider = tracing.tracer_provider or trace.get_tracer_provider()
    meter_provider = tracing.meter_provider or metrics.get_meter_provider()
    tracer = None if _api_own(tracer_provider) else tracer_provider.get_tracer("persistence")
    if _api_own(meter_provider):
        return tracer, None
    return tracer, meter_provider.get_meter("persistence").create_histogram(
        "db.client.operation.duration",
        unit="s",
        description="Duration of database client operations.",
        explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
    )


def _api_own(provider: object) -> bool:
    """Tell whether a provider is the API's own stand-in (proxy or no-op): no SDK set up."""
    return type(provider).__module__.startswith(("opentelemetry.trace", "opentelemetry.metrics"))


def _shared_attributes(engine: str, target: str) -> dict[str, AttributeValue]:
    """Give the attributes every query of one database shares: system, namespace, server."""
    shared: dict[str, AttributeValue] = {"db.system.name": _SYSTEM_NAMES[engine]}
    if engine == "sqlite":
        shared["db.namespace"] = target
        return shared
    parts = urlsplit(target)
    # The database's name, in the path, or else in the query (`?dbname=`), as libpq reads it.
    database = unquote(parts.path.lstrip("/")) or parse_qs(parts.query).get("dbname", [""])[-1]
    if database:
        shared["db.namespace"] = database
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # several hosts, or no port that urllib reads: name none
        return shared
    host = unquote(host or "")  # a socket's folder, percent-encoded: no server address
    if host and "," not in parts.netloc and not host.startswith("/"):
        shared["server.address"] = host
        if port is not None and port != _POSTGRES_PORT:
            shared["server.port"] = port
    return shared
