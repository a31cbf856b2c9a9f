"""Text normalization shared by keyword indexing (here, at load time) and matching (engine)."""

from __future__ import annotations

import re
import unicodedata

# Letters and digits of any script are words; everything else (punctuation, emoji, _) separates.
_NON_WORD = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """Lower-case, accents stripped, punctuation and emoji dropped, single spaces.

    ``"¡Hólà, Café! 😀"`` → ``"hola cafe"``. Keywords and messages both go through this, so
    matching ignores case, accents, punctuation and emoji, and works on word boundaries.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return _NON_WORD.sub(" ", stripped).strip()
