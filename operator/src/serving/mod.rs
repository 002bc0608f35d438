//! The serving front: the internet-facing Application Load Balancer, one target group per app
//! revision and the listeners that forward to them with the rollout's weights, each a
//! [`Component`] of the `DataPlatform` spec acting through Elastic Load Balancing v2.
//!
//! The desired graph (keys as written in the `plinth.dev/component` tag; `→` is "refers to"):
//!
//! ```text
//! load-balancer                    → subnet/public/<az>…, security-group/load-balancer
//! target-group/<revision>          → vpc                      (one per revision in the Intent)
//! listener/https   (certificate)   → load-balancer, target-group/<revision>… (weighted forward)
//! listener/http                    → load-balancer; 301 to HTTPS with a certificate,
//!                                    else the weighted forward
//! ```
//!
//! Teardown order follows from these references: listeners go before the target groups they
//! forward to and before the load balancer, the load balancer before its subnets and security
//! group. The compute family's scaling groups refer to the target groups, so a target group of
//! an old revision goes only after its scaling group.
//!
//! ELBv2 has no tag filter on its describe calls, and listing the region's load balancers or
//! target groups would cost more the more platforms share it. So observing never lists them:
//! the load balancer is described by its deterministic name ([`Scope::name_for`]) and its tags
//! confirm it is the platform's; target groups (old revisions' included, for cleanup) come from
//! the Resource Groups Tagging API by the platform tag ([`crate::aws::tagging`]). A steady pass
//! costs the same at one platform as at two hundred.

pub mod listener;
pub mod load_balancer;
pub mod target_group;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_elasticloadbalancingv2::types::{Listener, LoadBalancer, Tag};
use plinth_crds::DataPlatformStatus;

use crate::aws::{AwsClients, classify, error_code};
use crate::engine::{
    ActError, COMPONENT_TAG, Component, CreateRequest, Key, Kind, Observed, PLATFORM_TAG, Reads,
    Scope,
};
use crate::intent::Intent;
use crate::platform::{Family, Group, never_retained};

/// The Application Load Balancer.
pub const LOAD_BALANCER: Kind = Kind("load-balancer");
/// Target groups, one per app revision.
pub const TARGET_GROUP: Kind = Kind("target-group");
/// The load balancer's listeners.
pub const LISTENER: Kind = Kind("listener");

/// Every serving kind, in dependency order.
pub const KINDS: [Kind; 3] = [LOAD_BALANCER, TARGET_GROUP, LISTENER];

/// The tag naming the app revision a target group serves.
pub const REVISION_TAG: &str = "plinth.dev/revision";

/// AWS's limit on load balancer and target group names.
pub const NAME_LEN: usize = 32;

/// How many ARNs one `DescribeTags` call takes.
const TAGS_PER_CALL: usize = 20;

/// Component keys of the serving front.
pub mod keys {
    use crate::engine::Key;

    /// The load balancer.
    pub const LOAD_BALANCER: &str = "load-balancer";
    /// The HTTPS listener (only with a certificate).
    pub const HTTPS_LISTENER: &str = "listener/https";
    /// The HTTP listener: a redirect to HTTPS with a certificate, the forward without.
    pub const HTTP_LISTENER: &str = "listener/http";

    /// The target group of app revision `revision` (its 8-hex id).
    pub fn target_group(revision: &str) -> Key {
        format!("target-group/{revision}").into()
    }
}

/// The serving components, acting through `clients`.
pub fn components(clients: &AwsClients) -> Vec<Arc<dyn Component<Intent>>> {
    vec![
        Arc::new(load_balancer::LoadBalancers::new(clients.clone())),
        Arc::new(target_group::TargetGroups::new(clients.clone())),
        Arc::new(listener::Listeners::new(clients.clone())),
    ]
}

/// The serving family: its components, the `LoadBalancerReady` condition over every serving
/// kind, and the endpoint in the status.
pub fn family(clients: &AwsClients) -> Family {
    let group = Group {
        condition: "LoadBalancerReady",
        kinds: &KINDS,
        outputs: write_status,
        retained: never_retained,
    };
    Family {
        components: components(clients),
        group,
    }
}

/// Writes `status.endpoint` (`https://<dns>` with a certificate listener, else `http://`), the
/// load balancer's ARN and the target groups' ARNs (in key order) from what a pass observed.
pub fn write_status(observed: &Observed, status: &mut DataPlatformStatus) {
    let load_balancer = observed.primary(&Key::from(keys::LOAD_BALANCER));
    let https = observed.primary(&Key::from(keys::HTTPS_LISTENER)).is_some();
    status.endpoint = load_balancer
        .and_then(|lb| lb.attrs.get(load_balancer::DNS_NAME))
        .and_then(|dns| dns.as_str())
        .map(|dns| format!("{}://{dns}", if https { "https" } else { "http" }));
    let resources = status.resources.get_or_insert_with(Default::default);
    resources.load_balancer_arn = load_balancer.map(|lb| lb.id.clone());
    resources.target_group_arns = observed
        .keys()
        .filter(|k| k.as_str().starts_with("target-group/"))
        .filter_map(|k| observed.primary(k))
        .filter(|r| r.kind == TARGET_GROUP)
        .map(|r| r.id.clone())
        .collect();
}

