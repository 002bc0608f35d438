//! Reads from AWS after a pass: the rollout's gates — the health of green's targets
//! (DescribeTargetHealth on green's target group) and the platform's alarms in state ALARM
//! (DescribeAlarms) — and, outside a rollout, the active revision's serving health
//! (DescribeTargetHealth on its target group, and DescribeScalingActivities of its scaling group
//! only when too few targets are healthy). The ids, the desired capacity and the minimum size
//! come from what the pass observed (the groups were described a moment ago), so finding them
//! costs no extra call.

use aws_sdk_cloudwatch::types::StateValue;

use crate::aws::{AwsClients, classify};
use crate::compute::group::{DESIRED_CAPACITY, MIN_SIZE};
use crate::engine::{ActError, AttrValue, Key, Lifecycle, Observed};
use crate::intent::AppRevision;

use super::health::{ScalingActivity, ServingHealth, TargetHealth};
use super::machine::{Gates, GreenTargets};

/// The AWS actions [`observe`] and [`serving_health`] call, for the operator's IAM policy.
pub const IAM_ACTIONS: &[&str] = crate::actions![
    elasticloadbalancing: DescribeTargetHealth;
    cloudwatch: DescribeAlarms;
    autoscaling: DescribeScalingActivities;
];

/// Scaling activities read when a revision does not serve: the newest few say why.
pub const ACTIVITIES_READ: i32 = 5;

/// The component key of a revision's target group (the serving family's).
pub fn target_group_key(revision: &AppRevision) -> Key {
    Key::from(format!("target-group/{}", revision.id))
}

/// The component key of a revision's Auto Scaling group (the compute family's).
pub fn scaling_group_key(revision: &AppRevision) -> Key {
    Key::from(format!("auto-scaling-group/{}", revision.id))
}

/// Whether the alarm with component key `key` gates a rollout. The per-revision CPU alarms
/// (`alarm/<revision>/cpu-high|low`) drive scaling, and one of them is in ALARM most of the
/// time by design (low CPU on an idle app), so they say nothing about green's health.
pub fn is_gating_alarm(key: &Key) -> bool {
    let Some(rest) = key.as_str().strip_prefix("alarm/") else {
        return false;
    };
    !(rest.ends_with("/cpu-high") || rest.ends_with("/cpu-low"))
}

/// The gates for `green` after a pass that observed `observed`; `applied` is whether the pass
/// found nothing to change.
pub async fn observe(
    clients: &AwsClients,
    observed: &Observed,
    green: &AppRevision,
    applied: bool,
) -> Result<Gates, ActError> {
    let green_targets = green_targets(clients, observed, green).await?;
    let alarms_firing = alarms_firing(clients, observed).await?;
    Ok(Gates {
        applied,
        green: green_targets,
        alarms_firing,
    })
}

async fn green_targets(
    clients: &AwsClients,
    observed: &Observed,
    green: &AppRevision,
) -> Result<GreenTargets, ActError> {
    let (Some(target_group), Some(group)) = (
        observed.primary(&target_group_key(green)),
        observed.primary(&scaling_group_key(green)),
    ) else {
        return Ok(GreenTargets::default());
    };
    let Some(desired) = group
        .attrs
        .get(DESIRED_CAPACITY)
        .and_then(AttrValue::as_int)
        .and_then(|d| i32::try_from(d).ok())
    else {
        return Ok(GreenTargets::default());
    };
    let health = describe_targets(clients, &target_group.id).await?;
    let mut targets = GreenTargets {
        found: true,
        desired,
        ..GreenTargets::default()
    };
    // Leaving targets (scale-in, deregistration) are not green's health.
    for target in health.into_iter().filter(|t| !t.is_leaving()) {
        targets.registered += 1;
        if target.is_healthy() {
            targets.healthy += 1;
            continue;
        }
        if target.is_unhealthy() {
            targets.unhealthy += 1;
        }
        targets.not_healthy.push(target);
    }
    Ok(targets)
}

