//! Safe reading and deterministic writing of NumPy `.npy` / `.npz` files.
//!
//! Reading checks every header before any array is allocated: the magic string, the version, a
//! bounded header length, a little-endian dtype this crate knows, and a shape whose byte size fits
//! in what the file (or the `.npz` entry) actually holds. A truncated or corrupt file, an absurd
//! shape, a missing key or a wrong dtype is an [`Error::Data`] naming the file and the key.
//!
//! Reading is done here rather than by `ndarray-npy`'s reader so that the size checks happen
//! before the payload buffer is allocated and errors can name the file and the key.
//!
//! Writing uses `ndarray-npy` (`.npy`) and its `NpzWriter` over a `zip` writer whose entries carry
//! a fixed timestamp (1980-01-01 00:00, the zip epoch) and no compression, so the same arrays give
//! the same bytes on every run and machine (the engine compares digests).

use crate::error::{Error, Result};
use ndarray::{Array, ArrayBase, ArrayD, Data, Dimension, IxDyn};
use ndarray_npy::{NpzWriter, WritableElement};
use num_complex::{Complex32, Complex64};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive};

/// Headers longer than this are refused (numpy writes < 200 bytes; the format allows 4 GiB).
const MAX_HEADER_LEN: usize = 1 << 20;
/// The most a deflated entry may expand (deflate's maximum ratio is about 1032:1).
const MAX_DEFLATE_RATIO: u64 = 1100;

/// An element type that can be decoded from a little-endian `.npy` payload.
pub trait NpyElement: Copy + Send + Sync + 'static {
    /// numpy's dtype string for this type (`<f4`, `<c8`, ...).
    const DESCR: &'static str;
    /// Bytes per element.
    const SIZE: usize;
    /// Decode one element from exactly `SIZE` little-endian bytes.
    fn from_le(b: &[u8]) -> Self;
}

macro_rules! prim {
    ($t:ty, $d:expr) => {
        impl NpyElement for $t {
            const DESCR: &'static str = $d;
            const SIZE: usize = std::mem::size_of::<$t>();
            fn from_le(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
        }
    };
}
prim!(f32, "<f4");
prim!(f64, "<f8");
prim!(i64, "<i8");
prim!(i32, "<i4");
prim!(u8, "|u1");

impl NpyElement for Complex32 {
    const DESCR: &'static str = "<c8";
    const SIZE: usize = 8;
    fn from_le(b: &[u8]) -> Self {
        Complex32::new(f32::from_le(&b[..4]), f32::from_le(&b[4..]))
    }
}

impl NpyElement for Complex64 {
    const DESCR: &'static str = "<c16";
    const SIZE: usize = 16;
    fn from_le(b: &[u8]) -> Self {
        Complex64::new(f64::from_le(&b[..8]), f64::from_le(&b[8..]))
    }
}

/// A parsed `.npy` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    /// The dtype string as written, normalised so that one-byte types read `|..` (e.g. `<f4`).
    pub descr: String,
    /// Whether the payload is in column-major order.
    pub fortran_order: bool,
    /// The array shape (empty for a 0-d array).
    pub shape: Vec<usize>,
    /// Bytes taken by the magic, version, length field and header text.
    pub header_bytes: usize,
}

impl NpyHeader {
    /// Bytes per element of `descr`, if it is a plain numeric dtype.
    pub fn item_size(&self) -> Option<usize> {
        let d = self.descr.as_bytes();
        if d.len() < 3 {
            return None;
        }
        std::str::from_utf8(&d[2..]).ok()?.parse().ok()
    }

