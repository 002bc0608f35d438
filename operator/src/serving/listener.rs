//! The load balancer's listeners. With `spec.loadBalancer.certificateArn`: HTTPS on 443 with a
//! TLS 1.3 policy and the weighted forward, and HTTP on 80 answering 301 to HTTPS; without it,
//! HTTP on 80 with the weighted forward.
//!
//! The weighted forward lists every target group of [`Serving::weights`](crate::intent::Serving)
//! with its weight, so a blue/green rollout moves traffic by changing the Intent: the weights
//! (like the protocol, policy, certificate and action) change in place with `ModifyListener`.
//! The load balancer and port replace a listener. Listeners carry Plinth's tags; observing
//! costs three calls whatever the number of platforms in the region: the load balancer by its
//! deterministic name, its `DescribeListeners`, and one `DescribeTags` for the load balancer
//! and its listeners together (the load balancer's confirms it is the platform's).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, Certificate, ForwardActionConfig, Listener, ProtocolEnum,
    RedirectActionConfig, RedirectActionStatusCodeEnum, TargetGroupTuple,
};

use super::{LISTENER, create_tags, front, key_of, keys};
use crate::aws::kit::{Deleted, Kit, Listed, Listing, Made, Select, Sent, updated};
use crate::aws::{classify, deletion};
use crate::driver;
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, DesiredResource, Key, Kind,
    ObservedResource, Reads, Scope, UpdateRequest, Wanted,
};
use crate::intent::Intent;

/// TLS 1.3 and 1.2 with forward secrecy only: AWS's recommended policy for new listeners.
pub const TLS_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";

/// The IAM actions this driver's calls need.
const IAM_ACTIONS: &[&str] = crate::actions![
    elasticloadbalancing: DescribeLoadBalancers, DescribeListeners, DescribeTags, CreateListener,
        AddTags, ModifyListener, DeleteListener;
];

driver!(
    /// The listeners component.
    Listeners
);

