"""One function decides the device; the model, a paraphraser and the embedder all land there."""

import pytest
import torch

from kinject import hardware
from kinject.errors import UserError


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def test_model_paraphraser_and_embedder_go_to_the_one_device(tiny_model_dir):
    from kinject.lapael.paraphraser import LatentParaphraser
    from kinject.models import load_model
    from kinject.retrieval.embedder import Embedder

    device = hardware.compute_device()
    model = load_model(str(tiny_model_dir)).model
    para = hardware.place(LatentParaphraser(model.config.hidden_size, [0, 1], 0.1))
    embedder = Embedder()
    placed = {"model": _device_of(model), "paraphraser": _device_of(para), "embedder": _device_of(embedder.model)}
    assert {name: d.type for name, d in placed.items()} == dict.fromkeys(placed, device.type)
    assert len({(d.type, d.index or 0) for d in placed.values()}) == 1


def test_several_gpus_in_one_process_are_refused(monkeypatch):
    hardware.compute_device()  # accelerate's state is made once, on the real machine
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(UserError, match="2 GPUs are visible to one process: launch with `accelerate launch`"):
        hardware.compute_device()
