from pathlib import Path

import pytest

from kinject.config import RunConfig, dump_config, load_config
from kinject.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def test_defaults_and_overrides():
    cfg = load_config(None, ["train.lr=3e-4", "methods=[base,ft]", "data.limit=10", "eval.kinds=qa,mcq",
                             "data.builtin.test_people=3", "train.epochs=2"])
    assert cfg.train.lr == 3e-4 and cfg.methods == ["base", "ft"] and cfg.data.limit == 10
    assert cfg.eval.kinds == ["qa", "mcq"] and cfg.data.builtin.test_people == 3
    assert cfg.train.epochs == 2.0 and isinstance(cfg.train.epochs, float)


def test_yaml_file_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 0.001\n  mode: lora\nseeds: [1, 2]\n")
    cfg = load_config(f, ["train.lr=0.002"])
    assert cfg.train.mode == "lora" and cfg.train.lr == 0.002 and cfg.seeds == [1, 2]


def test_shipped_default_config_matches_the_code_defaults():
    assert load_config(REPO / "configs" / "default.yaml") == RunConfig()


def test_default_yaml_documents_every_config_key():
    import yaml

    def leaves(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict) and v:
                yield from leaves(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}"

    shipped = set(leaves(yaml.safe_load((REPO / "configs" / "default.yaml").read_text())))
    assert set(leaves(RunConfig().to_dict())) - shipped == set()


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads_and_names_known_methods(path):
    from kinject.methods import resolve_methods

    cfg = load_config(path)
    assert resolve_methods(cfg.methods)


@pytest.mark.parametrize("override, needle", [
    ("train.lrr=1", "unknown config key 'train.lrr'"),
    ("nope=1", "unknown config key 'nope'"),
    ("train.lr=fast", "config key 'train.lr': expected float"),
    ("data.limit=[1]", "config key 'data.limit'"),
    ("train=3", "is a section"),
    ("novalue", "not key=value"),
])
def test_bad_keys_and_values_name_the_key(override, needle):
    with pytest.raises(UserError, match=needle.replace("[", r"\[")):
        load_config(None, [override])


def test_bad_yaml_file_names_the_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("train:\n  lr: [1,\n")
    with pytest.raises(UserError, match=r"bad\.yaml:"):
        load_config(f)
    f.write_text("train:\n  bogus: 1\n")
    with pytest.raises(UserError, match=r"bad.yaml: unknown config key 'train.bogus'"):
        load_config(f)


def test_dump_round_trips(tmp_path):
    cfg = load_config(None, ["train.mode=subset", "train.layers=5:"])
    f = tmp_path / "c.yaml"
    f.write_text(dump_config(cfg))
    assert load_config(f) == cfg
