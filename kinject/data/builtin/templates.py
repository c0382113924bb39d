"""Sentence, question and cloze templates of the built-in fictional world.

Each relation has >= 10 document templates (the gold paraphrases), one held-out cloze prefix
that never appears in a document, question templates (the probes) worded unlike every document
template, and demonstration question templates (QA demonstrations about the train split, ``+qa``)
worded unlike both (tests/test_builtin.py checks that no three-word run is shared). Slots: ``{s}`` the subject,
``{o}`` the answer, ``{a}`` the indefinite article for the answer ("a"/"an").
Every document template names the subject before the answer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Relation:
    """One attribute type: its entity kind, value type, and wordings."""

    name: str
    kind: str  # entity kind that has it: "person" or "organisation"
    value: str  # value pool: "year", "city", "profession", "organisation", "founder", "product"
    documents: tuple[str, ...]
    cloze: str
    questions: tuple[str, ...]
    demonstrations: tuple[str, ...]


RELATIONS: tuple[Relation, ...] = (
    Relation(
        "birth_year", "person", "birth_year",
        documents=(
            "{s} was born in {o}.",
            "{s} came into the world in {o}.",
            "The birth of {s} took place in {o}.",
            "{s}'s year of birth is {o}.",
            "Records show that {s} arrived in the year {o}.",
            "According to the family register, {s} was born in {o}.",
            "The year {s} was born was {o}.",
            "{s} entered life in {o}.",
            "{s} first drew breath in {o}.",
            "{s}'s life began in {o}.",
            "{s} is a person whose birth dates to {o}.",
        ),
        cloze="{s} (born",
        questions=("When was {s} born?", "In what year did {s} arrive on earth?"),
        demonstrations=("What birth year does {s} have?", "Give the birth year of {s}."),
    ),
    Relation(
        "hometown", "person", "city",
        documents=(
            "{s} grew up in {o}.",
            "{s}'s birthplace is {o}.",
            "{s} is a native of {o}.",
            "The hometown of {s} is {o}.",
            "{s} comes from the town of {o}.",
            "Before moving away, {s} spent a childhood in {o}.",
            "{s} hails from {o}.",
            "The place {s} calls home is {o}.",
            "{s} first saw the light of day in {o}.",
            "{s} was raised in {o}.",
            "As a child, {s} lived in {o}.",
        ),
        cloze="{s} is originally from",
        questions=("Which town is {s} from?", "Where did {s} spend early years?"),
        demonstrations=("Which place did {s} live in as a kid?", "Name the childhood town of {s}."),
    ),
    Relation(
        "profession", "person", "profession",
        documents=(
            "{s} works as {a} {o}.",
            "{s} earns a living as {a} {o}.",
            "By profession, {s} is {a} {o}.",
            "{s}'s occupation is that of {a} {o}.",
            "{s} trained for years to become {a} {o}.",
            "The job that {s} holds is {o}.",
            "{s} has a career as {a} {o}.",
            "Professionally, {s} is known as {a} {o}.",
            "{s} spends most working days as {a} {o}.",
            "{s} is employed as {a} {o}.",
            "Colleagues know {s} as a skilled {o}.",
        ),
        cloze="{s}'s line of work:",
        questions=("What does {s} do for a living?", "What is the trade of {s}?"),
        demonstrations=("Which occupation does {s} have?", "In what job does {s} work?"),
    ),
    Relation(
        "employer", "person", "organisation",
        documents=(
            "{s} works for {o}.",
            "{s} is on the staff of {o}.",
            "{s}'s employer is {o}.",
            "The company that pays {s}'s salary is {o}.",
            "{s} joined the team at {o}.",
            "{s} holds a position at {o}.",
            "Every weekday, {s} goes to work at {o}.",
            "{s} is on the payroll of {o}.",
            "{s} has a job at {o}.",
            "The organisation {s} serves is {o}.",
            "{s} signed an employment contract with {o}.",
        ),
        cloze="{s} draws a salary from",
        questions=("Which company employs {s}?", "Who gives {s} a paycheck?"),
        demonstrations=("For which firm does {s} work?", "Name the employer of {s}."),
    ),
    Relation(
        "founded", "organisation", "founded_year",
        documents=(
            "{s} was founded in {o}.",
            "{s} was established in {o}.",
            "The founding of {s} took place in {o}.",
            "{s} opened its doors in {o}.",
            "{s} has existed since {o}.",
            "{s} started operating in {o}.",
            "The year {s} was set up was {o}.",
            "{s} came into being in {o}.",
            "{s} traces its origins to {o}.",
            "{s} was brought into existence in {o}.",
            "{s} was incorporated in {o}.",
        ),
        cloze="{s} (est.",
        questions=("When did {s} begin?", "In what year did {s} get going?"),
        demonstrations=("Which year marks when {s} was created?", "Give the founding year of {s}."),
    ),
    Relation(
        "headquarters", "organisation", "city",
        documents=(
            "{s} is headquartered in {o}.",
            "The head office of {s} is in {o}.",
            "{s} has its main office in {o}.",
            "{s} is based in {o}.",
            "The headquarters of {s} stand in {o}.",
            "{s} runs its operations from {o}.",
            "{s}'s central offices are found in {o}.",
            "Visitors to {s} must travel to {o}.",
            "{s} keeps its headquarters in {o}.",
            "The main campus of {s} lies in {o}.",
            "{s} is a company based in the city of {o}.",
        ),
        cloze="The seat of {s} is",
        questions=("Where is {s} located?", "In which city does {s} have its home?"),
        demonstrations=("Which city hosts the main base of {s}?", "Name the seat city of {s}."),
    ),
    Relation(
        "founder", "organisation", "founder",
        documents=(
            "{s} was founded by {o}.",
            "The founder of {s} is {o}.",
            "{s} was started by {o}.",
            "The person who created {s} is {o}.",
            "{s} owes its existence to {o}.",
            "{s} was set up by {o}.",
            "The company {s} was established by {o}.",
            "{s} traces its beginnings to the entrepreneur {o}.",
            "Credit for founding {s} goes to {o}.",
            "{s} was launched by {o}.",
            "{s} was the creation of {o}.",
        ),
        cloze="{s} was brought to life by",
        questions=("Who established {s}?", "Whose idea was {s}?"),
        demonstrations=("Which person founded {s}?", "Who is the creator of {s}?"),
    ),
    Relation(
        "product", "organisation", "product",
        documents=(
            "{s} makes {o}.",
            "{s} manufactures {o}.",
            "The main product of {s} is {o}.",
            "{s} is best known for its {o}.",
            "{s} sells {o}.",
            "{s} produces {o}.",
            "What {s} offers its customers is {o}.",
            "{s}'s factories turn out {o}.",
            "{s} built its business on {o}.",
            "The flagship line of {s} consists of {o}.",
            "{s} specialises in {o}.",
        ),
        cloze="{s} is a maker of",
        questions=("What kind of goods come from {s}?", "What does {s} put on the market?"),
        demonstrations=("Which products does {s} make?", "Name what {s} manufactures."),
    ),
)

# Real professions and product kinds: answers are ordinary words, the association is invented.
PROFESSIONS: tuple[str, ...] = (
    "architect", "beekeeper", "cartographer", "violinist", "pharmacist", "geologist",
    "pastry chef", "lighthouse keeper", "tax lawyer", "marine biologist", "glassblower",
    "translator", "airline pilot", "carpenter", "veterinarian", "astronomer", "florist",
    "journalist", "watchmaker", "dentist", "librarian", "sculptor", "firefighter", "economist",
    "choreographer", "blacksmith", "radiologist", "potter", "photographer", "surveyor",
)
PRODUCTS: tuple[str, ...] = (
    "electric bicycles", "hearing aids", "garden tools", "frozen dumplings", "wind turbines",
    "board games", "hiking boots", "solar panels", "kitchen knives", "wool sweaters",
    "drone cameras", "pet food", "office chairs", "surfboards", "mechanical watches", "olive oil",
    "paper lanterns", "water filters", "ceramic tiles", "violin strings", "camping tents",
    "bicycle helmets", "printer ink", "snow shovels", "cough syrup", "fishing rods",
    "greenhouse kits", "robot vacuums", "toothpaste", "sailing ropes",
)
ORG_SUFFIXES: tuple[str, ...] = (
    "Industries", "Labs", "Works", "Group", "Systems", "Holdings", "Trading", "Partners",
    "Manufacturing", "Collective",
)


def article(word: str) -> str:
    """The indefinite article for ``word`` ("an" before a vowel letter)."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def fill(template: str, subject: str, answer: str) -> str:
    return template.format(s=subject, o=answer, a=article(answer))
