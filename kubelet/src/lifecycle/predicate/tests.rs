use serde_json::{Value, json};

use super::*;

/// A node named `node-a` on this OS with 2 CPUs, 4Gi, 10Gi of
/// ephemeral-storage, 4 pods, 1Gi of 2Mi hugepages and 2 example.com/gpu;
/// `extra` is merged into it (objects key by key, anything else replaced).
fn node(extra: Value) -> Node {
    let mut base = json!({
        "metadata": {"name": "node-a", "labels": {
            "kubernetes.io/os": std::env::consts::OS, "zone": "a", "gen": "5"}},
        "spec": {},
        "status": {"allocatable": {
            "cpu": "2", "memory": "4Gi", "ephemeral-storage": "10Gi", "pods": "4",
            "hugepages-2Mi": "1Gi", "example.com/gpu": "2"}},
    });
    merge(&mut base, extra);
    serde_json::from_value(base).unwrap()
}

/// A pod `default/<name>` with one container asking for `requests`; `extra`
/// is merged into it.
fn pod(name: &str, requests: Value, extra: Value) -> Pod {
    let mut base = json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"containers": [{"name": "app", "image": "img",
                                  "resources": {"requests": requests}}]},
    });
    merge(&mut base, extra);
    serde_json::from_value(base).unwrap()
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

fn reason(result: Result<(), AdmitFailure>) -> String {
    result.expect_err("pod should be rejected").reason
}

fn failure(result: Result<(), AdmitFailure>) -> AdmitFailure {
    result.expect_err("pod should be rejected")
}

// ---- resources ----

#[test]
fn pod_that_fits_is_admitted() {
    let p = pod("web", json!({"cpu": "500m", "memory": "1Gi"}), json!({}));
    let other = pod("db", json!({"cpu": "1", "memory": "2Gi"}), json!({}));
    assert_eq!(admit(&node(json!({})), &[&other], &p), Ok(()));
}

#[test]
fn pod_without_requests_is_admitted() {
    let p = pod("web", json!({}), json!({}));
    assert_eq!(admit(&node(json!({})), &[], &p), Ok(()));
}

#[test]
fn out_of_cpu_counts_admitted_pods() {
    let p = pod("web", json!({"cpu": "1500m"}), json!({}));
    let other = pod("db", json!({"cpu": "1"}), json!({}));
    assert_eq!(
        failure(admit(&node(json!({})), &[&other], &p)),
        AdmitFailure {
            reason: "OutOfcpu".into(),
            message: "Node didn't have enough resource: cpu, requested: 1500, used: 1000, \
                      capacity: 2000"
                .into(),
        }
    );
}

#[test]
fn out_of_memory() {
    let p = pod("web", json!({"memory": "5Gi"}), json!({}));
    assert_eq!(
        failure(admit(&node(json!({})), &[], &p)),
        AdmitFailure {
            reason: "OutOfmemory".into(),
            message: "Node didn't have enough resource: memory, requested: 5368709120, used: 0, \
                      capacity: 4294967296"
                .into(),
        }
    );
}

#[test]
fn out_of_ephemeral_storage() {
    let p = pod("web", json!({"ephemeral-storage": "11Gi"}), json!({}));
    assert_eq!(
        reason(admit(&node(json!({})), &[], &p)),
        "OutOfephemeral-storage"
    );
}

#[test]
fn out_of_pods() {
    let others: Vec<Pod> = (0..4)
        .map(|i| pod(&format!("p{i}"), json!({}), json!({})))
        .collect();
    let refs: Vec<&Pod> = others.iter().collect();
    let p = pod("web", json!({}), json!({}));
    assert_eq!(
        failure(admit(&node(json!({})), &refs, &p)),
        AdmitFailure {
            reason: "OutOfpods".into(),
            message: "Node didn't have enough resource: pods, requested: 1, used: 4, capacity: 4"
                .into(),
        }
    );
}

#[test]
fn pod_count_is_reported_before_cpu() {
    let others: Vec<Pod> = (0..4)
        .map(|i| pod(&format!("p{i}"), json!({}), json!({})))
        .collect();
    let refs: Vec<&Pod> = others.iter().collect();
    let p = pod("web", json!({"cpu": "3"}), json!({}));
    assert_eq!(reason(admit(&node(json!({})), &refs, &p)), "OutOfpods");
}

