//! The messages of the API validation (`berth-api`) as a manifest's author sees them:
//! prefixed with the file, after the static pod's defaulting and naming.

use crate::error::ManifestErrorKind;
use crate::manifest::load_manifest;
use std::path::Path;

/// Loads `web.yaml` with the given pod spec body (YAML, indented under `spec:`) and
/// returns the full error message, or "ok".
fn check(metadata: &str, spec: &str) -> String {
    let yaml = format!("apiVersion: v1\nkind: Pod\nmetadata:\n{metadata}\nspec:\n{spec}\n");
    match load_manifest(Path::new("web.yaml"), yaml.as_bytes(), "node1") {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

const META: &str = "  name: web";
const C: &str = "  containers:\n  - name: c\n    image: nginx:1.25";

fn spec_check(spec: &str) -> String {
    check(META, spec)
}

/// The first container with extra fields appended.
fn container_check(extra: &str) -> String {
    spec_check(&format!("{C}\n{extra}"))
}

#[test]
fn valid_pod_passes() {
    let spec = format!(
        "{C}\n    ports: [{{name: http, containerPort: 80, hostPort: 8080, protocol: UDP}}]\n    env: [{{name: 'A.b-c', value: x}}]\n    resources: {{requests: {{cpu: 100m, memory: 64Mi}}, limits: {{cpu: '1', memory: 128Mi}}}}\n    volumeMounts: [{{name: data, mountPath: /data}}]\n    livenessProbe: {{tcpSocket: {{port: 80}}}}\n    lifecycle: {{preStop: {{sleep: {{seconds: 1}}}}}}\n  initContainers:\n  - {{name: side, image: busybox, restartPolicy: Always}}\n  volumes:\n  - {{name: data, hostPath: {{path: /srv, type: DirectoryOrCreate}}}}\n  - {{name: scratch}}"
    );
    assert_eq!(spec_check(&spec), "ok");
}

#[test]
fn metadata_rules() {
    assert_eq!(
        check("  labels: {}", C),
        "web.yaml: metadata.name: required value"
    );
    assert_eq!(
        check("  name: Web_1", C),
        "web.yaml: metadata.name: invalid value \"Web_1-node1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
    );
    let long = "a".repeat(250);
    assert_eq!(
        check(&format!("  name: {long}"), C),
        "web.yaml: metadata.name: invalid value \"".to_string()
            + &long
            + "-node1\": must be no more than 253 characters"
    );
    assert_eq!(
        check("  name: web\n  namespace: kube.system", C),
        "web.yaml: metadata.namespace: invalid value \"kube.system\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
    );
}

#[test]
fn container_presence_and_names() {
    assert_eq!(
        spec_check("  containers: []"),
        "web.yaml: spec.containers: at least one container is required"
    );
    assert_eq!(
        spec_check("  containers:\n  - {name: c, image: a}\n  - {name: c, image: b}"),
        "web.yaml: spec.containers[1].name: duplicate name \"c\""
    );
    assert_eq!(
        spec_check("  initContainers: [{name: c, image: a}]\n  containers: [{name: c, image: b}]"),
        "web.yaml: spec.containers[0].name: duplicate name \"c\""
    );
    assert_eq!(
        spec_check("  containers: [{name: C1, image: a}]"),
        "web.yaml: spec.containers[0].name: invalid value \"C1\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
    );
}

#[test]
fn image_rules() {
    assert_eq!(
        spec_check("  containers: [{name: c}]"),
        "web.yaml: spec.containers[0].image: required value"
    );
    assert_eq!(
        spec_check("  containers: [{name: c, image: 'Nginx:1'}]"),
        "web.yaml: spec.containers[0].image: invalid image reference \"Nginx:1\": path component \"Nginx\" must be lowercase letters and digits, separated by '.', '_', '__' or '-'"
    );
    assert_eq!(
        spec_check("  containers: [{name: c, image: 'nginx:-bad'}]"),
        "web.yaml: spec.containers[0].image: invalid image reference \"nginx:-bad\": tag \"-bad\" must be 1-128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'"
    );
    assert_eq!(
        spec_check("  containers: [{name: c, image: 'nginx@sha256:xyz'}]"),
        "web.yaml: spec.containers[0].image: invalid image reference \"nginx@sha256:xyz\": digest \"sha256:xyz\" must have 64 lowercase hexadecimal characters after the algorithm"
    );
}

#[test]
fn policy_enums() {
    assert_eq!(
        spec_check(&format!("  restartPolicy: Sometimes\n{C}")),
        "web.yaml: spec.restartPolicy: unsupported value \"Sometimes\": must be one of \"Always\", \"OnFailure\", \"Never\""
    );
    assert_eq!(
        spec_check(&format!(
            "  initContainers: [{{name: i, image: a, restartPolicy: Never}}]\n{C}"
        )),
        "web.yaml: spec.initContainers[0].restartPolicy: unsupported value \"Never\": only \"Always\" is allowed on an init container"
    );
    assert_eq!(
        container_check("    restartPolicy: Maybe"),
        "web.yaml: spec.containers[0].restartPolicy: unsupported value \"Maybe\": must be one of \"Always\", \"OnFailure\", \"Never\""
    );
    assert_eq!(
        container_check("    imagePullPolicy: Sometimes"),
        "web.yaml: spec.containers[0].imagePullPolicy: unsupported value \"Sometimes\": must be one of \"Always\", \"IfNotPresent\", \"Never\""
    );
    assert_eq!(
        container_check("    terminationMessagePolicy: Stdout"),
        "web.yaml: spec.containers[0].terminationMessagePolicy: unsupported value \"Stdout\": must be one of \"File\", \"FallbackToLogsOnError\""
    );
}

#[test]
fn port_rules() {
    assert_eq!(
        container_check("    ports: [{containerPort: 0}]"),
        "web.yaml: spec.containers[0].ports[0].containerPort: invalid value 0: must be between 1 and 65535, inclusive"
    );
    assert_eq!(
        container_check("    ports: [{containerPort: 80, hostPort: 70000}]"),
        "web.yaml: spec.containers[0].ports[0].hostPort: invalid value 70000: must be between 1 and 65535, inclusive"
    );
    assert_eq!(
        container_check("    ports: [{containerPort: 80, protocol: ICMP}]"),
        "web.yaml: spec.containers[0].ports[0].protocol: unsupported value \"ICMP\": must be one of \"TCP\", \"UDP\", \"SCTP\""
    );
    assert_eq!(
        container_check("    ports: [{containerPort: 80, name: '8080'}]"),
        "web.yaml: spec.containers[0].ports[0].name: invalid value \"8080\": must contain at least one letter"
    );
    assert_eq!(
        container_check("    ports: [{containerPort: 80, name: a-very-long-port-name}]"),
        "web.yaml: spec.containers[0].ports[0].name: invalid value \"a-very-long-port-name\": must be no more than 15 characters"
    );
    assert_eq!(
        container_check(
            "    ports: [{containerPort: 80, name: http}, {containerPort: 81, name: http}]"
        ),
        "web.yaml: spec.containers[0].ports[1].name: duplicate name \"http\""
    );
}

#[test]
fn resource_rules() {
    assert_eq!(
        container_check("    resources: {limits: {memory: 12XB}}"),
        "web.yaml: spec.containers[0].resources.limits[memory]: quantity \"12XB\" has an unknown suffix \"XB\""
    );
    assert_eq!(
        container_check("    resources: {requests: {cpu: '2'}, limits: {cpu: 1500m}}"),
        "web.yaml: spec.containers[0].resources.requests[cpu]: invalid value \"2\": must be less than or equal to cpu limit of 1.5"
    );
    assert_eq!(
        container_check("    resources: {requests: {cpu: '-1'}}"),
        "web.yaml: spec.containers[0].resources.requests[cpu]: invalid value \"-1\": must be greater than or equal to 0"
    );
    // 1Gi is more than 1G: binary and decimal suffixes compare by value.
    assert_eq!(
        container_check("    resources: {requests: {memory: 1Gi}, limits: {memory: 1G}}"),
        "web.yaml: spec.containers[0].resources.requests[memory]: invalid value \"1073741824\": must be less than or equal to memory limit of 1000000000"
    );
}

#[test]
fn volume_rules() {
    assert_eq!(
        container_check("    volumeMounts: [{name: missing, mountPath: /x}]"),
        "web.yaml: spec.containers[0].volumeMounts[0].name: not found: no volume named \"missing\" in spec.volumes"
    );
    assert_eq!(
        spec_check(&format!(
            "{C}\n    volumeMounts: [{{name: v, mountPath: rel/path}}]\n  volumes: [{{name: v}}]"
        )),
        "web.yaml: spec.containers[0].volumeMounts[0].mountPath: invalid value \"rel/path\": must be an absolute path"
    );
    assert_eq!(
        spec_check(&format!("{C}\n  volumes: [{{name: v}}, {{name: v}}]")),
        "web.yaml: spec.volumes[1].name: duplicate name \"v\""
    );
    assert_eq!(
        spec_check(&format!("{C}\n  volumes: [{{name: V_1}}]")),
        "web.yaml: spec.volumes[0].name: invalid value \"V_1\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
    );
    assert_eq!(
        spec_check(&format!(
            "{C}\n  volumes: [{{name: v, emptyDir: {{}}, hostPath: {{path: /x}}}}]"
        )),
        "web.yaml: spec.volumes[0]: may not specify more than 1 volume type (found 2)"
    );
    assert_eq!(
        spec_check(&format!(
            "{C}\n  volumes: [{{name: v, hostPath: {{path: x, type: Folder}}}}]"
        )),
        "web.yaml: spec.volumes[0].hostPath.path: invalid value \"x\": must be an absolute path; spec.volumes[0].hostPath.type: unsupported value \"Folder\": must be one of \"\", \"DirectoryOrCreate\", \"Directory\", \"FileOrCreate\", \"File\", \"Socket\", \"CharDevice\", \"BlockDevice\""
    );
}

#[test]
fn env_rules() {
    assert_eq!(
        container_check("    env: [{name: 'A=B', value: x}]"),
        "web.yaml: spec.containers[0].env[0].name: invalid value \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='"
    );
    assert_eq!(
        container_check("    env: [{name: '', value: x}]"),
        "web.yaml: spec.containers[0].env[0].name: required value"
    );
}

#[test]
fn env_may_reference_config_maps_secrets_and_resources() {
    // Static pods read ConfigMaps and Secrets from the manifest directory.
    assert_eq!(
        container_check(
            "    envFrom: [{configMapRef: {name: cfg}, prefix: CFG_}, {secretRef: {name: creds, optional: true}}]\n    env:\n    - {name: A, valueFrom: {configMapKeyRef: {name: cfg, key: a}}}\n    - {name: B, valueFrom: {secretKeyRef: {name: creds, key: b, optional: true}}}\n    - {name: C, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}\n    - {name: D, valueFrom: {fieldRef: {fieldPath: status.podIPs}}}"
        ),
        "ok"
    );
}

#[test]
fn handler_rules() {
    assert_eq!(
        container_check("    readinessProbe: {periodSeconds: 3}"),
        "web.yaml: spec.containers[0].readinessProbe: must specify a handler type"
    );
    assert_eq!(
        container_check("    livenessProbe: {exec: {command: [true]}, tcpSocket: {port: 80}}"),
        "web.yaml: spec.containers[0].livenessProbe: may not specify more than 1 handler type"
    );
    assert_eq!(
        container_check("    lifecycle: {postStart: {}}"),
        "web.yaml: spec.containers[0].lifecycle.postStart: must specify a handler type"
    );
}

#[test]
fn all_errors_of_a_file_are_collected() {
    let err = load_manifest(
        Path::new("web.yaml"),
        b"apiVersion: v1\nkind: Pod\nmetadata: {namespace: Bad}\nspec:\n  containers: [{name: c}, {name: c, image: x}]\n",
        "node1",
    )
    .unwrap_err();
    let ManifestErrorKind::Invalid(fields) = &err.kind else {
        panic!("unexpected error {err}");
    };
    let paths: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(
        paths,
        [
            "metadata.name",
            "metadata.namespace",
            "spec.containers[0].image",
            "spec.containers[1].name"
        ]
    );
}
