//! The list of every component family the operator manages, in one place: the controller's
//! binary and the `plinth` CLI both build their [`Platform`] here, so they run the same engine
//! over the same components. Adding a family (database, serving, …) is one more entry.
//!
//! [`KINDS`] is the registry every tool reads besides the engine: the leak check sweeps each
//! kind, the drift campaign changes each kind or says why it cannot, and a unit test here
//! fails when a component is registered without its kind being listed (or the reverse).

use crate::aws::AwsClients;

use crate::compute;
use crate::database;
use crate::engine::{DuplicateKind, ExecuteOptions, Kind};
use crate::monitoring::{self, CrossFamily};
use crate::network;
use crate::platform::Platform;
use crate::serving;

/// Every kind of AWS resource the operator manages, family by family, in dependency order
/// within each family.
pub const KINDS: [Kind; 23] = {
    let mut all = [Kind(""); 23];
    let families: [&[Kind]; 5] = [
        &network::KINDS,
        &serving::KINDS,
        &database::KINDS,
        &compute::KINDS,
        &monitoring::KINDS,
    ];
    let (mut f, mut i) = (0, 0);
    while f < families.len() {
        let mut k = 0;
        while k < families[f].len() {
            all[i] = families[f][k];
            i += 1;
            k += 1;
        }
        f += 1;
    }
    all
};

/// The platform engine over every component family, acting through `clients`.
pub fn platform(clients: &AwsClients) -> Result<Platform, DuplicateKind> {
    platform_with(clients, ExecuteOptions::default())
}

/// [`platform`] with explicit execution options (concurrency).
pub fn platform_with(
    clients: &AwsClients,
    options: ExecuteOptions,
) -> Result<Platform, DuplicateKind> {
    let families = [
        network::family(clients),
        serving::family(clients),
        database::family(clients),
        compute::family(clients),
        // Every family is registered, so the alarms on the database and the scaling groups
        // (whose keys they reference) are part of the graph.
        monitoring::family(clients, CrossFamily::Included),
    ];
    Ok(Platform::new(families, options)?.with_clients(clients.clone()))
}

/// The network family alone: what the network's own suites and benchmark exercise, without a
/// database or load balancer to wait for.
pub fn network_only(clients: &AwsClients) -> Result<Platform, DuplicateKind> {
    let families = [network::family(clients)];
    Ok(Platform::new(families, ExecuteOptions::default())?.with_clients(clients.clone()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::engine::{ActError, AttrValue, Attrs, Key};

    /// Clients that are never called: building the platform makes no AWS call.
    fn offline_clients() -> AwsClients {
        let config = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        AwsClients::from_config(&config, &crate::aws::AwsOptions::default())
    }

    #[test]
    fn the_registry_lists_exactly_the_kinds_the_platform_registers() {
        let Ok(platform) = platform(&offline_clients()) else {
            panic!("every family registers distinct kinds");
        };
        let registered: BTreeSet<Kind> = platform.kinds().collect();
        let listed: BTreeSet<Kind> = KINDS.iter().copied().collect();
        assert_eq!(listed.len(), KINDS.len(), "a kind is listed twice");
        assert_eq!(registered, listed);
    }

    /// Reads a resolved desired resource as its kind's driver does: the kind's fields, all
    /// of them, of the types the driver takes.
    fn read_as(kind: Kind, attrs: &Attrs) -> Result<(), ActError> {
        use crate::{compute as c, database as d, monitoring as m, network as n, serving as s};
        match kind {
            n::VPC => n::vpc::VpcValues::read(attrs).map(drop),
            n::SUBNET => n::subnet::SubnetValues::read(attrs).map(drop),
            n::INTERNET_GATEWAY => n::internet_gateway::GatewayValues::read(attrs).map(drop),
            n::ELASTIC_IP => n::elastic_ip::AddressValues::read(attrs).map(drop),
            n::NAT_GATEWAY => n::nat_gateway::NatValues::read(attrs).map(drop),
            n::ROUTE_TABLE => n::route::TableValues::read(attrs).map(drop),
            n::SECURITY_GROUP => n::security::GroupValues::read(attrs).map(drop),
            s::LOAD_BALANCER => s::load_balancer::BalancerValues::read(attrs).map(drop),
            s::TARGET_GROUP => s::target_group::TargetGroupValues::read(attrs).map(drop),
            s::LISTENER => s::listener::ListenerValues::read(attrs).map(drop),
            d::DB_SUBNET_GROUP => d::subnet_group::SubnetGroupValues::read(attrs).map(drop),
            d::DB_CLUSTER_PARAMETER_GROUP => {
                d::parameter_group::ParameterGroupValues::read(attrs).map(drop)
            }
            d::DB_CLUSTER => d::cluster::ClusterValues::read(attrs).map(drop),
            d::DB_INSTANCE => d::instance::InstanceValues::read(attrs).map(drop),
            d::DATABASE_SECRET => d::secret::SecretValues::read(attrs).map(drop),
            c::IAM_ROLE => c::identity::RoleValues::read(attrs).map(drop),
            c::INSTANCE_PROFILE => c::identity::ProfileValues::read(attrs).map(drop),
            c::LAUNCH_TEMPLATE => c::template::TemplateValues::read(attrs).map(drop),
            c::AUTO_SCALING_GROUP => c::group::GroupValues::read(attrs).map(drop),
            c::SCALING_POLICY => c::scaling::PolicyValues::read(attrs).map(drop),
            m::ALARM_SUBSCRIPTION => m::topic::SubscriptionValues::read(attrs).map(drop),
            m::ALARM => m::alarm::AlarmValues::read(attrs).map(drop),
            // The topic has no fields: its name is the platform's.
            m::ALARM_TOPIC => Ok(()),
            other => Err(ActError::refused(
                "Untested",
                format!("{other} is not read here"),
            )),
        }
    }

    #[test]
    fn every_kind_desired_reads_back_as_its_driver_reads_it() {
        let text = include_str!("../../examples/platform.yaml");
        let spec = match serde_norway::from_str::<plinth_crds::DataPlatform>(text) {
            Ok(platform) => platform.spec,
            Err(e) => panic!("{e}"),
        };
        let Ok(platform) = platform(&offline_clients()) else {
            panic!("every family registers distinct kinds");
        };
        let desired = platform
            .desired(&crate::intent::Intent::steady(spec))
            .unwrap_or_else(|e| panic!("{e}"));
        // What the engine hands a driver: every reference resolved to an id or attribute.
        let lookup = |key: &Key, field: Option<&str>| {
            Some(AttrValue::str(format!("{key}:{}", field.unwrap_or("id"))))
        };
        let mut seen = BTreeSet::new();
        for resource in desired.in_order() {
            let attrs: Attrs = resource
                .fields()
                .iter()
                .map(|(name, field)| {
                    let value = field.value.resolve_with(&lookup);
                    (
                        name.clone(),
                        value.unwrap_or_else(|| panic!("{name} resolves")),
                    )
                })
                .collect();
            if let Err(e) = read_as(resource.kind(), &attrs) {
                panic!("{}: {e}", resource.key());
            }
            seen.insert(resource.kind());
        }
        let all: BTreeSet<Kind> = KINDS.into_iter().collect();
        assert_eq!(seen, all, "the example spec wants every kind");
    }
}
