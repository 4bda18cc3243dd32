"""Where data-parallel replicas meet: the torch.distributed store that rank 0 hosts.

Rank 0 binds the store's socket itself, on its node's own address, and holds it from the moment
the OS picks the port until the process ends: no other process can take the port between its
choice and the group forming, as one could when a free port was probed, released, and bound later.

Each start of a group draws a secret that the driver gives every rank. The group's keys live
under it, and a rank joins only a store whose rank 0 wrote the group's mark there: a replica of an
earlier start, or another job's process that finds the port, neither joins this group nor touches
its keys by accident. That is all it does. TCPStore has no authentication: anyone who reaches the
port can connect, list the keys (the secret among them) and write to them, and gloo and NCCL connect
the ranks without any either. Ray's own servers check the cluster's token; this store cannot, and
relies on the private network docs/CLUSTER.md asks for.
"""

from __future__ import annotations

import datetime
import socket

import torch.distributed as dist
from atari_distill.runners import handles

JOIN_TIMEOUT = datetime.timedelta(minutes=10)
MARK = "group"


class NotThisGroup(RuntimeError):
    pass


def open_store(size: int, secret: str) -> tuple[dist.Store, str]:
    """Rank 0's store for a group of `size`, and the address ("host:port") the other ranks join."""
    host = handles.node_address()
    listener = socket.socket(socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0][0])
    listener.bind((host, 0))
    listener.listen()
    port = listener.getsockname()[1]
    # the store takes over the socket and closes it when it ends
    store = dist.TCPStore(host, port, size, is_master=True, wait_for_workers=False, timeout=JOIN_TIMEOUT,
                          master_listen_fd=listener.detach())
    group = dist.PrefixStore(secret, store)
    group.set(MARK, "")
    return group, f"{host}:{port}"


def join_store(address: str, secret: str) -> dist.Store:
    """The store rank 0 opened at `address`, refused if it is not the group's that `secret` names."""
    host, port = address.rsplit(":", 1)
    group = dist.PrefixStore(secret, dist.TCPStore(host, int(port), is_master=False, timeout=JOIN_TIMEOUT))
    if not group.check([MARK]):
        raise NotThisGroup(f"the store at {address} is not this group's")
    return group
