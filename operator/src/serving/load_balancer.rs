//! The internet-facing Application Load Balancer in the public subnets, behind the load
//! balancer's security group, dropping invalid header fields (a request-smuggling defence AWS
//! leaves off by default).
//!
//! Subnets, security groups and the header attribute change in place (`SetSubnets`,
//! `SetSecurityGroups`, `ModifyLoadBalancerAttributes`); scheme, type and address type replace
//! it. Observing costs three calls whatever the number of platforms in the region:
//! `DescribeLoadBalancers` by the deterministic name, `DescribeTags` to confirm it is the
//! platform's, and `DescribeLoadBalancerAttributes` for the header attribute (drift in it is
//! corrected like any other field). `provisioning` is [`Lifecycle::Pending`]: listeners wait
//! for it.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    IpAddressType, LoadBalancer, LoadBalancerAttribute, LoadBalancerSchemeEnum,
    LoadBalancerStateEnum, LoadBalancerTypeEnum,
};

use super::{LOAD_BALANCER, NAME_LEN, create_tags, front, key_of, keys};
use crate::aws::kit::{Deleted, Kit, Listed, Listing, Made, Select, Sent, updated};
use crate::aws::{LostAnswer, classify, deletion};
use crate::driver;
use crate::engine::fields::owned;
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, DesiredResource, Key, Kind, Lifecycle,
    ObservedResource, Reads, Scope, UpdateRequest, Wanted,
};
use crate::intent::Intent;
use crate::network;

/// Observed only: the DNS name clients reach the platform at.
pub const DNS_NAME: &str = "dns_name";
/// Observed only: the VPC.
pub const VPC_ID: &str = "vpc_id";

/// The attribute behind [`DROP_INVALID_HEADER_FIELDS`].
const DROP_INVALID_ATTRIBUTE: &str = "routing.http.drop_invalid_header_fields.enabled";

/// The IAM actions this driver's calls need.
// CreateLoadBalancer makes the service-linked role on first use in an account.
const IAM_ACTIONS: &[&str] = crate::actions![
    elasticloadbalancing: DescribeLoadBalancers, DescribeTags, DescribeLoadBalancerAttributes,
        CreateLoadBalancer, AddTags, ModifyLoadBalancerAttributes, SetSubnets, SetSecurityGroups,
        DeleteLoadBalancer;
    iam: CreateServiceLinkedRole;
];

driver!(
    /// The load balancer component.
    LoadBalancers
);

crate::fields! {
    /// The load balancer as serving wants it.
    desired BalancerFields,
    /// The load balancer's fields as its driver reads them.
    resolved BalancerValues {
        /// `internet-facing`.
        scheme / SCHEME = "scheme": AttrValue => &'a str, immutable;
        /// `application`.
        balancer_type / TYPE = "type": AttrValue => &'a str, immutable;
        /// `ipv4`.
        ip_address_type / IP_ADDRESS_TYPE = "ip_address_type": AttrValue => &'a str, immutable;
        /// The subnets, a set of ids (one public subnet per zone).
        subnets / SUBNETS = "subnets": AttrValue => BTreeSet<&'a str>, updatable;
        /// The security groups, a set of ids.
        security_groups / SECURITY_GROUPS = "security_groups": AttrValue => BTreeSet<&'a str>, updatable;
        /// The `routing.http.drop_invalid_header_fields.enabled` attribute.
        drop_invalid_header_fields / DROP_INVALID_HEADER_FIELDS = "drop_invalid_header_fields": AttrValue => bool, updatable;
    }
}

/// The desired load balancer of a spec (pure).
pub fn desired_load_balancer(intent: &Intent) -> DesiredResource {
    let subnets = intent
        .network
        .availability_zones
        .iter()
        .map(|az| AttrValue::reference(network::keys::public_subnet(az)));
    let fields = BalancerFields {
        scheme: "internet-facing".into(),
        balancer_type: "application".into(),
        ip_address_type: "ipv4".into(),
        subnets: AttrValue::set(subnets),
        security_groups: AttrValue::set([AttrValue::reference(network::keys::LOAD_BALANCER_SG)]),
        drop_invalid_header_fields: true.into(),
    };
    fields.into_desired(LOAD_BALANCER, keys::LOAD_BALANCER)
}

