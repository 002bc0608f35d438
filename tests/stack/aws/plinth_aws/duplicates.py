"""Creates that AWS answers idempotently, where moto makes a second resource or refuses:

- a load balancer or target group created again with the same name and the same settings is
  returned as it is (a different setting: `DuplicateLoadBalancerName` / `DuplicateTargetGroupName`);
- a NAT gateway, route table or launch template created again with the same ClientToken is
  returned as it is (different parameters with that token: `IdempotentParameterMismatch`); moto
  ignores the token, so a resend after a lost answer made a second route table, and a second
  launch template was refused by its name.

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
        # (account, region, operation, token) -> (resource id, the parameters it was made with)
        self.tokens: dict[tuple[str, str, str, str], tuple[str, tuple]] = {}

    @property
    def active(self) -> bool:
        return self._config().strict

    def reset(self) -> None:
        with self._lock:
            self.tokens.clear()


def install(duplicates: Duplicates) -> None:
    _install_load_balancers(duplicates)
    _install_target_groups(duplicates)
    _install_client_tokens(duplicates)


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


def _install_client_tokens(duplicates: Duplicates) -> None:
    from moto.ec2.models.launch_templates import LaunchTemplateBackend
    from moto.ec2.models.route_tables import RouteBackend

    def nat_parameters(subnet_id, allocation_id, tags=None, connectivity_type="public"):
        return (subnet_id, allocation_id, connectivity_type)

    def route_table_parameters(vpc_id, tags=None, main=False):
        return (vpc_id, main)

    def template_parameters(name, description, template_data, tag_spec):
        return (name, description, repr(template_data))

    _install_client_token(duplicates, NatGatewayBackend, "create_nat_gateway", "CreateNatGateway",
                          "nat_gateways", nat_parameters)
    _install_client_token(duplicates, RouteBackend, "create_route_table", "CreateRouteTable",
                          "route_tables", route_table_parameters)
    _install_client_token(duplicates, LaunchTemplateBackend, "create_launch_template",
                          "CreateLaunchTemplate", "launch_templates", template_parameters)


def _install_client_token(
    duplicates: Duplicates, backend: type, method: str, operation: str, storage: str, parameters: Callable
) -> None:
    """`backend.method` answers a resend of `operation` with its ClientToken (while the
    resource it made exists) with that resource, as AWS does."""
    original = getattr(backend, method)

    def create(self, *args, **kwargs):
        request = context.current()
        # Only the API call itself: moto's CreateVpc makes its main route table with the same
        # method.
        token = request.params.get("ClientToken") if request and request.operation == operation else None
        if not duplicates.active or not token:
            return original(self, *args, **kwargs)
        key = (self.account_id, self.region_name, operation, token)
        given = parameters(*args, **kwargs)
        with duplicates._lock:
            known = duplicates.tokens.get(key)
            resources = getattr(self, storage)
            if known is not None and known[0] in resources:
                ident, known_parameters = known
                if known_parameters != given:
                    raise EC2ClientError(
                        "IdempotentParameterMismatch",
                        "Client token already used before with different parameters.",
                    )
                return resources[ident]
            made = original(self, *args, **kwargs)
            duplicates.tokens[key] = (made.id, given)
            return made

    setattr(backend, method, create)