fn map(entries: impl IntoIterator<Item = (&'static str, AttrValue)>) -> AttrValue {
    AttrValue::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// The weighted forward to every revision's target group (pure).
pub fn weighted_forward(intent: &Intent) -> AttrValue {
    map([
        ("type", "forward".into()),
        (
            "target_groups",
            AttrValue::set(intent.serving.weights().into_iter().map(|(revision, w)| {
                map([
                    (
                        "target_group",
                        AttrValue::reference(keys::target_group(&revision.id)),
                    ),
                    ("weight", w.into()),
                ])
            })),
        ),
    ])
}

/// The permanent redirect of any HTTP request to the same URL over HTTPS.
pub fn https_redirect() -> AttrValue {
    map([
        ("type", "redirect".into()),
        ("protocol", "HTTPS".into()),
        ("port", "443".into()),
        ("host", "#{host}".into()),
        ("path", "/#{path}".into()),
        ("query", "#{query}".into()),
        ("status_code", "HTTP_301".into()),
    ])
}

crate::fields! {
    /// A listener as serving wants it.
    desired ListenerFields,
    /// A listener's fields as its driver reads them.
    resolved ListenerValues {
        /// The load balancer.
        load_balancer_arn / LOAD_BALANCER_ARN = "load_balancer_arn": AttrValue => &'a str, immutable;
        /// The port.
        port / PORT = "port": AttrValue => i32, immutable;
        /// `HTTP` or `HTTPS`.
        protocol / PROTOCOL = "protocol": AttrValue => &'a str, updatable;
        /// The TLS security policy (HTTPS only).
        ssl_policy / SSL_POLICY = "ssl_policy": Option<AttrValue> => Option<&'a str>, updatable;
        /// The default certificate (HTTPS only).
        certificate_arn / CERTIFICATE_ARN = "certificate_arn": Option<AttrValue> => Option<&'a str>, updatable;
        /// The default action, a map with `type` = `forward` (and `target_groups`, a set of
        /// `{target_group, weight}`) or `redirect` (and `protocol`, `port`, `host`, `path`, `query`,
        /// `status_code`).
        default_action / DEFAULT_ACTION = "default_action": AttrValue => &'a AttrValue, updatable;
    }
}

impl ListenerValues<'_> {
    /// The certificate as the SDK takes it.
    fn certificates(&self) -> Option<Vec<Certificate>> {
        let arn = self.certificate_arn?;
        Some(vec![Certificate::builder().certificate_arn(arn).build()])
    }
}

/// The desired listeners of an Intent (pure).
pub fn desired_listeners(intent: &Intent) -> Vec<DesiredResource> {
    let http = |default_action| {
        let fields = ListenerFields {
            load_balancer_arn: AttrValue::reference(keys::LOAD_BALANCER),
            port: 80.into(),
            protocol: "HTTP".into(),
            ssl_policy: None,
            certificate_arn: None,
            default_action,
        };
        fields.into_desired(LISTENER, keys::HTTP_LISTENER)
    };
    match intent.load_balancer.https_certificate() {
        Some(certificate) => {
            let https = ListenerFields {
                load_balancer_arn: AttrValue::reference(keys::LOAD_BALANCER),
                port: 443.into(),
                protocol: "HTTPS".into(),
                ssl_policy: Some(TLS_POLICY.into()),
                certificate_arn: Some(certificate.into()),
                default_action: weighted_forward(intent),
            };
            vec![
                https.into_desired(LISTENER, keys::HTTPS_LISTENER),
                http(https_redirect()),
            ]
        }
        None => vec![http(weighted_forward(intent))],
    }
}

/// A listener's default action in the shape of [`DEFAULT_ACTION`].
fn action_value(action: &Action) -> AttrValue {
    match action.r#type() {
        Some(ActionTypeEnum::Forward) => {
            let groups: Vec<AttrValue> = match action.forward_config() {
                Some(config) if !config.target_groups().is_empty() => config
                    .target_groups()
                    .iter()
                    .filter_map(|t| {
                        Some(map([
                            ("target_group", AttrValue::str(t.target_group_arn()?)),
                            ("weight", t.weight().unwrap_or(1).into()),
                        ]))
                    })
                    .collect(),
                // A plain forward to one group sends it all the traffic.
                _ => action
                    .target_group_arn()
                    .map(|arn| {
                        map([
                            ("target_group", AttrValue::str(arn)),
                            ("weight", 100.into()),
                        ])
                    })
                    .into_iter()
                    .collect(),
            };
            map([
                ("type", "forward".into()),
                ("target_groups", AttrValue::set(groups)),
            ])
        }
        Some(ActionTypeEnum::Redirect) => {
            let config = action.redirect_config();
            let text = |value: Option<&str>| AttrValue::str(value.unwrap_or_default());
            map([
                ("type", "redirect".into()),
                ("protocol", text(config.and_then(|c| c.protocol()))),
                ("port", text(config.and_then(|c| c.port()))),
                ("host", text(config.and_then(|c| c.host()))),
                ("path", text(config.and_then(|c| c.path()))),
                ("query", text(config.and_then(|c| c.query()))),
                (
                    "status_code",
                    text(config.and_then(|c| c.status_code()).map(|s| s.as_str())),
                ),
            ])
        }
        other => map([(
            "type",
            AttrValue::str(other.map_or("unknown", ActionTypeEnum::as_str)),
        )]),
    }
}

/// The SDK action for a resolved [`DEFAULT_ACTION`] value.
pub fn action_of(value: Option<&AttrValue>) -> Result<Action, ActError> {
    let invalid = || {
        ActError::refused(
            "PlinthInvalidAction",
            format!("cannot build a listener action from {value:?}"),
        )
    };
    let Some(AttrValue::Map(fields)) = value else {
        return Err(invalid());
    };
    let text = |name: &str| fields.get(name).and_then(AttrValue::as_str);
    match text("type") {
        Some("forward") => {
            let Some(AttrValue::Set(groups)) = fields.get("target_groups") else {
                return Err(invalid());
            };
            let mut tuples = Vec::new();
            for group in groups {
                let AttrValue::Map(group) = group else {
                    return Err(invalid());
                };
                let arn = group
                    .get("target_group")
                    .and_then(AttrValue::as_str)
                    .ok_or_else(invalid)?;
                let weight = group
                    .get("weight")
                    .and_then(AttrValue::as_int)
                    .and_then(|w| i32::try_from(w).ok())
                    .ok_or_else(invalid)?;
                tuples.push(
                    TargetGroupTuple::builder()
                        .target_group_arn(arn)
                        .weight(weight)
                        .build(),
                );
            }
            Ok(Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .forward_config(
                    ForwardActionConfig::builder()
                        .set_target_groups(Some(tuples))
                        .build(),
                )
                .build())
        }
        Some("redirect") => Ok(Action::builder()
            .r#type(ActionTypeEnum::Redirect)
            .redirect_config(
                RedirectActionConfig::builder()
                    .set_protocol(text("protocol").map(str::to_owned))
                    .set_port(text("port").map(str::to_owned))
                    .set_host(text("host").map(str::to_owned))
                    .set_path(text("path").map(str::to_owned))
                    .set_query(text("query").map(str::to_owned))
                    .status_code(RedirectActionStatusCodeEnum::from(
                        text("status_code").unwrap_or("HTTP_301"),
                    ))
                    .build(),
            )
            .build()),
        _ => Err(invalid()),
    }
}

