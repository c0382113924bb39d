"""Causal-LM fine-tuning on a list of texts, with the transformers Trainer.

Built on ``transformers.Trainer`` so that ``accelerate launch`` / torchrun run it on several
devices unchanged. The trainable part is chosen by :class:`TrainConfig`: the full model, LoRA
adapters (peft), or a subset of decoder layers and modules (e.g. LaPael's MLPs of layers 5..end).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from kinject.checks import (
    Check,
    at_least,
    check_section,
    fraction,
    layer_spec,
    non_empty,
    non_negative,
    one_of,
    positive,
    slice_bounds,
)
from kinject.errors import UserError
from kinject.hardware import compute_device, resolve_bf16
from kinject.training.perturb import Perturbation, decoder_layers, perturbed


@dataclass
class TrainConfig:
    """Optimisation settings shared by every fine-tuning method.

    mode: ``full`` | ``lora`` | ``subset``. ``layers`` is a Python slice over decoder layers
    ("5:" = layer 5 to the end) used by ``subset`` and ``lora``; ``modules`` are name fragments
    of the trained modules in ``subset`` mode (``mlp``, ``self_attn``, ``input_layernorm``...).
    ``bf16``: auto (only where the hardware runs it natively), true or false.
    ``max_length`` is in tokens; each text is cut into chunks of at most that length.
    ``batch_size`` is per device; the effective batch is batch_size x grad_accum x devices.
    ``scheduler``: a transformers scheduler name, or ``step``: the rate times ``step_gamma`` after
    every ``step_every`` passes (LaPael's fine-tuning: x0.85 every 4 passes).
    ``warmup``: linear warm-up, a share of all steps when < 1, else a step count.
    ``optim``: a transformers optimizer name (adamw_torch_fused, the Trainer's default; adamw_torch, adafactor, ...).
    ``master_weights``: ``float32`` trains the full/subset model in fp32 (the weights the optimizer
    updates; autocast computes in bf16 where ``bf16``) and casts it back to the model's dtype after
    training; ``model`` trains in the model's own dtype (less memory, the optimizer's updates rounded
    to it). LoRA adapters are always fp32 over a base in the model's dtype.
    ``gradient_checkpointing``: recompute activations in the backward pass (non-reentrant).
    ``packing``: each batch's chunks concatenated into one unpadded sequence, attention kept within
    each chunk (:func:`pack_batch`): the same steps and loss, no compute spent on padding.
    ``args``: further ``transformers.TrainingArguments`` keys, passed through as given (report_to,
    fsdp, deepspeed, dataloader_num_workers, ...); keys kinject sets from the fields above are refused.
    """

    mode: str = "full"
    lr: float = 3e-4
    epochs: float = 10.0
    batch_size: int = 8
    grad_accum: int = 1
    scheduler: str = "constant"
    step_every: float = 4.0
    step_gamma: float = 0.85
    warmup: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 256
    bf16: str | bool = "auto"
    layers: str = ":"
    modules: list[str] = field(default_factory=lambda: ["mlp"])
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    optim: str = "adamw_torch_fused"
    master_weights: str = "float32"
    gradient_checkpointing: bool = False
    packing: bool = False
    args: dict[str, Any] = field(default_factory=dict)
    progress: bool = True

    CHECKS: ClassVar[dict[str, Check]] = {
        "mode": one_of("full", "lora", "subset"), "lr": positive, "epochs": positive, "batch_size": at_least(1),
        "grad_accum": at_least(1), "step_every": positive, "step_gamma": positive, "warmup": non_negative,
        "weight_decay": non_negative,
        "max_grad_norm": non_negative, "max_length": at_least(2), "bf16": one_of("auto", True, False),
        "layers": layer_spec, "modules": non_empty, "lora_r": at_least(1), "lora_alpha": at_least(1),
        "lora_dropout": fraction, "lora_targets": non_empty, "master_weights": one_of("float32", "model")}



# TrainingArguments keys kinject derives from TrainConfig (or fixes): train.args may not set them.
_OWN_ARGS = {"output_dir": "", "per_device_train_batch_size": "batch_size", "gradient_accumulation_steps": "grad_accum",
             "num_train_epochs": "epochs", "learning_rate": "lr", "lr_scheduler_type": "scheduler",
             "warmup_steps": "warmup", "weight_decay": "weight_decay", "max_grad_norm": "max_grad_norm",
             "bf16": "bf16", "use_cpu": "", "seed": "", "data_seed": "", "optim": "optim",
             "gradient_checkpointing": "gradient_checkpointing", "gradient_checkpointing_kwargs": "",
             "activation_checkpointing": "gradient_checkpointing", "activation_checkpointing_kwargs": "",
             "save_strategy": "", "remove_unused_columns": "",
             "disable_tqdm": "progress", "logging_steps": ""}


def training_arguments(cfg: TrainConfig, output_dir: str, seed: int, logging_steps: int):
    """The ``transformers.TrainingArguments`` of a run: ``cfg``'s fields, then ``cfg.args`` passed
    through. A key of ``cfg.args`` that is unknown, or set by kinject itself, is a UserError."""
    from transformers import TrainingArguments

    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    for key in cfg.args:
        if key in _OWN_ARGS:
            own = _OWN_ARGS[key]
            raise UserError(f"train.args.{key}: set by kinject" + (f"; use train.{own}" if own else ""))
        if key not in known:
            raise UserError(f"train.args.{key}: not a transformers TrainingArguments key")
    if cfg.scheduler == "step" and cfg.warmup:
        raise UserError("train.warmup: train.scheduler=step has no warm-up; set train.warmup=0")
    settings: dict[str, Any] = {"report_to": [], "dataloader_num_workers": 0, **cfg.args}
    if cfg.gradient_checkpointing:  # transformers 5.x renamed the argument; either spelling works
        name = "activation_checkpointing" if "activation_checkpointing" in known else "gradient_checkpointing"
        settings |= {name: True, f"{name}_kwargs": {"use_reentrant": False}}
    try:
        return TrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.grad_accum, num_train_epochs=cfg.epochs, learning_rate=cfg.lr,
            lr_scheduler_type="constant" if cfg.scheduler == "step" else cfg.scheduler, warmup_steps=cfg.warmup,
            weight_decay=cfg.weight_decay,
            max_grad_norm=cfg.max_grad_norm, bf16=resolve_bf16(cfg.bf16), use_cpu=compute_device().type == "cpu",
            seed=seed, data_seed=seed, optim=cfg.optim, logging_steps=logging_steps, save_strategy="no",
            disable_tqdm=not cfg.progress, remove_unused_columns=False, **settings)
    except (ValueError, TypeError, ImportError) as exc:
        raise UserError(f"train: {str(exc).splitlines()[0]}") from None


@contextlib.contextmanager
def training_state(model, cfg: TrainConfig) -> Iterator[None]:
    """Within the block: no key/value cache (a training forward would fill one and throw it away),
    and a full/subset model in fp32 when ``cfg.master_weights`` is float32 (and it is not already);
    both undone afterwards. LoRA and ``master_weights=model`` keep the model's dtype."""
    check_section(cfg, "train")
    dtype = next(model.parameters()).dtype
    upcast = cfg.mode != "lora" and cfg.master_weights == "float32" and dtype != torch.float32
    use_cache = getattr(model.config, "use_cache", None)
    model.config.use_cache = False
    if upcast:
        model.float()
    try:
        yield
    finally:
        model.config.use_cache = use_cache
        if upcast:
            model.to(dtype)


@dataclass
class TrainResult:
    """What a training run cost: optimizer steps, tokens seen (incl. repeats), wall seconds."""

    steps: int
    tokens: int
    seconds: float
    trainable_params: int
    losses: list[float]


def layer_slice(spec: str, n_layers: int, key: str = "train.layers") -> range:
    """The decoder layers a slice spec ("5:", "0:5", ":5", "3") selects; ``key`` names it in errors."""
    try:
        start, stop = slice_bounds(spec)
    except ValueError:
        raise UserError(f"{key}: {spec!r} is not a slice like '5:' or '0:5'") from None
    return range(n_layers)[slice(start, stop)]


def prepare_trainable(model, cfg: TrainConfig):
    """Freeze/unfreeze parameters (or wrap with LoRA) per ``cfg.mode``; returns the model to train."""
    layers = decoder_layers(model)
    chosen = layer_slice(cfg.layers, len(layers))
    if cfg.mode == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if cfg.mode == "subset":
        for p in model.parameters():
            p.requires_grad_(False)
        for i in chosen:
            for name, p in layers[i].named_parameters():
                if any(m in name for m in cfg.modules):
                    p.requires_grad_(True)
        if not any(p.requires_grad for p in model.parameters()):
            raise UserError(f"train.modules {cfg.modules} matched no parameter in layers {cfg.layers!r}")
        return model
    if cfg.mode == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=cfg.lora_targets, layers_to_transform=list(chosen), task_type="CAUSAL_LM")
        return get_peft_model(model, lora)
    raise UserError(f"train.mode: {cfg.mode!r} is not one of full, lora, subset")


