//! File primitives of the store: stat fields, atomic writes (durable or not), syncing an
//! output's files, copying and removing trees, and replacing a path atomically.

use crate::error::{Error, Result};
use crate::key::list_tree;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Stat fields of a path (size, mtime in ns, inode).
pub fn stat(path: &Path) -> std::io::Result<(u64, i64, u64)> {
    let m = std::fs::symlink_metadata(path)?;
    Ok((m.len(), m.mtime() * 1_000_000_000 + m.mtime_nsec(), m.ino()))
}

/// [`stat`], taking the fields from `meta` when the caller already has the path's metadata.
pub(super) fn stat_from(
    path: &Path,
    meta: Option<&std::fs::Metadata>,
) -> std::io::Result<(u64, i64, u64)> {
    match meta {
        Some(m) => Ok((m.len(), m.mtime() * 1_000_000_000 + m.mtime_nsec(), m.ino())),
        None => stat(path),
    }
}

/// Write a file atomically: temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    write_replacing(path, bytes, true, dir)
}

/// Write a file atomically (a temp file in `tmp_dir`, which must be on the same filesystem, then
/// a rename), with or without an fsync of its bytes first. Without one, a crash of the process still leaves the old or the new file,
/// never a torn one; only a power loss can leave it short, which is acceptable for files that are
/// read back with checks (manifests: the state log is the authority and outputs are verified by
/// digest).
pub fn write_replacing(path: &Path, bytes: &[u8], durable: bool, tmp_dir: &Path) -> Result<()> {
    write_staged(path, bytes, durable, tmp_dir)?
        .persist(path)
        .map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Whether `path` is confined to `root`: below `root`, through real directories only. `Err`
/// says why not: a component that is a symbolic link (which could lead outside the study), or a
/// path that is not below `root` at all. The last component may be anything (a rename replaces
/// it, a link included, without following it); `root` itself may be a link (an output directory
/// on a bigger disk). This is the one rule for every path the build and `clean` write, rename or
/// delete. It is checked by path, so a link swapped in afterwards by another process is not seen.
pub fn confined(root: &Path, path: &Path) -> std::result::Result<(), String> {
    let outside = || {
        format!(
            "studymake writes, renames and deletes only inside the study directory, and {} is \
             not inside the study directory",
            path.display()
        )
    };
    let Ok(rel) = path.strip_prefix(root) else {
        return Err(outside());
    };
    let comps: Vec<_> = rel.components().collect();
    let mut cur = root.to_path_buf();
    for (k, c) in comps.iter().enumerate() {
        if !matches!(c, std::path::Component::Normal(_)) {
            return Err(outside());
        }
        cur.push(c);
        if k + 1 < comps.len() {
            if let Ok(m) = std::fs::symlink_metadata(&cur) {
                if m.file_type().is_symlink() {
                    return Err(format!(
                        "{} is a symbolic link: {}; replace the link by a directory",
                        cur.display(),
                        outside()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The OS error alone, without the temp file's name that `tempfile` appends to its errors
/// (`… at path "…/.tmp-XXXXXX"`, an error that no longer exposes its OS code): messages name the
/// file being written, never its temporary name.
pub fn bare(e: std::io::Error) -> std::io::Error {
    if let Some(code) = e.raw_os_error() {
        return std::io::Error::from_raw_os_error(code);
    }
    let text = e.to_string();
    let text = text
        .split_once(" at path ")
        .map_or(text.as_str(), |(t, _)| t);
    let code = text
        .split_once("(os error ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .and_then(|(n, _)| n.parse::<i32>().ok());
    match code {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(e.kind(), text.to_string()),
    }
}

/// Write a file's new bytes into a temp file in `tmp_dir` without putting them in place yet:
/// [`tempfile::NamedTempFile::persist`] to `path` publishes them; dropping it discards them.
pub(super) fn write_staged(
    path: &Path,
    bytes: &[u8],
    durable: bool,
    tmp_dir: &Path,
) -> Result<tempfile::NamedTempFile> {
    let dir = tmp_dir;
    let mut tmp = match tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            tempfile::Builder::new()
                .prefix(".tmp-")
                .tempfile_in(dir)
                .map_err(|e| Error::io(path, bare(e)))?
        }
        Err(e) => return Err(Error::io(path, bare(e))),
    };
    // Errors name the file being written, not its temporary name.
    tmp.as_file_mut()
        .write_all(bytes)
        .and_then(|()| {
            if durable {
                tmp.as_file().sync_all()
            } else {
                Ok(())
            }
        })
        .map_err(|e| Error::io(path, e))?;
    Ok(tmp)
}

/// fsync the regular files under a path (or the file itself): the bytes an output's record
/// vouches for. Directory entries are not synced one by one: a lost rename after a power loss
/// shows as a missing or different output, which the next run detects by stat and digest.
pub(super) fn sync_files(path: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        for rel in list_tree(path)? {
            let p = path.join(rel);
            File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&p, e))?;
        }
        Ok(())
    } else {
        File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(path, e))
    }
}

/// Copy a file or directory tree (regular files only).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(from).map_err(|e| Error::io(from, e))?;
    if meta.is_dir() {
        std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
        for rel in list_tree(from)? {
            let dst = to.join(&rel);
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            std::fs::copy(from.join(&rel), &dst).map_err(|e| Error::io(&dst, e))?;
        }
    } else {
        std::fs::copy(from, to).map_err(|e| Error::io(to, e))?;
    }
    Ok(())
}

/// Remove a file or directory if it exists, never following a symlink out.
pub fn remove_path(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(|e| Error::io(path, e)),
        Ok(_) => std::fs::remove_file(path).map_err(|e| Error::io(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Atomically replace `dst` with `src` (same filesystem). Directories are exchanged with
/// `renameat2(RENAME_EXCHANGE)` and the old one removed, so `dst` never goes missing.
pub(super) fn replace(src: &Path, dst: &Path) -> Result<()> {
    let src_dir = std::fs::symlink_metadata(src)
        .map_err(|e| Error::io(src, e))?
        .is_dir();
    let dst_meta = std::fs::symlink_metadata(dst).ok();
    match dst_meta {
        Some(m) if src_dir || m.is_dir() => {
            if crate::sys::exchange(src, dst).is_ok() {
                // `src` now holds the old output.
                return remove_path(src);
            }
            // Fallback: move the old one aside first.
            let aside = dst.with_file_name(format!(
                ".{}.old-{}",
                dst.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
                std::process::id()
            ));
            std::fs::rename(dst, &aside).map_err(|e| Error::io(dst, e))?;
            std::fs::rename(src, dst).map_err(|e| Error::io(dst, e))?;
            remove_path(&aside)
        }
        _ => std::fs::rename(src, dst).map_err(|e| Error::io(dst, e)),
    }
}
