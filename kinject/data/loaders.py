"""Corpus loaders: the built-in world, the LaPael SQuAD layout, a text directory, JSONL.

Each returns a :class:`~kinject.data.schema.Corpus`; bad input raises a UserError that names
the file (and line) at fault.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from kinject.data.builtin.retention import RETENTION_FEWSHOT
from kinject.data.builtin.world import build_world
from kinject.data.jsonl import load_numbered, load_records, read_json, read_jsonl, read_text, unique_ids
from kinject.data.schema import Corpus, Document, Fact, Probe
from kinject.errors import UserError

if TYPE_CHECKING:
    from kinject.config import DataConfig

SOURCES = ("builtin", "lapael-squad", "textdir", "jsonl")
TEXT_SUFFIXES = (".txt", ".md")


def parse_fewshot_prompt(path: Path) -> tuple[str, list[tuple[str, str]]]:
    """Read a LaPael-style prompt file: an instruction, Question/Answer pairs, then ``{text}``."""
    text = read_text(path)
    blocks = [b.strip() for b in text.split("\n\n") if b.strip()]
    if not blocks or "{text}" not in blocks[-1]:
        raise UserError(f"{path}: expected an instruction, Q/A blocks and a final 'Question: {{text}}' block")
    pairs = []
    for block in blocks[1:-1]:
        lines = block.splitlines()
        if len(lines) != 2 or not lines[0].startswith("Question:") or not lines[1].startswith("Answer:"):
            raise UserError(f"{path}: a block is not 'Question: ...' followed by 'Answer: ...': {block[:60]!r}")
        pairs.append((lines[0][len("Question:"):].strip(), lines[1][len("Answer:"):].strip()))
    return blocks[0], pairs


def _json_list(path: Path) -> list[dict]:
    rows = read_json(path)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise UserError(f"{path}: expected a JSON list of objects")
    return rows


def _squad_split(root: Path, split: str) -> tuple[list[Fact], list[Probe]]:
    sentences = _json_list(root / split / "sentences.json")
    qa = [row for _, row in read_jsonl(root / split / "qa.jsonl")]
    facts, probes = [], []
    for i, row in enumerate(sentences):
        for key in ("data_id", "content"):
            if key not in row:
                raise UserError(f"{root / split / 'sentences.json'}: item {i} is missing field {key!r}")
        did = int(row["data_id"])
        if not 0 <= did < len(qa) or "question" not in qa[did] or "answer" not in qa[did]:
            raise UserError(f"{root / split / 'qa.jsonl'}:{did + 1}: no question/answer for data_id {did}")
        fid = f"squad-{split}-{did}"
        text, answer = row["content"], qa[did]["answer"]
        facts.append(Fact(fid, fid, text, answer, answer_start=text.rfind(answer)))
        probes.append(Probe(f"{fid}/qa", "qa", qa[did]["question"], [answer], fact_id=fid, doc_id=fid))
    return facts, probes


def load_lapael_squad(root: Path, split: str = "test") -> Corpus:
    """The LaPael SQuAD layout: ``{split}/sentences.json`` + ``{split}/qa.jsonl`` (aligned by
    data_id), ``train/paraphrases.json``, ``train/entities.json`` and ``fewshot_prompt.txt``."""
    if not root.is_dir():
        raise UserError(f"{root}: no such directory (data.path for source lapael-squad)")
    if split not in ("test", "train"):
        raise UserError(f"data.split: {split!r} is not test or train")
    facts, probes = _squad_split(root, split)
    instruction, fewshot = parse_fewshot_prompt(root / "fewshot_prompt.txt")
    train_facts, train_qa = _squad_split(root, "train")
    train_paraphrases: dict[str, list[str]] = defaultdict(list)
    if (root / "train" / "paraphrases.json").is_file():
        for row in _json_list(root / "train" / "paraphrases.json"):
            train_paraphrases[f"squad-train-{int(row['data_id'])}"].append(row["output"])
    if (root / "train" / "entities.json").is_file():
        by_id = {f.id: f for f in train_facts}
        for row in _json_list(root / "train" / "entities.json"):
            fact = by_id.get(f"squad-train-{int(row['data_id'])}")
            if fact is not None:
                fact.entities = list(row.get("output", []))
    documents = [Document(f.id, f.text) for f in facts]
    return Corpus(
        name=f"lapael-squad-{split}", documents=documents, probes=probes, facts=facts, fewshot=fewshot,
        instruction=instruction, train_facts=train_facts if split == "test" else [],
        train_paraphrases=dict(train_paraphrases) if split == "test" else {},
        train_qa=train_qa if split == "test" else [], meta={"path": str(root), "split": split},
    )


def _load_probes(path: str | None, source: str, documents: list[Document]) -> list[Probe]:
    """The probes JSONL of a jsonl/textdir corpus: unique ids, and every ``doc_id`` a document."""
    if not path:
        raise UserError(f"data.probes: source {source!r} needs a probes JSONL file")
    numbered = load_numbered(path, Probe.from_dict)
    unique_ids(path, numbered, "probe")
    known = {d.id for d in documents}
    for lineno, probe in numbered:
        if known and probe.doc_id and probe.doc_id not in known:  # no documents: reported as empty
            raise UserError(f"{path}:{lineno}: doc_id {probe.doc_id!r} is not the id of any document of the corpus")
    return [probe for _, probe in numbered]


def textdir_documents(root: Path) -> list[Document]:
    """Every non-empty .txt/.md file under ``root`` is a document (id = its relative path)."""
    if not root.is_dir():
        raise UserError(f"{root}: no such directory (data.path for source textdir)")
    documents = []
    for f in sorted(p for p in root.rglob("*") if p.suffix in TEXT_SUFFIXES and p.is_file()):
        text = read_text(f)
        if text.strip():
            documents.append(Document(str(f.relative_to(root)), text, title=f.stem))
    return documents


def load_textdir(root: Path, probes: str | None) -> Corpus:
    documents = textdir_documents(root)
    return Corpus(name=f"textdir:{root.name}", documents=documents, probes=_load_probes(probes, "textdir", documents),
                  fewshot=list(RETENTION_FEWSHOT), meta={"path": str(root)})


def _load_documents_jsonl(path: Path) -> list[Document]:
    numbered = load_numbered(path, Document.from_dict)
    unique_ids(path, numbered, "document")
    return [doc for _, doc in numbered]


def load_jsonl(path: Path, probes: str | None) -> Corpus:
    """Documents from a JSONL of {id, text[, title]}."""
    documents = _load_documents_jsonl(path)
    return Corpus(name=f"jsonl:{path.name}", documents=documents, probes=_load_probes(probes, "jsonl", documents),
                  fewshot=list(RETENTION_FEWSHOT), meta={"path": str(path)})


def _builtin_world(cfg: DataConfig, seed: int) -> Corpus:
    """The built-in world: ``data.builtin.seed`` if set, else the run seed."""
    return build_world(cfg.builtin, cfg.builtin.seed if cfg.builtin.seed is not None else seed)


def load_documents(spec: str, cfg: DataConfig, seed: int = 0) -> tuple[str, list[Document], list[Fact]]:
    """(name, documents, facts) of a corpus named on the command line, probes not needed.

    ``spec``: ``builtin`` (the world of ``seed``), a directory in the LaPael SQuAD layout (its
    ``cfg.split``), any other directory (text files), or a documents JSONL file. Facts (a
    document's answer span) come with the first two; ``cfg.limit`` keeps the first N documents.
    """
    path = Path(spec).expanduser()
    facts: list[Fact] = []
    if spec == "builtin":
        corpus = _builtin_world(cfg, seed)
        name, documents, facts = "builtin", corpus.documents, corpus.facts
    elif path.is_dir() and (path / cfg.split / "sentences.json").is_file():
        corpus = load_lapael_squad(path, cfg.split)
        name, documents, facts = corpus.name, corpus.documents, corpus.facts
    elif path.is_dir():
        name, documents = f"textdir:{path.name}", textdir_documents(path)
    elif path.is_file():
        name, documents = f"jsonl:{path.name}", _load_documents_jsonl(path)
    else:
        raise UserError(f"{spec}: no such file or directory (give a text directory, a documents JSONL, "
                        "a LaPael SQuAD directory, or 'builtin')")
    if cfg.limit is not None:
        documents = documents[: cfg.limit]
    if not documents:
        raise UserError(f"{spec}: no documents")
    keep = {d.id for d in documents}
    return name, documents, [f for f in facts if f.doc_id in keep]


def _limit(corpus: Corpus, n: int) -> Corpus:
    keep = {d.id for d in corpus.documents[:n]}
    corpus.documents = corpus.documents[:n]
    corpus.facts = [f for f in corpus.facts if f.doc_id in keep]
    corpus.probes = [p for p in corpus.probes if not p.doc_id or p.doc_id in keep]
    corpus.paraphrases = {k: v for k, v in corpus.paraphrases.items() if k in keep}
    return corpus


def load_corpus(cfg: DataConfig, seed: int) -> Corpus:
    """Load the corpus ``cfg`` names; the built-in world is generated from ``seed``."""
    if cfg.source == "builtin":
        for key in ("path", "probes"):
            if getattr(cfg, key) is not None:
                raise UserError(f"data.{key}: the builtin source reads no files; set data.source to jsonl, textdir "
                                "or lapael-squad to use yours")
        corpus = _builtin_world(cfg, seed)
    elif cfg.source in ("lapael-squad", "textdir", "jsonl"):
        if not cfg.path:
            raise UserError(f"data.path: source {cfg.source!r} needs a path")
        path = Path(cfg.path).expanduser()
        if cfg.source == "lapael-squad":
            if cfg.probes is not None:
                raise UserError(f"data.probes: source lapael-squad reads its probes from "
                                f"{path / cfg.split / 'qa.jsonl'}; leave data.probes unset")
            corpus = load_lapael_squad(path, cfg.split)
        elif cfg.source == "textdir":
            corpus = load_textdir(path, cfg.probes)
        else:
            corpus = load_jsonl(path, cfg.probes)
    else:
        raise UserError(f"data.source: {cfg.source!r} is not one of {', '.join(SOURCES)}")
    if cfg.limit is not None:
        corpus = _limit(corpus, cfg.limit)
    if not corpus.documents:
        raise UserError(f"corpus {corpus.name!r} is empty: no documents to inject")
    if not corpus.probes:
        raise UserError(f"corpus {corpus.name!r} has no probes to evaluate")
    return corpus


def _paraphrase_row(row: dict) -> tuple[Fact, list[str]]:
    for key in ("text", "answer", "paraphrases"):
        if key not in row:
            raise KeyError(key)
    if not isinstance(row["paraphrases"], list) or not all(isinstance(p, str) for p in row["paraphrases"]):
        raise ValueError("field 'paraphrases' must be a list of strings")
    fid = str(row.get("id", row["text"]))
    text, answer = row["text"], row["answer"]
    return Fact(fid, fid, text, answer, answer_start=text.rfind(answer),
                entities=list(row.get("entities", []))), row["paraphrases"]


def load_paraphrase_data(spec: str, cfg: DataConfig, seed: int = 0) -> tuple[str, list[Fact], dict[str, list[str]]]:
    """(name, facts, paraphrases by fact id) to train a latent paraphraser on.

    ``spec``: ``builtin`` (the train split of the world of ``seed``: gold paraphrases, exact
    entity spans), a LaPael SQuAD directory (its train split: paraphrases.json, entities.json),
    or a JSONL of ``{text, answer, paraphrases: [...], entities: [...] (optional), id (optional)}``.
    """
    path = Path(spec).expanduser()
    if spec == "builtin":
        corpus = _builtin_world(cfg, seed)
        return f"builtin-train (world {corpus.meta['world_seed']})", corpus.train_facts, corpus.train_paraphrases
    if path.is_dir():
        if not (path / "train" / "paraphrases.json").is_file():
            raise UserError(f"{path}: not a LaPael SQuAD directory (train/paraphrases.json is missing)")
        corpus = load_lapael_squad(path, "test")
        return f"lapael-squad-train:{path.name}", corpus.train_facts, corpus.train_paraphrases
    if path.is_file():
        pairs = load_records(path, _paraphrase_row)
        if not pairs:
            raise UserError(f"{path}: no sentences")
        facts = [f for f, _ in pairs]
        return f"jsonl:{path.name}", facts, {f.id: p for f, p in pairs}
    raise UserError(f"{spec}: no such file or directory (give 'builtin', a LaPael SQuAD directory, "
                    "or a JSONL of {text, answer, paraphrases})")
