//! Security groups and their rules, each group's ingress and egress a set compared as a set and
//! corrected with Authorize / Revoke of the difference:
//!
//! | group | ingress | egress |
//! |---|---|---|
//! | load balancer | 80 and 443 from `spec.loadBalancer.allowedCidrs` | the app port to the VPC |
//! | app | the app port from the load balancer's group only | 443 anywhere (S3, Secrets Manager, CloudWatch through NAT); 3306 to the VPC |
//! | database | 3306 from the app's group only | none |
//!
//! Egress names the VPC's CIDR rather than the peer group: a group reference both ways would
//! make the two groups depend on each other, and the graph must have an order.
//! AWS's default "all traffic out" rule on a new group is revoked by the same difference.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, ResourceType, SecurityGroup, UserIdGroupPair,
};
use plinth_crds::DataPlatformSpec;

use super::{SECURITY_GROUP, keys, vpc_cidr};
use crate::aws::deletion;
use crate::aws::kit::{Deleted, Ec2Listing, Kit, Made, Seen, Sent, ignore, set_of, updated};
use crate::aws::tags::tag_specification;
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, DesiredError, DesiredResource, Key,
    Kind, ObservedResource, Scope, UpdateRequest, Wanted,
};
use crate::intent::Intent;
use crate::{driver, send_once};

/// Observed only: the group's name.
pub const GROUP_NAME: &str = "group_name";

crate::fields! {
    /// A security group as the network wants it.
    desired GroupFields,
    /// A security group's fields as its driver reads them.
    resolved GroupValues {
        /// The VPC.
        vpc_id / VPC_ID = "vpc_id": AttrValue => &'a str, immutable;
        /// The group's description (immutable in AWS).
        description / DESCRIPTION = "description": AttrValue => &'a str, immutable;
        /// Inbound rules, a set of [`rule`]s.
        ingress / INGRESS = "ingress": AttrValue => &'a BTreeSet<AttrValue>, updatable;
        /// Outbound rules, a set of [`rule`]s.
        egress / EGRESS = "egress": AttrValue => &'a BTreeSet<AttrValue>, updatable;
    }
}

impl GroupValues<'_> {
    /// The rules of one direction: egress or ingress.
    fn rules(&self, egress: bool) -> &BTreeSet<AttrValue> {
        if egress { self.egress } else { self.ingress }
    }
}

/// The port Aurora MySQL listens on.
pub const MYSQL_PORT: i64 = 3306;
/// AWS's limit on a security group name.
const NAME_LEN: usize = 255;

/// Where a rule's traffic comes from or goes to.
#[derive(Clone, Debug)]
pub enum Peer {
    /// An IPv4 or IPv6 range.
    Cidr(String),
    /// Another group, by reference or id.
    Group(AttrValue),
}

/// One rule as a set member: protocol (`tcp`, or `-1` for all), port range (`-1` when the
/// protocol has none) and one peer.
pub fn rule(protocol: &str, from_port: i64, to_port: i64, peer: Peer) -> AttrValue {
    let mut map = BTreeMap::from([
        ("protocol".to_owned(), AttrValue::str(protocol)),
        ("from_port".to_owned(), AttrValue::Int(from_port)),
        ("to_port".to_owned(), AttrValue::Int(to_port)),
    ]);
    match peer {
        Peer::Cidr(cidr) => map.insert("cidr".to_owned(), AttrValue::Str(cidr)),
        Peer::Group(group) => map.insert("group".to_owned(), group),
    };
    AttrValue::Map(map)
}

/// A TCP rule for one port.
pub fn tcp(port: i64, peer: Peer) -> AttrValue {
    rule("tcp", port, port, peer)
}

/// The desired groups of a spec (pure).
pub fn desired_groups(spec: &DataPlatformSpec) -> Result<Vec<DesiredResource>, DesiredError> {
    let vpc = vpc_cidr(spec, SECURITY_GROUP)?.to_string();
    let app_port = i64::from(spec.app.port);
    let group = |key: &str, description: &str, ingress: Vec<AttrValue>, egress: Vec<AttrValue>| {
        let fields = GroupFields {
            vpc_id: AttrValue::reference(keys::VPC),
            description: description.into(),
            ingress: AttrValue::set(ingress),
            egress: AttrValue::set(egress),
        };
        fields.into_desired(SECURITY_GROUP, key)
    };
    let lb_ingress = spec
        .load_balancer
        .allowed_cidrs
        .iter()
        .flat_map(|cidr| [80, 443].map(|port| tcp(port, Peer::Cidr(cidr.clone()))))
        .collect();
    Ok(vec![
        group(
            keys::LOAD_BALANCER_SG,
            "Plinth load balancer: HTTP and HTTPS from the allowed ranges",
            lb_ingress,
            vec![tcp(app_port, Peer::Cidr(vpc.clone()))],
        ),
        group(
            keys::APP_SG,
            "Plinth app instances: the app port from the load balancer only",
            vec![tcp(
                app_port,
                Peer::Group(AttrValue::reference(keys::LOAD_BALANCER_SG)),
            )],
            vec![
                tcp(443, Peer::Cidr("0.0.0.0/0".to_owned())),
                tcp(MYSQL_PORT, Peer::Cidr(vpc)),
            ],
        ),
        group(
            keys::DATABASE_SG,
            "Plinth database: MySQL from the app instances only",
            vec![tcp(
                MYSQL_PORT,
                Peer::Group(AttrValue::reference(keys::APP_SG)),
            )],
            Vec::new(),
        ),
    ])
}

