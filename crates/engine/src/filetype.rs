//! What kind of file a path is, in words, for messages that refuse it ("is a FIFO (named pipe)").

use std::os::unix::fs::FileTypeExt;

/// "a regular file", "a directory", "a symbolic link", "a FIFO (named pipe)", "a character
/// device", "a block device", "a socket".
pub fn describe(ft: std::fs::FileType) -> &'static str {
    if ft.is_file() {
        "a regular file"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "neither a file nor a directory"
    }
}
