# Filter stage: per-chunk sample attributes (language, caption length, image size, sha256), then
# DataComp baseline filters as named uid subsets (config filter.subsets) in DataComp's .npy format.


rule filter_attributes:
    input:
        chunk_input,
        uids=uid_table,
    output:
        R("filter/attributes/{chunk}.parquet"),
    params:
        parquets=lambda wc, input: chunk_files(wc, input, "parquet"),
    resources:
        mem_mb=2000,
    group:
        "filter"
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/filter/attributes/{chunk}.log"),
    benchmark:
        R("benchmarks/filter/attributes/{chunk}.tsv")
    script:
        "../scripts/filter_attributes.py"


rule clip_score:
    input:
        chunk_input,
        uids=uid_table,
        scorer=lambda wc: clip_scorer(wc.name)[1],
    output:
        R("filter/clip_scores/{name}/{chunk}.parquet"),
    wildcard_constraints:
        # scored here: a CommonPool's clip_score with `arch` reads its precomputed scores instead
        name=one_of(n for n, s in SUBSETS.items() if s["kind"] == "clip_score" and not from_metadata(s, SOURCE)),
    params:
        tars=chunk_tars,
        model=lambda wc: clip_scorer(wc.name)[0],
        batch_size=config["evaluate"]["batch_size"],
        device=config["evaluate"]["device"],
    threads: 2
    resources:
        mem_mb=4000,
        **({"gpu": 1} if config["evaluate"]["gpus"] else {}),
    group:
        "clip_score"
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/filter/clip_scores/{name}_{chunk}.log"),
    benchmark:
        R("benchmarks/filter/clip_scores/{name}_{chunk}.tsv")
    script:
        "../scripts/filter_clip_score.py"


rule subset:
    input:
        unpack(subset_input),
    output:
        npy=R("filter/subsets/{name}.npy"),
        stats=R("filter/subsets/{name}.json"),
    wildcard_constraints:
        name=one_of(SUBSETS),
    params:
        spec=lambda wc: SUBSETS[wc.name],
        basic=config["filter"]["basic"],
        # a DataComp baseline's CommonPool metadata directory (its parquets are the inputs), else None
        metadata=subset_metadata,
    resources:
        mem_mb=4000,
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/filter/subsets/{name}.log"),
    benchmark:
        R("benchmarks/filter/subsets/{name}.tsv")
    script:
        "../scripts/filter_subset.py"


rule filter_report:
    input:
        stats=expand(R("filter/subsets/{name}.json"), name=SUBSETS),
    output:
        summary=report(
            R("filter/summary.json"),
            caption="../report/filter_summary.rst",
            category="2. Curation",
            labels={"stage": "filter", "item": "summary"},
        ),
        funnel=report(
            R("filter/funnel.png"),
            caption="../report/filter_funnel.rst",
            category="2. Curation",
            labels={"stage": "filter", "item": "funnel"},
        ),
    params:
        names=list(SUBSETS),
        use=FILTER_USE,
    conda:
        "../envs/modeflow.yaml"
    log:
        R("logs/filter/report.log"),
    script:
        "../scripts/filter_report.py"



if SOURCE == "demo":

    rule filter_demo_scores:
        input:
            demo=R("demo"),
            attributes=expand(R("filter/attributes/{chunk}.parquet"), chunk=CHUNKS),
            subsets=expand(R("filter/subsets/{name}.npy"), name=SUBSETS),
        output:
            scores=report(
                R("filter/demo_scores.json"),
                caption="../report/filter_demo_scores.rst",
                category="2. Curation",
                labels={"stage": "filter", "item": "demo scores (json)"},
            ),
            plot=report(
                R("filter/demo_scores.png"),
                caption="../report/filter_demo_scores.rst",
                category="2. Curation",
                labels={"stage": "filter", "item": "demo scores"},
            ),
        params:
            ground_truth=lambda wc, input: os.path.join(input.demo, "ground_truth.parquet"),
            names=list(SUBSETS),
            basic_names=[n for n, s in SUBSETS.items() if s["kind"] == "basic_filter"],
        conda:
            "../envs/modeflow.yaml"
        log:
            R("logs/filter/demo_scores.log"),
        script:
            "../scripts/filter_demo_scores.py"