/// Flattens AWS's permissions (several peers per entry) into one rule per peer.
pub fn rules_of(permissions: &[IpPermission]) -> BTreeSet<AttrValue> {
    let mut rules = BTreeSet::new();
    for permission in permissions {
        let protocol = permission.ip_protocol().unwrap_or("-1");
        let (from, to) = if protocol == "-1" {
            (-1, -1)
        } else {
            (
                i64::from(permission.from_port().unwrap_or(-1)),
                i64::from(permission.to_port().unwrap_or(-1)),
            )
        };
        for range in permission.ip_ranges() {
            if let Some(cidr) = range.cidr_ip() {
                rules.insert(rule(protocol, from, to, Peer::Cidr(cidr.to_owned())));
            }
        }
        for range in permission.ipv6_ranges() {
            if let Some(cidr) = range.cidr_ipv6() {
                rules.insert(rule(protocol, from, to, Peer::Cidr(cidr.to_owned())));
            }
        }
        for pair in permission.user_id_group_pairs() {
            if let Some(group) = pair.group_id() {
                rules.insert(rule(protocol, from, to, Peer::Group(AttrValue::str(group))));
            }
        }
        for list in permission.prefix_list_ids() {
            if let Some(id) = list.prefix_list_id() {
                rules.insert(rule(protocol, from, to, Peer::Cidr(id.to_owned())));
            }
        }
    }
    rules
}

/// The AWS permission for one resolved rule.
pub fn permission_of(rule: &AttrValue) -> Option<IpPermission> {
    let AttrValue::Map(map) = rule else {
        return None;
    };
    let protocol = map.get("protocol")?.as_str()?;
    let mut permission = IpPermission::builder().ip_protocol(protocol);
    if protocol != "-1" {
        let from = i32::try_from(map.get("from_port")?.as_int()?).ok()?;
        let to = i32::try_from(map.get("to_port")?.as_int()?).ok()?;
        permission = permission.from_port(from).to_port(to);
    }
    if let Some(group) = map.get("group").and_then(AttrValue::as_str) {
        permission =
            permission.user_id_group_pairs(UserIdGroupPair::builder().group_id(group).build());
    } else {
        let cidr = map.get("cidr")?.as_str()?;
        permission = if cidr.contains(':') {
            permission.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(cidr).build())
        } else {
            permission.ip_ranges(IpRange::builder().cidr_ip(cidr).build())
        };
    }
    Some(permission.build())
}

fn observed_group(group: &SecurityGroup, key: Key) -> Option<ObservedResource> {
    let mut resource = ObservedResource::new(SECURITY_GROUP, key, group.group_id()?)
        .attr(INGRESS, AttrValue::Set(rules_of(group.ip_permissions())))
        .attr(
            EGRESS,
            AttrValue::Set(rules_of(group.ip_permissions_egress())),
        );
    if let Some(vpc) = group.vpc_id() {
        resource = resource.attr(VPC_ID, vpc);
    }
    if let Some(description) = group.description() {
        resource = resource.attr(DESCRIPTION, description);
    }
    if let Some(name) = group.group_name() {
        resource = resource.attr(GROUP_NAME, name);
    }
    Some(resource)
}

driver!(
    /// The security groups component.
    SecurityGroups
);

