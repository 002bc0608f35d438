//! The NAT gateways: one per zone (`PerZone`), one in the first zone (`Single`) or none, each in
//! its zone's public subnet with its own Elastic IP. Created with a client token, `pending`
//! until usable, `deleting` until their address and subnet are free; nothing changes in place.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ConnectivityType, NatGateway, NatGatewayState, ResourceType};

use super::{NAT_GATEWAY, keys, nat_zones};
use crate::aws::kit::{Deleted, Ec2Listing, Kit, Listing, Made, Seen, Select, Sent};
use crate::aws::tags::tag_specification;
use crate::aws::{LostAnswer, create_or_find, deletion};
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, Key, Kind, Lifecycle,
    ObservedResource, Reads, Scope, Wanted,
};
use crate::intent::Intent;
use crate::{driver, send_once};

crate::fields! {
    /// A NAT gateway as the network wants it.
    desired NatFields,
    /// A NAT gateway's fields as its driver reads them.
    resolved NatValues {
        /// The public subnet a NAT gateway lives in.
        subnet_id / SUBNET_ID = "subnet_id": AttrValue => &'a str, immutable;
        /// The Elastic IP allocation a NAT gateway uses.
        allocation_id / ALLOCATION_ID = "allocation_id": AttrValue => &'a str, immutable;
        /// `public` for a NAT gateway with an Elastic IP.
        connectivity_type / CONNECTIVITY_TYPE = "connectivity_type": AttrValue => &'a str, immutable;
    }
}

/// How many spent client tokens a create moves past before it gives up.
const SPENT_TOKENS: usize = 3;

driver!(
    /// The NAT gateways component.
    NatGateways
);

impl NatGateways {
    /// One create with `token` ([`Kit::create_resource`] says why the token may change).
    async fn create_with(
        &self,
        request: &CreateRequest<'_>,
        token: &str,
    ) -> Result<ObservedResource, ActError> {
        let fields = NatValues::read(request.attrs)?;
        let (subnet, allocation) = (fields.subnet_id, fields.allocation_id);
        create_or_find(
            LostAnswer::SendAgain,
            &["IdempotentParameterMismatch"],
            || async {
                let call = self.aws.ec2().await.create_nat_gateway();
                let output = send_once!(
                    aws_sdk_ec2,
                    call.subnet_id(subnet)
                        .allocation_id(allocation)
                        .connectivity_type(ConnectivityType::Public)
                        .client_token(token)
                        .tag_specifications(tag_specification(ResourceType::Natgateway, request))
                )?;
                let nat = output.nat_gateway();
                let lifecycle = match nat.and_then(|n| n.state()) {
                    Some(NatGatewayState::Available) => Lifecycle::Available,
                    // A spent token's answer: the gateway it made is gone or going.
                    Some(
                        NatGatewayState::Deleted
                        | NatGatewayState::Deleting
                        | NatGatewayState::Failed,
                    ) => Lifecycle::Deleting,
                    _ => Lifecycle::Pending,
                };
                let id = nat.and_then(|n| n.nat_gateway_id()).unwrap_or_default();
                let mut resource = ObservedResource::new(NAT_GATEWAY, request.key, id)
                    .attr(SUBNET_ID, subnet)
                    .attr(ALLOCATION_ID, allocation)
                    .attr(CONNECTIVITY_TYPE, "public")
                    .lifecycle(lifecycle);
                resource.depends_on = BTreeSet::from([Key::from(keys::INTERNET_GATEWAY)]);
                Ok(resource)
            },
            || async {
                let select = Select::Component(request.scope, request.key);
                let found = self.list(select, &Reads::new()).await?;
                Ok(found
                    .into_iter()
                    .find(|n| n.lifecycle != Lifecycle::Deleting))
            },
        )
        .await
    }
}

#[async_trait]
impl Ec2Listing for NatGateways {
    type Item = NatGateway;

