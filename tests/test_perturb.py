"""Perturbed-copy training on the tiny model: copies, hooks that leave no trace, NEFTune."""

import math

import pytest
import torch

from kinject.config import RunConfig
from kinject.errors import UserError
from kinject.methods.noise import check_noise, neftune_noise
from kinject.training.perturb import Perturbation, decoder_layers, perturbed
from kinject.training.trainer import TrainConfig, _Collator, train_causal_lm


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_collator_repeats_each_row_and_numbers_the_copies():
    batch = _Collator(pad_id=0, copies=3)([{"input_ids": [5, 6]}, {"input_ids": [7]}])
    assert batch["input_ids"].tolist() == [[5, 6], [5, 6], [5, 6], [7, 0], [7, 0], [7, 0]]
    assert batch["copy_index"].tolist() == [0, 1, 2, 0, 1, 2]
    assert batch["labels"][3].tolist() == [7, -100]
    assert "copy_index" not in _Collator(pad_id=0)([{"input_ids": [5]}])


@pytest.mark.parametrize(("site", "layers"), [("embeddings", ()), ("mlp_input", (0, 1))])
def test_only_flagged_rows_change_and_removed_hooks_leave_the_model_bit_identical(tiny, site, layers):
    model = tiny.model
    ids = torch.tensor([[3, 4, 5, 6]] * 2)
    clean = _logits(model, ids)
    seen = []
    double = Perturbation(site, lambda h, layer, context: seen.append(layer) or h * 2.0, layers=layers)
    double.state = {"rows": torch.tensor([False, True])}
    with perturbed(model, double):
        noisy = _logits(model, ids)
    assert torch.equal(noisy[0], clean[0]) and not torch.allclose(noisy[1], clean[1])
    assert seen == ([-1] if site == "embeddings" else [0, 1])
    assert torch.equal(_logits(model, ids), clean)  # hooks removed: the plain model again
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_decoder_layers_are_found_and_bad_layers_refused(tiny):
    assert len(decoder_layers(tiny.model)) == 2
    with pytest.raises(UserError, match="out of range"), perturbed(tiny.model, Perturbation(
            "mlp_input", lambda h, layer, context: h, layers=[5])):
        pass


def test_neftune_noise_is_bounded_by_alpha_over_sqrt_length_times_dim():
    torch.manual_seed(0)
    hidden = torch.zeros(2, 10, 64)
    mask = torch.tensor([[1] * 10, [1] * 4 + [0] * 6])
    noise = neftune_noise(5.0)(hidden, -1, {"attention_mask": mask})
    for row, length in enumerate((10, 4)):
        bound = 5.0 / math.sqrt(length * 64)
        assert noise[row].abs().max() <= bound
        assert noise[row].abs().mean() == pytest.approx(bound / 2, rel=0.1)  # uniform in [-b, b]


def test_copies_multiply_tokens_not_steps_and_training_leaves_no_hooks(tiny_model_dir):
    from kinject.models import load_model

    cfg = TrainConfig(epochs=1, batch_size=2, bf16=False, progress=False)
    texts = ["Quillon Works sells tide clocks.", "Ada Marlow was born in 1874.", "The lighthouse is red."]
    plain = load_model(str(tiny_model_dir))
    _, one = train_causal_lm(plain.model, plain.tokenizer, texts, cfg, seed=0)
    noisy = load_model(str(tiny_model_dir))
    neft = Perturbation("embeddings", neftune_noise(5.0))
    model, four = train_causal_lm(noisy.model, noisy.tokenizer, texts, cfg, seed=0, copies=4, perturbation=neft)
    assert four.steps == one.steps and four.tokens == 4 * one.tokens
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_noise_config_is_checked():
    cfg = RunConfig()
    cfg.noise.copies = 1
    with pytest.raises(UserError, match=r"noise\.copies"):
        check_noise(None, cfg)


@pytest.mark.parametrize("kind", ["uniform", "gaussian"])
def test_multiplicative_noise_scales_around_one_and_vanishes_at_zero(kind):
    from kinject.methods.noise import multiplicative_noise

    torch.manual_seed(0)
    hidden = torch.full((4, 8, 32), 2.0)
    factor = multiplicative_noise(kind, 0.1)(hidden, 0, {}) / hidden
    assert factor.mean().item() == pytest.approx(1.0, abs=0.01) and factor.std().item() > 0.02
    if kind == "uniform":
        assert factor.min() >= 0.9 and factor.max() <= 1.1
    assert torch.equal(multiplicative_noise(kind, 0.0)(hidden, 0, {}), hidden)


def test_fixed_noise_layers_are_checked(tiny_model_dir, tmp_path):
    from kinject.cli import main

    code = main(["inject", "--method", "noise-uniform", "--out", str(tmp_path / "m"), f"model={tiny_model_dir}",
                 "noise.layers=9:x", "data.builtin.test_people=1", "data.builtin.test_orgs=1"])
    assert code == 2 and not (tmp_path / "m").exists()


def test_freelb_moves_the_embeddings_uphill_and_averages_its_passes(tiny):
    from kinject.methods.noise import FreeLB

    model = tiny.model
    ids = torch.tensor([[3, 4, 5, 6, 7, 8]] * 2)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    with torch.no_grad():
        clean = model(**batch).loss
    adversary = FreeLB(init=0.0, step=1.0, steps=2)
    perturbation = adversary.perturbation()
    perturbation.state = {"rows": torch.tensor([True, True]), "attention_mask": batch["attention_mask"]}
    losses = []
    with perturbed(model, perturbation):
        mean = adversary.loss(lambda: losses.append(model(**batch).loss) or losses[-1], model, perturbation.state)
    assert len(losses) == 2 and torch.allclose(losses[0], clean)  # init 0: the first pass is the clean loss
    assert losses[1] > losses[0] and torch.allclose(mean, (losses[0] + losses[1]) / 2)
    assert "delta" not in perturbation.state
    mean.backward()
    assert model.get_input_embeddings().weight.grad is not None


def test_freelb_trains_with_copies_and_leaves_no_hooks(tiny_model_dir):
    from kinject.methods.noise import FreeLB
    from kinject.models import load_model

    loaded = load_model(str(tiny_model_dir))
    cfg = TrainConfig(epochs=1, batch_size=2, bf16=False, progress=False)
    texts = ["Ada Marlow was born in 1874.", "Bo hails from Lund."]
    freelb = FreeLB(0.6, 0.1, 2).perturbation()
    model, res = train_causal_lm(loaded.model, loaded.tokenizer, texts, cfg, seed=0, copies=4, perturbation=freelb)
    assert res.steps == 1 and all(math.isfinite(x) for x in res.losses)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("clean_copy, perturbed", [(True, [False, True, True, True]), (False, [True] * 4)])
def test_clean_copy_decides_whether_copy_0_is_perturbed(tiny_model_dir, clean_copy, perturbed):
    from kinject.models import load_model

    seen = []

    def record(hidden, layer, context):
        seen.append(hidden.shape[0])
        return hidden

    loaded = load_model(str(tiny_model_dir))
    cfg = TrainConfig(epochs=1, batch_size=1, bf16=False, progress=False)
    probe = Perturbation("embeddings", record, clean_copy=clean_copy)
    train_causal_lm(loaded.model, loaded.tokenizer, ["Ada Marlow was born in 1874."], cfg, seed=0, copies=4,
                    perturbation=probe)
    assert seen and all(n == sum(perturbed) for n in seen)
