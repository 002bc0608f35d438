//! End-to-end tests of the serving front (load balancer, target groups, listeners) and the
//! monitoring family (alarm topic, e-mail subscription, alarms) against the local AWS emulator:
//! apply a platform made of the network and these two families, read every resource back with
//! the SDK and compare with the spec, move the listener weights through a blue/green Intent,
//! change the health check in place, and tear down to nothing. Each test has its own platform.
//!
//! The platform here is built from the network, serving and monitoring components only (the
//! alarms on the database and scaling groups need those families, see
//! `monitoring::CrossFamily`). The HTTPS listener needs a certificate AWS knows: the test asks
//! the emulator's ACM for one with a plain JSON request (the test crate has no ACM SDK).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use plinth_e2e::{StackError, aws_config, stack_var, unique_name};
use plinth_operator::aws::{AwsClients, AwsOptions};
use plinth_operator::cli::{self, Pace, SpecFile};
use plinth_operator::engine::{ExecuteOptions, Key, PLATFORM_TAG};
use plinth_operator::intent::{AppRevision, Intent, Serving};
use plinth_operator::monitoring::{self, CrossFamily, alarm::name_prefix, topic::topic_name};
use plinth_operator::network;
use plinth_operator::platform::Platform;
use plinth_operator::serving;

const EMAIL: &str = "oncall@example.com";

struct Harness {
    file: SpecFile,
    clients: AwsClients,
    platform: Platform,
    /// A second set of clients, only for reading AWS back.
    reader: AwsClients,
    ec2: aws_sdk_ec2::Client,
    /// The emulator's endpoint, for the few calls the test crate has no SDK for.
    endpoint: String,
}

async fn emulator() -> Result<(aws_config::SdkConfig, String), StackError> {
    let endpoint = stack_var("AWS_ENDPOINT_URL")?;
    let health = format!("{}/_plinth/health", endpoint.trim_end_matches('/'));
    let unreachable = |source: Box<dyn std::error::Error + Send + Sync>| StackError::Unreachable {
        part: "the AWS emulator",
        endpoint: endpoint.clone(),
        source,
    };
    let response = plinth_e2e::http_get(&health)
        .await
        .map_err(|e| unreachable(e.into()))?;
    if !response.status().is_success() {
        return Err(unreachable(
            format!("{health} answered {}", response.status()).into(),
        ));
    }
    Ok((aws_config().await?, endpoint))
}

/// A certificate in the emulator's ACM (moto checks that a listener's certificate exists).
async fn certificate(endpoint: &str) -> String {
    let response = plinth_e2e::http()
        .post(endpoint)
        .header("X-Amz-Target", "CertificateManager.RequestCertificate")
        .header("Content-Type", "application/x-amz-json-1.1")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/eu-west-1/acm/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .body(r#"{"DomainName": "ingest.example.com"}"#)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ACM RequestCertificate: {e}"));
    let body: serde_json::Value = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("ACM answer: {e}"));
    body["CertificateArn"]
        .as_str()
        .unwrap_or_else(|| panic!("no CertificateArn in {body}"))
        .to_owned()
}

fn manifest(namespace: &str, load_balancer: &str, monitoring: &str) -> String {
    format!(
        r#"apiVersion: plinth.dev/v1alpha1
kind: DataPlatform
metadata:
  name: ingest
  namespace: {namespace}
spec:
  region: eu-west-1
  network:
    cidr: 10.43.0.0/16
    availabilityZones: [eu-west-1a, eu-west-1b]
    natGateways: None
  loadBalancer:
    allowedCidrs: [203.0.113.0/24]
{load_balancer}
  compute:
    instanceType: t3.small
    imageId: ami-0123456789abcdef0
    minSize: 1
    maxSize: 2
    scaling:
      scaleOutCpuPercent: 75
      scaleInCpuPercent: 25
  database:
    minCapacity: 0.5
    maxCapacity: 2
  app:
    version: 1.0.0
    artifact: s3://plinth-artifacts/plinth-ingest/1.0.0/plinth-ingest
    port: 8080
{monitoring}"#
    )
}

fn pace() -> Pace {
    Pace {
        timeout: Duration::from_secs(120),
        interval: Duration::from_millis(500),
        visibility_window: plinth_e2e::CONSISTENT_VISIBILITY,
    }
}

