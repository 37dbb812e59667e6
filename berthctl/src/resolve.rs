//! Turning what a user typed (a unique ID prefix) into a full ID.
//!
//! crictl leaves this to the runtime, whose error for an ambiguous prefix
//! doesn't say which objects matched. Berth resolves prefixes itself and
//! lists the candidates.

use anyhow::{Result, bail};
use cri_client::RuntimeClient;
use cri_client::proto as pb;

/// Picks the one ID among `ids` that `prefix` names. An exact match wins
/// over longer IDs sharing the prefix.
pub fn unique_prefix<'a>(
    kind: &str,
    prefix: &str,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<String> {
    if prefix.is_empty() {
        bail!("empty {kind} ID");
    }
    let matches: Vec<&str> = ids
        .into_iter()
        .filter(|id| id.starts_with(prefix))
        .collect();
    if let Some(exact) = matches.iter().find(|id| **id == prefix) {
        return Ok(exact.to_string());
    }
    match matches.as_slice() {
        [] => bail!("{kind} {prefix:?} not found"),
        [one] => Ok(one.to_string()),
        many => {
            let mut list: Vec<&str> = many.to_vec();
            list.sort_unstable();
            bail!(
                "{kind} ID prefix {prefix:?} is ambiguous; it matches:\n  {}",
                list.join("\n  ")
            )
        }
    }
}

/// A full-length ID needs no lookup.
fn is_full_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

pub async fn container_ids(client: &RuntimeClient, prefixes: &[String]) -> Result<Vec<String>> {
    if prefixes.iter().all(|p| is_full_id(p)) {
        return Ok(prefixes.to_vec());
    }
    let all = client
        .list_containers(pb::ListContainersRequest::default())
        .await?;
    prefixes
        .iter()
        .map(|p| unique_prefix("container", p, all.containers.iter().map(|c| c.id.as_str())))
        .collect()
}

pub async fn container_id(client: &RuntimeClient, prefix: &str) -> Result<String> {
    let mut ids = container_ids(client, &[prefix.to_string()]).await?;
    ids.pop()
        .ok_or_else(|| anyhow::anyhow!("container {prefix:?} not found"))
}

pub async fn pod_ids(client: &RuntimeClient, prefixes: &[String]) -> Result<Vec<String>> {
    if prefixes.iter().all(|p| is_full_id(p)) {
        return Ok(prefixes.to_vec());
    }
    let all = client
        .list_pod_sandbox(pb::ListPodSandboxRequest::default())
        .await?;
    prefixes
        .iter()
        .map(|p| unique_prefix("pod sandbox", p, all.items.iter().map(|s| s.id.as_str())))
        .collect()
}

pub async fn pod_id(client: &RuntimeClient, prefix: &str) -> Result<String> {
    let mut ids = pod_ids(client, &[prefix.to_string()]).await?;
    ids.pop()
        .ok_or_else(|| anyhow::anyhow!("pod sandbox {prefix:?} not found"))
}

/// Resolves an image given by reference (`busybox`, `localhost:5000/x:tag`),
/// by full or prefix ID (`sha256:…` or bare hex). Returns the image ID.
pub async fn image_id(client: &RuntimeClient, given: &str) -> Result<String> {
    let status = client
        .image_status(pb::ImageStatusRequest {
            image: Some(pb::ImageSpec {
                image: given.to_string(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await?;
    if let Some(img) = status.image {
        return Ok(img.id);
    }
    // Not a reference the runtime knows: try it as an ID prefix.
    let all = client.list_images(pb::ListImagesRequest::default()).await?;
    let bare = given.strip_prefix("sha256:").unwrap_or(given);
    let ids: Vec<&str> = all.images.iter().map(|i| i.id.as_str()).collect();
    let stripped: Vec<&str> = ids
        .iter()
        .map(|id| id.strip_prefix("sha256:").unwrap_or(id))
        .collect();
    match unique_prefix("image", bare, stripped.iter().copied()) {
        Ok(found) => Ok(ids
            .iter()
            .find(|id| id.ends_with(found.as_str()))
            .map_or(found.clone(), |s| s.to_string())),
        Err(e) if e.to_string().ends_with("not found") => bail!("image {given:?} not found"),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: &[&str] = &["abc123", "abd456", "abc123ff", "fff"];

    #[test]
    fn unique_prefix_finds_one() {
        assert_eq!(
            unique_prefix("container", "abd", IDS.iter().copied()).unwrap(),
            "abd456"
        );
        assert_eq!(
            unique_prefix("container", "f", IDS.iter().copied()).unwrap(),
            "fff"
        );
    }

    #[test]
    fn exact_match_beats_longer_ids() {
        assert_eq!(
            unique_prefix("container", "abc123", IDS.iter().copied()).unwrap(),
            "abc123"
        );
    }

    #[test]
    fn ambiguous_prefix_lists_matches() {
        let e = unique_prefix("container", "ab", IDS.iter().copied())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "container ID prefix \"ab\" is ambiguous; it matches:\n  abc123\n  abc123ff\n  abd456"
        );
    }

    #[test]
    fn unknown_and_empty() {
        let e = unique_prefix("pod sandbox", "zz", IDS.iter().copied())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "pod sandbox \"zz\" not found");
        assert!(unique_prefix("pod sandbox", "", IDS.iter().copied()).is_err());
    }
}