#[test]
fn terminal_and_self_in_admitted_are_ignored() {
    let done = pod(
        "done",
        json!({"cpu": "2"}),
        json!({"status": {"phase": "Succeeded"}}),
    );
    let failed = pod(
        "failed",
        json!({"cpu": "2"}),
        json!({"status": {"phase": "Failed"}}),
    );
    let p = pod("web", json!({"cpu": "2"}), json!({}));
    assert_eq!(admit(&node(json!({})), &[&done, &failed, &p], &p), Ok(()));
}

#[test]
fn out_of_hugepages_and_extended_resources() {
    let p = pod("web", json!({"hugepages-2Mi": "2Gi"}), json!({}));
    assert_eq!(
        failure(admit(&node(json!({})), &[], &p)),
        AdmitFailure {
            reason: "OutOfhugepages-2Mi".into(),
            message: "Node didn't have enough resource: hugepages-2Mi, requested: 2147483648, \
                      used: 0, capacity: 1073741824"
                .into(),
        }
    );
    let p = pod("web", json!({"example.com/gpu": "1"}), json!({}));
    let other = pod("ml", json!({"example.com/gpu": "2"}), json!({}));
    assert_eq!(
        failure(admit(&node(json!({})), &[&other], &p)),
        AdmitFailure {
            reason: "OutOfexample.com/gpu".into(),
            message: "Node didn't have enough resource: example.com/gpu, requested: 1, used: 2, \
                      capacity: 2"
                .into(),
        }
    );
}

#[test]
fn hugepages_the_node_lacks_do_not_fit() {
    let p = pod("web", json!({"hugepages-1Gi": "1Gi"}), json!({}));
    assert_eq!(
        reason(admit(&node(json!({})), &[], &p)),
        "OutOfhugepages-1Gi"
    );
}

#[test]
fn extended_resources_the_node_does_not_list_are_not_checked() {
    let p = pod(
        "web",
        json!({"cpu": "1", "example.com/fpga": "3"}),
        json!({}),
    );
    assert_eq!(admit(&node(json!({})), &[], &p), Ok(()));
}

#[test]
fn sidecar_before_init_container_adds_to_its_peak() {
    // Sidecar 200m runs beside the 1000m init container: the init peak is
    // 1200m, more than the 300m + 200m running afterwards.
    let p = pod(
        "web",
        json!({"cpu": "300m"}),
        json!({"spec": {"initContainers": [
            {"name": "proxy", "image": "img", "restartPolicy": "Always",
             "resources": {"requests": {"cpu": "200m"}}},
            {"name": "migrate", "image": "img", "resources": {"requests": {"cpu": "1"}}},
        ]}}),
    );
    let node = node(json!({"status": {"allocatable": {"cpu": "1199m"}}}));
    assert_eq!(
        failure(admit(&node, &[], &p)).message,
        "Node didn't have enough resource: cpu, requested: 1200, used: 0, capacity: 1199"
    );
}

#[test]
fn sidecar_after_init_container_counts_with_the_containers() {
    // The 1000m init container finishes before the sidecar starts; the pod
    // then runs 900m + 200m = 1100m, above the init peak.
    let p = pod(
        "web",
        json!({"cpu": "900m"}),
        json!({"spec": {"initContainers": [
            {"name": "migrate", "image": "img", "resources": {"requests": {"cpu": "1"}}},
            {"name": "proxy", "image": "img", "restartPolicy": "Always",
             "resources": {"requests": {"cpu": "200m"}}},
        ]}}),
    );
    let fits = node(json!({"status": {"allocatable": {"cpu": "1100m"}}}));
    assert_eq!(admit(&fits, &[], &p), Ok(()));
    let short = node(json!({"status": {"allocatable": {"cpu": "1099m"}}}));
    assert!(
        failure(admit(&short, &[], &p))
            .message
            .contains("requested: 1100,")
    );
}

#[test]
fn overhead_is_added_to_the_request() {
    let p = pod(
        "web",
        json!({"cpu": "100m", "memory": "100Mi"}),
        json!({"spec": {"overhead": {"cpu": "250m"}}}),
    );
    let short = node(json!({"status": {"allocatable": {"cpu": "300m"}}}));
    assert!(
        failure(admit(&short, &[], &p))
            .message
            .contains("cpu, requested: 350,")
    );
    // An admitted pod's overhead counts as used.
    let mut other = p.clone();
    other.metadata.uid = Some("uid-other".into());
    let node = node(json!({"status": {"allocatable": {"cpu": "600m"}}}));
    assert!(
        failure(admit(&node, &[&other], &p))
            .message
            .contains("used: 350,")
    );
}

