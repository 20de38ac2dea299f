#!/usr/bin/env python3
"""multihost_rtt.py — TCP round-trip time and one-way stream rate between the first two hosts of launch/multihost.sh
(the development VMs have no ping or iperf). Run as its PROGRAM with one rank per host:

    bash launch/multihost.sh --hosts 2 --ranks-per-host 1 [--link 1gbit] -- python3 launch/multihost_rtt.py [MB]

Rank 1 listens on its eth0 address, rank 0 connects to it (the next address of the subnet), sends 1-byte ping-pongs
(TCP_NODELAY; median of 2000 after 200 untimed) and then MB MiB (default 64) one way; rank 0 prints
"rtt_us=... oneway_us=... stream_gbit=..." (one-way latency = RTT / 2, as the simulator's host-to-host latency)."""
import os
import socket
import statistics
import subprocess
import sys
import time

PORT = 47113
rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
mib = int(sys.argv[1]) if len(sys.argv) > 1 else 64
addr = subprocess.run(["ip", "-4", "-o", "addr", "show", "eth0"], capture_output=True, text=True, check=True)
mine = addr.stdout.split()[3].split("/")[0]
if rank == 1:
    srv = socket.create_server((mine, PORT))
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(2200):
        conn.sendall(conn.recv(1))
    got = 0
    while got < mib << 20:
        chunk = conn.recv(1 << 20)
        if not chunk:
            break
        got += len(chunk)
    conn.sendall(b"k")
    conn.close()
elif rank == 0:
    peer = mine.rsplit(".", 1)[0] + "." + str(int(mine.rsplit(".", 1)[1]) + 1)
    for _ in range(100):  # until rank 1 listens
        try:
            s = socket.create_connection((peer, PORT))
            break
        except OSError:
            time.sleep(0.05)
    else:
        sys.exit("multihost_rtt: cannot connect to " + peer)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rtts = []
    for i in range(2200):
        t0 = time.perf_counter()
        s.sendall(b"x")
        s.recv(1)
        if i >= 200:
            rtts.append(time.perf_counter() - t0)
    buf = b"\0" * (1 << 20)
    t0 = time.perf_counter()
    for _ in range(mib):
        s.sendall(buf)
    s.recv(1)
    dt = time.perf_counter() - t0
    rtt = statistics.median(rtts)
    print(f"rtt_us={rtt * 1e6:.1f} oneway_us={rtt * 5e5:.1f} stream_gbit={mib * 8 * 1.048576 / dt / 1e3:.3f}")
