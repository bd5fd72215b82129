"""Training data smaller than one batch: counted and named, never a silent repeat of few samples."""

from __future__ import annotations


def smaller_than_batch(name: str, samples: int, global_batch: int) -> str | None:
    """The warning for run `name` whose data holds fewer samples than one global batch, else None.

    open_clip_train's resampled loader still fills every batch, so such a run sees its few samples
    many times per step: legal, but rarely what a user meant (a 1-row pool, a tiny cluster)."""
    if samples >= global_batch:
        return None
    return (f"{name}: {samples} training sample(s), fewer than one batch of {global_batch} "
            f"(train.batch_size); each step repeats them")
