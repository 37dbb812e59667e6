//! crictl's configuration file (`/etc/crictl.yaml`), read and written with
//! the same keys, so an existing crictl set-up works unchanged.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub const DEFAULT_CONFIG: &str = "/etc/crictl.yaml";

/// The keys crictl understands. Unknown keys are kept out: crictl ignores
/// them too, but `config --set` with an unknown key is an error here.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", default)]
pub struct CrictlConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_endpoint: Option<String>,
    /// Seconds, as crictl.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debug: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_image_on_create: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_pull_on_run: Option<bool>,
}

pub const KEYS: &[&str] = &[
    "runtime-endpoint",
    "image-endpoint",
    "timeout",
    "debug",
    "pull-image-on-create",
    "disable-pull-on-run",
];

/// Refuse to parse absurd config files rather than read them into memory.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

impl CrictlConfig {
    /// Loads `path`. A missing file is an empty config, as with crictl.
    pub fn load(path: &Path) -> Result<Self> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        if meta.len() > MAX_CONFIG_BYTES {
            bail!(
                "{}: file is {} bytes, larger than the 1 MiB limit",
                path.display(),
                meta.len()
            );
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("{}: invalid crictl config", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        Ok(serde_saphyr::from_str(text)?)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_saphyr::to_string(self)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // Write-then-rename so a crash never leaves a half-written config.
        let tmp = PathBuf::from(format!("{}.tmp", path.display()));
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    pub fn get(&self, key: &str) -> Result<String> {
        let v = match key {
            "runtime-endpoint" => self.runtime_endpoint.clone(),
            "image-endpoint" => self.image_endpoint.clone(),
            "timeout" => self.timeout.map(|t| t.to_string()),
            "debug" => self.debug.map(|b| b.to_string()),
            "pull-image-on-create" => self.pull_image_on_create.map(|b| b.to_string()),
            "disable-pull-on-run" => self.disable_pull_on_run.map(|b| b.to_string()),
            _ => bail!(
                "unknown config key {key:?}; known keys: {}",
                KEYS.join(", ")
            ),
        };
        Ok(v.unwrap_or_default())
    }

    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let boolean = |v: &str| -> Result<bool> {
            v.parse()
                .with_context(|| format!("config key {key:?}: {v:?} is not true or false"))
        };
        match key {
            "runtime-endpoint" => self.runtime_endpoint = Some(value.to_string()),
            "image-endpoint" => self.image_endpoint = Some(value.to_string()),
            "timeout" => {
                self.timeout = Some(value.parse().with_context(|| {
                    format!("config key \"timeout\": {value:?} is not a number of seconds")
                })?)
            }
            "debug" => self.debug = Some(boolean(value)?),
            "pull-image-on-create" => self.pull_image_on_create = Some(boolean(value)?),
            "disable-pull-on-run" => self.disable_pull_on_run = Some(boolean(value)?),
            _ => bail!(
                "unknown config key {key:?}; known keys: {}",
                KEYS.join(", ")
            ),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_crictl_yaml() {
        let c = CrictlConfig::parse(
            "runtime-endpoint: unix:///run/containerd/containerd.sock\nimage-endpoint: unix:///run/containerd/containerd.sock\ntimeout: 10\ndebug: true\n",
        )
        .unwrap();
        assert_eq!(
            c.runtime_endpoint.as_deref(),
            Some("unix:///run/containerd/containerd.sock")
        );
        assert_eq!(c.timeout, Some(10));
        assert_eq!(c.debug, Some(true));
        assert_eq!(CrictlConfig::parse("").unwrap(), CrictlConfig::default());
    }

    #[test]
    fn rejects_bad_values() {
        let e = CrictlConfig::parse("timeout: soon\n").unwrap_err();
        assert!(format!("{e:#}").contains("timeout"), "{e:#}");
        let mut c = CrictlConfig::default();
        let e = c.set("colour", "blue").unwrap_err().to_string();
        assert!(e.contains("unknown config key \"colour\""), "{e}");
        let e = c.set("debug", "yes").unwrap_err().to_string();
        assert!(e.contains("not true or false"), "{e}");
    }

    #[test]
    fn set_save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/crictl.yaml");
        let mut c = CrictlConfig::load(&path).unwrap();
        c.set("runtime-endpoint", "unix:///run/berth-test/containerd.sock")
            .unwrap();
        c.set("timeout", "5").unwrap();
        c.save(&path).unwrap();
        let back = CrictlConfig::load(&path).unwrap();
        assert_eq!(
            back.get("runtime-endpoint").unwrap(),
            "unix:///run/berth-test/containerd.sock"
        );
        assert_eq!(back.get("timeout").unwrap(), "5");
        assert_eq!(back.get("debug").unwrap(), "");
    }
}