/// The serving health of `active` after a pass that observed `observed`: `None` when the pass
/// did not find its target group and scaling group (a platform without the serving or compute
/// family, or one still creating them). One DescribeTargetHealth; DescribeScalingActivities
/// only when too few targets are healthy, and its failure only noted (the targets still tell).
pub async fn serving_health(
    clients: &AwsClients,
    observed: &Observed,
    active: &AppRevision,
) -> Result<Option<ServingHealth>, ActError> {
    let usable = |key: &Key| {
        observed
            .primary(key)
            .filter(|r| r.lifecycle != Lifecycle::Deleting)
    };
    let (Some(target_group), Some(group)) = (
        usable(&target_group_key(active)),
        usable(&scaling_group_key(active)),
    ) else {
        return Ok(None);
    };
    let min_size = group
        .attrs
        .get(MIN_SIZE)
        .and_then(AttrValue::as_int)
        .and_then(|m| i32::try_from(m).ok())
        .unwrap_or(1);
    let mut health = ServingHealth {
        min_size,
        targets: describe_targets(clients, &target_group.id).await?,
        ..ServingHealth::default()
    };
    if !health.serves() {
        match scaling_activities(clients, &group.id).await {
            Ok(activities) => health.activities = activities,
            Err(e) => health.activities_error = Some(e),
        }
    }
    Ok(Some(health))
}

/// Every target of the target group `arn` with AWS's state, reason and description (one
/// DescribeTargetHealth; it is not paginated).
async fn describe_targets(clients: &AwsClients, arn: &str) -> Result<Vec<TargetHealth>, ActError> {
    let health = clients
        .elbv2()
        .await
        .describe_target_health()
        .target_group_arn(arn)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    Ok(health
        .target_health_descriptions()
        .iter()
        .map(|description| {
            let health = description.target_health();
            TargetHealth {
                id: description
                    .target()
                    .and_then(|t| t.id())
                    .unwrap_or_default()
                    .to_owned(),
                state: health
                    .and_then(|h| h.state())
                    .map_or_else(|| "unknown".to_owned(), |s| s.as_str().to_owned()),
                reason: health
                    .and_then(|h| h.reason())
                    .map(|r| r.as_str().to_owned()),
                description: health.and_then(|h| h.description()).map(str::to_owned),
            }
        })
        .collect())
}

/// The newest [`ACTIVITIES_READ`] scaling activities of the group `name`, newest first.
async fn scaling_activities(
    clients: &AwsClients,
    name: &str,
) -> Result<Vec<ScalingActivity>, ActError> {
    let page = clients
        .autoscaling()
        .await
        .describe_scaling_activities()
        .auto_scaling_group_name(name)
        .max_records(ACTIVITIES_READ)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    Ok(page
        .activities()
        .iter()
        .map(|a| ScalingActivity {
            status_code: a
                .status_code()
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            description: a.description().unwrap_or_default().to_owned(),
            cause: a.cause().unwrap_or_default().to_owned(),
            status_message: a.status_message().map(str::to_owned),
        })
        .collect())
}

async fn alarms_firing(clients: &AwsClients, observed: &Observed) -> Result<Vec<String>, ActError> {
    // The alarms the monitoring family made, by their observed names: exact, and no prefix
    // that another platform's names could share.
    let names: Vec<String> = observed
        .iter()
        .filter(|r| is_gating_alarm(&r.key))
        .map(|r| r.id.clone())
        .collect();
    let mut firing = Vec::new();
    // DescribeAlarms takes at most 100 names per call.
    for chunk in names.chunks(100) {
        let mut next_token = None;
        loop {
            let page = clients
                .cloudwatch()
                .await
                .describe_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                .state_value(StateValue::Alarm)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| classify(&e))?;
            // The state is checked here too: an endpoint that answers AlarmNames without
            // applying StateValue (moto does) must not fail every rollout.
            firing.extend(
                page.metric_alarms()
                    .iter()
                    .filter(|a| a.state_value() == Some(&StateValue::Alarm))
                    .filter_map(|a| a.alarm_name().map(str::to_owned)),
            );
            firing.extend(
                page.composite_alarms()
                    .iter()
                    .filter(|a| a.state_value() == Some(&StateValue::Alarm))
                    .filter_map(|a| a.alarm_name().map(str::to_owned)),
            );
            next_token = page.next_token().map(str::to_owned);
            if next_token.is_none() {
                break;
            }
        }
    }
    firing.sort();
    firing.dedup();
    Ok(firing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_alarms_do_not_gate_a_rollout() {
        assert!(is_gating_alarm(&Key::from("alarm/unhealthy-hosts")));
        assert!(is_gating_alarm(&Key::from("alarm/5xx")));
        assert!(!is_gating_alarm(&Key::from("alarm/1a2b3c4d/cpu-high")));
        assert!(!is_gating_alarm(&Key::from("alarm/1a2b3c4d/cpu-low")));
        assert!(!is_gating_alarm(&Key::from("target-group/1a2b3c4d")));
    }
}
