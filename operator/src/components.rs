//! The list of every component family the operator manages, in one place: the controller's
//! binary and the `plinth` CLI both build their [`Platform`] here, so they run the same engine
//! over the same components. Adding a family (database, serving, …) is one more entry.

use crate::aws::AwsClients;
use plinth_crds::DataPlatformStatus;

use crate::engine::{DuplicateKind, ExecuteOptions, Observed};
use crate::network;
use crate::platform::{Outputs, Platform};

/// The platform engine over every component family, acting through `clients`.
pub fn platform(clients: &AwsClients) -> Result<Platform, DuplicateKind> {
    platform_with(clients, ExecuteOptions::default())
}

/// [`platform`] with explicit execution options (concurrency).
pub fn platform_with(
    clients: &AwsClients,
    options: ExecuteOptions,
) -> Result<Platform, DuplicateKind> {
    Ok(Platform::new(
        network::components(clients),
        vec![network::group()],
        options,
    )?
    .with_outputs([network_outputs as Outputs]))
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
