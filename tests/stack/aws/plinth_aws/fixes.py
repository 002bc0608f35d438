"""Bugs in moto 5.2.5 fixed in place, on whatever the strict flag says (AWS never behaves like
this, so no test wants moto's answer):

- `ModifyDBSubnetGroup` takes the group out of moto's registry and never puts it back, so every
  later describe answers `DBSubnetGroupNotFoundFault` (moto's `modify_db_subnet_group` pops it).
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ModifyDBSubnetGroup.html
  ("Modifies an existing DB subnet group"): the group stays, with the new subnets.
"""

from __future__ import annotations

from moto.rds.models import RDSBackend


def install() -> None:
    _install_modify_db_subnet_group()


def _install_modify_db_subnet_group() -> None:
    original = RDSBackend.modify_db_subnet_group
    if getattr(original, "_plinth_fixed", False):
        return

    def modify_db_subnet_group(self, subnet_name, description, subnets):
        group = original(self, subnet_name, description, subnets)
        self.subnet_groups[subnet_name] = group
        return group

    modify_db_subnet_group._plinth_fixed = True  # type: ignore[attr-defined]
    RDSBackend.modify_db_subnet_group = modify_db_subnet_group
