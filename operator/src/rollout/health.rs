//! Target health and scaling activities in AWS's own words, and the sentences that say why a
//! revision is not serving: the pure types the rollout's gates fill ([`super::gates`]) and that
//! the rollout's failures and the platform's readiness
//! ([`crate::controller::readiness`]) report.

use crate::engine::ActError;

/// The target state that counts as serving.
pub const HEALTHY: &str = "healthy";
/// The target state of a target that failed its health checks.
pub const UNHEALTHY: &str = "unhealthy";
/// Target states of targets leaving their group (deregistration, scale-in): they say nothing
/// about the revision's health and are not counted.
const LEAVING: [&str; 2] = ["draining", "unused"];
/// Targets listed by name in a message; the rest are counted.
pub const MAX_LISTED_TARGETS: usize = 5;
/// Scaling activities listed in a message, newest first.
pub const MAX_LISTED_ACTIVITIES: usize = 3;
/// The longest piece of AWS text kept in a message (AWS's descriptions are a sentence or two).
const MAX_TEXT: usize = 300;

/// One target of a target group as DescribeTargetHealth reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetHealth {
    /// The target's id (an instance id).
    pub id: String,
    /// AWS's state: `initial`, `healthy`, `unhealthy`, `unavailable`, `draining`, `unused`.
    pub state: String,
    /// AWS's reason code, e.g. `Target.ResponseCodeMismatch`; none for a healthy target.
    pub reason: Option<String>,
    /// AWS's description, e.g. `Health checks failed with these codes: [500]`.
    pub description: Option<String>,
}

impl TargetHealth {
    /// A target in `state` with no reason.
    pub fn new(id: impl Into<String>, state: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            state: state.into(),
            reason: None,
            description: None,
        }
    }

    /// The same target with AWS's reason code and description.
    #[must_use]
    pub fn because(mut self, reason: impl Into<String>, description: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self.description = Some(description.into());
        self
    }

    /// It passes its health checks.
    pub fn is_healthy(&self) -> bool {
        self.state == HEALTHY
    }

    /// It failed its health checks.
    pub fn is_unhealthy(&self) -> bool {
        self.state == UNHEALTHY
    }

    /// It is leaving the group, so it is not counted either way.
    pub fn is_leaving(&self) -> bool {
        LEAVING.contains(&self.state.as_str())
    }

    /// `i-0abc unhealthy: Target.ResponseCodeMismatch (Health checks failed with these codes:
    /// [500])`.
    pub fn why(&self) -> String {
        let mut line = format!("{} {}", self.id, self.state);
        let reason = self.reason.as_deref().filter(|r| !r.is_empty());
        let description = self.description.as_deref().filter(|d| !d.is_empty());
        match (reason, description) {
            (Some(reason), Some(description)) => {
                line.push_str(&format!(": {reason} ({})", clip(description)));
            }
            (Some(reason), None) => line.push_str(&format!(": {reason}")),
            (None, Some(description)) => line.push_str(&format!(": {}", clip(description))),
            (None, None) => {}
        }
        line
    }
}

/// The counted targets (not leaving) that are not healthy, each as [`TargetHealth::why`]: at
/// most [`MAX_LISTED_TARGETS`], then how many more.
pub fn why_targets(targets: &[TargetHealth]) -> Vec<String> {
    let failing: Vec<&TargetHealth> = targets
        .iter()
        .filter(|t| !t.is_leaving() && !t.is_healthy())
        .collect();
    let mut lines: Vec<String> = failing
        .iter()
        .take(MAX_LISTED_TARGETS)
        .map(|t| t.why())
        .collect();
    if failing.len() > MAX_LISTED_TARGETS {
        lines.push(format!(
            "and {} more not healthy",
            failing.len() - MAX_LISTED_TARGETS
        ));
    }
    lines
}

/// One scaling activity as DescribeScalingActivities reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScalingActivity {
    /// AWS's status code: `Successful`, `Failed`, `Cancelled`, `InProgress`, …
    pub status_code: String,
    /// What the activity did, e.g. `Launching a new EC2 instance: i-0abc`.
    pub description: String,
    /// Why it happened, e.g. `… an instance was taken out of service in response to an ELB
    /// system health check failure.`
    pub cause: String,
    /// Why it failed, when it did.
    pub status_message: Option<String>,
}

impl ScalingActivity {
    /// It failed or was cancelled.
    pub fn is_unsuccessful(&self) -> bool {
        matches!(self.status_code.as_str(), "Failed" | "Cancelled")
    }