/// The fields of a load balancer as AWS describes it (attributes apart).
fn observed_of(key: Key, lb: &LoadBalancer) -> Option<ObservedResource> {
    let lifecycle = match lb.state().and_then(|s| s.code()) {
        Some(LoadBalancerStateEnum::Provisioning) | None => Lifecycle::Pending,
        Some(LoadBalancerStateEnum::Failed) => Lifecycle::Failed {
            reason: lb
                .state()
                .and_then(|s| s.reason())
                .unwrap_or("the load balancer failed")
                .to_owned(),
        },
        Some(_) => Lifecycle::Available,
    };
    let mut resource =
        ObservedResource::new(LOAD_BALANCER, key, lb.load_balancer_arn()?).lifecycle(lifecycle);
    if let Some(scheme) = lb.scheme() {
        resource = resource.attr(SCHEME, scheme.as_str());
    }
    if let Some(kind) = lb.r#type() {
        resource = resource.attr(TYPE, kind.as_str());
    }
    if let Some(address) = lb.ip_address_type() {
        resource = resource.attr(IP_ADDRESS_TYPE, address.as_str());
    }
    resource = resource
        .attr(
            SUBNETS,
            AttrValue::set(
                lb.availability_zones()
                    .iter()
                    .filter_map(|z| z.subnet_id())
                    .map(AttrValue::str),
            ),
        )
        .attr(
            SECURITY_GROUPS,
            AttrValue::set(lb.security_groups().iter().map(AttrValue::str)),
        );
    if let Some(dns) = lb.dns_name() {
        resource = resource.attr(DNS_NAME, dns);
    }
    if let Some(vpc) = lb.vpc_id() {
        resource = resource.attr(VPC_ID, vpc);
    }
    Some(resource)
}

/// The ids in a set field.
impl LoadBalancers {
    async fn read(&self, scope: &Scope, reads: &Reads) -> Result<Vec<ObservedResource>, ActError> {
        let front = front(&self.aws, scope, reads).await?;
        let Some(front) = front.as_ref() else {
            return Ok(Vec::new());
        };
        let lb = &front.load_balancer;
        let Some(key) = lb
            .load_balancer_arn()
            .and_then(|arn| front.tags.get(arn))
            .and_then(|tags| key_of(tags, scope))
        else {
            return Ok(Vec::new());
        };
        let Some(mut resource) = observed_of(key, lb) else {
            return Ok(Vec::new());
        };
        if let Some(drop) = self.drop_invalid(&resource.id).await? {
            resource = resource.attr(DROP_INVALID_HEADER_FIELDS, drop);
        }
        Ok(vec![resource])
    }

    async fn drop_invalid(&self, arn: &str) -> Result<Option<bool>, ActError> {
        let output = self
            .aws
            .elbv2()
            .await
            .describe_load_balancer_attributes()
            .load_balancer_arn(arn)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        // AWS lists every attribute; an emulator may leave out those never set (off).
        Ok(Some(output.attributes().iter().any(|a| {
            a.key() == Some(DROP_INVALID_ATTRIBUTE) && a.value() == Some("true")
        })))
    }

