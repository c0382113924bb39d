import torch

from kinject.training.trainer import Completion, TrainConfig, prepare_trainable, train_causal_lm, training_rows

TEXT = "Yaithai Systems was founded in 1860. Yaithai Systems makes electric bicycles."


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _cfg(**kw):
    return TrainConfig(**{"epochs": 3.0, "batch_size": 2, "lr": 1e-2, "bf16": False, "progress": False, **kw})


def test_full_finetuning_lowers_the_loss(tiny):
    model, tok = tiny.model, tiny.tokenizer
    ids = torch.tensor([training_rows(tok, [TEXT], 256)[0]["input_ids"]])
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
    rows = training_rows(tiny.tokenizer, [TEXT * 10], max_length=16)
    assert len(rows) > 1 and all(len(r["input_ids"]) <= 16 and r["labels"] == r["input_ids"] for r in rows)
    assert rows[-1]["input_ids"][-1] == tiny.tokenizer.eos_token_id


def test_a_completion_is_learned_without_its_prompt(tiny_model_dir):
    from kinject.models import load_model

    pair = Completion("Question: What does Yaithai Systems make?\nAnswer:", " electric bicycles")
    lm = load_model(str(tiny_model_dir))
    tok = lm.tokenizer
    (row,) = training_rows(tok, [pair], 256)
    n_prompt = len(tok(pair.prompt).input_ids)
    assert row["labels"][:n_prompt] == [-100] * n_prompt
    target = [*tok(pair.completion).input_ids, tok.eos_token_id]
    assert row["labels"][n_prompt:] == row["input_ids"][n_prompt:] == target
    # a prompt longer than a chunk leaves chunks with nothing to learn, which are dropped
    assert all(any(t != -100 for t in r["labels"]) for r in training_rows(tok, [pair], 4))
    ids = torch.tensor([row["input_ids"]])

    def losses(model):  # (prompt, completion): mean next-token loss
        logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1).gather(1, ids[0, 1:, None])[:, 0]
        return -logp[: n_prompt - 1].mean().item(), -logp[n_prompt - 1:].mean().item()

    before = losses(lm.model)
    as_completion, _ = train_causal_lm(lm.model, tok, [pair] * 4, _cfg(epochs=5.0), seed=0)
    as_completion = losses(as_completion)
    lm = load_model(str(tiny_model_dir))
    as_text, _ = train_causal_lm(lm.model, tok, [pair.prompt + pair.completion] * 4, _cfg(epochs=5.0), seed=0)
    as_text = losses(as_text)
    assert as_completion[1] < before[1] - 1.0  # the answer is learned either way
    assert as_text[0] < as_completion[0] - 1.0  # the prompt only when it is a target


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
