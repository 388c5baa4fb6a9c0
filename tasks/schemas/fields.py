"""Field types of the Order Update payload.

Longer than cartsync's other modules on purpose: one small class per kind of value in seQura's
payload reference, declarative and read one at a time; the schemas import them from here.

Every field hands back the producer's value unchanged (same object, same type): validation
decides, it never converts. What goes on the wire is what the producer sent.

Error messages say what is wrong and what is expected, and never repeat a string from the
payload, which may be personal data (names, addresses, national ids). Numbers may be
repeated: they are amounts and counts.

Decisions:

- Booleans are not numbers here, although ``bool`` is a subclass of ``int`` in Python:
  ``true`` is rejected wherever an integer is expected, and ``1`` wherever a boolean is.
- Integers are signed 64-bit (``tasks/codec.py``): the fields refuse one outside that range
  themselves, so that no check, message or warning ever works on (or prints) an integer of
  thousands of digits, even for a body that did not go through the codec.
- ``merchant.id`` and ``merchant_reference.order_ref_1`` name the order in seQura's URL and in
  cartsync's Redis keys: they may not be empty or only whitespace (:class:`Identifier`). They
  are not stripped either: a ref goes to seQura as the producer sent it.
- ``null`` is rejected everywhere unless the reference types the field as "or null" (only
  ``cancellation_reason``): the references type every other field without it.
- Country codes are checked against ISO 3166-1 only where the reference types the field as
  "ISO-3166 alpha-2/3 code"; address country codes are typed "(string)" and are not checked.
- Dates are ISO 8601 calendar dates in extended form (``2017-06-30``); timestamps are an
  ISO 8601 date and time (``2014-02-05T13:21:22+01:00``; seconds, fraction and offset
  optional); periods are ISO 8601 durations (``P3M15D``, ``P1Y``, ``PT36H``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, fields

from cartsync.tasks.codec import MAX_INT, MIN_INT, OUT_OF_RANGE
from cartsync.tasks.schemas.countries import COUNTRY_CODES

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)(Z|[+-]\d{2}(?::?\d{2})?)?"
)
_PERIOD = re.compile(
    r"P(?!$)(?:\d+Y)?(?:\d+M)?(?:\d+W)?(?:\d+D)?(?:T(?=\d)(?:\d+H)?(?:\d+M)?(?:\d+(?:[.,]\d+)?S)?)?"
)


def kind(value: Any) -> str:
    """What a JSON value is, in words, for messages that must not repeat the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return "a value of another type"


def is_int(value: Any) -> TypeGuard[int]:
    """True for a JSON integer: an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_int64(value: Any) -> TypeGuard[int]:
    """True for a JSON integer within signed 64 bits, the range cartsync accepts."""
    return is_int(value) and MIN_INT <= value <= MAX_INT


class PayloadField(fields.Field):  # type: ignore[type-arg]
    """Base of cartsync's fields: values pass through unchanged; ``null`` is refused."""

    # marshmallow reads this per class and types it as an instance attribute.
    default_error_messages = {  # noqa: RUF012
        "null": "Field may not be null.",
        "required": "Missing data for required field.",
    }

    def deserialize(
        self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any
    ) -> Any:
        """marshmallow's deserialize without its per-call validator plumbing (none is used
        here: each field checks in ``_deserialize``); about a third of a field's cost."""
        if value is fields.missing_:  # type: ignore[attr-defined]
            if self.required:
                raise self.make_error("required")
            return value
        if value is None:
            if self.allow_none:
                return None
            raise self.make_error("null")
        output = self._deserialize(value, attr, data, **kwargs)
        if self.validators:
            self._validate(output)
        return output

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


def is_text(value: Any) -> bool:
    """True for a string that UTF-8 can carry: JSON's ``"\\ud800"`` escape decodes to a lone
    surrogate, which no UTF-8 body can hold."""
    if not isinstance(value, str):
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: Message for a string UTF-8 cannot carry.
NOT_UTF8 = "Must be valid Unicode text: it holds a lone surrogate escape such as \\ud800."


def _not_text(value: Any, expected: str) -> ValidationError:
    if isinstance(value, str):
        return ValidationError(NOT_UTF8)
    return ValidationError(f"Must be {expected}, not {kind(value)}.")


class Text(PayloadField):
    """A JSON string (the reference's "(string)"); an empty string is a string."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not is_text(value):
            raise _not_text(value, "a string")
        return value


class Reference(Text):
    """A string "without spaces", as the references ask of flight and lodging references."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        super()._deserialize(value, attr, data)
        if not value or any(char.isspace() for char in value):
            raise ValidationError("Must be a reference without spaces.")
        return value


