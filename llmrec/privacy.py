"""Keyed pseudonyms for user ids: HMAC-SHA256 with a secret, so raw ids stay at the edge.

The same id and key always give the same pseudonym (a user's events still meet in one state);
without the key a pseudonym cannot be linked back to its id, nor computed from a guessed id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["PSEUDONYM_PREFIX", "pseudonymise"]

PSEUDONYM_PREFIX = "p_"


def pseudonymise(user_id: str, key: bytes) -> str:
    """`p_` and 32 base32 characters of HMAC-SHA256(key, user_id) (160 bits)."""
    if not key:
        raise ValueError("the pseudonymisation key is empty")
    digest = hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).digest()
    return PSEUDONYM_PREFIX + base64.b32encode(digest[:20]).decode("ascii").lower()
