//! The kernels run on the CPU (feature `emulate`, for tests on machines without a GPU).
//!
//! `build.rs` compiles `kernels/*.cu` as C++ against `kernels/emu/emu.hpp` (cooperative fibers
//! for the threads of a block, real barrier and shuffle semantics); here "device memory" is host
//! memory and [`Cuda::launch`] calls the emulator with exactly the arguments the driver would
//! get. Every op file, argument list and launch shape is therefore the one used on a GPU.
//!
//! Memory is filled with NaN when allocated (so an op that fails to overwrite its output shows
//! up) and surrounded by guard words checked when it is freed (so an out-of-bounds write
//! panics, naming the buffer size).

use std::ffi::{c_char, c_void, CString};
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::launch::{Arg, Dim3, Elem, MAX_ELEMS};
use crate::{CudaBuf, CudaError, DriverError};

/// The architecture string reported for the emulator.
pub const PTX_ARCH: &str = "emulated";

extern "C" {
    fn nsl_emu_launch(
        name: *const c_char,
        gx: u32,
        gy: u32,
        gz: u32,
        bx: u32,
        by: u32,
        bz: u32,
        shmem: u32,
        params: *mut *mut c_void,
    ) -> i32;
}

/// Guard words on each side of an allocation.
const GUARD: usize = 8;
const GUARD_WORD: u64 = 0x5a5a_5a5a_5a5a_5a5a;

/// The CUDA backend with its kernels running on the CPU emulator (see the module docs).
#[derive(Clone)]
pub struct Cuda {
    /// The first failure (see `Cuda::fail`), shared by clones.
    failure: Arc<Mutex<Option<nsl_core::BackendError>>>,
}

impl fmt::Debug for Cuda {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cuda(emulated)")
    }
}

impl Cuda {
    /// The emulated device (always available).
    pub fn new() -> Result<Cuda, CudaError> {
        Ok(Cuda { failure: Arc::new(Mutex::new(None)) })
    }

    /// The emulated device; only ordinal 0 exists.
    pub fn with_device(ordinal: u32) -> Result<Cuda, CudaError> {
        if ordinal == 0 {
            Self::new()
        } else {
            Err(CudaError::NoDevice { detail: format!("the emulator has only device 0, {ordinal} requested") })
        }
    }

    /// What runs the kernels.
    pub fn device_description(&self) -> &str {
        "CPU emulation of the CUDA kernels (feature `emulate`, for tests)"
    }

    /// One emulated multiprocessor (so small test shapes already take the split-k path).
    pub(crate) fn sm_count(&self) -> usize {
        1
    }

    /// The backend's recorded failure (see `Cuda::fail`).
    pub(crate) fn failure(&self) -> &Mutex<Option<nsl_core::BackendError>> {
        &self.failure
    }

