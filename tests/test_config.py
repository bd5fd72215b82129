"""Config validation and resolution: defaults filled, typos and wrong types stopped with the key's
name, names that refer to each other and the files a config names checked before any job, and one
resolved spelling of every setting."""

import re
import shutil
import tomllib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO, TINY_CONFIG, run_snakemake
from modeflow.cli import main as cli_main
from modeflow.common.errors import ConfigError, InputDataError
from modeflow.config import resolve
from modeflow.config.canonical import canonical
from modeflow.config.files import read_config_file
from modeflow.config.schema import load_schema, validate_config

DEMO_CONFIG = REPO / "config" / "config.yaml"


def demo_config() -> dict:
    return yaml.safe_load(DEMO_CONFIG.read_text())


# --- the schema ---------------------------------------------------------------------------------


def test_default_config_is_valid_and_filled():
    cfg = validate_config(read_config_file(DEMO_CONFIG))
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


def test_validation_does_not_mutate_input():
    raw = {"seed": 3}
    validate_config(raw)
    assert raw == {"seed": 3}


def test_schema_is_package_data():
    schema = load_schema()
    assert schema["properties"]["pool"]["properties"]["source"]["default"] == "demo"
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "config/config.schema.yaml" in package_data["modeflow"]


def test_config_readme_is_rendered_from_the_schema():
    from modeflow.config.docs import schema_markdown

    assert (REPO / "config" / "README.md").read_text() == schema_markdown(), (
        "config/README.md is stale: run `modeflow config-docs > config/README.md`"
    )


# --- reading a config file ----------------------------------------------------------------------


def test_missing_config_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as err:
        read_config_file(tmp_path / "nope.yaml")
    assert str(err.value) == f"{tmp_path / 'nope.yaml'}: config file not found"


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("seed: 0\npool:\n  source: [demo\n")
    with pytest.raises(ConfigError) as err:
        read_config_file(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:4:1: not valid YAML") and "\n" not in msg


def test_bad_indentation_names_its_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("pool:\n  source: demo\n    demo: {}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:3:")):
        read_config_file(path)


def test_config_file_must_hold_a_mapping(tmp_path):
    (tmp_path / "list.yaml").write_text("- seed\n")
    with pytest.raises(ConfigError, match="must be a mapping of keys, got a list"):
        read_config_file(tmp_path / "list.yaml")
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    assert read_config_file(tmp_path / "empty.yaml") == {}


@pytest.mark.parametrize("content", [None, "pool: {source: [demo\n"])
def test_check_config_file_errors_are_one_line(tmp_path, capsys, content):
    path = tmp_path / "c.yaml"
    if content is not None:
        path.write_text(content)
    assert cli_main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"modeflow: error: {path}") and err.count("\n") == 1, err


