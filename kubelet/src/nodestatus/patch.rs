//! The patch that turns the Node the apiserver has into the one the kubelet
//! computed (Go's `PatchNodeStatus` in `pkg/util/node`): a strategic merge
//! patch of the status (and of the labels and annotations) that carries
//! only what changed.
//!
//! Conditions merge by type, so a patch sends the changed ones alone and
//! leaves other components' conditions untouched. Addresses are declared as
//! merged by type too, which is wrong for a node with two addresses of one
//! type; as Go does, a changed address list is sent whole with a `replace`
//! directive.

use k8s_openapi::api::core::v1::Node;
use serde_json::{Map, Value};

/// A JSON merge diff: keys that changed (recursively for objects), removed
/// keys as null; lists and scalars are replaced whole.
pub fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(d) = merge_diff(ov, nv) {
                            out.insert(k.clone(), d);
                        }
                    }
                    None => {
                        out.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        _ => (old != new).then(|| new.clone()),
    }
}

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&Value::Null)
}

/// Conditions of `new` that are not exactly in `old` (matched by type).
fn changed_conditions(old: &Value, new: &Value) -> Option<Value> {
    let old_list = old.as_array().map(Vec::as_slice).unwrap_or_default();
    let changed: Vec<Value> = new
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|c| {
            let same_type = old_list
                .iter()
                .find(|o| field(o, "type") == field(c, "type"));
            same_type != Some(*c)
        })
        .cloned()
        .collect();
    (!changed.is_empty()).then_some(Value::Array(changed))
}

fn status_patch(old: &Value, new: &Value) -> Option<Value> {
    let empty = Map::new();
    let o = old.as_object().unwrap_or(&empty);
    let n = new.as_object().unwrap_or(&empty);
    let mut out = Map::new();
    for (k, nv) in n {
        let ov = o.get(k).unwrap_or(&Value::Null);
        let d = match k.as_str() {
            "conditions" => changed_conditions(ov, nv),
            "addresses" if ov != nv => {
                let mut list = vec![serde_json::json!({"$patch": "replace"})];
                list.extend(nv.as_array().cloned().unwrap_or_default());
                Some(Value::Array(list))
            }
            _ => merge_diff(ov, nv),
        };
        if let Some(d) = d {
            out.insert(k.clone(), d);
        }
    }
    // The kubelet never removes a status field wholesale; fields others own
    // (volumesAttached, config) stay as they are.
    (!out.is_empty()).then_some(Value::Object(out))
}

/// The strategic merge patch for the status subresource from `old` to
/// `new`: status, labels and annotations; `None` when nothing changed.
pub fn node_status_patch(old: &Node, new: &Node) -> Option<Value> {
    let old_status = serde_json::to_value(&old.status).unwrap_or(Value::Null);
    let new_status = serde_json::to_value(&new.status).unwrap_or(Value::Null);
    let mut patch = Map::new();
    if let Some(s) = status_patch(&old_status, &new_status) {
        patch.insert("status".into(), s);
    }
    let mut meta = Map::new();
    for (key, o, n) in [
        ("labels", &old.metadata.labels, &new.metadata.labels),
        (
            "annotations",
            &old.metadata.annotations,
            &new.metadata.annotations,
        ),
    ] {
        let o = serde_json::to_value(o).unwrap_or(Value::Null);
        let n = serde_json::to_value(n).unwrap_or(Value::Null);
        // Only additions and changes: labels others set stay.
        if let Some(Value::Object(d)) = merge_diff(&o, &n) {
            let d: Map<String, Value> = d.into_iter().filter(|(_, v)| !v.is_null()).collect();
            if !d.is_empty() {
                meta.insert(key.into(), Value::Object(d));
            }
        }
    }
    if !meta.is_empty() {
        patch.insert("metadata".into(), Value::Object(meta));
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn unchanged_is_none() {
        let n = node(json!({"metadata": {"name": "a", "labels": {"x": "1"}},
            "status": {"capacity": {"cpu": "2"}, "conditions": [{"type": "Ready", "status": "True"}]}}));
        assert_eq!(node_status_patch(&n, &n.clone()), None);
    }

    #[test]
    fn sends_only_changed_conditions_and_fields() {
        let old = node(json!({"metadata": {"name": "a"}, "status": {
            "capacity": {"cpu": "2", "memory": "1Gi"},
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": "2024-01-01T00:00:00Z"},
                {"type": "Ready", "status": "True", "lastHeartbeatTime": "2024-01-01T00:00:00Z"},
                {"type": "NetworkUnavailable", "status": "False"}
            ],
            "images": [{"names": ["a"], "sizeBytes": 1}]
        }}));
        let new = node(json!({"metadata": {"name": "a"}, "status": {
            "capacity": {"cpu": "2", "memory": "2Gi"},
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": "2024-01-01T00:00:00Z"},
                {"type": "Ready", "status": "False", "lastHeartbeatTime": "2024-01-01T00:00:10Z"},
                {"type": "NetworkUnavailable", "status": "False"}
            ],
            "images": [{"names": ["a"], "sizeBytes": 1}, {"names": ["b"], "sizeBytes": 2}]
        }}));
        let p = node_status_patch(&old, &new).unwrap();
        assert_eq!(
            p,
            json!({"status": {
                "capacity": {"memory": "2Gi"},
                "conditions": [{"type": "Ready", "status": "False", "lastHeartbeatTime": "2024-01-01T00:00:10Z"}],
                "images": [{"names": ["a"], "sizeBytes": 1}, {"names": ["b"], "sizeBytes": 2}]
            }})
        );
    }

    #[test]
    fn changed_addresses_are_replaced_whole() {
        let old = node(json!({"metadata": {"name": "a"}, "status": {"addresses": [
            {"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "a"}]}}));
        let new = node(json!({"metadata": {"name": "a"}, "status": {"addresses": [
            {"type": "InternalIP", "address": "10.0.0.2"}, {"type": "Hostname", "address": "a"}]}}));
        let p = node_status_patch(&old, &new).unwrap();
        assert_eq!(
            p["status"]["addresses"],
            json!([{"$patch": "replace"}, {"type": "InternalIP", "address": "10.0.0.2"},
                   {"type": "Hostname", "address": "a"}])
        );
    }

    #[test]
    fn labels_are_added_never_removed() {
        let old = node(
            json!({"metadata": {"name": "a", "labels": {"theirs": "1", "kubernetes.io/arch": "arm64"}}}),
        );
        let new =
            node(json!({"metadata": {"name": "a", "labels": {"kubernetes.io/arch": "amd64"}}}));
        assert_eq!(
            node_status_patch(&old, &new).unwrap(),
            json!({"metadata": {"labels": {"kubernetes.io/arch": "amd64"}}})
        );
    }
}
