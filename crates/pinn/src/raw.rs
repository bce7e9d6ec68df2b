//! The crate's only `unsafe` code (the crate root denies `unsafe_code` everywhere else): buffers
//! written before they are read, disjoint parallel writes into one buffer, the raw `gemm` call,
//! code compiled for the CPU's vector instructions, a bit-mask select, and two process settings.
//!
//! # Invariants
//!
//! The kernels skip the zero fill of buffers they overwrite completely (a pass over every
//! activation per layer, measurable in training). The functions below that hand out or accept
//! memory not yet written are safe to call but carry a *written* contract, checked by the
//! kernels' tests (each compares its results with a plain reference, so an element left
//! unwritten would show), and stated at each:
//!
//! * [`filled`], [`set_written_len`], [`assume_written`], [`assume_written_mut`]: every
//!   element in question has been written before it is read or the length is set;
//! * [`Disjoint`]: the ranges handed out at the same time do not overlap and lie inside the
//!   buffer (each parallel task owns its own rows or columns);
//! * [`as_uninit_mut`]: only initialised values are written through the view.
//!
//! The element types are plain numbers (`f32`, `f64`), for which every written bit pattern is a
//! valid value. Everything else here is sound whatever the caller does: [`gemm`] checks every
//! stride against the slices, [`simd`] and [`simd_avx512`] check the CPU before they use its
//! instructions, [`keep_if_positive`] checks the type before reinterpreting it.

use candle_core::WithDType;
use rayon::prelude::*;
use std::marker::PhantomData;
use std::mem::MaybeUninit;

/// A vector of `n` elements filled by `fill`, which gets disjoint chunks of `chunk` elements
/// (the index of the chunk and the chunk) in parallel. Contract: `fill` writes every element of
/// its chunk.
pub(crate) fn filled<T: Send>(
    n: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync + Send,
) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, c)| fill(i, c));
    set_written_len(&mut v, n);
    v
}

/// Set the length of `v` to `n`. Contract: its first `n` elements have been written (through
/// `spare_capacity_mut` or a [`Disjoint`]).
pub(crate) fn set_written_len<T>(v: &mut Vec<T>, n: usize) {
    assert!(n <= v.capacity(), "set_written_len past the capacity");
    // SAFETY: n is within the capacity (asserted) and the caller wrote the first n elements.
    unsafe { v.set_len(n) };
}

/// The elements of `v`. Contract: every one has been written.
pub(crate) fn assume_written<T>(v: &[MaybeUninit<T>]) -> &[T] {
    // SAFETY: MaybeUninit<T> has T's layout; the caller wrote every element.
    unsafe { &*(v as *const [MaybeUninit<T>] as *const [T]) }
}

/// The elements of `v`, mutable. Contract: every one has been written.
pub(crate) fn assume_written_mut<T>(v: &mut [MaybeUninit<T>]) -> &mut [T] {
    // SAFETY: MaybeUninit<T> has T's layout; the caller wrote every element.
    unsafe { &mut *(v as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// `v` as memory that may be overwritten without being read. Contract: only initialised values
/// are written through the view (it must stay initialised).
pub(crate) fn as_uninit_mut<T>(v: &mut [T]) -> &mut [MaybeUninit<T>] {
    // SAFETY: MaybeUninit<T> has T's layout; the caller writes only initialised values.
    unsafe { &mut *(v as *mut [T] as *mut [MaybeUninit<T>]) }
}

/// Copy `src` into `dst` (same length).
pub(crate) fn write_from<T: Copy>(dst: &mut [MaybeUninit<T>], src: &[T]) {
    assert_eq!(dst.len(), src.len());
    // SAFETY: MaybeUninit<T> has T's layout, both ranges have dst.len() elements (asserted), and
    // they do not overlap (a shared and a mutable borrow).
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<T>(), dst.len()) }
}

/// The unwritten tail of a vector's allocation, shared by parallel tasks that each write their
/// own part of it: whole ranges ([`Disjoint::range`]) or the same columns of every block of a
/// blocked layout ([`Disjoint::block`]). Contract: parts in use at the same time never overlap,
/// and together they write every element before [`set_written_len`].
pub(crate) struct Disjoint<'a, T> {
    ptr: *mut MaybeUninit<T>,
    len: usize,
    _buffer: PhantomData<&'a mut [MaybeUninit<T>]>,
}

// SAFETY: the tasks write disjoint parts (the contract), so sharing the pointer between threads
// is sharing disjoint `&mut` slices, which is Send and Sync for T: Send.
unsafe impl<T: Send> Send for Disjoint<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Disjoint<'_, T> {}

impl<'a, T> Disjoint<'a, T> {
    /// The first `n` elements of `v`'s spare capacity.
    pub(crate) fn new(v: &'a mut Vec<T>, n: usize) -> Self {
        let spare = &mut v.spare_capacity_mut()[..n];
        Disjoint {
            ptr: spare.as_mut_ptr(),
            len: n,
            _buffer: PhantomData,
        }
    }

