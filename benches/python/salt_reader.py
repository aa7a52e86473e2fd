"""Salt's own event reader draining a backlog: the baseline for benches/drain.rs.

Usage: python salt_reader.py SOCK_DIR COUNT
Connects with salt.utils.event.get_master_event (what engines and
`salt-run state.event` use), calls get_event in a loop until COUNT events
arrived, and prints the elapsed seconds as JSON.
"""
import json
import sys
import time

import salt.config
import salt.utils.event


def main():
    sock_dir, count = sys.argv[1], int(sys.argv[2])
    opts = salt.config.DEFAULT_MASTER_OPTS.copy()
    opts.update({"sock_dir": sock_dir, "ipc_mode": "ipc", "transport": "zeromq"})
    event = salt.utils.event.get_master_event(opts, sock_dir, listen=True)
    seen = 0
    start = None
    while seen < count:
        ev = event.get_event(wait=10, full=True)
        if ev is None:
            break
        if start is None:
            start = time.perf_counter()
            cpu_start = time.process_time()
        seen += 1
    elapsed = time.perf_counter() - start if start else 0.0
    cpu = time.process_time() - cpu_start if start else 0.0
    print(json.dumps({"events": seen, "seconds": elapsed, "cpu": cpu}))
    event.destroy()


if __name__ == "__main__":
    main()
