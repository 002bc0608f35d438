//! The network components: VPC, subnets, gateways, route tables and security groups, one file
//! per kind, each a [`Component`] of the `DataPlatform` spec acting through EC2.
//!
//! The desired graph for a spec with zones `a, b` (keys as written in the
//! `plinth.dev/component` tag; `→` is "refers to"):
//!
//! ```text
//! vpc
//! subnet/public/<az>, subnet/private/<az>             → vpc
//! internet-gateway                                     → vpc
//! elastic-ip/<az>              (one per NAT gateway)
//! nat-gateway/<az>                                     → subnet/public/<az>, elastic-ip/<az>, internet-gateway
//! route-table/public            0.0.0.0/0             → internet-gateway; subnets → subnet/public/*
//! route-table/private/<az>      0.0.0.0/0             → nat-gateway/<az or the single one>; subnet → subnet/private/<az>
//! security-group/load-balancer, security-group/app, security-group/database   → vpc (and each other's ids in rules)
//! ```
//!
//! `Single` keeps the NAT gateway of the first zone (so switching from `PerZone` removes the
//! others and moves nothing); `None` has no NAT gateway and no default route in the private
//! tables. Teardown order comes from these references: route tables before gateways and
//! subnets, NAT gateways gone before their addresses are released and before the internet
//! gateway is detached.

pub mod cidr;
pub mod elastic_ip;
pub mod internet_gateway;
pub mod nat_gateway;
pub mod route;
pub mod security;
pub mod subnet;
pub mod vpc;

use std::sync::Arc;

use ipnet::Ipv4Net;
use plinth_crds::{DataPlatformSpec, DataPlatformStatus, NatGatewayMode, ResourcesStatus};

use crate::aws::AwsClients;
use crate::engine::{Component, DesiredError, Key, Kind, Observed};
use crate::intent::Intent;
use crate::platform::{Family, Group};

/// The VPC.
pub const VPC: Kind = Kind("vpc");
/// Public and private subnets.
pub const SUBNET: Kind = Kind("subnet");
/// The internet gateway and its attachment.
pub const INTERNET_GATEWAY: Kind = Kind("internet-gateway");
/// Elastic IP addresses of the NAT gateways.
pub const ELASTIC_IP: Kind = Kind("elastic-ip");
/// NAT gateways.
pub const NAT_GATEWAY: Kind = Kind("nat-gateway");
/// Route tables with their routes and subnet associations.
pub const ROUTE_TABLE: Kind = Kind("route-table");
/// Security groups with their rules.
pub const SECURITY_GROUP: Kind = Kind("security-group");

/// Every network kind, in dependency order.
pub const KINDS: [Kind; 7] = [
    VPC,
    SUBNET,
    INTERNET_GATEWAY,
    ELASTIC_IP,
    NAT_GATEWAY,
    ROUTE_TABLE,
    SECURITY_GROUP,
];

/// Component keys of the network.
pub mod keys {
    use crate::engine::Key;

    /// The VPC.
    pub const VPC: &str = "vpc";
    /// The internet gateway.
    pub const INTERNET_GATEWAY: &str = "internet-gateway";
    /// The public route table.
    pub const PUBLIC_ROUTE_TABLE: &str = "route-table/public";
    /// The load balancer's security group.
    pub const LOAD_BALANCER_SG: &str = "security-group/load-balancer";
    /// The app instances' security group.
    pub const APP_SG: &str = "security-group/app";
    /// The database's security group.
    pub const DATABASE_SG: &str = "security-group/database";

    /// The public subnet of `az`.
    pub fn public_subnet(az: &str) -> Key {
        format!("subnet/public/{az}").into()
    }
    /// The private subnet of `az`.
    pub fn private_subnet(az: &str) -> Key {
        format!("subnet/private/{az}").into()
    }
    /// The NAT gateway in `az`.
    pub fn nat_gateway(az: &str) -> Key {
        format!("nat-gateway/{az}").into()
    }
    /// The NAT gateway's address in `az`.
    pub fn elastic_ip(az: &str) -> Key {
        format!("elastic-ip/{az}").into()
    }
    /// The private route table of `az`.
    pub fn private_route_table(az: &str) -> Key {
        format!("route-table/private/{az}").into()
    }
}

