"""marshmallow schemas of seQura's Order Update payload (../shared/spec/payload-reference-*.txt).

Use :func:`tasks.validation.validate_update`; this package holds the rules it applies.
"""
