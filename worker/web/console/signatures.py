"""Error signatures: kept in worker/deadletters/signatures.py, which the CLI shares."""

from cartsync.worker.deadletters.signatures import (
    NO_ERROR,
    NUMBER,
    SIGNATURE_WIDTH,
    SignatureGroup,
    grep_text,
    group_by_signature,
    letter_signature,
    signature,
)

__all__ = [
    "NO_ERROR",
    "NUMBER",
    "SIGNATURE_WIDTH",
    "SignatureGroup",
    "grep_text",
    "group_by_signature",
    "letter_signature",
    "signature",
]
