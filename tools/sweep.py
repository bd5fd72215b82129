"""A sweep of MoDE's levers over the demo: one workflow run per grid point and the claims table
per point (modeflow.ensemble.sweep).

    python tools/sweep.py --set train.seed_epochs=2,4,6,7 --out sweeps/seed_fraction
"""
import sys

from modeflow.ensemble.sweep import main

sys.exit(main())
