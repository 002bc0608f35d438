//! The `DataPlatform` spec: what a platform engineer writes, with its defaults and the admission
//! rules (OpenAPI bounds plus CEL `x-kubernetes-validations`) the API server enforces.
//!
//! Every CEL message names the field it is about and says what is allowed. Every string and list
//! carries a `maxLength`/`maxItems` so the API server's CEL cost estimate stays within budget.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::DataPlatformStatus;

/// Desired state of one ingestion platform in one AWS region: its network, load balancer,
/// compute, Aurora MySQL database, credentials rotation, the app it runs, and its alarms.
// Clippy reads the repeated `type_`/`name` keys of the printcolumns as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "plinth.dev",
    version = "v1alpha1",
    kind = "DataPlatform",
    plural = "dataplatforms",
    namespaced,
    status = "DataPlatformStatus",
    derive = "PartialEq",
    shortname = "dp",
    category = "plinth",
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name must be at most 63 characters: <namespace>/<name> tags every AWS resource and AWS tag values stop at 256"),
    doc = "A DataPlatform is one ingestion platform on AWS (VPC, load balancer, scaling group, Aurora MySQL, secret, alarms) that the Plinth operator creates and keeps in shape.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the platform serves traffic with everything in place"
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".status.endpoint",
        description = "URL of the platform's load balancer"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.app.activeVersion",
        description = "App version serving traffic"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(
    "self.network.availabilityZones.all(z, z.startsWith(self.region) && size(z) == size(self.region) + 1)"
).message("spec.network.availabilityZones: every zone must be in spec.region (the region name followed by one letter, e.g. eu-west-1a for eu-west-1)").field_path(".network.availabilityZones"))]
#[x_kube(validation = Rule::new(
    "!has(self.loadBalancer) || !has(self.loadBalancer.certificateArn) || self.loadBalancer.certificateArn == '' || self.loadBalancer.certificateArn.contains(':acm:' + self.region + ':')"
).message("spec.loadBalancer.certificateArn must be a certificate in spec.region: a load balancer can only use ACM certificates from its own region").field_path(".loadBalancer.certificateArn"))]
#[serde(rename_all = "camelCase")]
pub struct DataPlatformSpec {
    /// AWS region the platform lives in, for example `eu-west-1`. Immutable: moving a platform
    /// means creating a new one.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(
        validation = Rule::new("self.matches('^[a-z]{2}(-[a-z]+)+-[0-9]+$')").message("spec.region must be an AWS region name such as eu-west-1 or us-east-2"),
        validation = Rule::new("self == oldSelf").message("spec.region is immutable; create a new DataPlatform to move regions")
    )]
    pub region: String,

    /// The VPC: its address range, availability zones and NAT gateways.
    pub network: NetworkSpec,

    /// The internet-facing Application Load Balancer in front of the app.
    #[serde(default)]
    pub load_balancer: LoadBalancerSpec,

    /// The EC2 Auto Scaling group that runs the app.
    pub compute: ComputeSpec,

    /// The Aurora MySQL Serverless v2 cluster the app stores its data in.
    pub database: DatabaseSpec,

    /// The database credentials: a Secrets Manager secret created and rotated by the operator.
    #[serde(default)]
    pub credentials: CredentialsSpec,

    /// The ingestion app: which release runs, where its binary is, and how new versions roll out.
    pub app: AppSpec,

    /// CloudWatch alarms and where they notify.
    #[serde(default)]
    pub monitoring: MonitoringSpec,

    /// Extra AWS tags put on every resource the platform creates. Keys are 1-128 characters and
    /// values at most 256; keys starting with `aws:` or `plinth.dev/` are reserved. At most 40
    /// tags (AWS allows 50 per resource; Plinth adds its own).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 40))]
    #[schemars(extend("additionalProperties" = {"type": "string", "maxLength": 256}))]
    #[x_kube(
        validation = Rule::new("self.all(k, size(k) >= 1 && size(k) <= 128)").message("spec.tags: keys must be 1 to 128 characters long"),
        validation = Rule::new("self.all(k, !k.startsWith('aws:') && !k.startsWith('plinth.dev/'))").message("spec.tags: keys must not start with 'aws:' or 'plinth.dev/' (reserved for AWS and Plinth)"),
        validation = Rule::new("self.all(k, k.matches('^[\\\\p{L}\\\\p{Z}\\\\p{N}_.:/=+@-]*$') && self[k].matches('^[\\\\p{L}\\\\p{Z}\\\\p{N}_.:/=+@-]*$'))").message("spec.tags: keys and values may contain only letters, digits, spaces and _ . : / = + - @")
    )]
    pub tags: BTreeMap<String, String>,
}