class StrOrInt(PayloadField):
    """The reference's "(string or int)": either, but not a decimal number or a boolean."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not (is_text(value) or is_int(value)):
            raise _not_text(value, "a string or an integer")
        if is_int(value) and not is_int64(value):
            raise ValidationError(OUT_OF_RANGE)
        return value


#: Message for an empty or blank merchant-ref or order-ref.
BLANK_IDENTIFIER = "Must not be empty or only whitespace: it names the order in seQura's URL."


def identifier_text(value: Any) -> str | None:
    """A merchant-ref or order-ref as text (an integer as its digits), or None when it cannot
    name an order: not a string or a 64-bit integer, not UTF-8 text, empty or blank.

    The one rule for these two fields: :class:`Identifier` applies it to a body, and the
    producer (``tasks/producer.order_identity``) takes the order's identity by it.
    """
    if is_int64(value):
        return str(value)
    if is_text(value) and value.strip():
        return str(value)
    return None


class Identifier(StrOrInt):
    """``merchant.id`` and ``merchant_reference.order_ref_1``: "(string or int)" that names
    the order, so not empty and not only whitespace (:func:`identifier_text`)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        super()._deserialize(value, attr, data)
        if identifier_text(value) is None:
            raise ValidationError(BLANK_IDENTIFIER)
        return value


class Bool(PayloadField):
    """The reference's "(true or false)": JSON ``true`` or ``false`` only."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise ValidationError(f"Must be true or false, not {kind(value)}.")
        return value


class Integer(PayloadField):
    """A JSON integer, optionally bounded; ``unit`` names what it counts in messages."""

    def __init__(
        self,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        unit: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.minimum = minimum
        self.maximum = maximum
        self.unit = unit

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not is_int(value):
            what = f"an integer number of {self.unit}" if self.unit else "an integer"
            raise ValidationError(f"Must be {what}, not {kind(value)}.")
        if not is_int64(value):
            raise ValidationError(OUT_OF_RANGE)
        if self.minimum is not None and value < self.minimum:
            if self.minimum == 1:
                raise ValidationError(f"Must be a positive integer (at least 1), not {value}.")
            raise ValidationError(f"Must be at least {self.minimum}, not {value}.")
        if self.maximum is not None and value > self.maximum:
            if self.maximum == -1:
                raise ValidationError(f"Must be negative (at most -1), not {value}.")
            raise ValidationError(f"Must be at most {self.maximum}, not {value}.")
        return value


def Money(**kwargs: Any) -> Integer:
    """An amount: an integer number of cents (floats, numeric strings and booleans refused)."""
    return Integer(unit="cents", **kwargs)


def PositiveInt(**kwargs: Any) -> Integer:
    """The reference's "(positive int)": an integer greater than 0."""
    return Integer(minimum=1, **kwargs)


