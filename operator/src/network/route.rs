//! Route tables with their routes and subnet associations: one public table (default route to
//! the internet gateway, associated with every public subnet) and one private table per zone
//! (default route to its zone's NAT gateway, or the single one, or none; associated with that
//! zone's private subnet). Routes and associations are sets, corrected by the difference:
//! CreateRoute / ReplaceRoute / DeleteRoute and Associate / Disassociate.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, ResourceType, RouteTable};
use plinth_crds::DataPlatformSpec;

use super::{ROUTE_TABLE, keys, nat_for_zone};
use crate::aws::kit::{Deleted, Ec2Listing, Kit, Made, Seen, Sent, set_of, updated};
use crate::aws::tags::tag_specification;
use crate::aws::{LostAnswer, classify, deletion, error_code};
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, DesiredResource, Key, Kind,
    ObservedResource, Scope, UpdateRequest, Wanted,
};
use crate::intent::Intent;
use crate::{driver, send_once};

/// Observed only: subnet id → association id, for disassociating.
pub const ASSOCIATIONS: &str = "associations";

/// The IPv4 default route.
pub const DEFAULT_ROUTE: &str = "0.0.0.0/0";

crate::fields! {
    /// A route table as the network wants it.
    desired TableFields,
    /// A route table's fields as its driver reads them.
    resolved TableValues {
        /// The VPC.
        vpc_id / VPC_ID = "vpc_id": AttrValue => &'a str, immutable;
        /// The routes besides the local one, a set of `{destination, target}`.
        routes / ROUTES = "routes": AttrValue => &'a BTreeSet<AttrValue>, updatable;
        /// The associated subnets' ids, a set.
        subnets / SUBNETS = "subnets": AttrValue => &'a BTreeSet<AttrValue>, updatable;
    }
}

/// One route as a set member: its destination and the id (or reference) of its target.
pub fn route(destination: &str, target: AttrValue) -> AttrValue {
    AttrValue::Map(BTreeMap::from([
        ("destination".to_owned(), AttrValue::str(destination)),
        ("target".to_owned(), target),
    ]))
}

/// `(destination, target id)` of a resolved route.
fn route_parts(value: &AttrValue) -> Option<(&str, &str)> {
    let AttrValue::Map(map) = value else {
        return None;
    };
    Some((
        map.get("destination")?.as_str()?,
        map.get("target")?.as_str()?,
    ))
}

/// The desired route tables of a spec (pure).
pub fn desired_tables(spec: &DataPlatformSpec) -> Vec<DesiredResource> {
    let zones = &spec.network.availability_zones;
    let public = TableFields {
        vpc_id: AttrValue::reference(keys::VPC),
        routes: AttrValue::set([route(
            DEFAULT_ROUTE,
            AttrValue::reference(keys::INTERNET_GATEWAY),
        )]),
        subnets: AttrValue::set(
            zones
                .iter()
                .map(|az| AttrValue::reference(keys::public_subnet(az))),
        ),
    };
    let mut tables = vec![public.into_desired(ROUTE_TABLE, keys::PUBLIC_ROUTE_TABLE)];
    for az in zones {
        let routes = nat_for_zone(spec, az)
            .map(|nat| route(DEFAULT_ROUTE, AttrValue::reference(nat)))
            .into_iter();
        let private = TableFields {
            vpc_id: AttrValue::reference(keys::VPC),
            routes: AttrValue::set(routes),
            subnets: AttrValue::set([AttrValue::reference(keys::private_subnet(az))]),
        };
        tables.push(private.into_desired(ROUTE_TABLE, keys::private_route_table(az)));
    }
    tables
}

driver!(
    /// The route tables component.
    RouteTables
);

fn observed_table(table: &RouteTable, key: Key) -> Option<ObservedResource> {
    let mut resource = ObservedResource::new(ROUTE_TABLE, key, table.route_table_id()?);
    if let Some(vpc) = table.vpc_id() {
        resource = resource.attr(VPC_ID, vpc);
    }
    let routes = table.routes().iter().filter_map(|r| {
        let destination = r.destination_cidr_block()?;
        let target = r
            .gateway_id()
            .or(r.nat_gateway_id())
            .or(r.network_interface_id())
            .or(r.instance_id())
            .or(r.transit_gateway_id())
            .or(r.vpc_peering_connection_id())?;
        // The local route comes with the table and is not ours to manage.
        (target != "local").then(|| route(destination, AttrValue::str(target)))
    });
    resource = resource.attr(ROUTES, AttrValue::set(routes));
    let associations: BTreeMap<String, AttrValue> = table
        .associations()
        .iter()
        .filter(|a| !a.main().unwrap_or(false))
        .filter(|a| {
            a.association_state()
                .and_then(|s| s.state())
                .is_none_or(|s| matches!(s.as_str(), "associated" | "associating"))
        })
        .filter_map(|a| {
            Some((
                a.subnet_id()?.to_owned(),
                AttrValue::str(a.route_table_association_id()?),
            ))
        })
        .collect();
    resource = resource.attr(
        SUBNETS,
        AttrValue::set(associations.keys().map(|s| AttrValue::str(s.as_str()))),
    );
    Some(resource.attr(ASSOCIATIONS, AttrValue::Map(associations)))
}

