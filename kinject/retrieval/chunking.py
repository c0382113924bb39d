"""Cut documents into retrievable chunks that remember where they came from.

``by``:
- ``document``: one chunk per document;
- ``paragraph``: split at blank lines;
- ``sentence``: split after ``.``, ``!`` or ``?`` followed by whitespace and an upper-case letter,
  digit or quote, except after common abbreviations (Dr., Inc., e.g.) and single initials;
- ``tokens``: windows of ``size`` embedder tokens, each starting ``size - overlap`` tokens after
  the previous one (needs a fast tokenizer for character offsets).

Every chunk keeps its document id and the character offsets [start, end) of its text in the
document, so ``document.text[start:end] == chunk.text``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from kinject.data.schema import Document
from kinject.errors import UserError

CHUNKINGS = ("document", "paragraph", "sentence", "tokens")
_ABBREVIATIONS = {"dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr", "inc", "ltd", "co", "corp", "vs", "etc",
                  "e.g", "i.e", "no", "fig", "approx", "mt", "ft", "gen", "col", "lt", "sgt", "u.s"}
_SENTENCE_BREAK = re.compile(r"[.!?]+[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")


@dataclass(frozen=True)
class Chunk:
    """A passage: ``text`` is ``document.text[start:end]`` (character offsets)."""

    id: str
    doc_id: str
    text: str
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Chunk:
        return cls(str(row["id"]), str(row["doc_id"]), str(row["text"]), int(row["start"]), int(row["end"]))


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _split_spans(text: str, breaks: Iterator[re.Match[str]]) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in breaks:
        spans.append((start, m.start() if m.re is _PARAGRAPH_BREAK else m.end()))
        start = m.end()
    spans.append((start, len(text)))
    return spans


def _sentence_breaks(text: str) -> Iterator[re.Match[str]]:
    for m in _SENTENCE_BREAK.finditer(text):
        word = re.search(r"(\S+)$", text[: m.start()])
        before = word.group(1).lower().lstrip("(\"'") if word else ""
        if text[m.start()] == "." and (before in _ABBREVIATIONS or (len(before) == 1 and before.isalpha())):
            continue
        yield m


def _token_spans(text: str, tokenizer: Any, size: int, overlap: int) -> list[tuple[int, int]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [(s, e) for s, e in enc["offset_mapping"] if e > s]
    if not offsets:
        return [(0, len(text))]
    spans, step = [], size - overlap
    for i in range(0, len(offsets), step):
        window = offsets[i: i + size]
        spans.append((window[0][0], window[-1][1]))
        if i + size >= len(offsets):
            break
    return spans


def check_chunking(by: str, size: int, overlap: int) -> None:
    if by not in CHUNKINGS:  # a caller that built no RetrievalConfig
        raise UserError(f"retrieval.chunking: {by!r} is not one of {', '.join(CHUNKINGS)}")
    if by == "tokens" and not 0 <= overlap < size:
        raise UserError(f"retrieval.chunk_overlap must be >= 0 and < retrieval.chunk_tokens ({size}), got {overlap}")


def chunk_documents(documents: Sequence[Document], by: str = "sentence", size: int = 128, overlap: int = 32,
                    tokenizer: Any = None) -> list[Chunk]:
    """Chunks of every document, in document order; empty pieces are dropped.

    ``size``/``overlap`` (in tokens of ``tokenizer``) apply to ``by="tokens"`` only.
    """
    check_chunking(by, size, overlap)
    if by == "tokens" and (tokenizer is None or not getattr(tokenizer, "is_fast", False)):
        raise UserError("retrieval.chunking=tokens needs the embedder's fast tokenizer (for character offsets)")
    chunks = []
    for doc in documents:
        text = doc.text
        if by == "document":
            spans = [(0, len(text))]
        elif by == "paragraph":
            spans = _split_spans(text, _PARAGRAPH_BREAK.finditer(text))
        elif by == "sentence":
            spans = _split_spans(text, _sentence_breaks(text))
        else:
            spans = _token_spans(text, tokenizer, size, overlap)
        n = 0
        for start, end in spans:
            start, end = _strip_span(text, start, end)
            if end > start:
                chunks.append(Chunk(f"{doc.id}#{n}", doc.id, text[start:end], start, end))
                n += 1
    return chunks


def split_long_chunks(chunks: list[Chunk], documents: Sequence[Document], tokenizer: Any, window: int
                      ) -> tuple[list[Chunk], int]:
    """Chunks longer than ``window`` tokens (the embedder's input, which would cut the rest off)
    split into consecutive windows of at most ``window`` tokens (ids ``<chunk id>.<j>``); returns
    the chunks and how many were split. Needs a fast tokenizer (character offsets)."""
    if not chunks or tokenizer is None or not getattr(tokenizer, "is_fast", False):
        return chunks, 0
    texts = {d.id: d.text for d in documents}
    encoded = tokenizer([c.text for c in chunks], add_special_tokens=False, return_offsets_mapping=True)
    out, split = [], 0
    for chunk, offsets in zip(chunks, encoded["offset_mapping"], strict=True):
        if len(offsets) <= window:
            out.append(chunk)
            continue
        split += 1
        text = texts[chunk.doc_id]
        for j, (start, end) in enumerate(_token_spans(chunk.text, tokenizer, window, 0)):
            start, end = _strip_span(text, chunk.start + start, chunk.start + end)
            if end > start:
                out.append(Chunk(f"{chunk.id}.{j}", chunk.doc_id, text[start:end], start, end))
    return out, split
