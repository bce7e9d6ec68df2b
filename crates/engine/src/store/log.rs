//! The state log (`.studymake/state.log`): an append-only file of bincode frames, one per record,
//! failure or forgotten target, replayed once when the store opens. Each frame is
//! `[len u32][first 4 bytes of blake3(payload)][payload]`; replay stops at the first torn frame.
//! A record's room is allocated before the output is put in place and filled after, so a full
//! disk fails the build before anything is published; the log is compacted (rewritten
//! atomically) when it holds far more frames than targets.

use super::fs::write_atomic;
use super::{Failure, Record, Store, STATE_SCHEMA};
use crate::error::{Error, Result};
use crate::key::Digest;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// One frame of the state log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum Entry {
    Built {
        target: String,
        record: Record,
    },
    Failed {
        target: String,
        key: Digest,
        message: String,
    },
    Forget {
        target: String,
    },
}

/// Room allocated at the end of the state log for one frame (see [`Store::reserve`]).
pub(super) struct Reserved {
    offset: u64,
    bytes: Vec<u8>,
    entry: Entry,
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

fn decode_current(payload: &[u8]) -> Option<Entry> {
    bincode::serde::decode_from_slice::<Entry, _>(payload, bincode_config())
        .ok()
        .map(|(e, _)| e)
}

/// The intact frames at the start of `bytes`, each with its size, and whether a torn frame (or
/// one `decode` refuses) ends them early.
fn frames(bytes: &[u8], decode: fn(&[u8]) -> Option<Entry>) -> (Vec<(Entry, u64)>, bool) {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        if pos + 8 > bytes.len() {
            return (out, true);
        }
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap_or_default()) as usize;
        let sum = &bytes[pos + 4..pos + 8];
        let Some(payload) = bytes.get(pos + 8..pos + 8 + len) else {
            return (out, true);
        };
        if &blake3::hash(payload).as_bytes()[..4] != sum {
            return (out, true);
        }
        let Some(entry) = decode(payload) else {
            return (out, true);
        };
        out.push((entry, 8 + len as u64));
        pos += 8 + len;
    }
    (out, false)
}

/// State schema 1 (key material without bindings), read once and upgraded: its records keep
/// their old keys, so each target is explained as "an older key schema" and rebuilt or restored.
mod v1 {
    use super::super::{FileRecord, Record};
    use super::{bincode_config, Entry};
    use crate::key::{Digest, KeyMaterial};
    use crate::params::Params;
    use crate::recipe::Recipe;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    pub const HEADER: &str = "studymake state v1\n";

    #[derive(Deserialize)]
    struct Material {
        recipe: Recipe,
        output: String,
        params: Params,
        inputs: BTreeMap<String, Digest>,
    }

    #[derive(Deserialize)]
    struct OldRecord {
        key: Digest,
        material: Material,
        output: Digest,
        files: Vec<FileRecord>,
    }

    #[derive(Deserialize)]
    enum OldEntry {
        Built {
            target: String,
            record: OldRecord,
        },
        Failed {
            target: String,
            key: Digest,
            message: String,
        },
        Forget {
            target: String,
        },
    }

    pub fn decode(payload: &[u8]) -> Option<Entry> {
        let (e, _) =
            bincode::serde::decode_from_slice::<OldEntry, _>(payload, bincode_config()).ok()?;
        Some(match e {
            OldEntry::Built { target, record: r } => Entry::Built {
                target,
                record: Record {
                    key: r.key,
                    material: KeyMaterial {
                        recipe: r.material.recipe,
                        output: r.material.output,
                        params: r.material.params,
                        inputs: r.material.inputs,
                        bindings: BTreeMap::new(),
                    },
                    output: r.output,
                    files: r.files,
                },
            },
            OldEntry::Failed {
                target,
                key,
                message,
            } => Entry::Failed {
                target,
                key,
                message,
            },
            OldEntry::Forget { target } => Entry::Forget { target },
        })
    }
}

impl Store {
    pub(super) fn log_path(&self) -> PathBuf {
        self.dir.join("state.log")
    }

    pub(super) fn replay(&mut self) -> Result<()> {
        let path = self.log_path();
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(|e| Error::io(&path, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(&path, e)),
        }
        let header = format!("studymake state v{STATE_SCHEMA}\n");
        let (entries, torn, repaired) = if let Some(body) = bytes.strip_prefix(header.as_bytes()) {
            let (entries, torn) = frames(body, decode_current);
            (entries, torn, None)
        } else if let Some(body) = bytes.strip_prefix(v1::HEADER.as_bytes()) {
            let (entries, torn) = frames(body, v1::decode);
            (
                entries,
                torn,
                Some("the state log was written by an older studymake (state schema 1); upgraded"),
            )
        } else if bytes.is_empty() {
            (Vec::new(), false, None)
        } else {
            // A log that lost its header (an emptied file that older versions appended to
            // without writing one): accepted when it is intact frames from its first byte.
            match frames(&bytes, decode_current) {
                (entries, false) if !entries.is_empty() => (
                    entries,
                    false,
                    Some("the state log had lost its header; repaired"),
                ),
                _ => {
                    return Err(Error::State {
                        path,
                        message: format!(
                            "not a studymake v{STATE_SCHEMA} state log; run `studymake clean \
                             --cache` (which sets it aside) or remove `.studymake` to start \
                             afresh"
                        ),
                    })
                }
            }
        };
        for (entry, frame_bytes) in entries {
            self.apply(entry, frame_bytes);
            self.frames += 1;
            self.log_bytes += frame_bytes;
        }
        if let Some(why) = repaired {
            tracing::warn!("{why}");
            self.compact()?;
        } else if torn {
            tracing::warn!("state log has a torn tail (an interrupted write); compacting");
            self.compact()?;
        } else {
            self.log_bytes += if bytes.is_empty() {
                0
            } else {
                header.len() as u64
            };
        }
        Ok(())
    }

