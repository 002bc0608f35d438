//! The internet gateway: created, then attached to the VPC; detached, then deleted. The
//! attachment is the one field, and it moves in place (a gateway AWS listed late, unattached,
//! or left on a replaced VPC is attached, never made again).

use async_trait::async_trait;
use aws_sdk_ec2::types::{InternetGateway as AwsGateway, InternetGatewayAttachment, ResourceType};

use super::{INTERNET_GATEWAY, keys};
use crate::aws::kit::{Deleted, Ec2Listing, Kit, Made, Seen, Sent, ignore};
use crate::aws::{deletion, tags::tag_specification};
use crate::engine::{ActError, AttrValue, Component, CreateRequest, Deletion, Wanted};
use crate::engine::{Key, Kind, Lifecycle, ObservedResource, Scope, UpdateRequest};
use crate::{driver, intent::Intent, send_once};

crate::fields! {
    /// The internet gateway as the network wants it.
    desired GatewayFields,
    /// The internet gateway's fields as its driver reads them.
    resolved GatewayValues {
        /// The VPC the gateway is attached to.
        vpc_id / VPC_ID = "vpc_id": AttrValue => &'a str, updatable;
    }
}

driver!(
    /// The internet gateway component.
    InternetGateway
);

impl Component<Intent> for InternetGateway {
    fn desired(&self, _spec: &Intent) -> Wanted {
        let vpc_id = AttrValue::reference(keys::VPC);
        let gateway = GatewayFields { vpc_id };
        Ok(vec![
            gateway.into_desired(INTERNET_GATEWAY, keys::INTERNET_GATEWAY),
        ])
    }
}

#[async_trait]
impl Ec2Listing for InternetGateway {
    type Item = AwsGateway;

    async fn observed(&self, igw: &AwsGateway, key: Key) -> Seen {
        let Some(id) = igw.internet_gateway_id() else {
            return Ok(None);
        };
        let in_state = |states: &[&str]| {
            let state = |a: &&InternetGatewayAttachment| {
                a.state().is_some_and(|s| states.contains(&s.as_str()))
            };
            igw.attachments().iter().find(state)
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
    const IAM_ACTIONS: &'static [&'static str] = crate::actions![
        ec2: DescribeInternetGateways, CreateInternetGateway, CreateTags, AttachInternetGateway,
            DetachInternetGateway, DeleteInternetGateway;
    ];

    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let tags = tag_specification(ResourceType::InternetGateway, request);
        let call = self.aws.ec2().await.create_internet_gateway();
        let output = send_once!(aws_sdk_ec2, call.tag_specifications(tags))?;
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
    async fn after_create(&self, made: ObservedResource, request: &CreateRequest<'_>) -> Made {
        let fields = GatewayValues::read(request.attrs)?;
        self.attach(made, fields.vpc_id).await
    }

    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        let fields = GatewayValues::read(request.attrs)?;
        self.attach(request.current.clone(), fields.vpc_id).await
    }

    async fn send_delete(&self, current: &ObservedResource, _: &Scope) -> Deleted {
        if let Some(vpc) = current.attrs.get(VPC_ID).and_then(AttrValue::as_str) {
            self.detach(&current.id, vpc).await?;
        }
        let call = self.aws.ec2().await.delete_internet_gateway();
        let sent = call.internet_gateway_id(&current.id).send().await;
        deletion(sent, "InvalidInternetGatewayID.NotFound", Deletion::Gone)
    }
}

impl InternetGateway {
    /// Attaches the gateway to `vpc`, detaching it first from any other.
    async fn attach(&self, gateway: ObservedResource, vpc: &str) -> Made {
        let attached = gateway.attrs.get(VPC_ID).and_then(AttrValue::as_str);
        if attached == Some(vpc) {
            return Ok(gateway);
        }
        if let Some(old) = attached {
            self.detach(&gateway.id, old).await?;
        }
        let call = self.aws.ec2().await.attach_internet_gateway();
        let call = call.internet_gateway_id(&gateway.id).vpc_id(vpc);
        // Attached by an earlier attempt whose answer was lost: done.
        ignore(call.send().await, &["Resource.AlreadyAssociated"])?;
        Ok(gateway.attr(VPC_ID, vpc))
    }

    /// Detaches the gateway from `vpc`; already detached (or gone) is done. Public addresses
    /// still mapped in the VPC (a NAT gateway going away) fail it: retried by the next pass.
    async fn detach(&self, id: &str, vpc: &str) -> Result<(), ActError> {
        let call = self.aws.ec2().await.detach_internet_gateway();
        let sent = call.internet_gateway_id(id).vpc_id(vpc).send().await;
        ignore(
            sent,
            &["Gateway.NotAttached", "InvalidInternetGatewayID.NotFound"],
        )
    }
}
