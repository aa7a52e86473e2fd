"""A Python engine-style forwarder: the baseline for the webhook rows of
benches/pipeline.rs.

Usage: python forwarder.py SOCK_DIR COUNT URL
Reads the bus as a Salt engine does (salt.utils.event.get_master_event,
get_event in a loop) and POSTs each event as JSON with requests (one
keep-alive Session, which is kinder than a connection per event), until
COUNT events were delivered. Prints the elapsed seconds as JSON.
"""
import json
import sys
import time

import requests
import salt.config
import salt.utils.event


def main():
    sock_dir, count, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    opts = salt.config.DEFAULT_MASTER_OPTS.copy()
    opts.update({"sock_dir": sock_dir, "ipc_mode": "ipc", "transport": "zeromq"})
    event = salt.utils.event.get_master_event(opts, sock_dir, listen=True)
    session = requests.Session()
    sent = 0
    start = None
    while sent < count:
        ev = event.get_event(wait=10, full=True)
        if ev is None:
            break
        if start is None:
            start = time.perf_counter()
            cpu_start = time.process_time()
        resp = session.post(url, json={"tag": ev["tag"], "data": ev["data"]}, timeout=10)
        resp.raise_for_status()
        sent += 1
    elapsed = time.perf_counter() - start if start else 0.0
    cpu = time.process_time() - cpu_start if start else 0.0
    print(json.dumps({"events": sent, "seconds": elapsed, "cpu": cpu}))
    event.destroy()


if __name__ == "__main__":
    main()