    /// Elements `lo..hi`. Contract: no other part in use overlaps them.
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn range(&self, lo: usize, hi: usize) -> &mut [MaybeUninit<T>] {
        assert!(lo <= hi && hi <= self.len, "Disjoint::range out of bounds");
        // SAFETY: lo..hi lies inside the buffer (asserted), which the borrow of `v` keeps alive;
        // the caller guarantees that no other part in use overlaps it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(lo), hi - lo) }
    }

    /// Elements `c0..c0 + len` of block `o` of `n`-element blocks. Contract: no other part in
    /// use overlaps them.
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn block(&self, o: usize, n: usize, c0: usize, len: usize) -> &mut [MaybeUninit<T>] {
        assert!(c0 + len <= n, "Disjoint::block: columns past the block");
        self.range(o * n + c0, o * n + c0 + len)
    }
}

/// `dst (m x n) = [dst +] lhs (m x k) rhs (k x n)` with `gemm`, each matrix given by its row
/// and column strides (in elements), `dst` row-major. `accumulate` reads `dst`: it must then be
/// initialised (an accumulating caller passes [`as_uninit_mut`] of initialised memory).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<T: WithDType>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [MaybeUninit<T>],
    accumulate: bool,
    lhs: &[T],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[T],
    (rhs_rs, rhs_cs): (usize, usize),
    par: gemm::Parallelism,
) {
    assert!(dst.len() >= m * n, "gemm destination too small");
    assert!(m == 0 || k == 0 || lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    assert!(k == 0 || n == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: the asserts above keep every access of gemm inside the three slices; dst is a
    // row-major m x n block that does not alias lhs or rhs (distinct borrows); gemm reads dst
    // only when accumulating (read_dst), which the callers do on initialised memory only.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().cast::<T>(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            if accumulate { T::one() } else { T::zero() },
            T::one(),
            false,
            false,
            false,
            par,
        )
    }
}

/// `v` if `r > 0`, else `+0` (NaN `r` counts as not positive, as in the select). For f32 and
/// f64 a bit mask: written as a select, it compiled to a branch that ReLU data mispredicts
/// about half the time (6 ns per element, 7x the masked loop; about a tenth of a training
/// step). The type tests are resolved at compile time.
#[inline(always)]
pub(crate) fn keep_if_positive<T: WithDType>(r: T, v: T) -> T {
    use std::any::TypeId;
    use std::mem::transmute_copy;
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: T is f32 (same TypeId), so these copies reinterpret a value as itself.
        unsafe {
            let (r, v): (f32, f32) = (transmute_copy(&r), transmute_copy(&v));
            let mask = ((r > 0.0) as u32).wrapping_neg();
            transmute_copy(&f32::from_bits(v.to_bits() & mask))
        }
    } else if TypeId::of::<T>() == TypeId::of::<f64>() {
        // SAFETY: T is f64, as above.
        unsafe {
            let (r, v): (f64, f64) = (transmute_copy(&r), transmute_copy(&v));
            let mask = ((r > 0.0) as u64).wrapping_neg();
            transmute_copy(&f64::from_bits(v.to_bits() & mask))
        }
    } else if r > T::zero() {
        v
    } else {
        T::zero()
    }
}

/// A kernel [`simd`] compiles for the CPU's vector instructions: its `run` (and what it calls,
/// `#[inline(always)]`) is inlined into a function compiled with those instructions. Results
/// are identical on every path: the instructions change, not the operations or their order.
pub(crate) trait Kernel {
    fn run(self);
}

/// Run `k` compiled for AVX-512 or AVX2 (with FMA) where the CPU has them, else for the
/// build's baseline.
#[inline(always)]
pub(crate) fn simd<K: Kernel>(k: K) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn v4<K: Kernel>(k: K) {
            k.run()
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn v3<K: Kernel>(k: K) {
            k.run()
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { v4(k) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { v3(k) };
        }
    }
    k.run()
}

/// Run `k` compiled for AVX-512 where the CPU has it, else for the build's baseline.
#[inline(always)]
pub(crate) fn simd_avx512<K: Kernel>(k: K) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn v4<K: Kernel>(k: K) {
            k.run()
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { v4(k) };
        }
    }
    k.run()
}

/// Keep freed memory in glibc's allocator (see [`crate::tune_allocator`]); elsewhere nothing.
pub(crate) fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation thresholds; any value is valid.
    unsafe {
        // Large buffers (the im2col matrices reach 75 MB) come from the heap, not fresh mmaps
        // (the mmap threshold itself is capped at 32 MiB), and freed memory is kept.
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        // One arena for all threads: the rayon workers' own arenas are mmapped heaps that glibc
        // shrinks when their top is free, so buffers allocated there came back as fresh pages,
        // about 7000 page faults per training batch (a few microseconds each in this VM); with
        // the main arena alone a batch faults in none after the first.
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Set the FTZ and DAZ bits of this thread's x86-64 MXCSR (see [`crate::flush_subnormals`]);
/// elsewhere nothing.
pub(crate) fn set_flush_to_zero() {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr stores the 32-bit MXCSR into csr; ldmxcsr loads it back with bit 15
        // (flush to zero) and bit 6 (denormals are zero) set, both valid MXCSR values. The
        // register belongs to this thread.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
            csr |= (1 << 15) | (1 << 6);
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags));
        }
    }
}