    /// It replaced an instance that failed its health checks (Auto Scaling's answer to an app
    /// that does not start).
    pub fn is_health_replacement(&self) -> bool {
        self.cause.to_ascii_lowercase().contains("health check")
    }

    /// It says something about why instances do not serve.
    pub fn explains(&self) -> bool {
        self.is_unsuccessful() || self.is_health_replacement()
    }

    /// `Failed: Launching a new EC2 instance. Status Reason: …` or `Terminating EC2 instance:
    /// i-0abc: At … an instance was taken out of service in response to an ELB system health
    /// check failure.`
    pub fn why(&self) -> String {
        let description = self.description.trim();
        if self.is_unsuccessful() {
            let mut line = format!("{}: {}", self.status_code, clip(description));
            if let Some(message) = self
                .status_message
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty() && !description.contains(m))
            {
                line.push_str(&format!(" ({})", clip(message)));
            }
            line
        } else {
            format!("{}: {}", clip(description), clip(self.cause.trim()))
        }
    }
}

/// The activities (newest first) that explain unhealthy instances, each as
/// [`ScalingActivity::why`], at most [`MAX_LISTED_ACTIVITIES`].
pub fn why_activities(activities: &[ScalingActivity]) -> Vec<String> {
    activities
        .iter()
        .filter(|a| a.explains())
        .take(MAX_LISTED_ACTIVITIES)
        .map(ScalingActivity::why)
        .collect()
}

/// The active revision's serving health as read after a pass: its target group's targets
/// against its scaling group's minimum, and (only when too few are healthy) the group's newest
/// scaling activities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServingHealth {
    /// The scaling group's `MinSize`.
    pub min_size: i32,
    /// The target group's targets, every state.
    pub targets: Vec<TargetHealth>,
    /// The group's newest scaling activities, newest first; empty when not read.
    pub activities: Vec<ScalingActivity>,
    /// Why the activities could not be read, when they could not (the targets still tell).
    pub activities_error: Option<ActError>,
}

impl ServingHealth {
    /// Healthy targets needed to serve: the group's minimum, at least one.
    pub fn needed(&self) -> usize {
        usize::try_from(self.min_size.max(1)).unwrap_or(1)
    }

    /// Targets in state `healthy`.
    pub fn healthy(&self) -> usize {
        self.targets.iter().filter(|t| t.is_healthy()).count()
    }

    /// Enough targets are healthy: the revision serves.
    pub fn serves(&self) -> bool {
        self.healthy() >= self.needed()
    }

    /// `2 of 2 needed targets healthy`.
    pub fn summary(&self) -> String {
        format!(
            "{} of {} needed target(s) healthy",
            self.healthy(),
            self.needed()
        )
    }

    /// The summary, then why the others are not healthy: each non-healthy target with AWS's
    /// reason, and the scaling activities that explain it.
    pub fn explain(&self) -> String {
        let mut parts = vec![self.summary()];
        let counted = self.targets.iter().filter(|t| !t.is_leaving()).count();
        if counted == 0 {
            parts.push("no target registered".to_owned());
        }
        parts.extend(why_targets(&self.targets));
        let activities = why_activities(&self.activities);
        if !activities.is_empty() {
            parts.push(format!("scaling activities: {}", activities.join("; ")));
        }
        if let Some(error) = &self.activities_error {
            parts.push(format!("scaling activities unreadable: {error}"));
        }
        parts.join("; ")
    }
}

