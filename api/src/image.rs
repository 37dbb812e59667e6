//! Container image references (`[registry[:port]/]path[:tag][@digest]`): the one parser
//! berth uses, for pod validation, the API's pull-policy default and the kubelet's pulls.
//!
//! The grammar and checks are those of distribution/reference's `ParseNormalizedNamed`:
//! lowercase path components, tags of at most 128 characters, digests of a known algorithm
//! and exact length. A reference without a registry is on `docker.io`, and a one-component
//! path there is an official image under `library/` (only in the canonical form; the
//! reference as written is kept too, because the kubelet passes that to the runtime).

use std::fmt;
use std::str::FromStr;

/// The registry of a reference that names none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Docker Hub's old name, which means the same registry.
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Where Docker Hub keeps official images (`busybox` is `library/busybox`).
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag a reference without tag or digest resolves to.
pub const DEFAULT_TAG: &str = "latest";

const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// Why a string is not an image reference; each variant names the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("image reference is empty")]
    Empty,
    #[error("must not have leading or trailing whitespace")]
    Whitespace,
    #[error("repository name is empty")]
    EmptyName,
    #[error("repository name must be no more than {NAME_MAX} characters")]
    NameTooLong,
    #[error("registry {0:?} has an unclosed '['")]
    UnclosedBracket(String),
    #[error("registry {0:?} has an invalid IPv6 address")]
    InvalidIpv6(String),
    #[error("registry {0:?} is malformed")]
    MalformedRegistry(String),
    #[error("registry host {0:?} is not a valid host name")]
    InvalidHost(String),
    #[error("registry port {0:?} must be a number")]
    InvalidPort(String),
    #[error(
        "path component {0:?} must be lowercase letters and digits, separated by '.', '_', '__' or '-'"
    )]
    InvalidPathComponent(String),
    #[error(
        "repository name {0:?} is a 64-character hexadecimal string, which would be taken for an image ID"
    )]
    HexName(String),
    #[error(
        "tag {0:?} must be 1-{TAG_MAX} characters of [A-Za-z0-9_.-], not starting with '.' or '-'"
    )]
    InvalidTag(String),
    #[error("digest {0:?} must be <algorithm>:<hex>")]
    MalformedDigest(String),
    #[error("digest algorithm {0:?} is not supported: use sha256, sha384 or sha512")]
    UnsupportedDigestAlgorithm(String),
    #[error(
        "digest {digest:?} must have {len} lowercase hexadecimal characters after the algorithm"
    )]
    InvalidDigestHex { digest: String, len: usize },
}

