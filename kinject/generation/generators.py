"""Chat generators behind one interface: a local instruct model, or an OpenAI-compatible endpoint.

A request is a list of chat messages (``{"role", "content"}``); :meth:`Generator.sample` returns
``n`` sampled replies per request, with the tokens it read and wrote. ``fingerprint`` names the
generator and its sampling settings, so a cache can tell whose output it holds.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import sys
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from kinject.artifacts import model_fingerprint
from kinject.checks import Check, at_least, check_section, non_negative, one_of, open_fraction, positive, seed_range
from kinject.errors import UserError
from kinject.models import DEFAULT_MODEL

Messages = list[dict[str, str]]
BACKENDS = ("local", "endpoint")


def api_key_name(value: str) -> str | None:
    """An environment variable name that ends in ``_API_KEY`` (OPENAI_API_KEY, VLLM_API_KEY)."""
    return None if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*_API_KEY", value) else "does not end in _API_KEY"


@dataclass
class GenerationConfig:
    """Which LLM writes paraphrases (and other generated data), and how it samples.

    backend: ``local`` (``model``: the embedded instruct model, a directory or a hub id) or
    ``endpoint`` (an OpenAI-compatible ``base_url`` such as ``http://127.0.0.1:8000/v1``, serving
    ``model``; the key, if any, from the environment variable ``api_key_env``).
    temperature/top_p: sampling; max_new_tokens: per reply; batch_size: requests per forward pass
    (local) and per cache write; seed: the sampling seed (the same requests and settings give the
    same replies); timeout: seconds per HTTP request; retries: how often a request that timed out,
    lost its connection or got HTTP 408/409/429/5xx is sent again (exponential backoff, honouring
    Retry-After); concurrency: endpoint requests in flight at once; cache: reuse replies stored
    under ``$KINJECT_CACHE/generations``; progress: a progress bar over batches on stderr.

    ``api_key_env`` must name a variable ending in ``_API_KEY``: a shared config file cannot have
    some other secret sent as a bearer token to the host it names.
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
    retries: int = 5
    concurrency: int = 4
    cache: bool = True
    progress: bool = True

    CHECKS: ClassVar[dict[str, Check]] = {
        "backend": one_of(*BACKENDS), "temperature": non_negative, "top_p": open_fraction,
        "max_new_tokens": at_least(1), "batch_size": at_least(1), "seed": seed_range, "timeout": positive,
        "retries": at_least(0), "concurrency": at_least(1), "api_key_env": api_key_name}


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
        self.fingerprint = json.dumps({"backend": "local", "model": self.cfg.model, "weights": model_fingerprint(path),
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
            torch.manual_seed(content_seed(self.cfg.seed, batch))
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


def content_seed(seed: int, batch: Any) -> int:
    """A batch's torch seed, from the run's ``seed`` and the batch's content (any JSON value), not
    its position: the same prompts sampled together get the same replies, whatever was cached."""
    digest = hashlib.sha256(json.dumps([seed, batch], sort_keys=True).encode()).hexdigest()
    return int(digest[:8], 16)


@dataclass
class EndpointGenerator:
    """An OpenAI-compatible ``/chat/completions`` endpoint through the ``openai`` client: one
    request per chat request, ``cfg.concurrency`` in flight, each retried ``cfg.retries`` times
    with backoff. The key (``cfg.api_key_env``) goes to ``base_url``'s host only (httpx drops the
    Authorization header on a redirect to another host); a note on stderr names that host."""

    cfg: GenerationConfig
    fingerprint: str = ""
    client: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        import openai

        self.fingerprint = json.dumps({"backend": "endpoint", "base_url": self.cfg.base_url, "model": self.cfg.model,
                                       **_sampling(self.cfg)}, sort_keys=True)
        key = os.environ.get(self.cfg.api_key_env)
        if key:
            host = urllib.parse.urlsplit(self.cfg.base_url).netloc
            print(f"kinject: note: sending ${self.cfg.api_key_env} to {host}", file=sys.stderr)
        self.client = openai.OpenAI(base_url=self.cfg.base_url, api_key=key or "unused", timeout=self.cfg.timeout,
                                    max_retries=self.cfg.retries)

    def _one(self, messages: Messages, n: int) -> Sampled:
        import openai

        url = self.cfg.base_url
        try:
            reply = self.client.chat.completions.create(
                model=self.cfg.model, messages=messages, n=n, temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                max_tokens=self.cfg.max_new_tokens, seed=self.cfg.seed)
        except openai.APIStatusError as exc:
            raise UserError(f"generate.base_url {url}: HTTP {exc.status_code} after {self.cfg.retries} retries "
                            f"({str(exc).splitlines()[0][:200]})") from None
        except openai.APIConnectionError as exc:  # timeouts included
            raise UserError(f"generate.base_url {url}: unreachable after {self.cfg.retries} retries ({exc})") from None
        except openai.APIResponseValidationError:
            raise UserError(f"generate.base_url {url}: the reply is not a chat completion") from None
        choices = getattr(reply, "choices", None)
        if not isinstance(choices, list) or not all(getattr(c, "message", None) is not None for c in choices):
            raise UserError(f"generate.base_url {url}: a reply without choices[].message")
        usage = reply.usage
        return Sampled([c.message.content or "" for c in choices][:n], int(getattr(usage, "prompt_tokens", 0) or 0),
                       int(getattr(usage, "completion_tokens", 0) or 0))

    def sample(self, requests: list[Messages], n: int) -> list[Sampled]:
        with concurrent.futures.ThreadPoolExecutor(self.cfg.concurrency) as pool:
            return list(pool.map(lambda m: self._one(m, n), requests))


def make_generator(cfg: GenerationConfig) -> Generator:
    check_generation_config(cfg)
    return LocalGenerator(cfg) if cfg.backend == "local" else EndpointGenerator(cfg)
