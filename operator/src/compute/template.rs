//! One launch template per app revision: the revision's AMI and instance type, the app security
//! group, the instance profile, detailed monitoring (the 60-second scaling alarms need it), IMDSv2 only (hop limit 1: no containers need the metadata
//! service), an encrypted gp3 root volume, and cloud-init user data that installs and starts
//! the app (see [`super::user_data`]).
//!
//! Every field is immutable: a template is never edited, a different one is a replacement
//! (and the scaling group, whose template reference is updatable, moves to it). The user data
//! is compared through the unit's environment read back from the template, so a changed secret
//! ARN or writer endpoint shows as a difference. Observing costs one `DescribeLaunchTemplates`
//! by tag plus one `DescribeLaunchTemplateVersions` per template.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    InstanceType, LaunchTemplate, LaunchTemplateBlockDeviceMappingRequest,
    LaunchTemplateEbsBlockDeviceRequest, LaunchTemplateHttpTokensState,
    LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplatesMonitoringRequest, RequestLaunchTemplateData, ResourceType,
    ResponseLaunchTemplateData, Tag, TagSpecification, VolumeType,
};

use super::user_data::{self, env};
use super::{DATABASE_NAME, LAUNCH_TEMPLATE, REVISION_TAG, keys};
use crate::aws::kit::{Deleted, Ec2Listing, Kit, Made, Seen, Sent, ignore};
use crate::aws::tags::{create_tags, tag_map};
use crate::aws::{LostAnswer, classify};
use crate::driver;
use crate::engine::fields::owned;
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, DesiredResource, Key, Kind,
    ObservedResource, Scope, Wanted,
};
use crate::intent::Intent;
use crate::network::keys as network_keys;

/// Observed only: when the template was made (seconds since the epoch), to tell the newest.
pub const CREATED: &str = "created";

crate::fields! {
    /// A launch template as compute wants it.
    desired TemplateFields,
    /// A launch template's fields as its driver reads them.
    resolved TemplateValues {
        /// The AMI.
        image_id / IMAGE_ID = "image_id": AttrValue => &'a str, immutable;
        /// The instance type.
        instance_type / INSTANCE_TYPE = "instance_type": AttrValue => &'a str, immutable;
        /// The security groups, a set of ids.
        security_groups / SECURITY_GROUPS = "security_groups": AttrValue => BTreeSet<&'a str>, immutable;
        /// The instance profile's name.
        instance_profile / INSTANCE_PROFILE = "instance_profile": AttrValue => &'a str, immutable;
        /// Instance metadata options (`http_tokens`, `hop_limit`).
        metadata / METADATA = "metadata": AttrValue => &'a AttrValue, immutable;
        /// The root volume (`device`, `size_gib`, `type`, `encrypted`).
        root_volume / ROOT_VOLUME = "root_volume": AttrValue => &'a AttrValue, immutable;
        /// Detailed (1-minute) monitoring: the scaling alarms evaluate 60-second periods of
        /// `CPUUtilization`, which basic monitoring publishes only every five minutes.
        detailed_monitoring / DETAILED_MONITORING = "detailed_monitoring": AttrValue => bool, immutable;
        /// The app unit's environment, which the user data is rendered from.
        environment / ENVIRONMENT = "environment": AttrValue => &'a AttrValue, immutable;
        /// The app revision (its `plinth.dev/revision` tag).
        revision / REVISION = "revision": AttrValue => &'a str, immutable;
    }
}

/// Amazon Linux 2023's root device.
pub const ROOT_DEVICE: &str = "/dev/xvda";
/// Root volume size: the AMI's 8 GiB plus room for the journal and the binary.
pub const ROOT_VOLUME_GIB: i32 = 16;
/// Aurora MySQL's port, which Plinth's clusters keep.
pub const DB_PORT: &str = "3306";
/// EC2's limit on a launch template name.
const NAME_LEN: usize = 128;

