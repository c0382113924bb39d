"""Retrieval: the ``+rag`` modifier (any method's model plus retrieved passages) and ``rag``.

The corpus's documents are chunked, embedded and indexed with FAISS (or ``retrieval.index``, a
prebuilt directory, is opened); the index is saved under the method's work directory. At
evaluation time the top ``retrieval.k`` chunks for each question are placed before it.
"""

from __future__ import annotations

import dataclasses

from kinject.config import RunConfig
from kinject.data.schema import Corpus
from kinject.methods.registry import Injected, InjectRequest, register_composite, register_modifier
from kinject.retrieval.retriever import RetrievalContext, check_retrieval_config, describe, open_retriever


def check_rag(corpus: Corpus, cfg: RunConfig) -> None:
    check_retrieval_config(cfg.retrieval)


@register_modifier("rag", "with the top retrieval.k retrieved passages before each question", check=check_rag)
def with_retrieval(injected: Injected, req: InjectRequest) -> Injected:
    cfg = req.cfg.retrieval
    retriever, seconds = open_retriever(req.corpus.documents, cfg, req.workdir / "index")
    context = RetrievalContext(retriever, req.corpus, cfg.k, cfg.batch_size)
    return dataclasses.replace(injected, context=context, index_seconds=seconds,
                               info={**injected.info, "retrieval": describe(cfg, retriever)})


register_composite("rag", "base", "rag", "the base model with the top retrieval.k retrieved passages before "
                   "each question")
