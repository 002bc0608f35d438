//! The instances' identity: one IAM role per platform (trust: EC2; an inline policy allowing
//! only the app's own secret, artifact object and log group) and the instance profile that
//! carries it onto the instances.
//!
//! IAM is global and has no tag filter on its list calls, so both are found by their
//! deterministic names (`Scope::name_for`, unique per platform and key), one `GetRole` /
//! `GetInstanceProfile` each, and adopted only when their `plinth.dev/platform` tag is the
//! platform's. Ids are the names (what every IAM call takes); the ARNs are attributes.

use async_trait::async_trait;
use aws_sdk_iam::types::Tag;

use super::policy::{
    INLINE_POLICY_NAME, instance_policy, log_statement, parse_document, to_json, trust_policy,
    with_log_statement, without_log_statement,
};
use super::{IAM_PATH, IAM_ROLE, INSTANCE_PROFILE, artifact_location, keys};
use crate::aws::kit::{Deleted, Kit, Listed, Listing, Made, Select, Sent, updated};
use crate::aws::{classify, error_code};
use crate::driver;
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, Key, Kind, ObservedResource,
    PLATFORM_TAG, Reads, Scope, UpdateRequest, Wanted,
};
use crate::intent::Intent;

/// Observed only: the ARN.
pub const ARN: &str = "arn";

crate::fields! {
    /// The instances' role as compute wants it.
    desired RoleFields,
    /// The role's fields as its driver reads them.
    resolved RoleValues {
        /// The IAM path (immutable in IAM).
        path / PATH = "path": AttrValue => &'a str, immutable;
        /// The role's trust policy document.
        trust_policy / TRUST_POLICY = "assume_role_policy": AttrValue => &'a AttrValue, updatable;
        /// The role's inline policy document (without the log statement, see
        /// [`super::policy::LOGS_SID`]).
        policy / POLICY = "policy": AttrValue => &'a AttrValue, updatable;
    }
}

crate::fields! {
    /// The instance profile as compute wants it.
    desired ProfileFields,
    /// The profile's fields as its driver reads them.
    resolved ProfileValues {
        /// The IAM path (immutable in IAM).
        path / PATH = _: AttrValue => &'a str, immutable;
        /// The role an instance profile holds.
        role / ROLE = "role": AttrValue => &'a str, updatable;
    }
}

/// A policy document as IAM takes it.
fn document(value: &AttrValue) -> Result<String, ActError> {
    to_json(value).ok_or_else(|| ActError::refused("PlinthInvalidPolicy", "not a policy document"))
}

/// IAM's limit on a role name.
const ROLE_NAME_LEN: usize = 64;
/// IAM's limit on an instance profile name.
const PROFILE_NAME_LEN: usize = 128;
/// What IAM answers for a missing entity.
const NO_SUCH_ENTITY: &str = "NoSuchEntity";

fn iam_tags(request: &CreateRequest<'_>) -> Result<Vec<Tag>, ActError> {
    request
        .tags()
        .into_iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| ActError::refused("PlinthInvalidTag", e.to_string()))
        })
        .collect()
}

fn is_ours(tags: &[Tag], scope: &Scope) -> bool {
    tags.iter()
        .any(|t| t.key() == PLATFORM_TAG && t.value() == scope.platform())
}

/// `Ok(None)` for IAM's "no such entity", else the value or the classified error.
fn found<T, E>(
    result: Result<
        T,
        aws_sdk_iam::error::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
    >,
) -> Result<Option<T>, ActError>
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if error_code(&e) == Some(NO_SUCH_ENTITY) => Ok(None),
        Err(e) => Err(classify(&e)),
    }
}

/// `Ok(())` for success and for "no such entity" (already gone), else the classified error.
fn gone_ok<T, E>(
    result: Result<
        T,
        aws_sdk_iam::error::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
    >,
) -> Result<(), ActError>
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    found(result).map(|_| ())
}

driver!(
    /// The instances' role.
    InstanceRole
);