    /// Number of elements (`None` on overflow).
    pub fn len(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// Payload bytes the header promises (`None` on overflow or an unknown dtype).
    pub fn data_bytes(&self) -> Option<usize> {
        self.len()?.checked_mul(self.item_size()?)
    }

    /// Whether the dtype is complex (`c8` or `c16`).
    pub fn is_complex(&self) -> bool {
        self.descr.len() > 1 && self.descr.as_bytes()[1] == b'c'
    }
}

/// Read and parse a `.npy` header from the start of `r`. `what` names the file and key in errors.
fn read_header<R: Read>(r: &mut R, path: &Path, what: &str) -> Result<NpyHeader> {
    let bad = |m: String| Error::data(path, format!("{what}: {m}"));
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre).map_err(|e| {
        bad(format!(
            "cannot read the .npy header ({e}); the file is truncated"
        ))
    })?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy array (bad magic string)".into()));
    }
    let (len, lenbytes) = match pre[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)
                .map_err(|e| bad(format!("truncated .npy header ({e})")))?;
            (u16::from_le_bytes(b) as usize, 2)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)
                .map_err(|e| bad(format!("truncated .npy header ({e})")))?;
            (u32::from_le_bytes(b) as usize, 4)
        }
        v => return Err(bad(format!(".npy format version {v} is not supported"))),
    };
    if len > MAX_HEADER_LEN {
        return Err(bad(format!("the .npy header claims {len} bytes; refusing")));
    }
    let mut text = vec![0u8; len];
    r.read_exact(&mut text)
        .map_err(|e| bad(format!("truncated .npy header ({e})")))?;
    let text = String::from_utf8(text).map_err(|_| bad("the .npy header is not text".into()))?;
    let mut h = parse_header_text(&text).map_err(|m| bad(format!("{m} in header {text:?}")))?;
    h.header_bytes = 8 + lenbytes + len;
    Ok(h)
}

/// Parse numpy's header dict, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_header_text(text: &str) -> std::result::Result<NpyHeader, String> {
    let t = text.trim();
    let after = |key: &str| -> std::result::Result<&str, String> {
        for q in ['\'', '"'] {
            let pat = format!("{q}{key}{q}");
            if let Some(i) = t.find(&pat) {
                let rest = t[i + pat.len()..].trim_start();
                let rest = rest
                    .strip_prefix(':')
                    .ok_or_else(|| format!("no ':' after '{key}'"))?;
                return Ok(rest.trim_start());
            }
        }
        Err(format!("no '{key}' entry"))
    };
    let d = after("descr")?;
    let q = d
        .chars()
        .next()
        .filter(|c| *c == '\'' || *c == '"')
        .ok_or_else(|| "a structured dtype is not supported".to_string())?;
    let end = d[1..]
        .find(q)
        .ok_or_else(|| "unterminated descr string".to_string())?;
    let mut descr = d[1..1 + end].to_string();
    if descr.len() == 2 {
        descr = format!("|{descr}");
    }
    let f = after("fortran_order")?;
    let fortran_order = if f.starts_with("True") {
        true
    } else if f.starts_with("False") {
        false
    } else {
        return Err("fortran_order is neither True nor False".into());
    };
    let s = after("shape")?;
    let s = s
        .strip_prefix('(')
        .ok_or_else(|| "shape is not a tuple".to_string())?;
    let close = s
        .find(')')
        .ok_or_else(|| "unterminated shape tuple".to_string())?;
    let mut shape = Vec::new();
    for part in s[..close].split(',') {
        let p = part.trim().trim_end_matches('L');
        if p.is_empty() {
            continue;
        }
        shape.push(
            p.parse::<usize>()
                .map_err(|_| format!("shape entry {p:?} is not a non-negative integer"))?,
        );
    }
    Ok(NpyHeader {
        descr,
        fortran_order,
        shape,
        header_bytes: 0,
    })
}

/// Check the header against `T` and the bytes available, then decode the payload.
fn read_payload<T: NpyElement, R: Read>(
    r: &mut R,
    h: &NpyHeader,
    available: u64,
    path: &Path,
    what: &str,
) -> Result<ArrayD<T>> {
    let bad = |m: String| Error::data(path, format!("{what}: {m}"));
    if h.descr.starts_with('>') {
        return Err(bad(format!(
            "big-endian dtype {} is not supported",
            h.descr
        )));
    }
    if h.descr != T::DESCR {
        return Err(bad(format!(
            "dtype {} where {} was expected",
            h.descr,
            T::DESCR
        )));
    }
    let count = h
        .len()
        .ok_or_else(|| bad(format!("absurd shape {:?}", h.shape)))?;
    let need = count
        .checked_mul(T::SIZE)
        .ok_or_else(|| bad(format!("absurd shape {:?}", h.shape)))?;
    if need as u64 > available {
        return Err(bad(format!(
            "the header promises shape {:?} ({need} bytes of data) but only {available} bytes \
             follow it; the file is truncated or corrupt",
            h.shape
        )));
    }
    let mut out: Vec<T> = Vec::with_capacity(count);
    let mut buf = vec![0u8; (1 << 16) / T::SIZE * T::SIZE];
    let mut left = need;
    while left > 0 {
        let take = left.min(buf.len());
        r.read_exact(&mut buf[..take]).map_err(|e| {
            bad(format!(
                "the data ends early ({e}); the file is truncated or corrupt"
            ))
        })?;
        out.extend(buf[..take].chunks_exact(T::SIZE).map(T::from_le));
        left -= take;
    }
    let arr = if h.fortran_order {
        let rev: Vec<usize> = h.shape.iter().rev().copied().collect();
        let a = ArrayD::from_shape_vec(IxDyn(&rev), out)
            .map_err(|e| bad(format!("shape error: {e}")))?;
        a.reversed_axes().as_standard_layout().into_owned()
    } else {
        ArrayD::from_shape_vec(IxDyn(&h.shape), out)
            .map_err(|e| bad(format!("shape error: {e}")))?
    };
    Ok(arr)
}

