"""Locust FastHttpUser for bench_transport.py: GET / as fast as it can (no wait time)."""

from __future__ import annotations

from locust import FastHttpUser, constant, task


class Bench(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self) -> None:
        self.client.get("/")