/// A listener as AWS describes it.
fn observed_of(key: Key, listener: &Listener) -> Option<ObservedResource> {
    let mut resource = ObservedResource::new(LISTENER, key, listener.listener_arn()?);
    if let Some(lb) = listener.load_balancer_arn() {
        resource = resource.attr(LOAD_BALANCER_ARN, lb);
    }
    if let Some(port) = listener.port() {
        resource = resource.attr(PORT, port);
    }
    if let Some(protocol) = listener.protocol() {
        resource = resource.attr(PROTOCOL, protocol.as_str());
        // Only an HTTPS listener has a policy and certificates (an emulator may report a
        // policy on plain HTTP too, which means nothing).
        if *protocol == ProtocolEnum::Https {
            if let Some(policy) = listener.ssl_policy() {
                resource = resource.attr(SSL_POLICY, policy);
            }
            if let Some(certificate) = listener
                .certificates()
                .iter()
                .find_map(|c| c.certificate_arn())
            {
                resource = resource.attr(CERTIFICATE_ARN, certificate);
            }
        }
    }
    if let Some(action) = listener.default_actions().first() {
        resource = resource.attr(DEFAULT_ACTION, action_value(action));
    }
    Some(resource)
}

impl Listeners {
    async fn read(&self, scope: &Scope, reads: &Reads) -> Result<Vec<ObservedResource>, ActError> {
        let front = front(&self.aws, scope, reads).await?;
        let Some(front) = front.as_ref() else {
            return Ok(Vec::new());
        };
        Ok(front
            .listeners
            .iter()
            .filter_map(|l| observed_of(key_of(front.tags.get(l.listener_arn()?)?, scope)?, l))
            .collect())
    }
}

impl Component<Intent> for Listeners {
    fn desired(&self, intent: &Intent) -> Wanted {
        Ok(desired_listeners(intent))
    }
}

#[async_trait]
impl Listing for Listeners {
    async fn list(&self, select: Select<'_>, reads: &Reads) -> Listed {
        self.read(select.scope(), reads).await
    }
}

#[async_trait]
impl Kit for Listeners {
    const KIND: Kind = LISTENER;
    const IAM_ACTIONS: &'static [&'static str] = IAM_ACTIONS;
    /// AWS's CreateListener is idempotent for the same settings; a listener on the port with
    /// other settings is `DuplicateListener`: ours is found by its tags.
    const DUPLICATE_CODES: &'static [&'static str] = &["DuplicateListener"];

    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let fields = ListenerValues::read(request.attrs)?;
        let call = self.aws.elbv2().await.create_listener();
        let output = crate::send_once!(
            aws_sdk_elasticloadbalancingv2,
            call.load_balancer_arn(fields.load_balancer_arn)
                .protocol(ProtocolEnum::from(fields.protocol))
                .port(fields.port)
                .set_ssl_policy(fields.ssl_policy.map(str::to_owned))
                .set_certificates(fields.certificates())
                .default_actions(action_of(Some(fields.default_action))?)
                .set_tags(Some(create_tags(request, &[])))
        )?;
        let made = output.listeners().first();
        let made = made.and_then(|l| observed_of(request.key.clone(), l));
        Ok(made.ok_or_else(|| {
            ActError::retryable(
                "PlinthNotReturned",
                "CreateListener answered without the listener",
            )
        })?)
    }

    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        let changed = |field: &str| request.changed.iter().any(|c| c == field);
        let fields = ListenerValues::read(request.attrs)?;
        let mut call = self
            .aws
            .elbv2()
            .await
            .modify_listener()
            .listener_arn(&request.current.id);
        if changed(PROTOCOL) {
            call = call.protocol(ProtocolEnum::from(fields.protocol));
        }
        if changed(SSL_POLICY) {
            call = call.set_ssl_policy(fields.ssl_policy.map(str::to_owned));
        }
        if changed(CERTIFICATE_ARN) {
            call = call.set_certificates(fields.certificates());
        }
        if changed(DEFAULT_ACTION) {
            call = call.default_actions(action_of(Some(fields.default_action))?);
        }
        call.send().await.map_err(|e| classify(&e))?;
        Ok(updated(&request))
    }

    async fn send_delete(&self, current: &ObservedResource, _scope: &Scope) -> Deleted {
        let call = self.aws.elbv2().await.delete_listener();
        let result = call.listener_arn(&current.id).send().await;
        deletion(result, "ListenerNotFound", Deletion::Gone)
    }
}
