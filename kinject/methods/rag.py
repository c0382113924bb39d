"""Retrieval: the ``+rag`` modifier (any method's model plus retrieved passages) and ``rag``.

The corpus's documents are chunked, embedded and indexed with FAISS (or ``retrieval.index``, a
prebuilt directory, is opened: not in a stream, where it would hold later updates); the index is
saved under the method's work directory. In a stream, each update's documents are appended to the
index the previous update saved (every update's so far are indexed; see
:func:`kinject.retrieval.retriever.extended_index` for when it is built afresh instead). At
evaluation time the top ``retrieval.k`` chunks for each question are placed before it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kinject.config import RunConfig
from kinject.data.schema import Corpus
from kinject.errors import UserError
from kinject.methods.registry import Injected, InjectRequest, register_composite, register_modifier
from kinject.retrieval.index import PassageIndex
from kinject.retrieval.retriever import RetrievalContext, check_retrieval_config, describe, open_retriever


def check_rag(corpus: Corpus, cfg: RunConfig) -> None:
    """The retrieval settings; a prebuilt ``retrieval.index`` must open whole (checksums, FAISS)
    and hold passages of this corpus's documents (an index of another corpus is refused)."""
    check_retrieval_config(cfg.retrieval)
    if cfg.retrieval.index is not None:
        path = Path(cfg.retrieval.index).expanduser()
        chunks = PassageIndex.load(path).chunks
        texts = {d.id: d.text for d in corpus.documents}
        if not any(c.doc_id in texts and c.text in texts[c.doc_id] for c in chunks):
            raise UserError(f"retrieval.index {path}: none of its {len(chunks)} passages is from a document of "
                            f"corpus {corpus.name!r} (built from another corpus or world seed); build one with "
                            "kinject index build, or leave retrieval.index unset")


@register_modifier("rag", "with the top retrieval.k retrieved passages before each question", check=check_rag)
def with_retrieval(injected: Injected, req: InjectRequest) -> Injected:
    cfg = req.cfg.retrieval
    earlier = req.earlier_workdir / "index" if req.earlier_workdir is not None else None
    retriever, seconds = open_retriever(req.seen.documents, cfg, req.workdir / "index", earlier)
    context = RetrievalContext(retriever, req.seen, cfg.k, cfg.batch_size)
    return dataclasses.replace(injected, context=context, index_seconds=seconds,
                               info={**injected.info, "retrieval": describe(cfg, retriever)})


register_composite("rag", "base", "rag", "the base model with the top retrieval.k retrieved passages before "
                   "each question")
