//! The compute components: what runs the app. The instances' identity (an IAM role with a
//! least-privilege inline policy, and its instance profile), one launch template per app
//! revision (AMI, type, the app security group, IMDSv2, an encrypted gp3 root volume, cloud-init
//! user data), one Auto Scaling group per revision, and its step scaling policies.
//!
//! The desired graph for a revision `<rev>` (keys as written in the `plinth.dev/component` tag;
//! `→` is "refers to"; `db-*` keys belong to the database family, `target-group/*` to serving):
//!
//! ```text
//! iam-role/instance                        → db-secret (its ARN in the policy)
//! instance-profile                         → iam-role/instance
//! launch-template/<rev>                    → security-group/app, instance-profile, db-secret, db-cluster (endpoint)
//! auto-scaling-group/<rev>                 → launch-template/<rev>, subnet/private/*, target-group/<rev>
//! scaling-policy/<rev>/out, …/in           → auto-scaling-group/<rev>
//! ```
//!
//! **Revisions are first-class.** Every revision in `intent.serving.weights()` has its own
//! launch template, scaling group and policies, keyed by the revision id, so a blue/green
//! rollout is "two revisions desired at once" and finishing it is "one revision desired". One
//! launch template per revision rather than one template with a version per revision: a
//! version cannot carry tags (so it cannot be observed by Plinth's tags), its number is all
//! that identifies it, the default version cannot be deleted without the template, and moto
//! implements neither `DeleteLaunchTemplateVersions` nor user data on
//! `CreateLaunchTemplateVersion`. A template per revision is created, observed and deleted like
//! any other tagged resource, and a revision's template is never edited (every field is
//! immutable), which is what a version would have given.
//!
//! Teardown order follows the references: policies, then the scaling group (force-deleted, so
//! AWS terminates its instances; the group is observed as deleting while AWS says "Delete in
//! progress"), then the launch template, and only then the security group and subnets it used.

pub mod group;
pub mod identity;
pub mod policy;
pub mod scaling;
pub mod template;
pub mod user_data;

use std::sync::Arc;

use plinth_crds::{ArtifactLocation, DataPlatformStatus};

use crate::aws::AwsClients;
use crate::engine::{Component, DesiredError, Key, Kind, Observed};
use crate::intent::Intent;
use crate::platform::{Family, Group, never_retained};

/// The instances' IAM role.
pub const IAM_ROLE: Kind = Kind("iam-role");
/// The instance profile holding the role.
pub const INSTANCE_PROFILE: Kind = Kind("instance-profile");
/// A launch template per app revision.
pub const LAUNCH_TEMPLATE: Kind = Kind("launch-template");
/// An Auto Scaling group per app revision.
pub const AUTO_SCALING_GROUP: Kind = Kind("auto-scaling-group");
/// Step scaling policies of each group.
pub const SCALING_POLICY: Kind = Kind("scaling-policy");

/// Every compute kind, in dependency order.
pub const KINDS: [Kind; 5] = [
    IAM_ROLE,
    INSTANCE_PROFILE,
    LAUNCH_TEMPLATE,
    AUTO_SCALING_GROUP,
    SCALING_POLICY,
];

/// The tag naming the app revision a launch template, scaling group and instance run.
pub const REVISION_TAG: &str = "plinth.dev/revision";

/// The database the app uses inside the cluster (`PLINTH_DB_NAME`): the one the database
/// family creates the cluster with.
pub const DATABASE_NAME: &str = crate::database::APP_DATABASE;

/// The IAM path of every role and instance profile Plinth makes.
pub const IAM_PATH: &str = "/plinth/";

/// Component keys of compute, and the keys of other families it refers to.
pub mod keys {
    use crate::engine::Key;

    /// The instances' role.
    pub const INSTANCE_ROLE: &str = "iam-role/instance";
    /// The instance profile.
    pub const INSTANCE_PROFILE: &str = "instance-profile";
    /// The database's master user secret (database family); its id is the secret's ARN.
    pub const DB_SECRET: &str = "db-secret";
    /// The database cluster (database family); its observed `endpoint` is the writer endpoint.
    pub const DB_CLUSTER: &str = "db-cluster";
    /// The attribute of [`DB_CLUSTER`] holding the writer endpoint.
    pub const DB_ENDPOINT_FIELD: &str = "endpoint";