impl InstanceRole {
    /// The log statement for `scope`'s platform in these clients' region.
    fn logs(&self, scope: &Scope) -> AttrValue {
        log_statement(self.aws.region(), scope.platform())
    }

    /// The role named `name`, when it exists and is `scope`'s.
    async fn find(
        &self,
        name: &str,
        key: &Key,
        scope: &Scope,
    ) -> Result<Option<ObservedResource>, ActError> {
        let output = found(self.aws.iam().await.get_role().role_name(name).send().await)?;
        let Some(role) = output.as_ref().and_then(|o| o.role()) else {
            return Ok(None);
        };
        if !is_ours(role.tags(), scope) {
            return Ok(None);
        }
        let mut resource = ObservedResource::new(IAM_ROLE, key, role.role_name())
            .attr(PATH, role.path())
            .attr(ARN, role.arn());
        if let Some(trust) = role.assume_role_policy_document().and_then(parse_document) {
            resource = resource.attr(TRUST_POLICY, trust);
        }
        let inline = found(
            self.aws
                .iam()
                .await
                .get_role_policy()
                .role_name(name)
                .policy_name(INLINE_POLICY_NAME)
                .send()
                .await,
        )?;
        if let Some(document) = inline
            .as_ref()
            .and_then(|o| parse_document(o.policy_document()))
        {
            resource = resource.attr(POLICY, without_log_statement(document, &self.logs(scope)));
        }
        Ok(Some(resource))
    }

    async fn put_policy(
        &self,
        role: &str,
        policy: &AttrValue,
        scope: &Scope,
    ) -> Result<(), ActError> {
        let document = to_json(&with_log_statement(policy.clone(), self.logs(scope)))
            .ok_or_else(|| ActError::refused("PlinthUnresolved", "the policy holds a reference"))?;
        self.aws
            .iam()
            .await
            .put_role_policy()
            .role_name(role)
            .policy_name(INLINE_POLICY_NAME)
            .policy_document(document)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }
}

impl Component<Intent> for InstanceRole {
    fn desired(&self, spec: &Intent) -> Wanted {
        // The role is shared by every revision; its policy names the artifact of each one
        // (blue and green fetch different objects during a rollout).
        let mut artifacts = Vec::new();
        for (revision, _) in spec.serving.weights() {
            artifacts.push(artifact_location(&revision.artifact, IAM_ROLE)?);
        }
        artifacts.sort_by(|a, b| (&a.bucket, &a.key).cmp(&(&b.bucket, &b.key)));
        artifacts.dedup();
        let policy = instance_policy(AttrValue::reference(keys::DB_SECRET), &artifacts);
        let fields = RoleFields {
            path: IAM_PATH.into(),
            trust_policy: trust_policy(),
            policy,
        };
        Ok(vec![fields.into_desired(IAM_ROLE, keys::INSTANCE_ROLE)])
    }
}

#[async_trait]
impl Listing for InstanceRole {
    async fn list(&self, select: Select<'_>, _reads: &Reads) -> Listed {
        let Some((scope, key)) = select.singleton(keys::INSTANCE_ROLE) else {
            return Ok(Vec::new());
        };
        let name = scope.name_for(&key, ROLE_NAME_LEN);
        Ok(self.find(&name, &key, scope).await?.into_iter().collect())
    }
}

