"""The auto_export settings: layers from --config and --export-config, and their shapes."""

from __future__ import annotations

import pytest

from eval_framework.errors import ConfigError
from eval_framework.exporting import AutoExport, auto_export_settings


def test_export_config_destinations_replace_and_take_their_configs_along(tmp_path):
    block = {"destinations": ["local", "mlflow"], "configs": {"local": {"format": "csv"}, "mlflow": {"x": 1}}}
    layer = tmp_path / "export.yaml"
    layer.write_text("destinations: [local]\nconfigs: {local: {output_dir: out}}\n")
    auto = auto_export_settings(block, layer)
    assert auto == AutoExport(
        destinations=["local"], configs={"local": {"format": "csv", "output_dir": "out"}}
    )
    auto.check()  # mlflow's keys left with it: nothing to refuse


@pytest.mark.parametrize(
    ("block", "said"),
    [
        ({"destinations": ["local"], "configs": {"local": [1]}}, "configs.local must be a mapping of keys"),
        ({"destinations": ["local"], "configs": [1]}, "configs must be a mapping of destination names"),
        ({"destinations": []}, "destinations is empty"),
        ({"destinations": ["local"], "config": {}}, "unknown key 'config'"),
        ("local", "must be a mapping (destinations: [...]"),
    ],
)
def test_a_wrong_auto_export_block_is_refused_naming_what_is_wrong(block, said):
    with pytest.raises(ConfigError, match=said.replace("(", r"\(").replace("[", r"\[")):
        auto_export_settings(block, None)


def test_destinations_may_be_one_name_or_names_with_commas():
    assert auto_export_settings({"destinations": "local"}, None).destinations == ["local"]
    assert auto_export_settings({"destinations": "local, wandb"}, None).destinations == ["local", "wandb"]


def test_configs_for_a_destination_not_listed_are_refused_with_one_message():
    auto = auto_export_settings(
        {"destinations": ["local"], "configs": {"mlflow": {"tracking_uri": "x"}}}, None
    )
    with pytest.raises(ConfigError, match="configs has 'mlflow', which is not one of its destinations"):
        auto.check()


def test_an_export_config_file_with_keys_beside_its_block_is_refused(tmp_path):
    layer = tmp_path / "export.yaml"
    layer.write_text("auto_export: {destinations: [local]}\ndestinations: [mlflow]\n")
    with pytest.raises(ConfigError, match="has 'destinations' beside its auto_export block"):
        auto_export_settings(None, layer)
