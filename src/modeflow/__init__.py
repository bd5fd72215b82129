"""modeflow: curate an image-text pool the DataComp way and train a Mixture of Data Experts (MoDE).

All logic lives in this package; the Snakemake rules under workflow/ are thin adapters around it.
"""

__version__ = "0.1.0"