impl SecurityGroups {
    /// Revokes the rules of `current` not in `desired`, then authorizes the missing ones.
    async fn sync_rules(
        &self,
        group_id: &str,
        egress: bool,
        current: &BTreeSet<AttrValue>,
        desired: &BTreeSet<AttrValue>,
    ) -> Result<(), ActError> {
        let revoke: Vec<IpPermission> = current
            .difference(desired)
            .filter_map(permission_of)
            .collect();
        let authorize: Vec<IpPermission> = desired
            .difference(current)
            .filter_map(permission_of)
            .collect();
        // A rule already gone (revoke) or already there (authorize) is what was wanted; each
        // call waits for the rate limit on its own.
        let (gone, there) = (
            &["InvalidPermission.NotFound"],
            &["InvalidPermission.Duplicate"],
        );
        if !revoke.is_empty() {
            let revoke = Some(revoke);
            if egress {
                let call = self
                    .aws
                    .ec2()
                    .await
                    .revoke_security_group_egress()
                    .group_id(group_id);
                ignore(call.set_ip_permissions(revoke).send().await, gone)?;
            } else {
                let call = self
                    .aws
                    .ec2()
                    .await
                    .revoke_security_group_ingress()
                    .group_id(group_id);
                ignore(call.set_ip_permissions(revoke).send().await, gone)?;
            }
        }
        if !authorize.is_empty() {
            let authorize = Some(authorize);
            if egress {
                let call = self
                    .aws
                    .ec2()
                    .await
                    .authorize_security_group_egress()
                    .group_id(group_id);
                ignore(call.set_ip_permissions(authorize).send().await, there)?;
            } else {
                let call = self
                    .aws
                    .ec2()
                    .await
                    .authorize_security_group_ingress()
                    .group_id(group_id);
                ignore(call.set_ip_permissions(authorize).send().await, there)?;
            }
        }
        Ok(())
    }
}

impl Component<Intent> for SecurityGroups {
    fn desired(&self, spec: &Intent) -> Wanted {
        desired_groups(spec)
    }
}

#[async_trait]
impl Ec2Listing for SecurityGroups {
    type Item = SecurityGroup;

    async fn observed(&self, group: &SecurityGroup, key: Key) -> Seen {
        Ok(observed_group(group, key))
    }
}

#[async_trait]
impl Kit for SecurityGroups {
    const KIND: Kind = SECURITY_GROUP;
    // Tags in the create call (TagSpecifications) are authorized as ec2:CreateTags.
    const IAM_ACTIONS: &'static [&'static str] = crate::actions![
        ec2: DescribeSecurityGroups, CreateSecurityGroup, CreateTags,
            AuthorizeSecurityGroupIngress, AuthorizeSecurityGroupEgress,
            RevokeSecurityGroupIngress, RevokeSecurityGroupEgress, DeleteSecurityGroup;
    ];
    /// The name is unique in the VPC.
    const DUPLICATE_CODES: &'static [&'static str] = &["InvalidGroup.Duplicate"];
    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let fields = GroupValues::read(request.attrs)?;
        let (vpc, description) = (fields.vpc_id, fields.description);
        let name = request.name(NAME_LEN);
        let call = self.aws.ec2().await.create_security_group();
        let output = send_once!(
            aws_sdk_ec2,
            call.group_name(&name)
                .description(description)
                .vpc_id(vpc)
                .tag_specifications(tag_specification(ResourceType::SecurityGroup, request))
        )?;
        // A new group has no inbound rules and AWS's "all traffic out".
        let all_out = rule("-1", -1, -1, Peer::Cidr("0.0.0.0/0".to_owned()));
        let id = output.group_id().unwrap_or_default();
        Ok(ObservedResource::new(SECURITY_GROUP, request.key, id)
            .attr(VPC_ID, vpc)
            .attr(DESCRIPTION, description)
            .attr(GROUP_NAME, name.as_str())
            .attr(INGRESS, AttrValue::set([]))
            .attr(EGRESS, AttrValue::set([all_out])))
    }

    /// The rules, on the group made or found.
    async fn after_create(
        &self,
        mut resource: ObservedResource,
        request: &CreateRequest<'_>,
    ) -> Made {
        let fields = GroupValues::read(request.attrs)?;
        for (field, egress) in [(INGRESS, false), (EGRESS, true)] {
            let desired = fields.rules(egress).clone();
            self.sync_rules(
                &resource.id,
                egress,
                &set_of(resource.attrs.get(field)),
                &desired,
            )
            .await?;
            resource
                .attrs
                .insert(field.to_owned(), AttrValue::Set(desired));
        }
        Ok(resource)
    }

    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        let fields = GroupValues::read(request.attrs)?;
        for (field, egress) in [(INGRESS, false), (EGRESS, true)] {
            if request.changed.iter().any(|f| f == field) {
                self.sync_rules(
                    &request.current.id,
                    egress,
                    &set_of(request.current.attrs.get(field)),
                    fields.rules(egress),
                )
                .await?;
            }
        }
        Ok(updated(&request))
    }

    async fn send_delete(&self, current: &ObservedResource, _scope: &Scope) -> Deleted {
        let call = self.aws.ec2().await.delete_security_group();
        let result = call.group_id(&current.id).send().await;
        deletion(result, "InvalidGroup.NotFound", Deletion::Gone)
    }
}