fn into_dim<T, D: Dimension>(a: ArrayD<T>, path: &Path, what: &str) -> Result<Array<T, D>> {
    let shape = a.shape().to_vec();
    a.into_dimensionality::<D>().map_err(|_| {
        Error::data(
            path,
            format!(
                "{what}: shape {shape:?} where a {}-D array was expected",
                D::NDIM.map_or("n".into(), |n| n.to_string())
            ),
        )
    })
}

/// Whether the file starts like a zip archive (`.npz`) rather than a `.npy` array.
pub fn is_zip(path: &Path) -> Result<bool> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match f.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(got == 4 && &magic == b"PK\x03\x04")
}

/// Read the header of a `.npy` file (cheap: reads only the header).
pub fn npy_header(path: &Path) -> Result<NpyHeader> {
    let mut f = BufReader::new(File::open(path).map_err(|e| Error::io(path, e))?);
    read_header(&mut f, path, "array")
}

/// Read a `.npy` file as an array of `T` and dimension `D`, with all checks of this module.
pub fn read_npy<T: NpyElement, D: Dimension>(path: &Path) -> Result<Array<T, D>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut f = BufReader::new(file);
    let h = read_header(&mut f, path, "array")?;
    let avail = size.saturating_sub(h.header_bytes as u64);
    let a = read_payload::<T, _>(&mut f, &h, avail, path, "array")?;
    into_dim(a, path, "array")
}

/// An open `.npz` archive. Keys are entry names without the `.npy` suffix.
pub struct NpzFile {
    path: PathBuf,
    len: u64,
    zip: ZipArchive<BufReader<File>>,
}

impl NpzFile {
    /// Open an archive; a file that is not a complete zip archive is a data error.
    pub fn open(path: &Path) -> Result<NpzFile> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let zip = ZipArchive::new(BufReader::new(file)).map_err(|e| {
            Error::data(
                path,
                format!("not a readable .npz archive ({e}); the file may be truncated"),
            )
        })?;
        Ok(NpzFile {
            path: path.to_path_buf(),
            len,
            zip,
        })
    }

    /// The file this archive was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keys present, in archive order.
    pub fn keys(&self) -> Vec<String> {
        self.zip
            .file_names()
            .map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string())
            .collect()
    }

    /// Whether `key` is present.
    pub fn has(&self, key: &str) -> bool {
        self.zip.index_for_name(&format!("{key}.npy")).is_some()
    }

    fn missing(&self, key: &str) -> Error {
        Error::data(
            &self.path,
            format!(
                "no array `{key}` in this .npz; it holds: {}",
                self.keys().join(", ")
            ),
        )
    }

    /// Open an entry and read its header; returns the header and the payload bytes available.
    fn entry(
        &mut self,
        key: &str,
    ) -> Result<(zip::read::ZipFile<'_, BufReader<File>>, NpyHeader, u64)> {
        if !self.has(key) {
            return Err(self.missing(key));
        }
        let path = self.path.clone();
        let flen = self.len;
        let what = format!("array `{key}`");
        let mut e = self
            .zip
            .by_name(&format!("{key}.npy"))
            .map_err(|err| Error::data(&path, format!("{what}: cannot open entry ({err})")))?;
        let (size, csize) = (e.size(), e.compressed_size());
        let plausible = match e.compression() {
            CompressionMethod::Stored => size == csize && csize <= flen,
            _ => csize <= flen && size <= csize.saturating_mul(MAX_DEFLATE_RATIO) + 4096,
        };
        if !plausible {
            return Err(Error::data(
                &path,
                format!(
                    "{what}: the entry claims {size} bytes ({csize} stored) in a file of {flen} \
                     bytes; the archive is corrupt"
                ),
            ));
        }
        let h = read_header(&mut e, &path, &what)?;
        let avail = size.saturating_sub(h.header_bytes as u64);
        Ok((e, h, avail))
    }

    /// The header of one array (reads only the entry's first bytes).
    pub fn header(&mut self, key: &str) -> Result<NpyHeader> {
        Ok(self.entry(key)?.1)
    }

    /// Read one array with dtype `T` and dimension `D`; any mismatch is a data error naming the
    /// file and the key.
    pub fn read<T: NpyElement, D: Dimension>(&mut self, key: &str) -> Result<Array<T, D>> {
        let path = self.path.clone();
        let what = format!("array `{key}`");
        let (mut e, h, avail) = self.entry(key)?;
        let a = read_payload::<T, _>(&mut e, &h, avail, &path, &what)?;
        // Read to the end so that the zip reader checks the entry's CRC.
        let mut rest = Vec::new();
        e.read_to_end(&mut rest)
            .map_err(|err| Error::data(&path, format!("{what}: the entry is corrupt ({err})")))?;
        into_dim(a, &path, &what)
    }

    /// Read a 0-d array (a scalar) of type `T`.
    pub fn scalar<T: NpyElement>(&mut self, key: &str) -> Result<T> {
        let a = self.read::<T, ndarray::Ix0>(key)?;
        Ok(a.into_scalar())
    }
}

