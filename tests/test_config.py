"""Config validation: defaults filled, typos and wrong types stopped with the key's name."""

import pytest
import yaml

from modeflow.config import load_config, validate_config
from modeflow.common.errors import ConfigError


def test_default_config_is_valid_and_filled(repo):
    cfg = load_config(repo / "config" / "config.yaml")
    assert cfg["pool"]["source"] == "demo"
    assert cfg["embed"]["checkpoint"] is None  # default filled in
    assert cfg["pool"]["url_list"]["url_col"] == "url"


def test_empty_config_gets_every_default():
    cfg = validate_config({})
    assert cfg["download"]["shard_size"] == 1000
    assert cfg["pool"]["demo"]["domains"] == ["shapes", "digits", "textures", "arrows"]


def test_typo_names_the_key_and_suggests():
    with pytest.raises(ConfigError) as err:
        validate_config({"download": {"shard_sise": 10}})
    msg = str(err.value)
    assert "download.shard_sise" in msg and "did you mean 'shard_size'" in msg


def test_top_level_typo():
    with pytest.raises(ConfigError, match="unknown config key 'sed'.*did you mean 'seed'"):
        validate_config({"sed": 1})


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match="config key 'embed.batch_size'"):
        validate_config({"embed": {"batch_size": "big"}})


def test_bad_enum_names_the_key():
    with pytest.raises(ConfigError, match="config key 'pool.source'"):
        validate_config({"pool": {"source": "ftp"}})


def test_source_requires_its_path():
    with pytest.raises(ConfigError, match="pool.url_list.path.*required"):
        validate_config({"pool": {"source": "url_list"}})


def test_load_config_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"embed": {"devise": "cpu"}}))
    with pytest.raises(ConfigError, match=str(path)):
        load_config(path)


def test_validation_does_not_mutate_input():
    raw = {"seed": 3}
    validate_config(raw)
    assert raw == {"seed": 3}


def test_config_readme_is_rendered_from_the_schema(repo):
    from modeflow.config import schema_markdown

    assert (repo / "config" / "README.md").read_text() == schema_markdown(), (
        "config/README.md is stale: run `modeflow config-docs > config/README.md`"
    )
