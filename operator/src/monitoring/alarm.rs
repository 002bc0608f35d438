//! Every CloudWatch alarm of the platform, one `alarm` kind keyed `alarm/<name>`.
//!
//! | key | metric | fires when | notifies |
//! |---|---|---|---|
//! | `alarm/load-balancer-5xx` | `100 × (ELB 5xx + target 5xx) / RequestCount`, sums per minute | above 5 % in 3 of 5 minutes | topic |
//! | `alarm/target-response-time` | `TargetResponseTime` p90 per minute | above 1 s in 3 of 5 minutes | topic |
//! | `alarm/<rev>/unhealthy-hosts` | `UnHealthyHostCount` maximum of the revision's target group | at least 1 for 3 minutes | topic |
//! | `alarm/database-capacity` | `ServerlessDatabaseCapacity` average | above 90 % of `maxCapacity` for 5 minutes | topic |
//! | `alarm/database-cpu` | RDS `CPUUtilization` average | above 80 % for 5 minutes | topic |
//! | `alarm/<rev>/cpu-high` | EC2 `CPUUtilization` average of the revision's scaling group | above `scaleOutCpuPercent` for 3 minutes | `scaling-policy/<rev>/out` |
//! | `alarm/<rev>/cpu-low` | the same | below `scaleInCpuPercent` for 10 minutes | `scaling-policy/<rev>/in` |
//!
//! The 5xx alarm is a rate, not a count, so it means the same at 10 and at 10 000 requests a
//! minute; it adds the errors the load balancer makes itself (no healthy target, 502/503/504)
//! to the app's own 5xx, because both are what a client receives. Missing data (no traffic) is
//! not breaching for the health alarms; the scaling alarms keep CloudWatch's default.
//!
//! **Names and observing.** An alarm is named `<prefix>/<name>`, the prefix deterministic per
//! platform ([`Scope::name_for`] of `alarm`, with a hash of the platform), so one paged
//! `DescribeAlarms` by that name prefix finds exactly the platform's alarms and the key is read
//! back from the name, with no per-alarm tag read; alarms are still created with Plinth's tags.
//! `PutMetricAlarm` replaces an alarm's whole definition, so create and update are the same call.
//!
//! **Dimensions.** A reference to the load balancer or a target group resolves to its ARN, while
//! CloudWatch's `LoadBalancer` / `TargetGroup` dimensions take the ARN's tail
//! (`app/<name>/<id>`, `targetgroup/<name>/<id>`): the driver cuts the ARN when it sends and
//! rebuilds it (from the alarm's own ARN's partition, region and account) when it observes, so
//! desired and observed compare as the same ARN.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{
    AlarmType, ComparisonOperator, Dimension, Metric, MetricAlarm, MetricDataQuery, MetricStat,
    Statistic, Tag,
};

use super::{ALARM, CrossFamily, keys};
use crate::aws::kit::{Deleted, Kit, Listed, Listing, Made, Select, Sent};
use crate::aws::{AwsClients, LostAnswer, classify, deletion};
use crate::engine::fields::owned;
use crate::engine::{
    ActError, AttrValue, Attrs, Component, CreateRequest, Deletion, DesiredResource, Key, Kind,
    ObservedResource, Reads, Scope, UpdateRequest, Wanted,
};
use crate::intent::Intent;
use crate::serving;

/// The compute family's key of a revision's scaling group (its id is the group's name).
pub fn auto_scaling_group_key(revision: &str) -> Key {
    format!("auto-scaling-group/{revision}").into()
}
/// The compute family's key of a revision's scale-out (`out`) or scale-in (`in`) policy (its id
/// is the policy ARN).
pub fn scaling_policy_key(revision: &str, direction: &str) -> Key {
    format!("scaling-policy/{revision}/{direction}").into()
}
/// The database family's key of the cluster (its id is the cluster identifier).
pub const DB_CLUSTER: &str = "db-cluster";

