//! The app artifact's S3 location: parsing `s3://<bucket>/<key>` into its parts, with the bucket
//! naming rules the CEL pattern cannot express.

use std::fmt;

use thiserror::Error;

/// Where the app's release binary sits in S3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactLocation {
    /// Bucket name.
    pub bucket: String,
    /// Object key, without the leading `/`.
    pub key: String,
}

/// Why an artifact URL is not a usable `s3://<bucket>/<key>`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArtifactUrlError {
    /// The URL does not start with `s3://`.
    #[error("must start with s3:// (got {0:?})")]
    NotS3(String),
    /// There is no `/<key>` after the bucket.
    #[error("must name an object key after the bucket: s3://<bucket>/<key>")]
    MissingKey,
    /// The bucket name breaks S3's naming rules.
    #[error("bucket {bucket:?} is not a valid S3 bucket name: {reason}")]
    InvalidBucket {
        /// The bucket as written.
        bucket: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The key is empty, too long or has whitespace.
    #[error("object key {0:?} must be 1 to 1024 bytes with no whitespace")]
    InvalidKey(String),
}

impl ArtifactLocation {
    /// Parses `s3://<bucket>/<key>`, checking S3's bucket naming rules (3-63 characters of
    /// lowercase letters, digits, dots and hyphens; starts and ends with a letter or digit; no
    /// `..`; not shaped like an IP address; no reserved prefix or suffix).
    pub fn parse(url: &str) -> Result<Self, ArtifactUrlError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| ArtifactUrlError::NotS3(url.to_string()))?;
        let (bucket, key) = rest.split_once('/').ok_or(ArtifactUrlError::MissingKey)?;
        check_bucket(bucket)?;
        if key.is_empty() {
            return Err(ArtifactUrlError::MissingKey);
        }
        if key.len() > 1024 || key.chars().any(char::is_whitespace) {
            return Err(ArtifactUrlError::InvalidKey(key.to_string()));
        }
        Ok(Self {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }
}

impl fmt::Display for ArtifactLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

fn check_bucket(bucket: &str) -> Result<(), ArtifactUrlError> {
    let invalid = |reason| ArtifactUrlError::InvalidBucket {
        bucket: bucket.to_string(),
        reason,
    };
    if !(3..=63).contains(&bucket.len()) {
        return Err(invalid("must be 3 to 63 characters"));
    }
    if !bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
    {
        return Err(invalid(
            "may contain only lowercase letters, digits, dots and hyphens",
        ));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !alnum(bucket.chars().next()) || !alnum(bucket.chars().last()) {
        return Err(invalid("must start and end with a letter or digit"));
    }
    if bucket.contains("..") || bucket.contains(".-") || bucket.contains("-.") {
        return Err(invalid("must not contain '..', '.-' or '-.'"));
    }
    if bucket.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(invalid("must not be formatted as an IP address"));
    }
    if ["xn--", "sthree-", "amzn-s3-demo-"]
        .iter()
        .any(|p| bucket.starts_with(p))
    {
        return Err(invalid(
            "must not start with xn--, sthree- or amzn-s3-demo-",
        ));
    }
    if ["-s3alias", "--ol-s3", "--x-s3", "--table-s3", ".mrap"]
        .iter()
        .any(|s| bucket.ends_with(s))
    {
        return Err(invalid(
            "must not end with a reserved suffix such as -s3alias or --x-s3",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_key() {
        let loc =
            ArtifactLocation::parse("s3://plinth-artifacts/plinth-ingest/1.0.0/plinth-ingest")
                .unwrap();
        assert_eq!(loc.bucket, "plinth-artifacts");
        assert_eq!(loc.key, "plinth-ingest/1.0.0/plinth-ingest");
        assert_eq!(
            loc.to_string(),
            "s3://plinth-artifacts/plinth-ingest/1.0.0/plinth-ingest"
        );
    }

    #[test]
    fn rejects_bad_urls() {
        let cases = [
            ("https://bucket/key", "s3://"),
            ("s3://bucket", "object key"),
            ("s3://bucket/", "object key"),
            ("s3://Bucket/key", "lowercase"),
            ("s3://ab/key", "3 to 63"),
            ("s3://-bucket/key", "start and end"),
            ("s3://my..bucket/key", "'..'"),
            ("s3://192.168.1.1/key", "IP address"),
            ("s3://xn--bucket/key", "xn--"),
            ("s3://bucket-s3alias/key", "reserved suffix"),
            ("s3://bucket/a key", "whitespace"),
        ];
        for (url, expected) in cases {
            let err = ArtifactLocation::parse(url).unwrap_err().to_string();
            assert!(err.contains(expected), "{url}: {err:?} lacks {expected:?}");
        }
    }
}