#[test]
fn pod_level_requests_replace_the_containers() {
    let p = pod(
        "web",
        json!({"cpu": "100m"}),
        json!({"spec": {"resources": {"requests": {"cpu": "3"}}}}),
    );
    assert!(
        failure(admit(&node(json!({})), &[], &p))
            .message
            .contains("cpu, requested: 3000,")
    );
}

#[test]
fn malformed_quantity_in_the_pod_is_rejected() {
    let p = pod("web", json!({"cpu": "lots"}), json!({}));
    let f = failure(admit(&node(json!({})), &[], &p));
    assert_eq!(f.reason, UNEXPECTED_ADMISSION_ERROR);
    assert!(
        f.message.contains("container \"app\" request cpu"),
        "{}",
        f.message
    );
    let p = pod(
        "web",
        json!({}),
        json!({"spec": {"overhead": {"memory": "1XB"}}}),
    );
    assert!(
        failure(admit(&node(json!({})), &[], &p))
            .message
            .contains("overhead memory")
    );
}

#[test]
fn malformed_quantity_in_an_admitted_pod_counts_as_absent() {
    let other = pod("db", json!({"cpu": "lots", "memory": "1Gi"}), json!({}));
    let p = pod("web", json!({"cpu": "2"}), json!({}));
    assert_eq!(admit(&node(json!({})), &[&other], &p), Ok(()));
}

// ---- node name, ports ----

#[test]
fn node_name_must_match() {
    let p = pod("web", json!({}), json!({"spec": {"nodeName": "node-b"}}));
    assert_eq!(
        failure(admit(&node(json!({})), &[], &p)),
        AdmitFailure {
            reason: "NodeName".into(),
            message: "Predicate NodeName failed: node(s) didn't match the requested node name"
                .into(),
        }
    );
    let p = pod("web", json!({}), json!({"spec": {"nodeName": "node-a"}}));
    assert_eq!(admit(&node(json!({})), &[], &p), Ok(()));
}

fn with_ports(name: &str, ports: Value) -> Pod {
    pod(
        name,
        json!({}),
        json!({"spec": {"containers": [{"name": "app", "image": "img", "ports": ports}]}}),
    )
}

#[test]
fn host_port_conflict() {
    let other = with_ports("db", json!([{"containerPort": 80, "hostPort": 8080}]));
    let p = with_ports(
        "web",
        json!([{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}]),
    );
    assert_eq!(
        failure(admit(&node(json!({})), &[&other], &p)),
        AdmitFailure {
            reason: "NodePorts".into(),
            message: "Predicate NodePorts failed: node(s) didn't have free ports for the \
                      requested pod ports"
                .into(),
        }
    );
}

#[test]
fn host_ports_conflict_by_protocol_and_ip() {
    let n = node(json!({}));
    let used = with_ports(
        "db",
        json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}]),
    );
    let check = |ports: Value| admit(&n, &[&used], &with_ports("web", ports)).is_ok();
    // Another protocol, another IP, or no host port: free.
    assert!(check(json!([{"containerPort": 53, "hostPort": 53}])));
    assert!(check(
        json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.2"}])
    ));
    assert!(check(json!([{"containerPort": 53, "protocol": "UDP"}])));
    // The same IP, or all IPs: taken.
    assert!(!check(
        json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}])
    ));
    assert!(!check(
        json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP"}])
    ));
}

#[test]
fn sidecar_host_ports_count_and_init_container_ports_do_not() {
    let n = node(json!({}));
    let other = pod(
        "db",
        json!({}),
        json!({"spec": {"initContainers": [
            {"name": "proxy", "image": "img", "restartPolicy": "Always",
             "ports": [{"containerPort": 1, "hostPort": 9000}]},
            {"name": "setup", "image": "img", "ports": [{"containerPort": 1, "hostPort": 9001}]},
        ]}}),
    );
    let wants = |port: i32| with_ports("web", json!([{"containerPort": 1, "hostPort": port}]));
    assert_eq!(reason(admit(&n, &[&other], &wants(9000))), "NodePorts");
    assert_eq!(admit(&n, &[&other], &wants(9001)), Ok(()));
}

