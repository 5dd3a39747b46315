//! What the op files share, independent of how kernels run (driver or CPU emulator):
//! kernel arguments, launch shapes, scratch memory, the buffer type and size checks.

use crate::{Cuda, DevMem};

/// Threads per block of the one-dimensional kernels (`NSL_THREADS` in `kernels/common.cuh`).
pub(crate) const THREADS: u32 = 256;
/// Rows of C per block of the tiled GEMM kernels (`BM` in `kernels/gemm.cu`).
pub(crate) const TILE_M: usize = 128;
/// Columns of C per block of the tiled GEMM kernels (`BN`).
pub(crate) const TILE_N: usize = 64;
/// Rows handled per block by the warp-per-row kernels (`THREADS / 32`).
pub(crate) const WARPS: usize = 8;
/// Largest buffer, in elements. Kernels index with 32-bit `int`; the margin keeps
/// `blockIdx·blockDim + threadIdx` from overflowing too.
pub const MAX_ELEMS: usize = (1 << 31) - (1 << 20);

/// Element types of device memory (`f32` buffers, `f64` reduction scratch).
#[cfg(feature = "cuda")]
pub(crate) trait Elem: cust::memory::DeviceCopy + Copy + Default + 'static {}
/// Element types of device memory (`f32` buffers, `f64` reduction scratch).
#[cfg(not(feature = "cuda"))]
pub(crate) trait Elem: Copy + Default + 'static {}
impl Elem for f32 {}
impl Elem for f64 {}

/// A device buffer of `f32`, freed when dropped: the [`nsl_core::Backend::Buf`] of [`Cuda`].
///
/// With the `cuda` feature it wraps a `cust` `DeviceBuffer<f32>` that keeps the context alive
/// and is freed on the backend's stream (stream-ordered) when dropped.
pub struct CudaBuf(pub(crate) DevMem<f32>);

impl CudaBuf {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The raw device address, for interop with other CUDA code on the same context.
    pub fn device_ptr(&self) -> u64 {
        self.0.ptr()
    }
    pub(crate) fn ptr(&self) -> u64 {
        self.0.ptr()
    }
}

impl std::fmt::Debug for CudaBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaBuf[{}]", self.len())
    }
}

/// `nsl_core::Window` as the kernels' `struct Win` (ten `int`s).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Win {
    batch: i32,
    h: i32,
    w: i32,
    c: i32,
    k: i32,
    stride: i32,
    pad_top: i32,
    pad_left: i32,
    ho: i32,
    wo: i32,
}

impl Win {
    pub(crate) fn new(g: &nsl_core::Window) -> Win {
        let i = |v: usize| i32::try_from(v).unwrap_or_else(|_| panic!("nsl-cuda: window {g:?} too large"));
        Win {
            batch: i(g.batch),
            h: i(g.h),
            w: i(g.w),
            c: i(g.c),
            k: i(g.k),
            stride: i(g.stride),
            pad_top: i(g.pad_top),
            pad_left: i(g.pad_left),
            ho: i(g.ho),
            wo: i(g.wo),
        }
    }
}

/// One kernel argument, stored with the exact type of the kernel parameter.
#[derive(Clone, Copy)]
pub(crate) enum Arg {
    /// A device pointer (`float*`, `double*`).
    Ptr(u64),
    /// `int`
    I32(i32),
    /// `long long`
    I64(i64),
    /// `float`
    F32(f32),
    /// `double`
    F64(f64),
    /// `struct Win`
    Win(Win),
}

impl Arg {
    /// Pointer to the value, as `cuLaunchKernel`'s `kernelParams` wants it.
    pub(crate) fn as_param(&self) -> *mut std::ffi::c_void {
        match self {
            Arg::Ptr(v) => v as *const u64 as *mut _,
            Arg::I32(v) => v as *const i32 as *mut _,
            Arg::I64(v) => v as *const i64 as *mut _,
            Arg::F32(v) => v as *const f32 as *mut _,
            Arg::F64(v) => v as *const f64 as *mut _,
            Arg::Win(v) => v as *const Win as *mut _,
        }
    }
}

/// A size as an `int` kernel argument (sizes are bounded by [`MAX_ELEMS`]).
pub(crate) fn int(v: usize) -> Arg {
    Arg::I32(i32::try_from(v).unwrap_or_else(|_| panic!("nsl-cuda: size {v} does not fit a 32-bit kernel argument")))
}

