//! What one pass builds toward: the user's spec plus the serving state the controller carries
//! between passes (which app revision serves, which one is rolling out and with how much of the
//! traffic). Components derive their desired resources from this, never from memory: the
//! controller rebuilds it on every pass from the spec, `status.app` and AWS's tags.

use std::ops::Deref;

use plinth_crds::DataPlatformSpec;

use crate::engine::identity::stable_hash;

/// One runnable build of the app: what a launch template version and its scaling group run.
/// A change to any of these fields is a new revision, rolled out blue/green.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppRevision {
    /// Short, stable id of the four fields below (8 hex digits), used in resource keys
    /// (`target-group/<id>`, `auto-scaling-group/<id>`) and in the `plinth.dev/revision` tag.
    pub id: String,
    /// `spec.app.version`.
    pub version: String,
    /// `spec.app.artifact`.
    pub artifact: String,
    /// `spec.compute.imageId`.
    pub image_id: String,
    /// `spec.compute.instanceType`.
    pub instance_type: String,
}

impl AppRevision {
    /// The revision `spec` asks for.
    pub fn of(spec: &DataPlatformSpec) -> Self {
        Self::new(
            &spec.app.version,
            &spec.app.artifact,
            &spec.compute.image_id,
            &spec.compute.instance_type,
        )
    }

    /// The revision made of these fields.
    pub fn new(version: &str, artifact: &str, image_id: &str, instance_type: &str) -> Self {
        let hash = stable_hash(&format!(
            "{version}\n{artifact}\n{image_id}\n{instance_type}"
        ));
        Self {
            id: hash[..8].to_owned(),
            version: version.to_owned(),
            artifact: artifact.to_owned(),
            image_id: image_id.to_owned(),
            instance_type: instance_type.to_owned(),
        }
    }
}

/// Where traffic stands between app revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Serving {
    /// One revision takes all traffic.
    Steady(AppRevision),
    /// `blue` serves, `green` gets `weight` percent of the traffic (0–100).
    Rolling {
        /// The revision that served before the rollout.
        blue: AppRevision,
        /// The revision being rolled out.
        green: AppRevision,
        /// Percent of traffic green gets now.
        weight: i32,
    },
}

impl Serving {
    /// The revisions that must exist, each with its share of the listener's traffic (percent,
    /// summing to 100).
    pub fn weights(&self) -> Vec<(&AppRevision, i32)> {
        match self {
            Self::Steady(revision) => vec![(revision, 100)],
            Self::Rolling {
                blue,
                green,
                weight,
            } => {
                let weight = (*weight).clamp(0, 100);
                vec![(blue, 100 - weight), (green, weight)]
            }
        }
    }
}

/// The spec and the serving state: the input every component's `desired` takes. Dereferences
/// to the spec, so components read `intent.network`, `intent.database`, … directly.
#[derive(Clone, Debug, PartialEq)]
pub struct Intent {
    /// The user's spec.
    pub spec: DataPlatformSpec,
    /// Which app revisions run and their traffic weights.
    pub serving: Serving,
}

impl Intent {
    /// The spec with its own revision serving all traffic: a new platform, the CLI, teardown.
    pub fn steady(spec: DataPlatformSpec) -> Self {
        let serving = Serving::Steady(AppRevision::of(&spec));
        Self { spec, serving }
    }
}

impl Deref for Intent {
    type Target = DataPlatformSpec;

    fn deref(&self) -> &DataPlatformSpec {
        &self.spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_changes_with_each_field_and_only_with_them() {
        let base = AppRevision::new("1.0.0", "s3://b/k", "ami-1", "t4g.small");
        assert_eq!(base.id.len(), 8);
        assert_eq!(
            base,
            AppRevision::new("1.0.0", "s3://b/k", "ami-1", "t4g.small")
        );
        for other in [
            AppRevision::new("1.0.1", "s3://b/k", "ami-1", "t4g.small"),
            AppRevision::new("1.0.0", "s3://b/k2", "ami-1", "t4g.small"),
            AppRevision::new("1.0.0", "s3://b/k", "ami-2", "t4g.small"),
            AppRevision::new("1.0.0", "s3://b/k", "ami-1", "t4g.large"),
        ] {
            assert_ne!(base.id, other.id, "{other:?}");
        }
    }

    #[test]
    fn weights_sum_to_one_hundred_and_are_clamped() {
        let blue = AppRevision::new("1", "a", "b", "c");
        let green = AppRevision::new("2", "a", "b", "c");
        assert_eq!(Serving::Steady(blue.clone()).weights(), vec![(&blue, 100)]);
        let rolling = Serving::Rolling {
            blue: blue.clone(),
            green: green.clone(),
            weight: 30,
        };
        assert_eq!(rolling.weights(), vec![(&blue, 70), (&green, 30)]);
        let over = Serving::Rolling {
            blue: blue.clone(),
            green: green.clone(),
            weight: 130,
        };
        assert_eq!(over.weights(), vec![(&blue, 0), (&green, 100)]);
    }
}
