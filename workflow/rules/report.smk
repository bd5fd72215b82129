# Run health (modeflow.report.health): every empty shard, dropped row and undersized training set
# of the run, counted and named in one report item. Reads the stages' own stats; changes nothing.

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
