"""split_records: each record's exact text, the envelope without records, and shape errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.sources.records import ShapeError, _split_fast, split_records, split_walking

# --- bare arrays -----------------------------------------------------------------------------


def test_bare_array_records_are_exact_substrings_of_the_body() -> None:
    first = '{"id": "a", "price": 19109818.0, "tiny": 1.258e-09}'
    second = '{\n  "id": "b",\n  "name": "x\\u200by", "nested": {"k": [1, 2]}\n}'
    body = f"[{first},{second}]"

    split = split_records(body, None)

    assert split.records == [first, second]
    assert split.envelope == "[]"
    assert split.keys == frozenset({"id", "price", "tiny", "name", "nested"})


@pytest.mark.parametrize(
    "body",
    [
        '[{"id":"a"},{"id":"b"}]',
        ' \n\t[ {"id":"a"} , {"id":"b"} ]\r\n',
        '[\r\n  {"id":"a"},\r\n  {"id":"b"}\r\n]',
        '[\n\n{"id":"a"}\n,\n{"id":"b"}\n\n]\n\n',
    ],
    ids=["compact", "spaces-and-tabs", "crlf", "blank-lines"],
)
def test_json_whitespace_anywhere_between_tokens_is_accepted(body: str) -> None:
    assert split_records(body, None).records == ['{"id":"a"}', '{"id":"b"}']


@pytest.mark.parametrize("body", ["[]", "  [ \n ]  \n"])
def test_empty_array_gives_no_records(body: str) -> None:
    split = split_records(body, None)

    assert split.records == []
    assert split.envelope == "[]"
    assert split.keys == frozenset()


def test_brackets_and_commas_inside_strings_do_not_split_records() -> None:
    record = '{"name": "a],[b}{\\"", "id": "x"}'
    assert split_records(f"[{record}]", None).records == [record]


def test_keys_are_the_union_over_all_records() -> None:
    split = split_records('[{"a": 1}, {"b": 2}, {"a": 3, "c": null}]', None)
    assert split.keys == frozenset({"a", "b", "c"})


# --- envelopes -------------------------------------------------------------------------------


def test_coincap_envelope_keeps_the_timestamp_and_empties_the_data_array() -> None:
    records = ['{"id":"bitcoin","priceUsd":"66765.98"}', '{"id":"ethereum","priceUsd":"3092.48"}']
    body = '{"data": [' + ", ".join(records) + '], "timestamp": 1715904000000}'

    split = split_records(body, "data")

    assert split.records == records
    assert split.envelope == '{"data": [], "timestamp": 1715904000000}'
    assert json.loads(split.envelope) == {"data": [], "timestamp": 1715904000000}


def test_envelope_keys_before_the_records_and_nested_lookalikes_are_kept() -> None:
    body = '{\n "timestamp": 1, "meta": {"data": [{"x": 1}]},\n "data": [{"id": "a"}]\n}'

    split = split_records(body, "data")

    assert split.records == ['{"id": "a"}']
    assert split.envelope == '{\n "timestamp": 1, "meta": {"data": [{"x": 1}]},\n "data": []\n}'


def test_envelope_with_an_empty_records_array_gives_no_records() -> None:
    split = split_records('{ "data" : [ ] , "timestamp" : 2 }', "data")

    assert split.records == []
    assert json.loads(split.envelope) == {"data": [], "timestamp": 2}


# --- shape errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('[{"id": "a"}, 2]', "record 1 is a JSON int, not an object"),
        ('[["a", 1]]', "record 0 is a JSON list"),
        ('[{"id": "a"}, null]', "record 1 is a JSON NoneType"),
        ('["bitcoin"]', "record 0 is a JSON str"),
    ],
)
def test_records_that_are_not_objects_are_a_shape_error(body: str, expected: str) -> None:
    with pytest.raises(ShapeError, match=expected):
        split_records(body, None)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('[{"id": "a"}] garbage', None),
        ('[{"id": "a"}]]', None),
        ('[{"id": "a"}][]', None),
        ('{"data": []} {"data": []}', "data"),
        ('{"data": [{"id": "a"}]}x', "data"),
    ],
)
def test_trailing_data_after_the_json_value_is_a_shape_error(body: str, key: str | None) -> None:
    with pytest.raises(ShapeError, match="unexpected data after the JSON value"):
        split_records(body, key)


@pytest.mark.parametrize(
    ("body", "key", "expected"),
    [
        ("", None, "expected a JSON array"),
        ('{"data": []}', None, "expected a JSON array"),
        ("[]", "data", "expected a JSON object"),
        ('{"error": "x"}', "data", "no 'data' array"),
        ('{"data": null}', "data", "'data' is not an array"),
        ('[{"id": "a"', None, "not valid JSON"),
        ('[{"id": "a"},', None, "not valid JSON"),
        ('[{"id": "a"},]', None, "not valid JSON"),
        ('[{"id": "a"} {"id": "b"}]', None, "expected ',' or ']'"),
        ('{"data": [], ', "data", "not valid JSON"),
        ('{"data" []}', "data", "expected ':'"),
        ('{"data": [] "timestamp": 1}', "data", "expected ',' or '}'"),
    ],
)
def test_body_not_of_the_expected_shape_is_a_shape_error(
    body: str, key: str | None, expected: str
) -> None:
    with pytest.raises(ShapeError, match=expected):
        split_records(body, key)


@pytest.mark.parametrize(
    "body",
    [
        '{"data": [{"id": "a"}], "timestamp": 1,}',
        '{"data": [{"id": "a"}], 5: 1}',
    ],
    ids=["trailing-comma", "non-string-key"],
)
def test_envelope_that_is_not_valid_json_is_a_shape_error(body: str) -> None:
    # The envelope is stored and later decoded strictly (CoinCap's timestamp); a body that is
    # not JSON must fail the contract at extract time, not crash staging afterwards.
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    with pytest.raises(ShapeError):
        split_records(body, "data")


# --- property --------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
json_records = st.lists(
    st.dictionaries(st.text(max_size=6), json_scalars | st.lists(json_scalars, max_size=3)),
    max_size=5,
)


@settings(max_examples=40)
@given(records=json_records, indent=st.sampled_from([None, 0, 2]))
def test_records_decode_to_what_was_serialised(
    records: list[dict[str, object]], indent: int | None
) -> None:
    body = json.dumps(records, indent=indent, ensure_ascii=False)

    split = split_records(body, None)

    assert [json.loads(r) for r in split.records] == records
    assert all(r in body for r in split.records)


# --- the fast path splits as the walking one does ---------------------------------------------

envelope_extras = st.dictionaries(
    st.text(max_size=6).filter(lambda k: k != "data"), json_scalars, max_size=3
)


@settings(max_examples=60)
@given(
    records=json_records,
    before=envelope_extras,
    after=envelope_extras,
    indent=st.sampled_from([None, 0, 2]),
    ensure_ascii=st.booleans(),
)
def test_the_fast_split_equals_the_walking_split(
    records: list[dict[str, object]],
    before: dict[str, object],
    after: dict[str, object],
    indent: int | None,
    ensure_ascii: bool,
) -> None:
    bare = json.dumps(records, indent=indent, ensure_ascii=ensure_ascii)
    enveloped = json.dumps(
        {**before, "data": records, **after}, indent=indent, ensure_ascii=ensure_ascii
    )
    assert _split_fast(bare, None, False) == split_walking(bare, None, False)
    assert _split_fast(enveloped, "data", False) == split_walking(enveloped, "data", False)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('[{"price": NaN}]', None),
        ('{"data": [{"id": "a"}], "data": [{"id": "b"}]}', "data"),
        ('{"data": [{"id": "a"}], "data": [{"id": "a"}]}', "data"),
        ('[{"id": "a"}, 2]', None),
    ],
    ids=["nan-literal", "duplicate-key", "duplicate-identical-key", "not-an-object"],
)
def test_bodies_msgspec_refuses_or_reads_otherwise_take_the_walking_path(
    body: str, key: str | None
) -> None:
    assert _split_fast(body, key, False) is None
    try:
        walked = split_walking(body, key, False)
    except ShapeError:
        with pytest.raises(ShapeError):
            split_records(body, key)
    else:
        assert split_records(body, key) == walked
