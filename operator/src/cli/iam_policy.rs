//! The operator's least-privilege IAM policy, built from the one list of actions the drivers
//! declare ([`Driver::iam_actions`](crate::engine::Driver::iam_actions)): `plinth iam-policy`
//! prints it, `terraform-bootstrap/policy.json` is its committed copy, and the end-to-end run
//! checks it against the AWS operations the suites recorded ([`action_of_call`]).
//!
//! Statements: `iam:PassRole` only for roles under `/plinth/` and only to EC2; IAM role and
//! instance-profile actions only on `/plinth/` paths; `iam:CreateServiceLinkedRole` only for the
//! service-linked roles of the services Plinth uses; KMS only through RDS; everything else on
//! `*`, because those actions either allow no resource-level scoping (EC2 `Describe*`,
//! IAM/ELB/Auto Scaling/RDS `Describe*`/`List*`) or create resources whose ARNs (ids AWS picks)
//! are not known before the call.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

/// The path every IAM role and instance profile the operator manages lives under.
pub const PLINTH_PATH: &str = "/plinth/";

/// Actions the policy must grant that are never API operations of their own, so the
/// end-to-end suites cannot record them: AWS checks them as part of another call.
pub const AUTHORIZATION_ONLY: &[(&str, &str)] = &[
    (
        "ec2:CreateTags",
        "checked for the TagSpecifications of every EC2 create call (tag on create)",
    ),
    (
        "rds:AddTagsToResource",
        "checked for the Tags of an RDS create call (tag on create)",
    ),
    (
        "elasticloadbalancing:AddTags",
        "checked for the Tags of an ELB create call (tag on create)",
    ),
    (
        "autoscaling:CreateOrUpdateTags",
        "checked for the Tags of CreateAutoScalingGroup (tag on create)",
    ),
    (
        "cloudwatch:TagResource",
        "checked for the Tags of PutMetricAlarm (tag on create)",
    ),
    (
        "sns:TagResource",
        "checked for the Tags of CreateTopic (tag on create)",
    ),
    (
        "secretsmanager:TagResource",
        "checked for the Tags of CreateSecret and of the secret RDS manages (tag on create)",
    ),
    (
        "iam:TagRole",
        "checked for the Tags of CreateRole (tag on create)",
    ),
    (
        "iam:TagInstanceProfile",
        "checked for the Tags of CreateInstanceProfile (tag on create)",
    ),
    (
        "ec2:RunInstances",
        "checked when an Auto Scaling group is created or updated with a launch template",
    ),
    (
        "secretsmanager:CreateSecret",
        "checked when RDS creates the cluster's managed master user secret for the caller",
    ),
    (
        "rds:CreateDBClusterSnapshot",
        "checked when DeleteDBCluster takes the final snapshot (deletionPolicy: Snapshot)",
    ),
    (
        "iam:PassRole",
        "checked when a launch template, an instance or an Auto Scaling group names an instance profile",
    ),
    (
        "iam:CreateServiceLinkedRole",
        "checked when ELB, Auto Scaling or RDS create their service-linked role on first use",
    ),
    (
        "kms:DescribeKey",
        "checked when RDS encrypts a cluster or its managed secret with the caller's key access",
    ),
    (
        "kms:CreateGrant",
        "checked when RDS encrypts a cluster with the caller's key access",
    ),
];

/// The service principal whose service-linked role an IAM action prefix may create.
const SERVICE_LINKED: &[(&str, &str)] = &[
    ("elasticloadbalancing", "elasticloadbalancing.amazonaws.com"),
    ("autoscaling", "autoscaling.amazonaws.com"),
    ("rds", "rds.amazonaws.com"),
];

/// IAM actions that take no resource ARN at all (account-wide lists), granted on `*`.
const IAM_UNSCOPED: &[&str] = crate::actions![
    iam: ListRoles, ListInstanceProfiles, ListPolicies, GetAccountSummary;
];

/// The IAM action prefix of a service as the SDK names it in its call metadata (lowercased, as
/// [`CallCounts`](crate::aws::CallCounts) keys it): `elastic load balancing v2` →
/// `elasticloadbalancing`.
pub fn iam_prefix(sdk_service: &str) -> String {
    let compact: String = sdk_service
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    match compact.as_str() {
        "elasticloadbalancingv2" | "elasticloadbalancing" => "elasticloadbalancing".to_owned(),
        // The Resource Groups Tagging API's actions are `tag:…`.
        "resourcegroupstaggingapi" => "tag".to_owned(),
        other => other.to_owned(),
    }
}

