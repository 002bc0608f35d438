//! The ways out of the VPC: the internet gateway (created, then attached; detached, then
//! deleted), the NAT gateways' Elastic IPs, and the NAT gateways themselves (with a client
//! token, `pending` until usable, `deleting` until their address and subnet are free).

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ConnectivityType, DomainType, Filter, NatGatewayState, ResourceType};

use super::{ELASTIC_IP, INTERNET_GATEWAY, NAT_GATEWAY, keys, nat_zones, required};
use crate::aws::tags::{component_filter, component_key, platform_filter, tag_specification};
use crate::aws::{
    AwsClients, LostAnswer, classify, create_or_find, deletion, error_code, errors::no_retries,
};
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, DesiredError, DesiredResource, Driver,
    Key, Kind, Lifecycle, ObservedResource, Reads, Scope, UpdateRequest,
};
use crate::intent::Intent;

/// Field: the VPC an internet gateway is attached to.
pub const VPC_ID: &str = "vpc_id";
/// Field: an address's domain (`vpc`).
pub const DOMAIN: &str = "domain";
/// Field: the public subnet a NAT gateway lives in.
pub const SUBNET_ID: &str = "subnet_id";
/// Field: the Elastic IP allocation a NAT gateway uses.
pub const ALLOCATION_ID: &str = "allocation_id";
/// Field: `public` for a NAT gateway with an Elastic IP.
pub const CONNECTIVITY_TYPE: &str = "connectivity_type";

/// Nothing here changes in place: every field is immutable.
fn no_update(request: &UpdateRequest<'_>) -> ActError {
    ActError::refused(
        "PlinthNotUpdatable",
        format!(
            "{} has no fields that change in place (asked to change {})",
            request.current.key,
            request.changed.join(", ")
        ),
    )
}

// --- Internet gateway ---------------------------------------------------------------------

/// The internet gateway component.
pub struct InternetGateway {
    aws: AwsClients,
}

impl InternetGateway {
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
            .describe_internet_gateways()
            .set_filters(Some(filters))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(output
            .internet_gateways()
            .iter()
            .filter_map(|igw| {
                let key = component_key(igw.tags(), scope)?;
                let mut resource =
                    ObservedResource::new(INTERNET_GATEWAY, key, igw.internet_gateway_id()?);
                // "available" (AWS) or "attached" (older answers) both mean attached.
                let attached = igw.attachments().iter().find(|a| {
                    a.state()
                        .is_some_and(|s| matches!(s.as_str(), "available" | "attached"))
                });
                if let Some(vpc) = attached.and_then(|a| a.vpc_id()) {
                    resource = resource.attr(VPC_ID, vpc);
                }
                if igw.attachments().iter().any(|a| {
                    a.state()
                        .is_some_and(|s| matches!(s.as_str(), "attaching" | "detaching"))
                }) {
                    resource = resource.lifecycle(Lifecycle::Pending);
                }
                Some(resource)
            })
            .collect())
    }
}

impl Component<Intent> for InternetGateway {
    fn desired(&self, _spec: &Intent) -> Result<Vec<DesiredResource>, DesiredError> {
        Ok(vec![
            // Attached in place: a gateway found unattached (its create's answer was lost and
            // AWS listed it only later) or left on a VPC replaced is moved, not made again.
            DesiredResource::new(INTERNET_GATEWAY, keys::INTERNET_GATEWAY)
                .updatable(VPC_ID, AttrValue::reference(keys::VPC)),
        ])
    }
}

