"""The GPU scale point: the whole DAG with the control arms on 10x the demo pool and a bigger image
tower on one GPU, and its claims table with the hardware named (modeflow.ensemble.scale_point).

    python tools/gpu_scale_point.py --size gpu --out /tmp/scale      # on a GPU machine
    python tools/gpu_scale_point.py --size tiny --out /tmp/scale     # the same script on a CPU
"""
import sys

from modeflow.ensemble.scale_point import main

sys.exit(main())
