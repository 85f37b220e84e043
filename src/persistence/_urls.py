"""Database URLs: which engine a URL or path names, what its driver connects to, and how to show it.

Every URL is checked here before anything opens; a bad one is a `DatabaseError` saying why,
with no password in it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Final, Literal
from urllib.parse import quote, unquote, unquote_plus, urlparse

from persistence._backend import Engine
from persistence._guards import home_problem
from persistence._postgres.pooling import check_listen_url, pgbouncer_mode_problem, split_pooling
from persistence.exceptions import DatabaseError, ValidationError

PgBouncerMode = Literal["transaction"]
"""The PgBouncer pool mode the package is told of: `pool_mode = transaction`."""

DEFAULT_DATABASE: Final = Path("data/app.db")
"""The embedded default, relative to the working directory."""


_QUERY_KEY: Final = re.compile(r"[?&](?P<name>(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})+)=")
"""A query option's key, perhaps spelt with percent-escapes, which asyncpg and
`split_pooling` decode: `pass%77ord=` is `password=`."""
_ALIASES: Final = {"database": "dbname"}
"""Query options the driver reads as one, by the name it keeps."""
_PASSWORD_KEYS: Final = frozenset({"password", "sslpassword"})
_SCHEME: Final = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):")
_MAX_PORT: Final = 65535
_MISSING_COLON: Final = re.compile(r"(?i)(?P<scheme>postgres|postgresql|sqlite)//")
"""A path that is a URL whose scheme lost its ':' (`postgresql//u:p@h/db`): it was a SQLite
file, in folders named after the user, password and host."""
_COLON_LOST: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*//")
"""The start of a URL whose scheme lost its ':' (`redis//:p@h`): shown, its password hidden."""
_SESSION_ATTRS: Final = "target_session_attrs"
_SESSION_ATTRS_TAKEN: Final = (
    "any",
    "primary",
    "standby",
    "prefer-standby",
    "read-write",
    "read-only",
)
"""The servers a connection may be made to, as the driver reads `target_session_attrs`."""


def redact_url(url: str | os.PathLike[str]) -> str:
    """Give a URL fit to print, passwords as `***` (user part, query, listen_url); never fails."""
    text = os.fspath(url)
    start, end = _authority(text)
    at = _user_end(text, start, end)
    if at < 0:  # a password cut short by a '?' may still end at an '@': hiding more is safe
        at = _cut_password_end(text, start, end)
    user = text[start:at] if at >= 0 else ""
    if ":" in user:
        text = f"{text[:start]}{user.partition(':')[0]}:***{text[at:]}"
    return _redact_query(text)


def _redact_query(text: str) -> str:
    """Hide the value of each `password=` and `sslpassword=`, and the password in `listen_url=`.

    Keys are compared decoded, as the driver and `split_pooling` read them; a value runs to
    the next `&` or `#`, and an option's key inside a value already hidden is not looked at.
    """
    parts: list[str] = []
    done = 0
    for found in _QUERY_KEY.finditer(text):
        name = unquote(found["name"])
        if found.start() < done or not (name.lower() in _PASSWORD_KEYS or name == "listen_url"):
            continue
        ends = [i for i in (text.find(c, found.end()) for c in "&#") if i >= 0]
        end = min(ends, default=len(text))
        value = text[found.end() : end]
        if name == "listen_url":
            inner = unquote(value)
            shown = redact_url(inner)
            value = value if shown == inner else quote(shown, safe="*")
        else:
            value = "***"
        parts += [text[done : found.end()], value]
        done = end
    return "".join(parts) + text[done:]


def _authority(url: str) -> tuple[int, int]:
    """Where the `user:password@host:port` part of a URL starts and ends (empty without one).

    A URL whose `//` is short (`postgresql:/u:p@h/db`, `postgresql:u:p@h`), or whose scheme
    lost its ':' (`postgresql//u:p@h`), is refused, and shown: its authority is read from after
    its scheme and slashes, so that its password is shown hidden.
    """
    scheme_end = url.find("://")
    if scheme_end >= 0:
        start = scheme_end + 3
    elif (scheme := _SCHEME.match(url) or _COLON_LOST.match(url)) is not None and "@" in url:
        start = scheme.end() + len(url[scheme.end() :]) - len(url[scheme.end() :].lstrip("/"))
    else:
        return 0, 0
    ends = [i for i in (url.find(c, start) for c in "/?#") if i >= 0]
    return start, min(ends, default=len(url))


def _user_end(text: str, start: int, end: int) -> int:
    """Where the user part of a URL ends: the index of its `@`, else -1.

    A password whose `/`, `?` or `#` was not percent-encoded ends the authority early, and its
    `@` comes after: then the user part ends at the last later `@` that is not a query value's.
    When the authority has an `@` too, the later is taken all the same: hiding more is safe.
    """
    at = text.rfind("@", start, end)
    if ":" not in text[start:end]:  # neither a password nor a port: nothing is cut short
        return at
    later = len(text)
    while (later := text.rfind("@", end, later)) >= 0:
        question = text.find("?", end, later)
        if question < 0 or "=" not in text[question:later]:
            return later
    return at


def _cut_password_end(text: str, start: int, end: int) -> int:
    """Where a password that an unencoded '?' or '#' cut short ends: a later '@', else -1.

    `_user_end` takes an '@' after `?name=` for a query value's; one with no '/' between the
    authority's end and itself is taken for the password's end here, where only hiding or
    naming the encoding is at stake.
    """
    if ":" not in text[start:end] or end >= len(text) or text[end] == "/":
        return -1
    at = text.find("@", end)
    return at if at >= 0 and "/" not in text[end:at] else -1


def _check_postgres_url(url: str) -> None:
    """Refuse a PostgreSQL URL whose hosts or ports the driver could not read, saying why."""
    start, end = _authority(url)
    if url.count("@", start, end) > 1:
        # The driver splits at the first: the rest of the password would be read as hosts,
        # and quoted in the errors about them. Quote none of it.
        raise _bad_url(
            url,
            "its user part holds an '@' that is not percent-encoded: percent-encode an '@' in "
            "the user or password as %40",
        )
    try:
        _check_hosts(url, url[start:end])
    except DatabaseError:
        if _user_end(url, start, end) < end and _cut_password_end(url, start, end) < 0:
            raise
        # What looked like a host is the start of the password: say so, and quote none of it.
        raise _bad_url(
            url,
            "its password holds a '/', '?' or '#' that is not percent-encoded: "
            "percent-encode them as %2F, %3F and %23",
        ) from None
    # What the driver reads (not the fragment), as it reads it: the server took either for a
    # broken message, "invalid startup packet layout", naming nothing.
    head = url.partition("#")[0]
    if "\r" in url or "\n" in url:
        raise _bad_url(
            url, "it holds a line end, which no URL does (a CRLF line end from an env file?)"
        )
    if "\0" in unquote(head):
        raise _bad_url(
            url, "it holds a NUL character (%00), which PostgreSQL takes in no name or value"
        )
    options = head.partition("?")[2].split("&")
    if any(part[:1] == "=" != part for part in options):  # a bare "=" the driver reads past
        raise _bad_url(url, "it has a query option without a name ('=...'): name it, or drop it")
    _check_repeats(url, options)
    _check_given_in_both(url, head, options)
    given: dict[str, str] = {}  # each option's value, decoded; a blank one the driver reads past
    for part in options:
        name, value = map(unquote, part.partition("=")[::2])
        if name in _LIBPQ_ONLY:
            instead = " (pass connect_timeout= to open_database or open_persistence)"
            raise _bad_url(
                url,
                f"{name}= is an option of libpq, which this package's driver does not take: it"
                " would send it to the server as a setting, which refuses it; leave it out"
                + (instead if name == "connect_timeout" else ""),
            )
        _check_host_option(url, name, value)
        if value:
            given[name] = value
    _check_session_attrs(url, given.get(_SESSION_ATTRS))
    _check_environment(url, url[start:end], given)


_LIBPQ_ONLY: Final = frozenset(
    {
        "channel_binding",
        "connect_timeout",
        "fallback_application_name",
        "gssencmode",
        "hostaddr",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "load_balance_hosts",
        "replication",
        "require_auth",
        "requirepeer",
        "sslcompression",
        "sslsni",
        "tcp_user_timeout",
    }
)
"""libpq's connection options that asyncpg does not read: it sends any option it does not
read to the server as a setting, and the server refuses these after the connect, in words
that name no URL (`unrecognized configuration parameter "connect_timeout"`)."""


def _check_repeats(url: str, options: list[str]) -> None:
    """Refuse a query option given twice, naming it as the driver reads its name.

    asyncpg keeps the last value of each option (as libpq does), and a blank one it reads past;
    `database=` it reads as `dbname=`, which wins. None of its options, nor the server settings
    it sends for the other names (`options=`, `application_name=`), takes a list by repeating,
    and this package's own (`pgbouncer=`, `listen_url=`) neither: a second value hides the
    first, so neither is taken. Names are compared decoded, as the driver's `parse_qs` does.
    """
    seen: dict[str, str] = {}  # each option by the name the driver keeps, as it was spelt
    for part in options:
        if not part:
            continue
        name = unquote_plus(part.partition("=")[0])
        key = _ALIASES.get(name, name)
        if key in seen:
            also = "" if seen[key] == name else f", also as {seen[key]}="
            raise _bad_url(url, f"its query option {name:.80}= is given twice{also}: give it once")
        seen[key] = name


def _check_given_in_both(url: str, head: str, options: list[str]) -> None:
    """Refuse a query option that the URL's own part gives already: the driver reads past it.

    asyncpg takes the user, password, hosts, port and database from before the `?` when they
    are there (a path of `/` names the database "" too), and the option is left unused:
    `postgresql://u:pw1@h/db?password=pw2` connects with pw1, saying nothing.
    """
    parsed = urlparse(head)  # as the driver splits it
    auth, at, hosts = parsed.netloc.partition("@")
    if not at:
        auth, hosts = "", auth
    user, _, password = auth.partition(":")
    own = {
        "user": bool(user),
        "password": bool(password),
        "host": bool(hosts),
        "port": any(_port_of(url, host) for host in hosts.split(",") if host),
        "dbname": bool(parsed.path),
    }
    for part in options:
        name, _, value = part.partition("=")
        key = _ALIASES.get(unquote_plus(name), unquote_plus(name))
        if value and own.get(key, False):
            place = "its path" if key == "dbname" else "its part before the '?'"
            reason = f"its query option {key}= is given in {place} too, which the driver takes"
            raise _bad_url(url, f"{reason}: give it once")


def _check_host_option(url: str, name: str, value: str, said: str = "") -> None:
    """Check a `host=` or `port=` option as a URL's own hosts are checked; read past others.

    The driver raised a bare IndexError for an empty host of the list, OverflowError for a
    port past 65535 (a port of 0 it tried to connect to), and `invalid literal for int()` for
    a port that is no number, given as `port=` or after a host of `host=`. `said` names where
    the value came from, by default the option: `$PGHOST` and `$PGPORT` are checked so too.
    """
    if name not in {"host", "port"} or not value:  # an empty one, the driver reads past
        return
    said = said or f"its {name}= option"
    items = value.split(",")
    if name == "host" and len(items) > 1 and "" in items:
        number = items.index("") + 1
        raise _bad_url(url, f"{said}'s host {number} of {len(items)} is empty")
    if name == "host":  # a socket's folder (/run/postgresql) names no port
        items = [_port_of(url, item) for item in items if item and not item.startswith("/")]
        items = [port for port in items if port]
    if (bad := next((port for port in items if not _is_port(port)), None)) is not None:
        raise _bad_url(url, f"{said}'s ports must be numbers from 1 to {_MAX_PORT}, got {bad!r}")


def _check_environment(url: str, authority: str, given: dict[str, str]) -> None:
    """Check `$PGHOST` and `$PGPORT` where the URL leaves the driver to read them.

    `PGHOST='127.0.0.1,'` made the driver raise a bare IndexError, which the command printed
    as a traceback, exit 1 (which `status` gives for "pending"); `PGPORT=abc` its raw message.
    """
    hosts = authority.rpartition("@")[2]
    if not hosts and "host" not in given:
        _check_host_option(url, "host", os.environ.get("PGHOST", ""), "$PGHOST")
    if ":" not in hosts.rpartition("]")[2] and "port" not in given:
        _check_host_option(url, "port", os.environ.get("PGPORT", ""), "$PGPORT")


def _check_session_attrs(url: str, value: str | None) -> None:
    """Refuse a `target_session_attrs` (option, else `$PGTARGETSESSIONATTRS`) the driver lacks.

    asyncpg's own refusal named a method object where it meant to list the values.
    """
    taken = ", ".join(_SESSION_ATTRS_TAKEN)
    if value is not None and value not in _SESSION_ATTRS_TAKEN:
        reason = f"its {_SESSION_ATTRS}= option must be one of {taken}, got {value!r:.80}"
        raise _bad_url(url, reason)
    value = os.environ.get("PGTARGETSESSIONATTRS") if value is None else value
    if value is not None and value not in _SESSION_ATTRS_TAKEN:
        msg = f"$PGTARGETSESSIONATTRS must be one of {taken}, got {value!r:.80}"
        raise DatabaseError(msg)


def _check_hosts(url: str, authority: str) -> None:
    user = authority.rpartition("@")[0]
    if "[" in user or "]" in user:  # the driver would read them as an IPv6 host's, and fail
        raise _bad_url(
            url, "its user part holds '[' or ']': percent-encode '[' and ']' as %5B and %5D"
        )
    hosts = authority.rpartition("@")[2].split(",")
    for number, host in enumerate(hosts, 1):
        if not host and len(hosts) > 1:  # the driver failed on it with a bare IndexError
            raise _bad_url(url, f"host {number} of {len(hosts)} is empty: name each host")
        port = _port_of(url, host)
        if port and not _is_port(port):
            raise _bad_url(url, f"the port must be a number from 1 to {_MAX_PORT}, got {port!r}")


def _is_port(text: str) -> bool:
    """Tell whether text is a port: a number from 1 to 65535 in ASCII digits (0 is none)."""
    return text.isascii() and text.isdigit() and 0 < int(text) <= _MAX_PORT


def _port_of(url: str, host: str) -> str:
    """Give the port that one host of a URL's list names (empty for none), its host checked."""
    if host.startswith("["):
        address, closed, after = host[1:].partition("]")
        if not closed or (after and not after.startswith(":")):
            raise _bad_url(url, f"write an IPv6 host as [address]:port, not {host!r}")
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            raise _bad_url(url, f"{address!r} is not an IPv6 address") from None
        return after[1:]
    if "[" in host or "]" in host or host.count(":") > 1:
        raise _bad_url(url, f"write an IPv6 host as [address]:port, not {host!r}")
    name, colon, port = host.rpartition(":")
    if not colon:
        return ""
    if not name:  # the driver looked the empty name up: "Name or service not known"
        raise _bad_url(
            url,
            f"it has an empty host before its port {':' + port!r}: name the host "
            "(localhost), or leave out both for the driver's default",
        )
    return port