#[async_trait]
impl Driver for InternetGateway {
    fn kind(&self) -> Kind {
        INTERNET_GATEWAY
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        // Tags in the create call (TagSpecifications) are authorized as ec2:CreateTags.
        &[
            "ec2:DescribeInternetGateways",
            "ec2:CreateInternetGateway",
            "ec2:CreateTags",
            "ec2:AttachInternetGateway",
            "ec2:DetachInternetGateway",
            "ec2:DeleteInternetGateway",
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
        let scope = request.scope;
        let mut resource = create_or_find(
            LostAnswer::AwaitVisibility,
            &[],
            || async {
                let output = self
                    .aws
                    .ec2()
                    .await
                    .create_internet_gateway()
                    .tag_specifications(tag_specification(ResourceType::InternetGateway, &request))
                    .customize()
                    .config_override(no_retries())
                    .send()
                    .await?;
                let id = output
                    .internet_gateway()
                    .and_then(|g| g.internet_gateway_id())
                    .unwrap_or_default();
                Ok(ObservedResource::new(INTERNET_GATEWAY, request.key, id))
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
        if resource.attrs.get(VPC_ID).and_then(AttrValue::as_str) != Some(vpc) {
            self.attach(&resource.id, vpc).await?;
            resource.attrs.insert(VPC_ID.to_owned(), vpc.into());
        }
        Ok(resource)
    }

    async fn update(&self, request: UpdateRequest<'_>) -> Result<ObservedResource, ActError> {
        let vpc = required(request.attrs, VPC_ID)?;
        let mut resource = request.current.clone();
        if let Some(old) = request
            .current
            .attrs
            .get(VPC_ID)
            .and_then(AttrValue::as_str)
        {
            self.detach(&resource.id, old).await?;
        }
        self.attach(&resource.id, vpc).await?;
        resource.attrs.insert(VPC_ID.to_owned(), vpc.into());
        Ok(resource)
    }

    async fn delete(
        &self,
        current: &ObservedResource,
        _scope: &Scope,
    ) -> Result<Deletion, ActError> {
        if let Some(vpc) = current.attrs.get(VPC_ID).and_then(AttrValue::as_str) {
            self.detach(&current.id, vpc).await?;
        }
        match self
            .aws
            .ec2()
            .await
            .delete_internet_gateway()
            .internet_gateway_id(&current.id)
            .send()
            .await
        {
            Ok(_) => Ok(Deletion::Gone),
            Err(e) if error_code(&e) == Some("InvalidInternetGatewayID.NotFound") => {
                Ok(Deletion::Gone)
            }
            Err(e) => Err(classify(&e)),
        }
    }
}

impl InternetGateway {
    async fn attach(&self, id: &str, vpc: &str) -> Result<(), ActError> {
        match self
            .aws
            .ec2()
            .await
            .attach_internet_gateway()
            .internet_gateway_id(id)
            .vpc_id(vpc)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Attached by an earlier attempt whose answer was lost.
            Err(e) if error_code(&e) == Some("Resource.AlreadyAssociated") => Ok(()),
            Err(e) => Err(classify(&e)),
        }
    }

    async fn detach(&self, id: &str, vpc: &str) -> Result<(), ActError> {
        match self
            .aws
            .ec2()
            .await
            .detach_internet_gateway()
            .internet_gateway_id(id)
            .vpc_id(vpc)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    error_code(&e),
                    Some("Gateway.NotAttached" | "InvalidInternetGatewayID.NotFound")
                ) =>
            {
                Ok(())
            }
            // Public addresses still mapped in the VPC (a NAT gateway going away): retry.
            Err(e) => Err(classify(&e)),
        }
    }
}

// --- Elastic IPs --------------------------------------------------------------------------

/// The NAT gateways' Elastic IP addresses.
pub struct ElasticIps {
    aws: AwsClients,
}

impl ElasticIps {
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
            .describe_addresses()
            .set_filters(Some(filters))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(output
            .addresses()
            .iter()
            .filter_map(|address| {
                let key = component_key(address.tags(), scope)?;
                let mut resource = ObservedResource::new(ELASTIC_IP, key, address.allocation_id()?);
                if let Some(domain) = address.domain() {
                    resource = resource.attr(DOMAIN, domain.as_str());
                }
                if let Some(ip) = address.public_ip() {
                    resource = resource.attr("public_ip", ip);
                }
                Some(resource)
            })
            .collect())
    }
}

