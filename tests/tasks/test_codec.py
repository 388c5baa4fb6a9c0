"""The one JSON codec: what JSON or seQura cannot take is refused at the door, by path."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cartsync.tasks import codec
from cartsync.worker.errors import InvalidUpdate


def refused(data) -> dict[str, list[str]]:
    with pytest.raises(InvalidUpdate) as caught:
        codec.decode(data)
    return caught.value.errors


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_numbers_are_refused_by_path(constant: str) -> None:
    """NaN, Infinity and overflowing floats under any key are refused, naming the key's path."""
    errors = refused(f'{{"order": {{"note": {constant}, "items": [1, {constant}]}}}}')
    assert errors == {
        "order.note": [codec.NOT_FINITE],
        "order.items.1": [codec.NOT_FINITE],
    }


def test_integers_beyond_64_bits_are_refused_without_parsing_them() -> None:
    """A thousand-digit integer and 2**63 are refused; -2**63 and 2**63-1 are kept exactly."""
    text = f'{{"a": {"9" * 5000}, "b": {2**63}, "c": {2**63 - 1}, "d": {-(2**63)}}}'
    assert refused(text) == {"a": [codec.OUT_OF_RANGE], "b": [codec.OUT_OF_RANGE]}
    assert codec.decode(f'{{"c": {2**63 - 1}, "d": {-(2**63)}}}') == {
        "c": 2**63 - 1,
        "d": -(2**63),
    }


def test_deep_nesting_is_refused_before_parsing() -> None:
    """Nesting of a hundred thousand levels is refused with one line, never a RecursionError."""
    assert refused("[" * 100_000 + "]" * 100_000) == {"body": [codec.TOO_DEEP]}
    deepest = "[" * codec.MAX_DEPTH + "]" * codec.MAX_DEPTH
    assert codec.decode(deepest) is not None


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    """A string full of brackets and escaped quotes is text, not depth."""
    body = {"note": "[[[[{{{{" * 20 + '\\"[[[' + "]]]"}
    assert codec.decode(json.dumps(body)) == body


def test_a_body_over_the_size_limit_is_refused() -> None:
    """A body larger than the limit is refused naming its size and the limit."""
    errors = refused(b'{"a": "' + b"x" * codec.MAX_BODY_BYTES + b'"}')
    assert "at most 1048576 are accepted" in errors["body"][0]


def test_text_that_is_not_utf8_or_not_json_is_refused_with_where() -> None:
    """Bytes that are not UTF-8, and text that is not JSON, say where the problem is."""
    assert refused(b'{"a": "\xff"}') == {"body": ["Not UTF-8 text (byte 8)."]}
    assert refused('{"a": }')["body"][0].startswith("Not JSON: Expecting value at line 1")


def test_a_byte_order_mark_is_skipped() -> None:
    """A UTF-8 BOM before the body (as Windows editors write) is not an error."""
    assert codec.decode("\ufeff".encode() + b'{"a": 1}') == {"a": 1}
    assert codec.decode('\ufeff{"a": 1}') == {"a": 1}


def test_check_refuses_what_a_python_caller_hands_over() -> None:
    """An object from the Python API gets the same checks as decoded text, by path."""
    body = {"order": {"x": math.nan, "n": 10**30, "k": {1: "a"}, "s": {1, 2}, "ok": (1, 2)}}
    with pytest.raises(InvalidUpdate) as caught:
        codec.check(body)
    assert caught.value.errors == {
        "order.x": [codec.NOT_FINITE],
        "order.n": [codec.OUT_OF_RANGE],
        "order.k": [codec.KEY_NOT_TEXT],
        "order.s": [codec.NOT_JSON_TYPE],
    }


def test_check_walks_any_depth_without_recursion() -> None:
    """A Python object nested 100,000 deep is reported too deep, not a RecursionError."""
    value: list = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(InvalidUpdate) as caught:
        codec.check(value)
    assert caught.value.errors == {"0." * (codec.MAX_DEPTH - 1) + "0": [codec.TOO_DEEP]}


def test_encode_refuses_nan() -> None:
    """The encoder never writes NaN, which is not JSON."""
    with pytest.raises(ValueError, match="not JSON compliant"):
        codec.encode({"a": math.nan})


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(codec.MIN_INT, codec.MAX_INT)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=30,
)


@given(json_values)
def test_whatever_decodes_encodes_back_to_the_same_value(value) -> None:
    """Every JSON value within the limits survives decode(encode(v)) unchanged."""
    assert codec.decode(codec.encode(value)) == value


hostile_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=3)
    | st.sampled_from([2**63, -(2**63) - 1, math.nan, math.inf]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children)
        | st.dictionaries(st.text(max_size=2) | st.integers(0, 2), children, max_size=3)
    ),
    max_leaves=40,
)


@given(hostile_values, st.integers(1, 6))
def test_the_quick_check_agrees_with_the_path_by_path_walk(value, max_depth) -> None:
    """The walk that builds no paths passes exactly the values the full walk finds nothing in."""
    assert codec._plain(value, max_depth) == (codec._walk(value, max_depth) == {})
