//! Subnets: one public and one private per availability zone, carved from the VPC CIDR by
//! [`super::cidr`]. CIDR, zone and VPC are immutable; public IPs on launch stay off in both
//! tiers (the load balancer and the NAT gateways get their own addresses).

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, Subnet, SubnetState};

use super::{SUBNET, cidr, keys, vpc_cidr};
use crate::aws::kit::{Deleted, Ec2Listing, Kit, Made, Seen, Sent, updated};
use crate::aws::tags::tag_specification;
use crate::aws::{classify, deletion};
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, DesiredError, DesiredResource, Key,
    Kind, Lifecycle, ObservedResource, Scope, UpdateRequest, Wanted,
};
use crate::intent::Intent;
use crate::{driver, send_once};

crate::fields! {
    /// A subnet as the network wants it.
    desired SubnetFields,
    /// A subnet's fields as its driver reads them.
    resolved SubnetValues {
        /// The VPC's id.
        vpc_id / VPC_ID = "vpc_id": AttrValue => &'a str, immutable;
        /// The subnet's CIDR (unique in the VPC).
        /// Unique in the VPC.
        cidr_block / CIDR_BLOCK = "cidr_block": AttrValue => &'a str, immutable_unique;
        /// The availability zone.
        availability_zone / AVAILABILITY_ZONE = "availability_zone": AttrValue => &'a str, immutable;
        /// Whether instances launched in it get a public IP.
        map_public_ip_on_launch / MAP_PUBLIC_IP_ON_LAUNCH = "map_public_ip_on_launch": AttrValue => bool, updatable;
    }
}

driver!(
    /// The subnets component.
    Subnets
);

impl Subnets {
    async fn set_public_ip(&self, subnet_id: &str, value: bool) -> Result<(), ActError> {
        let call = self.aws.ec2().await.modify_subnet_attribute();
        let flag = AttributeBooleanValue::builder().value(value).build();
        let result = call
            .subnet_id(subnet_id)
            .map_public_ip_on_launch(flag)
            .send()
            .await;
        result.map_err(|e| classify(&e))?;
        Ok(())
    }
}

fn lifecycle(state: Option<&SubnetState>) -> Lifecycle {
    match state {
        Some(SubnetState::Pending) => Lifecycle::Pending,
        _ => Lifecycle::Available,
    }
}

#[async_trait]
impl Ec2Listing for Subnets {
    type Item = Subnet;

    async fn observed(&self, subnet: &Subnet, key: Key) -> Seen {
        let Some(id) = subnet.subnet_id() else {
            return Ok(None);
        };
        let public = subnet.map_public_ip_on_launch().unwrap_or(false);
        let mut resource = ObservedResource::new(SUBNET, key, id)
            .lifecycle(lifecycle(subnet.state()))
            .attr(MAP_PUBLIC_IP_ON_LAUNCH, public);
        for (field, value) in [
            (VPC_ID, subnet.vpc_id()),
            (CIDR_BLOCK, subnet.cidr_block()),
            (AVAILABILITY_ZONE, subnet.availability_zone()),
        ] {
            if let Some(value) = value {
                resource = resource.attr(field, value);
            }
        }
        Ok(Some(resource))
    }
}

#[async_trait]
impl Kit for Subnets {
    const KIND: Kind = SUBNET;
    // Tags in the create call (TagSpecifications) are authorized as ec2:CreateTags.
    const IAM_ACTIONS: &'static [&'static str] = crate::actions![
        ec2: DescribeSubnets, CreateSubnet, CreateTags, ModifySubnetAttribute, DeleteSubnet;
    ];
    /// The CIDR is unique in the VPC: a second create of ours is refused as a conflict.
    const DUPLICATE_CODES: &'static [&'static str] = &["InvalidSubnet.Conflict"];
    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let fields = SubnetValues::read(request.attrs)?;
        let (vpc, cidr, az) = (fields.vpc_id, fields.cidr_block, fields.availability_zone);
        let call = self.aws.ec2().await.create_subnet();
        let output = send_once!(
            aws_sdk_ec2,
            call.vpc_id(vpc)
                .cidr_block(cidr)
                .availability_zone(az)
                .tag_specifications(tag_specification(ResourceType::Subnet, request))
        )?;
        let subnet = output.subnet();
        let id = subnet.and_then(|s| s.subnet_id()).unwrap_or_default();
        let public = subnet.and_then(|s| s.map_public_ip_on_launch());
        Ok(ObservedResource::new(SUBNET, request.key, id)
            .attr(VPC_ID, vpc)
            .attr(CIDR_BLOCK, cidr)
            .attr(AVAILABILITY_ZONE, az)
            .attr(MAP_PUBLIC_IP_ON_LAUNCH, public.unwrap_or(false)))
    }

    /// Public IPs on launch, set as desired when the subnet was made (or found) otherwise.
    async fn after_create(
        &self,
        mut resource: ObservedResource,
        request: &CreateRequest<'_>,
    ) -> Made {
        let public = SubnetValues::read(request.attrs)?.map_public_ip_on_launch;
        if resource.attrs.get(MAP_PUBLIC_IP_ON_LAUNCH) != Some(&AttrValue::Bool(public)) {
            self.set_public_ip(&resource.id, public).await?;
            resource
                .attrs
                .insert(MAP_PUBLIC_IP_ON_LAUNCH.to_owned(), public.into());
        }
        Ok(resource)
    }

    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        if request.changed.iter().any(|f| f == MAP_PUBLIC_IP_ON_LAUNCH) {
            let public = SubnetValues::read(request.attrs)?.map_public_ip_on_launch;
            self.set_public_ip(&request.current.id, public).await?;
        }
        Ok(updated(&request))
    }

    async fn send_delete(&self, current: &ObservedResource, _scope: &Scope) -> Deleted {
        let call = self.aws.ec2().await.delete_subnet().subnet_id(&current.id);
        deletion(
            call.send().await,
            "InvalidSubnetID.NotFound",
            Deletion::Gone,
        )
    }
}

fn subnet(key: crate::engine::Key, cidr: String, az: &str) -> DesiredResource {
    let fields = SubnetFields {
        vpc_id: AttrValue::reference(keys::VPC),
        cidr_block: cidr.into(),
        availability_zone: az.into(),
        map_public_ip_on_launch: false.into(),
    };
    fields.into_desired(SUBNET, key)
}

impl Component<Intent> for Subnets {
    fn desired(&self, spec: &Intent) -> Wanted {
        let vpc = vpc_cidr(spec, SUBNET)?;
        let zones = &spec.network.availability_zones;
        let carved = cidr::carve(vpc, zones.len()).map_err(|e| DesiredError::Invalid {
            kind: SUBNET,
            message: e.to_string(),
        })?;
        Ok(zones
            .iter()
            .zip(carved)
            .flat_map(|(az, pair)| {
                [
                    subnet(keys::public_subnet(az), pair.public.to_string(), az),
                    subnet(keys::private_subnet(az), pair.private.to_string(), az),
                ]
            })
            .collect())
    }
}
