# modeflow's workflow is workflow/Snakefile (Snakemake's standard layout); this file lets
# `snakemake` run from the repository root. It includes the workflow as `include:` would, but keeps
# the workflow's `rule all` the default target (after an `include:`, Snakemake restores the
# including file's default target, which here would be none).
workflow.include("workflow/Snakefile", overwrite_default_target=True)
