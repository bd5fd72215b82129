# Shared set-up: config validation, the static shard plan, path helpers and input functions.
# Every job re-parses this file (clusters included), so it only does cheap work.
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

try:
    import modeflow  # noqa: F401  (installed by `make setup`)
except ImportError:  # running from a checkout without installing: use the source tree
    sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from modeflow.config import validate_config
from modeflow.errors import ModeflowError
from modeflow.plan import plan_shards

try:
    config.update(
        validate_config(config, Path(workflow.current_basedir) / "../schemas/config.schema.yaml")
    )
    PLAN = plan_shards(config)
except ModeflowError as exc:
    raise WorkflowError(str(exc)) from None

SOURCE = config["pool"]["source"]


wildcard_constraints:
    shard=r"[0-9A-Za-z-]+",


def R(path):
    """A path under the results directory."""
    return os.path.join(config["results_dir"], path)


def shard_file(shard, ext="tar"):
    """Where a pool shard lives: the user's directory for existing shards, else ours."""
    if SOURCE == "shards":
        return f"{config['pool']['shards']['path'].rstrip('/')}/{shard}.{ext}"
    return R(f"shards/{shard}.{ext}")


def pool_source_input(wildcards):
    """The file the pool table is built from, so a changed url list reruns the pool step."""
    if SOURCE == "demo":
        return R("demo")
    if SOURCE == "url_list":
        return config["pool"]["url_list"]["path"]
    return config["pool"]["image_folder"]["captions"]


def demo_root_input(wildcards):
    """The demo's image folder, which the download step serves over loopback HTTP."""
    return [R("demo")] if SOURCE == "demo" else []


def final_outputs():
    outputs = expand(R("embed/{shard}.npy"), shard=PLAN.shards)
    if SOURCE != "shards":
        outputs.append(R("download/summary.json"))
    return outputs