/// Read a 2-D complex array from `.npy` (`<c8` or `<c16`), cast to complex64. A real dtype is an
/// error saying so. `what` names the array in messages.
pub fn read_complex2_npy(path: &Path) -> Result<ndarray::Array2<Complex32>> {
    let h = npy_header(path)?;
    check_complex2(&h, path, "array")?;
    if h.descr == "<c16" {
        Ok(read_npy::<Complex64, ndarray::Ix2>(path)?
            .mapv(|z| Complex32::new(z.re as f32, z.im as f32)))
    } else {
        read_npy::<Complex32, ndarray::Ix2>(path)
    }
}

/// Read a 2-D complex array from `.npy` (`<c8` or `<c16`) at full precision: complex64 values
/// are widened to complex128.
pub fn read_complex2_npy_f64(path: &Path) -> Result<ndarray::Array2<Complex64>> {
    let h = npy_header(path)?;
    check_complex2(&h, path, "array")?;
    if h.descr == "<c16" {
        read_npy::<Complex64, ndarray::Ix2>(path)
    } else {
        Ok(read_npy::<Complex32, ndarray::Ix2>(path)?.mapv(widen))
    }
}

/// Read a 2-D complex array by key from an open `.npz` at full precision (complex64 widened).
pub fn read_complex2_npz_f64(npz: &mut NpzFile, key: &str) -> Result<ndarray::Array2<Complex64>> {
    let h = npz.header(key)?;
    let path = npz.path().to_path_buf();
    check_complex2(&h, &path, &format!("array `{key}`"))?;
    if h.descr == "<c16" {
        npz.read::<Complex64, ndarray::Ix2>(key)
    } else {
        Ok(npz.read::<Complex32, ndarray::Ix2>(key)?.mapv(widen))
    }
}

fn widen(z: Complex32) -> Complex64 {
    Complex64::new(z.re as f64, z.im as f64)
}

/// Read a 2-D complex array by key from an open `.npz`, cast to complex64.
pub fn read_complex2_npz(npz: &mut NpzFile, key: &str) -> Result<ndarray::Array2<Complex32>> {
    let h = npz.header(key)?;
    let path = npz.path().to_path_buf();
    check_complex2(&h, &path, &format!("array `{key}`"))?;
    if h.descr == "<c16" {
        Ok(npz
            .read::<Complex64, ndarray::Ix2>(key)?
            .mapv(|z| Complex32::new(z.re as f32, z.im as f32)))
    } else {
        npz.read::<Complex32, ndarray::Ix2>(key)
    }
}