fn map(entries: impl IntoIterator<Item = (&'static str, AttrValue)>) -> AttrValue {
    AttrValue::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

/// The metadata options every template has: IMDSv2 only, one hop.
pub fn metadata() -> AttrValue {
    map([
        ("http_tokens", AttrValue::str("required")),
        ("hop_limit", AttrValue::Int(1)),
    ])
}

/// The root volume every template has: encrypted gp3.
pub fn root_volume() -> AttrValue {
    map([
        ("device", AttrValue::str(ROOT_DEVICE)),
        ("size_gib", AttrValue::Int(i64::from(ROOT_VOLUME_GIB))),
        ("type", AttrValue::str("gp3")),
        ("encrypted", AttrValue::Bool(true)),
    ])
}

/// The desired templates: one per revision that must exist.
pub fn desired_templates(intent: &Intent) -> Vec<DesiredResource> {
    intent
        .serving
        .weights()
        .into_iter()
        .map(|(revision, _)| {
            let environment = map([
                (env::REGION, AttrValue::str(&intent.region)),
                (env::VERSION, AttrValue::str(&revision.version)),
                (env::ARTIFACT, AttrValue::str(&revision.artifact)),
                (env::LISTEN_ADDR, AttrValue::str("0.0.0.0")),
                (env::PORT, AttrValue::str(intent.app.port.to_string())),
                (env::DB_SECRET_ARN, AttrValue::reference(keys::DB_SECRET)),
                (
                    env::DB_HOST,
                    AttrValue::output(keys::DB_CLUSTER, keys::DB_ENDPOINT_FIELD),
                ),
                (env::DB_PORT, AttrValue::str(DB_PORT)),
                (env::DB_NAME, AttrValue::str(DATABASE_NAME)),
                // Aurora offers TLS; never fall back to plain text.
                (env::DB_SSL_MODE, AttrValue::str("required")),
                (env::LOG_FORMAT, AttrValue::str("json")),
            ]);
            let fields = TemplateFields {
                image_id: revision.image_id.as_str().into(),
                instance_type: revision.instance_type.as_str().into(),
                security_groups: AttrValue::set([AttrValue::reference(network_keys::APP_SG)]),
                instance_profile: AttrValue::reference(keys::INSTANCE_PROFILE),
                metadata: metadata(),
                root_volume: root_volume(),
                detailed_monitoring: true.into(),
                environment,
                revision: revision.id.as_str().into(),
            };
            fields.into_desired(LAUNCH_TEMPLATE, keys::launch_template(&revision.id))
        })
        .collect()
}

/// The unit environment in resolved attributes, as strings.
pub fn environment_of(attrs: &crate::engine::Attrs) -> Result<BTreeMap<String, String>, ActError> {
    let Some(AttrValue::Map(entries)) = attrs.get(ENVIRONMENT) else {
        return Err(ActError::refused(
            "PlinthMissingField",
            "the desired launch template has no environment",
        ));
    };
    entries
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_owned())),
            None => Err(ActError::refused(
                "PlinthMissingField",
                format!("environment {k} is not a string"),
            )),
        })
        .collect()
}

/// The user data, base64-encoded, for a resolved desired template.
pub fn encoded_user_data(attrs: &crate::engine::Attrs) -> Result<String, ActError> {
    let rendered = user_data::render(&environment_of(attrs)?)
        .map_err(|e| ActError::refused("PlinthInvalidUserData", e.to_string()))?;
    Ok(user_data::base64_encode(rendered.as_bytes()))
}

/// The template's data as attributes.
fn data_attrs(
    mut resource: ObservedResource,
    data: &ResponseLaunchTemplateData,
) -> ObservedResource {
    if let Some(image) = data.image_id() {
        resource = resource.attr(IMAGE_ID, image);
    }
    if let Some(kind) = data.instance_type() {
        resource = resource.attr(INSTANCE_TYPE, kind.as_str());
    }
    resource = resource.attr(
        SECURITY_GROUPS,
        AttrValue::set(
            data.security_group_ids()
                .iter()
                .map(|s| AttrValue::str(s.as_str())),
        ),
    );
    if let Some(name) = data.iam_instance_profile().and_then(|p| p.name()) {
        resource = resource.attr(INSTANCE_PROFILE, name);
    }
    if let Some(options) = data.metadata_options() {
        let mut entries = Vec::new();
        if let Some(tokens) = options.http_tokens() {
            entries.push(("http_tokens", AttrValue::str(tokens.as_str())));
        }
        if let Some(hops) = options.http_put_response_hop_limit() {
            entries.push(("hop_limit", AttrValue::Int(i64::from(hops))));
        }
        resource = resource.attr(METADATA, map(entries));
    }
    if let Some(root) = data
        .block_device_mappings()
        .iter()
        .find(|m| m.device_name() == Some(ROOT_DEVICE))
    {
        let mut entries = vec![("device", AttrValue::str(ROOT_DEVICE))];
        if let Some(ebs) = root.ebs() {
            if let Some(size) = ebs.volume_size() {
                entries.push(("size_gib", AttrValue::Int(i64::from(size))));
            }
            if let Some(kind) = ebs.volume_type() {
                entries.push(("type", AttrValue::str(kind.as_str())));
            }
            if let Some(encrypted) = ebs.encrypted() {
                entries.push(("encrypted", AttrValue::Bool(encrypted)));
            }
        }
        resource = resource.attr(ROOT_VOLUME, map(entries));
    }
    resource = resource.attr(
        DETAILED_MONITORING,
        data.monitoring().and_then(|m| m.enabled()).unwrap_or(false),
    );
    let unit = data
        .user_data()
        .and_then(user_data::base64_decode)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| user_data::parse(&text));
    if let Some(unit) = unit {
        resource = resource.attr(
            ENVIRONMENT,
            AttrValue::Map(
                unit.environment
                    .into_iter()
                    .map(|(k, v)| (k, AttrValue::Str(v)))
                    .collect(),
            ),
        );
    }
    resource
}

driver!(
    /// The launch templates component.
    LaunchTemplates
);

