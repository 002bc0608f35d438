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
- `DeleteSubnet` leaves the subnet's route table association (`RouteTable._associations`,
  association id -> subnet id) and its network ACL association (the default ACL's, or the one
  `ReplaceNetworkAclAssociation` made) behind: moto's `delete_subnet` only pops the subnet. Every
  describe keeps listing a subnet that is gone, and `DeleteRouteTable`, `DeleteNetworkAcl` and
  so `DeleteVpc` answer `DependencyViolation` forever.
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSubnet.html ("You must
  terminate all running instances in the subnet before you can delete the subnet.") asks for no
  disassociation first, and an association of a subnet that no longer exists is gone with it;
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteRouteTable.html ("You must
  disassociate the route table from any subnets before you can delete it.") then holds for the
  live subnets only. Dropped only once moto has deleted the subnet: a refused delete (the strict
  layer's guard, an unknown id) keeps them.
"""

from __future__ import annotations

from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.subnets import SubnetBackend
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix
from moto.rds.models import RDSBackend


def install() -> None:
    _install_modify_db_subnet_group()
    _install_ec2_tags_by_id()
    _install_delete_subnet_associations()


def _install_delete_subnet_associations() -> None:
    original = SubnetBackend.delete_subnet
    if getattr(original, "_plinth_fixed", False):
        return

    def delete_subnet(self, subnet_id):
        subnet = original(self, subnet_id)
        for route_table in self.route_tables.values():
            for association_id, target_id in list(route_table._associations.items()):
                if target_id == subnet_id:
                    del route_table._associations[association_id]
        for network_acl in self.network_acls.values():
            for association_id, association in list(network_acl._associations.items()):
                if association.subnet_id == subnet_id:
                    del network_acl._associations[association_id]
        return subnet

    delete_subnet._plinth_fixed = True  # type: ignore[attr-defined]
    SubnetBackend.delete_subnet = delete_subnet


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