fn check_complex2(h: &NpyHeader, path: &Path, what: &str) -> Result<()> {
    if !h.is_complex() {
        return Err(Error::data(
            path,
            format!(
                "{what}: dtype {} is real-valued; a complex array (complex64 or complex128) is required",
                h.descr
            ),
        ));
    }
    if h.descr != "<c8" && h.descr != "<c16" {
        return Err(Error::data(
            path,
            format!("{what}: dtype {} is not supported (use complex64)", h.descr),
        ));
    }
    if h.shape.len() != 2 {
        return Err(Error::data(
            path,
            format!("{what}: shape {:?} where a 2-D array was expected", h.shape),
        ));
    }
    Ok(())
}

/// Write one array as `.npy` (ndarray-npy's writer: no timestamps, deterministic bytes).
pub fn write_npy<S, D>(path: &Path, a: &ArrayBase<S, D>) -> Result<()>
where
    S: Data,
    S::Elem: WritableElement,
    D: Dimension,
{
    let f = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(f);
    ndarray_npy::WriteNpyExt::write_npy(a, &mut w)
        .map_err(|e| Error::data(path, format!("cannot write .npy: {e}")))?;
    std::io::Write::flush(&mut w).map_err(|e| Error::io(path, e))
}

/// A deterministic `.npz` writer: stored entries, fixed timestamp, fixed permissions.
pub struct NpzOut {
    path: PathBuf,
    w: NpzWriter<BufWriter<File>>,
}

impl NpzOut {
    /// Create `path`. `large` must be true if any array exceeds 4 GiB (zip64 entries).
    pub fn create(path: &Path, large: bool) -> Result<NpzOut> {
        let f = File::create(path).map_err(|e| Error::io(path, e))?;
        let opts = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .last_modified_time(DateTime::default())
            .unix_permissions(0o644)
            .large_file(large);
        Ok(NpzOut {
            path: path.to_path_buf(),
            w: NpzWriter::new_with_options(BufWriter::new(f), opts),
        })
    }

    /// Create `path` with deflated entries (as `numpy.savez_compressed`), still with the fixed
    /// timestamp of [`SimpleFileOptions::default`], so the bytes are deterministic.
    pub fn compressed(path: &Path) -> Result<NpzOut> {
        let f = File::create(path).map_err(|e| Error::io(path, e))?;
        let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        Ok(NpzOut {
            path: path.to_path_buf(),
            w: NpzWriter::new_with_options(BufWriter::new(f), opts),
        })
    }

    /// Add an array under `key` (stored as `key.npy`).
    pub fn add<S, D>(&mut self, key: &str, a: &ArrayBase<S, D>) -> Result<()>
    where
        S: Data,
        S::Elem: WritableElement,
        D: Dimension,
    {
        self.w
            .add_array(key, a)
            .map_err(|e| Error::data(&self.path, format!("cannot write array `{key}`: {e}")))
    }

