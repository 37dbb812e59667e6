//! `--node-labels` and `--register-with-taints`: parsing and the checks the
//! Go kubelet makes before it starts (`ValidateKubeletFlags`,
//! `kubeletapis.IsKubeletLabel`, `taints.ParseTaints`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Taint;

use super::NodeStatusError;

/// Labels the kubelet may set in the `kubernetes.io` and `k8s.io`
/// namespaces; the NodeRestriction admission plugin refuses any other.
const KUBELET_LABELS: [&str; 11] = [
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];

/// Label namespaces (and their subdomains) that belong to the kubelet.
const KUBELET_LABEL_NAMESPACES: [&str; 2] = ["kubelet.kubernetes.io", "node.kubernetes.io"];

const QUALIFIED_NAME_MAX: usize = 63;
const SUBDOMAIN_MAX: usize = 253;

fn label_namespace(key: &str) -> &str {
    key.split_once('/').map_or("", |(ns, _)| ns)
}

fn in_domain(namespace: &str, domain: &str) -> bool {
    namespace == domain
        || namespace
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// Whether the key is in the `kubernetes.io` or `k8s.io` namespaces.
pub fn is_kubernetes_label(key: &str) -> bool {
    let ns = label_namespace(key);
    in_domain(ns, "kubernetes.io") || in_domain(ns, "k8s.io")
}

/// Whether a kubelet may set this label on its own Node.
pub fn is_kubelet_label(key: &str) -> bool {
    if KUBELET_LABELS.contains(&key) {
        return true;
    }
    let ns = label_namespace(key);
    KUBELET_LABEL_NAMESPACES
        .iter()
        .any(|allowed| in_domain(ns, allowed))
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, the name part of a label key
/// and a non-empty label value.
fn is_label_token(s: &str) -> bool {
    let b = s.as_bytes();
    let (Some(first), Some(last)) = (b.first(), b.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A lowercase RFC 1123 subdomain.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= SUBDOMAIN_MAX
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b.first().is_some_and(u8::is_ascii_alphanumeric)
                && b.last().is_some_and(u8::is_ascii_alphanumeric)
        })
}

/// Checks a label key (a qualified name: `[prefix/]name`); says why not.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && !is_dns_subdomain(p)
    {
        return Err(format!(
            "prefix {p:?} must be a lowercase RFC 1123 subdomain of at most {SUBDOMAIN_MAX} characters"
        ));
    }
    if name.len() > QUALIFIED_NAME_MAX {
        return Err(format!(
            "name part must be no more than {QUALIFIED_NAME_MAX} characters"
        ));
    }
    if !is_label_token(name) {
        return Err(
            "name part must consist of alphanumeric characters, '-', '_' or '.', \
             and must start and end with an alphanumeric character"
                .into(),
        );
    }
    Ok(())
}

/// Checks a label value (empty is allowed); says why not.
pub fn validate_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > QUALIFIED_NAME_MAX {
        return Err(format!(
            "must be no more than {QUALIFIED_NAME_MAX} characters"
        ));
    }
    if !is_label_token(value) {
        return Err("must consist of alphanumeric characters, '-', '_' or '.', \
             and must start and end with an alphanumeric character"
            .into());
    }
    Ok(())
}

