"""The names of the ensemble's arms (the rows of its tables), one place for every stage that
writes or reads them: routing, combining, summaries and costs."""

ROUTING_VARIANTS = {"mode": "code", "mode_paper": "paper"}  # weighted arm -> routing formula
METHOD_ARMS = ("mode", "mode_paper", "uniform", "top1")
ORACLE = "oracle"  # the best single expert per task, chosen with the test labels: a reference
