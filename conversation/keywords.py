"""Trigger keywords → template, by an index whose lookup cost does not grow with templates.

Matching works on normalized text (``templates.normalize``) and on word boundaries:
"hi" matches "Hi there!" but not "this is history"; "new order" matches as a phrase.
Ties (several keywords in one message) are broken deterministically: the longest
keyword wins, then the higher template ``priority``, then the template name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from templates.normalize import normalize


@dataclass(frozen=True)
class _Entry:
    tokens: tuple[str, ...]
    keyword: str
    template: str
    priority: int
    language: str | None = None  # the keyword's language; None: the deployment's default

    def rank(self) -> tuple[int, int, str]:
        return (-len(self.keyword), -self.priority, self.template)


@dataclass(frozen=True)
class Match:
    """A keyword's template and the language the keyword is in (None: the default)."""

    template: str
    language: str | None


class KeywordIndex:
    def __init__(self, keywords: Iterable[tuple[str, str, int] | tuple[str, str, int, str | None]]) -> None:
        """``keywords``: (keyword, template name, priority[, language]) of active templates."""
        self._by_first: dict[str, list[_Entry]] = {}
        self._exact: dict[str, _Entry] = {}
        for keyword, template, priority, *language in keywords:
            norm = normalize(keyword)
            if not norm:
                continue
            entry = _Entry(tuple(norm.split(" ")), norm, template, priority, language[0] if language else None)
            self._by_first.setdefault(entry.tokens[0], []).append(entry)
            best = self._exact.get(norm)
            if best is None or entry.rank() < best.rank():
                self._exact[norm] = entry

    def exact(self, text: str) -> str | None:
        """The template whose keyword is the whole message, if any."""
        match = self.exact_match(text)
        return match.template if match else None

    def keywords_starting_with(self, word: str) -> list[str]:
        """The keywords whose first word is ``word`` (normalized): the only ones ``search``
        compares a message holding it with, so its cost follows the message, not the templates."""
        return [entry.keyword for entry in self._by_first.get(word, ())]

    def search(self, text: str) -> str | None:
        """The template whose keyword appears in the message on word boundaries, if any."""
        match = self.search_match(text)
        return match.template if match else None

    def exact_match(self, text: str) -> Match | None:
        """The template and language of the keyword that is the whole message, if any."""
        entry = self._exact.get(normalize(text))
        return Match(entry.template, entry.language) if entry else None

    def search_match(self, text: str) -> Match | None:
        """The template and language of the best keyword on word boundaries in the message."""
        tokens = normalize(text).split(" ")
        best: _Entry | None = None
        for i, token in enumerate(tokens):
            for entry in self._by_first.get(token, ()):
                n = len(entry.tokens)
                if tuple(tokens[i : i + n]) == entry.tokens and (best is None or entry.rank() < best.rank()):
                    best = entry
        return Match(best.template, best.language) if best else None