impl LaunchTemplates {
    /// The template as found, with its default version's data.
    async fn read(
        &self,
        template: &LaunchTemplate,
        key: Key,
    ) -> Result<Option<ObservedResource>, ActError> {
        let Some(id) = template.launch_template_id() else {
            return Ok(None);
        };
        let mut resource = ObservedResource::new(LAUNCH_TEMPLATE, key, id);
        if let Some(revision) = tag_map(template.tags()).get(REVISION_TAG) {
            resource = resource.attr(REVISION, revision.as_str());
        }
        if let Some(created) = template.create_time() {
            resource = resource.attr(CREATED, created.secs());
        }
        let versions = self
            .aws
            .ec2()
            .await
            .describe_launch_template_versions()
            .launch_template_id(id)
            .versions("$Default")
            .send()
            .await
            .map_err(|e| classify(&e))?;
        if let Some(data) = versions
            .launch_template_versions()
            .first()
            .and_then(|v| v.launch_template_data())
        {
            resource = data_attrs(resource, data);
        }
        Ok(Some(resource))
    }
}

impl Component<Intent> for LaunchTemplates {
    fn desired(&self, intent: &Intent) -> Wanted {
        Ok(desired_templates(intent))
    }
}

#[async_trait]
impl Ec2Listing for LaunchTemplates {
    type Item = LaunchTemplate;

    async fn observed(&self, template: &LaunchTemplate, key: Key) -> Seen {
        self.read(template, key).await
    }
}

#[async_trait]
impl Kit for LaunchTemplates {
    const KIND: Kind = LAUNCH_TEMPLATE;
    const IAM_ACTIONS: &'static [&'static str] = crate::actions![
        ec2: DescribeLaunchTemplates, DescribeLaunchTemplateVersions, CreateLaunchTemplate,
            CreateTags, DeleteLaunchTemplate;
    ];
    /// The create carries a client token.
    const LOST_ANSWER: LostAnswer = LostAnswer::SendAgain;
    const DUPLICATE_CODES: &'static [&'static str] = &[
        "InvalidLaunchTemplateName.AlreadyExistsException",
        "IdempotentParameterMismatch",
    ];

    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let fields = TemplateValues::read(request.attrs)?;
        let (image, instance_type) = (fields.image_id, fields.instance_type);
        let (profile, revision) = (fields.instance_profile, fields.revision);
        let groups = owned(&fields.security_groups);
        let user_data = encoded_user_data(request.attrs)?;
        let data = RequestLaunchTemplateData::builder()
            .image_id(image)
            .monitoring(
                LaunchTemplatesMonitoringRequest::builder()
                    .enabled(fields.detailed_monitoring)
                    .build(),
            )
            .instance_type(InstanceType::from(instance_type))
            .set_security_group_ids(Some(groups))
            .iam_instance_profile(
                LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                    .name(profile)
                    .build(),
            )
            .metadata_options(
                LaunchTemplateInstanceMetadataOptionsRequest::builder()
                    .http_tokens(LaunchTemplateHttpTokensState::Required)
                    .http_put_response_hop_limit(1)
                    .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                    .build(),
            )
            .block_device_mappings(
                LaunchTemplateBlockDeviceMappingRequest::builder()
                    .device_name(ROOT_DEVICE)
                    .ebs(
                        LaunchTemplateEbsBlockDeviceRequest::builder()
                            .volume_size(ROOT_VOLUME_GIB)
                            .volume_type(VolumeType::Gp3)
                            .encrypted(true)
                            .delete_on_termination(true)
                            .build(),
                    )
                    .build(),
            )
            .user_data(user_data)
            .build();
        let mut tags = create_tags(request);
        tags.insert(REVISION_TAG.to_owned(), revision.to_owned());
        let tag_spec = TagSpecification::builder()
            .resource_type(ResourceType::LaunchTemplate)
            .set_tags(Some(
                tags.into_iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .build();
        let name = request.name(NAME_LEN);
        let call = self.aws.ec2().await.create_launch_template();
        let output = crate::send_once!(
            aws_sdk_ec2,
            call.launch_template_name(&name)
                .launch_template_data(data)
                .tag_specifications(tag_spec)
                .client_token(request.client_token)
                .version_description(format!("Plinth revision {revision}"))
        )?;
        let template = output.launch_template();
        let id = template.and_then(|t| t.launch_template_id());
        Ok(ObservedResource::new(
            LAUNCH_TEMPLATE,
            request.key,
            id.unwrap_or_default(),
        ))
    }

    /// Every field as desired: a template does not change after its create.
    async fn after_create(
        &self,
        mut resource: ObservedResource,
        request: &CreateRequest<'_>,
    ) -> Made {
        for (field, value) in request.attrs {
            resource
                .attrs
                .entry(field.clone())
                .or_insert_with(|| value.clone());
        }
        Ok(resource)
    }

    async fn send_delete(&self, current: &ObservedResource, _scope: &Scope) -> Deleted {
        let call = self.aws.ec2().await.delete_launch_template();
        let result = call.launch_template_id(&current.id).send().await;
        let gone = [
            "InvalidLaunchTemplateId.NotFound",
            "InvalidLaunchTemplateName.NotFoundException",
            "InvalidLaunchTemplateId.Malformed",
        ];
        ignore(result, &gone)?;
        Ok(Deletion::Gone)
    }
}
