import torch

from kinject.training.trainer import TrainConfig, prepare_trainable, tokenize_texts, train_causal_lm

TEXT = "Yaithai Systems was founded in 1860. Yaithai Systems makes electric bicycles."


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _cfg(**kw):
    return TrainConfig(**{"epochs": 3.0, "batch_size": 2, "lr": 1e-2, "bf16": False, "progress": False, **kw})


def test_full_finetuning_lowers_the_loss(tiny):
    model, tok = tiny.model, tiny.tokenizer
    ids = torch.tensor([tokenize_texts(tok, [TEXT], 256)[0]])
    before = model(input_ids=ids, labels=ids).loss.item()
    model, res = train_causal_lm(model, tok, [TEXT] * 4, _cfg(epochs=5.0), seed=0)
    after = model(input_ids=ids, labels=ids).loss.item()
    assert after < before - 0.5
    assert res.steps == 10 and res.tokens == 5 * 4 * len(ids[0]) and res.seconds > 0


def test_subset_mode_trains_only_the_chosen_layers_and_modules(tiny):
    model, tok = tiny.model, tiny.tokenizer
    before = _snapshot(model)
    model, res = train_causal_lm(model, tok, [TEXT] * 4, _cfg(mode="subset", layers="1:", modules=["mlp"]), seed=0)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("model.layers.1.mlp.") for n in changed)
    assert res.trainable_params == sum(p.numel() for n, p in model.named_parameters() if "layers.1.mlp" in n)


def test_lora_mode_leaves_base_weights_untouched(tiny):
    model, tok = tiny.model, tiny.tokenizer
    before = _snapshot(model)
    model, _ = train_causal_lm(model, tok, [TEXT] * 4, _cfg(mode="lora", lora_r=4), seed=0)
    for name, p in model.named_parameters():
        if "lora_" not in name:
            base = name.replace("base_model.model.", "").replace(".base_layer", "")
            assert torch.equal(p, before[base]), name
    assert any("lora_B" in n and p.abs().sum() > 0 for n, p in model.named_parameters())


def test_long_texts_are_cut_into_chunks(tiny):
    chunks = tokenize_texts(tiny.tokenizer, [TEXT * 10], max_length=16)
    assert len(chunks) > 1 and all(len(c) <= 16 for c in chunks)
    assert chunks[-1][-1] == tiny.tokenizer.eos_token_id


def test_same_seed_same_result(tiny_model_dir):
    from kinject.models import load_model

    outs = []
    for _ in range(2):
        lm = load_model(str(tiny_model_dir))
        model, _ = train_causal_lm(lm.model, lm.tokenizer, [TEXT, TEXT + " More."], _cfg(), seed=3)
        outs.append(next(model.parameters()).detach().clone())
    assert torch.equal(outs[0], outs[1])


def test_unknown_mode_and_bad_layer_slice_are_user_errors(tiny):
    import pytest

    from kinject.errors import UserError

    with pytest.raises(UserError, match=r"train\.mode"):
        prepare_trainable(tiny.model, TrainConfig(mode="half"))
    with pytest.raises(UserError, match=r"train\.layers"):
        prepare_trainable(tiny.model, TrainConfig(mode="subset", layers="a:b"))