/// A parsed, checked image reference.
///
/// [`Display`](fmt::Display) gives the canonical form (`docker.io/library/busybox:1.36`),
/// as Go's `ParseNormalizedNamed(s).String()`; [`ImageRef::with_default_tag`] gives the
/// reference as written plus `:latest` when it has neither tag nor digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// The registry as written, when the reference names one.
    registry: Option<String>,
    /// The repository path as written (no `library/` added).
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// Parses and checks a reference; the error says which part is wrong.
    pub fn parse(s: &str) -> Result<Self, ImageRefError> {
        if s.is_empty() {
            return Err(ImageRefError::Empty);
        }
        if s.trim() != s {
            return Err(ImageRefError::Whitespace);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (s, None),
        };
        // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(ImageRefError::EmptyName);
        }
        if name.len() > NAME_MAX {
            return Err(ImageRefError::NameTooLong);
        }
        // The first component is a registry when it looks like a host name.
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if looks_like_registry(first) => {
                check_registry(first)?;
                (Some(first), path)
            }
            _ => (None, name),
        };
        for component in path.split('/') {
            check_path_component(component)?;
        }
        if registry.is_none() && path.len() == 64 && path.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ImageRefError::HexName(path.to_string()));
        }
        if let Some(tag) = tag {
            check_tag(tag)?;
        }
        if let Some(digest) = digest {
            check_digest(digest)?;
        }
        Ok(Self {
            registry: registry.map(str::to_string),
            path: path.to_string(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// The registry as written, if the reference names one.
    pub fn registry(&self) -> Option<&str> {
        self.registry.as_deref()
    }

    /// The registry the reference resolves to: its own, or `docker.io`.
    pub fn domain(&self) -> &str {
        match self.registry.as_deref() {
            None | Some(LEGACY_DEFAULT_DOMAIN) => DEFAULT_DOMAIN,
            Some(r) => r,
        }
    }

    /// The repository path as written, e.g. `busybox` or `a/b`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The name as written, without tag and digest: `[registry/]path`.
    pub fn name(&self) -> String {
        match &self.registry {
            Some(r) => format!("{r}/{}", self.path),
            None => self.path.clone(),
        }
    }

    /// The canonical repository: `docker.io/library/busybox` for `busybox`.
    pub fn repository(&self) -> String {
        let domain = self.domain();
        if domain == DEFAULT_DOMAIN && !self.path.contains('/') {
            format!("{domain}/{OFFICIAL_REPO_PREFIX}{}", self.path)
        } else {
            format!("{domain}/{}", self.path)
        }
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, e.g. `sha256:<64 hex>`.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The tag the image resolves to: its own, or `latest` when it names neither tag nor
    /// digest (docker's `TagNameOnly`); `None` for a digest-only reference.
    pub fn effective_tag(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some(DEFAULT_TAG),
            (None, Some(_)) => None,
        }
    }

    /// Whether the reference resolves to the `latest` tag, written or implied.
    pub fn is_latest(&self) -> bool {
        self.effective_tag() == Some(DEFAULT_TAG)
    }

    /// The reference as written, plus `:latest` when it has neither tag nor digest (Go's
    /// `applyDefaultImageTag`). No registry is added: resolving it is the runtime's business.
    pub fn with_default_tag(&self) -> String {
        let mut s = self.name();
        push_tag_and_digest(&mut s, self.effective_tag(), self.digest());
        s
    }
}

fn push_tag_and_digest(s: &mut String, tag: Option<&str>, digest: Option<&str>) {
    if let Some(t) = tag {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = digest {
        s.push('@');
        s.push_str(d);
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.repository();
        push_tag_and_digest(&mut s, self.tag(), self.digest());
        f.write_str(&s)
    }
}

impl FromStr for ImageRef {
    type Err = ImageRefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn looks_like_registry(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

fn check_registry(registry: &str) -> Result<(), ImageRefError> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        // Bracketed IPv6 literal.
        let (ip, after) = rest
            .split_once(']')
            .ok_or_else(|| ImageRefError::UnclosedBracket(registry.to_string()))?;
        if ip.is_empty()
            || !ip
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        {
            return Err(ImageRefError::InvalidIpv6(registry.to_string()));
        }
        match after.strip_prefix(':') {
            Some(port) => (None, Some(port)),
            None if after.is_empty() => (None, None),
            None => return Err(ImageRefError::MalformedRegistry(registry.to_string())),
        }
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(registry), None),
        }
    };
    if let Some(host) = host {
        let ok_label = |p: &str| {
            let b = p.as_bytes();
            matches!((b.first(), b.last()), (Some(f), Some(l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric())
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        };
        if !host.split('.').all(ok_label) {
            return Err(ImageRefError::InvalidHost(host.to_string()));
        }
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|c| c.is_ascii_digit()))
    {
        return Err(ImageRefError::InvalidPort(port.to_string()));
    }
    Ok(())
}

/// `[a-z0-9]+` groups joined by `.`, `_`, `__` or runs of `-`.
fn check_path_component(c: &str) -> Result<(), ImageRefError> {
    let bad = || Err(ImageRefError::InvalidPathComponent(c.to_string()));
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) if alnum(*f) && alnum(*l) => {}
        _ => return bad(),
    }
    let mut i = 0;
    while i < b.len() {
        if b.get(i).copied().is_some_and(alnum) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__' or any number of '-'.
        let start = i;
        while i < b.len() && !b.get(i).copied().is_some_and(alnum) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return bad();
        }
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), ImageRefError> {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = tag.as_bytes();
    let valid = b.first().is_some_and(|f| word(*f))
        && b.len() <= TAG_MAX
        && b.iter().all(|x| word(*x) || *x == b'.' || *x == b'-');
    if valid {
        Ok(())
    } else {
        Err(ImageRefError::InvalidTag(tag.to_string()))
    }
}