@dataclass(frozen=True)
class Completion:
    """A training text whose loss counts only the ``completion``'s tokens (and EOS), not the
    ``prompt``'s: a QA pair trained as instruction-tuning trains it."""

    prompt: str
    completion: str

    def __str__(self) -> str:
        return self.prompt + self.completion


@dataclass(frozen=True)
class Marked:
    """A training text with character spans (start, end) marked ``keep``: the tokens they cover
    reach a perturbation as ``context["keep_tokens"]`` (an oracle token mask, ``lapael.mask=oracle``)."""

    text: str
    keep: tuple[tuple[int, int], ...]

    def __str__(self) -> str:
        return self.text

    @classmethod
    def of(cls, text: str, phrases: Sequence[str]) -> Marked:
        """``text`` with every occurrence of each non-empty phrase marked."""
        spans = []
        for phrase in {p for p in phrases if p}:
            start = text.find(phrase)
            while start >= 0:
                spans.append((start, start + len(phrase)))
                start = text.find(phrase, start + 1)
        return cls(text, tuple(sorted(spans)))


@dataclass(frozen=True)
class Distilled:
    """A student prompt and a teacher's answer, as token ids, with the teacher's next-token
    distribution at each answer token: ``top_ids`` and ``top_logprobs`` (len(answer_ids) x k, the
    teacher's k most likely tokens and their log-probabilities). The loss covers the answer tokens
    only, against those distributions (``loss``: ``forward_kl``, ``reverse_kl``, ``forward_kl_tail``
    (the KL with the teacher's mass outside its top k as one more outcome, ``+anchor``'s), or ``ce``
    on the answer tokens themselves; ``temperature`` softens both sides of a KL; ``weight`` scales the
    row's per-token loss, as ``anchor.weight`` does; ``average``: ``sequence`` makes a batch that
    holds such a row average its rows' own means instead of its tokens, ``penalty`` puts the row
    in a mean of its own, added to the batch's loss, as ``anchor.form=penalty`` does); see
    :mod:`kinject.distill.loss`."""

    prompt_ids: tuple[int, ...]
    answer_ids: tuple[int, ...]
    top_ids: tuple[tuple[int, ...], ...]
    top_logprobs: tuple[tuple[float, ...], ...]
    loss: str = "forward_kl"
    temperature: float = 1.0
    weight: float = 1.0
    average: str = "token"

    def __str__(self) -> str:
        return f"<distilled: {len(self.prompt_ids)} prompt + {len(self.answer_ids)} answer tokens>"


