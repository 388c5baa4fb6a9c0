"""The cart-state update: payload schemas, validation, scenario builders, producer, task."""
