"""A three-node NATS cluster with JetStream on loopback, for `risk-worker dev --cluster` and tests.

Each node is a :class:`NatsServer` (the pip-installed `nats-server`) with its own store
directory, client and monitoring ports, and a generated configuration file naming the server,
the JetStream domain and the cluster routes to every node. Standard library only.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self

from risk_worker.devstack.nats_server import NatsServer, free_port

_POLL_INTERVAL_S = 0.05


class NatsCluster:
    """``size`` nats-server processes routed into one JetStream cluster on 127.0.0.1.

    Nothing runs until `start()`. Ports (client, cluster route, monitoring) are picked free at
    the first start and kept, so a node stopped, killed or restarted comes back at the same
    URL with its store (`<data_dir>/node-<i>/jetstream`). Node ``i`` (0-based) is named
    ``<name>-<i+1>``. Use it as a context manager or call `stop()` (idempotent).

    Args:
        data_dir: Directory holding one sub-directory per node (store, config, log).
        size: Number of nodes (3: one can be lost and JetStream keeps a quorum).
        name: Cluster name, also the prefix of the server names.
        domain: JetStream domain of every node.
    """

    def __init__(
        self, data_dir: Path, *, size: int = 3, name: str = "risk", domain: str = "risk"
    ) -> None:
        if size < 2:
            raise ValueError("a cluster needs at least two nodes")
        self.data_dir = Path(data_dir).absolute()
        self.name, self.domain, self.size = name, domain, size
        self._route_ports: list[int] = []
        self.nodes: list[NatsServer] = []

    @property
    def server_names(self) -> list[str]:
        """The nodes' server names, in index order."""
        return [f"{self.name}-{i + 1}" for i in range(self.size)]

    @property
    def urls(self) -> list[str]:
        """Each node's client URL. Raises RuntimeError before the first start."""
        if not self.nodes:
            raise RuntimeError("NatsCluster has not been started: no URLs yet")
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """The client URLs separated by commas (what ``RISK_NATS_URL`` takes)."""
        return ",".join(self.urls)

    def start(self, timeout: float = 30.0) -> None:
        """Launches every node (not running) and waits until the cluster is ready.

        Raises:
            RuntimeError: a node exits, or the cluster is not ready before the deadline (the
                message has the log tails).
            FileNotFoundError: the binary is missing (see `find_nats_server`).
        """
        if not self.nodes:
            self._route_ports = [free_port() for _ in range(self.size)]
            self.nodes = [self._node(i) for i in range(self.size)]
        deadline = time.monotonic() + timeout
        try:
            for node in self.nodes:
                if not node.running:
                    node.start(max(1.0, deadline - time.monotonic()))
            self.wait_ready(max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.kill()
            raise

    def _node(self, index: int) -> NatsServer:
        node_dir = self.data_dir / f"node-{index + 1}"
        node_dir.mkdir(parents=True, exist_ok=True)
        routes = ", ".join(f'"nats-route://127.0.0.1:{port}"' for port in self._route_ports)
        config = node_dir / "nats-server.conf"
        config.write_text(
            f'server_name: "{self.server_names[index]}"\n'
            f'jetstream {{ domain: "{self.domain}" }}\n'
            "cluster {\n"
            f'  name: "{self.name}"\n'
            f'  listen: "127.0.0.1:{self._route_ports[index]}"\n'
            f"  routes: [{routes}]\n"
            "}\n",
            encoding="utf-8",
        )
        return NatsServer(node_dir, port=free_port(), config_file=config)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Waits until every running node routes to every other running one, a JetStream meta
        leader is elected and every running node reports healthy (`/healthz`).

        Raises:
            RuntimeError: not ready before the deadline (with what was missing).
        """
        deadline, missing = time.monotonic() + timeout, "nothing polled yet"
        while time.monotonic() < deadline:
            problem = self._not_ready()
            if problem is None:
                return
            missing = problem
            time.sleep(_POLL_INTERVAL_S)
        raise RuntimeError(f"NATS cluster not ready within {timeout} s: {missing}")

    def _not_ready(self) -> str | None:
        """What keeps the cluster from being ready, or None."""
        running = [i for i, node in enumerate(self.nodes) if node.running]
        if not running:
            return "no node is running"
        names = {self.server_names[i] for i in running}
        for i in running:
            node, name = self.nodes[i], self.server_names[i]
            routes = _get(node, "routez") or {}
            peers = {route.get("remote_name") for route in routes.get("routes") or []}
            if not names - {name} <= peers:
                return f"{name} routes to {sorted(p for p in peers if p)}, not all of {names}"
            meta = (_get(node, "jsz") or {}).get("meta_cluster") or {}
            if not meta.get("leader"):
                return f"{name} knows no JetStream meta leader"
            if _get(node, "healthz") is None:
                return f"{name} is not healthy"
        return None

    def meta_leader(self) -> int | None:
        """Index of the node that is the JetStream meta leader, or None (none known)."""
        for node in self.nodes:
            if node.running:
                meta = (_get(node, "jsz") or {}).get("meta_cluster") or {}
                if meta.get("leader") in self.server_names:
                    return self.server_names.index(meta["leader"])
        return None

    def index_of(self, server_name: str) -> int:
        """The index of the node called ``server_name`` (e.g. a stream's leader).

        Raises:
            ValueError: no node has that name.
        """
        return self.server_names.index(server_name)

    def stop_node(self, index: int) -> None:
        """Stops node ``index`` gracefully (lame duck: clients move to the others)."""
        self.nodes[index].stop()

    def kill_node(self, index: int) -> None:
        """Kills node ``index`` with SIGKILL (a crash)."""
        self.nodes[index].kill()

    def start_node(self, index: int, timeout: float = 30.0) -> None:
        """Starts node ``index`` again (same ports, same store) and waits for the cluster."""
        deadline = time.monotonic() + timeout
        self.nodes[index].start(timeout)
        self.wait_ready(max(1.0, deadline - time.monotonic()))

    def restart_node(self, index: int, timeout: float = 30.0) -> None:
        """Stops node ``index`` if running, then `start_node`."""
        self.stop_node(index)
        self.start_node(index, timeout)

    def stop(self) -> None:
        """Stops every node gracefully. Idempotent."""
        for node in self.nodes:
            node.stop()

    def kill(self) -> None:
        """Kills every node with SIGKILL. Idempotent."""
        for node in self.nodes:
            node.kill()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _get(node: NatsServer, endpoint: str) -> dict[str, Any] | None:
    """A monitoring endpoint's JSON; None when the node does not answer 200."""
    url = f"http://127.0.0.1:{node.monitor_port}/{endpoint}"
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            if resp.status != 200:
                return None
            body: dict[str, Any] = json.loads(resp.read())
            return body
    except (urllib.error.URLError, OSError, ValueError):
        return None
