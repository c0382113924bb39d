import dataclasses
import typing
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


def _sections(obj, prefix=""):
    yield prefix, obj
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _sections(value, f"{prefix}.{f.name}".lstrip("."))


def test_every_numeric_key_has_a_range_check():
    """A count, size or rate with no CHECKS entry would take any value (-1, nan) silently."""
    unchecked = []
    for prefix, section in _sections(RunConfig()):
        hints = typing.get_type_hints(type(section))
        checks = getattr(type(section), "CHECKS", {})
        for f in dataclasses.fields(section):
            arms = typing.get_args(hints[f.name]) or (hints[f.name],)
            if any(a in (int, float) for a in arms) and f.name not in checks:
                unchecked.append(f"{prefix}.{f.name}")
    assert unchecked == []


@pytest.mark.parametrize("override, named", [
    ("train.lr=-1", "'train.lr': -1.0 must be a finite number > 0"),
    ("train.lr=nan", "'train.lr': nan must be"),
    ("train.lr=.inf", "'train.lr': inf must be"),
    ("train.batch_size=0", "'train.batch_size': 0 must be >= 1"),
    ("seeds=[-1]", "'seeds': [-1] must be in [0, 4294967296)"),
    ("eval.bf16=maybe", "'eval.bf16': 'maybe' is not one of auto, true, false"),
    ("train.layers=abc", "'train.layers': 'abc' is not a slice"),
    ("data.limit=0", "'data.limit': 0 must be >= 1"),
    ("model_dtype=int8", "'model_dtype': 'int8' is not one of auto"),
])
def test_values_out_of_range_are_refused_when_the_config_loads(override, named):
    with pytest.raises(UserError) as exc:
        load_config(None, [override])
    assert named in str(exc.value)


def test_null_passes_an_optional_key_and_a_bool_is_not_a_number():
    assert load_config(None, ["data.limit=null", "eval.bf16=false"]).eval.bf16 is False
    with pytest.raises(UserError, match=r"'train\.batch_size': expected int"):
        load_config(None, ["train.batch_size=true"])


def test_a_renamed_key_is_still_read_as_its_new_name(tmp_path):
    old = tmp_path / "old.yaml"  # as a run directory written before the rename holds it
    old.write_text("retrieval:\n  ivf_threshold: 7\n")
    assert load_config(old).retrieval.ann_threshold == 7
    assert load_config(None, ["retrieval.ivf_threshold=9"]).retrieval.ann_threshold == 9
    assert "ivf_threshold" not in dump_config(load_config(old))