def _bad_url(url: str, reason: str) -> DatabaseError:
    return DatabaseError(f"invalid database URL {redact_url(url)!r}: {reason}")


def database_url(url: str | os.PathLike[str] | None = None) -> str:
    """Name the database to open: `url`, else `$DATABASE_URL`, else `data/app.db`.

    A `url` that is no str, nor an os.PathLike of one (bytes, a number), is refused by its
    type alone: bytes may hold a password.
    """
    given: object = url  # callers without type checking may pass anything
    if given is None:
        return os.environ.get("DATABASE_URL") or str(DEFAULT_DATABASE)
    text = given.__fspath__() if isinstance(given, os.PathLike) else given
    if not isinstance(text, str):
        raise DatabaseError(f"invalid database URL: {_url_type_problem(given, text)}")
    return text or os.environ.get("DATABASE_URL") or str(DEFAULT_DATABASE)


def _url_type_problem(given: object, text: object) -> str:
    """Say that a URL argument (`text` its path, if an os.PathLike) is no str."""
    shown = type(given).__name__ if text is given else f"a path of {type(text).__name__}"
    return f"expected a str or os.PathLike of one, got {shown}"


def engine_of(url: str | os.PathLike[str] | None) -> tuple[Engine, str]:
    """Tell the engine from a URL or path, and return what its driver connects to."""
    text = _readable(database_url(url))
    match = _SCHEME.match(text)
    scheme = match["scheme"].lower() if match else ""
    if scheme == "file":
        raise _bad_url(text, "file: URIs are not supported; use sqlite:///path or a file path")
    if "://" not in text:
        if scheme in {"sqlite", "postgres", "postgresql"}:
            raise _bad_url(
                text,
                f"a {scheme} URL starts {scheme}://, as in "
                "sqlite:///relative/path, sqlite:////absolute/path or postgresql://host/db",
            )
        if (missing := _MISSING_COLON.match(text)) is not None:  # else a folder of that name
            scheme = missing["scheme"].lower()
            raise _bad_url(text, f"it reads as a {scheme} URL without its ':': {scheme}://...")
        return Engine.SQLITE, _checked_path(text, text)
    if scheme in {"postgres", "postgresql"}:
        _check_postgres_url(text)
        try:
            listen = split_pooling(text)[1].listen_dsn
        except ValueError as error:
            raise _bad_url(text, str(error)) from None
        if listen is not None:
            try:
                _check_postgres_url(listen)
            except DatabaseError as error:
                raise _bad_url(text, f"its listen_url= is not usable: {error}") from None
        return Engine.POSTGRES, text
    if scheme == "sqlite":
        return Engine.SQLITE, _checked_path(text, _sqlite_path(text))
    raise _bad_url(
        text, f"unsupported scheme {scheme!r}: use postgresql://..., sqlite:///path or a file path"
    )