/// The IAM actions this driver's calls need.
const IAM_ACTIONS: &[&str] = crate::actions![
    cloudwatch: DescribeAlarms, PutMetricAlarm, TagResource, DeleteAlarms;
];

/// Seconds per evaluated period.
const MINUTE: i64 = 60;

/// The alarms component.
pub struct Alarms {
    aws: AwsClients,
    cross: CrossFamily,
}

impl Alarms {
    /// The component acting through `aws`; `cross` says whether alarms on other families'
    /// components are desired.
    pub fn new(aws: AwsClients, cross: CrossFamily) -> Self {
        Self { aws, cross }
    }
}

fn map(entries: impl IntoIterator<Item = (&'static str, AttrValue)>) -> AttrValue {
    AttrValue::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// A threshold as text, the same for desired and observed values.
pub fn threshold_text(value: f64) -> String {
    format!("{value}")
}

/// One metric in the shape of [`METRIC`].
pub fn metric(
    namespace: &str,
    name: &str,
    stat: &str,
    dimensions: impl IntoIterator<Item = (&'static str, AttrValue)>,
) -> AttrValue {
    map([
        ("namespace", namespace.into()),
        ("name", name.into()),
        ("stat", stat.into()),
        ("period", MINUTE.into()),
        ("dimensions", map(dimensions)),
    ])
}

/// How an alarm fires, for [`alarm`].
pub struct Rule<'a> {
    /// [`DESCRIPTION`].
    pub description: String,
    /// [`COMPARISON`].
    pub comparison: &'a str,
    /// [`THRESHOLD`].
    pub threshold: f64,
    /// [`EVALUATION_PERIODS`].
    pub periods: i64,
    /// [`DATAPOINTS_TO_ALARM`].
    pub datapoints: i64,
    /// [`TREAT_MISSING_DATA`].
    pub missing: &'a str,
}

crate::fields! {
    /// An alarm as monitoring wants it.
    desired AlarmFields,
    /// An alarm's fields as its driver reads them.
    resolved AlarmValues {
        /// What the alarm is for.
        description / DESCRIPTION = "description": AttrValue => &'a str, updatable;
        /// One metric, a map of `namespace`, `name`, `stat` (a statistic or `pNN`), `period`
        /// and `dimensions` (name → value).
        /// One metric (or [`METRICS`]).
        metric / METRIC = "metric": Option<AttrValue> => Option<&'a AttrValue>, updatable;
        /// Metric math, a list of queries (`id`, `return_data`, and either `expression` and
        /// `label` or `metric`, a [`METRIC`]-shaped map).
        /// A metric math query (or [`METRIC`]).
        metrics / METRICS = "metrics": Option<AttrValue> => Option<&'a AttrValue>, updatable;
        /// The threshold, as text (`5`, `1.8`) since attribute values have no floats.
        threshold / THRESHOLD = "threshold": AttrValue => &'a str, updatable;
        /// `GreaterThanThreshold`, `LessThanThreshold`, …
        comparison / COMPARISON = "comparison": AttrValue => &'a str, updatable;
        /// Periods evaluated.
        evaluation_periods / EVALUATION_PERIODS = "evaluation_periods": AttrValue => i32, updatable;
        /// Breaching periods among them that fire the alarm.
        datapoints_to_alarm / DATAPOINTS_TO_ALARM = "datapoints_to_alarm": AttrValue => i32, updatable;
        /// `notBreaching`, `missing`, …
        treat_missing_data / TREAT_MISSING_DATA = "treat_missing_data": AttrValue => &'a str, updatable;
        /// ARNs notified or run when the alarm fires (a set).
        alarm_actions / ALARM_ACTIONS = "alarm_actions": AttrValue => BTreeSet<&'a str>, updatable;
        /// ARNs notified when it recovers (a set).
        ok_actions / OK_ACTIONS = "ok_actions": AttrValue => BTreeSet<&'a str>, updatable;
    }
}

/// An alarm on `query` (a [`METRIC`] map or a [`METRICS`] list) with `actions` when it fires
/// and `ok` when it recovers.
pub fn alarm(
    key: impl Into<Key>,
    query: AttrValue,
    rule: Rule<'_>,
    actions: Vec<AttrValue>,
    ok: Vec<AttrValue>,
) -> DesiredResource {
    let (metric, metrics) = if matches!(query, AttrValue::List(_)) {
        (None, Some(query))
    } else {
        (Some(query), None)
    };
    let fields = AlarmFields {
        description: rule.description.into(),
        metric,
        metrics,
        threshold: threshold_text(rule.threshold).into(),
        comparison: rule.comparison.into(),
        evaluation_periods: rule.periods.into(),
        datapoints_to_alarm: rule.datapoints.into(),
        treat_missing_data: rule.missing.into(),
        alarm_actions: AttrValue::set(actions),
        ok_actions: AttrValue::set(ok),
    };
    fields.into_desired(ALARM, key)
}

fn topic() -> Vec<AttrValue> {
    vec![AttrValue::reference(keys::ALARM_TOPIC)]
}

fn load_balancer() -> AttrValue {
    AttrValue::reference(serving::keys::LOAD_BALANCER)
}

/// The alarms on the serving front: the 5xx rate, the response time and each revision's
/// unhealthy hosts (pure).
pub fn serving_alarms(intent: &Intent) -> Vec<DesiredResource> {
    let lb = || ("LoadBalancer", load_balancer());
    let elb_metric = |id: &str, name: &str| {
        map([
            ("id", id.into()),
            ("metric", metric("AWS/ApplicationELB", name, "Sum", [lb()])),
            ("return_data", false.into()),
        ])
    };
    let mut out = vec![
        alarm(
            "alarm/load-balancer-5xx",
            AttrValue::List(vec![
                map([
                    ("id", "rate".into()),
                    (
                        "expression",
                        "100 * (FILL(elb, 0) + FILL(target, 0)) / requests".into(),
                    ),
                    ("label", "5xx responses (% of requests)".into()),
                    ("return_data", true.into()),
                ]),
                elb_metric("elb", "HTTPCode_ELB_5XX_Count"),
                elb_metric("target", "HTTPCode_Target_5XX_Count"),
                elb_metric("requests", "RequestCount"),
            ]),
            Rule {
                description: "More than 5% of requests answered 5xx (load balancer or app)"
                    .to_owned(),
                comparison: "GreaterThanThreshold",
                threshold: 5.0,
                periods: 5,
                datapoints: 3,
                missing: "notBreaching",
            },
            topic(),
            topic(),
        ),
        alarm(
            "alarm/target-response-time",
            metric("AWS/ApplicationELB", "TargetResponseTime", "p90", [lb()]),
            Rule {
                description: "The app's 90th percentile response time is above 1 second".to_owned(),
                comparison: "GreaterThanThreshold",
                threshold: 1.0,
                periods: 5,
                datapoints: 3,
                missing: "notBreaching",
            },
            topic(),
            topic(),
        ),
    ];
    for (revision, _) in intent.serving.weights() {
        out.push(alarm(
            format!("alarm/{}/unhealthy-hosts", revision.id),
            metric(
                "AWS/ApplicationELB",
                "UnHealthyHostCount",
                "Maximum",
                [
                    lb(),
                    (
                        "TargetGroup",
                        AttrValue::reference(serving::keys::target_group(&revision.id)),
                    ),
                ],
            ),
            Rule {
                description: format!(
                    "An instance of app {} ({}) fails its health check",
                    revision.version, revision.id
                ),
                comparison: "GreaterThanOrEqualToThreshold",
                threshold: 1.0,
                periods: 3,
                datapoints: 3,
                missing: "notBreaching",
            },
            topic(),
            topic(),
        ));
    }
    out
}

/// The alarms on the database and compute families' components: database capacity and CPU,
/// and each revision's scaling alarms that drive its scaling policies (pure). Desired only
/// when those families are registered ([`CrossFamily::Included`]).
pub fn cross_family_alarms(intent: &Intent) -> Vec<DesiredResource> {
    let cluster = || ("DBClusterIdentifier", AttrValue::reference(DB_CLUSTER));
    let mut out = vec![
        alarm(
            "alarm/database-capacity",
            metric(
                "AWS/RDS",
                "ServerlessDatabaseCapacity",
                "Average",
                [cluster()],
            ),
            Rule {
                description: format!(
                    "The database uses more than 90% of its {} ACU maximum",
                    intent.database.max_capacity
                ),
                comparison: "GreaterThanThreshold",
                // 9 × max is exact for 0.5 ACU steps, so one rounding: prints as written (2.25).
                threshold: intent.database.max_capacity * 9.0 / 10.0,
                periods: 5,
                datapoints: 5,
                missing: "notBreaching",
            },
            topic(),
            topic(),
        ),
        alarm(
            "alarm/database-cpu",
            metric("AWS/RDS", "CPUUtilization", "Average", [cluster()]),
            Rule {
                description: "The database's CPU is above 80%".to_owned(),
                comparison: "GreaterThanThreshold",
                threshold: 80.0,
                periods: 5,
                datapoints: 5,
                missing: "notBreaching",
            },
            topic(),
            topic(),
        ),
    ];
    let scaling = &intent.compute.scaling;
    for (revision, _) in intent.serving.weights() {
        let group = || {
            (
                "AutoScalingGroupName",
                AttrValue::reference(auto_scaling_group_key(&revision.id)),
            )
        };
        let cpu = || metric("AWS/EC2", "CPUUtilization", "Average", [group()]);
        out.push(alarm(
            format!("alarm/{}/cpu-high", revision.id),
            cpu(),
            Rule {
                description: format!(
                    "Scale app {} out: average CPU above {}%",
                    revision.id, scaling.scale_out_cpu_percent
                ),
                comparison: "GreaterThanThreshold",
                threshold: f64::from(scaling.scale_out_cpu_percent),
                periods: 3,
                datapoints: 3,
                missing: "missing",
            },
            vec![AttrValue::reference(scaling_policy_key(
                &revision.id,
                "out",
            ))],
            Vec::new(),
        ));
        out.push(alarm(
            format!("alarm/{}/cpu-low", revision.id),
            cpu(),
            Rule {
                description: format!(
                    "Scale app {} in: average CPU below {}%",
                    revision.id, scaling.scale_in_cpu_percent
                ),
                comparison: "LessThanThreshold",
                threshold: f64::from(scaling.scale_in_cpu_percent),
                periods: 10,
                datapoints: 10,
                missing: "missing",
            },
            vec![AttrValue::reference(scaling_policy_key(&revision.id, "in"))],
            Vec::new(),
        ));
    }
    out
}

/// The name prefix of the platform's alarms (without the `/` that follows it).
pub fn name_prefix(scope: &Scope) -> String {
    scope.name_for(&Key::from("alarm"), 64)
}

/// The alarm name of `key` (`alarm/<name>` → `<prefix>/<name>`).
pub fn alarm_name(scope: &Scope, key: &Key) -> String {
    let name = key.as_str().strip_prefix("alarm/").unwrap_or(key.as_str());
    format!("{}/{name}", name_prefix(scope))
}

/// The CloudWatch value of a dimension whose desired value is an ARN (load balancer, target
/// group): the ARN's tail; other values as they are.
pub fn dimension_value(name: &str, value: &str) -> String {
    match name {
        "LoadBalancer" => value
            .split_once(":loadbalancer/")
            .map_or(value, |(_, tail)| tail)
            .to_owned(),
        "TargetGroup" => value
            .rfind(":targetgroup/")
            .map_or(value, |i| &value[i + 1..])
            .to_owned(),
        _ => value.to_owned(),
    }
}

/// The ARN a `LoadBalancer` / `TargetGroup` dimension stands for, in the partition, region and
/// account of `alarm_arn`; other values as they are.
pub fn dimension_arn(name: &str, value: &str, alarm_arn: &str) -> String {
    let parts: Vec<&str> = alarm_arn.splitn(6, ':').collect();
    let (Some(partition), Some(region), Some(account)) = (parts.get(1), parts.get(3), parts.get(4))
    else {
        return value.to_owned();
    };
    let base = format!("arn:{partition}:elasticloadbalancing:{region}:{account}");
    match name {
        "LoadBalancer" => format!("{base}:loadbalancer/{value}"),
        "TargetGroup" => format!("{base}:{value}"),
        _ => value.to_owned(),
    }
}

fn dims_of(dimensions: &[Dimension], alarm_arn: &str) -> AttrValue {
    AttrValue::Map(
        dimensions
            .iter()
            .filter_map(|d| {
                let name = d.name()?;
                Some((
                    name.to_owned(),
                    AttrValue::str(dimension_arn(name, d.value()?, alarm_arn)),
                ))
            })
            .collect(),
    )
}

fn metric_of(
    namespace: Option<&str>,
    name: Option<&str>,
    stat: Option<&str>,
    period: Option<i32>,
    dimensions: &[Dimension],
    alarm_arn: &str,
) -> AttrValue {
    let mut out = BTreeMap::new();
    let text = [("namespace", namespace), ("name", name), ("stat", stat)];
    for (field, value) in text {
        if let Some(value) = value {
            out.insert(field.to_owned(), AttrValue::str(value));
        }
    }
    if let Some(period) = period {
        out.insert("period".to_owned(), period.into());
    }
    out.insert("dimensions".to_owned(), dims_of(dimensions, alarm_arn));
    AttrValue::Map(out)
}

/// An alarm as CloudWatch describes it, in the fields of [`alarm`].
pub fn observed_alarm(key: Key, found: &MetricAlarm) -> Option<ObservedResource> {
    let name = found.alarm_name()?;
    let arn = found.alarm_arn().unwrap_or_default();
    let mut resource = ObservedResource::new(ALARM, key, name);
    if let Some(description) = found.alarm_description() {
        resource = resource.attr(DESCRIPTION, description);
    }
    if found.metrics().is_empty() {
        let stat = found
            .extended_statistic()
            .or(found.statistic().map(Statistic::as_str));
        resource = resource.attr(
            METRIC,
            metric_of(
                found.namespace(),
                found.metric_name(),
                stat,
                found.period(),
                found.dimensions(),
                arn,
            ),
        );
    } else {
        let queries = found
            .metrics()
            .iter()
            .map(|q| {
                let mut out = BTreeMap::new();
                out.insert("id".to_owned(), AttrValue::str(q.id().unwrap_or_default()));
                out.insert(
                    "return_data".to_owned(),
                    q.return_data().unwrap_or(true).into(),
                );
                if let Some(expression) = q.expression() {
                    out.insert("expression".to_owned(), AttrValue::str(expression));
                }
                if let Some(label) = q.label() {
                    out.insert("label".to_owned(), AttrValue::str(label));
                }
                if let Some(stat) = q.metric_stat() {
                    let m = stat.metric();
                    out.insert(
                        "metric".to_owned(),
                        metric_of(
                            m.and_then(Metric::namespace),
                            m.and_then(Metric::metric_name),
                            stat.stat(),
                            stat.period(),
                            m.map(Metric::dimensions).unwrap_or_default(),
                            arn,
                        ),
                    );
                }
                AttrValue::Map(out)
            })
            .collect();
        resource = resource.attr(METRICS, AttrValue::List(queries));
    }
    if let Some(threshold) = found.threshold() {
        resource = resource.attr(THRESHOLD, threshold_text(threshold));
    }
    if let Some(comparison) = found.comparison_operator() {
        resource = resource.attr(COMPARISON, comparison.as_str());
    }
    if let Some(periods) = found.evaluation_periods() {
        resource = resource.attr(EVALUATION_PERIODS, periods);
    }
    if let Some(datapoints) = found.datapoints_to_alarm() {
        resource = resource.attr(DATAPOINTS_TO_ALARM, datapoints);
    }
    if let Some(missing) = found.treat_missing_data() {
        resource = resource.attr(TREAT_MISSING_DATA, missing);
    }
    Some(
        resource
            .attr(
                ALARM_ACTIONS,
                AttrValue::set(found.alarm_actions().iter().map(AttrValue::str)),
            )
            .attr(
                OK_ACTIONS,
                AttrValue::set(found.ok_actions().iter().map(AttrValue::str)),
            ),
    )
}

fn invalid(what: &str) -> ActError {
    ActError::refused(
        "PlinthInvalidAlarm",
        format!("the desired alarm has no valid {what}"),
    )
}

fn text<'a>(map: &'a BTreeMap<String, AttrValue>, field: &str) -> Result<&'a str, ActError> {
    map.get(field)
        .and_then(AttrValue::as_str)
        .ok_or_else(|| invalid(field))
}

