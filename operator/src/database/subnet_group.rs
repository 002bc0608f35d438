//! The DB subnet group: the private subnets of every zone, which the cluster's instances are
//! placed in. Found by its deterministic name (RDS lists subnet groups without their tags);
//! its subnets change in place.

use std::collections::BTreeSet;

use async_trait::async_trait;

use super::{ARN, DB_SUBNET_GROUP, keys, rds_name, rds_tags};
use crate::aws::kit::{Deleted, Kit, Listed, Listing, Made, Select, Sent, updated};
use crate::aws::{classify, deletion, error_code};
use crate::driver;
use crate::engine::fields::owned;
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, DesiredResource, Key, Kind,
    ObservedResource, Reads, Scope, UpdateRequest, Wanted,
};
use crate::intent::Intent;
use crate::network::keys as net;

/// RDS allows 255 characters; shorter reads better in the console.
const NAME_LEN: usize = 63;

driver!(
    /// The DB subnet group component.
    DbSubnetGroup
);

impl DbSubnetGroup {
    fn name(scope: &Scope) -> String {
        rds_name(scope, &Key::from(keys::DB_SUBNET_GROUP), NAME_LEN)
    }

    async fn find(&self, scope: &Scope) -> Result<Option<ObservedResource>, ActError> {
        let name = Self::name(scope);
        let output = match self
            .aws
            .rds()
            .await
            .describe_db_subnet_groups()
            .db_subnet_group_name(&name)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if error_code(&e) == Some("DBSubnetGroupNotFoundFault") => return Ok(None),
            Err(e) => return Err(classify(&e)),
        };
        Ok(output
            .db_subnet_groups()
            .iter()
            .find(|g| g.db_subnet_group_name() == Some(name.as_str()))
            .map(|group| {
                let subnets = AttrValue::set(
                    group
                        .subnets()
                        .iter()
                        .filter_map(|s| s.subnet_identifier())
                        .map(AttrValue::from),
                );
                let mut resource =
                    ObservedResource::new(DB_SUBNET_GROUP, keys::DB_SUBNET_GROUP, name.clone())
                        .attr(SUBNET_IDS, subnets);
                if let Some(arn) = group.db_subnet_group_arn() {
                    resource = resource.attr(ARN, arn);
                }
                resource
            }))
    }
}

crate::fields! {
    /// The DB subnet group as the database wants it.
    desired SubnetGroupFields,
    /// The DB subnet group's fields as its driver reads them.
    resolved SubnetGroupValues {
        /// The subnets, a set of subnet ids.
        subnet_ids / SUBNET_IDS = "subnet_ids": AttrValue => BTreeSet<&'a str>, updatable;
    }
}

/// The desired subnet group: every private subnet of the spec's zones.
pub fn desired(spec: &Intent) -> DesiredResource {
    let zones = spec.network.availability_zones.iter();
    let fields = SubnetGroupFields {
        subnet_ids: AttrValue::set(zones.map(|az| AttrValue::reference(net::private_subnet(az)))),
    };
    fields.into_desired(DB_SUBNET_GROUP, keys::DB_SUBNET_GROUP)
}

impl Component<Intent> for DbSubnetGroup {
    fn desired(&self, spec: &Intent) -> Wanted {
        Ok(vec![desired(spec)])
    }
}

#[async_trait]
impl Listing for DbSubnetGroup {
    async fn list(&self, select: Select<'_>, _reads: &Reads) -> Listed {
        match select.singleton(keys::DB_SUBNET_GROUP) {
            Some((scope, _)) => Ok(self.find(scope).await?.into_iter().collect()),
            None => Ok(Vec::new()),
        }
    }
}

#[async_trait]
impl Kit for DbSubnetGroup {
    const KIND: Kind = DB_SUBNET_GROUP;
    const IAM_ACTIONS: &'static [&'static str] = crate::actions![
        rds: DescribeDBSubnetGroups, CreateDBSubnetGroup, ModifyDBSubnetGroup, DeleteDBSubnetGroup,
            AddTagsToResource;
    ];
    const DUPLICATE_CODES: &'static [&'static str] = &[
        "DBSubnetGroupAlreadyExists",
        "DBSubnetGroupAlreadyExistsFault",
    ];

    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let name = Self::name(request.scope);
        let subnets = owned(&SubnetGroupValues::read(request.attrs)?.subnet_ids);
        let description = format!("Plinth: private subnets of {}", request.scope.platform());
        let call = self.aws.rds().await.create_db_subnet_group();
        let output = crate::send_once!(
            aws_sdk_rds,
            call.db_subnet_group_name(&name)
                .db_subnet_group_description(&description)
                .set_subnet_ids(Some(subnets.clone()))
                .set_tags(Some(rds_tags(&request.tags())))
        )?;
        let ids = AttrValue::set(subnets.iter().map(|s| AttrValue::from(s.as_str())));
        let mut resource =
            ObservedResource::new(DB_SUBNET_GROUP, request.key, &name).attr(SUBNET_IDS, ids);
        if let Some(arn) = output
            .db_subnet_group()
            .and_then(|g| g.db_subnet_group_arn())
        {
            resource = resource.attr(ARN, arn);
        }
        Ok(resource)
    }

    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        let call = self.aws.rds().await.modify_db_subnet_group();
        let call = call.db_subnet_group_name(&request.current.id);
        let result = call
            .set_subnet_ids(Some(owned(
                &SubnetGroupValues::read(request.attrs)?.subnet_ids,
            )))
            .send()
            .await;
        result.map_err(|e| classify(&e))?;
        Ok(updated(&request))
    }

    async fn send_delete(&self, current: &ObservedResource, _scope: &Scope) -> Deleted {
        // Still used by a cluster that is going away: `InvalidDBSubnetGroupStateFault`, which
        // classifies as pending and is tried again next pass.
        let call = self.aws.rds().await.delete_db_subnet_group();
        let result = call.db_subnet_group_name(&current.id).send().await;
        deletion(result, "DBSubnetGroupNotFoundFault", Deletion::Gone)
    }
}
