"""LaPael on the tiny model: the paraphraser module, its losses, targets, training and injection."""

import json
import math

import pytest
import torch

from kinject.cli import main
from kinject.errors import UserError
from kinject.lapael.mask_rates import perturb_rates
from kinject.lapael.paraphraser import LatentParaphraser, load_paraphraser, relaxed_bernoulli, resolve_paraphraser
from kinject.lapael.targets import tokenize_sentence
from kinject.lapael.train import distribution_loss, mask_loss, mask_plateaued, symmetric_gaussian_kl
from kinject.training.perturb import perturbed

SMALL_WORLD = ["data.builtin.test_people=2", "data.builtin.test_orgs=1", "data.builtin.train_people=3",
               "data.builtin.train_orgs=1"]
FAST = ["lapael.epochs=2", "lapael.batch_size=4", "lapael.copies=2", "lapael.layers=:1", "lapael.kl_layers=1:"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))


def test_paraphraser_is_the_identity_where_the_mask_is_zero_and_perturbs_elsewhere():
    torch.manual_seed(0)
    para = LatentParaphraser(16, [0, 1])
    h = torch.randn(3, 5, 16)
    keep_all = {"keep": torch.ones(3, 5, dtype=torch.bool)}
    assert torch.equal(para.perturb(h, 0, keep_all), h)
    keep = torch.zeros(3, 5, dtype=torch.bool)
    keep[:, 2] = True
    out = para.perturb(h, 1, {"keep": keep})
    assert torch.equal(out[:, 2], h[:, 2]) and not torch.allclose(out[:, 0], h[:, 0])
    assert para.mask_logits[1].shape == (3, 5)


def test_noise_is_one_where_alpha_is_zero_and_the_learned_mask_is_soft_in_0_1():
    torch.manual_seed(0)
    para = LatentParaphraser(8, [0])
    net = para.nets["0"]
    torch.nn.init.zeros_(net.alpha[2].weight)
    torch.nn.init.zeros_(net.alpha[2].bias)
    h = torch.randn(2, 4, 8)
    assert torch.allclose(net.scale(h), torch.ones_like(h))  # softplus(0) with beta ln 2 = 1
    m = relaxed_bernoulli(torch.zeros(10000), 0.1)
    assert m.min() >= 0 and m.max() <= 1 and m.mean().item() == pytest.approx(0.5, abs=0.02)
    assert ((m < 0.05) | (m > 0.95)).float().mean() > 0.8  # temperature 0.1: nearly binary


def test_hooks_leave_the_model_bit_identical_once_removed(tiny):
    ids = torch.tensor([[3, 4, 5, 6, 7]] * 2)
    with torch.no_grad():
        clean = tiny.model(input_ids=ids).logits
    para = LatentParaphraser(tiny.model.config.hidden_size, [0, 1])
    perturbation = para.perturbation()
    perturbation.state = {"rows": torch.tensor([False, True])}
    with torch.no_grad(), perturbed(tiny.model, perturbation):
        noisy = tiny.model(input_ids=ids).logits
        assert torch.equal(noisy[0], clean[0]) and not torch.allclose(noisy[1], clean[1])
    with torch.no_grad():
        assert torch.equal(tiny.model(input_ids=ids).logits, clean)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in tiny.model.modules())


def test_symmetric_kl_is_zero_for_identical_gaussians_and_matches_the_closed_form():
    mean, std = torch.randn(6), torch.rand(6) + 0.5
    assert torch.allclose(symmetric_gaussian_kl(mean, std, mean, std), torch.zeros(6), atol=1e-7)
    p, q = (torch.tensor([0.0]), torch.tensor([1.0])), (torch.tensor([1.0]), torch.tensor([2.0]))
    kl_pq = math.log(2 / 1) + (1 + 1) / (2 * 4) - 0.5
    kl_qp = math.log(1 / 2) + (4 + 1) / (2 * 1) - 0.5
    assert symmetric_gaussian_kl(*p, *q).item() == pytest.approx(0.5 * (kl_pq + kl_qp))
    assert torch.equal(symmetric_gaussian_kl(*p, *q), symmetric_gaussian_kl(*q, *p))


def test_distribution_loss_is_zero_on_target_and_floors_small_stds():
    torch.manual_seed(0)
    states = torch.randn(2, 3, 4, 8)  # K=2 outputs, B=3 sentences, 4 copies, d=8
    mean, std = states.mean(2), states.std(2)
    assert distribution_loss(states, mean, std, std_floor=0.01).item() == pytest.approx(0.0, abs=1e-6)
    assert distribution_loss(states, mean + 1, std, std_floor=0.01).item() > 1
    # a target std under the floor is replaced by the predicted std: only the mean gap remains
    tiny_std = torch.full_like(std, 1e-4)
    assert distribution_loss(states, mean, tiny_std, std_floor=0.01).item() == pytest.approx(0.0, abs=1e-6)


