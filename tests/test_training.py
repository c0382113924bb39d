import pytest
import torch

from kinject.errors import UserError
from kinject.training.trainer import (
    Completion,
    TrainConfig,
    prepare_trainable,
    train_causal_lm,
    training_arguments,
    training_rows,
)

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


def test_a_bf16_model_trains_on_fp32_master_weights_and_returns_in_bf16(tiny_model_dir):
    from kinject.models import load_model

    lm = load_model(str(tiny_model_dir), "bfloat16")
    model, res = train_causal_lm(lm.model, lm.tokenizer, [TEXT] * 4, _cfg(epochs=5.0, bf16=True), seed=0)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert res.losses[-1] < res.losses[0] - 0.5
    # master_weights=model: the optimizer updates the bf16 weights themselves
    seen = []
    lm = load_model(str(tiny_model_dir), "bfloat16")
    lm.model.register_forward_pre_hook(lambda m, a: seen.append(next(m.parameters()).dtype))
    train_causal_lm(lm.model, lm.tokenizer, [TEXT] * 2, _cfg(epochs=1.0, bf16=True, master_weights="model"), seed=0)
    assert seen and set(seen) == {torch.bfloat16}
    seen.clear()
    lm = load_model(str(tiny_model_dir), "bfloat16")
    lm.model.register_forward_pre_hook(lambda m, a: seen.append(next(m.parameters()).dtype))
    train_causal_lm(lm.model, lm.tokenizer, [TEXT] * 2, _cfg(epochs=1.0, bf16=True), seed=0)
    assert seen and set(seen) == {torch.float32}


def test_gradient_checkpointing_trains_the_same_model(tiny_model_dir):
    from kinject.models import load_model

    params = []
    for checkpointing in (False, True):
        lm = load_model(str(tiny_model_dir), "float32")
        model, _ = train_causal_lm(lm.model, lm.tokenizer, [TEXT, TEXT + " More."], _cfg(
            gradient_checkpointing=checkpointing), seed=3)
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(params[0], params[1], atol=1e-5)


def test_train_args_pass_through_and_refuse_what_kinject_sets(tmp_path):
    import pytest

    from kinject.errors import UserError
    from kinject.training.trainer import training_arguments

    args = training_arguments(_cfg(args={"logging_first_step": True, "optim_args": "foo=1"}, optim="adafactor",
                                   gradient_checkpointing=True), str(tmp_path), 0, 1)
    assert args.logging_first_step and args.optim_args == "foo=1" and args.optim == "adafactor"
    assert args.gradient_checkpointing and args.report_to in ([], "none", ["none"])
    with pytest.raises(UserError, match=r"train\.args\.learning_rate: set by kinject; use train\.lr"):
        training_arguments(_cfg(args={"learning_rate": 1.0}), str(tmp_path), 0, 1)
    with pytest.raises(UserError, match=r"train\.args\.nonsense: not a transformers TrainingArguments key"):
        training_arguments(_cfg(args={"nonsense": 1}), str(tmp_path), 0, 1)
    with pytest.raises(UserError, match=r"^train: "):
        training_arguments(_cfg(optim="no-such-optimizer"), str(tmp_path), 0, 1)


def test_a_lora_adapter_is_saved_and_loaded_back_merged(tiny_model_dir, tmp_path):
    import json

    from kinject.models import ADAPTER_BASE, load_model, save_injected

    lm = load_model(str(tiny_model_dir), "float32")
    model, _ = train_causal_lm(lm.model, lm.tokenizer, [TEXT] * 4, _cfg(mode="lora", lora_r=4), seed=0)
    written = save_injected(model, lm.tokenizer, tmp_path / "out", str(tiny_model_dir), merged=True)
    assert written == [tmp_path / "out", tmp_path / "out" / "merged"]
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "out" / "model.safetensors").exists()
    assert json.loads((tmp_path / "out" / ADAPTER_BASE).read_text()) == {"base_model": str(tiny_model_dir)}
    ids = torch.tensor([training_rows(lm.tokenizer, [TEXT], 256)[0]["input_ids"]])
    with torch.no_grad():
        trained = model(input_ids=ids).logits
        from_adapter = load_model(str(tmp_path / "out"), "float32").model(input_ids=ids).logits
        merged = load_model(str(tmp_path / "out" / "merged"), "float32").model(input_ids=ids).logits
        untrained = load_model(str(tiny_model_dir), "float32").model(input_ids=ids).logits
    assert torch.allclose(trained, from_adapter, atol=1e-4) and torch.allclose(trained, merged, atol=1e-4)
    assert not torch.allclose(trained, untrained, atol=1e-4)


def test_a_sharded_launch_refuses_lora_and_cpu_processes(monkeypatch):
    import pytest

    from kinject.errors import UserError
    from kinject.training.trainer import check_sharded_launch

    assert check_sharded_launch(_cfg()) is None  # no FSDP/DeepSpeed launch
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(UserError, match=r"train\.mode=lora under fsdp"):
        check_sharded_launch(_cfg(mode="lora"))
    with pytest.raises(UserError, match=r"fsdp on CPU processes"):
        check_sharded_launch(_cfg())


def test_a_packed_batch_has_the_padded_batchs_loss_and_trains_alike(tiny_model_dir):
    from kinject.models import load_model
    from kinject.training.trainer import _Collator, pack_batch

    lm = load_model(str(tiny_model_dir), "float32")
    pair = Completion("Question: What does Yaithai Systems make?\nAnswer:", " electric bicycles")
    rows = training_rows(lm.tokenizer, [TEXT, "Short one.", pair], 256)
    padded = _Collator(lm.tokenizer.pad_token_id)(rows)
    packed = pack_batch(rows)
    assert packed["input_ids"].shape == (1, sum(len(r["input_ids"]) for r in rows))
    with torch.no_grad():
        a = lm.model(**padded, use_cache=False).loss
        b = lm.model(**packed).loss
    assert torch.allclose(a, b, atol=1e-5)  # attention stays within each row
    params = []
    for packing in (False, True):
        lm = load_model(str(tiny_model_dir), "float32")
        model, _ = train_causal_lm(lm.model, lm.tokenizer, [TEXT, "Short one.", pair] * 2, _cfg(packing=packing),
                                   seed=3)
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(params[0], params[1], atol=1e-4)


def test_step_scheduler_decays_the_rate_every_step_every_passes():
    import torch

    from kinject.training.trainer import _perturbing_trainer

    class Base:
        optimizer = None

        def create_scheduler(self, num_training_steps, optimizer=None):
            return "transformers' own"

    cfg = TrainConfig(scheduler="step", epochs=12, step_every=4, step_gamma=0.85)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = _perturbing_trainer(Base, None, cfg)().create_scheduler(120, opt)  # 10 steps a pass
    rates = []
    for _ in range(120):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[0] == rates[39] == 1.0 and rates[40] == pytest.approx(0.85) and rates[119] == pytest.approx(0.85**2)
    assert _perturbing_trainer(Base, None, TrainConfig())().create_scheduler(120, opt) == "transformers' own"
    with pytest.raises(UserError, match=r"train\.scheduler=step has no warm-up"):
        training_arguments(TrainConfig(scheduler="step", warmup=10), "/tmp", 0, 1)
