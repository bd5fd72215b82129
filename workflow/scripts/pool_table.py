"""Snakemake adapter: validate the pool source and write the canonical pool table (modeflow.pool.sources)."""
from pathlib import Path

from modeflow.common.atomic import write_json, write_parquet
from modeflow.common.joblog import job_log
from modeflow.pool.datacomp import pool_table
from modeflow.pool.sources import read_image_folder, read_url_list

pool = snakemake.params.pool
with job_log(snakemake.log[0]) as log:
    if pool["source"] == "demo":
        table, stats = read_url_list(
            str(Path(snakemake.input[0]) / "urls.parquet"), duplicate_uids=pool["duplicate_uids"]
        )
    elif pool["source"] == "url_list":
        opts = pool["url_list"]
        table, stats = read_url_list(
            opts["path"],
            fmt=opts["format"],
            url_col=opts["url_col"],
            caption_col=opts["caption_col"],
            uid_col=opts["uid_col"],
            extra_cols=opts["extra_cols"],
            duplicate_uids=pool["duplicate_uids"],
        )
    elif pool["source"] == "datacomp":  # a CommonPool to download: its metadata's uid, url and text
        table, stats = pool_table(pool["datacomp"]["metadata"], duplicate_uids=pool["duplicate_uids"])
    else:
        opts = pool["image_folder"]
        table, stats = read_image_folder(
            opts["path"],
            opts["captions"],
            image_col=opts["image_col"],
            caption_col=opts["caption_col"],
            duplicate_uids=pool["duplicate_uids"],
        )
    if stats.get("duplicates_dropped"):
        log.warning("dropped %d rows with duplicate uids (pool.duplicate_uids: drop)", stats["duplicates_dropped"])
    if stats.get("images_without_caption"):
        log.warning("%d image(s) in %s have no caption in %s and are not in the pool, e.g. %s",
                    stats["images_without_caption"], stats["image_folder"], pool["image_folder"]["captions"],
                    stats["images_without_caption_examples"])
    log.info("pool table: %d rows", table.num_rows)
    write_parquet(snakemake.output.table, table)
    write_json(snakemake.output.stats, stats)
