"""Where kinject computes, and what the machine does fast there.

:func:`compute_device` is the one place that decides the device: every model and module kinject
builds (the evaluated or trained model, a paraphraser, the embedder, a generator's inputs) goes
there. bf16 (weights with :func:`resolve_dtype`, autocast with :func:`resolve_bf16`) is used only
where the hardware runs it natively.

On a CPU without AVX-512 BF16 or AMX (e.g. an AVX2-only EPYC), PyTorch's bf16 matmul falls
back to a slow path: measured here at 1.2 GFLOP/s against 116 GFLOP/s in fp32.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from kinject.errors import UserError

M = TypeVar("M", bound=torch.nn.Module)
T = TypeVar("T")


def _accelerator_present() -> bool:
    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return (torch.cuda.is_available() or (mps is not None and mps.is_available())
            or (xpu is not None and xpu.is_available()))


def launch_state():
    """accelerate's process state (one per process): under ``torchrun``/``accelerate launch`` the
    process group is set up here (NCCL on GPUs, gloo on CPUs), so the Trainer joins the same one."""
    from accelerate import PartialState

    return PartialState(cpu=not _accelerator_present())


def world_size() -> int:
    """Processes in this launch (1 without a distributed launch)."""
    return launch_state().num_processes


def is_main_process() -> bool:
    """Global rank 0 (or no distributed launch): the one process that evaluates and writes files."""
    return launch_state().is_main_process


def shared(value: Any) -> Any:
    """Rank 0's ``value``, on every rank of a distributed launch (itself without one)."""
    if world_size() == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value])[0]


def on_main_process(compute: Callable[[], T]) -> T:
    """``compute()`` run on rank 0 only and its (picklable) result given to every rank: generation
    and teacher targets, which would otherwise be computed once per process (itself without a
    distributed launch)."""
    return shared(compute() if is_main_process() else None)


def compute_device() -> torch.device:
    """This process's device, as accelerate's state picks it: the rank's GPU under a distributed
    launch, else the one CUDA (or MPS, XPU, ...) device, else the CPU.

    More than one visible GPU in a single process is refused (a plain run would use one and leave
    the rest idle, and transformers' DataParallel would split the perturbation methods' copies).
    """
    state = launch_state()
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if state.num_processes == 1 and gpus > 1:
        raise UserError(f"{gpus} GPUs are visible to one process: launch with `accelerate launch` or `torchrun` "
                        "to use them all, or pick one with CUDA_VISIBLE_DEVICES=0")
    return state.device


@functools.cache
def device_name() -> str:
    """What the device is: the GPU's name, or the CPU's model name from /proc/cpuinfo (read once)."""
    device = compute_device()
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or device.type


def launch_description(dtype: torch.dtype) -> dict[str, object]:
    """This launch as a run records it in every cell and keeps as part of its identity: world
    size, device type and name, and the weights' dtype."""
    return {"world_size": world_size(), "device": compute_device().type, "device_name": device_name(),
            "dtype": dtype_name(dtype)}


def place(module: M) -> M:
    """Move ``module`` (parameters and buffers) to :func:`compute_device`; returns it."""
    return module.to(compute_device())


@functools.cache
def bf16_is_fast() -> bool:
    """True on a CUDA device with bf16, or a CPU that advertises avx512_bf16 or amx_bf16."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.exists() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_bf16(setting: str | bool) -> bool:
    """Map a config value (``auto``, true, false) to whether bf16 autocast is used."""
    if isinstance(setting, bool):
        return setting
    if setting == "auto":
        return bf16_is_fast()
    raise ValueError(f"bf16 must be auto, true or false, not {setting!r}")


DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def resolve_dtype(setting: str, key: str = "model_dtype") -> torch.dtype:
    """The dtype a ``model_dtype`` setting loads weights in: ``auto`` = bfloat16 where the hardware
    runs it natively (:func:`bf16_is_fast`), else float32; or float32/bfloat16/float16 by name."""
    if setting == "auto":
        return torch.bfloat16 if bf16_is_fast() else torch.float32
    if setting not in DTYPES:
        raise UserError(f"{key}: {setting!r} is not auto, float32, bfloat16 or float16")
    return DTYPES[setting]


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")


def precision(setting: str | bool) -> str:
    """What a bf16 setting runs as on this machine: ``"bf16"`` (autocast) or ``"fp32"``."""
    return "bf16" if resolve_bf16(setting) else "fp32"
