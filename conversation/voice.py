"""What the engine says in one customer's language: parley's own texts, words and formats.

The deployment's catalogues (``conversation/texts``) give every language's texts; a
language parley has no texts for gets the default language's. Without catalogues (an
engine built from bare settings, as unit tests of the step machine do) the engine speaks
the English of ``EngineConfig`` as it always has.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from conversation.state import EngineConfig, Texts
from conversation.texts.catalogue import Catalogue, shipped_catalogues
from conversation.validation import expected
from templates.languages import LanguageError, canonical
from templates.normalize import normalize
from templates.schema import Validation


@dataclass(frozen=True)
class Voice:
    language: str
    texts: Texts
    fallback: str
    cancel_words: frozenset[str]  # normalized
    catalogue: Catalogue

    @property
    def profile_name(self) -> str:
        """How a customer whose name parley does not know is greeted ("there", "cliente")."""
        return self.catalogue.text("profile_name")

    def media_name(self, message_type: str) -> str:
        """What a non-text message is called in a reply ("voice messages", "figurinhas")."""
        key = f"media_names.{message_type}"
        return self.catalogue.text(key if key in self.catalogue.texts else "media_names.other")

    def expected(self, spec: Validation | None, has_options: bool) -> str:
        """What the customer should send instead, in their language."""
        return self.catalogue.text("expected.options") if has_options else expected(spec, self.catalogue)


# A step whose answer is stored under this key asks the customer's language: its option
# ids are language codes, and the choice holds for the rest of the conversation and after.
LANGUAGE_KEY = "language"


def chosen_language(answers: dict[str, object]) -> str | None:
    """The language a customer just chose, if this answer was to a language step."""
    chosen = answers.get(LANGUAGE_KEY)
    if not isinstance(chosen, str):
        return None
    try:
        return canonical(chosen)
    except LanguageError:  # the linter refuses such ids; an odd answer is just an answer
        return None


def conversation_language(config: EngineConfig, keyword_language: str | None) -> str | None:
    """The language a conversation started by a keyword of ``keyword_language`` is in: the
    keyword's, else (a flow that names no language) the deployment's default."""
    if keyword_language:
        return keyword_language
    return config.catalogues.default_language if config.catalogues is not None else None


def voice(config: EngineConfig, language: str | None) -> Voice:
    """parley's own texts for a customer of ``language`` (None: the default language)."""
    own = {normalize(w) for w in config.cancel_words}
    if config.catalogues is None:
        english = shipped_catalogues().get("en")
        return Voice("en", config.texts, config.fallback_text, frozenset(own), english)
    catalogue = config.catalogues.get(language)
    texts = Texts(**{f.name: str(catalogue.texts[f.name]) for f in fields(Texts)})
    words = own | {normalize(w) for w in catalogue.words.get("cancel", ())}
    return Voice(catalogue.language, texts, str(catalogue.texts["fallback"]), frozenset(words), catalogue)
