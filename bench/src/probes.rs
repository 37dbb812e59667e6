//! SKELETON: 110 pods with exec readiness and httpGet liveness probes (issue 4).

use anyhow::{Result, bail};

pub async fn run(_args: &[String]) -> Result<()> {
    bail!("not written yet")
}