def test_check_config_names_the_file_and_key(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("filter: {use: nope}\n")
    assert cli_main(["check-config", str(path)]) == 2
    assert capsys.readouterr().err == f"modeflow: error: {path}: filter.use: 'nope' is not a subset; defined: ['basic_filter', 'no_filter']\n"


def test_check_config_accepts_the_demo(capsys):
    assert cli_main(["check-config", str(DEMO_CONFIG)]) == 0
    assert "valid; source=demo, 2 shards" in capsys.readouterr().out


# --- resolution ---------------------------------------------------------------------------------


def test_demo_resolves_to_its_experts_models_and_targets():
    s = resolve(demo_config())
    assert s.experts == ["00", "01", "02", "03"]
    assert s.models == ["seed", "expert_00", "expert_01", "expert_02", "expert_03", "dense",
                        "random_00", "random_01", "random_02", "random_03", "dense_1x"]  # + the control arms
    assert list(s.subsets) == ["no_filter", "basic_filter", "dedup", "basic_dedup", "clip_score", "basic_dedup_clip"]
    assert (s.filter_use, s.seed_subset) == ("basic_dedup_clip", "basic_dedup")
    assert s.train["model"] == "modeflow-tiny-resnet" and s.train["seed"] == 0
    assert list(s.tasks) == ["shapes", "digits", "textures", "arrows", "mixed", "retrieval"]
    assert s.task_inputs == ["results/demo"]
    assert s.cluster_model["fine_centers"] == "results/cluster/fine_centers.npy"
    targets = s.final_targets
    assert targets[:3] == ["results/embed/00000.npy", "results/embed/00001.npy", "results/download/summary.json"]
    assert "results/experts/03" in targets and "results/eval/dense" in targets
    assert targets[-2:] == ["results/ensemble/demo_checks.json", "results/report/health.json"]


def test_dense_off_drops_the_dense_model():
    cfg = demo_config()
    cfg["train"]["dense"] = False
    cfg["train"]["control_arms"] = []
    assert resolve(cfg).models[-1] == "expert_03"


def _reordered(value):
    """The same config with every mapping's keys in reverse order."""
    if isinstance(value, dict):
        return {key: _reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(item) for item in value]
    return value


def test_reordered_and_explicit_default_configs_resolve_to_the_same_params():
    """What the rule params are built from is spelled one way: a config edit that changes nothing
    (keys reordered, defaults written out) reruns no job (Snakemake compares params by repr)."""
    raw = demo_config()
    explicit = _reordered(validate_config(raw))  # every default written out, keys in another order
    explicit["filter"]["subsets"] = raw["filter"]["subsets"]  # their order is the reports' order
    a, b = resolve(raw), resolve(explicit)
    assert repr(a) == repr(b)
    assert a.final_targets == b.final_targets


def test_a_preset_value_written_out_resolves_to_the_same_recipe():
    raw = demo_config()
    preset = resolve(raw).train
    raw["train"].update(lr=preset["lr"], warmup=preset["warmup"], batch_size=preset["batch_size"])
    assert repr(resolve(raw).train) == repr(preset)


def test_config_dicts_are_resolved_with_sorted_keys():
    s = resolve(_reordered(demo_config()))
    for section in ("pool", "download", "embed", "cluster", "reshard"):
        assert repr(s.config[section]) == repr(canonical(s.config[section])), section
    assert list(s.train) == sorted(s.train)
    assert list(s.config["filter"]["basic"]) == sorted(s.config["filter"]["basic"])


def test_subsets_keep_their_order_and_specs_are_canonical():
    cfg = demo_config()
    cfg["filter"]["subsets"]["clip_score"] = {"kind": "clip_score", "fraction": 0.9}
    s = resolve(cfg)
    assert list(s.subsets)[-2:] == ["clip_score", "basic_dedup_clip"]
    assert list(s.subsets["clip_score"]) == ["fraction", "kind"]
    assert list(s.subsets["basic_dedup"]) == ["kind", "of"]


# --- names that refer to each other --------------------------------------------------------------


def _set(cfg: dict, key: str, value) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        cfg = cfg.setdefault(part, {})
    cfg[leaf] = value


@pytest.mark.parametrize("edits, message", [
    ({"filter.use": "nope"}, "filter.use: 'nope' is not a subset"),
    ({"filter.subsets.x": {"kind": "union", "of": ["basic_filter", "ghost"]}},
     r"filter.subsets.x.of: unknown subset\(s\) \['ghost'\]"),
    ({"train.seed_subset": "ghost"}, "train.seed_subset: 'ghost' is not a subset"),
    ({"train.seed_subset": "basic_dedup_clip"}, "train.seed_subset: 'basic_dedup_clip' needs clip scores"),
    ({"cluster.num_experts": 8, "cluster.num_fine": 4}, r"cluster.num_experts \(8\) is larger than cluster.num_fine"),
    ({"pool.demo.num_samples": 100, "cluster.num_fine": 200}, r"cluster.num_fine \(200\) is larger than the 100 embeddings"),
    ({"cluster.num_fine": 500, "cluster.sample_max": 400}, r"cluster.num_fine \(500\) is larger than the 400"),
])
def test_inconsistent_names_and_sizes_are_named(edits, message):
    cfg = demo_config()
    for key, value in edits.items():
        _set(cfg, key, value)
    with pytest.raises(ConfigError, match=message):
        resolve(cfg)


def test_demo_tasks_need_the_demo_pool(tmp_path):
    (tmp_path / "00000.tar").write_bytes(b"")
    with pytest.raises(ConfigError, match="evaluate.tasks: 'demo' needs pool.source: demo"):
        resolve({"pool": {"source": "shards", "shards": {"path": str(tmp_path)}}})


# --- the files a config names --------------------------------------------------------------------


def classification_task(root, name="cls", *, templates=True, shards=True):
    task = root / name
    (task / "test").mkdir(parents=True)
    (task / "classnames.txt").write_text("cat\ndog\n")
    if templates:
        (task / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\n")
    if shards:
        (task / "test" / "0.tar").write_bytes(b"")
    return task


def _without(path, dataset_type):
    """The task directory of `path`, that file removed and its dataset type written out."""
    path.unlink()
    (path.parent / "dataset_type.txt").write_text(dataset_type + "\n")
    return path.parent


def retrieval_task(root, name="ret"):
    task = root / name
    (task / "test").mkdir(parents=True)
    (task / "dataset_type.txt").write_text("retrieval\n")
    (task / "test" / "0.tar").write_bytes(b"")
    return task


def shards_config(tmp_path, tasks) -> dict:
    shards = tmp_path / "shards"
    shards.mkdir(exist_ok=True)
    (shards / "00000.tar").write_bytes(b"")
    return {"pool": {"source": "shards", "shards": {"path": str(shards)}},
            "evaluate": {"tasks": [str(t) for t in tasks]}}


def test_complete_task_directories_resolve(tmp_path):
    cls, ret = classification_task(tmp_path), retrieval_task(tmp_path)
    s = resolve(shards_config(tmp_path, [cls, ret]))
    assert s.tasks == {"cls": str(cls), "ret": str(ret)} and s.task_inputs == [str(cls), str(ret)]
    assert s.final_targets[0].startswith("results/embed/") and "results/download/summary.json" not in s.final_targets


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "missing", "task directory .*missing does not exist"),
    (lambda root: classification_task(root, templates=False), ".*cls has no zeroshot_classification_templates.txt"),
    (lambda root: classification_task(root, shards=False), ".*cls: no .tar shards in .*test"),
    (lambda root: _without(classification_task(root) / "classnames.txt", "classification"), ".*cls has no classnames.txt"),
])
def test_incomplete_task_directory_stops_the_start(tmp_path, make, message):
    cfg = shards_config(tmp_path, [make(tmp_path / "tasks")])
    (tmp_path / "tasks").mkdir(exist_ok=True)
    with pytest.raises(ConfigError, match="evaluate.tasks: " + message):
        resolve(cfg)
    resolve(cfg, check_files=False)  # jobs, which re-parse the workflow, do not read them again