/// `text`, cut at [`MAX_TEXT`] characters with an ellipsis.
fn clip(text: &str) -> String {
    if text.chars().count() <= MAX_TEXT {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(MAX_TEXT).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(min_size: i32, targets: Vec<TargetHealth>) -> ServingHealth {
        ServingHealth {
            min_size,
            targets,
            ..ServingHealth::default()
        }
    }

    #[test]
    fn a_target_says_why_in_aws_words() {
        let cases = [
            (
                TargetHealth::new("i-0abc", "unhealthy").because(
                    "Target.ResponseCodeMismatch",
                    "Health checks failed with these codes: [500]",
                ),
                "i-0abc unhealthy: Target.ResponseCodeMismatch (Health checks failed with these codes: [500])",
            ),
            (
                TargetHealth::new("i-0def", "initial").because(
                    "Elb.RegistrationInProgress",
                    "Target registration is in progress",
                ),
                "i-0def initial: Elb.RegistrationInProgress (Target registration is in progress)",
            ),
            (
                TargetHealth {
                    reason: Some("Target.Timeout".into()),
                    ..TargetHealth::new("i-1", "unhealthy")
                },
                "i-1 unhealthy: Target.Timeout",
            ),
            (TargetHealth::new("i-2", "unavailable"), "i-2 unavailable"),
        ];
        for (target, want) in cases {
            assert_eq!(target.why(), want);
        }
    }

    #[test]
    fn counts_ignore_leaving_targets_and_need_at_least_one() {
        let cases = [
            (0, vec![], 1, 0, false),
            (0, vec![TargetHealth::new("i-1", "healthy")], 1, 1, true),
            (
                2,
                vec![
                    TargetHealth::new("i-1", "healthy"),
                    TargetHealth::new("i-2", "draining"),
                ],
                2,
                1,
                false,
            ),
            (
                2,
                vec![
                    TargetHealth::new("i-1", "healthy"),
                    TargetHealth::new("i-2", "healthy"),
                    TargetHealth::new("i-3", "unhealthy"),
                ],
                2,
                2,
                true,
            ),
        ];
        for (min_size, targets, needed, healthy, serves) in cases {
            let h = health(min_size, targets);
            assert_eq!(
                (h.needed(), h.healthy(), h.serves()),
                (needed, healthy, serves),
                "{h:?}"
            );
        }
    }

    #[test]
    fn the_explanation_lists_failing_targets_then_activities() {
        let mut h = health(
            2,
            vec![
                TargetHealth::new("i-1", "healthy"),
                TargetHealth::new("i-2", "unhealthy").because(
                    "Target.ResponseCodeMismatch",
                    "Health checks failed with these codes: [500]",
                ),
                TargetHealth::new("i-3", "draining"),
            ],
        );
        h.activities = vec![
            ScalingActivity {
                status_code: "Successful".into(),
                description: "Launching a new EC2 instance: i-2".into(),
                cause: "At 2026-12-01T10:00:00Z an instance was started in response to a difference between desired and actual capacity.".into(),
                status_message: None,
            },
            ScalingActivity {
                status_code: "Successful".into(),
                description: "Terminating EC2 instance: i-0".into(),
                cause: "At 2026-12-01T09:59:00Z an instance was taken out of service in response to an ELB system health check failure.".into(),
                status_message: None,
            },
            ScalingActivity {
                status_code: "Failed".into(),
                description: "Launching a new EC2 instance.  Status Reason: We currently do not have sufficient t4g.small capacity.".into(),
                cause: "At 2026-12-01T09:58:00Z an instance was started.".into(),
                status_message: Some("We currently do not have sufficient t4g.small capacity.".into()),
            },
        ];
        assert_eq!(
            h.explain(),
            "1 of 2 needed target(s) healthy; \
             i-2 unhealthy: Target.ResponseCodeMismatch (Health checks failed with these codes: [500]); \
             scaling activities: Terminating EC2 instance: i-0: At 2026-12-01T09:59:00Z an instance \
             was taken out of service in response to an ELB system health check failure.; \
             Failed: Launching a new EC2 instance.  Status Reason: We currently do not have \
             sufficient t4g.small capacity."
        );
    }

    #[test]
    fn an_empty_group_and_unreadable_activities_are_said() {
        let mut h = health(1, vec![]);
        h.activities_error = Some(ActError::refused("AccessDenied", "not allowed"));
        assert_eq!(
            h.explain(),
            "0 of 1 needed target(s) healthy; no target registered; \
             scaling activities unreadable: AWS refused: AccessDenied: not allowed"
        );
    }

    #[test]
    fn a_failed_activity_adds_a_status_message_its_description_lacks() {
        let activity = ScalingActivity {
            status_code: "Cancelled".into(),
            description: "Launching a new EC2 instance".into(),
            cause: String::new(),
            status_message: Some("The group was deleted".into()),
        };
        assert_eq!(
            activity.why(),
            "Cancelled: Launching a new EC2 instance (The group was deleted)"
        );
    }

    #[test]
    fn long_lists_are_cut() {
        let targets: Vec<TargetHealth> = (0..8)
            .map(|i| TargetHealth::new(format!("i-{i}"), "unhealthy"))
            .collect();
        let lines = why_targets(&targets);
        assert_eq!(lines.len(), MAX_LISTED_TARGETS + 1);
        assert_eq!(lines[MAX_LISTED_TARGETS], "and 3 more not healthy");
        let long = "x".repeat(1000);
        let target = TargetHealth::new("i-1", "unhealthy").because("R", long);
        assert!(target.why().chars().count() < 400);
    }
}
