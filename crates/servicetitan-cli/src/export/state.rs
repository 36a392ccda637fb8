//! The state file: per tenant and stream, the checkpoint (`continueFrom`) to resume from and
//! how many output files the stream has committed. Written whole, atomically (a temporary
//! file in the same directory, fsynced, renamed over the old one, the directory fsynced).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exit::{CliError, CliResult};
use crate::export::output::write_atomically;

/// What the state keeps for one stream of one tenant.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StreamState {
    /// Where the next run resumes (the export's `continueFrom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_from: Option<String>,
    /// Output files committed so far: the next run's file is number `files + 1`, so a run killed
    /// after its file was renamed but before this was saved writes the same name again.
    #[serde(default)]
    pub files: u64,
    /// When this entry was last saved (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_at: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct StateDocument {
    version: u32,
    /// tenant id → stream → state.
    #[serde(default)]
    tenants: BTreeMap<String, BTreeMap<String, StreamState>>,
}

const VERSION: u32 = 1;

/// The state file of a run, loaded at the start and saved after each stream commits.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    document: StateDocument,
}

impl StateFile {
    /// Loads `path`; a missing file is an empty state.
    pub fn load(path: &Path) -> CliResult<StateFile> {
        let document = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice::<StateDocument>(&bytes).map_err(|e| {
                CliError::configuration(format!(
                    "--state {}: not a state file of this command ({e}); move it away to start over",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                StateDocument { version: VERSION, ..Default::default() }
            }
            Err(e) => return Err(CliError::configuration(format!("--state {}: {e}", path.display()))),
        };
        if document.version != VERSION {
            return Err(CliError::configuration(format!(
                "--state {}: version {} of the state file is not known to this command (it writes version {VERSION})",
                path.display(),
                document.version
            )));
        }
        Ok(StateFile { path: path.to_path_buf(), document })
    }

    /// The state of one stream of one tenant (empty if never saved).
    pub fn get(&self, tenant: i64, stream: &str) -> StreamState {
        self.document.tenants.get(&tenant.to_string()).and_then(|s| s.get(stream)).cloned().unwrap_or_default()
    }

    /// Records the new state of one stream and saves the whole file atomically.
    pub fn save(&mut self, tenant: i64, stream: &str, mut state: StreamState) -> CliResult {
        state.saved_at = Some(crate::log::now_rfc3339());
        self.document.tenants.entry(tenant.to_string()).or_default().insert(stream.to_string(), state);
        let mut text = serde_json::to_vec_pretty(&self.document)
            .map_err(|e| CliError::failure(format!("--state {}: {e}", self.path.display())))?;
        text.push(b'\n');
        write_atomically(&self.path, &text)
            .map_err(|e| CliError::failure(format!("--state {}: cannot save: {e}", self.path.display())))
    }
}
