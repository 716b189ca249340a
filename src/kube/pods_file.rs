//! `--pods-file`: pod metadata from a JSON file instead of the Kubernetes
//! API, for hosts without a cluster and for tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::Utc;
use serde::Deserialize;

use super::CONFIG_HASH_ANNOTATION;
use crate::podmeta::{MetaSource, PodDirectory, PodMeta, PodMetaHandle};
/// One pod of a `--pods-file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePod {
    uid: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    config_hash: Option<String>,
}

#[derive(Debug, Deserialize)]
struct FilePods {
    pods: Vec<FilePod>,
}

/// `kubectl get pods -o json`: only the metadata is read.
#[derive(Debug, Deserialize)]
struct KubectlList {
    items: Vec<KubectlItem>,
}

#[derive(Debug, Deserialize)]
struct KubectlItem {
    metadata: KubectlMeta,
}

#[derive(Debug, Deserialize)]
struct KubectlMeta {
    uid: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Parse a pods file: either `{"pods": [{"uid", "name", "namespace",
/// "labels": {..}, "config_hash"?}]}` or the output of `kubectl get pods -o json`.
pub fn parse_pods_file(text: &str) -> anyhow::Result<PodDirectory> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    let pods: Vec<PodMeta> = if value.get("items").is_some() {
        let list: KubectlList = serde_json::from_value(value)?;
        list.items
            .into_iter()
            .map(|i| PodMeta {
                config_hash: i.metadata.annotations.get(CONFIG_HASH_ANNOTATION).cloned(),
                uid: i.metadata.uid,
                name: i.metadata.name,
                namespace: i.metadata.namespace,
                labels: i.metadata.labels,
            })
            .collect()
    } else {
        let file: FilePods = serde_json::from_value(value)?;
        file.pods
            .into_iter()
            .map(|p| PodMeta {
                uid: p.uid,
                name: p.name,
                namespace: p.namespace,
                labels: p.labels,
                config_hash: p.config_hash,
            })
            .collect()
    };
    Ok(PodDirectory::from_pods(pods))
}

/// A `--pods-file`, re-read when its modification time changes.
pub struct PodsFile {
    path: PathBuf,
    mtime: Option<SystemTime>,
}

impl PodsFile {
    /// Load `path` into `handle` once; call [`PodsFile::poll`] to follow changes.
    pub fn open(path: &Path, handle: &PodMetaHandle) -> Self {
        handle.update_status(|s| {
            s.source = MetaSource::PodsFile;
            s.endpoint = Some(path.display().to_string());
            s.status = "file";
        });
        let mut f = Self {
            path: path.to_path_buf(),
            mtime: None,
        };
        f.poll(handle);
        f
    }

    /// Re-read the file if it changed; on an error keep the last good data.
    pub fn poll(&mut self, handle: &PodMetaHandle) {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if mtime.is_some() && mtime == self.mtime {
            return;
        }
        let result = std::fs::read_to_string(&self.path)
            .map_err(anyhow::Error::from)
            .and_then(|t| parse_pods_file(&t));
        match result {
            Ok(dir) => {
                self.mtime = mtime;
                log::info!("pods file {}: {} pods", self.path.display(), dir.len());
                handle.update_status(|s| {
                    s.connected = true;
                    s.last_error = None;
                    s.last_sync_at = Some(Utc::now());
                });
                handle.publish(dir);
            }
            Err(e) => {
                let msg = format!("{}: {e:#}", self.path.display());
                let first = handle.status().last_error.as_deref() != Some(msg.as_str());
                if first {
                    log::warn!("pods file: {msg} (keeping the last good data)");
                }
                self.mtime = mtime;
                handle.update_status(|s| {
                    s.connected = false;
                    s.last_error = Some(msg);
                    s.failures += 1;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_parse() {
        let own = parse_pods_file(
            r#"{"pods": [{"uid": "u1", "name": "upf-0", "namespace": "5g",
                "labels": {"nf": "upf"}, "config_hash": "h1"}]}"#,
        )
        .unwrap();
        let kubectl = parse_pods_file(
            r#"{"apiVersion": "v1", "items": [{"metadata": {"uid": "u1", "name": "upf-0",
                "namespace": "5g", "labels": {"nf": "upf"},
                "annotations": {"kubernetes.io/config.hash": "h1"}}, "spec": {}}]}"#,
        )
        .unwrap();
        for dir in [own, kubectl] {
            let p = dir.get("u1").unwrap();
            assert_eq!((p.name.as_str(), p.namespace.as_str()), ("upf-0", "5g"));
            assert_eq!(p.labels.get("nf").map(String::as_str), Some("upf"));
            assert_eq!(dir.get("h1").map(|p| p.uid.as_str()), Some("u1"));
        }
        assert!(parse_pods_file(r#"{"pods": [{"uid": "u1", "nmae": "x"}]}"#).is_err());
    }

    #[test]
    fn a_bad_file_keeps_the_last_good_pods() {
        let path = std::env::temp_dir().join(format!("scx_pilot_pods_{}.json", std::process::id()));
        std::fs::write(&path, r#"{"pods": [{"uid": "u1"}]}"#).unwrap();
        let handle = PodMetaHandle::new();
        let mut file = PodsFile::open(&path, &handle);
        assert_eq!(handle.status().status, "file");
        assert!(handle.status().connected);
        std::fs::write(&path, "{not json").unwrap();
        // The modification time may not tick between two writes.
        file.mtime = None;
        file.poll(&handle);
        let _ = std::fs::remove_file(&path);
        let status = handle.status();
        assert!(!status.connected);
        assert_eq!(status.failures, 1);
        assert!(handle.directory().unwrap().get("u1").is_some());
    }
}