/// How NAT gateways give the private subnets a way out to the internet.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum NatGatewayMode {
    /// One NAT gateway in each availability zone: survives a zone outage (recommended).
    #[default]
    PerZone,
    /// One NAT gateway for all zones: cheaper, but private subnets lose egress if its zone fails.
    Single,
    /// No NAT gateway: instances in private subnets have no internet egress.
    None,
}

/// The VPC and its subnets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// IPv4 range of the VPC, a network address with a prefix from /16 to /19, for example
    /// `10.0.0.0/16`. The operator carves /24 subnets from it: public ones at the 1st to 6th /24
    /// and private ones at the 11th to 16th, so a /19 is the smallest range that fits six zones.
    /// Immutable.
    #[schemars(length(min = 9, max = 18))]
    #[x_kube(
        validation = Rule::new("isCIDR(self) && cidr(self).ip().family() == 4").message("spec.network.cidr must be an IPv4 CIDR such as 10.0.0.0/16"),
        validation = Rule::new("!isCIDR(self) || cidr(self).ip().family() != 4 || (cidr(self).prefixLength() >= 16 && cidr(self).prefixLength() <= 19)").message("spec.network.cidr must have a prefix length from /16 to /19 (room for twelve /24 subnets)"),
        validation = Rule::new("!isCIDR(self) || cidr(self).masked().ip() == cidr(self).ip()").message("spec.network.cidr must be a network address with no host bits set, e.g. 10.0.0.0/16 rather than 10.0.0.1/16"),
        validation = Rule::new("self == oldSelf").message("spec.network.cidr is immutable; create a new DataPlatform for a new address range")
    )]
    pub cidr: String,

    /// Availability zones to spread subnets, instances and the database over: 2 to 6 distinct
    /// zones of `spec.region`, for example `[eu-west-1a, eu-west-1b]`. Immutable.
    #[schemars(length(min = 2, max = 6))]
    #[schemars(inner(length(min = 1, max = 32)))]
    #[x_kube(
        validation = Rule::new("self.all(z, z.matches('^[a-z]{2}(-[a-z]+)+-[0-9]+[a-z]$'))").message("spec.network.availabilityZones: each entry must be an availability zone name such as eu-west-1a"),
        validation = Rule::new("self.all(z, self.exists_one(y, y == z))").message("spec.network.availabilityZones must not contain the same zone twice"),
        validation = Rule::new("self == oldSelf").message("spec.network.availabilityZones is immutable; create a new DataPlatform to change zones")
    )]
    pub availability_zones: Vec<String>,

    /// NAT gateways for the private subnets' egress: `PerZone` (default), `Single` or `None`.
    #[serde(default)]
    pub nat_gateways: NatGatewayMode,
}

/// The Application Load Balancer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSpec {
    /// ARN of an ACM certificate in `spec.region`. When set, the load balancer serves HTTPS on
    /// 443 and redirects HTTP to HTTPS; when empty or left out, it serves plain HTTP on 80.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new(
        "self == '' || self.matches('^arn:aws(-[a-z]+)*:acm:[a-z]{2}(-[a-z]+)+-[0-9]+:[0-9]{12}:certificate/[A-Za-z0-9-]+$')"
    ).message("spec.loadBalancer.certificateArn must be an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>) or empty"))]
    pub certificate_arn: Option<String>,

    /// IPv4 ranges allowed to reach the load balancer, 1 to 20 CIDRs. Defaults to everyone
    /// (`0.0.0.0/0`).
    #[serde(default = "default_allowed_cidrs")]
    #[schemars(length(min = 1, max = 20))]
    #[schemars(inner(length(min = 9, max = 18)))]
    #[x_kube(
        validation = Rule::new("self.all(c, isCIDR(c) && cidr(c).ip().family() == 4)").message("spec.loadBalancer.allowedCidrs: each entry must be an IPv4 CIDR such as 203.0.113.0/24"),
        validation = Rule::new("self.all(c, !isCIDR(c) || cidr(c).masked().ip() == cidr(c).ip())").message("spec.loadBalancer.allowedCidrs: each entry must be a network address with no host bits set, e.g. 203.0.113.0/24 rather than 203.0.113.7/24")
    )]
    pub allowed_cidrs: Vec<String>,

    /// How the load balancer checks that an instance can take traffic.
    #[serde(default)]
    pub health_check: HealthCheckSpec,
}

