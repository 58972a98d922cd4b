"""Split a JSON response body into its records, keeping each record's text exactly as served.

The raw zone stores one row per record with the record's own bytes, not a re-serialisation:
``19109818.0`` stays ``19109818.0`` and ``1.258e-09`` stays ``1.258e-09``.

Two paths give the same spans. msgspec validates the whole body and hands back each record's
text undecoded (``msgspec.Raw``), about ten times faster than decoding every record; a body it
refuses (or one whose shape is wrong) goes through the stdlib decoder's ``raw_decode``, which
walks it value by value and names exactly what is wrong, and where.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import msgspec

_decoder = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")


class ShapeError(ValueError):
    """The body is not JSON of the expected shape; the message says where and what."""


@dataclass(frozen=True)
class SplitBody:
    records: list[str]
    envelope: str
    """The body with the record array emptied (``[]`` for a bare array)."""
    keys: frozenset[str]
    """Every top-level key seen in any record, for schema-drift detection."""


def split_records(text: str, records_key: str | None, *, arrays: bool = False) -> SplitBody:
    """Split ``text`` into record spans; ``records_key`` names the envelope key, if any.
    Records are JSON objects, or with ``arrays`` JSON arrays (``[epoch_ms, value]``)."""
    return _split_fast(text, records_key, arrays) or split_walking(text, records_key, arrays)


def split_walking(text: str, records_key: str | None, arrays: bool) -> SplitBody:
    """The slow path: value by value with the stdlib decoder, naming what is wrong and where."""
    try:
        if records_key is None:
            return _split_bare_array(text, arrays)
        return _split_envelope(text, records_key, arrays)
    except (json.JSONDecodeError, IndexError) as exc:
        raise ShapeError(f"body is not valid JSON: {exc}") from exc


def _skip(text: str, pos: int) -> int:
    match = _WHITESPACE.match(text, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _expect_end(text: str, pos: int) -> None:
    pos = _skip(text, pos)
    if pos != len(text):
        raise ShapeError(f"unexpected data after the JSON value at character {pos}")


def _split_bare_array(text: str, arrays: bool) -> SplitBody:
    start = _skip(text, 0)
    if text[start : start + 1] != "[":
        raise ShapeError("expected a JSON array of records at the top level")
    records, keys, end = _split_array(text, start, arrays)
    _expect_end(text, end)
    return SplitBody(records, "[]", keys)


def _split_envelope(text: str, records_key: str, arrays: bool) -> SplitBody:
    pos = _skip(text, 0)
    if text[pos : pos + 1] != "{":
        raise ShapeError(f"expected a JSON object with a {records_key!r} array at the top level")
    pos = _skip(text, pos + 1)
    found: tuple[int, int, list[str], frozenset[str]] | None = None
    while text[pos] != "}":
        if text[pos] != '"':
            raise ShapeError(f"expected a string key at character {pos}")
        key, pos = _decoder.raw_decode(text, pos)
        pos = _skip(text, pos)
        if text[pos] != ":":
            raise ShapeError(f"expected ':' at character {pos}")
        pos = _skip(text, pos + 1)
        if key == records_key:
            if text[pos] != "[":
                raise ShapeError(f"{records_key!r} is not an array")
            records, keys, end = _split_array(text, pos, arrays)
            found = (pos, end, records, keys)
            pos = end
        else:
            _, pos = _decoder.raw_decode(text, pos)
        pos = _skip(text, pos)
        if text[pos] == ",":
            pos = _skip(text, pos + 1)
            if text[pos] == "}":
                raise ShapeError(f"trailing comma before '}}' at character {pos}")
        elif text[pos] != "}":
            raise ShapeError(f"expected ',' or '}}' at character {pos}")
    _expect_end(text, pos + 1)
    if found is None:
        raise ShapeError(f"the response object has no {records_key!r} array")
    start, end, records, keys = found
    return SplitBody(records, text[:start] + "[]" + text[end:], keys)


def _split_array(text: str, pos: int, arrays: bool) -> tuple[list[str], frozenset[str], int]:
    """Split the array starting at ``text[pos] == '['``; return records, keys and the end."""
    records: list[str] = []
    keys: set[str] = set()
    pos = _skip(text, pos + 1)
    if text[pos] == "]":
        return records, frozenset(), pos + 1
    while True:
        value, end = _decoder.raw_decode(text, pos)
        expected = list if arrays else dict
        if not isinstance(value, expected):
            raise ShapeError(
                f"record {len(records)} is a JSON {type(value).__name__}, "
                f"not {'an array' if arrays else 'an object'}"
            )
        records.append(text[pos:end])
        if isinstance(value, dict):
            keys.update(value)
        pos = _skip(text, end)
        if text[pos] == ",":
            pos = _skip(text, pos + 1)
        elif text[pos] == "]":
            return records, frozenset(keys), pos + 1
        else:
            raise ShapeError(f"expected ',' or ']' at character {pos}")


# --- fast path -----------------------------------------------------------------------------------

_RAW_VALUES = msgspec.json.Decoder(list[msgspec.Raw])
_RAW_FIELDS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_RECORD_FIELDS = msgspec.json.Decoder(list[dict[str, msgspec.Raw]])


def _text(raw: msgspec.Raw) -> str:
    return bytes(raw).decode("utf-8")


def _split_fast(text: str, records_key: str | None, arrays: bool) -> SplitBody | None:
    """The split of a valid body of the expected shape, or None to take the slow path."""
    try:
        if records_key is None:
            records = _records_fast(text, arrays)
            return None if records is None else SplitBody(records[0], "[]", records[1])
        fields = _RAW_FIELDS.decode(text)
        if records_key not in fields:
            return None
        start = _value_start(text, fields, records_key)
        array = _text(fields[records_key])
        records = _records_fast(array, arrays) if start is not None else None
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None
    if records is None or start is None:
        return None
    end = start + len(array)
    return SplitBody(records[0], text[:start] + "[]" + text[end:], records[1])


def _records_fast(array: str, arrays: bool) -> tuple[list[str], frozenset[str]] | None:
    records = [_text(value) for value in _RAW_VALUES.decode(array)]
    opener = "[" if arrays else "{"
    if not all(record.startswith(opener) for record in records):
        return None  # the slow path names the offending record
    if arrays:
        return records, frozenset()
    return records, frozenset().union(*_RECORD_FIELDS.decode(array))


def _value_start(text: str, fields: dict[str, msgspec.Raw], key: str) -> int | None:
    """Where the value of top-level ``key`` starts in ``text``: the object is walked key by key,
    each value skipped by the length of its decoded text. A duplicate key (msgspec keeps the
    last value) sends the body to the slow path."""
    pos = _skip(text, _skip(text, 0) + 1)
    names: set[str] = set()
    start: int | None = None
    while text[pos] == '"':
        name, pos = _decoder.raw_decode(text, pos)
        pos = _skip(text, pos)
        if text[pos] != ":" or name in names:
            return None
        names.add(name)
        pos = _skip(text, pos + 1)
        value = _text(fields[name])
        if not text.startswith(value, pos):
            return None
        if name == key:
            start = pos
        pos = _skip(text, pos + len(value))
        if text[pos] == ",":
            pos = _skip(text, pos + 1)
    return start
