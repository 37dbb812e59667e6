use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};

use super::resource::ceil_ratio;
use super::*;
use crate::objects::{NoObjects, ObjectError, ObjectGetter};

const SECRET_VALUE: &str = "hunter2-very-secret";

/// ConfigMaps and Secrets by (namespace, name); counts the reads.
#[derive(Default)]
struct FakeObjects {
    config_maps: HashMap<(String, String), Arc<ConfigMap>>,
    secrets: HashMap<(String, String), Arc<Secret>>,
    unavailable: Option<String>,
    reads: AtomicUsize,
}

impl FakeObjects {
    fn config_map(mut self, ns: &str, name: &str, data: &[(&str, &str)]) -> Self {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns},
            "data": data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        }))
        .unwrap();
        self.config_maps
            .insert((ns.into(), name.into()), Arc::new(cm));
        self
    }

    fn secret(mut self, ns: &str, name: &str, data: &[(&str, &[u8])]) -> Self {
        let secret = Secret {
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        self.secrets
            .insert((ns.into(), name.into()), Arc::new(secret));
        self
    }
}

impl ObjectGetter for FakeObjects {
    fn get_config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<ConfigMap>, ObjectError>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if let Some(message) = &self.unavailable {
                return Err(ObjectError::Unavailable {
                    kind: "configmap",
                    namespace: namespace.into(),
                    name: name.into(),
                    message: message.clone(),
                });
            }
            self.config_maps
                .get(&(namespace.into(), name.into()))
                .cloned()
                .ok_or_else(|| ObjectError::NotFound {
                    kind: "configmap",
                    namespace: namespace.into(),
                    name: name.into(),
                })
        })
    }

    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Secret>, ObjectError>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            self.secrets
                .get(&(namespace.into(), name.into()))
                .cloned()
                .ok_or_else(|| ObjectError::NotFound {
                    kind: "secret",
                    namespace: namespace.into(),
                    name: name.into(),
                })
        })
    }
}

/// A pod in namespace "prod" whose first container has `container`'s
/// fields (name and image added).
fn pod_with(container: serde_json::Value) -> Pod {
    let mut c = container;
    c["name"] = "c".into();
    c["image"] = "busybox".into();
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {"containers": [c]}
    }))
    .unwrap()
}

async fn env_of(pod: &Pod, objects: &dyn ObjectGetter) -> Result<ContainerEnv, EnvError> {
    let c = &pod.spec.as_ref().unwrap().containers[0];
    container_env(pod, c, &PodFacts::default(), objects).await
}

fn get<'e>(env: &'e ContainerEnv, name: &str) -> Option<&'e str> {
    env.vars
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn names(env: &ContainerEnv) -> Vec<&str> {
    env.vars.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn expansion_rules() {
    let v = HashMap::from([("A".into(), "x".into()), ("EMPTY".into(), String::new())]);
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

#[tokio::test]
async fn builds_env_in_order_with_field_refs() {
    let p: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-n1", "namespace": "prod", "uid": "u1",
                     "labels": {"app": "web"}, "annotations": {"team": "infra"}},
        "spec": {"serviceAccountName": "sa", "containers": [{"name": "c", "image": "busybox", "env": [
            {"name": "A", "value": "1"},
            {"name": "B", "value": "$(A)-$(POD)"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "C", "value": "$(POD)"},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['team']"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
            {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "HOSTS", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIPs"}}},
            {"name": "A", "value": "2"}
        ]}]}
    }))
    .unwrap();
    let c = &p.spec.as_ref().unwrap().containers[0];
    let pod_ips = ["10.88.0.7".to_string(), "fd00::7".to_string()];
    let facts = PodFacts {
        node_name: "n1",
        pod_ip: "10.88.0.7",
        pod_ips: &pod_ips,
        host_ip: "192.168.1.2",
        ..Default::default()
    };
    let env = container_env(&p, c, &facts, &NoObjects).await.unwrap();
    assert_eq!(
        env.vars[0].0, "A",
        "a redefined name keeps its first position"
    );
    assert_eq!(get(&env, "A"), Some("2"));
    assert_eq!(
        get(&env, "B"),
        Some("1-$(POD)"),
        "only earlier variables expand"
    );
    assert_eq!(get(&env, "C"), Some("web-n1"));
    assert_eq!(get(&env, "NS"), Some("prod"));
    assert_eq!(get(&env, "UID"), Some("u1"));
    assert_eq!(get(&env, "APP"), Some("web"));
    assert_eq!(get(&env, "TEAM"), Some("infra"));
    assert_eq!(get(&env, "NODE"), Some("n1"));
    assert_eq!(get(&env, "SA"), Some("sa"));
    assert_eq!(get(&env, "IP"), Some("10.88.0.7"));
    assert_eq!(get(&env, "IPS"), Some("10.88.0.7,fd00::7"));
    assert_eq!(get(&env, "HOST"), Some("192.168.1.2"));
    assert_eq!(
        get(&env, "HOSTS"),
        Some("192.168.1.2"),
        "no list: the primary"
    );
    assert!(env.invalid_keys.is_empty());
}