impl Default for LoadBalancerSpec {
    fn default() -> Self {
        Self {
            certificate_arn: None,
            allowed_cidrs: default_allowed_cidrs(),
            health_check: HealthCheckSpec::default(),
        }
    }
}

/// The target group health check.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.timeoutSeconds < self.intervalSeconds").message("spec.loadBalancer.healthCheck.timeoutSeconds must be less than intervalSeconds").field_path(".timeoutSeconds"))]
pub struct HealthCheckSpec {
    /// HTTP path the load balancer requests on each instance; 2xx means healthy.
    #[serde(default = "default_health_path")]
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("self.startsWith('/') && !self.contains(' ')").message("spec.loadBalancer.healthCheck.path must start with / and contain no spaces, e.g. /health"))]
    pub path: String,

    /// Seconds between checks, 5 to 300.
    #[serde(default = "default_health_interval")]
    #[schemars(range(min = 5, max = 300))]
    pub interval_seconds: i32,

    /// Seconds to wait for an answer, 2 to 120, less than `intervalSeconds`.
    #[serde(default = "default_health_timeout")]
    #[schemars(range(min = 2, max = 120))]
    pub timeout_seconds: i32,

    /// Consecutive successes before an instance counts as healthy, 2 to 10.
    #[serde(default = "default_healthy_threshold")]
    #[schemars(range(min = 2, max = 10))]
    pub healthy_threshold: i32,

    /// Consecutive failures before an instance counts as unhealthy, 2 to 10.
    #[serde(default = "default_unhealthy_threshold")]
    #[schemars(range(min = 2, max = 10))]
    pub unhealthy_threshold: i32,
}

impl Default for HealthCheckSpec {
    fn default() -> Self {
        Self {
            path: default_health_path(),
            interval_seconds: default_health_interval(),
            timeout_seconds: default_health_timeout(),
            healthy_threshold: default_healthy_threshold(),
            unhealthy_threshold: default_unhealthy_threshold(),
        }
    }
}

/// The Auto Scaling group of EC2 instances that run the app in the private subnets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.minSize <= self.maxSize").message("spec.compute.minSize must be less than or equal to spec.compute.maxSize").field_path(".minSize"),
    validation = Rule::new("!has(self.desiredCapacity) || (self.minSize <= self.desiredCapacity && self.desiredCapacity <= self.maxSize)").message("spec.compute.desiredCapacity must be between spec.compute.minSize and spec.compute.maxSize").field_path(".desiredCapacity")
)]
pub struct ComputeSpec {
    /// EC2 instance type, for example `t3.medium` or `m7g.large`.
    #[schemars(length(min = 3, max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z][a-z0-9-]*[0-9][a-z0-9-]*\\\\.[a-z0-9]+$')").message("spec.compute.instanceType must be an EC2 instance type such as t3.medium or m7g.large"))]
    pub instance_type: String,

    /// AMI the instances boot from, for example `ami-0123456789abcdef0` (an Amazon Linux 2023
    /// image with the AWS CLI; its architecture must match `instanceType` and the app binary).
    #[schemars(length(min = 12, max = 21))]
    #[x_kube(validation = Rule::new("self.matches('^ami-([0-9a-f]{8}|[0-9a-f]{17})$')").message("spec.compute.imageId must be an AMI ID: ami- followed by 8 or 17 lowercase hex digits"))]
    pub image_id: String,

    /// Fewest instances, 1 to 100.
    #[schemars(range(min = 1, max = 100))]
    pub min_size: i32,

    /// Most instances, 1 to 100, at least `minSize`.
    #[schemars(range(min = 1, max = 100))]
    pub max_size: i32,

    /// Instances to start with, between `minSize` and `maxSize`. Left out, the group starts at
    /// `minSize` and the scaling policy decides from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub desired_capacity: Option<i32>,

    /// CPU thresholds that add and remove instances.
    #[serde(default)]
    pub scaling: ScalingSpec,
}

/// CPU-based scaling of the Auto Scaling group (CloudWatch alarms on average CPU).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.scaleInCpuPercent < self.scaleOutCpuPercent").message("spec.compute.scaling.scaleInCpuPercent must be less than scaleOutCpuPercent").field_path(".scaleInCpuPercent"))]
pub struct ScalingSpec {
    /// Average CPU percentage above which an instance is added, 1 to 100.
    #[serde(default = "default_scale_out_cpu")]
    #[schemars(range(min = 1, max = 100))]
    pub scale_out_cpu_percent: i32,

