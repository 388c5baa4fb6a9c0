"""What every payload schema shares: contract options, strict mode, order-keeping, typed objects.

A schema instance is built for one set of contract options and one strictness, and builds its
nested schemas the same way (see :class:`tasks.schemas.fields.Sub`). Build the tree once and
reuse it: :func:`tasks.schemas.order.body_schema` caches one per (options, strict).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping
from typing import Any

from marshmallow import (
    INCLUDE,
    RAISE,
    Schema,
    ValidationError,
    post_dump,
    validates_schema,
)
from marshmallow.types import UnknownOption

from cartsync.tasks.schemas.fields import NOT_UTF8, PayloadField, is_text, kind

#: Key that selects an object's shape in a list of typed objects (cart items, trackings, ...).
TYPE_KEY = "type"


class PayloadSchema(Schema):
    """Base of every schema of the Order Update payload.

    Unknown keys are kept (and forwarded unchanged), or, in strict mode, each is an error
    ("Unknown field.") at its own path. A load returns a copy of the input with the same keys
    in the same order and the same values, so a load followed by a dump round-trips.
    """

    # marshmallow reads this per class and types it as an instance attribute.
    error_messages = {  # noqa: RUF012
        "type": "Must be an object.",
        "unknown": "Unknown field.",
    }

    def __init__(self, *, options: Collection[str] = frozenset(), strict: bool = False) -> None:
        # Set before Schema.__init__: binding the fields builds the nested schemas from these.
        self.options = frozenset(options)
        self.strict = strict
        super().__init__(unknown=RAISE if strict else INCLUDE)
        self._fields_by_key = {
            field.data_key or name: field for name, field in self.load_fields.items()
        }
        self._required_keys = [key for key, f in self._fields_by_key.items() if f.required]

    def _deserialize(
        self,
        data: Any,
        *,
        error_store: Any,
        many: bool = False,
        partial: Any = None,
        unknown: UnknownOption = RAISE,
        index: int | None = None,
    ) -> Any:
        """A leaner load loop than marshmallow's, with the same results for our schemas.

        marshmallow calls every declared field for every object, present or not; a cart
        item declares some twenty optional fields and sends a handful. This loop visits the
        keys the producer sent, in the producer's order (so the copy keeps it), and checks
        the required ones for absence. The producer calls it on every enqueue: this cuts the
        cost of a load to about a third. It overrides a method marshmallow calls private; the
        schema tests pin its behaviour, and pyproject.toml pins marshmallow below 5.
        """
        if many or partial:
            return super()._deserialize(
                data,
                error_store=error_store,
                many=many,
                partial=partial,
                unknown=unknown,
                index=index,
            )
        if not isinstance(data, Mapping):
            error_store.store_error([self.error_messages["type"]], index=index)
            return {}
        fields = self._fields_by_key
        for key in self._required_keys:
            if key not in data:
                message = fields[key].error_messages["required"]
                error_store.store_error([message], key, index=index)
        loaded: dict[str, Any] = {}
        for key, raw in data.items():
            field = fields.get(key)
            if field is None:
                if unknown == RAISE:
                    error_store.store_error([self.error_messages["unknown"]], shown(key), index)
                elif not is_utf8(key) or not is_utf8(raw):
                    error_store.store_error([NOT_UTF8], shown(key), index=index)
                elif unknown == INCLUDE:
                    loaded[key] = raw
                continue
            try:
                loaded[key] = field.deserialize(raw, key, data)
            except ValidationError as error:
                error_store.store_error(error.messages, key, index=index)
        return loaded

    @post_dump(pass_original=True)
    def _with_unknown_keys(
        self, data: dict[str, Any], original: Mapping[str, Any], **kwargs: Any
    ) -> dict[str, Any]:
        return {key: data[key] if key in data else original[key] for key in original}


def is_utf8(value: Any) -> bool:
    """True unless ``value`` holds, at any depth, a string UTF-8 cannot carry.

    Unknown keys are forwarded unchecked, except for this: a body with a lone surrogate
    (JSON's ``"\\ud800"``) anywhere cannot be sent as the UTF-8 seQura reads.
    """
    pending = [value]  # a loop, not recursion: an unknown key may nest arbitrarily deep
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not is_text(item):
                return False
        elif isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return True


def shown(key: Any) -> str:
    """A key as it can appear in an error path: lone surrogates escaped, never raised on."""
    text = str(key)
    return text if is_text(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


def raw_check(
    check: Callable[[Any, Mapping[str, Any]], None],
) -> Callable[..., None]:
    """Make ``check(self, original)`` a schema-level check of the raw input.

    It runs even when some fields failed, so that one bad field does not hide another
    problem (an on-call engineer fixing a body should see every error at once), and only
    when the input is an object at all.
    """

    @functools.wraps(check)
    def run(self: Any, data: Any, original: Any, **kwargs: Any) -> None:
        if isinstance(original, Mapping):
            check(self, original)

    hooked: Callable[..., None] = validates_schema(pass_original=True, skip_on_field_errors=False)(
        run
    )
    return hooked


def contract_field(original: Mapping[str, Any], key: str, *, option: str, has_option: bool) -> None:
    """Raise if ``key`` is missing although ``option`` requires it, or present without it.

    This is the references' "Mandatory for <these merchants>, not permitted for others".
    """
    present = key in original
    if has_option and not present:
        raise ValidationError(
            f"Missing data for required field: merchants with the {option} contract option "
            "must send it.",
            key,
        )
    if present and not has_option:
        raise ValidationError(
            f"Not permitted: only merchants with the {option} contract option may send it.", key
        )


class Typed(PayloadField):
    """One object of a list whose ``type`` key selects its schema (cart items, trackings, ...).

    ``shapes`` maps each allowed ``type`` to a schema class; ``default`` is the type assumed
    when the key is missing (None: the key is required). ``optional`` maps types that need a
    contract option to (option, schema class): a merchant without the option gets an error
    at ``type`` that names the option. Schemas are built once, when the field is bound, with
    the owner's options and strictness.
    """

    def __init__(
        self,
        shapes: Mapping[str, type[PayloadSchema]],
        *,
        what: str,
        default: str | None = None,
        optional: Mapping[str, tuple[str, type[PayloadSchema]]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.shape_classes = dict(shapes)
        self.optional = dict(optional or {})
        self.what = what
        self.default = default
        self.schemas: dict[str, PayloadSchema] = {}
        self.gated: dict[str, str] = {}
        self.expected = ", ".join(sorted(set(shapes) | set(self.optional)))

    def schema_kwargs(self, owner: Any) -> dict[str, Any]:
        """Extra constructor arguments for the schemas, taken from the owning schema."""
        return {}

    def _bind_to_schema(self, field_name: str, parent: Any) -> None:
        super()._bind_to_schema(field_name, parent)
        owner = self.root
        options: frozenset[str] = getattr(owner, "options", frozenset())
        strict: bool = getattr(owner, "strict", False)
        extra = self.schema_kwargs(owner)
        shapes = dict(self.shape_classes)
        for name, (option, shape) in self.optional.items():
            if option in options:
                shapes[name] = shape
            else:
                self.gated[name] = (
                    f'A {self.what} of type "{name}" needs the {option} contract option, '
                    "which this merchant does not have."
                )
        self.schemas = {
            name: shape(options=options, strict=strict, **extra) for name, shape in shapes.items()
        }

    def _schema_for(self, value: Any) -> PayloadSchema:
        if not isinstance(value, Mapping):
            raise ValidationError(f"Must be an object ({self.what}), not {kind(value)}.")
        if TYPE_KEY in value:
            name = value[TYPE_KEY]
        elif self.default is not None:
            name = self.default
        else:
            raise ValidationError(
                {TYPE_KEY: [f"Missing data for required field: one of {self.expected}."]}
            )
        schema = self.schemas.get(name) if isinstance(name, str) else None
        if schema is None:
            if isinstance(name, str) and name in self.gated:
                raise ValidationError({TYPE_KEY: [self.gated[name]]})
            default = f" (or no type: {self.default})" if self.default else ""
            raise ValidationError(
                {TYPE_KEY: [f"Unknown {self.what} type: must be one of {self.expected}{default}."]}
            )
        return schema

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        return self._schema_for(value).load(value)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return self._schema_for(value).dump(value)
