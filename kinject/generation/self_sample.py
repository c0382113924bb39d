"""DELIA's diverse self-samples: the model's own answers to diverse everyday queries.

DELIA (arXiv 2408.10841) mixes such answers into narrow fine-tuning data so that their broad,
unrelated gradients buffer what the narrow data would otherwise overwrite. Here they are mixed
into knowledge-injection training (``+delia``), to keep general knowledge (retention).

The queries: ``delia.queries=builtin`` is kinject's own file of 104 everyday tasks (writing,
advice, explanations, arithmetic, code, text tasks, conversation; no general-knowledge question
of the kind the retention probes ask), or a JSONL of ``{"query"}`` (``reference`` and ``id``
optional). The answers are sampled from the model being injected (``model``) with its chat template
(temperature 0.7, top-p 0.95, as the paper; ``delia.max_new_tokens`` 128 where the paper allows 512,
to keep CPU runs short), cached by content like every generation, or read from a ``kinject
self-sample`` file (``delia.samples``: a JSONL of ``{"messages": [user, assistant]}``).

``delia.prompt``: ``bare`` asks each query alone (kinject's first form, behind every DELIA row
before issue 21); ``reference`` asks as DELIA's ``build_cache.py`` does: a system turn ("You are a
helpful AI assistant."), the query, a reference answer as the assistant's turn, then the same query
again, whose reply is the self-sample (the stored chat is the query and that reply). The reference
is the query file's ``reference`` where it has one; otherwise (the builtin file has none) the
model's own first answer to the bare query (the ``bare`` sample, cached): the info says how many of
each. ``delia.answers_per_query`` > 1 samples several replies per query, so that a high ratio
finds enough self-samples in a small query file (DELIA's own pools are large enough for one each).

A run mixes ``int(N x delia.ratio)`` of them into the training texts (N = the documents injected),
drawn with the fixed ``delia.seed`` (the same for every run seed, so each is generated once),
each written out with the model's chat template. ``delia.loss``: ``all`` trains every token of
that chat text (system prompt and query included; kinject's default, behind every DELIA row so
far); ``response`` only the assistant's turn, as DELIA's code does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from kinject.checks import Check, at_least, check_section, non_negative, one_of, open_fraction, positive, seed_range
from kinject.data.jsonl import load_records
from kinject.errors import UserError
from kinject.generation.cache import GenerationCost, cached_sample
from kinject.generation.generators import GenerationConfig, LocalGenerator
from kinject.training.trainer import Completion, TrainText

BUILTIN_QUERIES = Path(__file__).with_name("delia_queries.jsonl")


REFERENCE_SYSTEM = "You are a helpful AI assistant."  # DELIA's build_cache.py template


@dataclass
class DeliaConfig:
    """``+delia``: ``ratio`` self-samples per injected document, from ``queries`` or ``samples``;
    ``loss``: ``all`` (every token of the chat text) or ``response`` (the assistant's turn only);
    ``prompt``: ``bare`` (the query alone) or ``reference`` (DELIA's: the query answered once by a
    reference answer, then asked again); ``answers_per_query``: replies sampled per query."""

    queries: str = "builtin"
    samples: str | None = None
    ratio: float = 1.0
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 128
    batch_size: int = 8
    seed: int = 0
    cache: bool = True
    loss: str = "all"
    prompt: str = "bare"
    answers_per_query: int = 1

    CHECKS: ClassVar[dict[str, Check]] = {
        "loss": one_of("all", "response"), "prompt": one_of("bare", "reference"), "answers_per_query": at_least(1),
        "ratio": positive, "temperature": non_negative, "top_p": open_fraction,
        "max_new_tokens": at_least(1), "batch_size": at_least(1), "seed": seed_range}


@dataclass
class SelfSamples:
    """The texts one ``+delia`` run mixes in (chat-formatted), and what they are (``info``)."""

    texts: list[TrainText]
    info: dict[str, Any] = field(default_factory=dict)


def check_delia_config(cfg: DeliaConfig) -> None:
    check_section(cfg, "delia")
    for key, value in (("delia.queries", cfg.queries), ("delia.samples", cfg.samples)):
        if value not in (None, "builtin") and not Path(value).is_file():
            raise UserError(f"{key}: {value}: no such file")


@dataclass(frozen=True)
class Query:
    """One everyday query and, where its file gives one, a ``reference`` answer."""

    text: str
    reference: str | None = None


def load_queries(spec: str) -> list[Query]:
    """The queries of ``builtin`` or a JSONL of ``{"query", "reference" (optional)}``."""
    path = BUILTIN_QUERIES if spec == "builtin" else Path(spec)

    def query(row: dict[str, Any]) -> Query:
        if not isinstance(row["query"], str) or not row["query"].strip():
            raise ValueError("field 'query' must be a non-empty string")
        reference = row.get("reference")
        if reference is not None and (not isinstance(reference, str) or not reference.strip()):
            raise ValueError("field 'reference' must be a non-empty string")
        return Query(row["query"], reference)

    queries = load_records(path, query)
    if not queries:
        raise UserError(f"{path}: no queries")
    return queries


def load_samples(path: str) -> list[list[dict[str, str]]]:
    """A self-sample file: one ``{"messages": [{"role", "content"}, ...]}`` per line."""

    def messages(row: dict[str, Any]) -> list[dict[str, str]]:
        msgs = row["messages"]
        if not isinstance(msgs, list) or not all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in msgs):
            raise ValueError("field 'messages' must be a list of {role, content}")
        return msgs

    rows = load_records(path, messages)
    if not rows:
        raise UserError(f"{path}: no self-samples")
    return rows


def self_sample(model: str, queries: list[Query], cfg: DeliaConfig, cache: Path | None, cost: GenerationCost,
                loaded: Any = None) -> tuple[list[list[dict[str, str]]], dict[str, int]]:
    """The model's replies (``cfg.answers_per_query`` each, in query order) as ``[user, assistant]``
    messages, asked with ``cfg.prompt``; and where the references came from (``reference_file``,
    ``reference_own``: counts of queries; both 0 with ``prompt=bare``). ``loaded``: the model
    ``model`` names, already in memory."""
    gen = GenerationConfig(model=model, temperature=cfg.temperature, top_p=cfg.top_p,
                           max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, seed=cfg.seed)
    generator = LocalGenerator(gen, loaded)
    bare = [[{"role": "user", "content": q.text}] for q in queries]
    sources = {"reference_file": 0, "reference_own": 0}
    requests = bare
    if cfg.prompt == "reference":
        own = [i for i, q in enumerate(queries) if q.reference is None]
        first = cached_sample(generator, [bare[i] for i in own], 1, cache, cost) if own else []
        references = [q.reference for q in queries]
        for i, s in zip(own, first):
            references[i] = s.replies[0].strip()
        sources = {"reference_file": len(queries) - len(own), "reference_own": len(own)}
        requests = [[{"role": "system", "content": REFERENCE_SYSTEM}, {"role": "user", "content": q.text},
                     {"role": "assistant", "content": r}, {"role": "user", "content": q.text}]
                    for q, r in zip(queries, references)]
    sampled = cached_sample(generator, requests, cfg.answers_per_query, cache, cost)
    chats = [[*b, {"role": "assistant", "content": r.strip()}] for b, s in zip(bare, sampled) for r in s.replies]
    return chats, sources


def select_self_samples(model: str, loaded: Any, documents: int, cfg: DeliaConfig,
                        cache: Path | None) -> SelfSamples:
    """``int(documents x ratio)`` self-samples (fewer if the queries x ``answers_per_query`` run
    out), chat-formatted with
    the tokenizer of ``loaded`` (the :class:`~kinject.models.LoadedModel` of ``model``, which samples them)."""
    check_delia_config(cfg)
    tokenizer = loaded.tokenizer
    if not tokenizer.chat_template:
        raise UserError(f"+delia: the tokenizer of {model!r} has no chat template to write self-samples with")
    want = max(1, int(documents * cfg.ratio))
    cost = GenerationCost()
    if cfg.samples is not None:
        pool, source = load_samples(cfg.samples), cfg.samples
        random.Random(cfg.seed).shuffle(pool)
        chats = pool[:want]
        sources: dict[str, Any] = {}
    else:
        queries = load_queries(cfg.queries)
        random.Random(cfg.seed).shuffle(queries)
        asked = queries[: -(-want // cfg.answers_per_query)]
        chats, sources = self_sample(model, asked, cfg, cache, cost, loaded)
        chats, source = chats[:want], cfg.queries
        sources = {"prompt": cfg.prompt, "answers_per_query": cfg.answers_per_query, **sources}
    texts = [chat_text(tokenizer, c, cfg.loss) for c in chats]
    return SelfSamples(texts, {"source": source, "wanted": want, "mixed": len(texts), "loss": cfg.loss,
                               **sources, "cost": cost.to_dict()})


def chat_text(tokenizer: Any, chat: list[dict[str, str]], loss: str) -> TrainText:
    """A ``[..., assistant]`` chat in the tokenizer's template: plain text (``loss=all``), or a
    :class:`Completion` whose loss covers the assistant's turn only (``loss=response``)."""
    full = tokenizer.apply_chat_template(chat, tokenize=False)
    if loss == "all":
        return full
    prompt = tokenizer.apply_chat_template(chat[:-1], tokenize=False, add_generation_prompt=True)
    if not full.startswith(prompt):
        raise UserError("delia.loss=response: the chat template does not write the reply after the prompt it "
                        "opens with add_generation_prompt; use delia.loss=all")
    return Completion(prompt, full[len(prompt):])
