"""Which dev edits are reported and which validate editor training: one seeded order of the dev split, cut once.

The evaluation takes its edits from the front of the order, editor training validates (early stopping, the
learning-rate grid) on the last ``n_heldout``; the two never overlap, so no reported edit ever chose a checkpoint
or a learning rate. Every editor of a task sees the same order, so their reported edits pair one to one.
"""

from __future__ import annotations

import random


def dev_split(n_dev: int, seed: int, n_heldout: int) -> tuple[list[int], list[int]]:
    """(evaluation order, held-out validation edits) of a dev split of ``n_dev`` edits."""
    if not 0 < n_heldout < n_dev:
        raise ValueError(
            f"n_heldout (validation edits held out of the dev split) must be in [1, {n_dev - 1}] for a dev split "
            f"of {n_dev} edits, got {n_heldout}"
        )
    order = list(range(n_dev))
    random.Random(seed).shuffle(order)
    return order[: n_dev - n_heldout], order[n_dev - n_heldout :]


def validation_batches(heldout: list[int], k: int, n_val: int) -> list[list[int]]:
    """Up to ``n_val`` validation requests of ``k`` held-out edits each."""
    n = min(n_val, len(heldout) // k)
    if n < 1:
        raise ValueError(f"{len(heldout)} held-out validation edits cannot make one request of k = {k} edits")
    return [heldout[j * k : (j + 1) * k] for j in range(n)]