/// The tags a create carries, in ELBv2's shape, with `extra` ones (a revision) added.
pub(crate) fn create_tags(request: &CreateRequest<'_>, extra: &[(&str, &str)]) -> Vec<Tag> {
    let mut tags = request.tags();
    for (k, v) in extra {
        tags.insert((*k).to_owned(), (*v).to_owned());
    }
    tags.into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// The tags of each ARN, 20 ARNs per `DescribeTags` call.
pub(crate) async fn tags_of(
    aws: &AwsClients,
    arns: &[String],
) -> Result<BTreeMap<String, BTreeMap<String, String>>, ActError> {
    let mut out = BTreeMap::new();
    for chunk in arns.chunks(TAGS_PER_CALL) {
        let output = aws
            .elbv2()
            .await
            .describe_tags()
            .set_resource_arns(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        for description in output.tag_descriptions() {
            let Some(arn) = description.resource_arn() else {
                continue;
            };
            let tags = description
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
                .collect();
            out.insert(arn.to_owned(), tags);
        }
    }
    Ok(out)
}

/// The component key `tags` name when they are `scope`'s.
pub(crate) fn key_of(tags: &BTreeMap<String, String>, scope: &Scope) -> Option<Key> {
    if tags.get(PLATFORM_TAG).map(String::as_str) != Some(scope.platform()) {
        return None;
    }
    tags.get(COMPONENT_TAG).map(|k| Key::from(k.as_str()))
}

/// The platform's load balancer by its deterministic name: one `DescribeLoadBalancers`, whatever
/// the number of load balancers in the region ("not found" is none). Whether it is really the
/// platform's is for the caller to check with its tags ([`tags_of`], [`key_of`]), in the
/// `DescribeTags` call it makes anyway.
pub(crate) async fn load_balancer_named(
    aws: &AwsClients,
    scope: &Scope,
) -> Result<Option<LoadBalancer>, ActError> {
    let name = scope.name_for(&Key::from(keys::LOAD_BALANCER), NAME_LEN);
    match aws
        .elbv2()
        .await
        .describe_load_balancers()
        .names(&name)
        .send()
        .await
    {
        Ok(output) => Ok(output
            .load_balancers()
            .iter()
            .find(|lb| lb.load_balancer_name() == Some(name.as_str()))
            .cloned()),
        Err(e) if error_code(&e) == Some("LoadBalancerNotFound") => Ok(None),
        Err(e) => Err(classify(&e)),
    }
}

/// The platform's load balancer as one observe reads it for both the load balancer's and the
/// listeners' drivers: the load balancer by name, its listeners, and the tags of all of them in
/// one `DescribeTags`. `None` when there is no load balancer of that name or it is not
/// `scope`'s (its tags say so).
pub(crate) struct Front {
    /// The load balancer.
    pub load_balancer: LoadBalancer,
    /// Its listeners, every page.
    pub listeners: Vec<Listener>,
    /// The tags of the load balancer and of each listener, by ARN.
    pub tags: BTreeMap<String, BTreeMap<String, String>>,
}

/// The [`Front`] of `scope`, read once per observe through `reads` (pass a fresh [`Reads`] to
/// look afresh, as a create that lost its answer does).
pub(crate) async fn front(
    aws: &AwsClients,
    scope: &Scope,
    reads: &Reads,
) -> Result<Arc<Option<Front>>, ActError> {
    reads
        .get_or_read("elbv2:front", || read_front(aws, scope))
        .await
}

async fn read_front(aws: &AwsClients, scope: &Scope) -> Result<Option<Front>, ActError> {
    let Some(load_balancer) = load_balancer_named(aws, scope).await? else {
        return Ok(None);
    };
    let Some(lb_arn) = load_balancer.load_balancer_arn() else {
        return Ok(None);
    };
    let call = aws
        .elbv2()
        .await
        .describe_listeners()
        .load_balancer_arn(lb_arn);
    let pages = call.into_paginator().items().send();
    let listeners: Vec<Listener> = pages.try_collect().await.map_err(|e| classify(&e))?;
    let arns: Vec<String> = std::iter::once(lb_arn.to_owned())
        .chain(
            listeners
                .iter()
                .filter_map(|l| l.listener_arn().map(str::to_owned)),
        )
        .collect();
    let tags = tags_of(aws, &arns).await?;
    // A load balancer of that name that is not the platform's has no listeners of the
    // platform's either.
    if tags.get(lb_arn).and_then(|t| key_of(t, scope)).is_none() {
        return Ok(None);
    }
    Ok(Some(Front {
        load_balancer,
        listeners,
        tags,
    }))
}

#[cfg(test)]
pub(crate) mod tests;