class Choice(Text):
    """A string out of a fixed set; ``allow_none`` when the reference says "or null"."""

    def __init__(self, choices: Collection[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices = frozenset(choices)
        self.listed = ", ".join(choices)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or value not in self.choices:
            null = " or null" if self.allow_none else ""
            raise ValidationError(f"Must be one of: {self.listed}{null}.")
        return value


class CountryCode(Text):
    """An ISO 3166-1 alpha-2 or alpha-3 country code, in capitals: ``ES`` or ``ESP``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or value not in COUNTRY_CODES:
            raise ValidationError(
                "Must be an ISO 3166 alpha-2 or alpha-3 country code in capitals, "
                "such as ES or ESP."
            )
        return value


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        return False
    try:
        dt.datetime.fromisoformat(value.replace(",", "."))
    except ValueError:
        return False
    return True


class IsoDate(PayloadField):
    """The reference's "(ISO8601 formatted date)": ``YYYY-MM-DD``, a real calendar day."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not _is_date(value):
            raise ValidationError("Must be an ISO 8601 date (YYYY-MM-DD), such as 2017-06-30.")
        return value


class IsoTimestamp(PayloadField):
    """The reference's "(ISO8601 formatted timestamp)", such as ``2014-02-05T13:21:22+01:00``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not _is_timestamp(value):
            raise ValidationError(
                "Must be an ISO 8601 timestamp, such as 2014-02-05T13:21:22+01:00."
            )
        return value


class IsoDateOrTimestamp(PayloadField):
    """The reference's "(ISO8601 formatted date or ISO8601 formatted timestamp)"."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not (_is_date(value) or _is_timestamp(value)):
            raise ValidationError(
                "Must be an ISO 8601 date or timestamp, such as 2017-06-30 or "
                "2017-06-30T13:50:00+02:00."
            )
        return value


class IsoPeriod(PayloadField):
    """The reference's "(ISO8601 formatted period)": a duration such as ``P3M15D``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or not _PERIOD.fullmatch(value):
            raise ValidationError("Must be an ISO 8601 period, such as P3M15D or P1Y.")
        return value


class Url(Text):
    """An absolute URL with a host; ``schemes`` are the ones allowed."""

    def __init__(self, *, schemes: Collection[str] = ("http", "https"), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schemes = frozenset(schemes)
        self.expected = " or ".join(f"{scheme}://" for scheme in schemes)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        super()._deserialize(value, attr, data)
        try:
            parts = urlsplit(value)
            good = parts.scheme in self.schemes and bool(parts.hostname)
        except ValueError:  # a malformed port or IPv6 host
            good = False
        if not good or any(char.isspace() for char in value):
            raise ValidationError(f"Must be a URL starting with {self.expected} and a host.")
        return value


def HttpsUrl(**kwargs: Any) -> Url:
    """The reference's "(an HTTPS URL string)"."""
    return Url(schemes=("https",), **kwargs)


class LatLng(PayloadField):
    """A ``[latitude, longitude]`` pair of numbers within -90..90 and -180..180."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, list) or len(value) != 2:
            raise ValidationError("Must be a list of two numbers: [latitude, longitude].")
        for number in value:
            if not isinstance(number, int | float) or isinstance(number, bool):
                raise ValidationError("Must be a list of two numbers: [latitude, longitude].")
            # An int is finite, and too large for math.isfinite (OverflowError).
            if isinstance(number, float) and not math.isfinite(number):
                raise ValidationError("Latitude and longitude must be finite numbers.")
        latitude, longitude = value
        if not -90 <= latitude <= 90:
            raise ValidationError("Latitude (the first number) must be between -90 and 90.")
        if not -180 <= longitude <= 180:
            raise ValidationError("Longitude (the second number) must be between -180 and 180.")
        return list(value)


class Extra(PayloadField):
    """Free-form details: a JSON object. PHP prints an empty ``array()`` as ``[]``: accepted."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, Mapping) or value == []:
            return value
        raise ValidationError(f"Must be an object, not {kind(value)}.")


class Forbidden(PayloadField):
    """A key the reference does not allow here: present at all (even null) is an error."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(allow_none=True, **kwargs)
        self.message = message

    def deserialize(
        self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any
    ) -> Any:
        if value is fields.missing_:  # type: ignore[attr-defined]
            return value
        raise ValidationError(self.message)


class Sub(PayloadField):
    """A nested object, validated by a schema built with the parent's contract options.

    marshmallow 4 has no schema context, so the options travel by constructor: when this
    field is bound to its schema, it builds its own schema instance from the owner's
    ``options`` and ``strict`` (plus ``schema_kwargs``), once.
    """

    def __init__(
        self,
        schema: Callable[..., Schema],
        *,
        schema_kwargs: Mapping[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.schema_class = schema
        self.schema_kwargs = dict(schema_kwargs or {})
        self.schema: Schema | None = None

    def _bind_to_schema(self, field_name: str, parent: Schema | fields.Field) -> None:  # type: ignore[type-arg]
        super()._bind_to_schema(field_name, parent)
        owner = self.root
        self.schema = self.schema_class(
            options=getattr(owner, "options", frozenset()),
            strict=getattr(owner, "strict", False),
            **self.schema_kwargs,
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        assert self.schema is not None, "Sub is used inside a schema"
        return self.schema.load(value)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        assert self.schema is not None, "Sub is used inside a schema"
        return self.schema.dump(value)


class ListOf(fields.List):  # type: ignore[type-arg]
    """A JSON list (PHP arrays with gaps in their keys arrive as objects and are refused)."""

    # marshmallow reads this per class and types it as an instance attribute.
    default_error_messages = {  # noqa: RUF012
        "invalid": "Must be a list.",
        "null": "Field may not be null.",
        "required": "Missing data for required field.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, list):
            if isinstance(value, Mapping):
                raise ValidationError(
                    "Must be a list, not an object (a PHP array whose keys are not "
                    "0, 1, 2, ... is sent as an object)."
                )
            raise ValidationError(f"Must be a list, not {kind(value)}.")
        return super()._deserialize(value, attr, data, **kwargs)
