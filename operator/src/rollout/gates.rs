//! Reads the rollout's gates from AWS after a pass: the health of green's targets
//! (DescribeTargetHealth on green's target group) and the platform's alarms in state ALARM
//! (DescribeAlarms). The ids, and green's desired capacity, come from what the pass observed
//! (its scaling group was described a moment ago), so finding them costs no extra call.

use aws_sdk_cloudwatch::types::StateValue;
use aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum;

use crate::aws::{AwsClients, classify};
use crate::compute::group::DESIRED_CAPACITY;
use crate::engine::{ActError, AttrValue, Key, Observed};
use crate::intent::AppRevision;

use super::machine::{Gates, GreenTargets};

/// The AWS actions [`observe`] calls, for the operator's IAM policy.
pub const IAM_ACTIONS: &[&str] = &[
    "elasticloadbalancing:DescribeTargetHealth",
    "cloudwatch:DescribeAlarms",
];

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
    let health = clients
        .elbv2()
        .await
        .describe_target_health()
        .target_group_arn(&target_group.id)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    let mut targets = GreenTargets {
        found: true,
        desired,
        ..GreenTargets::default()
    };
    for description in health.target_health_descriptions() {
        let state = description.target_health().and_then(|h| h.state());
        match state {
            // Leaving targets (scale-in, deregistration) are not green's health.
            Some(TargetHealthStateEnum::Draining | TargetHealthStateEnum::Unused) => continue,
            Some(TargetHealthStateEnum::Healthy) => targets.healthy += 1,
            Some(TargetHealthStateEnum::Unhealthy) => targets.unhealthy += 1,
            _ => {}
        }
        targets.registered += 1;
    }
    Ok(targets)
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
