from pathlib import Path

import pytest
import yaml

from egsynth.config import ModelConfig, Params, ParamsError, load_params

REPO = Path(__file__).resolve().parents[1]
PRESETS = [REPO / "params.yaml", REPO / "configs" / "smoke.yaml", REPO / "configs" / "paper.yaml"]


def write_params(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_every_preset_validates_whole(preset):
    assert isinstance(load_params(preset), Params)


def test_presets_list_every_key_of_the_schema():
    """A preset is a whole params file: a default filled in silently would hide a choice."""
    for preset in PRESETS:
        raw = yaml.safe_load(preset.read_text())
        assert set(raw) == set(Params.model_fields), preset
        for section, values in raw.items():
            if isinstance(values, dict):
                assert set(values) == set(Params.model_fields[section].annotation.model_fields), (preset, section)


def test_config_rejects_unknown_key_and_names_it(tmp_path):
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["scenes"]["num_trian"] = 3
    path = write_params(tmp_path, raw)
    with pytest.raises(ParamsError) as error:
        load_params(path)
    message = str(error.value)
    assert "scenes.num_trian" in message and str(path) in message
    assert "num_train" in message  # what was expected
    assert "\n" not in message


def test_config_rejects_unknown_section(tmp_path):
    with pytest.raises(ParamsError, match="unknown key 'scnes'"):
        load_params(write_params(tmp_path, {"scnes": {}}))


def test_config_rejects_mistyped_value_and_names_key(tmp_path):
    with pytest.raises(ParamsError, match=r"key 'scenes\.num_val'.*'many'"):
        load_params(write_params(tmp_path, {"scenes": {"num_val": "many"}}))


def test_config_rejects_literal_outside_its_choices(tmp_path):
    with pytest.raises(ParamsError, match=r"filter\.on_invalid"):
        load_params(write_params(tmp_path, {"filter": {"on_invalid": "ignore"}}))


def test_coco_stuff_source_requires_a_root(tmp_path):
    with pytest.raises(ParamsError, match="data.root is required"):
        load_params(write_params(tmp_path, {"data": {"source": "coco_stuff"}}))


def test_model_needs_one_k_per_scale():
    with pytest.raises(ValueError, match="one K per scale"):
        ModelConfig(num_scales=4, attention_maps=(8, 16))


def test_params_are_frozen():
    params = load_params(REPO / "configs" / "smoke.yaml")
    with pytest.raises(ValueError):
        params.scenes.seed = 1


def test_missing_and_broken_files_name_the_file(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("scenes: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(broken)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("train:\n  batch_size: true\n", "key 'train.batch_size': Input should be a valid integer (got True)"),
        ("train:\n  lr: '0.1'\n", "key 'train.lr': Input should be a valid number"),
        ("train:\n  lr: 0.1\n  lr: 0.2\n", 'line 3: found duplicate key "lr"'),
        ("train: {}\ntrain: {}\n", 'line 2: found duplicate key "train"'),
    ],
)
def test_config_refuses_a_value_of_another_type_and_a_key_given_twice(tmp_path, text, says):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError) as error:
        load_params(path)
    assert str(error.value).startswith(f"{path}: ") and says in str(error.value) and "\n" not in str(error.value)


def test_config_reads_numbers_as_dvc_does(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 1e-3\n  betas: [0.5, 1]\nmodel:\n  num_scales: 1\n  attention_maps: [4, 4]\n")
    params = load_params(path)
    assert params.train.lr == 0.001 and params.train.betas == (0.5, 1.0) and params.model.attention_maps == (4, 4)


def test_attention_classes_need_distinct_names_a_map_each_and_a_weight():
    base = {"num_scales": 2, "attention_maps": [4, 3, 4], "attention_labels": True, "attention_label_init": 6.0}
    assert ModelConfig(**base, attention_classes=["sky", "sea", "grass"]).attention_classes == ["sky", "sea", "grass"]
    with pytest.raises(ValueError, match="names a class twice"):
        ModelConfig(**base, attention_classes=["sky", "sky"])
    with pytest.raises(ValueError, match="more than the 3 maps"):
        ModelConfig(**base, attention_classes=["sky", "sea", "grass", "tree"])
    with pytest.raises(ValueError, match="attention_label_init > 0 at every scale"):
        ModelConfig(**base | {"attention_label_init": [6.0, 0.0, 6.0]}, attention_classes=["sky"])


def test_attention_label_init_is_one_value_or_one_per_scale():
    base = {"num_scales": 2, "attention_maps": [4, 4, 4], "attention_labels": True}
    assert ModelConfig(**base, attention_label_init=3.0).attention_label_inits == [3.0, 3.0, 3.0]
    assert ModelConfig(**base, attention_label_init=[3.0, 3.0, 0.0]).attention_label_inits == [3.0, 3.0, 0.0]
    with pytest.raises(ValueError, match="one value per scale 0..2"):
        ModelConfig(**base, attention_label_init=[3.0, 0.0])
    with pytest.raises(ValueError, match="at least 0"):
        ModelConfig(**base, attention_label_init=[3.0, -1.0, 0.0])
    with pytest.raises(ValueError, match="needs model.attention_labels"):
        ModelConfig(**base | {"attention_labels": False}, attention_label_init=[0.0, 0.0, 1.0])
