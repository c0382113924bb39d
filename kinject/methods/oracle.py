"""The ``+oracle`` modifier and ``oracle``: each probe's own source document placed before it.

No retrieval: a probe about the corpus (one with a ``doc_id``) is asked with the whole document it
was written from before it, in the form ``rag`` uses ("Context: ..." and a newline). It is the
ceiling of retrieval (a retriever that always finds the right document, all of it) and of a
context-distillation teacher (the model reading the document). A probe with no source document
(the retention set) is asked as it is, so ``oracle``'s retention is the base model's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from kinject.config import RunConfig
from kinject.data.schema import Corpus, Probe
from kinject.errors import UserError
from kinject.evaluation.runner import Context
from kinject.methods.registry import Injected, InjectRequest, register_composite, register_modifier
from kinject.retrieval.retriever import format_context


class GoldDocumentContext:
    """The evaluation's context function: each probe's source document, whole."""

    def __init__(self, corpus: Corpus) -> None:
        self.documents = {d.id: d.text for d in corpus.documents}

    def __call__(self, probes: Sequence[Probe]) -> list[Context]:
        out = []
        for probe in probes:
            text = self.documents.get(probe.doc_id) if probe.doc_id else None
            out.append(Context(format_context([text]), {"gold_document": probe.doc_id}) if text else Context(""))
        return out


def check_oracle(corpus: Corpus, cfg: RunConfig) -> None:
    """Some probe must name a document of the corpus (``doc_id``)."""
    ids = {d.id for d in corpus.documents}
    if not any(p.doc_id in ids for p in corpus.probes):
        raise UserError(f"+oracle: no probe of corpus {corpus.name!r} names its source document (doc_id), "
                        "so there is no gold document to place before it")


@register_modifier("oracle", "with each probe's own source document before it (no retrieval: the ceiling of "
                   "rag and of a context-distillation teacher)", check=check_oracle)
def with_gold_document(injected: Injected, req: InjectRequest) -> Injected:
    return dataclasses.replace(injected, context=GoldDocumentContext(req.seen),
                               info={**injected.info, "context": "gold source document"})


register_composite("oracle", "base", "oracle", "the base model with each probe's own source document before it "
                   "(no retrieval)")
