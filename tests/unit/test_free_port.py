"""The ports tests start servers on: a server started on one must not find it taken."""

from tests.conftest import _ephemeral_ports, free_port


def test_ports_are_outside_the_range_outgoing_connections_take_theirs_from():
    low, high = _ephemeral_ports()
    ports = [free_port() for _ in range(200)]
    assert not [port for port in ports if low <= port <= high]


def test_a_port_is_never_handed_out_twice():
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)