fn int(map: &BTreeMap<String, AttrValue>, field: &str) -> Result<i32, ActError> {
    map.get(field)
        .and_then(AttrValue::as_int)
        .and_then(|v| i32::try_from(v).ok())
        .ok_or_else(|| invalid(field))
}

fn dimensions_of(map: &BTreeMap<String, AttrValue>) -> Result<Vec<Dimension>, ActError> {
    let Some(AttrValue::Map(dims)) = map.get("dimensions") else {
        return Err(invalid("dimensions"));
    };
    dims.iter()
        .map(|(name, value)| {
            let value = value.as_str().ok_or_else(|| invalid("dimension value"))?;
            Ok(Dimension::builder()
                .name(name)
                .value(dimension_value(name, value))
                .build())
        })
        .collect()
}

fn metric_stat(value: &AttrValue) -> Result<MetricStat, ActError> {
    let AttrValue::Map(m) = value else {
        return Err(invalid("metric"));
    };
    Ok(MetricStat::builder()
        .metric(
            Metric::builder()
                .namespace(text(m, "namespace")?)
                .metric_name(text(m, "name")?)
                .set_dimensions(Some(dimensions_of(m)?))
                .build(),
        )
        .stat(text(m, "stat")?)
        .period(int(m, "period")?)
        .build())
}

