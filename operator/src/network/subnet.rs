//! Subnets: one public and one private per availability zone, carved from the VPC CIDR by
//! [`super::cidr`]. CIDR, zone and VPC are immutable; public IPs on launch stay off in both
//! tiers (the load balancer and the NAT gateways get their own addresses).

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, Filter, ResourceType, SubnetState};

use super::{SUBNET, cidr, keys, required, updated, vpc_cidr};
use crate::aws::tags::{component_filter, component_key, platform_filter, tag_specification};
use crate::aws::{AwsClients, LostAnswer, classify, create_or_find, deletion, errors::no_retries};
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, DesiredError, DesiredResource, Driver,
    Field, Kind, Lifecycle, ObservedResource, Reads, Scope, UpdateRequest,
};
use crate::intent::Intent;

/// Field: the VPC's id.
pub const VPC_ID: &str = "vpc_id";
/// Field: the subnet's CIDR (unique in the VPC).
pub const CIDR_BLOCK: &str = "cidr_block";
/// Field: the availability zone.
pub const AVAILABILITY_ZONE: &str = "availability_zone";
/// Field: whether instances launched in it get a public IP.
pub const MAP_PUBLIC_IP_ON_LAUNCH: &str = "map_public_ip_on_launch";

/// The subnets component.
pub struct Subnets {
    aws: AwsClients,
}

impl Subnets {
    /// The component acting through `aws`.
    pub fn new(aws: AwsClients) -> Self {
        Self { aws }
    }

    async fn list(
        &self,
        scope: &Scope,
        filters: Vec<Filter>,
    ) -> Result<Vec<ObservedResource>, ActError> {
        let output = self
            .aws
            .ec2()
            .await
            .describe_subnets()
            .set_filters(Some(filters))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(output
            .subnets()
            .iter()
            .filter_map(|subnet| {
                let key = component_key(subnet.tags(), scope)?;
                let mut resource = ObservedResource::new(SUBNET, key, subnet.subnet_id()?)
                    .lifecycle(match subnet.state() {
                        Some(SubnetState::Pending) => Lifecycle::Pending,
                        _ => Lifecycle::Available,
                    })
                    .attr(
                        MAP_PUBLIC_IP_ON_LAUNCH,
                        subnet.map_public_ip_on_launch().unwrap_or(false),
                    );
                if let Some(vpc) = subnet.vpc_id() {
                    resource = resource.attr(VPC_ID, vpc);
                }
                if let Some(cidr) = subnet.cidr_block() {
                    resource = resource.attr(CIDR_BLOCK, cidr);
                }
                if let Some(az) = subnet.availability_zone() {
                    resource = resource.attr(AVAILABILITY_ZONE, az);
                }
                Some(resource)
            })
            .collect())
    }

    async fn set_public_ip(&self, subnet_id: &str, value: bool) -> Result<(), ActError> {
        self.aws
            .ec2()
            .await
            .modify_subnet_attribute()
            .subnet_id(subnet_id)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(value).build())
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }
}

fn subnet(key: crate::engine::Key, cidr: String, az: &str) -> DesiredResource {
    DesiredResource::new(SUBNET, key)
        .immutable(VPC_ID, AttrValue::reference(keys::VPC))
        .field(CIDR_BLOCK, Field::immutable(cidr).unique())
        .immutable(AVAILABILITY_ZONE, az)
        .updatable(MAP_PUBLIC_IP_ON_LAUNCH, false)
}

impl Component<Intent> for Subnets {
    fn desired(&self, spec: &Intent) -> Result<Vec<DesiredResource>, DesiredError> {
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

#[async_trait]
impl Driver for Subnets {
    fn kind(&self) -> Kind {
        SUBNET
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        // Tags in the create call (TagSpecifications) are authorized as ec2:CreateTags.
        &[
            "ec2:DescribeSubnets",
            "ec2:CreateSubnet",
            "ec2:CreateTags",
            "ec2:ModifySubnetAttribute",
            "ec2:DeleteSubnet",
        ]
    }

    async fn observe(
        &self,
        scope: &Scope,
        _reads: &Reads,
    ) -> Result<Vec<ObservedResource>, ActError> {
        self.list(scope, vec![platform_filter(scope)]).await
    }

    async fn create(&self, request: CreateRequest<'_>) -> Result<ObservedResource, ActError> {
        let vpc = required(request.attrs, VPC_ID)?;
        let cidr = required(request.attrs, CIDR_BLOCK)?;
        let az = required(request.attrs, AVAILABILITY_ZONE)?;
        let scope = request.scope;
        let mut resource = create_or_find(
            LostAnswer::AwaitVisibility,
            &["InvalidSubnet.Conflict"],
            || async {
                let output = self
                    .aws
                    .ec2()
                    .await
                    .create_subnet()
                    .vpc_id(vpc)
                    .cidr_block(cidr)
                    .availability_zone(az)
                    .tag_specifications(tag_specification(ResourceType::Subnet, &request))
                    .customize()
                    .config_override(no_retries())
                    .send()
                    .await?;
                let subnet = output.subnet();
                Ok(ObservedResource::new(
                    SUBNET,
                    request.key,
                    subnet.and_then(|s| s.subnet_id()).unwrap_or_default(),
                )
                .attr(VPC_ID, vpc)
                .attr(CIDR_BLOCK, cidr)
                .attr(AVAILABILITY_ZONE, az)
                .attr(
                    MAP_PUBLIC_IP_ON_LAUNCH,
                    subnet
                        .and_then(|s| s.map_public_ip_on_launch())
                        .unwrap_or(false),
                ))
            },
            || async {
                let found = self
                    .list(
                        scope,
                        vec![platform_filter(scope), component_filter(request.key)],
                    )
                    .await?;
                Ok(found.into_iter().next())
            },
        )
        .await?;
        if let Some(public) = request
            .attr(MAP_PUBLIC_IP_ON_LAUNCH)
            .and_then(AttrValue::as_bool)
            && resource.attrs.get(MAP_PUBLIC_IP_ON_LAUNCH) != Some(&AttrValue::Bool(public))
        {
            self.set_public_ip(&resource.id, public).await?;
            resource
                .attrs
                .insert(MAP_PUBLIC_IP_ON_LAUNCH.to_owned(), public.into());
        }
        Ok(resource)
    }

    async fn update(&self, request: UpdateRequest<'_>) -> Result<ObservedResource, ActError> {
        if request.changed.iter().any(|f| f == MAP_PUBLIC_IP_ON_LAUNCH)
            && let Some(public) = request
                .new_value(MAP_PUBLIC_IP_ON_LAUNCH)
                .and_then(AttrValue::as_bool)
        {
            self.set_public_ip(&request.current.id, public).await?;
        }
        Ok(updated(&request))
    }

    async fn delete(
        &self,
        current: &ObservedResource,
        _scope: &Scope,
    ) -> Result<Deletion, ActError> {
        deletion(
            self.aws
                .ec2()
                .await
                .delete_subnet()
                .subnet_id(&current.id)
                .send()
                .await,
            "InvalidSubnetID.NotFound",
            Deletion::Gone,
        )
    }
}
