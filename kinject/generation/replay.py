"""General text mixed into training to keep what the model knew (``+replay``, ``+anchor``).

``replay.source`` says where the text comes from:

- ``self`` (generative replay, offline for any model): the model as loaded, before any training,
  continues openings of everyday text, sampled at ``replay.temperature`` (default 1: the model's
  own distribution; ``replay.answer=greedy``: its most likely tokens) for up to
  ``replay.max_tokens`` tokens or to EOS. ``replay.prompts``: ``builtin`` is kinject's own file of
  121 openings (stories, letters, how-tos, dialogues, opinions, notes, lists, code, verse), written
  for kinject; none is a general-knowledge question and none opens on the encyclopedic topics of
  the text that ``general_kl`` reads. ``questions`` is kinject's own file of 120 everyday
  questions (sports, food, music, household, jobs, transport, holidays, computing, games,
  clothing, crafts, school): the frozen model answers each after a few-shot header of its own
  (:data:`QUESTION_FEWSHOT`, as the evaluation's header precedes its questions) up to the end of
  its line, and the model in training learns that answer after the question alone
  ("Question: q\nAnswer:", as ``+qa`` trains a pair). That is self-synthesised rehearsal on
  topics none of the evaluation's general items is filed under (capitals, language, landmarks,
  science, history and the rest), with no question of theirs. Or a JSONL of ``{"prompt"}``.
  When a run needs more texts than there are openings, each opening is continued again with the
  next seed (the same text again when greedy). Continuations are computed with distill's teacher
  machinery (:func:`~kinject.distill.teacher.teacher_targets`) and cached by content like its
  targets.
- a path: a JSONL of ``{"text"}``, general text the user gives (a slice of a web corpus, the
  team's own documents that must not be forgotten); the first ``replay.max_tokens`` tokens of
  each text after its first word are used, and a corpus smaller than a run needs is used again
  from its first text.

A run mixes ``max(1, round(replay.ratio x T))`` such texts into the training of its method, T =
the texts the method trains in its main phase (documents, paraphrases, distilled prompts,
demonstrations mixed in, self-samples); which ones is fixed by ``replay.seed``, the same for
every run seed. With ``replay.phases=all`` a ``+qa`` phase of demonstrations alone gets its own
``replay.ratio`` share too (drawn as the main phase's: the shorter draw is the longer one's first
texts, paid once). ``+replay`` trains them with the next-token loss on the continuation (or text)
tokens; ``+anchor`` instead trains, at the same tokens, the KL from the frozen model's next-token
distributions, each position's loss times ``anchor.weight``: a penalty that keeps the model's
distributions on general text where they were. With ``anchor.kl=tail`` (the default) the KL is
exact over the frozen model's top ``anchor.top_k`` tokens and one outcome for all the rest, so the
frozen model is its minimum; ``anchor.kl=topk`` renormalises the top k (``distill``'s
``forward_kl``), whose target pulls mass off the tail even from the frozen model itself (every
anchor row before 2026-12-07 ran so). With ``anchor.form=pooled`` those positions join the
batch's one mean; with ``penalty`` they form a mean of their own, added to the method's. What
the frozen model read and wrote for them counts as teacher cost (``+replay`` on a given text asks
it nothing: the text's own tokens are its targets).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from kinject.checks import Check, at_least, check_section, non_negative, one_of, positive, seed_range
from kinject.data.jsonl import load_records
from kinject.data.schema import QA_INSTRUCTION
from kinject.distill.config import TEACHER_ANSWERS, DistillConfig
from kinject.distill.teacher import TeacherPrompt, teacher_targets
from kinject.errors import UserError
from kinject.evaluation.runner import qa_header, qa_prompt
from kinject.generation.cache import GenerationCost
from kinject.training.trainer import Distilled, TrainText

BUILTIN_PROMPTS = Path(__file__).with_name("replay_prompts.jsonl")
BUILTIN_QUESTIONS = Path(__file__).with_name("replay_questions.jsonl")
BUILTIN_PROMPT_SETS = ("builtin", "questions")
# The frozen model's header for ``replay.prompts=questions``: written for kinject, on the questions'
# own topics, none of them an item or topic of the evaluation.
QUESTION_FEWSHOT: list[tuple[str, str]] = [
    ("What do you use to eat soup?", "a spoon"),
    ("What game is played with a bat and a ball on a diamond?", "baseball"),
    ("Who drives a bus?", "a bus driver"),
]
PHASES = ("main", "all")
ANCHOR_FORMS = ("pooled", "penalty")
ANCHOR_KLS = {"tail": "forward_kl_tail", "topk": "forward_kl"}  # anchor.kl -> the loss form


@dataclass
class ReplayConfig:
    """``+replay`` / ``+anchor``'s general text: ``source`` (``self`` or a JSONL of ``{"text"}``),
    ``ratio`` (replay texts per training text), ``prompts`` (openings for ``self``), ``answer``
    (``sample`` at ``temperature``, or ``greedy``), ``max_tokens`` (per continuation; also cuts a
    given text);
    ``phases``: ``main`` mixes them into the method's main training phase only, ``all`` also into
    ``+qa``'s phase of demonstrations alone (``qa.mode`` before or after), at the same ratio."""

    source: str = "self"
    ratio: float = 0.1
    prompts: str = "builtin"
    answer: str = "sample"
    temperature: float = 1.0
    max_tokens: int = 64
    batch_size: int = 8
    seed: int = 0
    cache: bool = True
    phases: str = "main"

    CHECKS: ClassVar[dict[str, Check]] = {
        "ratio": positive, "temperature": positive, "max_tokens": at_least(1), "batch_size": at_least(1),
        "seed": seed_range, "phases": one_of(*PHASES), "answer": one_of(*TEACHER_ANSWERS)}