impl RouteTables {
    /// Makes the table's routes `desired`, from `current`.
    async fn sync_routes(
        &self,
        table_id: &str,
        current: &BTreeSet<AttrValue>,
        desired: &BTreeSet<AttrValue>,
    ) -> Result<(), ActError> {
        let now: BTreeMap<&str, &str> = current.iter().filter_map(route_parts).collect();
        let want: BTreeMap<&str, &str> = desired.iter().filter_map(route_parts).collect();
        for (destination, _) in now.iter().filter(|(d, _)| !want.contains_key(*d)) {
            match self
                .aws
                .ec2()
                .await
                .delete_route()
                .route_table_id(table_id)
                .destination_cidr_block(*destination)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if error_code(&e) == Some("InvalidRoute.NotFound") => {}
                Err(e) => return Err(classify(&e)),
            }
        }
        for (destination, target) in &want {
            match now.get(destination) {
                Some(existing) if existing == target => {}
                Some(_) => {
                    let call = self
                        .aws
                        .ec2()
                        .await
                        .replace_route()
                        .route_table_id(table_id)
                        .destination_cidr_block(*destination);
                    let call = if target.starts_with("nat-") {
                        call.nat_gateway_id(*target)
                    } else {
                        call.gateway_id(*target)
                    };
                    call.send().await.map_err(|e| classify(&e))?;
                }
                None => {
                    let call = self
                        .aws
                        .ec2()
                        .await
                        .create_route()
                        .route_table_id(table_id)
                        .destination_cidr_block(*destination);
                    let call = if target.starts_with("nat-") {
                        call.nat_gateway_id(*target)
                    } else {
                        call.gateway_id(*target)
                    };
                    match call.send().await {
                        Ok(_) => {}
                        Err(e) if error_code(&e) == Some("RouteAlreadyExists") => {}
                        Err(e) => return Err(classify(&e)),
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves `subnet`'s explicit association from whichever table holds it to `table_id`.
    async fn move_subnet(&self, table_id: &str, subnet: &str) -> Result<Option<String>, ActError> {
        let tables = self
            .aws
            .ec2()
            .await
            .describe_route_tables()
            .filters(
                Filter::builder()
                    .name("association.subnet-id")
                    .values(subnet)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let current = tables
            .route_tables()
            .iter()
            .flat_map(|t| t.associations())
            .find(|a| a.subnet_id() == Some(subnet) && !a.main().unwrap_or(false));
        let Some(association) = current.and_then(|a| a.route_table_association_id()) else {
            return Err(ActError::retryable(
                "Resource.AlreadyAssociated",
                format!("{subnet} is associated with another route table that cannot be found yet"),
            ));
        };
        if current.and_then(|a| a.route_table_id()) == Some(table_id) {
            return Ok(Some(association.to_owned()));
        }
        let output = self
            .aws
            .ec2()
            .await
            .replace_route_table_association()
            .association_id(association)
            .route_table_id(table_id)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(output.new_association_id().map(str::to_owned))
    }

    /// Associates the subnets in `desired` and not in `current`, disassociates the others.
    async fn sync_subnets(
        &self,
        table_id: &str,
        associations: &BTreeMap<String, AttrValue>,
        desired: &BTreeSet<AttrValue>,
    ) -> Result<BTreeMap<String, AttrValue>, ActError> {
        let want: BTreeSet<&str> = desired.iter().filter_map(AttrValue::as_str).collect();
        let mut now = associations.clone();
        for (subnet, association) in associations {
            if want.contains(subnet.as_str()) {
                continue;
            }
            if let Some(association) = association.as_str() {
                match self
                    .aws
                    .ec2()
                    .await
                    .disassociate_route_table()
                    .association_id(association)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(e) if error_code(&e) == Some("InvalidAssociationID.NotFound") => {}
                    Err(e) => return Err(classify(&e)),
                }
            }
            now.remove(subnet);
        }
        for subnet in want {
            if associations.contains_key(subnet) {
                continue;
            }
            let result = self
                .aws
                .ec2()
                .await
                .associate_route_table()
                .route_table_id(table_id)
                .subnet_id(subnet)
                .send()
                .await;
            let id = match result {
                Ok(output) => output.association_id().map(str::to_owned),
                // The subnet is associated with another table (by hand, or a table being
                // replaced): move it to this one.
                Err(e) if error_code(&e) == Some("Resource.AlreadyAssociated") => {
                    self.move_subnet(table_id, subnet).await?
                }
                Err(e) => return Err(classify(&e)),
            };
            if let Some(id) = id {
                now.insert(subnet.to_owned(), AttrValue::str(id));
            }
        }
        Ok(now)
    }
}

impl Component<Intent> for RouteTables {
    fn desired(&self, spec: &Intent) -> Wanted {
        Ok(desired_tables(spec))
    }
}

#[async_trait]
impl Ec2Listing for RouteTables {
    type Item = RouteTable;

    async fn observed(&self, table: &RouteTable, key: Key) -> Seen {
        Ok(observed_table(table, key))
    }
}

#[async_trait]
impl Kit for RouteTables {
    const KIND: Kind = ROUTE_TABLE;
    // Tags in the create call (TagSpecifications) are authorized as ec2:CreateTags.
    const IAM_ACTIONS: &'static [&'static str] = crate::actions![
        ec2: DescribeRouteTables, CreateRouteTable, CreateTags, CreateRoute, ReplaceRoute,
            DeleteRoute, AssociateRouteTable, ReplaceRouteTableAssociation, DisassociateRouteTable,
            DeleteRouteTable;
    ];
    /// The create carries a client token.
    const LOST_ANSWER: LostAnswer = LostAnswer::SendAgain;
    const DUPLICATE_CODES: &'static [&'static str] = &["IdempotentParameterMismatch"];
    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let vpc = TableValues::read(request.attrs)?.vpc_id;
        let call = self.aws.ec2().await.create_route_table();
        let output = send_once!(
            aws_sdk_ec2,
            call.vpc_id(vpc)
                .client_token(request.client_token)
                .tag_specifications(tag_specification(ResourceType::RouteTable, request))
        )?;
        let table = output.route_table();
        let id = table.and_then(|t| t.route_table_id()).unwrap_or_default();
        Ok(ObservedResource::new(ROUTE_TABLE, request.key, id)
            .attr(VPC_ID, vpc)
            .attr(ROUTES, AttrValue::set([]))
            .attr(SUBNETS, AttrValue::set([]))
            .attr(ASSOCIATIONS, AttrValue::Map(BTreeMap::new())))
    }

    /// The routes and associations, on the table made or found.
    async fn after_create(
        &self,
        mut resource: ObservedResource,
        request: &CreateRequest<'_>,
    ) -> Made {
        let fields = TableValues::read(request.attrs)?;
        let routes = fields.routes.clone();
        self.sync_routes(&resource.id, &set_of(resource.attrs.get(ROUTES)), &routes)
            .await?;
        let associations = match resource.attrs.get(ASSOCIATIONS) {
            Some(AttrValue::Map(map)) => map.clone(),
            _ => BTreeMap::new(),
        };
        let subnets = fields.subnets.clone();
        let associations = self
            .sync_subnets(&resource.id, &associations, &subnets)
            .await?;
        resource
            .attrs
            .insert(ROUTES.to_owned(), AttrValue::Set(routes));
        resource
            .attrs
            .insert(SUBNETS.to_owned(), AttrValue::Set(subnets));
        resource
            .attrs
            .insert(ASSOCIATIONS.to_owned(), AttrValue::Map(associations));
        Ok(resource)
    }

    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        let current = request.current;
        let fields = TableValues::read(request.attrs)?;
        let mut resource = updated(&request);
        if request.changed.iter().any(|f| f == ROUTES) {
            self.sync_routes(
                &current.id,
                &set_of(current.attrs.get(ROUTES)),
                fields.routes,
            )
            .await?;
        }
        if request.changed.iter().any(|f| f == SUBNETS) {
            let associations = match current.attrs.get(ASSOCIATIONS) {
                Some(AttrValue::Map(map)) => map.clone(),
                _ => BTreeMap::new(),
            };
            let now = self
                .sync_subnets(&current.id, &associations, fields.subnets)
                .await?;
            resource
                .attrs
                .insert(ASSOCIATIONS.to_owned(), AttrValue::Map(now));
        }
        Ok(resource)
    }

    async fn send_delete(&self, current: &ObservedResource, _scope: &Scope) -> Deleted {
        if let Some(AttrValue::Map(associations)) = current.attrs.get(ASSOCIATIONS) {
            self.sync_subnets(&current.id, associations, &BTreeSet::new())
                .await?;
        }
        let call = self.aws.ec2().await.delete_route_table();
        let result = call.route_table_id(&current.id).send().await;
        deletion(result, "InvalidRouteTableID.NotFound", Deletion::Gone)
    }
}