/// The network's components, acting through `clients` (bound to one region).
pub fn components(clients: &AwsClients) -> Vec<Arc<dyn Component<Intent>>> {
    vec![
        Arc::new(vpc::Vpc::new(clients.clone())),
        Arc::new(subnet::Subnets::new(clients.clone())),
        Arc::new(internet_gateway::InternetGateway::new(clients.clone())),
        Arc::new(elastic_ip::ElasticIps::new(clients.clone())),
        Arc::new(nat_gateway::NatGateways::new(clients.clone())),
        Arc::new(route::RouteTables::new(clients.clone())),
        Arc::new(security::SecurityGroups::new(clients.clone())),
    ]
}

/// The network family: its components, the `NetworkReady` condition over every network kind,
/// its ids in the status, and kept by a `Retain` teardown (the database lives in it).
pub fn family(clients: &AwsClients) -> Family {
    let group = Group {
        condition: "NetworkReady",
        kinds: &KINDS,
        outputs: write_status,
        retained: crate::database::retained,
    };
    Family {
        components: components(clients),
        group,
    }
}

/// The network's ids in `status.resources`; the fields other families own are left as they are.
pub fn write_status(observed: &Observed, status: &mut DataPlatformStatus) {
    let found = resources_status(observed);
    let resources = status.resources.get_or_insert_with(Default::default);
    resources.vpc_id = found.vpc_id;
    resources.public_subnet_ids = found.public_subnet_ids;
    resources.private_subnet_ids = found.private_subnet_ids;
    resources.internet_gateway_id = found.internet_gateway_id;
    resources.nat_gateway_ids = found.nat_gateway_ids;
    resources.security_group_ids = found.security_group_ids;
}

/// The network's resource ids for the status, from what a pass observed (primaries only,
/// in zone order as the keys sort).
pub fn resources_status(observed: &Observed) -> ResourcesStatus {
    let ids = |prefix: &str, kind: Kind| -> Vec<String> {
        observed
            .keys()
            .filter(|k| k.as_str().starts_with(prefix))
            .filter_map(|k| observed.primary(k))
            .filter(|r| r.kind == kind)
            .map(|r| r.id.clone())
            .collect()
    };
    let one = |key: &str| observed.primary(&Key::from(key)).map(|r| r.id.clone());
    ResourcesStatus {
        vpc_id: one(keys::VPC),
        public_subnet_ids: ids("subnet/public/", SUBNET),
        private_subnet_ids: ids("subnet/private/", SUBNET),
        internet_gateway_id: one(keys::INTERNET_GATEWAY),
        nat_gateway_ids: ids("nat-gateway/", NAT_GATEWAY),
        security_group_ids: ids("security-group/", SECURITY_GROUP),
        ..ResourcesStatus::default()
    }
}

/// The zones that get a NAT gateway (and its address) under the spec's mode.
pub fn nat_zones(spec: &DataPlatformSpec) -> Vec<&str> {
    let zones = spec.network.availability_zones.iter().map(String::as_str);
    match spec.network.nat_gateways {
        NatGatewayMode::PerZone => zones.collect(),
        NatGatewayMode::Single => zones.take(1).collect(),
        NatGatewayMode::None => Vec::new(),
    }
}

/// The NAT gateway the private subnet of `az` routes through, if any.
pub fn nat_for_zone(spec: &DataPlatformSpec, az: &str) -> Option<Key> {
    let first = spec.network.availability_zones.first()?;
    match spec.network.nat_gateways {
        NatGatewayMode::PerZone => Some(keys::nat_gateway(az)),
        NatGatewayMode::Single => Some(keys::nat_gateway(first)),
        NatGatewayMode::None => None,
    }
}

/// The VPC CIDR, parsed.
pub fn vpc_cidr(spec: &DataPlatformSpec, kind: Kind) -> Result<Ipv4Net, DesiredError> {
    spec.network
        .cidr
        .parse()
        .map_err(|e| DesiredError::Invalid {
            kind,
            message: format!(
                "spec.network.cidr {:?} is not an IPv4 CIDR ({e}); use one such as 10.0.0.0/16",
                spec.network.cidr
            ),
        })
}

/// Refuses a spec for another region than the clients': the components would build in the
/// wrong place.
pub(crate) fn check_region(
    spec: &DataPlatformSpec,
    clients: &AwsClients,
    kind: Kind,
) -> Result<(), DesiredError> {
    if clients.region().is_empty() || spec.region == clients.region() {
        Ok(())
    } else {
        Err(DesiredError::Invalid {
            kind,
            message: format!(
                "spec.region is {} but these AWS clients act in {}; run Plinth for region {}",
                spec.region,
                clients.region(),
                spec.region
            ),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