#[async_trait]
impl Kit for InstanceRole {
    const KIND: Kind = IAM_ROLE;
    const IAM_ACTIONS: &'static [&'static str] = crate::actions![
        iam: GetRole, GetRolePolicy, CreateRole, TagRole, PutRolePolicy, UpdateAssumeRolePolicy,
            ListRolePolicies, DeleteRolePolicy, ListInstanceProfilesForRole,
            RemoveRoleFromInstanceProfile, DeleteRole;
    ];
    const DUPLICATE_CODES: &'static [&'static str] = &["EntityAlreadyExists"];

    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let fields = RoleValues::read(request.attrs)?;
        let (path, trust) = (fields.path, document(fields.trust_policy)?);
        let name = request.name(ROLE_NAME_LEN);
        let platform = request.scope.platform();
        let call = self.aws.iam().await.create_role().role_name(&name);
        let output = crate::send_once!(
            aws_sdk_iam,
            call.path(path)
                .assume_role_policy_document(&trust)
                .description(format!("Plinth app instances of {platform}"))
                .set_tags(Some(iam_tags(request)?))
        )?;
        let arn = output
            .role()
            .map(|r| r.arn().to_owned())
            .unwrap_or_default();
        Ok(ObservedResource::new(IAM_ROLE, request.key, name.as_str())
            .attr(PATH, path)
            .attr(ARN, arn))
    }

    /// The inline policy, on the role made or found.
    async fn after_create(
        &self,
        mut resource: ObservedResource,
        request: &CreateRequest<'_>,
    ) -> Made {
        let fields = RoleValues::read(request.attrs)?;
        self.put_policy(&resource.id, fields.policy, request.scope)
            .await?;
        let attrs = &mut resource.attrs;
        attrs.insert(TRUST_POLICY.to_owned(), fields.trust_policy.clone());
        attrs.insert(POLICY.to_owned(), fields.policy.clone());
        Ok(resource)
    }

    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        let role = &request.current.id;
        let fields = RoleValues::read(request.attrs)?;
        for field in request.changed {
            match field.as_str() {
                TRUST_POLICY => {
                    let trust = document(fields.trust_policy)?;
                    let call = self.aws.iam().await.update_assume_role_policy();
                    let result = call.role_name(role).policy_document(trust).send().await;
                    result.map_err(|e| classify(&e))?;
                }
                POLICY => self.put_policy(role, fields.policy, request.scope).await?,
                _ => {}
            }
        }
        Ok(updated(&request))
    }

    async fn send_delete(&self, current: &ObservedResource, _scope: &Scope) -> Deleted {
        let role = &current.id;
        // IAM refuses to delete a role with inline policies or in an instance profile.
        let call = self.aws.iam().await.list_role_policies().role_name(role);
        let Some(policies) = found(call.send().await)? else {
            return Ok(Deletion::Gone);
        };
        for policy in policies.policy_names() {
            let call = self.aws.iam().await.delete_role_policy().role_name(role);
            gone_ok(call.policy_name(policy).send().await)?;
        }
        let call = self.aws.iam().await.list_instance_profiles_for_role();
        if let Some(profiles) = found(call.role_name(role).send().await)? {
            for profile in profiles.instance_profiles() {
                let name = profile.instance_profile_name();
                let call = self.aws.iam().await.remove_role_from_instance_profile();
                gone_ok(
                    call.instance_profile_name(name)
                        .role_name(role)
                        .send()
                        .await,
                )?;
            }
        }
        gone_ok(
            self.aws
                .iam()
                .await
                .delete_role()
                .role_name(role)
                .send()
                .await,
        )?;
        Ok(Deletion::Gone)
    }
}

driver!(
    /// The instance profile holding the role.
    InstanceProfile
);

impl InstanceProfile {
    async fn find(
        &self,
        name: &str,
        key: &Key,
        scope: &Scope,
    ) -> Result<Option<ObservedResource>, ActError> {
        let output = found(
            self.aws
                .iam()
                .await
                .get_instance_profile()
                .instance_profile_name(name)
                .send()
                .await,
        )?;
        let Some(profile) = output.as_ref().and_then(|o| o.instance_profile()) else {
            return Ok(None);
        };
        if !is_ours(profile.tags(), scope) {
            return Ok(None);
        }
        let mut resource =
            ObservedResource::new(INSTANCE_PROFILE, key, profile.instance_profile_name())
                .attr(PATH, profile.path())
                .attr(ARN, profile.arn());
        if let Some(role) = profile.roles().first() {
            resource = resource.attr(ROLE, role.role_name());
        }
        Ok(Some(resource))
    }

