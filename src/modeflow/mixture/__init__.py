"""Using a trained mixture outside the DAG: load the experts, the cluster model and the routing
encoder from a finished results directory (`Mixture.load`), route and classify or retrieve with
them exactly as the ensemble stage does, and gather a DataComp-style submission bundle.
"""

from .load import Mixture

__all__ = ["Mixture"]
