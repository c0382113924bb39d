"""Chat generators behind one interface: a local instruct model, or an OpenAI-compatible endpoint.

A request is a list of chat messages (``{"role", "content"}``); :meth:`Generator.sample` returns
``n`` sampled replies per request, with the tokens it read and wrote. ``fingerprint`` names the
generator and its sampling settings, so a cache can tell whose output it holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from kinject.checks import Check, at_least, check_section, non_negative, one_of, open_fraction, positive, seed_range
from kinject.data.jsonl import read_text
from kinject.errors import UserError
from kinject.models import DEFAULT_MODEL

Messages = list[dict[str, str]]
BACKENDS = ("local", "endpoint")


@dataclass
class GenerationConfig:
    """Which LLM writes paraphrases (and other generated data), and how it samples.

    backend: ``local`` (``model``: the embedded instruct model, a directory or a hub id) or
    ``endpoint`` (an OpenAI-compatible ``base_url`` such as ``http://127.0.0.1:8000/v1``, serving
    ``model``; the key, if any, from the environment variable ``api_key_env``).
    temperature/top_p: sampling; max_new_tokens: per reply; batch_size: requests per forward pass
    (local) and per cache write; seed: the sampling seed (the same requests and settings give the
    same replies); timeout: seconds per HTTP request; cache: reuse replies stored under
    ``$KINJECT_CACHE/generations``; progress: a progress bar over batches on stderr.
    """

    backend: str = "local"
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 96
    batch_size: int = 8
    seed: int = 0
    timeout: float = 120.0
    cache: bool = True
    progress: bool = True

    CHECKS: ClassVar[dict[str, Check]] = {
        "backend": one_of(*BACKENDS), "temperature": non_negative, "top_p": open_fraction,
        "max_new_tokens": at_least(1), "batch_size": at_least(1), "seed": seed_range, "timeout": positive}


def check_generation_config(cfg: GenerationConfig) -> None:
    check_section(cfg, "generate")
    if cfg.backend == "endpoint" and not cfg.base_url:
        raise UserError("generate.base_url: the endpoint backend needs a base URL (e.g. http://127.0.0.1:8000/v1)")


@dataclass
class Sampled:
    """The replies to one request and what they cost (tokens as the generator counts them)."""

    replies: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Generator(Protocol):
    """What a generator offers: a fingerprint of itself and its settings, and sampling."""

    cfg: GenerationConfig
    fingerprint: str

    def sample(self, requests: list[Messages], n: int) -> list[Sampled]:
        """``n`` replies to each request, in order."""
        ...


def _sampling(cfg: GenerationConfig) -> dict[str, Any]:
    return {k: getattr(cfg, k) for k in ("temperature", "top_p", "max_new_tokens", "seed")}


def _model_fingerprint(path: str) -> str:
    """sha256 of a model directory's config and weight files' names and sizes (a hub id: the id)."""
    root = Path(path)
    if not root.is_dir():
        return path
    files = sorted(p for p in root.iterdir() if p.suffix in (".json", ".safetensors", ".bin"))
    blob = json.dumps([(p.name, p.stat().st_size, read_text(p) if p.name == "config.json" else "") for p in files])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class LocalGenerator:
    """A transformers causal LM with a chat template, sampled in batches (left padding).

    ``loaded``: the model already in memory (a :class:`~kinject.models.LoadedModel` of
    ``cfg.model``), else it is loaded on the first request (``model_dtype`` auto). The cache key
    holds the weights' dtype: replies sampled in bf16 are not served to an fp32 run.
    """

    cfg: GenerationConfig
    loaded: Any = field(default=None, repr=False)
    fingerprint: str = ""

    def __post_init__(self) -> None:
        from kinject.hardware import dtype_name, resolve_dtype
        from kinject.models import resolve_model_path

        path = resolve_model_path(self.cfg.model)
        dtype = resolve_dtype("auto") if self.loaded is None else next(self.loaded.model.parameters()).dtype
        self.fingerprint = json.dumps({"backend": "local", "model": self.cfg.model, "weights": _model_fingerprint(path),
                                       "dtype": dtype_name(dtype), **_sampling(self.cfg)}, sort_keys=True)

    def sample(self, requests: list[Messages], n: int) -> list[Sampled]:
        import torch

        from kinject.models import load_model

        if self.loaded is None:
            self.loaded = load_model(self.cfg.model)
        if not self.loaded.tokenizer.chat_template:
            raise UserError(f"generate.model {self.cfg.model!r}: the tokenizer has no chat template "
                            "(give an instruct model)")
        model, tok = self.loaded.model, self.loaded.tokenizer
        out: list[Sampled] = []
        for start in range(0, len(requests), self.cfg.batch_size):
            batch = requests[start:start + self.cfg.batch_size]
            prompts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in batch]
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            torch.manual_seed(_batch_seed(self.cfg.seed, batch))
            with torch.no_grad():
                ids = model.generate(**enc, do_sample=self.cfg.temperature > 0,
                                     temperature=self.cfg.temperature or None, top_p=self.cfg.top_p,
                                     max_new_tokens=self.cfg.max_new_tokens, num_return_sequences=n,
                                     pad_token_id=tok.pad_token_id)
            new = ids[:, enc["input_ids"].shape[1]:]
            for i in range(len(batch)):
                rows = new[i * n:(i + 1) * n]
                written = int((rows != tok.pad_token_id).sum())
                out.append(Sampled([tok.decode(r, skip_special_tokens=True) for r in rows],
                                   int(enc["attention_mask"][i].sum()), written))
        return out


def _batch_seed(seed: int, batch: list[Messages]) -> int:
    """A batch's torch seed: from the run's seed and the batch's content, not its position."""
    digest = hashlib.sha256(json.dumps([seed, batch], sort_keys=True).encode()).hexdigest()
    return int(digest[:8], 16)


@dataclass
class EndpointGenerator:
    """An OpenAI-compatible ``/chat/completions`` endpoint, one HTTP request per chat request."""

    cfg: GenerationConfig
    fingerprint: str = ""

    def __post_init__(self) -> None:
        self.fingerprint = json.dumps({"backend": "endpoint", "base_url": self.cfg.base_url, "model": self.cfg.model,
                                       **_sampling(self.cfg)}, sort_keys=True)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        url = self.cfg.base_url.rstrip("/") + "/chat/completions"
        headers = {"Content-Type": "application/json"}
        if key := os.environ.get(self.cfg.api_key_env):
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.cfg.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise UserError(f"generate.base_url {url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise UserError(f"generate.base_url {url}: unreachable ({getattr(exc, 'reason', exc)})") from None
        except json.JSONDecodeError:
            raise UserError(f"generate.base_url {url}: the reply is not JSON") from None

    def sample(self, requests: list[Messages], n: int) -> list[Sampled]:
        out = []
        for messages in requests:
            body = {"model": self.cfg.model, "messages": messages, "n": n, "temperature": self.cfg.temperature,
                    "top_p": self.cfg.top_p, "max_tokens": self.cfg.max_new_tokens, "seed": self.cfg.seed}
            reply = self._post(body)
            try:
                replies = [c["message"]["content"] or "" for c in reply["choices"]]
            except (KeyError, TypeError):
                raise UserError(f"generate.base_url {self.cfg.base_url}: a reply without choices[].message") from None
            usage = reply.get("usage") or {}
            out.append(Sampled(replies[:n], int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))))
        return out


def make_generator(cfg: GenerationConfig) -> Generator:
    check_generation_config(cfg)
    return LocalGenerator(cfg) if cfg.backend == "local" else EndpointGenerator(cfg)
