//! The VPC: its CIDR (immutable) and DNS support and hostnames (on, corrected when they drift).
//!
//! DescribeVpcs does not return the DNS settings, so observing costs one DescribeVpcs for the
//! platform plus two DescribeVpcAttribute calls per VPC found (AWS answers one attribute a
//! call).

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName, VpcState};

use super::{VPC, check_region, keys, vpc_cidr};
use crate::aws::kit::{Deleted, Ec2Listing, Kit, Made, Seen, Sent, updated};
use crate::aws::tags::tag_specification;
use crate::aws::{classify, deletion};
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, Key, Kind, Lifecycle,
    ObservedResource, Scope, UpdateRequest, Wanted,
};
use crate::intent::Intent;
use crate::{driver, send_once};

crate::fields! {
    /// The VPC as the network wants it.
    desired VpcFields,
    /// The VPC's fields as its driver reads them.
    resolved VpcValues {
        /// The VPC's IPv4 CIDR.
        cidr_block / CIDR_BLOCK = "cidr_block": AttrValue => &'a str, immutable;
        /// DNS resolution in the VPC.
        enable_dns_support / ENABLE_DNS_SUPPORT = "enable_dns_support": AttrValue => bool, updatable;
        /// DNS host names for instances.
        enable_dns_hostnames / ENABLE_DNS_HOSTNAMES = "enable_dns_hostnames": AttrValue => bool, updatable;
    }
}

driver!(
    /// The VPC component.
    Vpc
);

#[async_trait]
impl Ec2Listing for Vpc {
    type Item = aws_sdk_ec2::types::Vpc;

    async fn observed(&self, vpc: &Self::Item, key: Key) -> Seen {
        let Some(id) = vpc.vpc_id() else {
            return Ok(None);
        };
        let (support, hostnames) = tokio::try_join!(
            self.attribute(id, VpcAttributeName::EnableDnsSupport),
            self.attribute(id, VpcAttributeName::EnableDnsHostnames),
        )?;
        let mut resource = ObservedResource::new(VPC, key, id).lifecycle(lifecycle(vpc.state()));
        if let Some(cidr) = vpc.cidr_block() {
            resource = resource.attr(CIDR_BLOCK, cidr);
        }
        if let Some(value) = support {
            resource = resource.attr(ENABLE_DNS_SUPPORT, value);
        }
        if let Some(value) = hostnames {
            resource = resource.attr(ENABLE_DNS_HOSTNAMES, value);
        }
        Ok(Some(resource))
    }
}

#[async_trait]
impl Kit for Vpc {
    const KIND: Kind = VPC;
    // Tags in the create call (TagSpecifications) are authorized as ec2:CreateTags.
    const IAM_ACTIONS: &'static [&'static str] = crate::actions![
        ec2: DescribeVpcs, DescribeVpcAttribute, CreateVpc, CreateTags, ModifyVpcAttribute,
            DeleteVpc;
    ];
    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let cidr = VpcValues::read(request.attrs)?.cidr_block;
        let call = self.aws.ec2().await.create_vpc().cidr_block(cidr);
        let output = send_once!(
            aws_sdk_ec2,
            call.tag_specifications(tag_specification(ResourceType::Vpc, request))
        )?;
        let vpc = output.vpc();
        let id = vpc.and_then(|v| v.vpc_id()).unwrap_or_default();
        Ok(ObservedResource::new(VPC, request.key, id)
            .attr(CIDR_BLOCK, cidr)
            .lifecycle(lifecycle(vpc.and_then(|v| v.state()))))
    }

    /// DNS support is on by default and host names off: both are set as desired, explicitly.
    async fn after_create(
        &self,
        mut resource: ObservedResource,
        request: &CreateRequest<'_>,
    ) -> Made {
        let fields = VpcValues::read(request.attrs)?;
        for (field, value) in [
            (ENABLE_DNS_SUPPORT, fields.enable_dns_support),
            (ENABLE_DNS_HOSTNAMES, fields.enable_dns_hostnames),
        ] {
            if resource.attrs.get(field) != Some(&AttrValue::Bool(value)) {
                self.set_attribute(&resource.id, field, value).await?;
                resource.attrs.insert(field.to_owned(), value.into());
            }
        }
        Ok(resource)
    }

    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        let fields = VpcValues::read(request.attrs)?;
        for (field, value) in [
            (ENABLE_DNS_SUPPORT, fields.enable_dns_support),
            (ENABLE_DNS_HOSTNAMES, fields.enable_dns_hostnames),
        ] {
            if request.changed.iter().any(|changed| changed == field) {
                self.set_attribute(&request.current.id, field, value)
                    .await?;
            }
        }
        Ok(updated(&request))
    }

    async fn send_delete(&self, current: &ObservedResource, _scope: &Scope) -> Deleted {
        let call = self.aws.ec2().await.delete_vpc().vpc_id(&current.id);
        deletion(call.send().await, "InvalidVpcID.NotFound", Deletion::Gone)
    }
}

fn lifecycle(state: Option<&VpcState>) -> Lifecycle {
    match state {
        Some(VpcState::Pending) => Lifecycle::Pending,
        _ => Lifecycle::Available,
    }
}

impl Vpc {
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
    fn desired(&self, spec: &Intent) -> Wanted {
        check_region(spec, &self.aws, VPC)?;
        let cidr = vpc_cidr(spec, VPC)?;
        let fields = VpcFields {
            cidr_block: cidr.to_string().into(),
            enable_dns_support: true.into(),
            enable_dns_hostnames: true.into(),
        };
        Ok(vec![fields.into_desired(VPC, keys::VPC)])
    }
}