    /// Average CPU percentage below which an instance is removed, 1 to 100, less than
    /// `scaleOutCpuPercent`.
    #[serde(default = "default_scale_in_cpu")]
    #[schemars(range(min = 1, max = 100))]
    pub scale_in_cpu_percent: i32,

    /// Seconds to wait after a scaling action before the next one, 0 to 3600.
    #[serde(default = "default_cooldown")]
    #[schemars(range(min = 0, max = 3600))]
    pub cooldown_seconds: i32,
}

impl Default for ScalingSpec {
    fn default() -> Self {
        Self {
            scale_out_cpu_percent: default_scale_out_cpu(),
            scale_in_cpu_percent: default_scale_in_cpu(),
            cooldown_seconds: default_cooldown(),
        }
    }
}

/// What happens to the database when the DataPlatform is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DeletionPolicy {
    /// Take a final snapshot, then delete the cluster (default).
    #[default]
    Snapshot,
    /// Leave the cluster and its instances in AWS, untouched.
    Retain,
    /// Delete the cluster with no final snapshot: the data is gone.
    Delete,
}

/// The Aurora MySQL 3 (MySQL 8.0 compatible) Serverless v2 cluster.
///
/// Capacity is in Aurora capacity units (ACU) in steps of 0.5. The fractional bounds are CEL
/// rules, not `minimum`/`multipleOf`: the API server truncates a fractional bound or factor to an
/// integer when the value is a whole number (`minCapacity: 0` would pass `minimum: 0.5`). Plinth takes 0.5 as the lowest
/// minimum, not 0: a cluster paused at 0 ACU fails the app's readiness checks while it resumes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minCapacity <= self.maxCapacity").message("spec.database.minCapacity must be less than or equal to spec.database.maxCapacity").field_path(".minCapacity"))]
pub struct DatabaseSpec {
    /// Aurora MySQL 3 engine version, for example `8.0.mysql_aurora.3.08.0`.
    #[serde(default = "default_engine_version")]
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("self.matches('^8\\\\.0\\\\.mysql_aurora\\\\.3\\\\.[0-9]{2}\\\\.[0-9]+$')").message("spec.database.engineVersion must be an Aurora MySQL 3 version such as 8.0.mysql_aurora.3.08.0"))]
    pub engine_version: String,

    /// Lowest capacity in ACU, 0.5 to 256 in steps of 0.5.
    #[schemars(range(max = 256.0))]
    #[x_kube(validation = Rule::new("self >= 0.5").message("spec.database.minCapacity must be at least 0.5 ACU (Plinth does not pause the cluster at 0)"))]
    #[x_kube(validation = Rule::new("self * 2.0 == double(int(self * 2.0))").message("spec.database.minCapacity must be a multiple of 0.5 ACU, e.g. 0.5, 1 or 1.5"))]
    pub min_capacity: f64,

    /// Highest capacity in ACU, 1 to 256 in steps of 0.5, at least `minCapacity`.
    #[schemars(range(min = 1.0, max = 256.0))]
    #[x_kube(validation = Rule::new("self * 2.0 == double(int(self * 2.0))").message("spec.database.maxCapacity must be a multiple of 0.5 ACU, e.g. 1, 1.5 or 2"))]
    pub max_capacity: f64,

    /// Reader instances besides the writer, 0 to 15. Readers in other zones make failover fast.
    #[serde(default = "default_readers")]
    #[schemars(range(min = 0, max = 15))]
    pub readers: i32,

    /// Days of automated backups kept, 1 to 35.
    #[serde(default = "default_backup_retention")]
    #[schemars(range(min = 1, max = 35))]
    pub backup_retention_days: i32,

    /// What deleting the DataPlatform does to the database: `Snapshot` (default), `Retain` or
    /// `Delete`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// The database credentials secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSpec {
    /// Days between automatic rotations of the database password, 1 to 365.
    #[serde(default = "default_rotation_days")]
    #[schemars(range(min = 1, max = 365))]
    pub rotation_days: i32,
}

impl Default for CredentialsSpec {
    fn default() -> Self {
        Self {
            rotation_days: default_rotation_days(),
        }
    }
}