// ---- node selector and affinity ----

#[test]
fn node_selector() {
    let n = node(json!({}));
    let p = pod(
        "web",
        json!({}),
        json!({"spec": {"nodeSelector": {"zone": "a"}}}),
    );
    assert_eq!(admit(&n, &[], &p), Ok(()));
    let p = pod(
        "web",
        json!({}),
        json!({"spec": {"nodeSelector": {"zone": "b"}}}),
    );
    let f = failure(admit(&n, &[], &p));
    assert_eq!(
        f,
        AdmitFailure {
            reason: "NodeAffinity".into(),
            message: "Predicate NodeAffinity failed: node(s) didn't match Pod's node \
                      affinity/selector"
                .into(),
        }
    );
    assert!(f.is_node_affinity());
    let p = pod(
        "web",
        json!({}),
        json!({"spec": {"nodeSelector": {"rack": ""}}}),
    );
    assert_eq!(reason(admit(&n, &[], &p)), "NodeAffinity");
}

/// Whether a pod whose required affinity has these terms is admitted to
/// `node-a` (labels zone=a, gen=5).
fn affinity_admits(terms: Value) -> bool {
    let p = pod(
        "web",
        json!({}),
        json!({"spec": {"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}}),
    );
    admit(&node(json!({})), &[], &p).is_ok()
}

fn expr(key: &str, op: &str, values: &[&str]) -> Value {
    json!({"matchExpressions": [{"key": key, "operator": op, "values": values}]})
}

#[test]
fn affinity_operators() {
    assert!(affinity_admits(json!([expr("zone", "In", &["a", "b"])])));
    assert!(!affinity_admits(json!([expr("zone", "In", &["b"])])));
    assert!(!affinity_admits(json!([expr("rack", "In", &["a"])])));
    assert!(affinity_admits(json!([expr("zone", "NotIn", &["b"])])));
    assert!(affinity_admits(json!([expr("rack", "NotIn", &["a"])])));
    assert!(!affinity_admits(json!([expr("zone", "NotIn", &["a"])])));
    assert!(affinity_admits(json!([expr("zone", "Exists", &[])])));
    assert!(!affinity_admits(json!([expr("rack", "Exists", &[])])));
    assert!(affinity_admits(json!([expr("rack", "DoesNotExist", &[])])));
    assert!(!affinity_admits(json!([expr("zone", "DoesNotExist", &[])])));
    assert!(affinity_admits(json!([expr("gen", "Gt", &["4"])])));
    assert!(!affinity_admits(json!([expr("gen", "Gt", &["5"])])));
    assert!(affinity_admits(json!([expr("gen", "Lt", &["6"])])));
    assert!(!affinity_admits(json!([expr("gen", "Lt", &["5"])])));
    // A label that is not an integer never compares.
    assert!(!affinity_admits(json!([expr("zone", "Gt", &["0"])])));
    assert!(!affinity_admits(json!([expr("rack", "Lt", &["9"])])));
}

#[test]
fn affinity_expressions_are_anded_and_terms_ored() {
    let both = json!({"matchExpressions": [
        {"key": "zone", "operator": "In", "values": ["a"]},
        {"key": "gen", "operator": "Gt", "values": ["7"]},
    ]});
    assert!(!affinity_admits(json!([both])));
    assert!(affinity_admits(json!([both, expr("gen", "Lt", &["7"])])));
}

#[test]
fn affinity_empty_and_invalid_terms_match_nothing() {
    assert!(!affinity_admits(json!([])));
    assert!(!affinity_admits(json!([{}])));
    assert!(!affinity_admits(
        json!([{"matchExpressions": [], "matchFields": []}])
    ));
    // Invalid terms are skipped; a valid one still decides.
    let invalid = [
        expr("gen", "Gt", &["1", "2"]),
        expr("gen", "Gt", &["x"]),
        expr("zone", "In", &[]),
        expr("zone", "Exists", &["a"]),
        expr("zone", "Near", &["a"]),
    ];
    for term in invalid {
        assert!(!affinity_admits(json!([term.clone()])), "{term}");
        assert!(
            affinity_admits(json!([term.clone(), expr("zone", "In", &["a"])])),
            "{term}"
        );
    }
}

#[test]
fn affinity_match_fields_on_the_node_name() {
    let field = |op: &str, values: &[&str]| json!({"matchFields": [{"key": "metadata.name", "operator": op, "values": values}]});
    assert!(affinity_admits(json!([field("In", &["node-a"])])));
    assert!(!affinity_admits(json!([field("In", &["node-b"])])));
    assert!(affinity_admits(json!([field("NotIn", &["node-b"])])));
    assert!(!affinity_admits(json!([field("NotIn", &["node-a"])])));
    // One value only, In and NotIn only.
    assert!(!affinity_admits(json!([field(
        "In",
        &["node-a", "node-b"]
    )])));
    assert!(!affinity_admits(json!([field("Exists", &[])])));
    // Fields and expressions in one term are ANDed.
    let term = json!({
        "matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}],
        "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-a"]}],
    });
    assert!(!affinity_admits(json!([term])));
}

