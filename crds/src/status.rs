//! The `DataPlatform` status: what the operator observed and built. Written only by the operator
//! (server-side apply, one field manager). kstatus style: no `phase`, conditions instead.
//! Never holds a secret value, only the secret's ARN.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types the operator sets. `Ready`, `Reconciling` and `Stalled` carry the kstatus
/// meaning that `kubectl wait`, Argo CD and Flux read; each component adds its own
/// (`NetworkReady`, `DatabaseReady`, ...).
pub mod condition_types {
    /// Everything the spec asks for exists, matches, and serves traffic.
    pub const READY: &str = "Ready";
    /// The operator is making changes and expects to finish without help.
    pub const RECONCILING: &str = "Reconciling";
    /// The operator cannot make progress without a change to the spec or to AWS.
    pub const STALLED: &str = "Stalled";
}

/// Observed state of a DataPlatform, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataPlatformStatus {
    /// The `metadata.generation` this status describes. Older than the object's generation
    /// means the operator has not yet acted on the latest spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current conditions: `Ready`, `Reconciling`, `Stalled`, and one per component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// URL of the platform, `https://<load balancer DNS name>` (or `http://` without a
    /// certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// How the app reaches the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseStatus>,

    /// IDs of the AWS resources the operator created. Hints for cheap reads; the operator
    /// finds its resources by tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesStatus>,

    /// Which app version serves traffic and how far a rollout has got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppStatus>,

    /// The last value of the `plinth.dev/reconcile-requested-at` annotation the operator acted
    /// on (the Flux convention): equal to the annotation once the requested pass has run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,

    /// Creates and deletes the operator made in the last minutes, which AWS's eventually
    /// consistent reads may not show yet. Written before each create is sent (and again with
    /// the id AWS answered), so an operator that restarts never sends a create twice; entries
    /// go once the visibility window has passed. Written under its own field manager
    /// (`plinth-operator-journal`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_changes: Vec<RecentChange>,
}

/// One create or delete in [`DataPlatformStatus::recent_changes`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecentChange {
    /// The component's key (`vpc`, `subnet/private/eu-west-1a`), as in the
    /// `plinth.dev/component` tag.
    pub component: String,
    /// The kind of resource (`vpc`, `db-cluster`, ...).
    pub kind: String,
    /// `Create` (sent, and answered once `id` is set) or `Delete` (AWS answered it is gone).
    pub operation: String,
    /// AWS's id of the resource, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When the create was sent or the delete answered (RFC 3339, milliseconds).
    pub at: String,
    /// For a create: AWS has listed the resource under the platform's tags since.
    #[serde(default)]
    pub listed: bool,
}

/// Database outputs. No password: it stays in Secrets Manager.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    /// Writer endpoint host name of the Aurora cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// Reader endpoint host name of the Aurora cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader_endpoint: Option<String>,

    /// Port the cluster listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,

    /// ARN of the Secrets Manager secret that holds the database credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_arn: Option<String>,
}

/// IDs and ARNs of the AWS resources the platform is made of.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesStatus {
    /// ID of the VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,

    /// IDs of the public subnets (load balancer, NAT gateways), one per zone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_subnet_ids: Vec<String>,

    /// IDs of the private subnets (instances, database), one per zone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private_subnet_ids: Vec<String>,

    /// ID of the internet gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_gateway_id: Option<String>,

    /// IDs of the NAT gateways.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nat_gateway_ids: Vec<String>,

    /// IDs of the security groups (load balancer, instances, database).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,

    /// ARN of the Application Load Balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_arn: Option<String>,

    /// ARNs of the target groups (two during a blue/green rollout).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_group_arns: Vec<String>,

    /// ID of the launch template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_template_id: Option<String>,

    /// Names of the Auto Scaling groups (two during a blue/green rollout).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auto_scaling_group_names: Vec<String>,

    /// Identifier of the Aurora cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_cluster_identifier: Option<String>,

    /// ARN of the instances' IAM role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_role_arn: Option<String>,

    /// ARN of the SNS topic the alarms notify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_topic_arn: Option<String>,
}

/// The app's serving state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    /// Version that fully serves traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_version: Option<String>,

    /// The rollout in progress, absent when none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,

    /// The revision that fully serves traffic (blue during a rollout): what the operator keeps
    /// running while a new revision rolls out, and returns all traffic to if it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_revision: Option<RevisionStatus>,

    /// Id of the last revision whose rollout failed and was rolled back. The operator does not
    /// roll it out again; a spec naming any other revision clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_revision: Option<String>,

    /// The platform's first deploy, present from its first pass until the active revision
    /// first has enough healthy targets (the platform is `Ready`). While it is present, a
    /// revision that is not healthy within the rollout timeout makes the platform `Stalled`;
    /// once it is gone, a later loss of healthy targets is `Reconciling`, never `Stalled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_deploy: Option<FirstDeployStatus>,
}

/// A first deploy waiting for healthy targets, gated like a rollout step.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FirstDeployStatus {
    /// Id of the revision being deployed first (see `RevisionStatus.id`). When another
    /// revision becomes active before this one served, the wait starts again for it.
    pub revision: String,

    /// When the revision's scaling group was first found, so its instances were starting
    /// (RFC 3339): the rollout timeout counts from here. Absent while the group is still being
    /// created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
}

/// One app revision: the fields whose change starts a blue/green rollout, and their id.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionStatus {
    /// Short stable id of the fields below (8 hex digits), as in the `plinth.dev/revision` tag of
    /// the revision's scaling group and target group.
    pub id: String,

    /// `spec.app.version` of the revision.
    pub version: String,

    /// `spec.app.artifact` of the revision.
    pub artifact: String,

    /// `spec.compute.imageId` of the revision.
    pub image_id: String,

    /// `spec.compute.instanceType` of the revision.
    pub instance_type: String,
}

/// Progress of a blue/green rollout.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Version being rolled out.
    pub target_version: String,

    /// Percentage of traffic the new version gets now.
    pub weight_percent: i32,

    /// Index of the current step in `spec.app.rollout.steps`, from 0. With `weightPercent` 0
    /// the new version is still starting and takes no traffic yet.
    pub step: i32,

    /// Id of the revision being rolled out (see `RevisionStatus.id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_revision: Option<String>,

    /// When the current step began (RFC 3339): it holds `stepSeconds` from then with healthy
    /// targets, and the rollout fails if its targets are not healthy in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<String>,
}
