//! Unmapping the file pages that start-up touched, once hbd or hbc runs.
//!
//! Linux maps a program's code and read-only data from the page cache in
//! "fault-around" windows (64 KiB): every page fault maps up to 16 pages
//! around the one needed. Start-up runs code that is never run again
//! (configuration parsing, TLS, SMTP and HTTP client set-up, …), so about
//! 2 MiB of hbd's 3.6 MiB of code stayed counted in its resident set for the
//! whole life of the process, mapped but unused.
//!
//! [`release_startup_pages`] marks each read-only file mapping
//! `MADV_RANDOM` (no read-ahead, should a page have to be read from disk
//! again) and drops its page table entries with `MADV_DONTNEED`. The pages
//! stay in the page cache, shared with every other process; code that runs
//! again is mapped back by a minor fault, and that fault still maps its
//! whole 64 KiB window, `MADV_RANDOM` or not (Linux 6.18: three faults
//! mapped back 192 KiB of hbc's code). What stays resident is therefore
//! every window that the running code touches, not just its pages: 16 of
//! the 20 windows of hbc's code for its once-a-second cycle. Only mappings
//! that cannot have been written are touched (not writable, and no
//! anonymous, i.e. copied-on-write, pages according to /proc/self/smaps):
//! dropping those loses nothing.

/// See the module documentation. Best effort: any failure leaves the
/// mappings as they were.
#[cfg(target_os = "linux")]
pub fn release_startup_pages() {
    use std::io::BufRead;
    // Read line by line: the whole text is over 100 KiB, which would stay
    // in the heap's high-water mark.
    let Ok(smaps) = std::fs::File::open("/proc/self/smaps") else {
        return;
    };
    let lines = std::io::BufReader::with_capacity(4096, smaps).lines().map_while(Result::ok);
    for (start, end) in clean_file_mappings(lines) {
        let (addr, len) = (start as *mut libc::c_void, end - start);
        // SAFETY: the range is a whole mapping of this process that is
        // read-only, file-backed and has no anonymous pages: advice on it
        // changes only which of its pages are mapped, never their contents
        // (they are read back from the file on the next access).
        unsafe {
            libc::madvise(addr, len, libc::MADV_RANDOM);
            libc::madvise(addr, len, libc::MADV_DONTNEED);
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn release_startup_pages() {}

/// Gives the kernel back the free pages inside the heap (glibc's
/// `malloc_trim`, every arena), which glibc otherwise keeps for reuse: for
/// hbd once it runs (the state file's text and parse trees, tens of MiB
/// with thousands of hosts, are freed by then) and after each save (the
/// snapshot). Costs a walk of the heap's free lists; a no-op with other C
/// libraries.
pub fn return_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases pages of free chunks; it is
    // thread-safe (it takes each arena's lock).
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Settings that keep a mostly idle process's heap small, for hbc:
/// - one malloc arena: glibc gives each thread that allocates an arena of
///   its own (up to 8 per core), each keeping what its thread freed
///   resident for reuse, and hbc's plugin threads each read a few /proc
///   files once a cycle and then sleep;
/// - a fixed mmap threshold of 64 KiB: glibc raises the threshold to the
///   size of the largest mapped block freed (a large plugin output or
///   /proc file read once a cycle), after which such blocks come from the
///   heap and stay resident between cycles; above the threshold they are
///   mapped and returned to the kernel when freed.
///
/// Call before starting threads; a no-op with other C libraries.
pub fn keep_heap_small() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc tunables; it is called before
    // other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 10);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 10);
    }
}

/// Address ranges of the mappings in the lines of /proc/PID/smaps that are
/// backed by a file, not writable, and hold no anonymous pages.
fn clean_file_mappings(smaps: impl Iterator<Item = impl AsRef<str>>) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut candidate: Option<(usize, usize)> = None;
    for line in smaps {
        let mut fields = line.as_ref().split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-') {
            // A mapping's header: "start-end perms offset dev inode [path]".
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            let range = usize::from_str_radix(start, 16).ok().zip(usize::from_str_radix(end, 16).ok());
            let clean_file =
                perms.len() == 4 && !perms.contains('w') && perms.starts_with('r') && path.starts_with('/');
            candidate = range.filter(|(s, e)| clean_file && s < e);
        } else if first == "Anonymous:" {
            if let Some(range) = candidate.take() {
                if fields.next() == Some("0") {
                    ranges.push(range);
                }
            }
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clean_read_only_file_mappings() {
        let smaps = "\
55e135aab000-55e135bca000 r--p 00000000 fd:01 123 /usr/sbin/hbd
Rss:                 512 kB
Anonymous:             0 kB
55e135bca000-55e135f70000 r-xp 0011f000 fd:01 123 /usr/sbin/hbd
Anonymous:             0 kB
55e135f70000-55e135f84000 r--p 004c5000 fd:01 123 /usr/sbin/hbd
Anonymous:            80 kB
55e135f84000-55e135f86000 rw-p 004d9000 fd:01 123 /usr/sbin/hbd
Anonymous:             8 kB
55e1440cb000-55e14410f000 rw-p 00000000 00:00 0 [heap]
Anonymous:           136 kB
7ffd2a5f2000-7ffd2a5f4000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
";
        assert_eq!(
            clean_file_mappings(smaps.lines()),
            [(0x55e135aab000, 0x55e135bca000), (0x55e135bca000, 0x55e135f70000)]
        );
    }

    #[test]
    fn the_process_still_runs_afterwards() {
        release_startup_pages();
        let v: Vec<u64> = (0..1000).collect();
        assert_eq!(v.iter().sum::<u64>(), 499_500);
        assert!(format!("{v:?}").len() > 1000);
    }
}