@dataclass
class AnchorConfig:
    """``+anchor``: ``weight`` on the KL toward the frozen model at each replay token, over its
    ``top_k`` most likely tokens; ``form``: ``pooled`` (the replay positions count in the batch's
    one mean with the method's own) or ``penalty`` (the method's mean plus ``weight`` times the
    replay positions' own mean); ``kl``: ``tail`` (the frozen model's mass outside its top k kept as
    one outcome: the frozen model is the minimum) or ``topk`` (the top k renormalised)."""

    weight: float = 1.0
    top_k: int = 20
    form: str = "pooled"
    kl: str = "tail"

    CHECKS: ClassVar[dict[str, Check]] = {"weight": non_negative, "top_k": at_least(1),
                                          "form": one_of(*ANCHOR_FORMS), "kl": one_of(*ANCHOR_KLS)}


def check_replay_config(cfg: ReplayConfig) -> None:
    """The settings, and the file ``source`` or ``prompts`` names read whole (a bad line is named)."""
    check_section(cfg, "replay")
    for key, value in (("replay.source", cfg.source), ("replay.prompts", cfg.prompts)):
        if value not in ("self", *BUILTIN_PROMPT_SETS) and not Path(value).is_file():
            raise UserError(f"{key}: {value}: no such file")
    if cfg.source == "self":
        load_openings(cfg.prompts)
    else:
        load_general_texts(cfg.source)


def _non_empty(field_name: str) -> Any:
    def read(row: dict[str, Any]) -> str:
        value = row[field_name]
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"field {field_name!r} must be a non-empty string")
        return value
    return read


def load_openings(spec: str) -> list[str]:
    """The openings of ``builtin``, the questions of ``questions`` as the evaluation asks them, or
    a JSONL of ``{"prompt"}``."""
    if spec == "questions":
        return [qa_prompt(q) for q in load_records(BUILTIN_QUESTIONS, _non_empty("question"))]
    path = BUILTIN_PROMPTS if spec == "builtin" else Path(spec)
    openings = load_records(path, _non_empty("prompt"))
    if not openings:
        raise UserError(f"{path}: no prompts")
    return openings