    async fn add_role(&self, profile: &str, role: &str) -> Result<(), ActError> {
        match self
            .aws
            .iam()
            .await
            .add_role_to_instance_profile()
            .instance_profile_name(profile)
            .role_name(role)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // The profile holds one role at most: it is already there.
            Err(e) if error_code(&e) == Some("LimitExceeded") => Ok(()),
            Err(e) => Err(classify(&e)),
        }
    }

    async fn remove_role(&self, profile: &str, role: &str) -> Result<(), ActError> {
        gone_ok(
            self.aws
                .iam()
                .await
                .remove_role_from_instance_profile()
                .instance_profile_name(profile)
                .role_name(role)
                .send()
                .await,
        )
    }
}

impl Component<Intent> for InstanceProfile {
    fn desired(&self, _spec: &Intent) -> Wanted {
        let fields = ProfileFields {
            path: IAM_PATH.into(),
            role: AttrValue::reference(keys::INSTANCE_ROLE),
        };
        Ok(vec![
            fields.into_desired(INSTANCE_PROFILE, keys::INSTANCE_PROFILE),
        ])
    }
}

#[async_trait]
impl Listing for InstanceProfile {
    async fn list(&self, select: Select<'_>, _reads: &Reads) -> Listed {
        let Some((scope, key)) = select.singleton(keys::INSTANCE_PROFILE) else {
            return Ok(Vec::new());
        };
        let name = scope.name_for(&key, PROFILE_NAME_LEN);
        Ok(self.find(&name, &key, scope).await?.into_iter().collect())
    }
}

#[async_trait]
impl Kit for InstanceProfile {
    const KIND: Kind = INSTANCE_PROFILE;
    const IAM_ACTIONS: &'static [&'static str] = crate::actions![
        iam: GetInstanceProfile, CreateInstanceProfile, TagInstanceProfile,
            AddRoleToInstanceProfile, RemoveRoleFromInstanceProfile, DeleteInstanceProfile;
    ];
    const DUPLICATE_CODES: &'static [&'static str] = &["EntityAlreadyExists"];

    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let path = ProfileValues::read(request.attrs)?.path;
        let name = request.name(PROFILE_NAME_LEN);
        let call = self.aws.iam().await.create_instance_profile();
        let output = crate::send_once!(
            aws_sdk_iam,
            call.instance_profile_name(&name)
                .path(path)
                .set_tags(Some(iam_tags(request)?))
        )?;
        let arn = output.instance_profile().map(|p| p.arn().to_owned());
        Ok(
            ObservedResource::new(INSTANCE_PROFILE, request.key, name.as_str())
                .attr(PATH, path)
                .attr(ARN, arn.unwrap_or_default()),
        )
    }

    /// The role, in the profile made or found.
    async fn after_create(
        &self,
        mut resource: ObservedResource,
        request: &CreateRequest<'_>,
    ) -> Made {
        let role = ProfileValues::read(request.attrs)?.role;
        if resource.attrs.get(ROLE).and_then(AttrValue::as_str) != Some(role) {
            self.add_role(&resource.id, role).await?;
            resource.attrs.insert(ROLE.to_owned(), AttrValue::str(role));
        }
        Ok(resource)
    }

    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        if request.changed.iter().any(|f| f == ROLE) {
            let profile = &request.current.id;
            if let Some(old) = request.current.attrs.get(ROLE).and_then(AttrValue::as_str) {
                self.remove_role(profile, old).await?;
            }
            let role = ProfileValues::read(request.attrs)?.role;
            self.add_role(profile, role).await?;
        }
        Ok(updated(&request))
    }

    async fn send_delete(&self, current: &ObservedResource, _scope: &Scope) -> Deleted {
        // IAM refuses to delete a profile that still holds a role.
        if let Some(role) = current.attrs.get(ROLE).and_then(AttrValue::as_str) {
            self.remove_role(&current.id, role).await?;
        }
        let call = self.aws.iam().await.delete_instance_profile();
        gone_ok(call.instance_profile_name(&current.id).send().await)?;
        Ok(Deletion::Gone)
    }
}
