# modeflow: curate an image-text pool the DataComp way, train a Mixture of Data Experts (MoDE).
# Rules live in workflow/rules/, logic in the modeflow package (src/modeflow/).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/pool.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/cluster.smk"
include: "workflow/rules/filter.smk"
include: "workflow/rules/reshard.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/ensemble.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
