"""``distill``: context distillation. The model reads each document and answers prompts about it;
the same model, without the document, is trained on those answers' token distributions.

The prompts come from ``distill.queries`` (:mod:`kinject.distill.prompts`); the teacher is the
model as loaded, before any training, with the document (or its retrieved passages) in its
context (:mod:`kinject.distill.teacher`); the student is trained with the ``train`` section (full,
LoRA or a subset) on the :class:`~kinject.training.trainer.Distilled` rows, with the documents'
own text mixed in when ``distill.documents`` is set, for ``distill.epochs`` passes
(:mod:`kinject.distill.loss`). Composes like any training method: ``distill+rag``,
``distill+qa``, ``distill+delia``.
"""

from __future__ import annotations

from kinject.artifacts import directory_fingerprint
from kinject.checks import check_section
from kinject.config import RunConfig
from kinject.data.schema import Corpus
from kinject.distill.prompts import DistillPrompt, build_prompts, templated_prompts
from kinject.distill.teacher import TeacherPrompt, TeacherTargets, teacher_targets
from kinject.errors import UserError
from kinject.evaluation.metrics import contains_run, tokens
from kinject.evaluation.runner import qa_header, qa_prompt
from kinject.methods.finetune import document_texts, finetune
from kinject.methods.registry import Injected, InjectRequest, register_method
from kinject.models import cache_dir
from kinject.retrieval.retriever import check_retrieval_config, format_context, open_retriever, placed_texts
from kinject.training.trainer import Distilled


def check_distill(corpus: Corpus, cfg: RunConfig) -> None:
    """The ``distill`` settings; templated prompts need the built-in world's facts."""
    check_section(cfg.distill, "distill")
    if cfg.distill.queries == "templated" and not templated_prompts(corpus):
        raise UserError(f"distill.queries=templated: corpus {corpus.name!r} has no built-in facts to template "
                        "questions from (templated prompts are the built-in benchmark's); use generated or "
                        "continuation")
    if cfg.distill.context == "retrieved":
        check_retrieval_config(cfg.retrieval)
    if cfg.distill.format == "chat" and cfg.distill.queries == "continuation":
        raise UserError("distill.format=chat asks questions in the model's chat template, and continuation prompts "
                        "are bare text: use distill.format=qa, or another distill.queries")
    if cfg.train.packing:
        raise UserError("train.packing: distill's rows carry the teacher's distributions per token of a padded "
                        "batch; set train.packing=false")


def _contexts(req: InjectRequest, prompts: list[DistillPrompt]) -> tuple[list[list[str]], float]:
    """What the teacher reads before each prompt (texts, in the order placed) and the seconds spent
    indexing (``distill.context=retrieved``: the prompt's passages, best last, as ``rag`` places them)."""
    cfg = req.cfg
    if cfg.distill.context == "document":
        texts = {d.id: d.text for d in req.corpus.documents}
        return [[texts[p.doc_id]] for p in prompts], 0.0
    retriever, seconds = open_retriever(req.corpus.documents, cfg.retrieval, req.workdir / "index")
    hits = retriever.search([p.text for p in prompts], cfg.retrieval.k, cfg.retrieval.batch_size)
    return [placed_texts(found) for found in hits], seconds


def _teacher_prompts(req: InjectRequest, prompts: list[DistillPrompt], contexts: list[list[str]]
                     ) -> list[TeacherPrompt]:
    """Each prompt as the teacher reads it (its ``contexts`` first) and as the student sees it
    (``distill.format``)."""
    if req.cfg.distill.format == "chat":
        tokenizer = req.source.tokenizer
        if not tokenizer.chat_template:
            raise UserError(f"distill.format=chat: model {req.cfg.model!r} has no chat template; use distill.format=qa")

        def chat(text: str) -> str:
            return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                 add_generation_prompt=True)

        return [TeacherPrompt(chat("\n\n".join(c) + "\n\n---\n\n" + p.text), chat(p.text), templated=True)
                for p, c in zip(prompts, contexts)]
    header = qa_header(req.corpus.instruction, req.corpus.fewshot)
    out = []
    for p, context in zip(prompts, contexts):  # as the evaluation places a context: after the header
        head, asked = (header, qa_prompt(p.text)) if p.kind == "question" else ("", p.text)
        out.append(TeacherPrompt(head + format_context(context) + "\n" + asked, head + asked))
    return out


def grounding(answer: str, context: list[str], question: str) -> str:
    """Where an answer's words (normalised as the metrics normalise them) occur, in order:
    ``grounded`` (in what the teacher read, not in the question), ``in the question`` (it repeats
    the question, its subject say: no answer, as ``kinject questions`` checks) or ``elsewhere``
    (not in what the teacher read: a few-shot example's answer, a misspelt name, a guess)."""
    words = tokens(answer)
    if not contains_run(tokens(" ".join(context)), words):
        return "elsewhere"
    return "in the question" if contains_run(tokens(question), words) else "grounded"


def grounded_rows(targets: TeacherTargets, prompts: list[DistillPrompt], contexts: list[list[str]],
                  tokenizer) -> list[Distilled]:
    """``distill.filter=grounded``: the rows of continuation prompts, and of questions whose answer
    is :func:`grounding`'s ``grounded``."""
    return [row for row, i in zip(targets.rows, targets.asked)
            if prompts[i].kind != "question" or grounding(tokenizer.decode(row.answer_ids, skip_special_tokens=True),
                                                          contexts[i], prompts[i].text) == "grounded"]


@register_method("distill", "context distillation: trained on the answers the model gives with the document in "
                 "its context, to prompts about it (distill.queries), without the document", check=check_distill,
                 reads_model=True)
def distill(req: InjectRequest) -> Injected:
    cfg = req.cfg.distill
    prompts, info = build_prompts(req.corpus, cfg, req.cfg.generate)
    if not prompts:
        raise UserError(f"distill.queries={cfg.queries}: no prompt for any document of corpus {req.corpus.name!r}")
    contexts, index_seconds = _contexts(req, prompts)
    asked = _teacher_prompts(req, prompts, contexts)
    targets = teacher_targets(req.source.model, req.source.tokenizer, asked, cfg,
                              directory_fingerprint(req.source.path),
                              cache_dir() / "distill" if cfg.cache else None, req.cfg.train.progress,
                              stop_at_newline=cfg.format == "qa")
    if not targets.rows:
        raise UserError("distill: the teacher answered no prompt (every answer empty)")
    rows = targets.rows
    if cfg.filter == "grounded":
        rows = grounded_rows(targets, prompts, contexts, req.source.tokenizer)
        info["ungrounded"] = len(targets.rows) - len(rows)
        if not rows:
            raise UserError("distill.filter=grounded: no answer of the teacher's is found in what it read; "
                            "use distill.filter=none")
    texts = [*document_texts(req.corpus), *rows] if cfg.documents else list(rows)
    injected = finetune(req, texts, epochs=cfg.epochs,
                        distill={**info, "rows": len(rows), "documents": cfg.documents, "loss": cfg.loss,
                                 "answer": cfg.answer, "context": cfg.context, "format": cfg.format,
                                 "filter": cfg.filter, "teacher": targets.cost.to_dict()})
    injected.index_seconds = index_seconds
    injected.teacher_tokens += targets.cost.prompt_tokens + targets.cost.completion_tokens
    injected.teacher_seconds += targets.cost.seconds
    return injected