    /// Nothing is asynchronous in the emulator.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        Ok(())
    }

    pub(crate) fn alloc_mem<T: Elem>(&self, len: usize) -> Result<DevMem<T>, CudaError> {
        if len > MAX_ELEMS {
            return Err(CudaError::TooLarge { elems: len });
        }
        let bytes = len * std::mem::size_of::<T>();
        let words = bytes.div_ceil(8);
        let mut store = vec![u64::MAX; words + 2 * GUARD]; // all-ones bytes: NaN in f32 and f64
        store[..GUARD].fill(GUARD_WORD);
        store[GUARD + words..].fill(GUARD_WORD);
        let total = store.len();
        let base = Box::into_raw(store.into_boxed_slice()) as *mut u64;
        Ok(DevMem { base, total, len, _t: std::marker::PhantomData })
    }

    /// A zero-filled buffer.
    pub fn try_zeros(&self, len: usize) -> Result<CudaBuf, CudaError> {
        let mut b = self.try_alloc(len)?;
        self.memset32(&mut b.0, 0).map_err(|error| CudaError::Driver { what: "zeroing".into(), error })?;
        Ok(b)
    }

    /// A device copy of `data`.
    pub fn try_upload(&self, data: &[f32]) -> Result<CudaBuf, CudaError> {
        let mut b = self.try_alloc(data.len())?;
        if self.failed() {
            return Ok(b);
        }
        b.0.bytes_mut()[..data.len() * 4].copy_from_slice(as_bytes(data));
        Ok(b)
    }

    pub(crate) fn download_mem<T: Elem>(&self, op: &str, mem: &DevMem<T>, n: usize) -> Vec<T> {
        assert!(n <= mem.len(), "nsl-cuda: {op}: reading {n} elements of a buffer of {}", mem.len());
        let mut out = vec![T::default(); n];
        if self.failed() {
            return out;
        }
        let size = n * std::mem::size_of::<T>();
        // SAFETY: `out` holds n elements of T, plain data; the source has at least `size` bytes.
        unsafe { std::ptr::copy_nonoverlapping(mem.ptr() as *const u8, out.as_mut_ptr() as *mut u8, size) };
        out
    }

    pub(crate) fn memset32<T: Elem>(&self, dst: &mut DevMem<T>, bits: u32) -> Result<(), DriverError> {
        if self.failed() {
            return Ok(());
        }
        let bytes = dst.len * std::mem::size_of::<T>();
        for w in dst.bytes_mut()[..bytes].chunks_exact_mut(4) {
            w.copy_from_slice(&bits.to_ne_bytes());
        }
        Ok(())
    }

    pub(crate) fn copy_mem(&self, src: &DevMem<f32>, dst: &mut DevMem<f32>, n: usize) -> Result<(), DriverError> {
        if self.failed() {
            return Ok(());
        }
        let bytes = n * 4;
        dst.bytes_mut()[..bytes].copy_from_slice(&src.bytes()[..bytes]);
        Ok(())
    }

    /// Run `kernel` on the emulator (for [`Cuda::launch`], which skips empty grids).
    pub(crate) fn run_kernel(&self, kernel: &'static str, grid: Dim3, block: Dim3, shmem: u32, args: &[Arg]) {
        assert!(block.0 * block.1 * block.2 <= 1024, "nsl-cuda: {kernel}: block {block:?} has more than 1024 threads");
        assert!(grid.1 <= 65_535 && grid.2 <= 65_535, "nsl-cuda: {kernel}: grid {grid:?} exceeds CUDA's y/z limits");
        assert!(
            shmem <= 48 * 1024,
            "nsl-cuda: {kernel}: {shmem} B of dynamic shared memory exceeds the 48 KiB default"
        );
        let name = CString::new(kernel).expect("kernel name");
        let mut params: Vec<*mut c_void> = args.iter().map(Arg::as_param).collect();
        // SAFETY: `params` holds one pointer per kernel parameter (see device.rs); pointer
        // arguments are host addresses of live `DevMem`s.
        let status = unsafe {
            nsl_emu_launch(name.as_ptr(), grid.0, grid.1, grid.2, block.0, block.1, block.2, shmem, params.as_mut_ptr())
        };
        match status {
            0 => {}
            1 => panic!("nsl-cuda: kernel {kernel} is not compiled into the emulator"),
            _ => panic!("nsl-cuda: kernel {kernel} deadlocked in the emulator (see stderr)"),
        }
    }
}

fn as_bytes(data: &[f32]) -> &[u8] {
    // SAFETY: f32 is plain data; the slice covers exactly its bytes.
    unsafe { std::slice::from_raw_parts(data.as_ptr() as *const u8, std::mem::size_of_val(data)) }
}

/// Host memory standing in for device memory of `len` elements of `T`, with guard words.
/// Only ever accessed through its raw pointer (kernels write through it behind `&` references).
pub(crate) struct DevMem<T: Elem> {
    base: *mut u64,
    total: usize,
    len: usize,
    _t: std::marker::PhantomData<T>,
}

// SAFETY: the allocation is owned by this value; the emulator, like a device, gives no
// guarantees to racing launches, and the Backend API's borrows rule those out.
unsafe impl<T: Elem> Send for DevMem<T> {}
unsafe impl<T: Elem> Sync for DevMem<T> {}

impl<T: Elem> DevMem<T> {
    /// A buffer of nominal length `len` with no memory, handed out after a failure.
    pub(crate) fn placeholder(_: &Cuda, len: usize) -> Self {
        DevMem { base: std::ptr::null_mut(), total: 0, len, _t: std::marker::PhantomData }
    }
    pub(crate) fn len(&self) -> usize {
        self.len
    }
    /// The address of the first element.
    pub(crate) fn ptr(&self) -> u64 {
        // SAFETY: GUARD < total.
        unsafe { self.base.add(GUARD) as u64 }
    }
    fn data_bytes(&self) -> usize {
        (self.total - 2 * GUARD) * 8
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: the data words, viewed as bytes, inside the live allocation.
        unsafe { std::slice::from_raw_parts(self.ptr() as *const u8, self.data_bytes()) }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, with exclusive access through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr() as *mut u8, self.data_bytes()) }
    }
    fn word(&self, i: usize) -> u64 {
        // SAFETY: i < total.
        unsafe { self.base.add(i).read() }
    }
}

impl<T: Elem> Drop for DevMem<T> {
    fn drop(&mut self) {
        if self.base.is_null() {
            return; // a placeholder
        }
        let n = self.total;
        let ok = (0..GUARD).chain(n - GUARD..n).all(|i| self.word(i) == GUARD_WORD);
        // SAFETY: `base` came from Box::into_raw of a boxed slice of `total` words.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.base, n)) });
        // Padding between `len` elements and the next multiple of 8 bytes is not checked.
        if !ok && !std::thread::panicking() {
            panic!(
                "nsl-cuda emulator: a kernel wrote outside a buffer of {} elements of {} bytes",
                self.len,
                std::mem::size_of::<T>()
            );
        }
    }
}