impl Alarms {
    /// `PutMetricAlarm` of the whole desired definition: creates or replaces it.
    async fn put(&self, name: &str, attrs: &Attrs, tags: Option<Vec<Tag>>) -> Result<(), ActError> {
        let fields = AlarmValues::read(attrs)?;
        let threshold: f64 = fields.threshold.parse().map_err(|_| invalid(THRESHOLD))?;
        let mut call = self
            .aws
            .cloudwatch()
            .await
            .put_metric_alarm()
            .alarm_name(name)
            .alarm_description(fields.description)
            .actions_enabled(true)
            .set_alarm_actions(Some(owned(&fields.alarm_actions)))
            .set_ok_actions(Some(owned(&fields.ok_actions)))
            .threshold(threshold)
            .comparison_operator(ComparisonOperator::from(fields.comparison))
            .evaluation_periods(fields.evaluation_periods)
            .datapoints_to_alarm(fields.datapoints_to_alarm)
            .treat_missing_data(fields.treat_missing_data)
            .set_tags(tags);
        match (fields.metric, fields.metrics) {
            (Some(AttrValue::Map(m)), _) => {
                let stat = text(m, "stat")?;
                call = call
                    .namespace(text(m, "namespace")?)
                    .metric_name(text(m, "name")?)
                    .period(int(m, "period")?)
                    .set_dimensions(Some(dimensions_of(m)?));
                call = if stat.starts_with('p') {
                    call.extended_statistic(stat)
                } else {
                    call.statistic(Statistic::from(stat))
                };
            }
            (_, Some(AttrValue::List(queries))) => {
                for query in queries {
                    let AttrValue::Map(q) = query else {
                        return Err(invalid("metric query"));
                    };
                    let mut built = MetricDataQuery::builder()
                        .id(text(q, "id")?)
                        .set_return_data(q.get("return_data").and_then(AttrValue::as_bool));
                    if let Some(expression) = q.get("expression").and_then(AttrValue::as_str) {
                        built = built.expression(expression);
                    }
                    if let Some(label) = q.get("label").and_then(AttrValue::as_str) {
                        built = built.label(label);
                    }
                    if let Some(m) = q.get("metric") {
                        built = built.metric_stat(metric_stat(m)?);
                    }
                    call = call.metrics(built.build());
                }
            }
            _ => return Err(invalid("metric")),
        }
        call.send().await.map_err(|e| classify(&e))?;
        Ok(())
    }