def _check_url_type(url: object, caller: str) -> None:
    """Refuse a URL argument that is no str nor an os.PathLike of one, as a bad argument."""
    text = url.__fspath__() if isinstance(url, os.PathLike) else url
    if url is not None and not isinstance(text, str):
        raise ValidationError(caller, "url", _url_type_problem(url, text))


def pooled_target(
    url: str | os.PathLike[str] | None,
    *,
    pgbouncer: PgBouncerMode | None,
    listen_url: str | None,
    caller: str,
) -> tuple[Engine, str]:
    """Tell the engine as `engine_of` does, folding the PgBouncer arguments into the URL.

    An option the URL already gives must agree, else a `ValidationError` naming both; a SQLite
    database refuses them.
    """
    _check_url_type(url, caller)
    if pgbouncer is not None and (problem := pgbouncer_mode_problem(pgbouncer)) is not None:
        raise ValidationError(caller, "pgbouncer", f"{problem} (or None)")
    if listen_url is not None:
        _check_listen_argument(listen_url, caller)
    engine, target = engine_of(url)
    if pgbouncer is None and listen_url is None:
        return engine, target
    if engine is Engine.SQLITE:
        name = "pgbouncer" if pgbouncer is not None else "listen_url"
        raise ValidationError(
            caller,
            name,
            f"PgBouncer's options are for PostgreSQL, and {redact_url(target)!r} is a SQLite "
            f"database: leave {name}= out",
        )
    given = split_pooling(target)[1]  # engine_of has checked the URL's own options
    added: list[str] = []
    if pgbouncer is not None and not given.transaction:
        added.append(f"pgbouncer={pgbouncer}")
    if listen_url is not None:
        if given.listen_dsn is None:
            added.append(f"listen_url={quote(listen_url, safe='')}")
        elif given.listen_dsn != listen_url:
            raise ValidationError(
                caller,
                "listen_url",
                f"the URL {redact_url(target)!r} has listen_url={redact_url(given.listen_dsn)!r} "
                f"and the argument is {redact_url(listen_url)!r}: give it once, or the same "
                "in both",
            )
    if not added:
        return engine, target
    head, hash_sign, fragment = target.partition("#")  # the options go before any fragment
    joiner = "" if head.endswith(("?", "&")) else "&" if "?" in head else "?"
    return engine, head + joiner + "&".join(added) + hash_sign + fragment


