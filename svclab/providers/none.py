"""No load-balancer implementation: what a bare-metal cluster has out of the box."""

from __future__ import annotations

__all__ = ["NoProvider"]


class NoProvider:
    name = "none"
    expects_address = False
    one_name_at_a_time = False

    def images(self) -> list[str]:
        return []

    def install(self, ctx) -> None:
        ctx.step("no load-balancer implementation: LoadBalancer Services will stay <pending>")

    def holder(self, kube, namespace: str, service: str) -> str | None:
        return None

    def describe(self) -> str:
        return "none (bare metal: nothing assigns external addresses)"
