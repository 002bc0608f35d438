//! The internet gateway: created, then attached to the VPC; detached, then deleted. The
//! attachment is the one field, and it moves in place (a gateway AWS listed late, unattached,
//! or left on a replaced VPC is attached, never made again).

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, InternetGateway as AwsGateway, ResourceType, Tag};

use super::{INTERNET_GATEWAY, keys};
use crate::aws::kit::{Ec2Listing, Kit, Select, ec2_list, ignore, required};
use crate::aws::tags::tag_specification;
use crate::aws::{AwsClients, SendError, classify, deletion};
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, DesiredError, DesiredResource, Key,
    Kind, Lifecycle, ObservedResource, Reads, Scope, UpdateRequest,
};
use crate::intent::Intent;
use crate::no_retries;

/// Field: the VPC the gateway is attached to.
pub const VPC_ID: &str = "vpc_id";

/// The internet gateway component.
pub struct InternetGateway {
    aws: AwsClients,
}

#[async_trait]
impl Ec2Listing for InternetGateway {
    type Item = AwsGateway;

    async fn describe(&self, filters: Vec<Filter>) -> Result<Vec<AwsGateway>, ActError> {
        let ec2 = self.aws.ec2().await;
        let call = ec2.describe_internet_gateways().set_filters(Some(filters));
        let pages = call.into_paginator().items().send();
        pages.try_collect().await.map_err(|e| classify(&e))
    }

    fn tags(item: &AwsGateway) -> &[Tag] {
        item.tags()
    }

    async fn observed(
        &self,
        igw: &AwsGateway,
        key: Key,
    ) -> Result<Option<ObservedResource>, ActError> {
        let Some(id) = igw.internet_gateway_id() else {
            return Ok(None);
        };
        let in_state = |states: &[&str]| {
            igw.attachments()
                .iter()
                .find(|a| a.state().is_some_and(|s| states.contains(&s.as_str())))
        };
        let mut resource = ObservedResource::new(INTERNET_GATEWAY, key, id);
        // "available" (AWS) or "attached" (older answers) both mean attached.
        if let Some(vpc) = in_state(&["available", "attached"]).and_then(|a| a.vpc_id()) {
            resource = resource.attr(VPC_ID, vpc);
        }
        if in_state(&["attaching", "detaching"]).is_some() {
            resource = resource.lifecycle(Lifecycle::Pending);
        }
        Ok(Some(resource))
    }
}

#[async_trait]
impl Kit for InternetGateway {
    const KIND: Kind = INTERNET_GATEWAY;
    // Tags in the create call (TagSpecifications) are authorized as ec2:CreateTags.
    const IAM_ACTIONS: &'static [&'static str] = &[
        "ec2:DescribeInternetGateways",
        "ec2:CreateInternetGateway",
        "ec2:CreateTags",
        "ec2:AttachInternetGateway",
        "ec2:DetachInternetGateway",
        "ec2:DeleteInternetGateway",
    ];
    async fn list(
        &self,
        select: Select<'_>,
        _reads: &Reads,
    ) -> Result<Vec<ObservedResource>, ActError> {
        ec2_list(self, select).await
    }

    async fn send_create(
        &self,
        request: &CreateRequest<'_>,
    ) -> Result<ObservedResource, SendError> {
        let call = self.aws.ec2().await.create_internet_gateway();
        let output = call
            .tag_specifications(tag_specification(ResourceType::InternetGateway, request))
            .customize()
            .config_override(no_retries!(aws_sdk_ec2))
            .send()
            .await?;
        let id = output
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id());
        Ok(ObservedResource::new(
            INTERNET_GATEWAY,
            request.key,
            id.unwrap_or_default(),
        ))
    }

    /// The attachment, on the gateway made or found (a found one may be attached already).
    async fn after_create(
        &self,
        made: ObservedResource,
        request: &CreateRequest<'_>,
    ) -> Result<ObservedResource, ActError> {
        self.update_in_place(UpdateRequest {
            current: &made,
            attrs: request.attrs,
            changed: &[],
            scope: request.scope,
        })
        .await
    }

    async fn update_in_place(
        &self,
        request: UpdateRequest<'_>,
    ) -> Result<ObservedResource, ActError> {
        let vpc = required(request.attrs, VPC_ID)?;
        let mut resource = request.current.clone();
        let attached = resource
            .attrs
            .get(VPC_ID)
            .and_then(AttrValue::as_str)
            .map(str::to_owned);
        if attached.as_deref() == Some(vpc) {
            return Ok(resource);
        }
        if let Some(old) = attached {
            self.detach(&resource.id, &old).await?;
        }
        let ec2 = self.aws.ec2().await;
        let call = ec2
            .attach_internet_gateway()
            .internet_gateway_id(&resource.id)
            .vpc_id(vpc);
        // Attached by an earlier attempt whose answer was lost: done.
        ignore(call.send().await, &["Resource.AlreadyAssociated"])?;
        resource.attrs.insert(VPC_ID.to_owned(), vpc.into());
        Ok(resource)
    }

    async fn send_delete(
        &self,
        current: &ObservedResource,
        _scope: &Scope,
    ) -> Result<Deletion, ActError> {
        if let Some(vpc) = current.attrs.get(VPC_ID).and_then(AttrValue::as_str) {
            self.detach(&current.id, vpc).await?;
        }
        let call = self
            .aws
            .ec2()
            .await
            .delete_internet_gateway()
            .internet_gateway_id(&current.id);
        deletion(
            call.send().await,
            "InvalidInternetGatewayID.NotFound",
            Deletion::Gone,
        )
    }
}

impl Component<Intent> for InternetGateway {
    fn desired(&self, _spec: &Intent) -> Result<Vec<DesiredResource>, DesiredError> {
        let vpc = AttrValue::reference(keys::VPC);
        Ok(vec![
            DesiredResource::new(INTERNET_GATEWAY, keys::INTERNET_GATEWAY).updatable(VPC_ID, vpc),
        ])
    }
}

impl InternetGateway {
    /// The component acting through `aws`.
    pub fn new(aws: AwsClients) -> Self {
        Self { aws }
    }

    /// Detaches the gateway from `vpc`; already detached (or gone) is done. Public addresses
    /// still mapped in the VPC (a NAT gateway going away) fail it: retried by the next pass.
    async fn detach(&self, id: &str, vpc: &str) -> Result<(), ActError> {
        let ec2 = self.aws.ec2().await;
        let call = ec2
            .detach_internet_gateway()
            .internet_gateway_id(id)
            .vpc_id(vpc);
        ignore(
            call.send().await,
            &["Gateway.NotAttached", "InvalidInternetGatewayID.NotFound"],
        )
    }
}
