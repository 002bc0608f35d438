//! The list of every component family the operator manages, in one place: the controller's
//! binary and the `plinth` CLI both build their [`Platform`] here, so they run the same engine
//! over the same components. Adding a family (database, serving, …) is one more entry.

use crate::aws::AwsClients;
use plinth_crds::DataPlatformStatus;

use crate::compute;
use crate::database;
use crate::engine::{DuplicateKind, ExecuteOptions, Observed};
use crate::monitoring::{self, CrossFamily};
use crate::network;
use crate::platform::{Outputs, Platform};
use crate::serving;

/// The platform engine over every component family, acting through `clients`.
pub fn platform(clients: &AwsClients) -> Result<Platform, DuplicateKind> {
    platform_with(clients, ExecuteOptions::default())
}

/// [`platform`] with explicit execution options (concurrency).
pub fn platform_with(
    clients: &AwsClients,
    options: ExecuteOptions,
) -> Result<Platform, DuplicateKind> {
    let components = network::components(clients)
        .into_iter()
        .chain(serving::components(clients))
        .chain(database::components(clients))
        .chain(compute::components(clients))
        // Every family is registered, so the alarms on the database and the scaling groups
        // (whose keys they reference) are part of the graph.
        .chain(monitoring::components(clients, CrossFamily::Included));
    Ok(Platform::new(
        components,
        vec![
            network::group(),
            serving::group(),
            database::group(),
            compute::group(),
            monitoring::group(),
        ],
        options,
    )?
    .with_outputs([
        network_outputs as Outputs,
        serving::write_status,
        database::write_status,
        compute::write_status,
        monitoring::write_status,
    ])
    .with_clients(clients.clone()))
}

/// The network family alone: what the network's own suites and benchmark exercise, without a
/// database or load balancer to wait for.
pub fn network_only(clients: &AwsClients) -> Result<Platform, DuplicateKind> {
    Ok(Platform::new(
        network::components(clients),
        vec![network::group()],
        ExecuteOptions::default(),
    )?
    .with_outputs([network_outputs as Outputs])
    .with_clients(clients.clone()))
}

/// The network's ids in `status.resources`; the fields other families own are left as they are.
fn network_outputs(observed: &Observed, status: &mut DataPlatformStatus) {
    let found = network::resources_status(observed);
    let resources = status.resources.get_or_insert_with(Default::default);
    resources.vpc_id = found.vpc_id;
    resources.public_subnet_ids = found.public_subnet_ids;
    resources.private_subnet_ids = found.private_subnet_ids;
    resources.internet_gateway_id = found.internet_gateway_id;
    resources.nat_gateway_ids = found.nat_gateway_ids;
    resources.security_group_ids = found.security_group_ids;
}
