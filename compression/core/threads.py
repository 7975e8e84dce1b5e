"""The thread policy: how many intra-op threads torch gives each request, background job and CLI command.

Measured (README, `python -m bench threads`): on 2 cores one thread costs a SparseGPT run on SmolLM2 about a tenth
of its idle time, while two threads beside one other busy process ran it five to eight times slower (two
spinning thread teams fighting for two cores). So every long run uses settings.torch_threads() (1 unless
$COMPRESSION_LAB_TORCH_THREADS or the CLI's --threads says otherwise).
"""

from __future__ import annotations

import compression.core.settings as settings


def use_threads(threads: int | None = None) -> int:
    """Give torch `threads` intra-op threads in the calling thread (default: the policy) and return the count.

    Always sets: a thread started by Python reports the process's count but runs with torch's default team
    (measured: 1 reported, 2 used), so comparing first would skip exactly the case that matters.
    """
    import torch  # lazy: compression.core stays importable without loading torch (the sidebar, the router)

    threads = threads or settings.torch_threads()
    torch.set_num_threads(threads)
    return threads