/// The algorithms containerd (and go-digest) know, with their hex lengths.
fn check_digest(digest: &str) -> Result<(), ImageRefError> {
    let (algo, hex) = digest
        .split_once(':')
        .ok_or_else(|| ImageRefError::MalformedDigest(digest.to_string()))?;
    let len = match algo {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(ImageRefError::UnsupportedDigestAlgorithm(algo.to_string())),
    };
    if hex.len() != len
        || !hex
            .bytes()
            .all(|x| x.is_ascii_digit() || (b'a'..=b'f').contains(&x))
    {
        return Err(ImageRefError::InvalidDigestHex {
            digest: digest.to_string(),
            len,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn references_are_split_like_docker() {
        let sha = format!("sha256:{}", "0123456789abcdef".repeat(4));
        let with_digest = format!("busybox@{sha}");
        let both = format!("registry.k8s.io/pause:3.9@{sha}");
        for (input, registry, path, tag, digest) in [
            ("nginx", None, "nginx", None, None),
            ("nginx:1.25", None, "nginx", Some("1.25"), None),
            (
                "registry.k8s.io/pause:3.10",
                Some("registry.k8s.io"),
                "pause",
                Some("3.10"),
                None,
            ),
            (
                "localhost:5000/a/b_c__d-e--f:v1",
                Some("localhost:5000"),
                "a/b_c__d-e--f",
                Some("v1"),
                None,
            ),
            ("localhost/x", Some("localhost"), "x", None, None),
            ("[::1]:5000/x:t", Some("[::1]:5000"), "x", Some("t"), None),
            (
                "library/busybox:1.36.1-glibc",
                None,
                "library/busybox",
                Some("1.36.1-glibc"),
                None,
            ),
            (
                with_digest.as_str(),
                None,
                "busybox",
                None,
                Some(sha.as_str()),
            ),
            (
                both.as_str(),
                Some("registry.k8s.io"),
                "pause",
                Some("3.9"),
                Some(sha.as_str()),
            ),
        ] {
            let r = parse(input);
            assert_eq!(
                (r.registry(), r.path(), r.tag(), r.digest()),
                (registry, path, tag, digest),
                "{input}"
            );
        }
    }

    #[test]
    fn bad_references_are_refused_with_a_reason() {
        let long_tag = format!("x:{}", "t".repeat(129));
        let long_name = format!("{}/x", "a".repeat(255));
        let hex = "f".repeat(64);
        for (input, want) in [
            ("", "image reference is empty"),
            (" nginx", "whitespace"),
            (":tag", "repository name is empty"),
            (long_name.as_str(), "no more than 255 characters"),
            ("Nginx", "path component \"Nginx\""),
            ("busy box", "path component \"busy box\""),
            ("a//b", "path component \"\""),
            ("a/-b", "path component \"-b\""),
            ("a/b-", "path component \"b-\""),
            ("a/b...c", "path component \"b...c\""),
            ("nginx:", "tag \"\""),
            ("nginx:.x", "tag \".x\""),
            ("busybox:-x", "tag \"-x\""),
            (long_tag.as_str(), "1-128 characters"),
            ("nginx@abc", "must be <algorithm>:<hex>"),
            ("nginx@sha256:abc", "must have 64 lowercase hexadecimal"),
            (
                "busybox@sha256:0123456789abcdef0123456789abcdef",
                "must have 64 lowercase hexadecimal",
            ),
            (
                "busybox@md5:0123456789abcdef0123456789abcdef",
                "digest algorithm \"md5\" is not supported",
            ),
            ("reg-.io/x", "registry host \"reg-.io\""),
            ("-bad.com/busybox", "registry host \"-bad.com\""),
            ("reg.io:port/x", "registry port \"port\""),
            ("local-host:x/busybox", "registry port \"x\""),
            ("[::1/x", "unclosed '['"),
            ("[zz]:5000/x", "invalid IPv6 address"),
            (hex.as_str(), "64-character hexadecimal"),
        ] {
            match ImageRef::parse(input) {
                Err(e) => assert!(e.to_string().contains(want), "{input:?}: {e}"),
                Ok(r) => panic!("{input:?} parsed as {r:?}"),
            }
        }
        assert!(ImageRef::parse(&format!("x:{}", "a".repeat(128))).is_ok());
        // A 64-hex path is fine under a registry: it cannot be mistaken for an image ID.
        assert!(ImageRef::parse(&format!("localhost:5000/{hex}")).is_ok());
    }

    #[test]
    fn canonical_form_adds_docker_io_and_library() {
        for (input, repository, display) in [
            (
                "busybox",
                "docker.io/library/busybox",
                "docker.io/library/busybox",
            ),
            (
                "pause:3.6",
                "docker.io/library/pause",
                "docker.io/library/pause:3.6",
            ),
            ("me/app:v1", "docker.io/me/app", "docker.io/me/app:v1"),
            (
                "index.docker.io/busybox:1",
                "docker.io/library/busybox",
                "docker.io/library/busybox:1",
            ),
            (
                "localhost:5000/pause:latest",
                "localhost:5000/pause",
                "localhost:5000/pause:latest",
            ),
            ("localhost/x", "localhost/x", "localhost/x"),
        ] {
            let r = parse(input);
            assert_eq!(r.repository(), repository, "{input}");
            assert_eq!(r.to_string(), display, "{input}");
            assert_eq!(input.parse::<ImageRef>().as_ref(), Ok(&r));
        }
        assert_eq!(parse("quay.io/a/b").domain(), "quay.io");
        assert_eq!(parse("busybox").domain(), DEFAULT_DOMAIN);
        assert_eq!(parse("localhost:5000/a/b:1").name(), "localhost:5000/a/b");
    }

    #[test]
    fn default_tag_is_latest_unless_a_digest_pins_the_image() {
        let digest = format!("sha256:{}", "0".repeat(64));
        let by_digest = format!("busybox@{digest}");
        let latest_and_digest = format!("busybox:latest@{digest}");
        for (input, tagged, latest) in [
            ("busybox", "busybox:latest", true),
            ("busybox:latest", "busybox:latest", true),
            (
                "localhost:5000/busybox",
                "localhost:5000/busybox:latest",
                true,
            ),
            ("busybox:1.36", "busybox:1.36", false),
            (
                "localhost:5000/busybox:v1",
                "localhost:5000/busybox:v1",
                false,
            ),
            (by_digest.as_str(), by_digest.as_str(), false),
            (latest_and_digest.as_str(), latest_and_digest.as_str(), true),
        ] {
            let r = parse(input);
            assert_eq!(r.with_default_tag(), tagged, "{input}");
            assert_eq!(r.is_latest(), latest, "{input}");
        }
        assert_eq!(parse(&by_digest).effective_tag(), None);
        assert_eq!(parse("busybox").effective_tag(), Some("latest"));
        assert_eq!(parse("busybox").tag(), None);
    }
}
