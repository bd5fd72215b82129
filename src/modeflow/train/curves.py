"""Training curves from open_clip_train's `out.log` ("Train Epoch: …" lines).

A line looks like (open_clip_train 3.x):
    2026-11-23,10:48:38 | INFO | Train Epoch: 0 [ 2688/10112 (27%)] Data (t): 0.004 Batch (t): 0.297,
    465.9/s, 465.9/s/gpu LR: 0.000420 Logit Scale: 14.255 Contrastive_loss: 4.5998 (5.0270) Loss: 4.5998 (5.0270)
Samples are counted inside the epoch; the first line of every epoch is logged after one (global)
batch, which gives the batch size and so the global step. LR is printed with 6 decimals only.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d,\d\d:\d\d:\d\d) \| \w+ \| Train Epoch: (?P<epoch>\d+) "
    r"\[\s*(?P<done>\d+)/(?P<per_epoch>\d+) .*? Batch \(t\): (?P<batch_time>[\d.]+),"
    r".*? LR: (?P<lr>\S+) .*? Loss: (?P<loss>\S+) \(")


def _read_lines(out_log: Path) -> list[dict]:
    rows = []
    for line in Path(out_log).read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if m:
            rows.append({
                "time": datetime.strptime(m["time"], "%Y-%m-%d,%H:%M:%S").timestamp(),
                "epoch": int(m["epoch"]), "done": int(m["done"]), "per_epoch": int(m["per_epoch"]),
                "lr": float(m["lr"]), "loss": float(m["loss"]),
                "batch_time": float(m["batch_time"]),
            })
    return rows


def parse_log(out_log: str | Path) -> list[dict]:
    """[{epoch, step, samples, loss, lr, time, batch_time}] in training order.

    `samples` counts from the start of the schedule (epoch × samples per epoch + done in the
    epoch), `step` is the global optimizer step (0-based), `time` a unix timestamp (1 s
    resolution), `batch_time` the mean seconds per step since the previous
    line (data wait included). A resumed run appends to the same log and may repeat the epoch it was killed in;
    the later lines win.
    """
    rows = _read_lines(Path(out_log))
    if not rows:
        return []
    batch = min(r["done"] for r in rows)
    by_position: dict[tuple[int, int], dict] = {}
    for r in rows:
        samples = r["epoch"] * r["per_epoch"] + r["done"]
        steps_per_epoch = r["per_epoch"] // batch
        by_position[(r["epoch"], r["done"])] = {
            "epoch": r["epoch"], "step": r["epoch"] * steps_per_epoch + r["done"] // batch - 1,
            "samples": samples, "loss": r["loss"], "lr": r["lr"], "time": r["time"],
            "batch_time": r["batch_time"],
        }
    return sorted(by_position.values(), key=lambda r: r["samples"])
