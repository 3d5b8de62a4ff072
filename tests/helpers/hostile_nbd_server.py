#!/usr/bin/env python3
# A hostile NBD server for tests (src/source/nbd_disk_test.cpp): one export of
# 1 MiB, with base:allocation, whose block-status replies break the protocol
# as MODE says: "empty" sends a zero-length extent (a client that trusts it
# never moves on), "none" sends no extent at all. Reads fail with EINVAL.
# Usage: hostile_nbd_server.py SOCKET MODE (serves until killed).
import socket, struct, sys
path, mode = sys.argv[1], sys.argv[2]
SIZE = 1 << 20
def recv(c, n):
    b = b''
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d: raise SystemExit(0)
        b += d
    return b
def reply(c, opt, typ, data=b''):
    c.sendall(struct.pack('>QIII', 0x3e889045565a9, opt, typ, len(data)) + data)
def serve(c):
    c.sendall(b'NBDMAGICIHAVEOPT' + struct.pack('>H', 3))
    recv(c, 4)
    contexts = []
    while True:
        _, opt, ln = struct.unpack('>QII', recv(c, 16))
        data = recv(c, ln)
        if opt == 8:  # STRUCTURED_REPLY
            reply(c, opt, 1)
        elif opt == 10:  # SET_META_CONTEXT
            nl = struct.unpack('>I', data[:4])[0]
            p = 4 + nl
            n = struct.unpack('>I', data[p:p + 4])[0]; p += 4
            for i in range(n):
                ql = struct.unpack('>I', data[p:p + 4])[0]; q = data[p + 4:p + 4 + ql]; p += 4 + ql
                if q == b'base:allocation':
                    contexts.append(q)
                    reply(c, opt, 4, struct.pack('>I', len(contexts)) + q)
            reply(c, opt, 1)
        elif opt == 7:  # GO
            reply(c, opt, 3, struct.pack('>HQH', 0, SIZE, 1 | 2))
            reply(c, opt, 1)
            break
        else:
            reply(c, opt, (1 << 31) + 1)
    while True:
        magic, flags, typ, handle, off, ln = struct.unpack('>IHHQQI', recv(c, 28))
        if typ == 2: return
        if typ == 7:
            ext = struct.pack('>II', 0, 0) if mode == 'empty' else b''
            payload = struct.pack('>I', 1) + ext
            c.sendall(struct.pack('>IHHQI', 0x668e33ef, 1, 5, handle, len(payload)) + payload)
        else:
            err = struct.pack('>IH', 22, 0)
            c.sendall(struct.pack('>IHHQI', 0x668e33ef, 1, 32769, handle, len(err)) + err)
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(4)
while True:
    c, _ = s.accept()
    try:
        serve(c)
    except Exception:
        pass
    c.close()