TrainText = str | Completion | Marked | Distilled


def training_rows(tokenizer, texts: Sequence[TrainText], max_length: int) -> list[dict[str, list[int]]]:
    """Each text as tokens + EOS, cut into chunks of at most ``max_length`` tokens: one row per
    chunk, ``input_ids`` and ``labels`` (the same ids, -100 where the loss skips a token: a
    :class:`Completion`'s prompt). A chunk with no token left to learn is dropped.
    """
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    rows: list[dict[str, list[int]]] = []
    for text in texts:
        keep: list[int] | None = None
        if isinstance(text, Marked):
            enc = tokenizer(text.text, add_special_tokens=True, return_offsets_mapping=True)
            ids = enc.input_ids + eos
            labels = ids
            keep = [int(e > s and any(a < e and s < b for a, b in text.keep)) for s, e in enc["offset_mapping"]]
            keep += [0] * len(eos)
        elif isinstance(text, Distilled):
            rows.append(_distilled_row(text, max_length))
            continue
        elif isinstance(text, Completion):
            prompt = tokenizer(text.prompt, add_special_tokens=True).input_ids
            target = tokenizer(text.completion, add_special_tokens=False).input_ids + eos
            ids, labels = prompt + target, [-100] * len(prompt) + target
        else:
            ids = tokenizer(text, add_special_tokens=True).input_ids + eos
            labels = ids
        for i in range(0, len(ids), max_length):
            chunk = labels[i: i + max_length]
            if any(t != -100 for t in chunk):
                row = {"input_ids": ids[i: i + max_length], "labels": chunk}
                if keep is not None:
                    row["keep_tokens"] = keep[i: i + max_length]
                rows.append(row)
    return rows


