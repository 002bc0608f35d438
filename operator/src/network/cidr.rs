//! Carving one public and one private subnet per availability zone out of the VPC's CIDR.
//!
//! The layout is the one the platform documents for a /16: public /24s from `.1`, private /24s
//! from `.11` (`10.0.1.0/24, 10.0.2.0/24, …` and `10.0.11.0/24, 10.0.12.0/24, …`). Slot 0 and the
//! slots between the two tiers stay free, so an AZ can be added later without moving any
//! existing subnet (a subnet's CIDR is immutable in AWS: moving one replaces it).
//!
//! For smaller VPCs the subnets shrink so the same layout still fits: /24 subnets down to a /19
//! VPC, then the VPC split into 32 slots (a /20 gives /25s, a /23 gives /28s), never below AWS's
//! smallest subnet, a /28. When fewer than 32 slots fit (a /24 VPC gives 16 /28s), the private
//! tier starts halfway (slot 8 of 16), so adding zones still never moves a subnet. A VPC that
//! cannot hold two subnets per AZ is a typed error that says how many AZs it has room for.

use ipnet::Ipv4Net;

/// AWS's largest VPC.
const WIDEST_VPC_PREFIX: u8 = 16;
/// AWS's smallest VPC and smallest subnet.
const NARROWEST_PREFIX: u8 = 28;
/// The subnet size of the documented layout.
const PREFERRED_SUBNET_PREFIX: u8 = 24;
/// Slots the spaced layout needs: slot 0, up to 10 public, then the private tier from slot 11.
const SPACED_SLOT_BITS: u8 = 5;
/// Where the public tier starts.
const PUBLIC_FIRST_SLOT: u32 = 1;
/// Where the private tier starts when the VPC has room (the documented `.11`).
const PRIVATE_FIRST_SLOT: u32 = 11;

/// The two subnets of one availability zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AzSubnets {
    /// Routed to the internet gateway: load balancer and NAT gateways.
    pub public: Ipv4Net,
    /// Routed through NAT: instances and the database.
    pub private: Ipv4Net,
}

/// Why a VPC CIDR cannot be carved as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// AWS only accepts VPCs from /16 to /28.
    #[error("the VPC CIDR {cidr} must have a prefix between /16 and /28")]
    PrefixOutOfRange {
        /// The CIDR given.
        cidr: Ipv4Net,
    },
    /// Host bits are set, which usually means a typo.
    #[error("the VPC CIDR {cidr} has host bits set; did you mean {network}?")]
    NotNetworkAddress {
        /// The CIDR given.
        cidr: Ipv4Net,
        /// The network it lies in.
        network: Ipv4Net,
    },
    /// No availability zones were given.
    #[error("at least one availability zone is needed")]
    NoAvailabilityZones,
    /// The VPC is too small for two subnets per AZ.
    #[error(
        "the VPC CIDR {cidr} has room for subnets in at most {max_azs} availability zones, not {requested}; use a wider VPC CIDR or fewer zones"
    )]
    NoRoom {
        /// The CIDR given.
        cidr: Ipv4Net,
        /// How many AZs were asked for.
        requested: usize,
        /// How many fit.
        max_azs: usize,
    },
}

/// The prefix of every subnet carved from a VPC of `vpc_prefix` (see the module docs).
pub fn subnet_prefix(vpc_prefix: u8) -> u8 {
    PREFERRED_SUBNET_PREFIX
        .max(vpc_prefix.saturating_add(SPACED_SLOT_BITS))
        .min(NARROWEST_PREFIX)
}