impl Harness {
    async fn new(certificate: bool) -> Self {
        let (config, endpoint) = emulator().await.unwrap_or_else(|e| panic!("{e}"));
        let namespace = unique_name("srv");
        let load_balancer = if certificate {
            format!("    certificateArn: {}", self::certificate(&endpoint).await)
        } else {
            String::new()
        };
        let monitoring = format!("  monitoring:\n    alarmEmail: {EMAIL}\n");
        let text = manifest(&namespace, &load_balancer, &monitoring);
        let file = cli::parse_spec(&text, Path::new("test.yaml")).unwrap_or_else(|e| panic!("{e}"));
        let clients = AwsClients::from_config(&config, &AwsOptions::default());
        let platform = Self::platform(&clients);
        Self {
            file,
            clients,
            platform,
            reader: plinth_e2e::reader_clients(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            endpoint,
        }
    }

    /// The network, serving and monitoring families, as `components::platform` registers them.
    fn platform(clients: &AwsClients) -> Platform {
        let families = [
            network::family(clients),
            serving::family(clients),
            monitoring::family(clients, CrossFamily::Excluded),
        ];
        Platform::new(families, ExecuteOptions::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn name(&self) -> String {
        self.file.scope.platform().to_owned()
    }

    fn aws_name(&self, key: &str) -> String {
        self.file.scope.name_for(&Key::from(key), 32)
    }

    async fn converge(&self) -> cli::Finished {
        let name = self.name();
        cli::converge(&self.platform, &self.file, pace(), &mut |line| {
            eprintln!("[{name}] {line}")
        })
        .await
        .unwrap_or_else(|e| panic!("{name}: apply did not converge: {e}"))
    }

    /// Apply passes toward `intent` until one plans nothing; returns the changes made.
    async fn converge_to(&self, intent: &Intent) -> usize {
        let started = Instant::now();
        let mut changes = 0;
        loop {
            let outcome = self
                .platform
                .apply(&self.file.scope, intent, None)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", self.name()));
            for applied in &outcome.pass.report.applied {
                eprintln!("[{}] {}", self.name(), cli::describe(applied));
            }
            changes += outcome.pass.report.applied.len();
            assert!(
                !outcome.pass.report.is_stalled(),
                "{}: stalled: {:?}",
                self.name(),
                outcome.pass.report.refused
            );
            if outcome.is_converged() {
                return changes;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{}: no convergence: {:?}",
                self.name(),
                outcome.pass.plan
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn destroy(&self) {
        let name = self.name();
        cli::destroy(&self.platform, &self.file, pace(), &mut |line| {
            eprintln!("[{name}] {line}")
        })
        .await
        .unwrap_or_else(|e| panic!("{name}: destroy did not finish: {e}"));
        let left = self.tagged().await;
        assert!(
            left.is_empty(),
            "resources of {name} remain after destroy: {left:?}"
        );
    }

    /// Every serving and monitoring resource of the platform still in AWS, plus the EC2 ones,
    /// read without the components' code: ELBv2 by tags, alarms by name prefix, the topic by
    /// name, EC2 by tag filter.
    async fn tagged(&self) -> Vec<String> {
        let platform = self.name();
        let elb = self.reader.elbv2().await;
        let mut arns = Vec::new();
        let lbs = elb
            .describe_load_balancers()
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        arns.extend(
            lbs.load_balancers()
                .iter()
                .filter_map(|l| l.load_balancer_arn().map(str::to_owned)),
        );
        let tgs = elb
            .describe_target_groups()
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        arns.extend(
            tgs.target_groups()
                .iter()
                .filter_map(|g| g.target_group_arn().map(str::to_owned)),
        );
        let mut left = Vec::new();
        for chunk in arns.chunks(20) {
            let tags = elb
                .describe_tags()
                .set_resource_arns(Some(chunk.to_vec()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e:?}"));
            for description in tags.tag_descriptions() {
                if description
                    .tags()
                    .iter()
                    .any(|t| t.key() == Some(PLATFORM_TAG) && t.value() == Some(&platform))
                {
                    left.push(description.resource_arn().unwrap_or_default().to_owned());
                }
            }
        }
        let alarms = self
            .reader
            .cloudwatch()
            .await
            .describe_alarms()
            .alarm_name_prefix(format!("{}/", name_prefix(&self.file.scope)))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        left.extend(
            alarms
                .metric_alarms()
                .iter()
                .filter_map(|a| a.alarm_name().map(str::to_owned)),
        );
        if let Some(topic) = self.topic().await {
            left.push(topic);
        }
        let filter = aws_sdk_ec2::types::Filter::builder()
            .name(format!("tag:{PLATFORM_TAG}"))
            .values(&platform)
            .build();
        let vpcs = self
            .ec2
            .describe_vpcs()
            .filters(filter.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        left.extend(
            vpcs.vpcs()
                .iter()
                .filter_map(|v| v.vpc_id().map(str::to_owned)),
        );
        let groups = self
            .ec2
            .describe_security_groups()
            .filters(filter.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        left.extend(
            groups
                .security_groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_owned)),
        );
        let subnets = self
            .ec2
            .describe_subnets()
            .filters(filter)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        left.extend(
            subnets
                .subnets()
                .iter()
                .filter_map(|s| s.subnet_id().map(str::to_owned)),
        );
        left
    }

    /// The alarm topic's ARN, found by its name.
    async fn topic(&self) -> Option<String> {
        let suffix = format!(":{}", topic_name(&self.file.scope));
        let topics = self
            .reader
            .sns()
            .await
            .list_topics()
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        topics
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .find(|a| a.ends_with(&suffix))
            .map(str::to_owned)
    }

    /// The EC2 id of a network component, by its tags.
    async fn ec2_id(&self, component: &str) -> String {
        let filters = [
            (format!("tag:{PLATFORM_TAG}"), self.name()),
            ("tag:plinth.dev/component".to_owned(), component.to_owned()),
        ]
        .map(|(name, value)| {
            aws_sdk_ec2::types::Filter::builder()
                .name(name)
                .values(value)
                .build()
        });
        if component.starts_with("subnet/") {
            let out = self
                .ec2
                .describe_subnets()
                .set_filters(Some(filters.to_vec()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e:?}"));
            return out
                .subnets()
                .first()
                .and_then(|s| s.subnet_id())
                .unwrap_or_else(|| panic!("no {component}"))
                .to_owned();
        }
        let out = self
            .ec2
            .describe_security_groups()
            .set_filters(Some(filters.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        out.security_groups()
            .first()
            .and_then(|g| g.group_id())
            .unwrap_or_else(|| panic!("no {component}"))
            .to_owned()
    }

    async fn load_balancer(&self) -> LoadBalancerView {
        let elb = self.reader.elbv2().await;
        let out = elb
            .describe_load_balancers()
            .names(self.aws_name("load-balancer"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let lb = out
            .load_balancers()
            .first()
            .unwrap_or_else(|| panic!("no load balancer"));
        let arn = lb.load_balancer_arn().unwrap_or_default().to_owned();
        let attributes = elb
            .describe_load_balancer_attributes()
            .load_balancer_arn(&arn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        LoadBalancerView {
            dns: lb.dns_name().unwrap_or_default().to_owned(),
            scheme: lb
                .scheme()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            kind: lb
                .r#type()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            state: lb
                .state()
                .and_then(|s| s.code())
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            subnets: lb
                .availability_zones()
                .iter()
                .filter_map(|z| z.subnet_id().map(str::to_owned))
                .collect(),
            security_groups: lb.security_groups().iter().cloned().collect(),
            attributes: attributes
                .attributes()
                .iter()
                .filter_map(|a| Some((a.key()?.to_owned(), a.value()?.to_owned())))
                .collect(),
            arn,
        }
    }

    async fn target_group(&self, revision: &str) -> Option<TargetGroupView> {
        let elb = self.reader.elbv2().await;
        let out = elb
            .describe_target_groups()
            .names(self.aws_name(&format!("target-group/{revision}")))
            .send()
            .await
            .ok()?;
        let group = out.target_groups().first()?;
        let arn = group.target_group_arn()?.to_owned();
        let tags = elb
            .describe_tags()
            .resource_arns(&arn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        Some(TargetGroupView {
            port: group.port().unwrap_or_default(),
            protocol: group
                .protocol()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            target_type: group
                .target_type()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            vpc: group.vpc_id().unwrap_or_default().to_owned(),
            path: group.health_check_path().unwrap_or_default().to_owned(),
            interval: group.health_check_interval_seconds().unwrap_or_default(),
            timeout: group.health_check_timeout_seconds().unwrap_or_default(),
            healthy: group.healthy_threshold_count().unwrap_or_default(),
            unhealthy: group.unhealthy_threshold_count().unwrap_or_default(),
            matcher: group
                .matcher()
                .and_then(|m| m.http_code())
                .unwrap_or_default()
                .to_owned(),
            tags: tags
                .tag_descriptions()
                .iter()
                .flat_map(|d| d.tags())
                .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                .collect(),
            arn,
        })
    }

    async fn listeners(&self, load_balancer: &str) -> BTreeMap<i32, ListenerView> {
        let out = self
            .reader
            .elbv2()
            .await
            .describe_listeners()
            .load_balancer_arn(load_balancer)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        out.listeners()
            .iter()
            .map(|l| {
                let action = l.default_actions().first();
                let redirect = action.and_then(|a| a.redirect_config()).map(|r| {
                    (
                        r.protocol().unwrap_or_default().to_owned(),
                        r.port().unwrap_or_default().to_owned(),
                        r.status_code()
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_default(),
                    )
                });
                let view = ListenerView {
                    arn: l.listener_arn().unwrap_or_default().to_owned(),
                    protocol: l
                        .protocol()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                    ssl_policy: l.ssl_policy().map(str::to_owned),
                    certificates: l
                        .certificates()
                        .iter()
                        .filter_map(|c| c.certificate_arn().map(str::to_owned))
                        .collect(),
                    action: action
                        .and_then(|a| a.r#type())
                        .map(|t| t.as_str().to_owned())
                        .unwrap_or_default(),
                    weights: action
                        .and_then(|a| a.forward_config())
                        .map(|f| {
                            f.target_groups()
                                .iter()
                                .filter_map(|t| {
                                    Some((t.target_group_arn()?.to_owned(), t.weight()?))
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    redirect,
                };
                (l.port().unwrap_or_default(), view)
            })
            .collect()
    }

    async fn alarms(&self) -> BTreeMap<String, AlarmView> {
        let prefix = format!("{}/", name_prefix(&self.file.scope));
        let out = self
            .reader
            .cloudwatch()
            .await
            .describe_alarms()
            .alarm_name_prefix(&prefix)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        out.metric_alarms()
            .iter()
            .map(|a| {
                let mut dimensions: BTreeMap<String, String> = a
                    .dimensions()
                    .iter()
                    .filter_map(|d| Some((d.name()?.to_owned(), d.value()?.to_owned())))
                    .collect();
                let mut metric_names: Vec<String> =
                    a.metric_name().map(str::to_owned).into_iter().collect();
                for query in a.metrics() {
                    if let Some(metric) = query.metric_stat().and_then(|s| s.metric()) {
                        metric_names.extend(metric.metric_name().map(str::to_owned));
                        dimensions.extend(
                            metric.dimensions().iter().filter_map(|d| {
                                Some((d.name()?.to_owned(), d.value()?.to_owned()))
                            }),
                        );
                    }
                }
                let name = a.alarm_name().unwrap_or_default();
                let view = AlarmView {
                    threshold: a.threshold().unwrap_or_default(),
                    comparison: a
                        .comparison_operator()
                        .map(|c| c.as_str().to_owned())
                        .unwrap_or_default(),
                    stat: a
                        .extended_statistic()
                        .map(str::to_owned)
                        .or_else(|| a.statistic().map(|s| s.as_str().to_owned())),
                    actions: a.alarm_actions().iter().cloned().collect(),
                    ok_actions: a.ok_actions().iter().cloned().collect(),
                    dimensions,
                    metric_names,
                };
                (name.strip_prefix(&prefix).unwrap_or(name).to_owned(), view)
            })
            .collect()
    }
}

#[derive(Debug)]
struct LoadBalancerView {
    arn: String,
    dns: String,
    scheme: String,
    kind: String,
    state: String,
    subnets: BTreeSet<String>,
    security_groups: BTreeSet<String>,
    attributes: BTreeMap<String, String>,
}

#[derive(Debug)]
struct TargetGroupView {
    arn: String,
    port: i32,
    protocol: String,
    target_type: String,
    vpc: String,
    path: String,
    interval: i32,
    timeout: i32,
    healthy: i32,
    unhealthy: i32,
    matcher: String,
    tags: BTreeMap<String, String>,
}

#[derive(Debug)]
struct ListenerView {
    arn: String,
    protocol: String,
    ssl_policy: Option<String>,
    certificates: Vec<String>,
    action: String,
    weights: BTreeMap<String, i32>,
    redirect: Option<(String, String, String)>,
}

#[derive(Debug)]
struct AlarmView {
    threshold: f64,
    comparison: String,
    stat: Option<String>,
    actions: BTreeSet<String>,
    ok_actions: BTreeSet<String>,
    dimensions: BTreeMap<String, String>,
    metric_names: Vec<String>,
}

/// The `LoadBalancer` dimension of an ALB ARN.
fn lb_dimension(arn: &str) -> &str {
    arn.split_once(":loadbalancer/")
        .map_or(arn, |(_, tail)| tail)
}

/// The `TargetGroup` dimension of a target group ARN.
fn tg_dimension(arn: &str) -> &str {
    arn.rfind(":targetgroup/").map_or(arn, |i| &arn[i + 1..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_front_and_alarms_match_the_spec_and_weights_follow_the_rollout() {
    let h = Harness::new(true).await;
    h.converge().await;
    let certificate = h
        .file
        .spec()
        .load_balancer
        .https_certificate()
        .unwrap_or_default()
        .to_owned();
    let blue = AppRevision::of(h.file.spec());

    // The load balancer: internet-facing ALB in the public subnets behind its own group.
    let lb = h.load_balancer().await;
    assert_eq!(lb.scheme, "internet-facing");
    assert_eq!(lb.kind, "application");
    assert_eq!(lb.state, "active");
    let public: BTreeSet<String> = [
        h.ec2_id("subnet/public/eu-west-1a").await,
        h.ec2_id("subnet/public/eu-west-1b").await,
    ]
    .into();
    assert_eq!(lb.subnets, public);
    assert_eq!(
        lb.security_groups,
        BTreeSet::from([h.ec2_id("security-group/load-balancer").await])
    );
    assert_eq!(
        lb.attributes
            .get("routing.http.drop_invalid_header_fields.enabled")
            .map(String::as_str),
        Some("true"),
        "{:?}",
        lb.attributes
    );

    // The revision's target group: the app port, the spec's (default) health check, its tag.
    let tg = h
        .target_group(&blue.id)
        .await
        .unwrap_or_else(|| panic!("no target group for {}", blue.id));
    assert_eq!((tg.port, tg.protocol.as_str()), (8080, "HTTP"));
    assert_eq!(tg.target_type, "instance");
    assert!(tg.vpc.starts_with("vpc-"), "{tg:?}");
    assert_eq!(
        (
            tg.path.as_str(),
            tg.interval,
            tg.timeout,
            tg.healthy,
            tg.unhealthy
        ),
        ("/health", 30, 5, 2, 3)
    );
    assert_eq!(tg.matcher, "200-299");
    assert_eq!(
        tg.tags.get("plinth.dev/revision").map(String::as_str),
        Some(blue.id.as_str())
    );

    // HTTPS forwards with TLS 1.3 and the certificate; HTTP answers 301 to HTTPS.
    let listeners = h.listeners(&lb.arn).await;
    assert_eq!(listeners.keys().copied().collect::<Vec<_>>(), [80, 443]);
    let https = &listeners[&443];
    assert_eq!(https.protocol, "HTTPS");
    assert_eq!(
        https.ssl_policy.as_deref(),
        Some("ELBSecurityPolicy-TLS13-1-2-2021-06")
    );
    assert_eq!(https.certificates, std::slice::from_ref(&certificate));
    assert_eq!(https.action, "forward");
    assert_eq!(https.weights, BTreeMap::from([(tg.arn.clone(), 100)]));
    let http = &listeners[&80];
    assert_eq!(http.protocol, "HTTP");
    assert_eq!(http.action, "redirect");
    assert_eq!(
        http.redirect,
        Some(("HTTPS".to_owned(), "443".to_owned(), "HTTP_301".to_owned()))
    );

    // The topic, tagged, with the address subscribed.
    let topic = h.topic().await.unwrap_or_else(|| panic!("no alarm topic"));
    let sns = h.reader.sns().await;
    let tags = sns
        .list_tags_for_resource()
        .resource_arn(&topic)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(
        tags.tags()
            .iter()
            .any(|t| t.key() == PLATFORM_TAG && t.value() == h.name())
    );
    let subscriptions = sns
        .list_subscriptions_by_topic()
        .topic_arn(&topic)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let emails: Vec<(&str, &str)> = subscriptions
        .subscriptions()
        .iter()
        .filter_map(|s| Some((s.protocol()?, s.endpoint()?)))
        .collect();
    assert_eq!(emails, [("email", EMAIL)]);

    // The alarms: thresholds, dimensions and the topic as their action.
    let alarms = h.alarms().await;
    let unhealthy = format!("{}/unhealthy-hosts", blue.id);
    assert_eq!(
        alarms.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from([
            "load-balancer-5xx",
            "target-response-time",
            unhealthy.as_str()
        ])
    );
    let notify = BTreeSet::from([topic.clone()]);
    for (name, alarm) in &alarms {
        assert_eq!(alarm.actions, notify, "{name}");
        assert_eq!(alarm.ok_actions, notify, "{name}");
        assert_eq!(
            alarm.dimensions.get("LoadBalancer").map(String::as_str),
            Some(lb_dimension(&lb.arn)),
            "{name}"
        );
    }
    let rate = &alarms["load-balancer-5xx"];
    assert_eq!(
        (rate.threshold, rate.comparison.as_str()),
        (5.0, "GreaterThanThreshold")
    );
    assert_eq!(
        rate.metric_names,
        [
            "HTTPCode_ELB_5XX_Count",
            "HTTPCode_Target_5XX_Count",
            "RequestCount"
        ]
    );
    let p90 = &alarms["target-response-time"];
    assert_eq!((p90.threshold, p90.stat.as_deref()), (1.0, Some("p90")));
    let hosts = &alarms[&unhealthy];
    assert_eq!(
        hosts.dimensions.get("TargetGroup").map(String::as_str),
        Some(tg_dimension(&tg.arn))
    );
    assert_eq!(hosts.comparison, "GreaterThanOrEqualToThreshold");

    // A steady pass writes nothing, and the status names the endpoint and the ARNs.
    let before = h.clients.calls().snapshot();
    let steady = h
        .platform
        .apply(&h.file.scope, &h.file.intent(), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(steady.is_converged(), "{:?}", steady.pass.plan);
    let calls = h.clients.calls().snapshot().since(&before);
    eprintln!("[{}] a steady pass:\n{calls}", h.name());
    assert_eq!(calls.writes(), 0, "a steady pass wrote:\n{calls}");
    let mut status = plinth_crds::DataPlatformStatus::default();
    h.platform.write_outputs(&steady.pass.observed, &mut status);
    assert_eq!(status.endpoint, Some(format!("https://{}", lb.dns)));
    let resources = status.resources.unwrap_or_default();
    assert_eq!(
        resources.load_balancer_arn.as_deref(),
        Some(lb.arn.as_str())
    );
    assert_eq!(resources.target_group_arns, std::slice::from_ref(&tg.arn));
    assert_eq!(resources.alarm_topic_arn.as_deref(), Some(topic.as_str()));
    assert!(
        steady
            .verdicts
            .iter()
            .any(|v| format!("{v:?}").contains("LoadBalancerReady")),
        "{:?}",
        steady.verdicts
    );

    // Blue/green: a green revision takes 30 %, then all of it, then blue goes.
    let spec = h.file.spec().clone();
    let green = AppRevision::new(
        "2.0.0",
        &spec.app.artifact,
        &spec.compute.image_id,
        &spec.compute.instance_type,
    );
    let rolling = |weight| Intent {
        spec: spec.clone(),
        serving: Serving::Rolling {
            blue: blue.clone(),
            green: green.clone(),
            weight,
        },
    };
    h.converge_to(&rolling(30)).await;
    let green_tg = h
        .target_group(&green.id)
        .await
        .unwrap_or_else(|| panic!("no green target group"));
    let weights = h.listeners(&lb.arn).await[&443].weights.clone();
    assert_eq!(
        weights,
        BTreeMap::from([(tg.arn.clone(), 70), (green_tg.arn.clone(), 30)])
    );
    assert!(
        h.alarms()
            .await
            .contains_key(&format!("{}/unhealthy-hosts", green.id))
    );
    // Weights change in place: the same listener, one ModifyListener.
    let before = h.clients.calls().snapshot();
    assert_eq!(h.converge_to(&rolling(100)).await, 1);
    let calls = h.clients.calls().snapshot().since(&before);
    assert_eq!(calls.of("ModifyListener").calls, 1, "{calls}");
    let after = h.listeners(&lb.arn).await;
    assert_eq!(after[&443].arn, https.arn);
    assert_eq!(
        after[&443].weights,
        BTreeMap::from([(tg.arn.clone(), 0), (green_tg.arn.clone(), 100)])
    );
    // Green alone: the blue target group and its alarm go, the listener forwards to green.
    h.converge_to(&Intent {
        spec: spec.clone(),
        serving: Serving::Steady(green.clone()),
    })
    .await;
    assert_eq!(
        h.listeners(&lb.arn).await[&443].weights,
        BTreeMap::from([(green_tg.arn.clone(), 100)])
    );
    assert!(h.target_group(&blue.id).await.is_none(), "blue remains");
    assert!(!h.alarms().await.contains_key(&unhealthy));

    h.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_forwards_and_the_health_check_changes_in_place() {
    let mut h = Harness::new(false).await;
    h.converge().await;
    let revision = AppRevision::of(h.file.spec());
    let lb = h.load_balancer().await;
    let tg = h
        .target_group(&revision.id)
        .await
        .unwrap_or_else(|| panic!("no target group"));

    // Without a certificate: one HTTP listener forwarding to the revision.
    let listeners = h.listeners(&lb.arn).await;
    assert_eq!(listeners.keys().copied().collect::<Vec<_>>(), [80]);
    assert_eq!(listeners[&80].protocol, "HTTP");
    assert_eq!(listeners[&80].action, "forward");
    assert_eq!(
        listeners[&80].weights,
        BTreeMap::from([(tg.arn.clone(), 100)])
    );
    let steady = h
        .platform
        .apply(&h.file.scope, &h.file.intent(), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut status = plinth_crds::DataPlatformStatus::default();
    h.platform.write_outputs(&steady.pass.observed, &mut status);
    assert_eq!(status.endpoint, Some(format!("http://{}", lb.dns)));

    // A new health check is modified in place: same ARN, new settings.
    {
        let check = &mut h.file.platform.spec.load_balancer.health_check;
        check.path = "/ready".to_owned();
        check.interval_seconds = 10;
        check.timeout_seconds = 4;
        check.healthy_threshold = 3;
        check.unhealthy_threshold = 4;
    }
    let before = h.clients.calls().snapshot();
    let finished = h.converge().await;
    assert_eq!(finished.changes, 1, "{finished:?}");
    let calls = h.clients.calls().snapshot().since(&before);
    assert_eq!(calls.of("ModifyTargetGroup").calls, 1, "{calls}");
    assert_eq!(calls.of("CreateTargetGroup").calls, 0, "{calls}");
    let changed = h
        .target_group(&revision.id)
        .await
        .unwrap_or_else(|| panic!("no target group"));
    assert_eq!(changed.arn, tg.arn);
    assert_eq!(
        (
            changed.path.as_str(),
            changed.interval,
            changed.timeout,
            changed.healthy,
            changed.unhealthy
        ),
        ("/ready", 10, 4, 3, 4)
    );

    // Drift: the header attribute switched off by hand is switched back on.
    // (A plain query request: the test crate has no ELBv2 SDK types to build the attribute.)
    let response = plinth_e2e::http()
        .post(&h.endpoint)
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/eu-west-1/elasticloadbalancing/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .form(&[
            ("Action", "ModifyLoadBalancerAttributes"),
            ("Version", "2015-12-01"),
            ("LoadBalancerArn", lb.arn.as_str()),
            (
                "Attributes.member.1.Key",
                "routing.http.drop_invalid_header_fields.enabled",
            ),
            ("Attributes.member.1.Value", "false"),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("ModifyLoadBalancerAttributes: {e}"));
    assert!(response.status().is_success(), "{response:?}");
    assert_eq!(
        h.load_balancer()
            .await
            .attributes
            .get("routing.http.drop_invalid_header_fields.enabled")
            .map(String::as_str),
        Some("false"),
        "the drift was not made"
    );
    assert_eq!(h.converge().await.changes, 1);
    assert_eq!(
        h.load_balancer()
            .await
            .attributes
            .get("routing.http.drop_invalid_header_fields.enabled")
            .map(String::as_str),
        Some("true")
    );

    h.destroy().await;
}
