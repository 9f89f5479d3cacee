"""A poller process for crash tests: it stops dead right after its first commit.

``python -m tests.ingest.imap_child MARKER`` runs ``ImapService`` from the ``TICKETPOST_*``
environment, but with one extra batch step inserted right after ``commit``: it writes the
committed inbound ids to ``MARKER`` and then sleeps forever — before the ids are handed over and
before anything is flagged on the server. The test then ``kill -9``s it there.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from ingest import imap_sync
from ingest.imap import ImapService


def main(marker: str) -> None:
    def pause_after_commit(ctx, batch) -> None:
        ids = [item.inbound_id for item in batch.items if item.inbound_id is not None]
        Path(marker).write_text(json.dumps(ids))
        threading.Event().wait()  # until SIGKILL

    steps = list(imap_sync.BATCH_STEPS)
    steps.insert(steps.index(imap_sync.commit) + 1, pause_after_commit)
    imap_sync.BATCH_STEPS = tuple(steps)
    ImapService(hand_over=lambda inbound_id: True).start().wait()


if __name__ == "__main__":
    main(sys.argv[1])
