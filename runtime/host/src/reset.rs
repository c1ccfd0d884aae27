//! How a pool slot's linear memory is made ready for the next instance, chosen once per
//! host by what the kernel offers.
//!
//! A fresh instance per delivery makes this reset part of every delivery. Two ways:
//!
//! - **Scan** (Linux 6.7+, `PAGEMAP_SCAN`): wasmtime asks the kernel which pages of the
//!   slot the guest wrote, and copies back or zeroes only those, within the first
//!   [`SCAN_KEEP_RESIDENT_BYTES`]. Nothing is unmapped, so the next instance takes no
//!   page faults on them.
//! - **Decommit** (older kernels): every page the guest touched is given back to the
//!   kernel (`madvise`), and the next instance faults its pages in again.
//!
//! Decision: without the scan, nothing is kept resident. Keeping bytes resident without
//! the scan means resetting all of them with a memset, touched or not, on every
//! delivery, and the first MiB of a Rust guest is its stack, which it barely touches.
//! Measured on the relay chain (`docs/benchmarks.md`): a 1 MiB memset per delivery gave
//! 12.3k deliveries/s, decommitting everything 21.7k, 64 KiB kept 20.5k; the scan with
//! 1 MiB, on the same machine, about 45k.

/// Bytes of each memory slot the scan may keep resident: a Rust guest's stack is the
/// first MiB of its memory.
pub(crate) const SCAN_KEEP_RESIDENT_BYTES: usize = 1 << 20;

/// How spent instances' memories are reset; see the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MemoryReset {
    /// Scan for written pages where the kernel can, else decommit. The default.
    #[default]
    Auto,
    /// Decommit, even where the kernel could scan: what a kernel older than 6.7 gets.
    Decommit,
}

/// The way a host resets memories, once `Auto` is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetMode {
    /// Only written pages are reset, found with `PAGEMAP_SCAN`.
    Scan,
    /// Touched pages are decommitted.
    Decommit,
}

impl MemoryReset {
    /// Decides `Auto` by asking the kernel whether it has `PAGEMAP_SCAN`.
    pub(crate) fn resolve(self) -> ResetMode {
        match self {
            MemoryReset::Auto if pagemap_scan_supported() => ResetMode::Scan,
            MemoryReset::Auto | MemoryReset::Decommit => ResetMode::Decommit,
        }
    }
}

impl ResetMode {
    /// Bytes of each memory slot kept resident between instances.
    pub(crate) fn keep_resident_bytes(self) -> usize {
        match self {
            ResetMode::Scan => SCAN_KEEP_RESIDENT_BYTES,
            ResetMode::Decommit => 0,
        }
    }

    /// The pooling allocator's `pagemap_scan` setting. `Auto` rather than `Yes` for the
    /// scan: wasmtime probes with the same ioctl on the same file, so the two agree, and
    /// `Yes` would only turn a disagreement nobody has seen into a host that cannot
    /// start.
    pub(crate) fn pagemap_scan(self) -> wasmtime::Enabled {
        match self {
            ResetMode::Scan => wasmtime::Enabled::Auto,
            ResetMode::Decommit => wasmtime::Enabled::No,
        }
    }
}

/// Whether this kernel answers `PAGEMAP_SCAN` on `/proc/self/pagemap`: an empty scan
/// succeeds where it does (Linux 6.7+), and fails with `ENOTTY` where it does not.
#[cfg(target_os = "linux")]
pub(crate) fn pagemap_scan_supported() -> bool {
    use std::os::fd::AsRawFd;

    /// `struct pm_scan_arg` of `linux/fs.h`.
    #[repr(C)]
    struct PmScanArg {
        size: u64,
        flags: u64,
        start: u64,
        end: u64,
        walk_end: u64,
        vec: u64,
        vec_len: u64,
        max_pages: u64,
        category_inverted: u64,
        category_mask: u64,
        category_anyof_mask: u64,
        return_mask: u64,
    }
    /// `struct page_region` of `linux/fs.h`.
    #[repr(C)]
    struct PageRegion {
        start: u64,
        end: u64,
        categories: u64,
    }
    /// `_IOWR('f', 16, struct pm_scan_arg)` in the generic ioctl encoding (x86, Arm,
    /// RISC-V). Where an architecture encodes it otherwise, the kernel refuses this
    /// number like an unknown request, and the host decommits: slower, never wrong.
    const PAGEMAP_SCAN: u64 =
        (3 << 30) | ((std::mem::size_of::<PmScanArg>() as u64) << 16) | ((b'f' as u64) << 8) | 16;

    let Ok(pagemap) = std::fs::File::open("/proc/self/pagemap") else {
        return false;
    };
    let mut region = PageRegion {
        start: 0,
        end: 0,
        categories: 0,
    };
    let mut arg = PmScanArg {
        size: std::mem::size_of::<PmScanArg>() as u64,
        flags: 0,
        start: 0,
        end: 0,
        walk_end: 0,
        vec: std::ptr::from_mut(&mut region) as u64,
        vec_len: 1,
        max_pages: 1,
        category_inverted: 0,
        category_mask: 0,
        category_anyof_mask: 0,
        return_mask: 0,
    };
    // SAFETY: the descriptor is open for the whole call, `arg` is a `pm_scan_arg` of the
    // size it states, and its one-region `vec` points at `region`, which outlives the
    // call. The range is empty, so the kernel reads no page tables and writes at most
    // `arg.walk_end` and `region`.
    let answer = unsafe {
        libc::ioctl(
            pagemap.as_raw_fd(),
            PAGEMAP_SCAN as _,
            std::ptr::from_mut(&mut arg),
        )
    };
    answer >= 0
}

/// Other systems have no `PAGEMAP_SCAN`.
#[cfg(not(target_os = "linux"))]
pub(crate) fn pagemap_scan_supported() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's (major, minor) version, from `/proc/sys/kernel/osrelease`.
    fn kernel_version() -> Option<(u32, u32)> {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
        let mut numbers = release
            .trim()
            .split(|c: char| !c.is_ascii_digit())
            .map(str::parse::<u32>);
        Some((numbers.next()?.ok()?, numbers.next()?.ok()?))
    }

    /// The probe against what the kernel's version says: `PAGEMAP_SCAN` came in 6.7.
    #[test]
    fn the_probe_agrees_with_the_kernel_version() {
        let Some(version) = kernel_version() else {
            assert!(!pagemap_scan_supported(), "no Linux kernel, yet a scan");
            return;
        };
        let expected = version >= (6, 7) && std::fs::metadata("/proc/self/pagemap").is_ok();
        assert_eq!(
            pagemap_scan_supported(),
            expected,
            "kernel {version:?}: PAGEMAP_SCAN expected {expected}"
        );
    }

    #[test]
    fn each_mode_keeps_resident_only_what_it_can_reset_cheaply() {
        assert_eq!(MemoryReset::Decommit.resolve(), ResetMode::Decommit);
        assert_eq!(ResetMode::Decommit.keep_resident_bytes(), 0);
        assert_eq!(ResetMode::Decommit.pagemap_scan(), wasmtime::Enabled::No);
        assert_eq!(ResetMode::Scan.keep_resident_bytes(), 1 << 20);
        let auto = MemoryReset::Auto.resolve();
        let scans = pagemap_scan_supported();
        assert_eq!(auto == ResetMode::Scan, scans);
    }
}
