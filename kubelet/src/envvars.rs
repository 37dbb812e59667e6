//! A container's environment, as the Go kubelet builds it
//! (`makeEnvironmentVariables`): literal values with `$(VAR)` expansion over
//! the variables defined before them, and the downward API's fieldRef.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Pod};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error(
        "env {name}: fieldRef {path:?} is not supported (use metadata.name, metadata.namespace, metadata.uid, metadata.labels['k'], metadata.annotations['k'], spec.nodeName, spec.serviceAccountName, status.podIP, status.podIPs, status.hostIP or status.hostIPs)"
    )]
    UnsupportedField { name: String, path: String },
    #[error(
        "env {name}: {source_kind} is not available to static pods (there is no apiserver to read it from)"
    )]
    NoApiserver {
        name: String,
        source_kind: &'static str,
    },
    #[error("env {name}: resourceFieldRef is not supported yet")]
    ResourceField { name: String },
    #[error(
        "envFrom is not available to static pods (there is no apiserver to read ConfigMaps or Secrets from)"
    )]
    EnvFrom,
}

/// What the downward API can read about the pod at container start.
#[derive(Clone, Debug, Default)]
pub struct PodFacts<'a> {
    pub node_name: &'a str,
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
}

/// `$(VAR)` expansion with Kubernetes' rules: a defined variable is
/// replaced, `$$` is an escaped `$`, and anything else (an undefined name,
/// an unterminated reference) is left exactly as written.
pub fn expand(input: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            match tail.find(')') {
                Some(end) => {
                    let name = &tail[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &tail[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = tail;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn field_value(pod: &Pod, facts: &PodFacts<'_>, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let bracketed = |prefix: &str| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(key.to_string())
    };
    Some(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_else(|| "default".into()),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => facts.node_name.to_string(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => facts.pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.to_string(),
        _ => {
            if let Some(k) = bracketed("metadata.labels['") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&k).cloned())
                    .unwrap_or_default()
            } else if let Some(k) = bracketed("metadata.annotations['") {
                meta.annotations
                    .as_ref()
                    .and_then(|a| a.get(&k).cloned())
                    .unwrap_or_default()
            } else {
                return None;
            }
        }
    })
}

/// The container's environment, in order. Later definitions of a name
/// replace earlier ones in place, as in the Go kubelet.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    facts: &PodFacts<'_>,
) -> Result<Vec<(String, String)>, EnvError> {
    if container.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
        return Err(EnvError::EnvFrom);
    }
    let mut order: Vec<String> = Vec::new();
    let mut vars: HashMap<String, String> = HashMap::new();
    for env in container.env.iter().flatten() {
        let value = if let Some(src) = &env.value_from {
            if let Some(f) = &src.field_ref {
                field_value(pod, facts, &f.field_path).ok_or_else(|| {
                    EnvError::UnsupportedField {
                        name: env.name.clone(),
                        path: f.field_path.clone(),
                    }
                })?
            } else if src.config_map_key_ref.is_some() {
                return Err(EnvError::NoApiserver {
                    name: env.name.clone(),
                    source_kind: "configMapKeyRef",
                });
            } else if src.secret_key_ref.is_some() {
                return Err(EnvError::NoApiserver {
                    name: env.name.clone(),
                    source_kind: "secretKeyRef",
                });
            } else {
                return Err(EnvError::ResourceField {
                    name: env.name.clone(),
                });
            }
        } else {
            expand(env.value.as_deref().unwrap_or_default(), &vars)
        };
        if !vars.contains_key(&env.name) {
            order.push(env.name.clone());
        }
        vars.insert(env.name.clone(), value);
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = vars.remove(&k).unwrap_or_default();
            (k, v)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> HashMap<String, String> {
        HashMap::from([("A".into(), "x".into()), ("EMPTY".into(), String::new())])
    }

    #[test]
    fn expansion_rules() {
        let v = vars();
        assert_eq!(expand("$(A)-$(A)", &v), "x-x");
        assert_eq!(expand("$(MISSING)", &v), "$(MISSING)");
        assert_eq!(expand("$$(A)", &v), "$(A)");
        assert_eq!(expand("$$$(A)", &v), "$x");
        assert_eq!(expand("cost $5", &v), "cost $5");
        assert_eq!(expand("$(A", &v), "$(A");
        assert_eq!(expand("end$", &v), "end$");
        assert_eq!(expand("[$(EMPTY)]", &v), "[]");
        assert_eq!(expand("héllo $(A) wörld", &v), "héllo x wörld");
    }

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-n1", "namespace": "prod", "uid": "u1",
                         "labels": {"app": "web"}, "annotations": {"team": "infra"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "env": [
                {"name": "A", "value": "1"},
                {"name": "B", "value": "$(A)-$(POD)"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "C", "value": "$(POD)"},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['team']"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "A", "value": "2"}
            ]}]}
        }))
        .unwrap()
    }

    #[test]
    fn builds_env_in_order_with_field_refs() {
        let p = pod();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let facts = PodFacts {
            node_name: "n1",
            pod_ip: "10.88.0.7",
            host_ip: "192.168.1.2",
        };
        let env = container_env(&p, c, &facts).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(env[0].0, "A", "a redefined name keeps its first position");
        assert_eq!(get("A"), Some("2"));
        assert_eq!(get("B"), Some("1-$(POD)"), "only earlier variables expand");
        assert_eq!(get("C"), Some("web-n1"));
        assert_eq!(get("NS"), Some("prod"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("TEAM"), Some("infra"));
        assert_eq!(get("NODE"), Some("n1"));
        assert_eq!(get("IP"), Some("10.88.0.7"));
    }

    #[test]
    fn unsupported_sources_are_clear_errors() {
        let p: Pod = serde_json::from_value(serde_json::json!({"metadata": {}, "spec": {"containers": [
            {"name": "c", "image": "i", "env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}}))
        .unwrap();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let e = container_env(&p, c, &PodFacts::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "env S: secretKeyRef is not available to static pods (there is no apiserver to read it from)"
        );
        let p: Pod = serde_json::from_value(serde_json::json!({"metadata": {}, "spec": {"containers": [
            {"name": "c", "image": "i", "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]}]}}))
        .unwrap();
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert!(matches!(
            container_env(&p, c, &PodFacts::default()),
            Err(EnvError::UnsupportedField { .. })
        ));
    }
}