/// One public and one private subnet for each of `az_count` zones, in zone order.
pub fn carve(vpc: Ipv4Net, az_count: usize) -> Result<Vec<AzSubnets>, CidrError> {
    let prefix = vpc.prefix_len();
    if !(WIDEST_VPC_PREFIX..=NARROWEST_PREFIX).contains(&prefix) {
        return Err(CidrError::PrefixOutOfRange { cidr: vpc });
    }
    if vpc.trunc() != vpc {
        return Err(CidrError::NotNetworkAddress {
            cidr: vpc,
            network: vpc.trunc(),
        });
    }
    if az_count == 0 {
        return Err(CidrError::NoAvailabilityZones);
    }

    let sub_prefix = subnet_prefix(prefix);
    let slots: u32 = 1 << (sub_prefix - prefix);
    // The private tier starts at slot 11, or halfway when there are fewer slots; it depends on
    // the VPC only, never on the number of zones, so adding a zone moves nothing.
    let private_first = PRIVATE_FIRST_SLOT.min(PUBLIC_FIRST_SLOT + (slots - PUBLIC_FIRST_SLOT) / 2);
    let max_azs =
        (private_first - PUBLIC_FIRST_SLOT).min(slots.saturating_sub(private_first)) as usize;
    let no_room = || CidrError::NoRoom {
        cidr: vpc,
        requested: az_count,
        max_azs,
    };
    if az_count > max_azs {
        return Err(no_room());
    }

    let nth = |slot: u32| -> Result<Ipv4Net, CidrError> {
        let step: u32 = 1 << (32 - sub_prefix);
        let base = u32::from(vpc.network());
        let address = slot
            .checked_mul(step)
            .and_then(|offset| base.checked_add(offset))
            .ok_or_else(no_room)?;
        let net = Ipv4Net::new(address.into(), sub_prefix).map_err(|_| no_room())?;
        if vpc.contains(&net) {
            Ok(net)
        } else {
            Err(no_room())
        }
    };
    (0..az_count as u32)
        .map(|i| {
            Ok(AzSubnets {
                public: nth(PUBLIC_FIRST_SLOT + i)?,
                private: nth(private_first + i)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        match s.parse() {
            Ok(net) => net,
            Err(error) => panic!("{s}: {error}"),
        }
    }

    fn show(subnets: &[AzSubnets]) -> Vec<(String, String)> {
        subnets
            .iter()
            .map(|s| (s.public.to_string(), s.private.to_string()))
            .collect()
    }

    #[test]
    fn a_slash_16_gives_public_from_1_and_private_from_11() {
        let subnets = carve(net("10.0.0.0/16"), 3);
        assert_eq!(
            subnets.map(|s| show(&s)),
            Ok(vec![
                ("10.0.1.0/24".into(), "10.0.11.0/24".into()),
                ("10.0.2.0/24".into(), "10.0.12.0/24".into()),
                ("10.0.3.0/24".into(), "10.0.13.0/24".into()),
            ])
        );
    }

    #[test]
    fn adding_an_az_keeps_existing_subnets() {
        for prefix in 16..=24 {
            let vpc = net(&format!("10.8.0.0/{prefix}"));
            let (Ok(two), Ok(six)) = (carve(vpc, 2), carve(vpc, 6)) else {
                panic!("/{prefix} should fit 6 AZs");
            };
            assert_eq!(two[..], six[..2], "/{prefix}");
        }
    }

    #[test]
    fn every_prefix_from_16_to_24_fits_2_to_6_azs_without_overlap() {
        for prefix in 16..=24 {
            let vpc = net(&format!("172.16.0.0/{prefix}"));
            for azs in 2..=6 {
                let subnets = match carve(vpc, azs) {
                    Ok(subnets) => subnets,
                    Err(error) => panic!("/{prefix} × {azs}: {error}"),
                };
                assert_eq!(subnets.len(), azs);
                let all: Vec<Ipv4Net> =
                    subnets.iter().flat_map(|s| [s.public, s.private]).collect();
                for (i, a) in all.iter().enumerate() {
                    assert!(vpc.contains(a), "{a} outside {vpc}");
                    assert!(a.prefix_len() <= 28, "{a} smaller than AWS allows");
                    for b in &all[i + 1..] {
                        assert!(!a.contains(b) && !b.contains(a), "{a} overlaps {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn subnet_sizes_shrink_with_the_vpc() {
        let sizes: Vec<u8> = (16..=28).map(subnet_prefix).collect();
        assert_eq!(sizes, [24, 24, 24, 24, 25, 26, 27, 28, 28, 28, 28, 28, 28]);
        let Ok(subnets) = carve(net("10.0.0.0/20"), 2) else {
            panic!("a /20 fits two AZs");
        };
        assert_eq!(subnets[0].public, net("10.0.0.128/25"));
        assert_eq!(subnets[0].private, net("10.0.5.128/25"));
    }

    #[test]
    fn a_slash_24_starts_the_private_tier_halfway() {
        let Ok(subnets) = carve(net("192.168.4.0/24"), 6) else {
            panic!("a /24 fits six AZs");
        };
        assert_eq!(subnets[0].public, net("192.168.4.16/28"));
        assert_eq!(subnets[5].public, net("192.168.4.96/28"));
        assert_eq!(subnets[0].private, net("192.168.4.128/28"));
        assert_eq!(subnets[5].private, net("192.168.4.208/28"));
    }

    #[test]
    fn too_small_or_invalid_cidrs_are_typed_errors() {
        assert_eq!(
            carve(net("10.0.0.0/26"), 2),
            Err(CidrError::NoRoom {
                cidr: net("10.0.0.0/26"),
                requested: 2,
                max_azs: 1,
            })
        );
        assert_eq!(
            carve(net("10.0.0.0/24"), 8),
            Err(CidrError::NoRoom {
                cidr: net("10.0.0.0/24"),
                requested: 8,
                max_azs: 7,
            })
        );
        assert_eq!(
            carve(net("10.0.0.0/8"), 2),
            Err(CidrError::PrefixOutOfRange {
                cidr: net("10.0.0.0/8")
            })
        );
        assert_eq!(
            carve(net("10.0.0.1/16"), 2),
            Err(CidrError::NotNetworkAddress {
                cidr: net("10.0.0.1/16"),
                network: net("10.0.0.0/16"),
            })
        );
        assert_eq!(
            carve(net("10.0.0.0/16"), 0),
            Err(CidrError::NoAvailabilityZones)
        );
        let message = carve(net("10.0.0.0/26"), 3)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.contains("at most 1 availability zones"),
            "{message}"
        );
    }
}
