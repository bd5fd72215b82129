# Run health (modeflow.report.health): every empty shard, dropped row and undersized training set
# of the run, counted and named in one report item. Reads the stages' own stats; changes nothing.
from types import SimpleNamespace


def health_inputs(wildcards):
    inputs = {
        "reshard_chunks": expand(R("reshard/index/{chunk}.json"), chunk=CHUNKS),
        "reshard_summary": R("reshard/summary.json"),
        # each model's training data directory (train_inputs), in MODELS' order
        "training_data": [train_inputs(SimpleNamespace(model=model))["data"] for model in MODELS],
    }
    if not SHARDS_DIR:  # existing shards have neither a download nor a pool table
        inputs |= {"download_summary": R("download/summary.json"), "pool_stats": R("pool/pool_stats.json")}
    return inputs


rule health_report:
    input:
        unpack(health_inputs),
    output:
        health=R("report/health.json"),
        table=report(
            R("report/health.html"),
            caption="../report/health.rst",
            category="0. Run health",
            labels={"stage": "all", "item": "warnings"},
        ),
    params:
        models=MODELS,
        global_batch=TRAIN["batch_size"],
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/health_report.log"),
    script:
        "../scripts/health_report.py"
