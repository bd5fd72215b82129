"""Stopping a run whose loss stops being finite, before backward() breaks the weights."""

from __future__ import annotations

from modeflow.common.errors import ModeflowError
from modeflow.train.schedule import Progress


class NonFiniteLossError(ModeflowError):
    """The training loss became NaN or infinite."""


def guard_loss(loss, progress: Progress):
    """Wrap an open_clip loss so a non-finite total raises before backward() touches the weights."""
    import torch

    class NonFiniteGuard(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = loss

        def forward(self, *args, **kwargs):
            out = self.inner(*args, **kwargs)
            total = sum(out.values()) if isinstance(out, dict) else (
                sum(out) if isinstance(out, (tuple, list)) else out)
            finite = torch.isfinite(total.detach()).all().to(torch.int32)
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                # every rank must stop together, or the others hang in the next all-gather
                torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
            if not finite.item():
                spe = progress.steps_per_epoch or 1
                raise NonFiniteLossError(
                    f"loss became {float(total.detach().float().sum())} at step {progress.step} "
                    f"(epoch {progress.step // spe})")
            return out

    return NonFiniteGuard()