    /// The desired definition as it is after a put: what the next observe reports.
    fn as_put(kind_key: &Key, name: &str, attrs: &Attrs) -> ObservedResource {
        let mut resource = ObservedResource::new(ALARM, kind_key.clone(), name);
        resource.attrs = attrs.clone();
        resource
    }
}

impl Component<Intent> for Alarms {
    fn desired(&self, intent: &Intent) -> Wanted {
        let mut out = serving_alarms(intent);
        if self.cross == CrossFamily::Included {
            out.extend(cross_family_alarms(intent));
        }
        Ok(out)
    }
}

#[async_trait]
impl Listing for Alarms {
    /// The platform's alarms by their names' prefix (CloudWatch has no tag filter).
    async fn list(&self, select: Select<'_>, _reads: &Reads) -> Listed {
        let prefix = format!("{}/", name_prefix(select.scope()));
        let call = self.aws.cloudwatch().await.describe_alarms();
        let call = call
            .alarm_name_prefix(&prefix)
            .alarm_types(AlarmType::MetricAlarm);
        let pages: Vec<_> = call
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify(&e))?;
        Ok(pages
            .iter()
            .flat_map(|page| page.metric_alarms())
            .filter_map(|alarm| {
                let rest = alarm.alarm_name()?.strip_prefix(&prefix)?;
                observed_alarm(Key::from(format!("alarm/{rest}")), alarm)
            })
            .collect())
    }
}

#[async_trait]
impl Kit for Alarms {
    const KIND: Kind = ALARM;
    const IAM_ACTIONS: &'static [&'static str] = IAM_ACTIONS;
    /// PutMetricAlarm creates or replaces the alarm of that name.
    const LOST_ANSWER: LostAnswer = LostAnswer::Idempotent;

    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let name = alarm_name(request.scope, request.key);
        let tags = request
            .tags()
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        self.put(&name, request.attrs, Some(tags)).await?;
        Ok(Self::as_put(request.key, &name, request.attrs))
    }

    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        // PutMetricAlarm takes the whole definition; tags are kept from the create.
        self.put(&request.current.id, request.attrs, None).await?;
        Ok(Self::as_put(
            &request.current.key,
            &request.current.id,
            request.attrs,
        ))
    }

    async fn send_delete(&self, current: &ObservedResource, _scope: &Scope) -> Deleted {
        let call = self.aws.cloudwatch().await.delete_alarms();
        let result = call.alarm_names(&current.id).send().await;
        deletion(result, "ResourceNotFound", Deletion::Gone)
    }
}
