"""Bugs in moto 5.2.5 fixed in place, on whatever the strict flag says (AWS never behaves like
this, so no test wants moto's answer):

- `ModifyDBSubnetGroup` takes the group out of moto's registry and never puts it back, so every
  later describe answers `DBSubnetGroupNotFoundFault` (moto's `modify_db_subnet_group` pops it).
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ModifyDBSubnetGroup.html
  ("Modifies an existing DB subnet group"): the group stays, with the new subnets.
- Reading one EC2 resource's tags (`TaggedEC2Resource.get_tags`, which every `tag:` filter of
  every EC2 describe calls once per resource) runs `describe_tags` with a regex over every tag
  of every EC2 resource in the region: a filtered describe costs resources × all tags. With the
  fleet benchmark's 80 platforms that was about 130 ms a call and growing with the square of the
  fleet. The tags of one id are a dictionary lookup; the answer is the same list.
"""

from __future__ import annotations

from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix
from moto.rds.models import RDSBackend


def install() -> None:
    _install_modify_db_subnet_group()
    _install_ec2_tags_by_id()


def _install_ec2_tags_by_id() -> None:
    if getattr(TaggedEC2Resource.get_tags, "_plinth_fixed", False):
        return

    def get_tags(self) -> list[dict[str, str]]:
        resource_id = getattr(self, "id", None)
        if not resource_id:
            return []
        resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
        return [
            {"resource_id": resource_id, "key": key, "value": value, "resource_type": resource_type}
            for key, value in self.ec2_backend.tags.get(resource_id, {}).items()
        ]

    get_tags._plinth_fixed = True  # type: ignore[attr-defined]
    TaggedEC2Resource.get_tags = get_tags


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
