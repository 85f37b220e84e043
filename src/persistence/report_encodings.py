"""How expat reads a JUnit report: its parser, and the encoding it reads the report in.

The encoding by the report's byte order mark and the name it declares: expat knows UTF-8 and
UTF-16 by those names alone, and these say when to tell it so.
"""

from __future__ import annotations

import codecs
import re
from typing import Final
from xml.parsers.expat import ParserCreate

from defusedxml.ElementTree import DefusedXMLParser

_DECLARATION: Final = re.compile(
    r"<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*([\"'])[^\"']*\1[ \t\r\n]+"
    r"encoding[ \t\r\n]*=[ \t\r\n]*([\"'])(?P<name>[A-Za-z][A-Za-z0-9._-]*)\2"
)
"""The XML declaration's encoding name, where XML 1.0 puts it."""
_DECLARATION_BYTES: Final = 400
"""Where a report's XML declaration ends, in any encoding, unless white space pads it."""
_MARKS: Final = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_UNMARKED_UTF_16: Final = {b"<\x00": "utf-16-le", b"\x00<": "utf-16-be"}  # by the first `<`


def read_as(head: bytes | bytearray) -> str | None:
    """Give the encoding to read a report in, where expat would misread the name it declares.

    Expat knows UTF-8 and UTF-16 by those names alone, and reads any other name through
    Python's codec, a byte at a time: declared `utf8` (as ElementTree writes the name it was
    given), a file's first character beyond ASCII was refused, and `utf16` was refused as a
    multi-byte encoding. UTF-16 is read so behind its byte order mark only, which says which.
    A mark and a name that disagree are a ValueError: expat took a UTF-8 mark's file as in the
    single-byte encoding declared, and `été` came in as `Ã©tÃ©`.
    """
    mark = _mark_of(head)
    text = bytes(head[:_DECLARATION_BYTES]).decode(mark or "latin-1", "replace")
    if text.removeprefix("\ufeff").startswith("<?xml") and "?>" not in text:
        # XML lets a declaration hold any white space: read further, the whole of `head`
        text = bytes(head).decode(mark or "latin-1", "replace")
    found = _DECLARATION.match(text.removeprefix("\ufeff"))
    family = _family(found["name"]) if found else None
    if mark is not None and found and family is not None and family != _family(mark):
        raise ValueError(
            f"it starts with a {_family(mark)} byte order mark but declares encoding "
            f"{found['name']!r}: save it in the one encoding, and name that one"
        )
    if family == "utf-8" and mark in {None, "utf-8"}:
        return "UTF-8"
    if family == "utf-16" and mark in {"utf-16-le", "utf-16-be"}:
        return "UTF-16"
    return None


def _mark_of(head: bytes | bytearray) -> str | None:
    """Name the encoding that a report's byte order mark says, or None without one."""
    return next((codec for bom, codec in _MARKS if head.startswith(bom)), None)


def utf_16_in(head: bytes | bytearray) -> str | None:
    """Name the report's UTF-16 byte order, by its mark or its first `<`, or None for no UTF-16."""
    order = _mark_of(head) or _UNMARKED_UTF_16.get(bytes(head[:2]))
    return order if order in {"utf-16-le", "utf-16-be"} else None


def _family(name: str) -> str | None:
    """Name the encoding that Python knows as `name`: `utf-8` and `utf-16` by any spelling."""
    try:
        known = codecs.lookup(name).name
    except LookupError:
        return None  # expat says so, naming it
    if known.startswith("utf-8"):  # utf-8-sig too: a mark is read past either way
        return "utf-8"
    return "utf-16" if known.startswith("utf-16") else known


NAMESPACE_END: Final = "\x01"
"""What expat joins an element's namespace and name with: no XML 1.0 text holds it, even as
a reference, so that no namespace holds it either."""
_EXPAT_SETTINGS: Final = frozenset(
    {
        "buffer_size",
        "buffer_text",
        "namespace_prefixes",
        "ordered_attributes",
        "specified_attributes",
    }
)


def junit_parser(target: object, encoding: str | None = None) -> DefusedXMLParser:
    """Give defusedxml's parser, its expat joining a namespace and a name with `NAMESPACE_END`.

    ElementTree's expat joins them with `}`, which a namespace may hold: expat refuses such a
    namespace with a bare "syntax error", before any handler could name it. Every handler and
    setting that ElementTree and defusedxml gave their expat (those against DTDs and entities
    among them) is given to this one. `encoding`, if given, overrides the one declared.
    """
    parser = DefusedXMLParser(target=target, forbid_dtd=True)
    given = parser.parser
    expat = ParserCreate(encoding, NAMESPACE_END)
    for name in dir(given):
        if "Handler" in name or name in _EXPAT_SETTINGS:
            setattr(expat, name, getattr(given, name))
    parser.parser = expat  # what ElementTree feeds and closes
    return parser
