//! The kubelet's Summary API (`stats/v1alpha1`, served at `/stats/summary`),
//! field for field as `k8s.io/kubelet/pkg/apis/stats/v1alpha1` marshals it:
//! optional fields are omitted when unknown, times are RFC 3339 seconds.

use serde::{Serialize, Serializer};

/// `metav1.Time`: RFC 3339 in UTC with whole seconds, as Go marshals it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time {
    /// Nanoseconds since the Unix epoch.
    pub unix_nanos: i64,
}

impl Time {
    pub fn from_unix_nanos(unix_nanos: i64) -> Time {
        Time { unix_nanos }
    }

    pub fn now() -> Time {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Time {
            unix_nanos: i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        }
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let secs = self.unix_nanos.div_euclid(1_000_000_000);
        match jiff::Timestamp::from_second(secs) {
            Ok(ts) => s.collect_str(&ts),
            // Out of jiff's range: Go would print something odd too; the
            // zero time keeps the document parseable.
            Err(_) => s.serialize_str("1970-01-01T00:00:00Z"),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    pub node: NodeStats,
    pub pods: Vec<PodStats>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    pub node_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system_containers: Vec<ContainerStats>,
    pub start_time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rlimit: Option<RlimitStats>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct RlimitStats {
    pub time: Time,
    #[serde(rename = "maxpid", skip_serializing_if = "Option::is_none")]
    pub max_pid: Option<i64>,
    #[serde(rename = "curproc", skip_serializing_if = "Option::is_none")]
    pub num_of_running_processes: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeStats {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_fs: Option<FsStats>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodReference,
    pub start_time: Time,
    pub containers: Vec<ContainerStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(rename = "volume", skip_serializing_if = "Vec::is_empty")]
    pub volume_stats: Vec<VolumeStats>,
    #[serde(rename = "ephemeral-storage", skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<FsStats>,
    #[serde(rename = "process_stats", skip_serializing_if = "Option::is_none")]
    pub process_stats: Option<ProcessStats>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PodReference {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ProcessStats {
    #[serde(rename = "process_count", skip_serializing_if = "Option::is_none")]
    pub process_count: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    pub start_time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<FsStats>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_core_nano_seconds: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
    #[serde(rename = "rssBytes", skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_faults: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major_page_faults: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FsStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_free: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_used: Option<u64>,
}

/// A pod volume's usage; berth doesn't measure volumes yet, so `volume` is
/// always omitted, but the type keeps the shape documented.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeStats {
    #[serde(flatten)]
    pub fs: FsStats,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// The summary with only CPU and memory: node name, start time and system
/// containers' too; pods with their reference, start time and containers'
/// names and start times (Go's `only_cpu_and_memory=true`).
pub fn cpu_and_memory_only(s: &Summary) -> Summary {
    let container = |c: &ContainerStats| ContainerStats {
        name: c.name.clone(),
        start_time: c.start_time,
        cpu: c.cpu.clone(),
        memory: c.memory.clone(),
        ..Default::default()
    };
    Summary {
        node: NodeStats {
            node_name: s.node.node_name.clone(),
            system_containers: s.node.system_containers.iter().map(container).collect(),
            start_time: s.node.start_time,
            cpu: s.node.cpu.clone(),
            memory: s.node.memory.clone(),
            ..Default::default()
        },
        pods: s
            .pods
            .iter()
            .map(|p| PodStats {
                pod_ref: p.pod_ref.clone(),
                start_time: p.start_time,
                containers: p.containers.iter().map(container).collect(),
                cpu: p.cpu.clone(),
                memory: p.memory.clone(),
                ..Default::default()
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        k.sort_unstable();
        k
    }

    fn full_fs() -> FsStats {
        FsStats {
            time: Time::from_unix_nanos(1),
            available_bytes: Some(1),
            capacity_bytes: Some(2),
            used_bytes: Some(3),
            inodes_free: Some(4),
            inodes: Some(5),
            inodes_used: Some(6),
        }
    }

    #[test]
    fn json_field_names_are_the_go_kubelets() {
        let cpu = CpuStats {
            time: Time::from_unix_nanos(1_700_000_000_999_000_000),
            usage_nano_cores: Some(1),
            usage_core_nano_seconds: Some(2),
        };
        let mem = MemoryStats {
            time: Time::default(),
            available_bytes: Some(1),
            usage_bytes: Some(2),
            working_set_bytes: Some(3),
            rss_bytes: Some(4),
            page_faults: Some(5),
            major_page_faults: Some(6),
        };
        let s = Summary {
            node: NodeStats {
                node_name: "n".into(),
                system_containers: vec![],
                start_time: Time::default(),
                cpu: Some(cpu.clone()),
                memory: Some(mem.clone()),
                fs: Some(full_fs()),
                runtime: Some(RuntimeStats {
                    image_fs: Some(full_fs()),
                }),
                rlimit: Some(RlimitStats {
                    time: Time::default(),
                    max_pid: Some(4194304),
                    num_of_running_processes: Some(100),
                }),
            },
            pods: vec![PodStats {
                pod_ref: PodReference {
                    name: "p".into(),
                    namespace: "default".into(),
                    uid: "u".into(),
                },
                start_time: Time::default(),
                containers: vec![ContainerStats {
                    name: "c".into(),
                    start_time: Time::default(),
                    cpu: Some(cpu.clone()),
                    memory: Some(mem.clone()),
                    rootfs: Some(full_fs()),
                    logs: Some(full_fs()),
                }],
                cpu: Some(cpu),
                memory: Some(mem),
                volume_stats: vec![],
                ephemeral_storage: Some(full_fs()),
                process_stats: Some(ProcessStats {
                    process_count: Some(2),
                }),
            }],
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(keys(&v), ["node", "pods"]);
        let node = &v["node"];
        assert_eq!(
            keys(node),
            [
                "cpu",
                "fs",
                "memory",
                "nodeName",
                "rlimit",
                "runtime",
                "startTime"
            ]
        );
        assert_eq!(
            keys(&node["cpu"]),
            ["time", "usageCoreNanoSeconds", "usageNanoCores"]
        );
        assert_eq!(
            keys(&node["memory"]),
            [
                "availableBytes",
                "majorPageFaults",
                "pageFaults",
                "rssBytes",
                "time",
                "usageBytes",
                "workingSetBytes"
            ]
        );
        let fs_keys = [
            "availableBytes",
            "capacityBytes",
            "inodes",
            "inodesFree",
            "inodesUsed",
            "time",
            "usedBytes",
        ];
        assert_eq!(keys(&node["fs"]), fs_keys);
        assert_eq!(keys(&node["runtime"]), ["imageFs"]);
        assert_eq!(keys(&node["runtime"]["imageFs"]), fs_keys);
        assert_eq!(keys(&node["rlimit"]), ["curproc", "maxpid", "time"]);
        let pod = &v["pods"][0];
        assert_eq!(
            keys(pod),
            [
                "containers",
                "cpu",
                "ephemeral-storage",
                "memory",
                "podRef",
                "process_stats",
                "startTime"
            ]
        );
        assert_eq!(keys(&pod["podRef"]), ["name", "namespace", "uid"]);
        assert_eq!(keys(&pod["process_stats"]), ["process_count"]);
        assert_eq!(keys(&pod["ephemeral-storage"]), fs_keys);
        let c = &pod["containers"][0];
        assert_eq!(
            keys(c),
            ["cpu", "logs", "memory", "name", "rootfs", "startTime"]
        );
        // metav1.Time: whole seconds, UTC.
        assert_eq!(node["cpu"]["time"], "2023-11-14T22:13:20Z");
        assert_eq!(node["startTime"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn unknown_values_are_omitted_and_containers_is_always_present() {
        let p = PodStats::default();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(keys(&v), ["containers", "podRef", "startTime"]);
        assert_eq!(v["containers"], serde_json::json!([]));
        let v = serde_json::to_value(CpuStats::default()).unwrap();
        assert_eq!(keys(&v), ["time"]);
        let v = serde_json::to_value(Summary::default()).unwrap();
        assert_eq!(v["pods"], serde_json::json!([]));
    }
}