def _distilled_row(text: Distilled, max_length: int) -> dict[str, Any]:
    """One row: prompt + answer ids (the prompt cut from the left to fit ``max_length``), labels on
    the answer, and the teacher's top-k ids / log-probabilities at the answer positions (-1 / 0
    elsewhere); ``distill_form`` codes the loss (see :data:`DISTILL_FORMS`)."""
    answer = list(text.answer_ids)[:max_length]
    prompt = list(text.prompt_ids)[max(0, len(text.prompt_ids) - (max_length - len(answer))):]
    k = len(text.top_ids[0]) if text.top_ids else 1
    return {"input_ids": prompt + answer, "labels": [-100] * len(prompt) + answer,
            "teacher_ids": [[-1] * k] * len(prompt) + [list(t) for t in text.top_ids[: len(answer)]],
            "teacher_logprobs": [[0.0] * k] * len(prompt) + [list(t) for t in text.top_logprobs[: len(answer)]],
            "distill_form": DISTILL_FORMS.index(text.loss), "distill_temperature": text.temperature,
            "distill_weight": text.weight, "distill_sequence": text.average == "sequence",
            "distill_penalty": text.average == "penalty"}


DISTILL_FORMS = ("ce", "forward_kl", "reverse_kl", "forward_kl_tail")
TEACHER_FIELDS = ("teacher_ids", "teacher_logprobs", "distill_form", "distill_temperature", "distill_weight",
                  "distill_sequence", "distill_penalty")


def pad_right(rows: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention_mask), both (len(rows), longest row) int64, padded on the right."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


def pad_left(rows: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention_mask), both (len(rows), longest row) int64, padded on the left (for generation)."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (width - len(r)) + list(r) for r in rows], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return ids, mask


class _Collator:
    """Right-pads a batch; labels are the rows' ``labels`` (default: the inputs), padding masked (-100).

    With ``copies`` > 1 every row is repeated that many times in a row, and ``copy_index``
    (rows,) numbers the copies 0..copies-1 (copy 0 is the clean one). With ``packing``, the
    batch is :func:`pack_batch` instead.
    """

    def __init__(self, pad_id: int, copies: int = 1, packing: bool = False):
        self.pad_id = pad_id
        self.copies = copies
        self.packing = packing

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        if self.packing:
            return pack_batch(rows)
        rows = [r for r in rows for _ in range(self.copies)]
        ids, mask = pad_right([r["input_ids"] for r in rows], self.pad_id)
        labels, _ = pad_right([r.get("labels", r["input_ids"]) for r in rows], -100)
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        if any("teacher_ids" in r for r in rows):  # Distilled texts: the teacher's top-k per token
            k = max(len(r["teacher_ids"][0]) for r in rows if "teacher_ids" in r)
            width = ids.shape[1]
            top = torch.full((len(rows), width, k), -1, dtype=torch.long)
            logp = torch.zeros((len(rows), width, k))
            form = torch.zeros(len(rows), dtype=torch.long)  # rows without a teacher: plain next-token loss
            temperature, weight = torch.ones(len(rows)), torch.ones(len(rows))
            sequence, penalty = torch.zeros(len(rows), dtype=torch.bool), torch.zeros(len(rows), dtype=torch.bool)
            for i, r in enumerate(rows):
                if "teacher_ids" in r:
                    n = len(r["teacher_ids"])
                    top[i, :n] = torch.tensor(r["teacher_ids"])
                    logp[i, :n] = torch.tensor(r["teacher_logprobs"])
                    form[i], temperature[i] = r["distill_form"], r["distill_temperature"]
                    weight[i], sequence[i] = r["distill_weight"], r["distill_sequence"]
                    penalty[i] = r["distill_penalty"]
            batch.update(teacher_ids=top, teacher_logprobs=logp, distill_form=form, distill_temperature=temperature,
                         distill_weight=weight, distill_sequence=sequence, distill_penalty=penalty)
        if any("keep_tokens" in r for r in rows):  # Marked texts: the oracle token mask
            keep = [r.get("keep_tokens", [0] * len(r["input_ids"])) for r in rows]
            batch["keep_tokens"] = pad_right(keep, 0)[0].bool()
        if self.copies > 1:
            batch["copy_index"] = torch.arange(len(rows)) % self.copies
        return batch