    /// The launch template of `revision`.
    pub fn launch_template(revision: &str) -> Key {
        format!("launch-template/{revision}").into()
    }
    /// The Auto Scaling group of `revision`.
    pub fn auto_scaling_group(revision: &str) -> Key {
        format!("auto-scaling-group/{revision}").into()
    }
    /// The scale-out policy of `revision`.
    pub fn scale_out(revision: &str) -> Key {
        format!("scaling-policy/{revision}/out").into()
    }
    /// The scale-in policy of `revision`.
    pub fn scale_in(revision: &str) -> Key {
        format!("scaling-policy/{revision}/in").into()
    }
    /// The target group of `revision` (serving family); its id is the target group's ARN.
    pub fn target_group(revision: &str) -> Key {
        format!("target-group/{revision}").into()
    }

    /// The revision a per-revision key (`<kind>/<rev>` or `<kind>/<rev>/<more>`) names.
    pub fn revision_of<'a>(key: &'a Key, prefix: &str) -> Option<&'a str> {
        let rest = key.as_str().strip_prefix(prefix)?.strip_prefix('/')?;
        Some(rest.split('/').next().unwrap_or(rest))
    }
}

/// Compute's components, acting through `clients` (bound to one region).
pub fn components(clients: &AwsClients) -> Vec<Arc<dyn Component<Intent>>> {
    vec![
        Arc::new(identity::InstanceRole::new(clients.clone())),
        Arc::new(identity::InstanceProfile::new(clients.clone())),
        Arc::new(template::LaunchTemplates::new(clients.clone())),
        Arc::new(group::AutoScalingGroups::new(clients.clone())),
        Arc::new(scaling::ScalingPolicies::new(clients.clone())),
    ]
}

/// The condition compute reports: its resources in place and, once the controller read their
/// health, the active revision's instances serving.
pub const CONDITION: &str = "ComputeReady";

/// The compute family: its components, the [`CONDITION`] over every compute kind, and its ids
/// in the status.
pub fn family(clients: &AwsClients) -> Family {
    let group = Group {
        condition: CONDITION,
        kinds: &KINDS,
        outputs: write_status,
        retained: never_retained,
    };
    Family {
        components: components(clients),
        group,
    }
}

/// Compute's ids in `status.resources` (`launchTemplateId`: the newest revision's template;
/// `autoScalingGroupNames`; `instanceRoleArn`); fields other families own are left as they are.
pub fn write_status(observed: &Observed, status: &mut DataPlatformStatus) {
    let resources = status.resources.get_or_insert_with(Default::default);
    let primaries = || {
        observed
            .keys()
            .filter_map(|k| observed.primary(k))
            .filter(|r| r.lifecycle != crate::engine::Lifecycle::Deleting)
    };
    resources.launch_template_id = primaries()
        .filter(|r| r.kind == LAUNCH_TEMPLATE)
        .max_by_key(|r| {
            (
                r.attrs
                    .get(template::CREATED)
                    .and_then(crate::engine::AttrValue::as_int),
                r.id.clone(),
            )
        })
        .map(|r| r.id.clone());
    resources.auto_scaling_group_names = primaries()
        .filter(|r| r.kind == AUTO_SCALING_GROUP)
        .map(|r| r.id.clone())
        .collect();
    resources.instance_role_arn = observed
        .primary(&Key::from(keys::INSTANCE_ROLE))
        .and_then(|r| r.attrs.get(identity::ARN))
        .and_then(crate::engine::AttrValue::as_str)
        .map(str::to_owned);
}

/// The artifact's S3 location, or a message saying what to change.
pub fn artifact_location(artifact: &str, kind: Kind) -> Result<ArtifactLocation, DesiredError> {
    ArtifactLocation::parse(artifact).map_err(|e| DesiredError::Invalid {
        kind,
        message: format!("spec.app.artifact {artifact:?} {e}"),
    })
}

#[cfg(test)]
mod tests;