def test_two_tasks_with_one_name_are_refused(tmp_path):
    a, b = classification_task(tmp_path / "a"), classification_task(tmp_path / "b")
    with pytest.raises(ConfigError, match="would both be task 'cls'"):
        resolve(shards_config(tmp_path, [a, b]))


def url_list_config(path, **url_list) -> dict:
    task = path.parent / "cls"
    if not task.exists():
        classification_task(path.parent)
    return {"pool": {"source": "url_list", "url_list": {"path": str(path), **url_list}},
            "cluster": {"num_experts": 2, "num_fine": 2}, "evaluate": {"tasks": [str(task)]}}


def test_url_list_columns_are_checked_from_the_header(tmp_path):
    csv = tmp_path / "u.csv"
    csv.write_text("link,text,lang\n" + "http://x/1.jpg,a cat,en\n" * 5)
    with pytest.raises(ConfigError, match=r"pool.url_list.url_col: .*u.csv has no column 'url'; its columns are \['link', 'text', 'lang'\]"):
        resolve(url_list_config(csv))
    with pytest.raises(ConfigError, match="pool.url_list.caption_col: .* no column 'caption'"):
        resolve(url_list_config(csv, url_col="link"))
    with pytest.raises(ConfigError, match=r"pool.url_list.extra_cols: .* no column\(s\) \['country'\]"):
        resolve(url_list_config(csv, url_col="link", caption_col="text", extra_cols=["lang", "country"]))
    assert resolve(url_list_config(csv, url_col="link", caption_col="text", extra_cols=["lang"])).plan.num_rows == 5


def test_parquet_url_list_columns_come_from_its_schema(tmp_path):
    path = tmp_path / "u.parquet"
    pq.write_table(pa.table({"url": ["http://x/1.jpg"] * 4, "txt": ["a cat"] * 4}), path)
    with pytest.raises(ConfigError, match="pool.url_list.caption_col: .* no column 'caption'"):
        resolve(url_list_config(path))
    resolve(url_list_config(path, caption_col="txt"))


def test_image_folder_caption_file_columns_are_checked(tmp_path):
    (tmp_path / "captions.tsv").write_text("path\tcaption\n" + "a.jpg\ta cat\n" * 3)
    cfg = {"pool": {"source": "image_folder",
                    "image_folder": {"path": str(tmp_path), "captions": str(tmp_path / "captions.tsv")}},
           "cluster": {"num_experts": 1, "num_fine": 1},
           "evaluate": {"tasks": [str(classification_task(tmp_path))]}}
    with pytest.raises(ConfigError, match="pool.image_folder.image_col: .* no column 'file'"):
        resolve(cfg)


