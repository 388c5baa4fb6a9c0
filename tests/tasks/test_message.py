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
