"""Per-job logging for Snakemake scripts: everything a step prints ends up in its `log:` file.

Redirects at the file-descriptor level, so output of child processes (img2dataset's workers,
torch's native code) is captured too, and sets up `logging` with timestamps.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def job_log(path: str | os.PathLike | None) -> Iterator[logging.Logger]:
    logger = logging.getLogger("modeflow")
    if not path:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        yield logger
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a", buffering=1) as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield logger
        except BaseException:
            logger.exception("step failed")
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            root.removeHandler(handler)
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