def test_missing_url_list_is_named(tmp_path):
    with pytest.raises(InputDataError, match="nope.csv"):
        resolve(url_list_config(tmp_path / "nope.csv"))


# --- the workflow's own files --------------------------------------------------------------------


def test_test_config_is_the_tiny_demo():
    """.test/config/config.yaml (for `snakemake --directory .test`) is what the e2e tests run."""
    assert yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text()) == TINY_CONFIG


def test_conda_env_pins_this_version_of_the_package():
    env = yaml.safe_load((REPO / "workflow" / "envs" / "modeflow.yaml").read_text())
    pip = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert pip == [f"modeflow=={version}"]


def test_every_rule_uses_the_workflow_env():
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for env in re.findall(r"conda:\s*\n\s*\"([^\"]+)\"", smk.read_text()):
            assert (smk.parent / env).resolve() == REPO / "workflow" / "envs" / "modeflow.yaml", (smk, env)


# --- what snakemake's start does with a config (dry runs, seconds) --------------------------------


def job_counts(proc) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", proc.stdout + proc.stderr, re.M)}


def test_configfile_replaces_the_demo_config(tmp_path):
    """With --configfile, config/config.yaml (present in the working directory) is not merged in:
    the user's one subset stays one subset."""
    (tmp_path / "config").mkdir()
    shutil.copy(DEMO_CONFIG, tmp_path / "config" / "config.yaml")
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"filter": {"use": "basic_filter", "subsets": {"basic_filter": {"kind": "basic_filter"}}},
                                    "download": {"shard_size": 6000}}))
    counts = job_counts(run_snakemake(tmp_path, "-n", "--quiet", "rules", configfile=mine))
    assert counts["subset"] == 1 and counts["download"] == 2 and "clip_score" not in counts


def test_snakemake_start_names_a_malformed_default_config(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("seed: 0\npool: {source: demo\n")
    proc = run_snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "config/config.yaml:3:1: not valid YAML" in output, output[-2000:]


def test_snakemake_start_runs_the_same_checks(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"filter": {"use": "nope"}}))
    proc = run_snakemake(tmp_path, "-n", configfile=config, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "filter.use: 'nope' is not a subset" in output, output[-2000:]


def test_preset_values_reach_the_recipe_unless_the_user_set_them():
    """The schema's default `workers: 1` used to be passed on as if the user had set it, so no
    DataComp preset ever got its 4 data workers (issue 13)."""
    raw = demo_config()
    raw["train"]["preset"] = "small"
    raw["download"].pop("image_size")  # the demo's 32 px are too small for ViT-B-32
    assert resolve(raw, check_files=False).train["workers"] == 4
    raw["train"]["workers"] = 2
    assert resolve(raw, check_files=False).train["workers"] == 2
    assert resolve(demo_config()).train["workers"] == 1  # the demo's own preset value
    raw["train"].update(preset="xlarge", workers=None)
    assert resolve(raw, check_files=False).train["beta2"] == 0.95  # DataComp's scale_configs.py


def test_a_housekeeping_key_is_not_part_of_the_training_params():
    raw = demo_config()
    base = resolve(raw).train
    raw["train"]["keep_superseded_runs"] = 5
    assert repr(resolve(raw).train) == repr(base)  # changing it reruns no training job


def test_download_settings_follow_the_training_preset():
    """A ViT-B/32 run used to download 32-px letterboxed images whatever its preset (issue 13)."""
    raw = demo_config()
    for key in ("image_size", "resize_mode"):
        raw["download"].pop(key)
    demo = resolve(raw).config["download"]
    assert (demo["image_size"], demo["resize_mode"], demo["resize_only_if_bigger"]) == (32, "border", False)
    raw["train"]["preset"] = "small"
    datacomp = resolve(raw, check_files=False).config["download"]  # download_upstream.py's settings
    assert (datacomp["image_size"], datacomp["resize_mode"], datacomp["resize_only_if_bigger"]) == \
        (512, "keep_ratio_largest", True)
    assert (datacomp["encode_format"], datacomp["encode_quality"]) == ("jpg", 95)


def test_a_model_larger_than_the_downloaded_images_is_refused_naming_both_keys():
    raw = demo_config()
    raw["train"]["preset"] = "small"
    raw["download"]["image_size"] = 32
    with pytest.raises(ConfigError, match=r"download.image_size: 32 px .* train.model 'ViT-B-32' \(224 px\)"):
        resolve(raw, check_files=False)
    raw["download"]["allow_upscale"] = True
    settings = resolve(raw, check_files=False)
    assert "allow_upscale" not in settings.download_options  # toggling it reruns no download