    pub(super) fn apply(&mut self, entry: Entry, frame_bytes: u64) {
        match entry {
            Entry::Built { target, record } => {
                self.failures.remove(&target);
                self.live_bytes.insert(target.clone(), frame_bytes);
                self.records.insert(target, record);
            }
            Entry::Failed {
                target,
                key,
                message,
            } => {
                self.failures.insert(target, Failure { key, message });
            }
            Entry::Forget { target } => {
                self.live_bytes.remove(&target);
                self.records.remove(&target);
                self.failures.remove(&target);
            }
        }
    }

    pub(super) fn frame(entry: &Entry) -> Vec<u8> {
        let payload =
            bincode::serde::encode_to_vec(entry, bincode_config()).expect("entries always encode");
        let mut out = Vec::with_capacity(payload.len() + 8);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&blake3::hash(&payload).as_bytes()[..4]);
        out.extend_from_slice(&payload);
        out
    }

    pub(super) fn append(&mut self, entry: Entry) -> Result<()> {
        let path = self.log_path();
        self.open_log()?;
        let bytes = Self::frame(&entry);
        if let Some(f) = self.log.as_mut() {
            // A write that fails part-way (disk full, file size limit) must not leave a torn
            // frame that later frames would follow: replay stops at the first torn frame and
            // would drop them. Cut the log back to where the frame started.
            let start = f.metadata().map(|m| m.len());
            if let Err(e) = f.write_all(&bytes) {
                if let Ok(start) = start {
                    let _ = f.set_len(start);
                }
                self.log = None;
                return Err(Error::io(&path, e));
            }
        }
        self.log_bytes += bytes.len() as u64;
        self.apply(entry, bytes.len() as u64);
        self.frames += 1;
        Ok(())
    }

    /// Allocate room at the end of the log for `entry`'s frame, so that writing it later cannot
    /// fail for want of space or by the file size limit. The room reads as a torn tail (zeros)
    /// until [`Store::commit`] fills it; [`Store::release`] gives it back.
    pub(super) fn reserve(&mut self, entry: Entry) -> Result<Reserved> {
        let path = self.log_path();
        self.open_log()?;
        let bytes = Self::frame(&entry);
        let Some(f) = self.log.as_mut() else {
            return Err(Error::Other("internal: the state log is not open".into()));
        };
        let offset = f.metadata().map_err(|e| Error::io(&path, e))?.len();
        if let Err(e) = crate::sys::allocate(f, offset, bytes.len() as u64) {
            let _ = f.set_len(offset);
            return Err(Error::io(&path, e));
        }
        Ok(Reserved {
            offset,
            bytes,
            entry,
        })
    }

    /// Write a reserved frame into its room.
    pub(super) fn commit(&mut self, r: Reserved) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let path = self.log_path();
        // A second handle without O_APPEND, so the write lands at the reserved offset.
        std::fs::OpenOptions::new()
            .custom_flags(libc::O_NOFOLLOW)
            .write(true)
            .open(&path)
            .and_then(|f| f.write_all_at(&r.bytes, r.offset))
            .map_err(|e| Error::io(&path, e))?;
        self.log_bytes = self.log_bytes.max(r.offset) + r.bytes.len() as u64;
        self.apply(r.entry, r.bytes.len() as u64);
        self.frames += 1;
        Ok(())
    }

    /// Give back a reservation that will not be committed.
    pub(super) fn release(&mut self, r: Reserved) {
        if let Some(f) = self.log.as_mut() {
            let _ = f.set_len(r.offset);
        }
    }

    pub(super) fn open_log(&mut self) -> Result<()> {
        let path = self.log_path();
        if self.log.is_none() {
            let mut f = std::fs::OpenOptions::new()
                .custom_flags(libc::O_NOFOLLOW)
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            // An empty file (new, or emptied by hand) gets its header before any frame.
            if f.metadata().map_err(|e| Error::io(&path, e))?.len() == 0 {
                f.write_all(format!("studymake state v{STATE_SCHEMA}\n").as_bytes())
                    .map_err(|e| Error::io(&path, e))?;
            }
            self.log = Some(f);
        }
        Ok(())
    }

    /// Rewrite the log with one frame per live record.
    pub fn compact(&mut self) -> Result<()> {
        let mut bytes = format!("studymake state v{STATE_SCHEMA}\n").into_bytes();
        let mut names: Vec<&String> = self.records.keys().collect();
        names.sort();
        for name in &names {
            bytes.extend(Self::frame(&Entry::Built {
                target: (*name).clone(),
                record: self.records[*name].clone(),
            }));
        }
        let mut fails: Vec<(&String, &Failure)> = self.failures.iter().collect();
        fails.sort_by_key(|(n, _)| *n);
        for (name, f) in fails {
            bytes.extend(Self::frame(&Entry::Failed {
                target: name.clone(),
                key: f.key,
                message: f.message.clone(),
            }));
        }
        self.log = None;
        write_atomic(&self.log_path(), &bytes)?;
        self.frames = self.records.len() + self.failures.len();
        self.log_bytes = bytes.len() as u64;
        Ok(())
    }

    /// Compact if the log has grown well beyond the live records; flush to disk.
    pub fn finish(&mut self) -> Result<()> {
        let live: u64 = self.live_bytes.values().sum();
        if self.frames > 2 * (self.records.len() + self.failures.len()) + 64
            || self.log_bytes > 2 * live + (1 << 20)
        {
            self.compact()?;
        } else if let Some(f) = self.log.as_mut() {
            f.sync_data()
                .map_err(|e| Error::io(self.dir.join("state.log"), e))?;
        }
        Ok(())
    }
}