def _check_listen_argument(listen_url: object, caller: str) -> None:
    """Refuse a `listen_url=` argument that is not PostgreSQL's own URL, saying why."""
    if not isinstance(listen_url, str):
        raise ValidationError(
            caller, "listen_url", f"expected a postgresql:// URL or None, got {listen_url!r}"
        )
    scheme, reached, _ = listen_url.partition("://")
    if not reached or scheme.lower() not in {"postgres", "postgresql"}:
        raise ValidationError(
            caller,
            "listen_url",
            f"takes PostgreSQL's own postgresql:// URL, got {redact_url(listen_url)!r}",
        )
    try:
        check_listen_url(listen_url)
        _check_postgres_url(listen_url)
    except (ValueError, DatabaseError) as error:
        raise ValidationError(caller, "listen_url", str(error)) from None


def _readable(text: str) -> str:
    """Refuse a URL that is blank, or holds bytes that are not UTF-8 (as lone surrogates)."""
    if not text.strip():
        raise _bad_url(text, "it is blank: give a URL or a path, or leave it unset for the default")
    if text != text.strip(" \t"):  # a database named `app.db ` was made, or `mydb `
        raise _bad_url(text, "it has white space at an end (from an env file?): remove it")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad_url(text, "it holds bytes that are not UTF-8, which no driver takes") from None
    return text


def _checked_path(url: str, path: str) -> str:
    """Refuse a SQLite path holding a line end or a NUL, or starting with `~`: only a mistake."""
    if any(character in path for character in "\r\n\x00"):
        raise _bad_url(
            url, "the path holds a line end or a NUL (a CRLF line end from an env file?)"
        )
    if (problem := home_problem(path)) is not None:
        raise _bad_url(url, f"the path {problem}")
    return path


def _sqlite_path(url: str) -> str:
    """Return the file that a sqlite:// URL names."""
    rest = url[len("sqlite://") :]
    if "?" in rest or "#" in rest:
        raise _bad_url(url, "a sqlite URL takes no options; percent-encode '?' and '#'")
    if rest and not rest.startswith("/"):  # sqlite://localhost/x.db went to ./localhost/x.db
        raise _bad_url(
            url,
            "a sqlite URL names no host: sqlite:///relative/path or sqlite:////absolute/path",
        )
    # One slash goes: sqlite:///relative/path, sqlite:////absolute/path.
    path = unquote(rest).removeprefix("/")
    if not path:
        raise _bad_url(url, "it names no database file")
    return path
