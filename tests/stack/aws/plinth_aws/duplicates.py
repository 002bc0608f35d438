"""Creates that AWS answers idempotently, where moto makes a second resource or refuses:

- a load balancer or target group created again with the same name and the same settings is
  returned as it is (a different setting: `DuplicateLoadBalancerName` / `DuplicateTargetGroupName`);
- a NAT gateway created again with the same ClientToken is returned as it is (different
  parameters with that token: `IdempotentParameterMismatch`).

These wrap moto's backend methods so that moto itself serialises the resource it returns, in
the protocol the caller used. "Same settings" means the same request parameters apart from tags.
Creates refused by name alone (scaling groups, DB clusters) live in refusals.py.
"""

from __future__ import annotations

import threading
from typing import Callable

from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.nat_gateways import NatGatewayBackend
from moto.elbv2.exceptions import DuplicateLoadBalancerName, DuplicateTargetGroupName
from moto.elbv2.models import ELBv2Backend

from . import context
from .config import Config


class Duplicates:
    def __init__(self, config: Callable[[], Config]) -> None:
        self._config = config
        self._lock = threading.Lock()
        # (account, region, token) -> (NAT gateway id, the parameters it was created with)
        self.nat_tokens: dict[tuple[str, str, str], tuple[str, tuple]] = {}

    @property
    def active(self) -> bool:
        return self._config().strict

    def reset(self) -> None:
        with self._lock:
            self.nat_tokens.clear()


def install(duplicates: Duplicates) -> None:
    _install_load_balancers(duplicates)
    _install_target_groups(duplicates)
    _install_nat_gateways(duplicates)


def _settings(arguments: dict) -> tuple:
    """Request parameters in a comparable form, tags left out."""
    return tuple(sorted((key, repr(value)) for key, value in arguments.items() if key != "tags"))


def _install_load_balancers(duplicates: Duplicates) -> None:
    original = ELBv2Backend.create_load_balancer

    def create_load_balancer(self, name, security_groups, subnet_ids, subnet_mappings=None, **options):
        if not duplicates.active:
            return original(self, name, security_groups, subnet_ids, subnet_mappings, **options)
        settings = _settings(
            {
                "security_groups": sorted(security_groups or []),
                "subnet_ids": sorted(subnet_ids or []),
                "subnet_mappings": subnet_mappings or [],
                **options,
            }
        )
        for balancer in self.load_balancers.values():
            if balancer.name == name:
                if getattr(balancer, "_plinth_settings", None) == settings:
                    return balancer
                raise DuplicateLoadBalancerName()
        balancer = original(self, name, security_groups, subnet_ids, subnet_mappings, **options)
        balancer._plinth_settings = settings
        return balancer

    ELBv2Backend.create_load_balancer = create_load_balancer


def _install_target_groups(duplicates: Duplicates) -> None:
    original = ELBv2Backend.create_target_group

    def create_target_group(self, name, **options):
        if not duplicates.active:
            return original(self, name, **options)
        settings = _settings(options)
        for group in self.target_groups.values():
            if group.name == name:
                if getattr(group, "_plinth_settings", None) == settings:
                    return group
                raise DuplicateTargetGroupName()
        group = original(self, name, **options)
        group._plinth_settings = settings
        return group

    ELBv2Backend.create_target_group = create_target_group


def _install_nat_gateways(duplicates: Duplicates) -> None:
    original = NatGatewayBackend.create_nat_gateway

    def create_nat_gateway(self, subnet_id, allocation_id, tags=None, connectivity_type="public"):
        request = context.current()
        token = request.params.get("ClientToken") if request else None
        if not duplicates.active or not token:
            return original(self, subnet_id, allocation_id, tags, connectivity_type)
        key = (self.account_id, self.region_name, token)
        parameters = (subnet_id, allocation_id, connectivity_type)
        with duplicates._lock:
            known = duplicates.nat_tokens.get(key)
            if known is not None and known[0] in self.nat_gateways:
                nat_id, known_parameters = known
                if known_parameters != parameters:
                    raise EC2ClientError(
                        "IdempotentParameterMismatch",
                        "Client token already used before with different parameters.",
                    )
                return self.nat_gateways[nat_id]
            nat = original(self, subnet_id, allocation_id, tags, connectivity_type)
            duplicates.nat_tokens[key] = (nat.id, parameters)
            return nat

    NatGatewayBackend.create_nat_gateway = create_nat_gateway