impl Component<Intent> for ElasticIps {
    fn desired(&self, spec: &Intent) -> Result<Vec<DesiredResource>, DesiredError> {
        Ok(nat_zones(spec)
            .into_iter()
            .map(|az| {
                DesiredResource::new(ELASTIC_IP, keys::elastic_ip(az)).immutable(DOMAIN, "vpc")
            })
            .collect())
    }
}

#[async_trait]
impl Driver for ElasticIps {
    fn kind(&self) -> Kind {
        ELASTIC_IP
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        // Tags in the create call (TagSpecifications) are authorized as ec2:CreateTags.
        &[
            "ec2:DescribeAddresses",
            "ec2:AllocateAddress",
            "ec2:CreateTags",
            "ec2:ReleaseAddress",
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
        let scope = request.scope;
        create_or_find(
            LostAnswer::AwaitVisibility,
            &[],
            || async {
                let output = self
                    .aws
                    .ec2()
                    .await
                    .allocate_address()
                    .domain(DomainType::Vpc)
                    .tag_specifications(tag_specification(ResourceType::ElasticIp, &request))
                    .customize()
                    .config_override(no_retries())
                    .send()
                    .await?;
                let mut resource = ObservedResource::new(
                    ELASTIC_IP,
                    request.key,
                    output.allocation_id().unwrap_or_default(),
                )
                .attr(DOMAIN, "vpc");
                if let Some(ip) = output.public_ip() {
                    resource = resource.attr("public_ip", ip);
                }
                Ok(resource)
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
        .await
    }

    async fn update(&self, request: UpdateRequest<'_>) -> Result<ObservedResource, ActError> {
        Err(no_update(&request))
    }

    async fn delete(
        &self,
        current: &ObservedResource,
        _scope: &Scope,
    ) -> Result<Deletion, ActError> {
        match self
            .aws
            .ec2()
            .await
            .release_address()
            .allocation_id(&current.id)
            .send()
            .await
        {
            Ok(_) => Ok(Deletion::Gone),
            Err(e) => match error_code(&e) {
                Some("InvalidAllocationID.NotFound") => Ok(Deletion::Gone),
                // Still held by a NAT gateway that is going away: AWS answers `AuthFailure`
                // or `InvalidIPAddress.InUse` until the gateway is `deleted`.
                Some(code @ ("AuthFailure" | "InvalidIPAddress.InUse")) => Err(
                    ActError::retryable(code, crate::aws::classify(&e).to_string()),
                ),
                _ => Err(classify(&e)),
            },
        }
    }
}

// --- NAT gateways -------------------------------------------------------------------------

/// The NAT gateways component.
pub struct NatGateways {
    aws: AwsClients,
}

impl NatGateways {
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
            .describe_nat_gateways()
            .set_filter(Some(filters))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(output
            .nat_gateways()
            .iter()
            .filter_map(|nat| {
                let key = component_key(nat.tags(), scope)?;
                let lifecycle = match nat.state()? {
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
                    _ => return None,
                };
                let mut resource = ObservedResource::new(NAT_GATEWAY, key, nat.nat_gateway_id()?)
                    .lifecycle(lifecycle);
                if let Some(subnet) = nat.subnet_id() {
                    resource = resource.attr(SUBNET_ID, subnet);
                }
                if let Some(allocation) = nat
                    .nat_gateway_addresses()
                    .iter()
                    .find_map(|a| a.allocation_id())
                {
                    resource = resource.attr(ALLOCATION_ID, allocation);
                }
                resource = resource.attr(
                    CONNECTIVITY_TYPE,
                    nat.connectivity_type()
                        .map_or("public", ConnectivityType::as_str),
                );
                // A public NAT gateway maps a public address in the VPC: the internet gateway
                // cannot be detached until it is gone.
                resource.depends_on = BTreeSet::from([Key::from(keys::INTERNET_GATEWAY)]);
                Some(resource)
            })
            .collect())
    }
}

impl Component<Intent> for NatGateways {
    fn desired(&self, spec: &Intent) -> Result<Vec<DesiredResource>, DesiredError> {
        Ok(nat_zones(spec)
            .into_iter()
            .map(|az| {
                DesiredResource::new(NAT_GATEWAY, keys::nat_gateway(az))
                    .immutable(SUBNET_ID, AttrValue::reference(keys::public_subnet(az)))
                    .immutable(ALLOCATION_ID, AttrValue::reference(keys::elastic_ip(az)))
                    .immutable(CONNECTIVITY_TYPE, "public")
                    // AWS refuses a public NAT gateway in a VPC without an internet gateway.
                    .depends_on(keys::INTERNET_GATEWAY)
            })
            .collect())
    }
}

#[async_trait]
impl Driver for NatGateways {
    fn kind(&self) -> Kind {
        NAT_GATEWAY
    }

    /// The create carries a client token.
    fn idempotent_create(&self) -> bool {
        true
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        // Tags in the create call (TagSpecifications) are authorized as ec2:CreateTags.
        &[
            "ec2:DescribeNatGateways",
            "ec2:CreateNatGateway",
            "ec2:CreateTags",
            "ec2:DeleteNatGateway",
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
        // AWS answers a token it has seen with the gateway it made then, even one deleted since
        // (a gateway replaced, or deleted by hand): that token is spent, and the next one is
        // derived from the deleted gateway's id, so a resend after a lost answer still
        // carries the same token.
        let mut token = request.client_token.to_owned();
        for _ in 0..SPENT_TOKENS {
            let made = self.create_with(&request, &token).await?;
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

    async fn update(&self, request: UpdateRequest<'_>) -> Result<ObservedResource, ActError> {
        Err(no_update(&request))
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
                .delete_nat_gateway()
                .nat_gateway_id(&current.id)
                .send()
                .await,
            "NatGatewayNotFound",
            Deletion::InProgress,
        )
    }
}

/// How many spent client tokens a NAT gateway's create moves past before it gives up.
const SPENT_TOKENS: usize = 3;

impl NatGateways {
    /// One create of a NAT gateway with `token` (the driver's create says why the token
    /// may change).
    async fn create_with(
        &self,
        request: &CreateRequest<'_>,
        token: &str,
    ) -> Result<ObservedResource, ActError> {
        let subnet = required(request.attrs, SUBNET_ID)?;
        let allocation = required(request.attrs, ALLOCATION_ID)?;
        let scope = request.scope;
        create_or_find(
            LostAnswer::SendAgain,
            &["IdempotentParameterMismatch"],
            || async {
                let output = self
                    .aws
                    .ec2()
                    .await
                    .create_nat_gateway()
                    .subnet_id(subnet)
                    .allocation_id(allocation)
                    .connectivity_type(ConnectivityType::Public)
                    .client_token(token)
                    .tag_specifications(tag_specification(ResourceType::Natgateway, request))
                    .customize()
                    .config_override(no_retries())
                    .send()
                    .await?;
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
                let mut resource = ObservedResource::new(
                    NAT_GATEWAY,
                    request.key,
                    nat.and_then(|n| n.nat_gateway_id()).unwrap_or_default(),
                )
                .attr(SUBNET_ID, subnet)
                .attr(ALLOCATION_ID, allocation)
                .attr(CONNECTIVITY_TYPE, "public")
                .lifecycle(lifecycle);
                resource.depends_on = BTreeSet::from([Key::from(keys::INTERNET_GATEWAY)]);
                Ok(resource)
            },
            || async {
                let found = self
                    .list(
                        scope,
                        vec![platform_filter(scope), component_filter(request.key)],
                    )
                    .await?;
                Ok(found
                    .into_iter()
                    .find(|n| n.lifecycle != Lifecycle::Deleting))
            },
        )
        .await
    }
}