    /// Finish the archive and flush it to disk.
    pub fn finish(self) -> Result<()> {
        let mut w = self
            .w
            .finish()
            .map_err(|e| Error::data(&self.path, format!("cannot finish the .npz: {e}")))?;
        std::io::Write::flush(&mut w).map_err(|e| Error::io(&self.path, e))?;
        let f = w
            .into_inner()
            .map_err(|e| Error::io(&self.path, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr0, Array2, Array3, Ix2, Ix3};
    use std::io::Write;

    #[test]
    fn header_text_parses_numpy_forms() {
        let h = parse_header_text("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }")
            .unwrap();
        assert_eq!(h.descr, "<f4");
        assert!(!h.fortran_order);
        assert_eq!(h.shape, vec![3, 4]);
        let h =
            parse_header_text("{'descr': '<c8', 'fortran_order': True, 'shape': (5,), }").unwrap();
        assert_eq!(h.shape, vec![5]);
        assert!(h.fortran_order);
        let h =
            parse_header_text("{'descr': '<i8', 'fortran_order': False, 'shape': (), }").unwrap();
        assert!(h.shape.is_empty());
        assert!(parse_header_text(
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': ()}"
        )
        .is_err());
    }

    #[test]
    fn npz_round_trip_and_errors_name_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npz");
        let a = Array3::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 100 + j * 10 + k) as f32);
        let c = Array2::from_shape_fn((3, 3), |(i, j)| Complex32::new(i as f32, -(j as f32)));
        let mut w = NpzOut::create(&p, false).unwrap();
        w.add("a", &a).unwrap();
        w.add("c", &c).unwrap();
        w.add("s", &arr0(7i64)).unwrap();
        w.finish().unwrap();
        let mut f = NpzFile::open(&p).unwrap();
        assert_eq!(f.keys(), vec!["a", "c", "s"]);
        assert_eq!(f.read::<f32, Ix3>("a").unwrap(), a);
        assert_eq!(f.read::<Complex32, Ix2>("c").unwrap(), c);
        assert_eq!(f.scalar::<i64>("s").unwrap(), 7);
        assert_eq!(read_complex2_npz(&mut f, "c").unwrap(), c);
        let e = f.read::<f64, Ix3>("a").unwrap_err().to_string();
        assert!(
            e.contains("a.npz") && e.contains("`a`") && e.contains("<f4"),
            "{e}"
        );
        let e = f.read::<f32, Ix2>("a").unwrap_err().to_string();
        assert!(e.contains("2-D"), "{e}");
        let e = f.read::<f32, Ix3>("zz").unwrap_err().to_string();
        assert!(e.contains("`zz`") && e.contains("a, c, s"), "{e}");
        let e = read_complex2_npz(&mut f, "a").unwrap_err().to_string();
        assert!(e.contains("real-valued"), "{e}");
    }

    #[test]
    fn compressed_npz_as_numpy_savez_compressed_writes_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("z.npz");
        let c = Array2::from_shape_fn((16, 16), |(i, j)| Complex32::new(i as f32, j as f32));
        let mut w = NpzWriter::new_compressed(std::fs::File::create(&p).unwrap());
        w.add_array("probeGuess", &c).unwrap();
        w.finish().unwrap();
        let mut f = NpzFile::open(&p).unwrap();
        assert_eq!(read_complex2_npz(&mut f, "probeGuess").unwrap(), c);
    }

    #[test]
    fn truncated_npz_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.npz");
        let a = Array2::<f64>::ones((50, 50));
        let mut w = NpzOut::create(&p, false).unwrap();
        w.add("a", &a).unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let q = dir.path().join("cut.npz");
        std::fs::write(&q, &bytes[..bytes.len() / 2]).unwrap();
        let e = NpzFile::open(&q).err().unwrap().to_string();
        assert!(e.contains("cut.npz") && e.contains("truncated"), "{e}");
    }

    fn npy_bytes(header: &str, payload: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        v.extend((h.len() as u16).to_le_bytes());
        v.extend(h.as_bytes());
        v.extend(payload);
        v
    }

    #[test]
    fn absurd_shape_is_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.npy");
        let bytes = npy_bytes(
            "{'descr': '<c8', 'fortran_order': False, 'shape': (400000, 400000), }",
            &[0u8; 64],
        );
        std::fs::File::create(&p)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
        let e = read_npy::<Complex32, Ix2>(&p).unwrap_err().to_string();
        assert!(e.contains("big.npy") && e.contains("truncated"), "{e}");
        // Shape product overflowing usize.
        let bytes = npy_bytes(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551615, 3), }",
            &[],
        );
        std::fs::write(&p, bytes).unwrap();
        let e = read_npy::<f64, Ix2>(&p).unwrap_err().to_string();
        assert!(e.contains("absurd"), "{e}");
        // Fortran order is honoured.
        let payload: Vec<u8> = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let bytes = npy_bytes(
            "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }",
            &payload,
        );
        std::fs::write(&p, bytes).unwrap();
        let a = read_npy::<f64, Ix2>(&p).unwrap();
        assert_eq!(a, ndarray::array![[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]]);
    }

    #[test]
    fn npz_bytes_are_deterministic_with_a_fixed_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let a = Array2::from_shape_fn((4, 5), |(i, j)| (i * j) as f32);
        let write = |name: &str| {
            let p = dir.path().join(name);
            let mut w = NpzOut::create(&p, false).unwrap();
            w.add("a", &a).unwrap();
            w.finish().unwrap();
            std::fs::read(p).unwrap()
        };
        let b1 = write("1.npz");
        let b2 = write("2.npz");
        assert_eq!(b1, b2);
        // Local file header: mod time at offset 10, mod date at 12; 1980-01-01 00:00 is (0, 0x21).
        assert_eq!(&b1[..4], b"PK\x03\x04");
        assert_eq!(u16::from_le_bytes([b1[10], b1[11]]), 0);
        assert_eq!(u16::from_le_bytes([b1[12], b1[13]]), (1 << 5) | 1);
    }
}