/// The device pointer of a buffer.
pub(crate) fn p(b: &CudaBuf) -> Arg {
    Arg::Ptr(b.ptr())
}

/// The device pointer of scratch memory.
pub(crate) fn pm<T: Elem>(m: &DevMem<T>) -> Arg {
    Arg::Ptr(m.ptr())
}

/// A grid or block shape, CUDA's `dim3` `(x, y, z)`.
pub(crate) type Dim3 = (u32, u32, u32);

/// `ceil(n / per)` as a grid dimension.
pub(crate) fn blocks(n: usize, per: usize) -> u32 {
    let b = n.div_ceil(per);
    u32::try_from(b).unwrap_or_else(|_| panic!("nsl-cuda: grid of {b} blocks is too large"))
}

impl Cuda {
    /// Launch `kernel` on a `grid` of `block`s with `shmem` bytes of dynamic shared memory; a
    /// zero grid dimension, or a recorded failure (see [`Cuda::fail`]), launches nothing.
    pub(crate) fn launch(&self, kernel: &'static str, grid: Dim3, block: Dim3, shmem: u32, args: &[Arg]) {
        if grid.0 == 0 || grid.1 == 0 || grid.2 == 0 || self.failed() {
            return;
        }
        self.run_kernel(kernel, grid, block, shmem, args)
    }

    /// One thread per element: `ceil(n / THREADS)` blocks of `THREADS`.
    pub(crate) fn launch_1d(&self, kernel: &'static str, n: usize, args: &[Arg]) {
        self.launch(kernel, (blocks(n, THREADS as usize), 1, 1), (THREADS, 1, 1), 0, args);
    }

    /// One warp per row: `ceil(rows / 8)` blocks of 256 threads.
    pub(crate) fn launch_warps(&self, kernel: &'static str, rows: usize, args: &[Arg]) {
        self.launch(kernel, (blocks(rows, WARPS), 1, 1), (THREADS, 1, 1), 0, args);
    }

    /// Scratch memory for an op; if it cannot be allocated, the failure is recorded (see
    /// [`Cuda::fail`]) and a placeholder without memory comes back.
    pub(crate) fn scratch<T: Elem>(&self, op: &str, len: usize) -> DevMem<T> {
        self.or_placeholder(op, len, self.alloc_mem(len))
    }

    /// A device copy of `data`, or (the failure recorded) a placeholder of its length.
    pub(crate) fn upload_or_fail(&self, op: &str, data: &[f32]) -> CudaBuf {
        CudaBuf(self.or_placeholder(op, data.len(), self.try_upload(data).map(|b| b.0)))
    }

    /// The buffer `made` for `op`; if making it failed, the failure is recorded (see
    /// [`Cuda::fail`]) and a placeholder of length `len` without memory comes back.
    pub(crate) fn or_placeholder<T: Elem>(
        &self,
        op: &str,
        len: usize,
        made: Result<DevMem<T>, crate::CudaError>,
    ) -> DevMem<T> {
        made.unwrap_or_else(|e| {
            self.fail(op, e);
            DevMem::placeholder(self, len)
        })
    }

    /// Record `e`, met during `op`, as the backend's failure unless one is recorded already.
    /// From then on kernels, copies and fills are skipped, downloads return zeros and
    /// allocations placeholders, and [`Cuda::status`] returns the failure: a device error
    /// surfaces as a value at the caller's next check instead of a panic mid-op.
    pub(crate) fn fail(&self, op: &str, e: crate::CudaError) {
        let mut failure = self.failure().lock().unwrap_or_else(|p| p.into_inner());
        if failure.is_none() {
            *failure = Some(e.in_op(op));
        }
    }

    /// Whether a failure has been recorded (work is being skipped).
    pub(crate) fn failed(&self) -> bool {
        self.failure().lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// The first device failure since the backend was made, if any (every later call returns it
    /// too); see [`nsl_core::BackendError`].
    pub fn status(&self) -> Result<(), nsl_core::BackendError> {
        match &*self.failure().lock().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// A buffer with unspecified contents.
    pub fn try_alloc(&self, len: usize) -> Result<CudaBuf, crate::CudaError> {
        self.alloc_mem(len).map(CudaBuf)
    }
}
