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
}
