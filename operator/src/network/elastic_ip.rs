//! The NAT gateways' Elastic IP addresses: one per NAT gateway, allocated in the VPC domain,
//! released once their gateway is gone. Nothing changes in place.

use async_trait::async_trait;
use aws_sdk_ec2::types::{Address, DomainType, ResourceType};

use super::{ELASTIC_IP, keys, nat_zones};
use crate::aws::kit::{Deleted, Ec2Listing, Kit, Seen, Sent};
use crate::aws::tags::tag_specification;
use crate::aws::{classify, error_code};
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, Key, Kind, ObservedResource, Scope,
    Wanted,
};
use crate::intent::Intent;
use crate::{driver, send_once};

/// Output: the address itself.
pub const PUBLIC_IP: &str = "public_ip";

crate::fields! {
    /// An Elastic IP as the network wants it.
    desired AddressFields,
    /// An Elastic IP's fields as its driver reads them.
    resolved AddressValues {
        /// An address's domain (`vpc`).
        domain / DOMAIN = "domain": AttrValue => &'a str, immutable;
    }
}

driver!(
    /// The Elastic IPs component.
    ElasticIps
);

#[async_trait]
impl Ec2Listing for ElasticIps {
    type Item = Address;

    async fn observed(&self, address: &Address, key: Key) -> Seen {
        let Some(id) = address.allocation_id() else {
            return Ok(None);
        };
        let mut resource = ObservedResource::new(ELASTIC_IP, key, id);
        if let Some(domain) = address.domain() {
            resource = resource.attr(DOMAIN, domain.as_str());
        }
        if let Some(ip) = address.public_ip() {
            resource = resource.attr(PUBLIC_IP, ip);
        }
        Ok(Some(resource))
    }
}

#[async_trait]
impl Kit for ElasticIps {
    const KIND: Kind = ELASTIC_IP;
    // Tags in the create call (TagSpecifications) are authorized as ec2:CreateTags.
    const IAM_ACTIONS: &'static [&'static str] = crate::actions![
        ec2: DescribeAddresses, AllocateAddress, CreateTags, ReleaseAddress;
    ];
    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let call = self.aws.ec2().await.allocate_address();
        let output = send_once!(
            aws_sdk_ec2,
            call.domain(DomainType::Vpc)
                .tag_specifications(tag_specification(ResourceType::ElasticIp, request))
        )?;
        let id = output.allocation_id().unwrap_or_default();
        let mut resource = ObservedResource::new(ELASTIC_IP, request.key, id).attr(DOMAIN, "vpc");
        if let Some(ip) = output.public_ip() {
            resource = resource.attr(PUBLIC_IP, ip);
        }
        Ok(resource)
    }

    async fn send_delete(&self, current: &ObservedResource, _scope: &Scope) -> Deleted {
        let call = self.aws.ec2().await.release_address();
        match call.allocation_id(&current.id).send().await {
            Ok(_) => Ok(Deletion::Gone),
            Err(e) => match error_code(&e) {
                Some("InvalidAllocationID.NotFound") => Ok(Deletion::Gone),
                // Still held by a NAT gateway that is going away: AWS answers `AuthFailure`
                // or `InvalidIPAddress.InUse` until the gateway is `deleted`.
                Some(code @ ("AuthFailure" | "InvalidIPAddress.InUse")) => {
                    Err(ActError::retryable(code, classify(&e).to_string()))
                }
                _ => Err(classify(&e)),
            },
        }
    }
}

impl Component<Intent> for ElasticIps {
    fn desired(&self, spec: &Intent) -> Wanted {
        Ok(nat_zones(spec)
            .into_iter()
            .map(|az| {
                let fields = AddressFields {
                    domain: "vpc".into(),
                };
                fields.into_desired(ELASTIC_IP, keys::elastic_ip(az))
            })
            .collect())
    }
}
