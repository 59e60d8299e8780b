"""Fixtures for the deployment tests: plant databases on the session's PostgreSQL server
(`postgres_server` in tests/conftest.py) and a TCP link we can cut."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def plant_db(postgres_server):
    """A fresh, empty plant database name on the server; dropped afterwards."""
    import psycopg

    host, port = postgres_server
    name = "plant_" + uuid.uuid4().hex[:8]
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class TcpLink:
    """A TCP forwarder on 127.0.0.1 that the test can cut (all connections reset) and restore."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self._lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self._lsock.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._lsock.accept()
            except OSError:
                return
            if not self._up.is_set():
                client.close()  # link down: the peer sees the connection dropped at once
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self._up.clear()
        self.cuts += 1
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            # shutdown() first: close() alone does not wake a pump thread blocked in recv() on this
            # socket, and the kernel keeps the connection open until that recv returns.
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def restore(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._lsock.close()


@pytest.fixture
def tcp_link():
    links: list[TcpLink] = []

    def make(target: tuple[str, int]) -> TcpLink:
        link = TcpLink(target)
        links.append(link)
        return link

    yield make
    for link in links:
        link.close()


def wait_for(pred, timeout: float = 30.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())