PACKING_WITH_COPIES = "train.packing: the perturbation methods perturb rows of a padded batch; set train.packing=false"


def pack_batch(rows: list[dict[str, list[int]]]) -> dict[str, Any]:
    """A batch's rows as one sequence, no padding: ``input_ids``/``labels`` (1, total tokens), the
    first token of each row masked from the loss (it is not predicted from the row before), and
    ``position_ids`` counting from 0 in each row, from which transformers builds a block-diagonal
    causal mask (no attention across rows). The loss equals the padded batch's."""
    ids = [t for r in rows for t in r["input_ids"]]
    labels = [-100 if i == 0 else t for r in rows for i, t in enumerate(r.get("labels", r["input_ids"]))]
    positions = [i for r in rows for i in range(len(r["input_ids"]))]
    return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]),
            "position_ids": torch.tensor([positions]), "use_cache": False}


def _perturbing_trainer(base: type, perturbation: Perturbation | None, cfg: TrainConfig) -> type:
    """A Trainer subclass that tells ``perturbation`` which rows of each batch to perturb, and runs
    ``train.scheduler=step``."""

    class PerturbingTrainer(base):
        def create_scheduler(self, num_training_steps, optimizer=None):
            if cfg.scheduler != "step":
                return super().create_scheduler(num_training_steps, optimizer)
            every = max(1, round(num_training_steps / cfg.epochs * cfg.step_every))  # steps per step_every passes
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer or self.optimizer, lambda step: cfg.step_gamma ** (step // every))
            return self.lr_scheduler

        def compute_loss(self, model, inputs, *args, **kwargs):
            copy_index = inputs.pop("copy_index", None)
            keep_tokens = inputs.pop("keep_tokens", None)
            if "teacher_ids" in inputs:  # Distilled rows: the loss against the teacher's distributions
                from kinject.distill.loss import distillation_loss

                teacher = {k: inputs.pop(k) for k in TEACHER_FIELDS}
                labels = inputs.pop("labels")

                def loss():
                    return distillation_loss(model(**inputs).logits, labels, **teacher)
            else:
                def loss():
                    return super(PerturbingTrainer, self).compute_loss(model, inputs, *args, **kwargs)
            if perturbation is None:
                return loss()
            first = 1 if perturbation.clean_copy else 0
            perturbation.state = {"rows": None if copy_index is None else copy_index >= first,
                                  "attention_mask": inputs.get("attention_mask"), "keep_tokens": keep_tokens}
            if perturbation.adversary is None:
                return loss()
            return perturbation.adversary(loss, model, perturbation.state)

    return PerturbingTrainer


def sharded_launch() -> str | None:
    """"fsdp" or "deepspeed" when ``accelerate launch`` was given such a config, else None."""
    import os

    for name in ("fsdp", "deepspeed"):
        if os.environ.get(f"ACCELERATE_USE_{name.upper()}", "false").lower() in ("1", "true"):
            return name
    return None


def check_sharded_launch(cfg: TrainConfig) -> str | None:
    """Under FSDP/DeepSpeed (returned: "fsdp" | "deepspeed" | None) refuse, in one line, what cannot
    run: LoRA (few trainable weights: use DDP) and CPU processes (accelerate does not shard there)."""
    sharding = sharded_launch()
    if sharding is None:
        return None
    if cfg.mode == "lora":
        raise UserError(f"train.mode=lora under {sharding}: the adapters are small; launch with "
                        "configs/accelerate/ddp.yaml instead")
    if compute_device().type == "cpu":
        raise UserError(f"{sharding} on CPU processes: accelerate does not shard there (it would run plain DDP); "
                        "launch with configs/accelerate/ddp.yaml")
    return sharding


def check_fits_one_device(model, cfg: TrainConfig) -> None:
    """Under FSDP/DeepSpeed only rank 0 evaluates, on the whole model: refuse (one line) before any
    training when the weights alone fill 90% of its GPU (and what :func:`check_sharded_launch` refuses)."""
    sharding = check_sharded_launch(cfg)
    device = compute_device()
    if sharding is not None and device.type == "cuda":
        need = sum(p.numel() * p.element_size() for p in model.parameters())
        have = torch.cuda.get_device_properties(device).total_memory
        if need > 0.9 * have:
            raise UserError(f"{sharding}: rank 0 evaluates the whole model, and its weights ({need / 2**30:.1f} GiB) "
                            f"do not fit one {torch.cuda.get_device_name(device)} ({have / 2**30:.1f} GiB); save "
                            "the sharded model (kinject inject) and evaluate it with sharded inference")


def gathered(model, trainer):
    """After sharded training (FSDP, DeepSpeed ZeRO-3): the full trained weights loaded into
    ``model`` on rank 0 (every rank takes part in the gather); other ranks get ``model`` as is."""
    from kinject.hardware import is_main_process

    state = trainer.accelerator.get_state_dict(trainer.model)
    if not is_main_process():
        return model
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_config(model.config, dtype=next(iter(state.values())).dtype)
    plain.load_state_dict(state, strict=False)
    plain.tie_weights()
    return plain.to(compute_device())


def train_causal_lm(model, tokenizer, texts: Sequence[TrainText], cfg: TrainConfig, seed: int, copies: int = 1,
                    perturbation: Perturbation | None = None):
    """Fine-tune ``model`` in place on ``texts`` (next-token loss on every token but a
    :class:`Completion`'s prompt).

    ``copies``: each training chunk appears that many times in its batch (``cfg.batch_size``
    chunks make ``batch_size x copies`` rows); ``perturbation`` perturbs copies 1.. while copy 0
    stays clean, and the loss averages over all of them (see ``training/perturb.py``). The hooks
    are removed before returning. Returns (the trained model, possibly a peft wrapper;
    :class:`TrainResult`, whose ``tokens`` count every copy).
    """
    from transformers import PrinterCallback, Trainer, TrainerCallback
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    dataset = training_rows(tokenizer, texts, cfg.max_length)
    if not dataset:
        raise UserError("nothing to train on: the corpus produced no training text")
    losses: list[float] = []

    class _Losses(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    check_fits_one_device(model, cfg)
    if cfg.packing and copies > 1:
        raise UserError(PACKING_WITH_COPIES)
    with tempfile.TemporaryDirectory(prefix="kinject-train-") as tmp, training_state(model, cfg):
        steps_per_epoch = math.ceil(len(dataset) / (cfg.batch_size * cfg.grad_accum))
        args = training_arguments(cfg, tmp, seed, logging_steps=max(1, steps_per_epoch // 2))
        model = prepare_trainable(model, cfg)
        model.train()
        trainer = _perturbing_trainer(Trainer, perturbation, cfg)(
            model=model, args=args, train_dataset=dataset,
            data_collator=_Collator(tokenizer.pad_token_id, copies, cfg.packing),
            callbacks=[_Losses()])
        trainer.remove_callback(PrinterCallback)  # losses go to TrainResult, not stdout
        hooks = perturbed(model, perturbation) if perturbation is not None else contextlib.nullcontext()
        start = time.perf_counter()
        with hooks:
            out = trainer.train()
        seconds = time.perf_counter() - start
        if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
            model = gathered(model, trainer)
    model.eval()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    tokens = int(sum(len(r["input_ids"]) for r in dataset) * cfg.epochs * copies)
    return model, TrainResult(out.global_step, tokens, seconds, trainable, losses)