def test_mask_loss_wants_entities_kept_and_half_the_rest_perturbed():
    keep = torch.tensor([[True, True, False, False, False, False]])
    valid = torch.ones_like(keep)
    good = torch.tensor([[-20.0, -20.0, 0.0, 0.0, 0.0, 0.0]])
    assert mask_loss(good, keep, valid, 0.5, "pooled").item() == pytest.approx(0.0, abs=1e-6)
    assert mask_loss(torch.full_like(good, 20.0), keep, valid, 0.5, "pooled").item() == pytest.approx(1.5, abs=1e-6)
    # row (LaPael's code): the count of perturbed tokens per row is 0.5 x all 6 tokens = 3
    three = torch.tensor([[-20.0, -20.0, 20.0, 20.0, 20.0, -20.0]])
    assert mask_loss(three, keep, valid, 0.5, "row").item() == pytest.approx(0.0, abs=1e-6)
    assert mask_loss(good, keep, valid, 0.5, "row").item() == pytest.approx(1.0, abs=1e-6)  # 2 of 3
    # rows count apart: one row over by 2, one under by 2 is 2 on average, not 0
    two = torch.tensor([[-20.0] * 6, [20.0] * 6])
    none_kept = torch.zeros(2, 6, dtype=torch.bool)
    assert mask_loss(two, none_kept, torch.ones(2, 6, dtype=torch.bool), 0.5, "row").item() == pytest.approx(3.0)
    # row_free counts the tokens not kept: 2 of the 4 free tokens perturbed meets ratio .5
    assert mask_loss(three, keep, valid, 0.5, "row_free").item() == pytest.approx(1.0, abs=1e-6)  # 3 of 4
    assert mask_loss(torch.tensor([[-20.0, -20.0, 20.0, 20.0, -20.0, -20.0]]), keep, valid, 0.5,
                     "row_free").item() == pytest.approx(0.0, abs=1e-6)
    # padding is not counted
    pad = torch.tensor([[True, True, True, True, False, False]])
    assert mask_loss(torch.tensor([[20.0, 20.0, -20.0, -20.0, 20.0, 20.0]]), none_kept[:1], pad, 0.5,
                     "row").item() == pytest.approx(0.0, abs=1e-6)


def test_plateau_rule():
    assert not mask_plateaued([2.0, 1.5], 2)  # too short to tell
    assert not mask_plateaued([2.0, 1.5, 1.2, 1.0], 2)
    assert mask_plateaued([2.0, 1.0, 0.995, 0.999], 2)


def test_answer_position_kinds_and_the_whole_sentence(tiny):
    tok = tiny.tokenizer
    text = "Ada Marlow was born in 1874 in Oslo."
    cut = tokenize_sentence(tok, text, "1874", ["Ada Marlow"], whole=False)
    decoded = tok.decode(cut.ids, skip_special_tokens=True)
    assert text.startswith(decoded) and decoded.rstrip() == "Ada Marlow was born in"
    assert cut.position == len(cut.ids) - 1 and "answer" not in cut.kinds
    whole = tokenize_sentence(tok, text, "1874", ["Ada Marlow"])
    assert whole.ids == tok(text).input_ids and whole.ids[: len(cut.ids)] == cut.ids
    assert whole.position == cut.position  # the KL stays at the token before the answer
    assert "1874".startswith(tok.decode(whole.ids[whole.position + 1]).strip())
    offsets = tok(text, return_offsets_mapping=True)["offset_mapping"]
    start = text.index("1874")
    for (a, b), kind, keep in zip(offsets, whole.kinds, whole.keep):
        expect = ("special" if b <= a else "answer" if a < start + 4 and b > start
                  else "entity" if a < len("Ada Marlow") else "other")
        assert kind == expect and keep == (expect != "other")
    assert {"answer", "entity", "other"} <= set(whole.kinds)
    assert tokenize_sentence(tok, text, "1874", max_length=3) is None  # the answer starts too late
    assert len(tokenize_sentence(tok, text, "1874", max_length=len(cut.ids) + 1).ids) == len(cut.ids) + 1
    assert tokenize_sentence(tok, text, "1999") is None  # answer absent
    assert tokenize_sentence(tok, "1874 was the year.", "1874") is None  # nothing before the answer