#[test]
fn node_selector_and_affinity_must_both_match() {
    let p = pod(
        "web",
        json!({}),
        json!({"spec": {"nodeSelector": {"zone": "b"}, "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [expr("zone", "In", &["a"])]}}}}}),
    );
    assert_eq!(reason(admit(&node(json!({})), &[], &p)), "NodeAffinity");
}

// ---- taints ----

fn tainted_node() -> Node {
    node(json!({"spec": {"taints": [
        {"key": "dedicated", "value": "gpu", "effect": "NoExecute"},
    ]}}))
}

fn tolerating(tolerations: Value) -> Pod {
    pod(
        "web",
        json!({}),
        json!({"spec": {"tolerations": tolerations}}),
    )
}

#[test]
fn untolerated_no_execute_taint_is_rejected() {
    assert_eq!(
        failure(admit(&tainted_node(), &[], &tolerating(json!([])))),
        AdmitFailure {
            reason: "TaintToleration".into(),
            message: "Predicate TaintToleration failed: node(s) had taints that the pod didn't \
                      tolerate"
                .into(),
        }
    );
}

#[test]
fn no_schedule_and_prefer_no_schedule_taints_are_not_checked() {
    let n = node(json!({"spec": {"taints": [
        {"key": "a", "effect": "NoSchedule"},
        {"key": "b", "value": "x", "effect": "PreferNoSchedule"},
    ]}}));
    assert_eq!(admit(&n, &[], &tolerating(json!([]))), Ok(()));
}

#[test]
fn tolerations() {
    let admits = |t: Value| admit(&tainted_node(), &[], &tolerating(json!([t]))).is_ok();
    // Equal: key and value must match; no operator means Equal.
    assert!(admits(
        json!({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoExecute"})
    ));
    assert!(admits(json!({"key": "dedicated", "value": "gpu"})));
    assert!(!admits(
        json!({"key": "dedicated", "operator": "Equal", "value": "cpu"})
    ));
    assert!(!admits(json!({"key": "other", "value": "gpu"})));
    // Exists: any value of the key.
    assert!(admits(json!({"key": "dedicated", "operator": "Exists"})));
    assert!(!admits(json!({"key": "other", "operator": "Exists"})));
    // Empty key with Exists: every taint.
    assert!(admits(json!({"operator": "Exists"})));
    // Empty effect matches any effect; another effect does not.
    assert!(admits(
        json!({"key": "dedicated", "operator": "Exists", "effect": ""})
    ));
    assert!(!admits(
        json!({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"})
    ));
    // Gt/Lt are behind an alpha gate: they tolerate nothing.
    assert!(!admits(
        json!({"key": "dedicated", "operator": "Gt", "value": "1"})
    ));
}

#[test]
fn every_no_execute_taint_needs_a_toleration() {
    let n = node(json!({"spec": {"taints": [
        {"key": "a", "effect": "NoExecute"},
        {"key": "b", "effect": "NoExecute"},
    ]}}));
    let one = tolerating(json!([{"key": "a", "operator": "Exists"}]));
    assert_eq!(reason(admit(&n, &[], &one)), "TaintToleration");
    let both = tolerating(json!([
        {"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]));
    assert_eq!(admit(&n, &[], &both), Ok(()));
}

#[test]
fn static_pods_skip_the_taint_check() {
    let source = |s: &str| {
        pod(
            "web",
            json!({}),
            json!({"metadata": {"annotations": {"kubernetes.io/config.source": s}}}),
        )
    };
    assert_eq!(admit(&tainted_node(), &[], &source("file")), Ok(()));
    assert_eq!(
        reason(admit(&tainted_node(), &[], &source("api"))),
        "TaintToleration"
    );
}

// ---- OS, supplemental groups, order ----

#[test]
fn os_label_must_name_this_os() {
    let p = pod(
        "web",
        json!({}),
        json!({"metadata": {"labels": {"kubernetes.io/os": "windows"}}}),
    );
    assert_eq!(
        failure(admit(&node(json!({})), &[], &p)),
        AdmitFailure {
            reason: "PodOSSelectorNodeLabelDoesNotMatch".into(),
            message: "Failed to admit pod as the `kubernetes.io/os` label doesn't match node \
                      label"
                .into(),
        }
    );
    let p = pod(
        "web",
        json!({}),
        json!({"metadata": {"labels": {"kubernetes.io/os": std::env::consts::OS}}}),
    );
    assert_eq!(admit(&node(json!({})), &[], &p), Ok(()));
}

#[test]
fn os_field_must_name_this_os() {
    let p = pod(
        "web",
        json!({}),
        json!({"spec": {"os": {"name": "windows"}}}),
    );
    assert_eq!(
        failure(admit(&node(json!({})), &[], &p)),
        AdmitFailure {
            reason: "PodOSNotSupported".into(),
            message: "Failed to admit pod as the OS field doesn't match node OS".into(),
        }
    );
    let p = pod(
        "web",
        json!({}),
        json!({"spec": {"os": {"name": std::env::consts::OS}}}),
    );
    assert_eq!(admit(&node(json!({})), &[], &p), Ok(()));
}

#[test]
fn strict_supplemental_groups_need_the_node_feature() {
    let p = pod(
        "web",
        json!({}),
        json!({"spec": {"securityContext": {"supplementalGroupsPolicy": "Strict"}}}),
    );
    assert_eq!(
        failure(admit(&node(json!({})), &[], &p)),
        AdmitFailure {
            reason: "SupplementalGroupsPolicyNotSupported".into(),
            message: "SupplementalGroupsPolicy=Strict is not supported in this node".into(),
        }
    );
    let supported = node(json!({"status": {"features": {"supplementalGroupsPolicy": true}}}));
    assert_eq!(admit(&supported, &[], &p), Ok(()));
    let merge = pod(
        "web",
        json!({}),
        json!({"spec": {"securityContext": {"supplementalGroupsPolicy": "Merge"}}}),
    );
    assert_eq!(admit(&node(json!({})), &[], &merge), Ok(()));
}

#[test]
fn first_failure_in_go_order_is_reported() {
    // Fails everything: OS, resources, affinity, node name, taints.
    let p = pod(
        "web",
        json!({"cpu": "5"}),
        json!({"metadata": {"labels": {"kubernetes.io/os": "windows"}},
               "spec": {"nodeName": "node-b", "nodeSelector": {"zone": "b"}}}),
    );
    let n = tainted_node();
    assert_eq!(
        reason(admit(&n, &[], &p)),
        "PodOSSelectorNodeLabelDoesNotMatch"
    );
    let mut p = p;
    p.metadata.labels = None;
    assert_eq!(reason(admit(&n, &[], &p)), "OutOfcpu");
    p.spec.as_mut().unwrap().containers[0].resources = None;
    assert_eq!(reason(admit(&n, &[], &p)), "NodeAffinity");
    p.spec.as_mut().unwrap().node_selector = None;
    assert_eq!(reason(admit(&n, &[], &p)), "NodeName");
    p.spec.as_mut().unwrap().node_name = None;
    assert_eq!(reason(admit(&n, &[], &p)), "TaintToleration");
}

#[test]
fn node_without_allocatable_admits_nothing() {
    let mut n = node(json!({}));
    n.status = None;
    assert_eq!(
        reason(admit(&n, &[], &pod("web", json!({}), json!({})))),
        "OutOfpods"
    );
}

#[test]
fn invalid_node_info_reads_as_go() {
    let f = AdmitFailure::invalid_node_info();
    assert_eq!(f.reason, "InvalidNodeInfo");
    assert_eq!(f.message, "Kubelet cannot get node info.");
    assert!(!f.is_node_affinity());
}
