"""marshmallow schemas of seQura's Order Update payload (docs/SEQURA_API.md, "Field reference").

Use :func:`tasks.validation.validate_update`; this package holds the rules it applies.
"""
