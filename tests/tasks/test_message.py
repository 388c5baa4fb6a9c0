"""The update message's errors belong to cartsync's one exception tree."""

from __future__ import annotations

import pytest

from cartsync.tasks.message import UpdateMessage
from cartsync.worker.errors import CartsyncError, InvalidMessage


def test_an_undecodable_message_is_a_cartsync_error_and_a_value_error():
    """A message that is not JSON raises InvalidMessage, caught as CartsyncError or ValueError."""
    with pytest.raises(InvalidMessage) as raised:
        UpdateMessage.from_json("{not json")
    assert isinstance(raised.value, CartsyncError)
    assert isinstance(raised.value, ValueError)


def test_a_message_nested_past_the_parser_s_stack_is_invalid_not_a_recursion_error():
    """Text nested a hundred thousand levels deep is an InvalidMessage, which the task parks."""
    with pytest.raises(InvalidMessage, match="nests too deeply"):
        UpdateMessage.from_json("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize("version", [2.0, 1.5, True, 0, 2**63])
def test_a_message_whose_version_is_no_whole_number_in_range_is_invalid(version):
    """A float version (even 2.0), a bool, 0 or 2**63 makes the message invalid."""
    fields = {"update_id": "u", "merchant": "m", "order_ref": "o", "version": version,
              "body": {}, "enqueued_at": 1.0}  # fmt: skip
    with pytest.raises(InvalidMessage, match="version"):
        UpdateMessage.from_dict(fields)