/// Parses `k=v,k2=v2` (spaces around keys and values are dropped, a later
/// key wins) and checks every label as the Go kubelet does at start,
/// including that a `kubernetes.io`/`k8s.io` label is one the kubelet may
/// set.
pub fn parse_node_labels(flag: &str) -> Result<BTreeMap<String, String>, NodeStatusError> {
    let mut labels = BTreeMap::new();
    for pair in flag.split(',') {
        if pair.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = pair.split_once('=') else {
            return Err(NodeStatusError::NodeLabel {
                label: pair.trim().to_string(),
                reason: "malformed pair, expect key=value".into(),
            });
        };
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    validate_node_labels(&labels)?;
    Ok(labels)
}

/// The start-up checks of `--node-labels`.
pub fn validate_node_labels(labels: &BTreeMap<String, String>) -> Result<(), NodeStatusError> {
    for (k, v) in labels {
        validate_label_key(k).map_err(|reason| NodeStatusError::NodeLabel {
            label: k.clone(),
            reason: format!("invalid key: {reason}"),
        })?;
        validate_label_value(v).map_err(|reason| NodeStatusError::NodeLabel {
            label: k.clone(),
            reason: format!("invalid value {v:?}: {reason}"),
        })?;
        if is_kubernetes_label(k) && !is_kubelet_label(k) {
            return Err(NodeStatusError::NodeLabel {
                label: k.clone(),
                reason: format!(
                    "a kubelet may set labels in the 'kubernetes.io' or 'k8s.io' namespaces \
                     only in {} (or their subdomains) or one of {}; the NodeRestriction \
                     admission plugin refuses others",
                    KUBELET_LABEL_NAMESPACES.join(", "),
                    KUBELET_LABELS.join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// The taint effects the API accepts.
pub const TAINT_EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// Checks one taint (a `registerWithTaints` entry).
pub fn validate_taint(t: &Taint) -> Result<(), NodeStatusError> {
    let bad = |reason: String| NodeStatusError::Taint {
        taint: t.key.clone(),
        reason,
    };
    validate_label_key(&t.key).map_err(|r| bad(format!("invalid key: {r}")))?;
    if let Some(v) = &t.value {
        validate_label_value(v).map_err(|r| bad(format!("invalid value {v:?}: {r}")))?;
    }
    if !TAINT_EFFECTS.contains(&t.effect.as_str()) {
        return Err(bad(format!(
            "invalid effect {:?}: must be one of {}",
            t.effect,
            TAINT_EFFECTS.join(", ")
        )));
    }
    Ok(())
}

/// Parses `--register-with-taints`: `key=value:Effect,key:Effect`.
pub fn parse_taints(flag: &str) -> Result<Vec<Taint>, NodeStatusError> {
    let mut out: Vec<Taint> = Vec::new();
    for spec in flag.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((kv, effect)) = spec.rsplit_once(':') else {
            return Err(NodeStatusError::Taint {
                taint: spec.to_string(),
                reason: "expect key=value:Effect or key:Effect".into(),
            });
        };
        let (key, value) = match kv.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (kv, None),
        };
        let taint = Taint {
            key: key.to_string(),
            value,
            effect: effect.to_string(),
            time_added: None,
        };
        validate_taint(&taint)?;
        if out
            .iter()
            .any(|t| t.key == taint.key && t.effect == taint.effect)
        {
            return Err(NodeStatusError::Taint {
                taint: spec.to_string(),
                reason: "duplicated key and effect".into(),
            });
        }
        out.push(taint);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_trims() {
        let l = parse_node_labels(" a=1, example.com/b = x ,c=,a=2").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l["a"], "2");
        assert_eq!(l["example.com/b"], "x");
        assert_eq!(l["c"], "");
        assert!(parse_node_labels("").unwrap().is_empty());
        let e = parse_node_labels("a=1,novalue").unwrap_err().to_string();
        assert!(e.contains("novalue") && e.contains("malformed"), "{e}");
    }

    #[test]
    fn refuses_invalid_keys_and_values() {
        for bad in ["-a=1", "a/b/c=1", "Example.com/a=1", "a=-x", "a=b c"] {
            assert!(parse_node_labels(bad).is_err(), "{bad}");
        }
        let long = format!("a={}", "x".repeat(64));
        assert!(parse_node_labels(&long).is_err());
        assert!(parse_node_labels(&format!("{}=1", "k".repeat(63))).is_ok());
    }

    #[test]
    fn kubernetes_io_labels_only_the_allowed_ones() {
        for ok in [
            "kubernetes.io/hostname=h",
            "node.kubernetes.io/instance-type=big",
            "kubelet.kubernetes.io/x=1",
            "foo.node.kubernetes.io/y=1",
            "topology.kubernetes.io/zone=z",
            "example.com/role=db",
            "notkubernetes.io/x=1",
        ] {
            assert!(parse_node_labels(ok).is_ok(), "{ok}");
        }
        for refused in [
            "node-role.kubernetes.io/master=",
            "kubernetes.io/role=x",
            "k8s.io/a=b",
            "foo.k8s.io/a=b",
            "x.kubernetes.io/y=z",
        ] {
            let e = parse_node_labels(refused).unwrap_err().to_string();
            let key = refused.split('=').next().unwrap();
            assert!(e.contains(key) && e.contains("NodeRestriction"), "{e}");
        }
    }

    #[test]
    fn taints() {
        let t = parse_taints("a=b:NoSchedule, example.com/c:NoExecute").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].key, "a");
        assert_eq!(t[0].value.as_deref(), Some("b"));
        assert_eq!(t[1].value, None);
        assert_eq!(t[1].effect, "NoExecute");
        assert!(parse_taints("a=b:Sometimes").is_err());
        assert!(parse_taints("a=b").is_err());
        assert!(parse_taints("a:NoSchedule,a=x:NoSchedule").is_err());
        assert!(parse_taints("").unwrap().is_empty());
    }
}
