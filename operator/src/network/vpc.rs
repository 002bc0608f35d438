//! The VPC: its CIDR (immutable) and DNS support and hostnames (on, corrected when they drift).
//!
//! DescribeVpcs does not return the DNS settings, so observing costs one DescribeVpcs for the
//! platform plus two DescribeVpcAttribute calls per VPC found.

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, Filter, ResourceType, VpcAttributeName, VpcState};

use super::{VPC, check_region, keys, required, updated, vpc_cidr};
use crate::aws::tags::{component_filter, component_key, platform_filter, tag_specification};
use crate::aws::{AwsClients, LostAnswer, classify, create_or_find, deletion, errors::no_retries};
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, DesiredError, DesiredResource, Driver,
    Kind, Lifecycle, ObservedResource, Reads, Scope, UpdateRequest,
};
use crate::intent::Intent;

/// Field: the VPC's IPv4 CIDR.
pub const CIDR_BLOCK: &str = "cidr_block";
/// Field: DNS resolution in the VPC.
pub const ENABLE_DNS_SUPPORT: &str = "enable_dns_support";
/// Field: DNS host names for instances.
pub const ENABLE_DNS_HOSTNAMES: &str = "enable_dns_hostnames";

/// The VPC component.
pub struct Vpc {
    aws: AwsClients,
}

impl Vpc {
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
            .describe_vpcs()
            .set_filters(Some(filters))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let mut found = Vec::new();
        for vpc in output.vpcs() {
            let (Some(id), Some(key)) = (vpc.vpc_id(), component_key(vpc.tags(), scope)) else {
                continue;
            };
            let lifecycle = match vpc.state() {
                Some(VpcState::Pending) => Lifecycle::Pending,
                _ => Lifecycle::Available,
            };
            let (support, hostnames) = tokio::try_join!(
                self.attribute(id, VpcAttributeName::EnableDnsSupport),
                self.attribute(id, VpcAttributeName::EnableDnsHostnames),
            )?;
            let mut resource = ObservedResource::new(VPC, key, id).lifecycle(lifecycle);
            if let Some(cidr) = vpc.cidr_block() {
                resource = resource.attr(CIDR_BLOCK, cidr);
            }
            if let Some(value) = support {
                resource = resource.attr(ENABLE_DNS_SUPPORT, value);
            }
            if let Some(value) = hostnames {
                resource = resource.attr(ENABLE_DNS_HOSTNAMES, value);
            }
            found.push(resource);
        }
        Ok(found)
    }

    async fn attribute(
        &self,
        vpc_id: &str,
        name: VpcAttributeName,
    ) -> Result<Option<bool>, ActError> {
        let output = self
            .aws
            .ec2()
            .await
            .describe_vpc_attribute()
            .vpc_id(vpc_id)
            .attribute(name.clone())
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let value = match name {
            VpcAttributeName::EnableDnsSupport => output.enable_dns_support(),
            _ => output.enable_dns_hostnames(),
        };
        Ok(value.and_then(AttributeBooleanValue::value))
    }

    async fn set_attribute(&self, vpc_id: &str, field: &str, value: bool) -> Result<(), ActError> {
        let flag = AttributeBooleanValue::builder().value(value).build();
        let call = self.aws.ec2().await.modify_vpc_attribute().vpc_id(vpc_id);
        let call = if field == ENABLE_DNS_SUPPORT {
            call.enable_dns_support(flag)
        } else {
            call.enable_dns_hostnames(flag)
        };
        call.send().await.map_err(|e| classify(&e))?;
        Ok(())
    }
}

impl Component<Intent> for Vpc {
    fn desired(&self, spec: &Intent) -> Result<Vec<DesiredResource>, DesiredError> {
        check_region(spec, &self.aws, VPC)?;
        let cidr = vpc_cidr(spec, VPC)?;
        Ok(vec![
            DesiredResource::new(VPC, keys::VPC)
                .immutable(CIDR_BLOCK, cidr.to_string())
                .updatable(ENABLE_DNS_SUPPORT, true)
                .updatable(ENABLE_DNS_HOSTNAMES, true),
        ])
    }
}

#[async_trait]
impl Driver for Vpc {
    fn kind(&self) -> Kind {
        VPC
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        // Tags in the create call (TagSpecifications) are authorized as ec2:CreateTags.
        &[
            "ec2:DescribeVpcs",
            "ec2:DescribeVpcAttribute",
            "ec2:CreateVpc",
            "ec2:CreateTags",
            "ec2:ModifyVpcAttribute",
            "ec2:DeleteVpc",
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
        let cidr = required(request.attrs, CIDR_BLOCK)?;
        let scope = request.scope;
        let created = create_or_find(
            LostAnswer::AwaitVisibility,
            &[],
            || async {
                let output = self
                    .aws
                    .ec2()
                    .await
                    .create_vpc()
                    .cidr_block(cidr)
                    .tag_specifications(tag_specification(ResourceType::Vpc, &request))
                    .customize()
                    .config_override(no_retries())
                    .send()
                    .await?;
                let vpc = output.vpc();
                let id = vpc.and_then(|v| v.vpc_id()).unwrap_or_default().to_owned();
                let lifecycle = match vpc.and_then(|v| v.state()) {
                    Some(VpcState::Pending) => Lifecycle::Pending,
                    _ => Lifecycle::Available,
                };
                Ok(ObservedResource::new(VPC, request.key, id)
                    .attr(CIDR_BLOCK, cidr)
                    .lifecycle(lifecycle))
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
        // DNS support is on by default and host names off: set both as desired, explicitly.
        let mut resource = created;
        for field in [ENABLE_DNS_SUPPORT, ENABLE_DNS_HOSTNAMES] {
            let Some(value) = request.attr(field).and_then(AttrValue::as_bool) else {
                continue;
            };
            if resource.attrs.get(field) != Some(&AttrValue::Bool(value)) {
                self.set_attribute(&resource.id, field, value).await?;
                resource.attrs.insert(field.to_owned(), value.into());
            }
        }
        Ok(resource)
    }

    async fn update(&self, request: UpdateRequest<'_>) -> Result<ObservedResource, ActError> {
        for field in request.changed {
            if let Some(value) = request.new_value(field).and_then(AttrValue::as_bool) {
                self.set_attribute(&request.current.id, field, value)
                    .await?;
            }
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
                .delete_vpc()
                .vpc_id(&current.id)
                .send()
                .await,
            "InvalidVpcID.NotFound",
            Deletion::Gone,
        )
    }
}