    async fn set_drop_invalid(&self, arn: &str, value: bool) -> Result<(), ActError> {
        self.aws
            .elbv2()
            .await
            .modify_load_balancer_attributes()
            .load_balancer_arn(arn)
            .attributes(
                LoadBalancerAttribute::builder()
                    .key(DROP_INVALID_ATTRIBUTE)
                    .value(value.to_string())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }
}

impl Component<Intent> for LoadBalancers {
    fn desired(&self, intent: &Intent) -> Wanted {
        Ok(vec![desired_load_balancer(intent)])
    }
}

#[async_trait]
impl Listing for LoadBalancers {
    async fn list(&self, select: Select<'_>, reads: &Reads) -> Listed {
        self.read(select.scope(), reads).await
    }
}

#[async_trait]
impl Kit for LoadBalancers {
    const KIND: Kind = LOAD_BALANCER;
    const IAM_ACTIONS: &'static [&'static str] = IAM_ACTIONS;
    /// AWS answers a same-settings create of the name with the existing load balancer, and
    /// `DuplicateLoadBalancerName` when the settings differ: then it is found by its tags and
    /// the next pass corrects what differs.
    const LOST_ANSWER: LostAnswer = LostAnswer::SendAgain;
    const DUPLICATE_CODES: &'static [&'static str] = &["DuplicateLoadBalancerName"];

    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let fields = BalancerValues::read(request.attrs)?;
        let call = self.aws.elbv2().await.create_load_balancer();
        let output = crate::send_once!(
            aws_sdk_elasticloadbalancingv2,
            call.name(request.name(NAME_LEN))
                .set_subnets(Some(owned(&fields.subnets)))
                .set_security_groups(Some(owned(&fields.security_groups)))
                .scheme(LoadBalancerSchemeEnum::from(fields.scheme))
                .r#type(LoadBalancerTypeEnum::from(fields.balancer_type))
                .ip_address_type(IpAddressType::from(fields.ip_address_type))
                .set_tags(Some(create_tags(request, &[])))
        )?;
        let made = output.load_balancers().first();
        let made = made.and_then(|lb| observed_of(request.key.clone(), lb));
        Ok(made.ok_or_else(|| {
            ActError::retryable(
                "PlinthNotReturned",
                "CreateLoadBalancer answered without the load balancer",
            )
        })?)
    }

    /// The attributes a create cannot carry, on the load balancer made or found.
    async fn after_create(
        &self,
        mut resource: ObservedResource,
        request: &CreateRequest<'_>,
    ) -> Made {
        let value = BalancerValues::read(request.attrs)?.drop_invalid_header_fields;
        self.set_drop_invalid(&resource.id, value).await?;
        resource = resource.attr(DROP_INVALID_HEADER_FIELDS, value);
        Ok(resource)
    }

    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        let arn = &request.current.id;
        let fields = BalancerValues::read(request.attrs)?;
        for field in request.changed {
            match field.as_str() {
                SUBNETS => {
                    self.aws
                        .elbv2()
                        .await
                        .set_subnets()
                        .load_balancer_arn(arn)
                        .set_subnets(Some(owned(&fields.subnets)))
                        .send()
                        .await
                        .map_err(|e| classify(&e))?;
                }
                SECURITY_GROUPS => {
                    self.aws
                        .elbv2()
                        .await
                        .set_security_groups()
                        .load_balancer_arn(arn)
                        .set_security_groups(Some(owned(&fields.security_groups)))
                        .send()
                        .await
                        .map_err(|e| classify(&e))?;
                }
                DROP_INVALID_HEADER_FIELDS => {
                    let value = fields.drop_invalid_header_fields;
                    self.set_drop_invalid(arn, value).await?;
                }
                other => {
                    return Err(ActError::refused(
                        "PlinthNotUpdatable",
                        format!("{other} of a load balancer cannot change in place"),
                    ));
                }
            }
        }
        Ok(updated(&request))
    }

    async fn send_delete(&self, current: &ObservedResource, _scope: &Scope) -> Deleted {
        // The listeners go with it; its network interfaces linger a little, so the security
        // group's and subnets' deletes may answer DependencyViolation (retried) for a while.
        let call = self.aws.elbv2().await.delete_load_balancer();
        let result = call.load_balancer_arn(&current.id).send().await;
        deletion(result, "LoadBalancerNotFound", Deletion::Gone)
    }
}