    async fn observed(&self, nat: &NatGateway, key: Key) -> Seen {
        let (Some(id), Some(state)) = (nat.nat_gateway_id(), nat.state()) else {
            return Ok(None);
        };
        let lifecycle = match state {
            NatGatewayState::Pending => Lifecycle::Pending,
            NatGatewayState::Available => Lifecycle::Available,
            NatGatewayState::Deleting => Lifecycle::Deleting,
            NatGatewayState::Failed => Lifecycle::Failed {
                reason: format!(
                    "{}: {}",
                    nat.failure_code().unwrap_or("Failed"),
                    nat.failure_message().unwrap_or("the NAT gateway failed")
                ),
            },
            // `deleted` (kept in listings for an hour) and anything unknown: gone.
            _ => return Ok(None),
        };
        let mut resource = ObservedResource::new(NAT_GATEWAY, key, id).lifecycle(lifecycle);
        if let Some(subnet) = nat.subnet_id() {
            resource = resource.attr(SUBNET_ID, subnet);
        }
        let addresses = nat.nat_gateway_addresses().iter();
        if let Some(allocation) = addresses.clone().find_map(|a| a.allocation_id()) {
            resource = resource.attr(ALLOCATION_ID, allocation);
        }
        let connectivity = nat.connectivity_type();
        resource = resource.attr(
            CONNECTIVITY_TYPE,
            connectivity.map_or("public", ConnectivityType::as_str),
        );
        // A public NAT gateway maps a public address in the VPC: the internet gateway cannot
        // be detached until it is gone.
        resource.depends_on = BTreeSet::from([Key::from(keys::INTERNET_GATEWAY)]);
        Ok(Some(resource))
    }
}

#[async_trait]
impl Kit for NatGateways {
    const KIND: Kind = NAT_GATEWAY;
    // Tags in the create call (TagSpecifications) are authorized as ec2:CreateTags.
    const IAM_ACTIONS: &'static [&'static str] = crate::actions![
        ec2: DescribeNatGateways, CreateNatGateway, CreateTags, DeleteNatGateway;
    ];
    /// The create carries a client token.
    const LOST_ANSWER: LostAnswer = LostAnswer::SendAgain;
    /// Never called: [`Kit::create_resource`] is this kind's own.
    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        Ok(self.create_with(request, request.client_token).await?)
    }

    /// AWS answers a token it has seen with the gateway it made then, even one deleted since
    /// (a gateway replaced, or deleted by hand): that token is spent, and the next one is
    /// derived from the deleted gateway's id, so a resend after a lost answer still carries
    /// the same token.
    async fn create_resource(&self, request: &CreateRequest<'_>) -> Made {
        let mut token = request.client_token.to_owned();
        for _ in 0..SPENT_TOKENS {
            let made = self.create_with(request, &token).await?;
            if made.lifecycle != Lifecycle::Deleting {
                return Ok(made);
            }
            tracing::info!(key = %request.key, spent = %made.id, "the create's client token answered a deleted NAT gateway: sending a new one");
            token = format!("{}-{}", request.client_token, made.id);
        }
        Err(ActError::retryable(
            "PlinthClientTokenSpent",
            format!("{SPENT_TOKENS} client tokens in a row answered a deleted NAT gateway"),
        ))
    }

    async fn send_delete(&self, current: &ObservedResource, _scope: &Scope) -> Deleted {
        let call = self.aws.ec2().await.delete_nat_gateway();
        let result = call.nat_gateway_id(&current.id).send().await;
        deletion(result, "NatGatewayNotFound", Deletion::InProgress)
    }
}

impl Component<Intent> for NatGateways {
    fn desired(&self, spec: &Intent) -> Wanted {
        Ok(nat_zones(spec)
            .into_iter()
            .map(|az| {
                let fields = NatFields {
                    subnet_id: AttrValue::reference(keys::public_subnet(az)),
                    allocation_id: AttrValue::reference(keys::elastic_ip(az)),
                    connectivity_type: "public".into(),
                };
                fields
                    .into_desired(NAT_GATEWAY, keys::nat_gateway(az))
                    // AWS refuses a public NAT gateway in a VPC without an internet gateway.
                    .depends_on(keys::INTERNET_GATEWAY)
            })
            .collect())
    }
}
