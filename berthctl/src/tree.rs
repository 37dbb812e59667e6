//! `berthctl tree`: every pod with its sandbox (the pause container that
//! holds the namespaces) and its containers, in one view. Not in crictl;
//! it shows how a pod is really put together.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Result;
use cri_client::proto as pb;
use futures_util::future::join_all;
use serde::Serialize;
use serde_json::Value;

use crate::cli::TreeArgs;
use crate::{Ctx, filter, output};

#[derive(Serialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodNode {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub attempt: u32,
    pub state: String,
    pub ip: String,
    pub netns: String,
    pub pause_pid: Option<i64>,
    pub cgroup_parent: String,
    pub log_directory: String,
    pub runtime_handler: String,
    pub containers: Vec<ContainerNode>,
}

#[derive(Serialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContainerNode {
    pub id: String,
    pub name: String,
    pub state: String,
    pub attempt: u32,
    pub exit_code: Option<i32>,
    pub reason: String,
    pub image: String,
    pub log_path: String,
}

pub async fn tree(ctx: &Ctx, a: TreeArgs) -> Result<()> {
    let format = output::OutputFormat::parse_or(&a.out.output, output::OutputFormat::Table)?;
    let namespace = filter::regex("namespace", a.namespace.as_deref())?;
    let nodes = collect(ctx, &namespace).await?;
    let mut out = std::io::stdout().lock();
    match format {
        output::OutputFormat::Table => render(&mut out, &nodes)?,
        other => output::print_value(&mut out, other, &serde_json::json!({ "pods": nodes }))?,
    }
    Ok(())
}

async fn collect(ctx: &Ctx, namespace: &Option<regex::Regex>) -> Result<Vec<PodNode>> {
    let (pods, containers, images) = tokio::try_join!(
        ctx.client
            .list_pod_sandbox(pb::ListPodSandboxRequest::default()),
        ctx.client
            .list_containers(pb::ListContainersRequest::default()),
        ctx.client.list_images(pb::ListImagesRequest::default()),
    )?;
    // Kubelets create containers from image IDs; show a name people know.
    let image_names: std::collections::HashMap<&str, &str> = images
        .images
        .iter()
        .filter_map(|i| Some((i.id.as_str(), i.repo_tags.first()?.as_str())))
        .collect();
    let mut pods = pods.items;
    pods.retain(|p| filter::matches(namespace, &p.metadata.clone().unwrap_or_default().namespace));
    // Status calls run concurrently: one round trip's worth of latency.
    let statuses = join_all(pods.iter().map(|p| {
        ctx.client.pod_sandbox_status(pb::PodSandboxStatusRequest {
            pod_sandbox_id: p.id.clone(),
            verbose: true,
        })
    }))
    .await;
    let wanted: Vec<&pb::Container> = containers
        .containers
        .iter()
        .filter(|c| pods.iter().any(|p| p.id == c.pod_sandbox_id))
        .collect();
    let cstatuses = join_all(wanted.iter().map(|c| {
        ctx.client.container_status(pb::ContainerStatusRequest {
            container_id: c.id.clone(),
            verbose: false,
        })
    }))
    .await;
    let mut by_pod: BTreeMap<&str, Vec<ContainerNode>> = BTreeMap::new();
    for (c, st) in wanted.iter().zip(cstatuses) {
        let st = st.ok().and_then(|s| s.status);
        let meta = c.metadata.clone().unwrap_or_default();
        by_pod
            .entry(c.pod_sandbox_id.as_str())
            .or_default()
            .push(ContainerNode {
                id: c.id.clone(),
                name: meta.name,
                state: container_state(c.state).to_string(),
                attempt: meta.attempt,
                exit_code: st
                    .as_ref()
                    .filter(|s| s.state == pb::ContainerState::ContainerExited as i32)
                    .map(|s| s.exit_code),
                reason: st.as_ref().map(|s| s.reason.clone()).unwrap_or_default(),
                image: {
                    let image = c.image.clone().unwrap_or_default().image;
                    image_names
                        .get(image.as_str())
                        .map_or(image, |n| n.to_string())
                },
                log_path: st.map(|s| s.log_path).unwrap_or_default(),
            });
    }
    let mut nodes = Vec::new();
    for (p, st) in pods.iter().zip(statuses) {
        let meta = p.metadata.clone().unwrap_or_default();
        let mut node = PodNode {
            id: p.id.clone(),
            name: meta.name,
            namespace: meta.namespace,
            uid: meta.uid,
            attempt: meta.attempt,
            state: if p.state == pb::PodSandboxState::SandboxReady as i32 {
                "Ready".into()
            } else {
                "NotReady".into()
            },
            runtime_handler: p.runtime_handler.clone(),
            ..Default::default()
        };
        if let Ok(st) = st {
            fill_from_status(&mut node, &st);
        }
        let mut cs = by_pod.remove(p.id.as_str()).unwrap_or_default();
        cs.sort_by(|a, b| a.name.cmp(&b.name).then(b.attempt.cmp(&a.attempt)));
        node.containers = cs;
        nodes.push(node);
    }
    nodes.sort_by(|a, b| {
        (&a.namespace, &a.name, b.attempt).cmp(&(&b.namespace, &b.name, a.attempt))
    });
    Ok(nodes)
}