#[tokio::test]
async fn unsupported_field_is_a_clear_error() {
    let p = pod_with(serde_json::json!({"env": [
        {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]}));
    assert!(matches!(
        env_of(&p, &NoObjects).await,
        Err(EnvError::UnsupportedField { .. })
    ));
}

#[tokio::test]
async fn config_map_and_secret_key_refs() {
    let objects = FakeObjects::default()
        .config_map("prod", "cfg", &[("mode", "fast"), ("level", "3")])
        .secret("prod", "creds", &[("password", SECRET_VALUE.as_bytes())]);
    let p = pod_with(serde_json::json!({"env": [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "BOTH", "value": "$(MODE):$(PASS)"},
        {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "level"}}}
    ]}));
    let env = env_of(&p, &objects).await.unwrap();
    assert_eq!(get(&env, "MODE"), Some("fast"));
    assert_eq!(get(&env, "PASS"), Some(SECRET_VALUE));
    assert_eq!(
        get(&env, "BOTH"),
        Some(format!("fast:{SECRET_VALUE}").as_str())
    );
    assert_eq!(get(&env, "LEVEL"), Some("3"));
    assert_eq!(
        objects.reads.load(Ordering::SeqCst),
        2,
        "each object is read once"
    );
    let debug = format!("{env:?}");
    assert!(
        !debug.contains(SECRET_VALUE),
        "Debug shows names only: {debug}"
    );
}