def load_general_texts(path: str) -> list[str]:
    """A JSONL of ``{"text"}``: the general text a user gives ``replay.source``."""
    texts = load_records(path, _non_empty("text"))
    if not texts:
        raise UserError(f"{path}: no texts")
    return texts


def split_text(text: str) -> TeacherPrompt:
    """A given text as a prompt (its first word) and the rest as the answer to score."""
    head, space, rest = text.strip().partition(" ")
    return TeacherPrompt(head, head, space + rest if rest else "")


def given_text_row(tokenizer, prompt: TeacherPrompt, settings: DistillConfig) -> Distilled:
    """``+replay``'s row for a given text: the next-token loss on the first ``max_new_tokens``
    tokens of its answer after its prompt, the same ids a scored row trains, with no teacher."""
    answer = tokenizer(prompt.answer, add_special_tokens=False).input_ids[: settings.max_new_tokens]
    return Distilled(tuple(tokenizer(prompt.student).input_ids), tuple(answer), ((-1,),) * len(answer),
                     ((0.0,),) * len(answer), "ce")


@dataclass
class Replay:
    """What ``+replay`` (``loss="ce"``) or ``+anchor`` (``loss`` the form ``anchor.kl`` names,
    ``weight``, and ``average="penalty"`` for ``anchor.form=penalty``) mixes in."""

    cfg: ReplayConfig
    loss: str = "ce"
    weight: float = 1.0
    top_k: int = 20
    average: str = "token"

    def texts(self, loaded: Any, model_key: str, wanted: int, cache: Path | None,
              progress: bool = True) -> tuple[list[TrainText], dict[str, Any]]:
        """``wanted`` texts to mix in, built with ``loaded`` (the frozen model, before training),
        and their info: source, counts, loss, and the frozen model's cost."""
        cfg = self.cfg
        settings = DistillConfig(answer=cfg.answer, answer_temperature=cfg.temperature, max_new_tokens=cfg.max_tokens,
                                 top_k=self.top_k, loss=self.loss, batch_size=cfg.batch_size, average=self.average)
        cost, rows = GenerationCost(), []
        if cfg.source == "self":
            openings = load_openings(cfg.prompts)
            random.Random(cfg.seed).shuffle(openings)
            questions = cfg.prompts == "questions"
            header = qa_header(QA_INSTRUCTION, QUESTION_FEWSHOT) if questions else ""
            for round_ in range(-(-wanted // len(openings))):
                chosen = openings[: min(len(openings), wanted - round_ * len(openings))]
                got = teacher_targets(loaded.model, loaded.tokenizer, [TeacherPrompt(header + o, o) for o in chosen],
                                      dataclasses.replace(settings, seed=cfg.seed + round_), model_key, cache,
                                      progress,
                                      stop_at_newline=questions, weight=self.weight)
                rows += got.rows
                cost.add(got.cost)
        else:
            texts = load_general_texts(cfg.source)
            random.Random(cfg.seed).shuffle(texts)
            cycled = [texts[i % len(texts)] for i in range(wanted)]  # a small corpus is mixed in again
            prompts = [p for p in map(split_text, cycled) if p.answer]
            if self.loss == "ce":  # the text's own tokens are the targets: nothing to ask the frozen model
                rows = [given_text_row(loaded.tokenizer, p, settings) for p in prompts]
            else:
                got = teacher_targets(loaded.model, loaded.tokenizer, prompts, settings, model_key, cache, progress,
                                      weight=self.weight)
                rows, cost = got.rows, got.cost
        info = {"source": cfg.source, "wanted": wanted, "mixed": len(rows), "loss": self.loss,
                "weight": self.weight, "cost": cost.to_dict()}
        return list(rows), info