/// Pulls the details crictl only shows in `inspectp`'s verbose info.
fn fill_from_status(node: &mut PodNode, st: &pb::PodSandboxStatusResponse) {
    if let Some(net) = st.status.as_ref().and_then(|s| s.network.as_ref()) {
        node.ip = net.ip.clone();
    }
    let Some(info) = st
        .info
        .get("info")
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    else {
        return;
    };
    node.pause_pid = info.get("pid").and_then(Value::as_i64);
    let config = info.get("config");
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    node.log_directory = text(config.and_then(|c| c.get("log_directory")));
    node.cgroup_parent = text(
        config
            .and_then(|c| c.get("linux"))
            .and_then(|l| l.get("cgroup_parent")),
    );
    node.netns = info
        .pointer("/runtimeSpec/linux/namespaces")
        .and_then(Value::as_array)
        .and_then(|ns| {
            ns.iter()
                .find(|n| n.get("type").and_then(Value::as_str) == Some("network"))
        })
        .map(|n| text(n.get("path")))
        .unwrap_or_default();
}

fn container_state(s: i32) -> &'static str {
    match pb::ContainerState::try_from(s) {
        Ok(pb::ContainerState::ContainerCreated) => "Created",
        Ok(pb::ContainerState::ContainerRunning) => "Running",
        Ok(pb::ContainerState::ContainerExited) => "Exited",
        _ => "Unknown",
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// The human view: one block per pod.
pub fn render(out: &mut impl Write, nodes: &[PodNode]) -> std::io::Result<()> {
    if nodes.is_empty() {
        return writeln!(out, "no pod sandboxes");
    }
    for (i, p) in nodes.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(
            out,
            "{}/{}  uid={}  attempt={}  {}",
            p.namespace,
            p.name,
            or_dash(&p.uid),
            p.attempt,
            p.state
        )?;
        writeln!(out, "│ ip:      {}", or_dash(&p.ip))?;
        writeln!(out, "│ netns:   {}", or_dash(&p.netns))?;
        writeln!(out, "│ cgroup:  {}", or_dash(&p.cgroup_parent))?;
        writeln!(out, "│ logs:    {}", or_dash(&p.log_directory))?;
        let pid = p
            .pause_pid
            .filter(|p| *p > 0)
            .map_or("-".to_string(), |p| p.to_string());
        let last = p.containers.is_empty();
        writeln!(
            out,
            "{} sandbox  {}  pause pid {pid}  (holds the pod's namespaces)",
            if last { "└─" } else { "├─" },
            &p.id[..p.id.len().min(13)]
        )?;
        for (j, c) in p.containers.iter().enumerate() {
            let branch = if j + 1 == p.containers.len() {
                "└─"
            } else {
                "├─"
            };
            let state = match c.exit_code {
                Some(code) if c.reason.is_empty() => format!("{}({code})", c.state),
                Some(code) => format!("{}({code}, {})", c.state, c.reason),
                None => c.state.clone(),
            };
            writeln!(
                out,
                "{branch} {}  {}  {}  attempt {}  {}",
                c.name,
                &c.id[..c.id.len().min(13)],
                state,
                c.attempt,
                c.image
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_pod_with_containers() {
        let nodes = vec![PodNode {
            id: "59d578ca4f2110b6460030ebbbcc374b".into(),
            name: "web".into(),
            namespace: "default".into(),
            uid: "u1".into(),
            state: "Ready".into(),
            ip: "10.88.0.5".into(),
            netns: "/var/run/netns/cni-1".into(),
            pause_pid: Some(42),
            cgroup_parent: String::new(),
            log_directory: "/var/log/pods/default_web_u1".into(),
            containers: vec![
                ContainerNode {
                    id: "7929cade07a754cb".into(),
                    name: "app".into(),
                    state: "Running".into(),
                    image: "localhost:5000/busybox:latest".into(),
                    ..Default::default()
                },
                ContainerNode {
                    id: "aaaabbbbccccdddd".into(),
                    name: "init".into(),
                    state: "Exited".into(),
                    exit_code: Some(0),
                    reason: "Completed".into(),
                    image: "localhost:5000/busybox:latest".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }];
        let mut buf = Vec::new();
        render(&mut buf, &nodes).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(
            text,
            "default/web  uid=u1  attempt=0  Ready\n\
             │ ip:      10.88.0.5\n\
             │ netns:   /var/run/netns/cni-1\n\
             │ cgroup:  -\n\
             │ logs:    /var/log/pods/default_web_u1\n\
             ├─ sandbox  59d578ca4f211  pause pid 42  (holds the pod's namespaces)\n\
             ├─ app  7929cade07a75  Running  attempt 0  localhost:5000/busybox:latest\n\
             └─ init  aaaabbbbccccd  Exited(0, Completed)  attempt 0  localhost:5000/busybox:latest\n"
        );
    }

    #[test]
    fn fills_details_from_verbose_info() {
        let info = serde_json::json!({
            "pid": 32024,
            "config": {"log_directory": "/var/log/pods/x", "linux": {"cgroup_parent": "/kubepods/podx"}},
            "runtimeSpec": {"linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/var/run/netns/cni-9"}]}}
        });
        let st = pb::PodSandboxStatusResponse {
            status: Some(pb::PodSandboxStatus {
                network: Some(pb::PodSandboxNetworkStatus {
                    ip: "10.88.0.9".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            info: [("info".to_string(), info.to_string())].into(),
            ..Default::default()
        };
        let mut node = PodNode::default();
        fill_from_status(&mut node, &st);
        assert_eq!(node.ip, "10.88.0.9");
        assert_eq!(node.pause_pid, Some(32024));
        assert_eq!(node.netns, "/var/run/netns/cni-9");
        assert_eq!(node.cgroup_parent, "/kubepods/podx");
        assert_eq!(node.log_directory, "/var/log/pods/x");
    }
}