#[tokio::test]
async fn optional_references_skip_the_variable() {
    let objects = FakeObjects::default()
        .config_map("prod", "cfg", &[("mode", "fast")])
        .secret("prod", "creds", &[("user", b"admin")]);
    let p = pod_with(serde_json::json!({
        "envFrom": [{"configMapRef": {"name": "cfg"}}],
        "env": [
            {"name": "mode", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "x", "optional": true}}},
            {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nokey", "optional": true}}},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "x", "optional": true}}},
            {"name": "T", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nokey", "optional": true}}},
            {"name": "U", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user", "optional": true}}}
        ]
    }));
    let env = env_of(&p, &objects).await.unwrap();
    assert_eq!(
        names(&env),
        ["mode", "U"],
        "skipped variables are not defined"
    );
    assert_eq!(
        get(&env, "mode"),
        Some("fast"),
        "a skipped variable does not erase the envFrom value"
    );
    assert_eq!(get(&env, "U"), Some("admin"));
}

#[tokio::test]
async fn required_references_fail_with_go_messages() {
    let objects = FakeObjects::default()
        .config_map("prod", "cfg", &[("mode", "fast")])
        .secret("prod", "creds", &[("password", SECRET_VALUE.as_bytes())]);
    let cases = [
        (
            serde_json::json!({"configMapKeyRef": {"name": "x", "key": "k"}}),
            "configmap \"x\" not found",
        ),
        (
            serde_json::json!({"configMapKeyRef": {"name": "cfg", "key": "k", "optional": false}}),
            "couldn't find key k in ConfigMap prod/cfg",
        ),
        (
            serde_json::json!({"secretKeyRef": {"name": "x", "key": "k"}}),
            "secret \"x\" not found",
        ),
        (
            serde_json::json!({"secretKeyRef": {"name": "creds", "key": "k"}}),
            "couldn't find key k in Secret prod/creds",
        ),
    ];
    for (source, message) in cases {
        let p = pod_with(serde_json::json!({"env": [
            {"name": "OK", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "V", "valueFrom": source}
        ]}));
        let e = env_of(&p, &objects).await.unwrap_err();
        assert_eq!(e.to_string(), message);
        assert!(!format!("{e} {e:?}").contains(SECRET_VALUE));
    }

    // envFrom: a missing object fails unless optional.
    let p = pod_with(serde_json::json!({"envFrom": [{"secretRef": {"name": "gone"}}]}));
    assert_eq!(
        env_of(&p, &objects).await.unwrap_err().to_string(),
        "secret \"gone\" not found"
    );
    let p = pod_with(serde_json::json!({"envFrom": [
        {"secretRef": {"name": "gone", "optional": true}},
        {"configMapRef": {"name": "gone", "optional": true}}]}));
    assert!(env_of(&p, &objects).await.unwrap().vars.is_empty());
}

#[tokio::test]
async fn an_unavailable_source_fails_even_when_optional() {
    let objects = FakeObjects {
        unavailable: Some("watch not synced".into()),
        ..Default::default()
    };
    let p = pod_with(serde_json::json!({"env": [
        {"name": "V", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k", "optional": true}}}]}));
    assert_eq!(
        env_of(&p, &objects).await.unwrap_err().to_string(),
        "configmap \"prod/cfg\": watch not synced"
    );
}

#[tokio::test]
async fn env_from_prefix_invalid_keys_and_precedence() {
    let objects = FakeObjects::default()
        .config_map(
            "prod",
            "cfg",
            &[
                ("HOST", "db"),
                ("PORT", "5432"),
                ("a=b", "x"),
                ("tab\tkey", "y"),
            ],
        )
        .secret(
            "prod",
            "creds",
            &[
                ("PASSWORD", SECRET_VALUE.as_bytes()),
                ("PORT", b"6543"),
                ("bad=key", b"z"),
            ],
        );
    let p = pod_with(serde_json::json!({
        "envFrom": [
            {"configMapRef": {"name": "cfg"}, "prefix": "DB_"},
            {"secretRef": {"name": "creds"}, "prefix": "DB_"},
            {"configMapRef": {"name": "cfg"}}
        ],
        "env": [
            {"name": "DB_HOST", "value": "override-$(DB_PORT)"},
            {"name": "RAW", "value": "$(PORT)"}
        ]
    }));
    let env = env_of(&p, &objects).await.unwrap();
    assert_eq!(
        names(&env),
        ["DB_HOST", "DB_PORT", "DB_PASSWORD", "HOST", "PORT", "RAW"]
    );
    assert_eq!(
        get(&env, "DB_PORT"),
        Some("6543"),
        "a later envFrom source wins"
    );
    assert_eq!(
        get(&env, "DB_HOST"),
        Some("override-6543"),
        "env wins over envFrom and expands over it"
    );
    assert_eq!(get(&env, "DB_PASSWORD"), Some(SECRET_VALUE));
    assert_eq!(get(&env, "RAW"), Some("5432"));
    assert_eq!(
        env.invalid_keys,
        [
            InvalidKeys {
                kind: ObjectKind::ConfigMap,
                namespace: "prod".into(),
                name: "cfg".into(),
                keys: vec!["DB_a=b".into(), "DB_tab\tkey".into()],
            },
            InvalidKeys {
                kind: ObjectKind::Secret,
                namespace: "prod".into(),
                name: "creds".into(),
                keys: vec!["DB_bad=key".into()],
            },
            InvalidKeys {
                kind: ObjectKind::ConfigMap,
                namespace: "prod".into(),
                name: "cfg".into(),
                keys: vec!["a=b".into(), "tab\tkey".into()],
            },
        ]
    );
    assert_eq!(
        env.invalid_keys[1].to_string(),
        "Keys [DB_bad=key] from the EnvFrom secret prod/creds were skipped since they are considered invalid environment variable names."
    );
    assert_eq!(InvalidKeys::REASON, "InvalidEnvironmentVariableNames");
}

#[tokio::test]
async fn env_from_values_are_not_expanded() {
    let objects = FakeObjects::default().config_map("prod", "cfg", &[("B", "$(A)"), ("A", "1")]);
    let p = pod_with(serde_json::json!({"envFrom": [{"configMapRef": {"name": "cfg"}}]}));
    let env = env_of(&p, &objects).await.unwrap();
    assert_eq!(get(&env, "B"), Some("$(A)"));
}

#[tokio::test]
async fn secret_values_must_be_text_and_are_never_shown() {
    let objects =
        FakeObjects::default().secret("prod", "bin", &[("blob", b"\xff\xfehunter2-very-secret")]);
    for p in [
        pod_with(serde_json::json!({"envFrom": [{"secretRef": {"name": "bin"}}]})),
        pod_with(serde_json::json!({"env": [
            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "bin", "key": "blob"}}}]})),
    ] {
        let e = env_of(&p, &objects).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "the value of key blob in Secret prod/bin is not valid UTF-8"
        );
        assert!(!format!("{e:?}").contains("hunter2"));
    }
}

#[tokio::test]
async fn secret_string_data_is_read_over_data() {
    let secret = Secret {
        data: Some(BTreeMap::from([
            (
                "a".to_string(),
                k8s_openapi::ByteString(b"from-data".to_vec()),
            ),
            ("b".to_string(), k8s_openapi::ByteString(b"kept".to_vec())),
        ])),
        string_data: Some(BTreeMap::from([(
            "a".to_string(),
            "from-string".to_string(),
        )])),
        ..Default::default()
    };
    let p = pod_with(serde_json::json!({"envFrom": [{"secretRef": {"name": "s"}}]}));
    let c = &p.spec.as_ref().unwrap().containers[0];
    let objects = EnvObjects::default().with_secret("s", Ok(Arc::new(secret)));
    let env = build_env(&p, c, &PodFacts::default(), &objects).unwrap();
    assert_eq!(get(&env, "a"), Some("from-string"));
    assert_eq!(get(&env, "b"), Some("kept"));
}

#[test]
fn the_pure_builder_treats_unfetched_objects_as_missing() {
    let p = pod_with(serde_json::json!({"env": [
        {"name": "V", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]}));
    let c = &p.spec.as_ref().unwrap().containers[0];
    let e = build_env(&p, c, &PodFacts::default(), &EnvObjects::default()).unwrap_err();
    assert_eq!(e.to_string(), "configmap \"cfg\" not found");
}

#[test]
fn ceil_ratio_rounds_up_and_saturates() {
    let n = 1_000_000_000i128;
    assert_eq!(ceil_ratio(250_000_000, n), 1);
    assert_eq!(ceil_ratio(250_000_000, 1_000_000), 250);
    assert_eq!(ceil_ratio(0, n), 0);
    assert_eq!(ceil_ratio(-5, n), 0);
    assert_eq!(ceil_ratio(5, 0), 0);
    assert_eq!(ceil_ratio(i128::from(i64::MAX) * n, 1), i64::MAX);
}

fn resource_env(
    container: serde_json::Value,
    allocatable: Option<&BTreeMap<String, i128>>,
) -> Result<ContainerEnv, EnvError> {
    let p = pod_with(container);
    resource_env_of(&p, allocatable)
}

fn resource_env_of(
    p: &Pod,
    allocatable: Option<&BTreeMap<String, i128>>,
) -> Result<ContainerEnv, EnvError> {
    let c = &p.spec.as_ref().unwrap().containers[0];
    let facts = PodFacts {
        node_allocatable: allocatable,
        ..Default::default()
    };
    build_env(p, c, &facts, &EnvObjects::default())
}

fn rf(name: &str, resource: &str, divisor: Option<&str>) -> serde_json::Value {
    let mut sel = serde_json::json!({"resource": resource});
    if let Some(d) = divisor {
        sel["divisor"] = d.into();
    }
    serde_json::json!({"name": name, "valueFrom": {"resourceFieldRef": sel}})
}

#[test]
fn resource_field_ref_divisors() {
    let env = resource_env(
        serde_json::json!({
            "resources": {
                "requests": {"cpu": "250m", "memory": "64Mi", "ephemeral-storage": "1G", "hugepages-2Mi": "4Mi"},
                "limits": {"cpu": "1500m", "memory": "1G", "ephemeral-storage": "2Gi", "hugepages-2Mi": "4Mi"}
            },
            "env": [
                rf("REQ_CPU", "requests.cpu", None),
                rf("REQ_CPU_M", "requests.cpu", Some("1m")),
                rf("LIM_CPU", "limits.cpu", Some("1")),
                rf("LIM_CPU_M", "limits.cpu", Some("1m")),
                rf("REQ_MEM", "requests.memory", None),
                rf("REQ_MEM_MI", "requests.memory", Some("1Mi")),
                rf("LIM_MEM_MI", "limits.memory", Some("1Mi")),
                rf("LIM_MEM_K", "limits.memory", Some("1k")),
                rf("REQ_EPH_M", "requests.ephemeral-storage", Some("1M")),
                rf("LIM_EPH_GI", "limits.ephemeral-storage", Some("1Gi")),
                rf("HP", "limits.hugepages-2Mi", Some("1Mi")),
                rf("HP_REQ", "requests.hugepages-2Mi", None),
                rf("ZERO_DIV", "requests.cpu", Some("0")),
            ]
        }),
        None,
    )
    .unwrap();
    let want = [
        ("REQ_CPU", "1"),
        ("REQ_CPU_M", "250"),
        ("LIM_CPU", "2"),
        ("LIM_CPU_M", "1500"),
        ("REQ_MEM", "67108864"),
        ("REQ_MEM_MI", "64"),
        ("LIM_MEM_MI", "954"),
        ("LIM_MEM_K", "1000000"),
        ("REQ_EPH_M", "1000"),
        ("LIM_EPH_GI", "2"),
        ("HP", "4"),
        ("HP_REQ", "4194304"),
        ("ZERO_DIV", "1"),
    ];
    for (name, value) in want {
        assert_eq!(get(&env, name), Some(value), "{name}");
    }
}

#[test]
fn unset_limits_default_to_node_allocatable() {
    let n = 1_000_000_000i128;
    let allocatable = BTreeMap::from([
        ("cpu".to_string(), 3_500_000_000i128),
        ("memory".to_string(), (4i128 << 30) * n),
        ("ephemeral-storage".to_string(), (10i128 << 30) * n),
    ]);
    let container = serde_json::json!({
        "resources": {"limits": {"cpu": "0"}, "requests": {"memory": "1Gi"}},
        "env": [
            rf("CPU", "limits.cpu", None),
            rf("CPU_M", "limits.cpu", Some("1m")),
            rf("MEM", "limits.memory", Some("1Mi")),
            rf("EPH", "limits.ephemeral-storage", Some("1Gi")),
            rf("REQ_CPU", "requests.cpu", Some("1m")),
            rf("HP", "limits.hugepages-2Mi", None),
        ]
    });
    let env = resource_env(container.clone(), Some(&allocatable)).unwrap();
    assert_eq!(get(&env, "CPU"), Some("4"), "zero counts as unset");
    assert_eq!(get(&env, "CPU_M"), Some("3500"));
    assert_eq!(get(&env, "MEM"), Some("4096"));
    assert_eq!(get(&env, "EPH"), Some("10"));
    assert_eq!(get(&env, "REQ_CPU"), Some("0"), "requests never default");
    assert_eq!(get(&env, "HP"), Some("0"), "hugepages never default");

    let env = resource_env(container, None).unwrap();
    assert_eq!(get(&env, "CPU"), Some("0"), "no allocatable known");

    // A pod-level limit comes before the node's allocatable.
    let mut p = pod_with(serde_json::json!({"env": [rf("CPU_M", "limits.cpu", Some("1m"))]}));
    p.spec.as_mut().unwrap().resources =
        Some(serde_json::from_value(serde_json::json!({"limits": {"cpu": "2"}})).unwrap());
    let env = resource_env_of(&p, Some(&allocatable)).unwrap();
    assert_eq!(get(&env, "CPU_M"), Some("2000"));
}

#[test]
fn resource_field_ref_by_container_name() {
    let p: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {
            "initContainers": [{"name": "init", "image": "i",
                "resources": {"limits": {"memory": "32Mi"}}}],
            "containers": [
                {"name": "c", "image": "i", "env": [
                    rf("SIDE_CPU", "limits.cpu", Some("1m")),
                    rf("INIT_MEM", "limits.memory", Some("1Mi")),
                ]},
                {"name": "side", "image": "i", "resources": {"limits": {"cpu": "100m"}}}
            ]
        }
    }))
    .unwrap();
    let mut p2 = p.clone();
    let c = &mut p2.spec.as_mut().unwrap().containers[0];
    if let Some(env) = c.env.as_mut() {
        for e in env.iter_mut() {
            let sel = e
                .value_from
                .as_mut()
                .and_then(|v| v.resource_field_ref.as_mut())
                .unwrap();
            sel.container_name = Some(if e.name == "SIDE_CPU" { "side" } else { "init" }.into());
        }
    }
    let env = resource_env_of(&p2, None).unwrap();
    assert_eq!(get(&env, "SIDE_CPU"), Some("100"));
    assert_eq!(get(&env, "INIT_MEM"), Some("32"));

    let mut p3 = p;
    let c = &mut p3.spec.as_mut().unwrap().containers[0];
    c.env.as_mut().unwrap()[0]
        .value_from
        .as_mut()
        .unwrap()
        .resource_field_ref
        .as_mut()
        .unwrap()
        .container_name = Some("nope".into());
    assert_eq!(
        resource_env_of(&p3, None).unwrap_err().to_string(),
        "container nope not found"
    );
}

#[test]
fn resource_field_ref_errors() {
    let e = resource_env(
        serde_json::json!({"env": [rf("X", "limits.gpu", None)]}),
        None,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "unsupported container resource : limits.gpu");
    let e = resource_env(serde_json::json!({"env": [rf("X", "cpu", None)]}), None).unwrap_err();
    assert_eq!(e.to_string(), "unsupported container resource : cpu");
    let e = resource_env(
        serde_json::json!({"env": [rf("X", "limits.cpu", Some("1q"))]}),
        None,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("env X: invalid quantity \"1q\" for divisor"),
        "{e}"
    );
}

#[tokio::test]
async fn a_value_wins_over_value_from_and_empty_sources_are_empty() {
    let p = pod_with(serde_json::json!({"env": [
        {"name": "V", "value": "lit", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}},
        {"name": "E", "valueFrom": {}}
    ]}));
    let objects = FakeObjects::default();
    let env = env_of(&p, &objects).await.unwrap();
    assert_eq!(get(&env, "V"), Some("lit"));
    assert_eq!(get(&env, "E"), Some(""));
    assert_eq!(
        objects.reads.load(Ordering::SeqCst),
        0,
        "a reference behind a literal value is not read"
    );
}