/// The ingestion app the instances run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppSpec {
    /// Release to run, a semantic version such as `1.0.0` or `1.2.0-rc.1`. Changing it starts a
    /// blue/green rollout.
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("self.matches('^v?[0-9]+\\\\.[0-9]+\\\\.[0-9]+(-[0-9A-Za-z.-]+)?(\\\\+[0-9A-Za-z.-]+)?$')").message("spec.app.version must be a semantic version such as 1.0.0 or 1.2.0-rc.1"))]
    pub version: String,

    /// S3 URL of the release binary, `s3://<bucket>/<key>`. The instances fetch it with their
    /// role at boot.
    #[schemars(length(min = 8, max = 1024))]
    #[x_kube(validation = Rule::new("self.matches('^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^ ]+$')").message("spec.app.artifact must be an S3 URL s3://<bucket>/<key> with a valid bucket name (3-63 lowercase letters, digits, dots, hyphens) and a key"))]
    pub artifact: String,

    /// TCP port the app listens on, 1024 to 65535.
    #[serde(default = "default_app_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub port: i32,

    /// How a new version replaces the running one.
    #[serde(default)]
    pub rollout: RolloutSpec,
}

/// Rollout strategy for a new app version.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum RolloutStrategy {
    /// A new (green) scaling group and target group beside the running (blue) one; listener
    /// weights move to green step by step, each step gated on healthy targets.
    #[default]
    BlueGreen,
}

/// How a new app version rolls out.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Rollout strategy; `BlueGreen` is the only one.
    #[serde(default)]
    pub strategy: RolloutStrategy,

    /// Percentages of traffic sent to the new version, one per step: 1 to 10 values, strictly
    /// increasing, each 1 to 100, the last 100. Defaults to `[10, 50, 100]`.
    #[serde(default = "default_rollout_steps")]
    #[schemars(length(min = 1, max = 10))]
    #[x_kube(
        validation = Rule::new("self.all(s, s >= 1 && s <= 100)").message("spec.app.rollout.steps: each step must be a percentage from 1 to 100"),
        validation = Rule::new("self[size(self) - 1] == 100").message("spec.app.rollout.steps must end at 100"),
        validation = Rule::new("[0, 1, 2, 3, 4, 5, 6, 7, 8].all(i, i + 1 >= size(self) || self[i] < self[i + 1])").message("spec.app.rollout.steps must be strictly increasing, e.g. [10, 50, 100]")
    )]
    pub steps: Vec<i32>,

    /// Seconds each step holds with healthy targets before the next, 30 to 3600. A step is also
    /// gated on the platform's alarms, and the 5xx alarm needs 3 of 5 one-minute periods to
    /// fire: steps shorter than about 4 minutes let a version that fails only under traffic
    /// reach the next step before its errors can stop it.
    #[serde(default = "default_step_seconds")]
    #[schemars(range(min = 30, max = 3600))]
    pub step_seconds: i32,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        Self {
            strategy: RolloutStrategy::default(),
            steps: default_rollout_steps(),
            step_seconds: default_step_seconds(),
        }
    }
}

/// CloudWatch alarms (unhealthy targets, 5xx, database CPU and connections).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// E-mail address subscribed to the platform's alarm topic. Left out, alarms still exist
    /// and show in CloudWatch but notify no one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 254))]
    #[x_kube(validation = Rule::new("self.matches('^[^@ ]+@[^@ ]+\\\\.[^@ ]+$')").message("spec.monitoring.alarmEmail must be an e-mail address such as oncall@example.com"))]
    pub alarm_email: Option<String>,
}

pub(crate) fn default_allowed_cidrs() -> Vec<String> {
    vec!["0.0.0.0/0".to_string()]
}
fn default_health_path() -> String {
    "/health".to_string()
}
fn default_health_interval() -> i32 {
    30
}
fn default_health_timeout() -> i32 {
    5
}
fn default_healthy_threshold() -> i32 {
    2
}
fn default_unhealthy_threshold() -> i32 {
    3
}
fn default_scale_out_cpu() -> i32 {
    80
}
fn default_scale_in_cpu() -> i32 {
    30
}
fn default_cooldown() -> i32 {
    300
}
fn default_engine_version() -> String {
    "8.0.mysql_aurora.3.08.0".to_string()
}
fn default_readers() -> i32 {
    1
}
fn default_backup_retention() -> i32 {
    7
}
fn default_rotation_days() -> i32 {
    30
}
fn default_app_port() -> i32 {
    8080
}
fn default_rollout_steps() -> Vec<i32> {
    vec![10, 50, 100]
}
fn default_step_seconds() -> i32 {
    300
}