def test_perturb_rates_follow_the_mask_heads(tiny):
    torch.manual_seed(0)
    para = LatentParaphraser(tiny.model.config.hidden_size, [0, 1])
    for net in para.nets.values():  # a mask head that always perturbs (layer 0) / never (layer 1)
        torch.nn.init.zeros_(net.mask.weight)
    torch.nn.init.constant_(para.nets["0"].mask.bias, 20.0)
    torch.nn.init.constant_(para.nets["1"].mask.bias, -20.0)
    rows = [([3, 4, 5, 6], ["special", "answer", "entity", "other"]), ([7, 8], ["other", "other"])]
    rates = perturb_rates(tiny.model, 0, para, rows, batch_size=1)
    assert rates["tokens"] == {"answer": 1, "entity": 1, "other": 3}
    assert rates["by_layer"][0] == pytest.approx({"answer": 1.0, "entity": 1.0, "other": 1.0})
    assert rates["by_layer"][1] == pytest.approx({"answer": 0.0, "entity": 0.0, "other": 0.0}, abs=1e-6)
    assert rates["mean"]["other"] == pytest.approx(0.5) and not para.record_mask and not para.mask_logits


def test_train_paraphraser_then_inject_with_it(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "para"
    args = ["train-paraphraser", "builtin", "--out", str(out), "--seed", "3", f"model={tiny_model_dir}",
            *SMALL_WORLD, *FAST]
    assert main(args) == 0
    meta = json.loads((out / "paraphraser.json").read_text())
    assert meta["training"]["command"] == "kinject " + " ".join(args)
    assert meta["training"]["seed"] == 3 and meta["layers"] == [0] and meta["kl_layers"] == [1, 2]
    assert meta["training"]["sentences"] == 16 and len(meta["training"]["epochs"]) == 2
    assert all(math.isfinite(x) for x in meta["training"]["step_losses"])
    rates = meta["perturb_rates"]
    assert rates["on"] == "its 16 training sentences, whole" and set(rates["mean"]) == {"answer", "entity", "other"}
    assert all(0 <= r <= 1 for r in rates["mean"].values()) and rates["tokens"]["answer"] > 0
    assert "learned mask on its 16 training sentences, whole: perturbed: answer" in capsys.readouterr().out
    para = load_paraphraser(out)
    assert not any(p.requires_grad for p in para.parameters())
    assert main(args) == 2 and "already exists" in capsys.readouterr().err  # never overwritten
    # the cached targets are reused: a second run into another directory gives the same first loss
    again = tmp_path / "para2"
    assert main([*args[:3], str(again), *args[4:]]) == 0
    assert json.loads((again / "paraphraser.json").read_text())["training"]["step_losses"] == \
        meta["training"]["step_losses"]
    # the mask heads' own rate leaves the noise networks' training untouched (disjoint parameters)
    fast_mask = tmp_path / "para-mask-lr"
    assert main([*args[:3], str(fast_mask), *args[4:], "lapael.mask_lr=0.1"]) == 0
    base, fast = para.state_dict(), load_paraphraser(fast_mask).state_dict()
    assert all(torch.equal(base[k], fast[k]) for k in base if ".mask." not in k)
    assert any(not torch.equal(base[k], fast[k]) for k in base if ".mask." in k)
    model_out = tmp_path / "model"
    assert main(["inject", "--method", "lapael", "--out", str(model_out), f"model={tiny_model_dir}",
                 f"lapael.paraphraser={out}", "train.epochs=1", "train.progress=false", *SMALL_WORLD]) == 0
    assert "lapael (seed 0)" in capsys.readouterr().out and (model_out / "config.json").is_file()
    run = tmp_path / "oracle-run"  # the oracle mask, in a bench: the cell names the paraphraser and its cost
    assert main(["bench", "--methods", "lapael", "--out", str(run), f"model={tiny_model_dir}",
                 f"lapael.paraphraser={out}", "train.epochs=1", "train.progress=false", "lapael.mask=oracle",
                 "eval.limit=2", "eval.max_new_tokens=2", "eval.cloze_max_new_tokens=2", "eval.progress=false",
                 *SMALL_WORLD]) == 0
    info = json.loads((run / "cells" / "lapael-seed0.json").read_text())["info"]
    assert info["mask"] == "oracle" and info["paraphraser"] == str(out)
    assert info["paraphraser_train_seconds"] == meta["training"]["train_seconds"] > 0


def test_paraphraser_faults_are_one_line_errors(tmp_path, tiny_model_dir, tiny, capsys):
    with pytest.raises(UserError, match="no such directory"):
        load_paraphraser(tmp_path / "missing")
    with pytest.raises(UserError, match=r"no paraphraser is shipped for model .other.*train-paraphraser"):
        resolve_paraphraser("auto", "other")
    para = LatentParaphraser(48, [0])
    para.save(tmp_path / "wide")
    with pytest.raises(UserError, match="hidden size 48"):
        load_paraphraser(tmp_path / "wide").check_fits(tiny.model.config.hidden_size, 2, "lapael.paraphraser")
    weights = tmp_path / "wide" / "paraphraser.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(UserError, match="checksum"):
        load_paraphraser(tmp_path / "wide")
    code = main(["inject", "--method", "lapael", "--out", str(tmp_path / "m"), f"model={tiny_model_dir}",
                 f"lapael.paraphraser={tmp_path / 'nope'}", *SMALL_WORLD])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "nope" in err and not (tmp_path / "m").exists()


def test_train_paraphraser_input_errors(tmp_path, tiny_model_dir, capsys):
    bad = tmp_path / "facts.jsonl"
    bad.write_text('{"text": "Ada was born in 1874.", "answer": "1874", "paraphrases": ["x"]}\n'
                   '{"text": "Bo hails from Lund.", "answer": "Lund"}\n')
    assert main(["train-paraphraser", str(bad), "--out", str(tmp_path / "p"), f"model={tiny_model_dir}"]) == 2
    assert f"{bad}:2: missing field 'paraphrases'" in capsys.readouterr().err
    assert main(["train-paraphraser", str(tmp_path / "none"), "--out", str(tmp_path / "p")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    assert main(["train-paraphraser", "builtin", "--out", str(tmp_path / "p"), "lapael.copies=1"]) == 2
    assert "lapael.copies" in capsys.readouterr().err
    # a JSONL whose paraphrases never contain the answer leaves nothing to train on
    bad.write_text('{"text": "Ada was born in 1874.", "answer": "1874", "paraphrases": ["a", "b"]}\n')
    assert main(["train-paraphraser", str(bad), "--out", str(tmp_path / "p"), f"model={tiny_model_dir}"]) == 2
    assert "no usable training sentences" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_the_oracle_mask_keeps_marked_tokens_and_perturbs_others_at_the_ratio(tiny):
    from kinject.training.trainer import Marked, _Collator, training_rows

    text = Marked.of("Ada Marlow was born in 1874 in Velmora.", ["Ada Marlow", "1874", ""])
    assert [text.text[a:b] for a, b in text.keep] == ["Ada Marlow", "1874"]
    (row,) = training_rows(tiny.tokenizer, [text], 64)
    pieces = [tiny.tokenizer.decode([t]) for t, k in zip(row["input_ids"], row["keep_tokens"], strict=True) if k]
    assert "".join(pieces).replace(" ", "") == "AdaMarlow1874"
    batch = _Collator(tiny.tokenizer.pad_token_id, copies=2)([row, {**row, "keep_tokens": [0] * len(row["input_ids"])}])
    assert batch["keep_tokens"].shape == batch["input_ids"].shape and batch["keep_tokens"][0].sum() > 0
    torch.manual_seed(0)
    para = LatentParaphraser(16, [0])
    h = torch.randn(1, 6, 16)
    marked = torch.tensor([[True, True, False, False, False, False]])
    para.oracle_ratio = 1.0
    out = para.perturb(h, 0, {"keep_tokens": marked})
    assert torch.equal(out[:, :2], h[:, :2]) and not torch.isclose(out[:, 2:], h[:, 2:]).all(dim=-1).any()
    para.oracle_ratio = 0.0
    assert torch.equal(para.perturb(h, 0, {"keep_tokens": marked}), h)


def test_the_oracle_mask_needs_a_corpus_with_facts(tmp_path, tiny_model_dir, capsys):
    docs, probes = tmp_path / "d.jsonl", tmp_path / "p.jsonl"
    docs.write_text(json.dumps({"id": "d1", "text": "Ada Marlow was born in 1874."}) + "\n")
    probes.write_text(json.dumps({"id": "p1", "kind": "qa", "question": "When?", "answers": ["1874"]}) + "\n")
    code = main(["bench", "--out", str(tmp_path / "run"), "--methods", "lapael", "lapael.mask=oracle",
                 "data.source=jsonl", f"data.path={docs}", f"data.probes={probes}", f"model={tiny_model_dir}"])
    assert code == 2 and "lapael.mask=oracle: corpus 'jsonl:d.jsonl' has no facts" in capsys.readouterr().err
