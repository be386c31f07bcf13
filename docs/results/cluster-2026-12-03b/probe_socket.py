import socket, os, time, pickle, struct, numpy as np, multiprocessing as mp
path = "/tmp/nanhu-probe.sock"
def server():
    s = socket.socket(socket.AF_UNIX); s.bind(path); s.listen(); c, _ = s.accept()
    while True:
        h = c.recv(8, socket.MSG_WAITALL)
        if not h: break
        n = struct.unpack("!Q", h)[0]; buf = bytearray(n); v = memoryview(buf); got = 0
        while got < n: got += c.recv_into(v[got:])
        obj = pickle.loads(buf); out = pickle.dumps(obj, protocol=5)
        c.sendall(struct.pack("!Q", len(out)) + out)
if os.path.exists(path): os.unlink(path)
p = mp.Process(target=server); p.start(); time.sleep(0.3)
c = socket.socket(socket.AF_UNIX); c.connect(path)
payload = (np.zeros(20000, np.uint16), {"x": 1})
ts = []
for _ in range(2000):
    t = time.perf_counter()
    out = pickle.dumps(payload, protocol=5); c.sendall(struct.pack("!Q", len(out)) + out)
    n = struct.unpack("!Q", c.recv(8, socket.MSG_WAITALL))[0]; buf = bytearray(n); v = memoryview(buf); got = 0
    while got < n: got += c.recv_into(v[got:])
    pickle.loads(buf); ts.append(time.perf_counter() - t)
print("unix socket median %.3f ms" % (np.median(ts) * 1e3))
c.close(); p.terminate()
