"""Wall time of a pickled request and answer (40 kB) between two processes over a socket.

Run: ``python probe_socket.py``."""

import multiprocessing as mp
import os
import pickle
import socket
import struct
import time

import numpy as np

PATH = "/tmp/nanhu-probe.sock"


def read_message(conn: socket.socket) -> bytes | None:
    header = conn.recv(8, socket.MSG_WAITALL)
    if not header:
        return None
    n = struct.unpack("!Q", header)[0]
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        got += conn.recv_into(view[got:])
    return bytes(buf)


def write_message(conn: socket.socket, obj) -> None:
    out = pickle.dumps(obj, protocol=5)
    conn.sendall(struct.pack("!Q", len(out)) + out)


def serve() -> None:
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(PATH)
    listener.listen()
    conn, _ = listener.accept()
    while (message := read_message(conn)) is not None:
        write_message(conn, pickle.loads(message))


def main(calls: int = 2000) -> None:
    if os.path.exists(PATH):
        os.unlink(PATH)
    server = mp.Process(target=serve)
    server.start()
    time.sleep(0.3)
    conn = socket.socket(socket.AF_UNIX)
    conn.connect(PATH)
    payload = (np.zeros(20000, np.uint16), {"x": 1})
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        write_message(conn, payload)
        pickle.loads(read_message(conn))
        times.append(time.perf_counter() - t)
    print(f"socket: median {np.median(times) * 1e3:.3f} ms a call")
    conn.close()
    server.terminate()


if __name__ == "__main__":
    main()
