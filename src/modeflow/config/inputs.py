"""The files a config names, checked before any job runs: cheap reads only (a table's header, a
task directory's description files), so a wrong column name or an incomplete evaluation task stops
the run at start-up instead of hours in, when its stage is reached."""

from __future__ import annotations

from typing import Iterable, Mapping


from modeflow.common.errors import ConfigError, InputDataError
from modeflow.evaluate.tasks import load_task
from modeflow.pool.table import column_names


def check_inputs(cfg: dict, tasks: Mapping[str, str]) -> None:
    """The pool file has the columns the config names; every evaluation task directory is complete."""
    pool = cfg["pool"]
    if pool["source"] == "url_list":
        spec = pool["url_list"]
        _check_columns(spec["path"], spec["format"], "pool.url_list",
                       {"url_col": spec["url_col"], "caption_col": spec["caption_col"]}, spec["extra_cols"])
    elif pool["source"] == "image_folder":
        spec = pool["image_folder"]
        _check_columns(spec["captions"], "auto", "pool.image_folder",
                       {"image_col": spec["image_col"], "caption_col": spec["caption_col"]}, [])
    elif pool["source"] == "datacomp":  # the columns and npz arrays the chosen filters and embed read
        from modeflow.filter.datacomp_baselines import check_commonpool

        check_commonpool(cfg)
    if cfg["evaluate"]["tasks"] == "datacomp":
        _check_datacomp_tasks(cfg["evaluate"]["datacomp_root"])
    if cfg["evaluate"]["tasks"] != "demo":  # the demo's tasks are written by the workflow itself
        check_task_dirs(tasks.values(), "evaluate.tasks")


def check_task_dirs(paths: Iterable[str], key: str) -> None:
    """Every task directory is complete (modeflow.evaluate.tasks.load_task); an error names `key`."""
    for path in paths:
        try:
            load_task(path)
        except InputDataError as exc:
            raise ConfigError(f"{key}: {exc}") from None


def _check_datacomp_tasks(root: str) -> None:
    """Every one of DataComp's task directories is under root; else one error listing all missing."""
    from modeflow.evaluate.main_metric import DATACOMP_TASKS, missing_datacomp_tasks

    missing = missing_datacomp_tasks(root)
    if missing:
        raise ConfigError(f"evaluate.tasks datacomp: {len(missing)} of DataComp's {len(DATACOMP_TASKS)} evaluation "
                          f"task directories are missing under evaluate.datacomp_root {root}: "
                          f"{', '.join(missing)} (clip_benchmark wds directories, named as DataComp's "
                          "download_evalsets.py names them)")


def _check_columns(path: str, fmt: str, section: str, named: dict[str, str], extra_cols: list[str]) -> None:
    columns = column_names(path, fmt)
    for key, column in named.items():
        if column not in columns:
            raise ConfigError(f"{section}.{key}: {path} has no column {column!r}; its columns are {columns}")
    missing = [c for c in extra_cols if c not in columns]
    if missing:
        raise ConfigError(f"{section}.extra_cols: {path} has no column(s) {missing}; its columns are {columns}")


