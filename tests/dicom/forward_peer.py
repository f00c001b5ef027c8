"""A C-STORE destination for the forwarding tests, run as its own process (REQ: IMG-08).

    python -m tests.dicom.forward_peer PORT AET LOG [DIE_AT]

Accepts every storage SOP class in every transfer syntax pynetdicom knows, appends "<SOP Instance UID> <transfer
syntax>" to LOG (flushed) before answering success, and — when DIE_AT is given — exits abruptly (os._exit, mid-
association, no response) on receiving its DIE_AT-th instance, before recording it: the destination "stops".
"""

from __future__ import annotations

import os
import sys
import threading

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt


def main() -> None:
    port, aet, log_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    die_at = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    lock = threading.Lock()
    seen = [0]
    out = open(log_path, "a", encoding="ascii")  # noqa: SIM115 - lives as long as the process

    def on_store(event: evt.Event) -> int:
        with lock:
            seen[0] += 1
            if die_at and seen[0] == die_at:
                os._exit(3)
            out.write(f"{event.request.AffectedSOPInstanceUID} {event.context.transfer_syntax}\n")
            out.flush()
        return 0x0000

    ae = AE(ae_title=aet)
    ae.maximum_associations = 4
    for ctx in AllStoragePresentationContexts:
        ae.add_supported_context(ctx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context("1.2.840.10008.1.1")
    print("ready", flush=True)
    ae.start_server(("127.0.0.1", port), block=True, evt_handlers=[(evt.EVT_C_STORE, on_store)])


if __name__ == "__main__":
    main()
