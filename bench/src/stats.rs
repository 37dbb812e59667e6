//! SKELETON: stats collection for 110 pods (issue 5).

use anyhow::{Result, bail};

pub async fn run(_args: &[String]) -> Result<()> {
    bail!("not written yet")
}
