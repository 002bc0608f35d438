//! The cluster parameter group (family `aurora-mysql8.0`): utf8mb4 throughout, TLS required,
//! the slow query log on. Found by its deterministic name; its parameters change in place
//! (every one Plinth sets is dynamic, so they apply immediately without a reboot); parameters
//! set by hand that Plinth does not manage are left alone.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_rds::types::{ApplyMethod, Parameter};

use super::{ARN, DB_CLUSTER_PARAMETER_GROUP, keys, rds_name, rds_tags};
use crate::aws::kit::{Deleted, Kit, Listed, Listing, Made, Select, Sent, updated};
use crate::aws::{classify, deletion, error_code};
use crate::driver;
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, DesiredResource, Key, Kind,
    ObservedResource, Reads, Scope, UpdateRequest, Wanted,
};
use crate::intent::Intent;

/// The family of Aurora MySQL 3.
pub const AURORA_MYSQL_8_FAMILY: &str = "aurora-mysql8.0";

/// RDS allows 255 characters.
const NAME_LEN: usize = 63;

/// The parameters Plinth sets on the cluster, by name.
pub fn parameters() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("character_set_server", "utf8mb4"),
        ("collation_server", "utf8mb4_0900_ai_ci"),
        ("require_secure_transport", "ON"),
        ("slow_query_log", "1"),
        ("long_query_time", "2"),
    ])
}

driver!(
    /// The cluster parameter group component.
    DbClusterParameterGroup
);

impl DbClusterParameterGroup {
    fn name(scope: &Scope) -> String {
        rds_name(
            scope,
            &Key::from(keys::DB_CLUSTER_PARAMETER_GROUP),
            NAME_LEN,
        )
    }

    async fn find(&self, scope: &Scope) -> Result<Option<ObservedResource>, ActError> {
        let name = Self::name(scope);
        let output = match self
            .aws
            .rds()
            .await
            .describe_db_cluster_parameter_groups()
            .db_cluster_parameter_group_name(&name)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e)
                if matches!(
                    error_code(&e),
                    Some("DBParameterGroupNotFound" | "DBParameterGroupNotFoundFault")
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(classify(&e)),
        };
        let Some(group) = output
            .db_cluster_parameter_groups()
            .iter()
            .find(|g| g.db_cluster_parameter_group_name() == Some(name.as_str()))
        else {
            return Ok(None);
        };
        let mut resource = ObservedResource::new(
            DB_CLUSTER_PARAMETER_GROUP,
            keys::DB_CLUSTER_PARAMETER_GROUP,
            name.clone(),
        )
        .attr(
            FAMILY,
            group.db_parameter_group_family().unwrap_or_default(),
        )
        .attr(
            PARAMETERS,
            AttrValue::Map(self.user_parameters(&name).await?),
        );
        if let Some(arn) = group.db_cluster_parameter_group_arn() {
            resource = resource.attr(ARN, arn);
        }
        Ok(Some(resource))
    }

    /// The parameters Plinth manages as set on the group (source `user`), paging through the
    /// answer. Others set by hand (a DBA's tuning) are not Plinth's and are left alone.
    async fn user_parameters(&self, name: &str) -> Result<BTreeMap<String, AttrValue>, ActError> {
        let managed = parameters();
        let mut found = BTreeMap::new();
        let mut marker: Option<String> = None;
        loop {
            let output = self
                .aws
                .rds()
                .await
                .describe_db_cluster_parameters()
                .db_cluster_parameter_group_name(name)
                .source("user")
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| classify(&e))?;
            for parameter in output.parameters() {
                if let (Some(name), Some(value)) =
                    (parameter.parameter_name(), parameter.parameter_value())
                    && managed.contains_key(name)
                {
                    found.insert(name.to_owned(), AttrValue::from(value));
                }
            }
            marker = output.marker().map(str::to_owned);
            if marker.is_none() {
                break;
            }
        }
        Ok(found)
    }

    async fn set_parameters(
        &self,
        name: &str,
        values: &[(String, String)],
    ) -> Result<(), ActError> {
        // ModifyDBClusterParameterGroup takes at most 20 parameters per call.
        for chunk in values.chunks(20) {
            self.aws
                .rds()
                .await
                .modify_db_cluster_parameter_group()
                .db_cluster_parameter_group_name(name)
                .set_parameters(Some(
                    chunk
                        .iter()
                        .map(|(k, v)| {
                            Parameter::builder()
                                .parameter_name(k)
                                .parameter_value(v)
                                .apply_method(ApplyMethod::Immediate)
                                .build()
                        })
                        .collect(),
                ))
                .send()
                .await
                .map_err(|e| classify(&e))?;
        }
        Ok(())
    }
}

