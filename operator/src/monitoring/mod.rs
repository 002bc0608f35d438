//! The platform's alarms and where they notify: an SNS topic, the spec's e-mail subscribed to
//! it, and every CloudWatch alarm of the platform (Plinth's health alarms and the compute
//! family's scaling alarms: one component owns a kind, so every alarm is here).
//!
//! ```text
//! alarm-topic
//! alarm-subscription            → alarm-topic             (only with spec.monitoring.alarmEmail)
//! alarm/load-balancer-5xx       → load-balancer, alarm-topic
//! alarm/target-response-time    → load-balancer, alarm-topic
//! alarm/<rev>/unhealthy-hosts   → load-balancer, target-group/<rev>, alarm-topic
//! alarm/database-capacity       → db-cluster, alarm-topic                 (cross-family)
//! alarm/database-cpu            → db-cluster, alarm-topic                 (cross-family)
//! alarm/<rev>/cpu-high          → auto-scaling-group/<rev>, scaling-policy/<rev>/out (cross-family)
//! alarm/<rev>/cpu-low           → auto-scaling-group/<rev>, scaling-policy/<rev>/in  (cross-family)
//! ```
//!
//! The cross-family alarms refer to the database and compute families' components; a graph
//! without those components is refused (unknown dependency), so they are desired only when the
//! alarm component is built with [`CrossFamily::Included`] (see [`alarm::cross_family_alarms`]).

pub mod alarm;
pub mod topic;

use std::sync::Arc;

use plinth_crds::DataPlatformStatus;

use crate::aws::AwsClients;
use crate::engine::{Component, Key, Kind, Observed};
use crate::intent::Intent;
use crate::platform::{Family, Group, never_retained};

/// The SNS topic the alarms notify.
pub const ALARM_TOPIC: Kind = Kind("alarm-topic");
/// The e-mail subscription to the topic.
pub const ALARM_SUBSCRIPTION: Kind = Kind("alarm-subscription");
/// CloudWatch metric alarms.
pub const ALARM: Kind = Kind("alarm");

/// Every monitoring kind, in dependency order.
pub const KINDS: [Kind; 3] = [ALARM_TOPIC, ALARM_SUBSCRIPTION, ALARM];

/// Component keys of the monitoring family.
pub mod keys {
    /// The alarm topic.
    pub const ALARM_TOPIC: &str = "alarm-topic";
    /// The e-mail subscription.
    pub const ALARM_SUBSCRIPTION: &str = "alarm-subscription";
}

/// Whether the alarms on other families' components (database, scaling groups and policies)
/// are desired: only once those families are registered in the same platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrossFamily {
    /// Alarms on the serving front only.
    Excluded,
    /// Also [`alarm::cross_family_alarms`].
    Included,
}

/// The monitoring components, acting through `clients`.
pub fn components(clients: &AwsClients, cross: CrossFamily) -> Vec<Arc<dyn Component<Intent>>> {
    vec![
        Arc::new(topic::Topics::new(clients.clone())),
        Arc::new(topic::Subscriptions::new(clients.clone())),
        Arc::new(alarm::Alarms::new(clients.clone(), cross)),
    ]
}

/// The monitoring family: its components (the alarms on the other families' resources when
/// `cross` includes them), the `MonitoringReady` condition, and the topic in the status.
pub fn family(clients: &AwsClients, cross: CrossFamily) -> Family {
    let group = Group {
        condition: "MonitoringReady",
        kinds: &KINDS,
        outputs: write_status,
        retained: never_retained,
    };
    Family {
        components: components(clients, cross),
        group,
    }
}

/// Writes `status.resources.alarmTopicArn` from what a pass observed.
pub fn write_status(observed: &Observed, status: &mut DataPlatformStatus) {
    let resources = status.resources.get_or_insert_with(Default::default);
    resources.alarm_topic_arn = observed
        .primary(&Key::from(keys::ALARM_TOPIC))
        .map(|t| t.id.clone());
}

#[cfg(test)]
mod tests;
