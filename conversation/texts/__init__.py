"""What parley itself says, per language: ``<language>.yaml`` data files and their loader.

``catalogue.load_catalogues`` merges the shipped files with a deployment's overrides;
``formats`` writes numbers, dates and plural forms the language's way (Babel, CLDR).
"""

from conversation.texts.catalogue import Catalogue, Catalogues, TextsError, load_catalogues

__all__ = ["Catalogue", "Catalogues", "TextsError", "load_catalogues"]