/// The IAM action an SDK call needs: (`ec2`, `DescribeVpcs`) → `ec2:DescribeVpcs`.
pub fn action_of_call(sdk_service: &str, operation: &str) -> String {
    format!("{}:{operation}", iam_prefix(sdk_service))
}

/// A readable statement id per service (`Sid` allows only letters and digits).
fn service_title(prefix: &str) -> String {
    match prefix {
        "ec2" => "Ec2".to_owned(),
        "rds" => "Rds".to_owned(),
        "sns" => "Sns".to_owned(),
        "iam" => "Iam".to_owned(),
        "elasticloadbalancing" => "ElasticLoadBalancing".to_owned(),
        "autoscaling" => "AutoScaling".to_owned(),
        "cloudwatch" => "CloudWatch".to_owned(),
        "secretsmanager" => "SecretsManager".to_owned(),
        other => other
            .split(|c: char| !c.is_ascii_alphanumeric())
            .map(|part| {
                let mut chars = part.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_uppercase().to_string() + chars.as_str()
                })
            })
            .collect(),
    }
}

fn is_read(action: &str) -> bool {
    action
        .split_once(':')
        .is_some_and(|(_, operation)| crate::aws::calls::is_read(operation))
}

/// The policy document granting exactly `actions`, grouped into statements.
pub fn policy(actions: &BTreeSet<&str>) -> Value {
    let mut statements = Vec::new();
    if actions.contains("iam:PassRole") {
        statements.push(json!({
            "Sid": "PassPlinthRolesToEc2",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": [format!("arn:aws:iam::*:role{PLINTH_PATH}*")],
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        }));
    }
    if actions.contains("iam:CreateServiceLinkedRole") {
        let services: Vec<&str> = SERVICE_LINKED
            .iter()
            .filter(|(prefix, _)| actions.iter().any(|a| a.starts_with(&format!("{prefix}:"))))
            .map(|(_, principal)| *principal)
            .collect();
        statements.push(json!({
            "Sid": "CreateServiceLinkedRoles",
            "Effect": "Allow",
            "Action": ["iam:CreateServiceLinkedRole"],
            "Resource": ["arn:aws:iam::*:role/aws-service-role/*"],
            "Condition": {"StringEquals": {"iam:AWSServiceName": services}},
        }));
    }
    let kms: Vec<&str> = actions
        .iter()
        .copied()
        .filter(|a| a.starts_with("kms:"))
        .collect();
    if !kms.is_empty() {
        // Keys are the account's own (any ARN), but usable only through RDS.
        statements.push(json!({
            "Sid": "KmsThroughRds",
            "Effect": "Allow",
            "Action": kms,
            "Resource": "*",
            "Condition": {"StringLike": {"kms:ViaService": "rds.*.amazonaws.com"}},
        }));
    }
    let special = ["iam:PassRole", "iam:CreateServiceLinkedRole"];
    let iam_scoped: Vec<&str> = actions
        .iter()
        .copied()
        .filter(|a| a.starts_with("iam:") && !special.contains(a) && !IAM_UNSCOPED.contains(a))
        .collect();
    if !iam_scoped.is_empty() {
        statements.push(json!({
            "Sid": "PlinthRolesAndInstanceProfiles",
            "Effect": "Allow",
            "Action": iam_scoped,
            "Resource": [
                format!("arn:aws:iam::*:role{PLINTH_PATH}*"),
                format!("arn:aws:iam::*:instance-profile{PLINTH_PATH}*"),
            ],
        }));
    }
    // The rest by service, reads before writes, on `*` (see the module doc for why).
    let mut by_service: BTreeMap<(&str, bool), Vec<&str>> = BTreeMap::new();
    for action in actions.iter().copied() {
        if special.contains(&action) || iam_scoped.contains(&action) || kms.contains(&action) {
            continue;
        }
        let prefix = action.split_once(':').map_or(action, |(p, _)| p);
        by_service
            .entry((prefix, !is_read(action)))
            .or_default()
            .push(action);
    }
    for ((prefix, write), group) in by_service {
        let sid = format!(
            "{}{}",
            service_title(prefix),
            if write { "Write" } else { "Read" }
        );
        statements.push(json!({
            "Sid": sid,
            "Effect": "Allow",
            "Action": group,
            "Resource": "*",
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Every action a policy document allows (its `Action` strings and lists).
pub fn actions_of(document: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let statements = match document.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    };
    for statement in statements {
        match statement.get("Action") {
            Some(Value::String(action)) => {
                out.insert(action.clone());
            }
            Some(Value::Array(list)) => {
                out.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_service_names_map_to_iam_prefixes() {
        assert_eq!(action_of_call("ec2", "DescribeVpcs"), "ec2:DescribeVpcs");
        assert_eq!(
            action_of_call("elastic load balancing v2", "CreateListener"),
            "elasticloadbalancing:CreateListener"
        );
        assert_eq!(
            action_of_call("auto scaling", "CreateAutoScalingGroup"),
            "autoscaling:CreateAutoScalingGroup"
        );
        assert_eq!(
            action_of_call("secrets manager", "GetSecretValue"),
            "secretsmanager:GetSecretValue"
        );
        assert_eq!(
            action_of_call("CloudWatch", "PutMetricAlarm"),
            "cloudwatch:PutMetricAlarm"
        );
        assert_eq!(
            action_of_call("resource groups tagging api", "GetResources"),
            "tag:GetResources"
        );
    }

    #[test]
    fn pass_role_and_iam_writes_are_limited_to_the_plinth_path() {
        let actions: BTreeSet<&str> = [
            "iam:PassRole",
            "iam:CreateRole",
            "iam:ListRoles",
            "ec2:DescribeVpcs",
            "ec2:CreateVpc",
        ]
        .into();
        let document = policy(&actions);
        let statements = document["Statement"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let by_sid = |sid: &str| {
            statements
                .iter()
                .find(|s| s["Sid"] == sid)
                .cloned()
                .unwrap_or_else(|| panic!("no statement {sid} in {document}"))
        };
        let pass = by_sid("PassPlinthRolesToEc2");
        assert_eq!(pass["Resource"], json!(["arn:aws:iam::*:role/plinth/*"]));
        assert_eq!(
            pass["Condition"]["StringEquals"]["iam:PassedToService"],
            "ec2.amazonaws.com"
        );
        let roles = by_sid("PlinthRolesAndInstanceProfiles");
        assert_eq!(roles["Action"], json!(["iam:CreateRole"]));
        assert_eq!(
            roles["Resource"],
            json!([
                "arn:aws:iam::*:role/plinth/*",
                "arn:aws:iam::*:instance-profile/plinth/*"
            ])
        );
        assert_eq!(by_sid("IamRead")["Action"], json!(["iam:ListRoles"]));
        assert_eq!(by_sid("Ec2Read")["Action"], json!(["ec2:DescribeVpcs"]));
        assert_eq!(by_sid("Ec2Write")["Action"], json!(["ec2:CreateVpc"]));
        // Nothing granted beyond the input, nothing lost.
        let granted: BTreeSet<String> = actions_of(&document);
        let wanted: BTreeSet<String> = actions.iter().map(|a| (*a).to_owned()).collect();
        assert_eq!(granted, wanted);
    }

    #[test]
    fn service_linked_roles_and_kms_are_narrowed() {
        let actions: BTreeSet<&str> = [
            "iam:CreateServiceLinkedRole",
            "elasticloadbalancing:CreateLoadBalancer",
            "rds:CreateDBCluster",
            "kms:DescribeKey",
        ]
        .into();
        let document = policy(&actions);
        let text = document.to_string();
        let statements = document["Statement"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let linked = statements
            .iter()
            .find(|s| s["Sid"] == "CreateServiceLinkedRoles")
            .unwrap_or_else(|| panic!("no service-linked statement in {text}"));
        assert_eq!(
            linked["Condition"]["StringEquals"]["iam:AWSServiceName"],
            json!(["elasticloadbalancing.amazonaws.com", "rds.amazonaws.com"])
        );
        let kms = statements
            .iter()
            .find(|s| s["Sid"] == "KmsThroughRds")
            .unwrap_or_else(|| panic!("no KMS statement in {text}"));
        assert_eq!(kms["Action"], json!(["kms:DescribeKey"]));
        let granted = actions_of(&document);
        assert_eq!(granted.len(), actions.len(), "{text}");
    }

    #[test]
    fn no_pass_role_statement_without_the_action() {
        let document = policy(&["ec2:DescribeVpcs"].into());
        assert_eq!(document["Statement"].as_array().map(Vec::len), Some(1));
        assert!(!document.to_string().contains("PassRole"));
    }
}
