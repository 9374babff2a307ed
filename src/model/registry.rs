//! A worker as the orchestrator's registry lists it (`registry` reads and checks the file).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct RegistryEntry {
    pub pid: u32,
    pub name: Option<String>,
    pub model: Option<String>,
    pub spawned_at: Option<DateTime<Utc>>,
    pub port: Option<u16>,
    /// Every other field of the entry, unchanged.
    #[serde(skip_serializing_if = "Map::is_empty", default)]
    pub extra: Map<String, Value>,
}

impl RegistryEntry {
    /// A path the worker's entry names in an extra field (`heartbeat`, `faulthandler`).
    pub fn extra_path(&self, key: &str) -> Option<std::path::PathBuf> {
        self.extra.get(key)?.as_str().map(std::path::PathBuf::from)
    }
}