crate::fields! {
    /// The cluster parameter group as the database wants it.
    desired ParameterGroupFields,
    /// The parameter group's fields as its driver reads them.
    resolved ParameterGroupValues {
        /// The parameter group family.
        family / FAMILY = "family": AttrValue => &'a str, immutable;
        /// The parameters Plinth sets, name → value.
        parameters / PARAMETERS = "parameters": AttrValue => &'a AttrValue, updatable;
    }
}

/// The desired parameter group.
pub fn desired() -> DesiredResource {
    let parameters = parameters().into_iter();
    let fields = ParameterGroupFields {
        family: AURORA_MYSQL_8_FAMILY.into(),
        parameters: AttrValue::Map(parameters.map(|(k, v)| (k.to_owned(), v.into())).collect()),
    };
    fields.into_desired(DB_CLUSTER_PARAMETER_GROUP, keys::DB_CLUSTER_PARAMETER_GROUP)
}

impl Component<Intent> for DbClusterParameterGroup {
    fn desired(&self, _spec: &Intent) -> Wanted {
        Ok(vec![desired()])
    }
}

fn parameter_map(value: Option<&AttrValue>) -> BTreeMap<String, String> {
    match value {
        Some(AttrValue::Map(items)) => items
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect(),
        _ => BTreeMap::new(),
    }
}

#[async_trait]
impl Listing for DbClusterParameterGroup {
    async fn list(&self, select: Select<'_>, _reads: &Reads) -> Listed {
        match select.singleton(keys::DB_CLUSTER_PARAMETER_GROUP) {
            Some((scope, _)) => Ok(self.find(scope).await?.into_iter().collect()),
            None => Ok(Vec::new()),
        }
    }
}

#[async_trait]
impl Kit for DbClusterParameterGroup {
    const KIND: Kind = DB_CLUSTER_PARAMETER_GROUP;
    const IAM_ACTIONS: &'static [&'static str] = crate::actions![
        rds: DescribeDBClusterParameterGroups, DescribeDBClusterParameters,
            CreateDBClusterParameterGroup, ModifyDBClusterParameterGroup,
            DeleteDBClusterParameterGroup, AddTagsToResource;
    ];
    const DUPLICATE_CODES: &'static [&'static str] = &[
        "DBParameterGroupAlreadyExists",
        "DBParameterGroupAlreadyExistsFault",
    ];

    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let name = Self::name(request.scope);
        let family = ParameterGroupValues::read(request.attrs)?.family;
        let description = format!("Plinth: Aurora MySQL of {}", request.scope.platform());
        let call = self.aws.rds().await.create_db_cluster_parameter_group();
        let output = crate::send_once!(
            aws_sdk_rds,
            call.db_cluster_parameter_group_name(&name)
                .db_parameter_group_family(family)
                .description(&description)
                .set_tags(Some(rds_tags(&request.tags())))
        )?;
        let mut resource = ObservedResource::new(DB_CLUSTER_PARAMETER_GROUP, request.key, &name)
            .attr(FAMILY, family)
            .attr(PARAMETERS, AttrValue::Map(BTreeMap::new()));
        let group = output.db_cluster_parameter_group();
        if let Some(arn) = group.and_then(|g| g.db_cluster_parameter_group_arn()) {
            resource = resource.attr(ARN, arn);
        }
        Ok(resource)
    }

    /// The parameters. Setting the same values again is harmless, so a group found after a
    /// lost answer simply gets them (again).
    async fn after_create(
        &self,
        mut resource: ObservedResource,
        request: &CreateRequest<'_>,
    ) -> Made {
        let parameters = ParameterGroupValues::read(request.attrs)?.parameters;
        let wanted: Vec<(String, String)> = parameter_map(Some(parameters)).into_iter().collect();
        self.set_parameters(&resource.id, &wanted).await?;
        resource
            .attrs
            .insert(PARAMETERS.to_owned(), parameters.clone());
        Ok(resource)
    }

    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        if request.changed.iter().any(|f| f == PARAMETERS) {
            let wanted = parameter_map(Some(ParameterGroupValues::read(request.attrs)?.parameters));
            let current = parameter_map(request.current.attrs.get(PARAMETERS));
            let changed: Vec<(String, String)> = wanted
                .iter()
                .filter(|(k, v)| current.get(*k) != Some(*v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            self.set_parameters(&request.current.id, &changed).await?;
        }
        Ok(updated(&request))
    }

    async fn send_delete(&self, current: &ObservedResource, _scope: &Scope) -> Deleted {
        let call = self.aws.rds().await.delete_db_cluster_parameter_group();
        let result = call
            .db_cluster_parameter_group_name(&current.id)
            .send()
            .await;
        deletion(result, "DBParameterGroupNotFound", Deletion::Gone)
    }
}
